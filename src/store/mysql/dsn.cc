// parseMysqlDsn: the "key=value key='quoted value'" connection string of the MySQL engine.
#include <fmt/format.h>

#include <charconv>
#include <set>

#include "store/mysql/mysql_store.h"

namespace pigeon::store {
namespace {

bool isSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

std::unexpected<Error> bad(std::string message) {
  return fail(Errc::BadRequest, "mysql dsn: " + std::move(message));
}

// A whole decimal number in [lo, hi].
bool parseNumber(std::string_view s, std::uint64_t lo, std::uint64_t hi, std::uint64_t& out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size() && out >= lo && out <= hi;
}

Result<void> apply(MysqlOptions& o, std::string_view key, const std::string& value) {
  std::uint64_t n = 0;
  auto number = [&](std::uint64_t lo, std::uint64_t hi) -> Result<std::uint64_t> {
    if (!parseNumber(value, lo, hi, n)) {
      return bad(
          fmt::format("bad value '{}' for '{}' (a number from {} to {})", value, key, lo, hi));
    }
    return n;
  };
  auto millis = [&](std::chrono::milliseconds& field) -> Result<void> {
    auto v = number(1, 24ull * 3600 * 1000);
    if (!v) return std::unexpected(v.error());
    field = std::chrono::milliseconds(*v);
    return {};
  };
  if (key == "host") {
    if (value.empty()) return bad("empty value for 'host'");
    o.host = value;
  } else if (key == "port") {
    auto v = number(1, 65535);
    if (!v) return std::unexpected(v.error());
    o.port = static_cast<unsigned>(*v);
  } else if (key == "user") {
    o.user = value;
  } else if (key == "password") {
    o.password = value;
  } else if (key == "db" || key == "database") {
    if (value.empty()) return bad(fmt::format("empty value for '{}'", key));
    o.database = value;
  } else if (key == "pool") {
    auto v = number(1, 1000);
    if (!v) return std::unexpected(v.error());
    o.pool_size = *v;
  } else if (key == "writers") {
    auto v = number(1, 64);
    if (!v) return std::unexpected(v.error());
    o.writers = *v;
  } else if (key == "batch") {
    auto v = number(1, 100000);
    if (!v) return std::unexpected(v.error());
    o.max_batch_messages = *v;
  } else if (key == "migrate") {
    if (value == "true" || value == "1") {
      o.migrate = true;
    } else if (value == "false" || value == "0") {
      o.migrate = false;
    } else {
      return bad(fmt::format("bad value '{}' for 'migrate' (true, false, 1 or 0)", value));
    }
  } else if (key == "schema_wait_ms") {
    return millis(o.schema_wait);
  } else if (key == "connect_timeout_ms") {
    return millis(o.connect_timeout);
  } else if (key == "io_timeout_ms") {
    return millis(o.io_timeout);
  } else {
    return bad(fmt::format("unknown key '{}'", key));
  }
  return {};
}

}  // namespace

Result<MysqlOptions> parseMysqlDsn(std::string_view dsn) {
  MysqlOptions options;
  std::set<std::string, std::less<>> seen;
  std::size_t i = 0;
  const std::size_t n = dsn.size();
  for (;;) {
    while (i < n && isSpace(dsn[i])) ++i;
    if (i == n) break;
    const std::size_t key_start = i;
    while (i < n && dsn[i] != '=' && !isSpace(dsn[i])) ++i;
    const std::string_view key = dsn.substr(key_start, i - key_start);
    while (i < n && isSpace(dsn[i])) ++i;
    if (i == n || dsn[i] != '=') return bad(fmt::format("expected '=' after '{}'", key));
    if (key.empty()) return bad("'=' without a key");
    ++i;
    while (i < n && isSpace(dsn[i])) ++i;
    std::string value;
    if (i < n && dsn[i] == '\'') {
      ++i;
      bool closed = false;
      while (i < n) {
        const char c = dsn[i++];
        if (c == '\'') {
          closed = true;
          break;
        }
        if (c == '\\' && i < n) {
          value += dsn[i++];
        } else {
          value += c;
        }
      }
      if (!closed) return bad(fmt::format("unterminated quote in the value of '{}'", key));
      if (i < n && !isSpace(dsn[i])) {
        return bad(fmt::format("expected a space after the quoted value of '{}'", key));
      }
    } else {
      while (i < n && !isSpace(dsn[i])) value += dsn[i++];
    }
    if (!seen.emplace(key == "database" ? "db" : key).second) {
      return bad(fmt::format("repeated key '{}'", key));
    }
    if (auto r = apply(options, key, value); !r) return std::unexpected(r.error());
  }
  return options;
}

}  // namespace pigeon::store
