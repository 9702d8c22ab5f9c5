#include "store/mysql/schema.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <thread>

namespace pigeon::store::mysql {
namespace {

// Every table: InnoDB (row locks, transactions), utf8mb4 with a binary collation. The columns
// that hold names, ids and bodies are VARBINARY / LONGBLOB anyway: opaque bytes, compared
// bytewise (so usernames are case-sensitive), never converted or validated by the server.
#define PIGEON_TABLE_OPTIONS \
  " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC"

constexpr std::string_view kSchemaVersionTable =
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " version INT UNSIGNED NOT NULL PRIMARY KEY,"
    " description VARCHAR(255) NOT NULL,"
    " applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP"
    ")" PIGEON_TABLE_OPTIONS;

const std::vector<Migration>& allMigrations() {
  static const std::vector<Migration> list = {
      {1,
       "users, tokens, devices, groups, messages, inboxes, cursors",
       {
           // Named counters. 'users' is the last user id handed out.
           "CREATE TABLE IF NOT EXISTS counters ("
           " name VARBINARY(64) NOT NULL PRIMARY KEY,"
           " value BIGINT UNSIGNED NOT NULL"
           ")" PIGEON_TABLE_OPTIONS,
           "INSERT IGNORE INTO counters (name, value) VALUES ('users', 0)",

           "CREATE TABLE IF NOT EXISTS users ("
           " id BIGINT UNSIGNED NOT NULL PRIMARY KEY,"
           " username VARBINARY(255) NOT NULL,"
           " password_hash VARBINARY(1024) NOT NULL,"
           " created_at_ms BIGINT NOT NULL,"
           " UNIQUE KEY users_by_name (username)"
           ")" PIGEON_TABLE_OPTIONS,

           "CREATE TABLE IF NOT EXISTS tokens ("
           " token_hash VARBINARY(255) NOT NULL PRIMARY KEY,"
           " user_id BIGINT UNSIGNED NOT NULL,"
           " device VARBINARY(255) NOT NULL,"
           " created_at_ms BIGINT NOT NULL,"
           " expires_at_ms BIGINT NOT NULL,"
           " KEY tokens_by_expiry (expires_at_ms)"
           ")" PIGEON_TABLE_OPTIONS,

           "CREATE TABLE IF NOT EXISTS devices ("
           " user_id BIGINT UNSIGNED NOT NULL,"
           " name VARBINARY(255) NOT NULL,"
           " first_seen_ms BIGINT NOT NULL,"
           " last_login_ms BIGINT NOT NULL,"
           " PRIMARY KEY (user_id, name)"
           ")" PIGEON_TABLE_OPTIONS,

           // `groups` is a reserved word in MySQL 8.
           "CREATE TABLE IF NOT EXISTS chat_groups ("
           " id BIGINT UNSIGNED NOT NULL PRIMARY KEY,"
           " name VARBINARY(1024) NOT NULL,"
           " owner BIGINT UNSIGNED NOT NULL,"
           " created_at_ms BIGINT NOT NULL"
           ")" PIGEON_TABLE_OPTIONS,

           "CREATE TABLE IF NOT EXISTS group_members ("
           " group_id BIGINT UNSIGNED NOT NULL,"
           " user_id BIGINT UNSIGNED NOT NULL,"
           " PRIMARY KEY (group_id, user_id),"
           " KEY members_by_user (user_id, group_id)"
           ")" PIGEON_TABLE_OPTIONS,

           // The body is stored once. (conversation, conv_seq) is the timeline; sender_seq is
           // the sender's inbox seq, kept for answering duplicates.
           "CREATE TABLE IF NOT EXISTS messages ("
           " id BIGINT UNSIGNED NOT NULL PRIMARY KEY,"
           " conversation VARBINARY(255) NOT NULL,"
           " conv_seq BIGINT UNSIGNED NOT NULL,"
           " sender BIGINT UNSIGNED NOT NULL,"
           " sender_device VARBINARY(255) NOT NULL,"
           " client_msg_id VARBINARY(255) NOT NULL,"
           " sender_seq BIGINT UNSIGNED NOT NULL,"
           " created_at_ms BIGINT NOT NULL,"
           " content_type VARBINARY(255) NOT NULL,"
           " body LONGBLOB NOT NULL,"
           " UNIQUE KEY timeline (conversation, conv_seq)"
           ")" PIGEON_TABLE_OPTIONS,

           // The counters seqs are allocated from: a conversation's last conv_seq, a user's
           // last inbox seq. Rows are locked by the appending transaction until it commits.
           "CREATE TABLE IF NOT EXISTS conversations ("
           " conversation VARBINARY(255) NOT NULL PRIMARY KEY,"
           " last_seq BIGINT UNSIGNED NOT NULL"
           ")" PIGEON_TABLE_OPTIONS,
           "CREATE TABLE IF NOT EXISTS inbox_heads ("
           " user_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,"
           " last_seq BIGINT UNSIGNED NOT NULL"
           ")" PIGEON_TABLE_OPTIONS,

           "CREATE TABLE IF NOT EXISTS inbox ("
           " user_id BIGINT UNSIGNED NOT NULL,"
           " seq BIGINT UNSIGNED NOT NULL,"
           " msg_id BIGINT UNSIGNED NOT NULL,"
           " PRIMARY KEY (user_id, seq)"
           ")" PIGEON_TABLE_OPTIONS,

           "CREATE TABLE IF NOT EXISTS idempotency ("
           " sender BIGINT UNSIGNED NOT NULL,"
           " client_msg_id VARBINARY(255) NOT NULL,"
           " msg_id BIGINT UNSIGNED NOT NULL,"
           " PRIMARY KEY (sender, client_msg_id)"
           ")" PIGEON_TABLE_OPTIONS,

           "CREATE TABLE IF NOT EXISTS cursors ("
           " user_id BIGINT UNSIGNED NOT NULL,"
           " device VARBINARY(255) NOT NULL,"
           " seq BIGINT UNSIGNED NOT NULL,"
           " PRIMARY KEY (user_id, device)"
           ")" PIGEON_TABLE_OPTIONS,
       }},
  };
  return list;
}

#undef PIGEON_TABLE_OPTIONS

// GET_LOCK names are server-wide and at most 64 characters: one lock per database.
std::string lockName(std::string_view database) {
  return fmt::format("pigeon_schema:{}", database.substr(0, 50));
}

// Reads one unsigned number from a one-row, one-column result; NULL reads as 0.
Result<std::uint64_t> scalar(Connection& c, std::string_view sql, std::string_view what) {
  auto rs = c.query(sql);
  if (!rs) return storageError(what, rs.error());
  auto row = rs->next();
  std::uint64_t v = 0;
  if (!row || (!row->isNull(0) && !row->u64(0, v))) {
    return fail(Errc::Internal, fmt::format("storage: unexpected answer {}", what));
  }
  return v;
}

}  // namespace

std::span<const Migration> migrations() {
  return allMigrations();
}

unsigned requiredSchemaVersion() {
  return allMigrations().back().version;
}

Result<unsigned> schemaVersion(Connection& c) {
  auto rs = c.query("SELECT MAX(version) FROM schema_version");
  if (!rs) {
    if (rs.error().code == kErNoSuchTable) return 0u;
    return storageError("reading the schema version", rs.error());
  }
  auto row = rs->next();
  std::uint64_t v = 0;
  if (!row || (!row->isNull(0) && !row->u64(0, v))) {
    return fail(Errc::Internal, "storage: unexpected schema version");
  }
  return static_cast<unsigned>(v);
}

Result<unsigned> migrateSchema(Connection& c, std::string_view database,
                               std::span<const Migration> list,
                               std::chrono::milliseconds lock_wait) {
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (list[i].version != i + 1) {
      return fail(Errc::Internal, "storage: migrations must be numbered 1, 2, 3 …");
    }
  }
  const std::string lock = textLiteral(lockName(database));
  const auto wait_s = std::max<std::int64_t>(1, (lock_wait.count() + 999) / 1000);
  auto got =
      scalar(c, fmt::format("SELECT GET_LOCK({}, {})", lock, wait_s), "taking the schema lock");
  if (!got) return std::unexpected(got.error());
  if (*got != 1) {
    return fail(Errc::Unavailable,
                fmt::format("storage: another node held the schema lock of '{}' for {} s", database,
                            wait_s));
  }
  // The lock is the session's: released here, or by the server if the connection dies.
  struct Release {
    Connection& c;
    const std::string& lock;
    ~Release() {
      if (c.isOpen()) (void)c.query(fmt::format("SELECT RELEASE_LOCK({})", lock));
    }
  } release{c, lock};

