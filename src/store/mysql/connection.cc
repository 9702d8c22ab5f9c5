#include "store/mysql/connection.h"

#include <errmsg.h>
#include <fmt/format.h>
#include <mysql.h>

#include <algorithm>
#include <charconv>
#include <mutex>

namespace pigeon::store::mysql {
namespace {

// Server errors after which the session is gone even though the socket may still be open.
constexpr unsigned kErServerShutdown = 1053;
constexpr unsigned kErConnectionKilled = 1927;          // MariaDB
constexpr unsigned kErClientInteractionTimeout = 4031;  // MySQL 8.0.24+: idle session closed

unsigned wholeSeconds(std::chrono::milliseconds ms) {
  const auto s = (ms.count() + 999) / 1000;  // round up: a timeout is never shortened to 0
  return static_cast<unsigned>(std::clamp<std::int64_t>(s, 1, 365 * 24 * 3600));
}

}  // namespace

bool SqlError::connectionLost() const {
  return (code >= 2000 && code < 3000) || code == kErServerShutdown ||
         code == kErConnectionKilled || code == kErClientInteractionTimeout;
}

std::unexpected<Error> storageError(std::string_view what, const SqlError& e) {
  return fail(Errc::Unavailable, fmt::format("storage: {}: {} ({})", what, e.message, e.code));
}

namespace {
void appendLiteral(std::string& sql, std::string_view bytes) {
  sql += '\'';
  for (char c : bytes) {
    switch (c) {
      case '\0':
        sql += "\\0";
        break;
      case '\'':
        sql += "\\'";
        break;
      case '"':
        sql += "\\\"";
        break;
      case '\\':
        sql += "\\\\";
        break;
      case '\n':
        sql += "\\n";
        break;
      case '\r':
        sql += "\\r";
        break;
      case '\x1a':
        sql += "\\Z";
        break;
      default:
        sql += c;
    }
  }
  sql += '\'';
}
}  // namespace

void appendQuoted(std::string& sql, std::string_view bytes) {
  sql.reserve(sql.size() + bytes.size() + bytes.size() / 8 + 10);
  sql += "_binary";
  appendLiteral(sql, bytes);
}

std::string textLiteral(std::string_view text) {
  std::string out;
  appendLiteral(out, text);
  return out;
}

std::string quoted(std::string_view bytes) {
  std::string out;
  appendQuoted(out, bytes);
  return out;
}

bool Row::u64(unsigned i, std::uint64_t& out) const {
  const std::string_view s = bytes(i);
  if (isNull(i) || s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

bool Row::i64(unsigned i, std::int64_t& out) const {
  const std::string_view s = bytes(i);
  if (isNull(i) || s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

ResultSet::~ResultSet() {
  if (res_ != nullptr) mysql_free_result(res_);
}

std::optional<Row> ResultSet::next() {
  if (res_ == nullptr) return std::nullopt;
  MYSQL_ROW row = mysql_fetch_row(res_);
  if (row == nullptr) return std::nullopt;
  return Row(row, mysql_fetch_lengths(res_));
}

std::uint64_t ResultSet::size() const {
  return res_ == nullptr ? 0 : mysql_num_rows(res_);
}

void Connection::initLibrary() {
  static std::once_flag once;
  std::call_once(once, [] { mysql_library_init(0, nullptr, nullptr); });
}

Connection::Connection(ConnectionSettings settings) : settings_(std::move(settings)) {}

Connection::~Connection() {
  close();
}

void Connection::close() {
  if (handle_ != nullptr) {
    mysql_close(handle_);
    handle_ = nullptr;
  }
}

SqlError Connection::takeError() {
  return SqlError{mysql_errno(handle_), mysql_error(handle_)};
}

SqlError Connection::fail(SqlError e) {
  if (e.connectionLost()) close();
  last_error_ = e;
  return e;
}

SqlResult<void> Connection::open() {
  if (handle_ != nullptr) return {};
  initLibrary();
  MYSQL* h = mysql_init(nullptr);
  if (h == nullptr) return std::unexpected(fail(SqlError{CR_OUT_OF_MEMORY, "mysql_init failed"}));
  const unsigned connect_s = wholeSeconds(settings_.connect_timeout);
  const unsigned io_s = wholeSeconds(settings_.io_timeout);
  const my_bool off = 0;
  const unsigned no = 0;
  mysql_options(h, MYSQL_OPT_CONNECT_TIMEOUT, &connect_s);
  mysql_options(h, MYSQL_OPT_READ_TIMEOUT, &io_s);
  mysql_options(h, MYSQL_OPT_WRITE_TIMEOUT, &io_s);
  mysql_options(h, MYSQL_SET_CHARSET_NAME, "utf8mb4");
  mysql_options(h, MYSQL_OPT_RECONNECT, &off);  // a silent reconnect would lose the session
  mysql_options(h, MYSQL_OPT_LOCAL_INFILE, &no);
  if (mysql_real_connect(h, settings_.host.c_str(), settings_.user.c_str(),
                         settings_.password.c_str(),
                         settings_.database.empty() ? nullptr : settings_.database.c_str(),
                         settings_.port, nullptr, 0) == nullptr) {
    SqlError e{mysql_errno(h), mysql_error(h)};
    mysql_close(h);
    return std::unexpected(fail(std::move(e)));
  }
  handle_ = h;
  // Backslash escapes on (appendQuoted relies on them), strict (too long is an error, never a
  // truncation), and a lock wait that ends well before the read timeout would.
  const unsigned lock_wait_s = std::clamp(io_s / 2, 1u, 50u);
  const std::string setup = fmt::format(
      "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION', "
      "SESSION innodb_lock_wait_timeout = {}",
      lock_wait_s);
  for (std::string_view sql :
       {std::string_view(setup),
        std::string_view("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")}) {
    if (auto r = exec(sql); !r) {
      close();
      return r;
    }
  }
  return {};
}

SqlResult<void> Connection::ensureOpen(std::chrono::steady_clock::duration max_idle) {
  if (handle_ != nullptr && std::chrono::steady_clock::now() - last_used_ > max_idle) {
    if (mysql_ping(handle_) != 0) {
      close();  // gone while idle (server restarted, wait_timeout): reconnect below
    } else {
      last_used_ = std::chrono::steady_clock::now();
    }
  }
  return open();
}

SqlResult<void> Connection::exec(std::string_view sql) {
  if (handle_ == nullptr) {
    return std::unexpected(fail(SqlError{CR_SERVER_GONE_ERROR, "not connected"}));
  }
  if (mysql_real_query(handle_, sql.data(), sql.size()) != 0) {
    return std::unexpected(fail(takeError()));
  }
  if (mysql_field_count(handle_) != 0) {
    // A result set nobody asked for: read and drop it, or the connection is out of sync.
    MYSQL_RES* res = mysql_store_result(handle_);
    if (res == nullptr) return std::unexpected(fail(takeError()));
    mysql_free_result(res);
  }
  last_error_.reset();
  last_used_ = std::chrono::steady_clock::now();
  return {};
}

SqlResult<ResultSet> Connection::query(std::string_view sql) {
  if (handle_ == nullptr) {
    return std::unexpected(fail(SqlError{CR_SERVER_GONE_ERROR, "not connected"}));
  }
  if (mysql_real_query(handle_, sql.data(), sql.size()) != 0) {
    return std::unexpected(fail(takeError()));
  }
  MYSQL_RES* res = mysql_store_result(handle_);
  if (res == nullptr && mysql_field_count(handle_) != 0) return std::unexpected(fail(takeError()));
  last_error_.reset();
  last_used_ = std::chrono::steady_clock::now();
  return ResultSet(res);
}

std::uint64_t Connection::affectedRows() const {
  return handle_ == nullptr ? 0 : mysql_affected_rows(handle_);
}

std::uint64_t Connection::insertId() const {
  return handle_ == nullptr ? 0 : mysql_insert_id(handle_);
}

void Connection::rollbackQuietly() {
  if (handle_ == nullptr) return;
  if (mysql_real_query(handle_, "ROLLBACK", 8) != 0) close();
}

Chunked::Chunked(std::string head, std::string separator, std::string tail, std::size_t budget)
    : head_(std::move(head)),
      separator_(std::move(separator)),
      tail_(std::move(tail)),
      budget_(budget) {}

std::string& Chunked::item() {
  if (!current_.empty() && current_.size() >= budget_) {
    current_ += tail_;
    done_.push_back(std::move(current_));
    current_.clear();
  }
  if (current_.empty()) {
    current_ = head_;
  } else {
    current_ += separator_;
  }
  return current_;
}

std::vector<std::string> Chunked::finish() {
  if (!current_.empty()) {
    current_ += tail_;
    done_.push_back(std::move(current_));
    current_.clear();
  }
  return std::move(done_);
}

ConnectionPool::ConnectionPool(ConnectionSettings settings, std::size_t size)
    : settings_(std::move(settings)), size_(std::max<std::size_t>(size, 1)) {}

Result<ConnectionPool::Lease> ConnectionPool::acquire() {
  std::unique_ptr<Connection> c;
  {
    std::unique_lock lock(mu_);
    const auto deadline = std::chrono::steady_clock::now() + settings_.io_timeout;
    if (!cv_.wait_until(lock, deadline, [&] { return !idle_.empty() || created_ < size_; })) {
      return fail(Errc::Unavailable,
                  fmt::format("storage: all {} connections stayed busy for {} ms", size_,
                              settings_.io_timeout.count()));
    }
    if (!idle_.empty()) {
      c = std::move(idle_.back());
      idle_.pop_back();
    } else {
      ++created_;
      c = std::make_unique<Connection>(settings_);
    }
  }
  Lease lease(this, std::move(c));
  if (auto opened = lease->ensureOpen(kPingAfterIdle); !opened) {
    return storageError(fmt::format("connecting to {}:{}", settings_.host, settings_.port),
                        opened.error());
  }
  return lease;
}

void ConnectionPool::giveBack(std::unique_ptr<Connection> c) {
  {
    std::lock_guard lock(mu_);
    idle_.push_back(std::move(c));
  }
  cv_.notify_one();
}

}  // namespace pigeon::store::mysql