  if (auto r = c.exec(kSchemaVersionTable); !r) {
    return storageError("creating schema_version", r.error());
  }
  auto current = schemaVersion(c);
  if (!current) return current;
  const unsigned latest = list.empty() ? 0 : list.back().version;
  if (*current > latest) {
    spdlog::warn("store: database '{}' has schema version {}, newer than this build's {}", database,
                 *current, latest);
    return *current;
  }
  for (const Migration& m : list) {
    if (m.version <= *current) continue;
    for (const std::string& sql : m.statements) {
      if (auto r = c.exec(sql); !r) {
        return storageError(fmt::format("schema migration {} ({})", m.version, m.description),
                            r.error());
      }
    }
    auto recorded =
        c.exec(fmt::format("INSERT INTO schema_version (version, description) VALUES ({}, {})",
                           m.version, textLiteral(m.description)));
    if (!recorded) {
      return storageError(fmt::format("recording schema migration {}", m.version),
                          recorded.error());
    }
    spdlog::info("store: database '{}' migrated to schema version {}: {}", database, m.version,
                 m.description);
  }
  return latest;
}

Result<unsigned> waitForSchema(Connection& c, unsigned needed, std::chrono::milliseconds wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  bool logged = false;
  for (;;) {
    auto version = schemaVersion(c);
    if (!version || *version >= needed) return version;
    if (std::chrono::steady_clock::now() >= deadline) {
      return fail(Errc::Unavailable,
                  fmt::format("storage: schema version {} after {} ms, this build needs {} (is "
                              "a node with migrations enabled running?)",
                              *version, wait.count(), needed));
    }
    if (!logged) {
      spdlog::info("store: waiting for schema version {} (now {})", needed, *version);
      logged = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // polling another node's work
  }
}

}  // namespace pigeon::store::mysql
