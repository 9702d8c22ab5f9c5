// Internal to the MySQL engine: one client connection (MariaDB Connector/C, text protocol), the
// quoting of bytes into SQL, builders for multi-row statements, and a small pool.
//
// Ownership and threads: a Connection is used by one thread at a time (the Connector/C handle is
// not thread-safe); the pool hands each out to one borrower. ConnectionPool is thread-safe.
//
// Errors: SQL calls return SqlError (the server's or the client library's error number), so
// that callers can tell a deadlock (retry) from a duplicate key (an answer) from a lost
// connection. A Connection closes itself when the error means it is unusable; the next open()
// or ensureOpen() reconnects. Nothing here throws.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <expected>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"

// Connector/C's types, declared so that its headers stay out of ours.
struct st_mysql;
struct st_mysql_res;

namespace pigeon::store::mysql {

// Server error numbers the engine acts on (identical in MySQL and MariaDB).
inline constexpr unsigned kErDupEntry = 1062;
inline constexpr unsigned kErNoSuchTable = 1146;
inline constexpr unsigned kErLockWaitTimeout = 1205;
inline constexpr unsigned kErLockDeadlock = 1213;

struct SqlError {
  unsigned code = 0;  // ER_… (server, < 2000) or CR_… (client library, 2000–2999)
  std::string message;

  // The connection is gone or unusable (client-side errors, server shutdown, killed).
  bool connectionLost() const;
  // The transaction lost a lock conflict and may succeed if run again.
  bool lockConflict() const { return code == kErLockDeadlock || code == kErLockWaitTimeout; }
};

template <typename T>
using SqlResult = std::expected<T, SqlError>;

// Unavailable "storage: <what>: <message> (<code>)".
std::unexpected<Error> storageError(std::string_view what, const SqlError& e);

// Appends `bytes` as a binary string literal (_binary'…', with \0 ' " \ \n \r ^Z escaped).
// Safe for any bytes because every connection sets its own sql_mode (backslash escapes on) and
// talks utf8mb4, whose multibyte sequences never contain an ASCII byte.
void appendQuoted(std::string& sql, std::string_view bytes);
std::string quoted(std::string_view bytes);
// The same without the _binary introducer: a string in the connection's character set (for
// text such as lock names; `text` must be UTF-8).
std::string textLiteral(std::string_view text);

// One row of a result set; valid until the next ResultSet::next().
class Row {
 public:
  Row(char** values, const unsigned long* lengths) : values_(values), lengths_(lengths) {}
  bool isNull(unsigned i) const { return values_[i] == nullptr; }
  std::string_view bytes(unsigned i) const {
    return values_[i] == nullptr ? std::string_view() : std::string_view(values_[i], lengths_[i]);
  }
  // Numbers arrive as decimal text; false if the column is NULL or not such a number.
  bool u64(unsigned i, std::uint64_t& out) const;
  bool i64(unsigned i, std::int64_t& out) const;

 private:
  char** values_;
  const unsigned long* lengths_;
};

// A whole result set, fetched into memory (mysql_store_result). Move-only.
class ResultSet {
 public:
  explicit ResultSet(st_mysql_res* res) : res_(res) {}
  ResultSet(ResultSet&& other) noexcept : res_(std::exchange(other.res_, nullptr)) {}
  ResultSet& operator=(ResultSet&&) = delete;
  ~ResultSet();
  std::optional<Row> next();
  std::uint64_t size() const;

 private:
  st_mysql_res* res_;
};

struct ConnectionSettings {
  std::string host;
  unsigned port = 3306;
  std::string user;
  std::string password;
  std::string database;  // empty: none selected (administration)
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds io_timeout{30000};  // read and write, each; rounded up to seconds
};

class Connection {
 public:
  explicit Connection(ConnectionSettings settings);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Connects if not connected, then sets the session up: sql_mode (strict, backslash escapes),
  // READ COMMITTED, and an InnoDB lock wait shorter than the read timeout.
  SqlResult<void> open();
  // open(), and if the connection has been idle longer than `max_idle`, a ping first: a
  // connection the server dropped (restart, wait_timeout) is replaced instead of failing the
  // caller's first statement. Bounded by the connect and io timeouts.
  SqlResult<void> ensureOpen(std::chrono::steady_clock::duration max_idle);
  bool isOpen() const { return handle_ != nullptr; }
  void close();

  // A statement without a result set.
  SqlResult<void> exec(std::string_view sql);
  // A statement with a result set.
  SqlResult<ResultSet> query(std::string_view sql);
  // Of the last exec(): rows changed (not merely matched), and the LAST_INSERT_ID it set.
  std::uint64_t affectedRows() const;
  std::uint64_t insertId() const;
  // ROLLBACK, ignoring errors (a failed rollback closes the connection, which rolls back too).
  void rollbackQuietly();
  // The error of the last statement that failed since the last successful one, if any.
  const std::optional<SqlError>& lastError() const { return last_error_; }

  // Initialises Connector/C once per process (mysql_init is not thread-safe until then).
  // Thread-safe; open() calls it.
  static void initLibrary();

 private:
  SqlError takeError();
  SqlError fail(SqlError e);

  ConnectionSettings settings_;
  st_mysql* handle_ = nullptr;
  std::chrono::steady_clock::time_point last_used_{};
  std::optional<SqlError> last_error_;
};

// Builds statements of many rows or many conditions, each at most about `budget` bytes (a row
// is never split, so one may exceed it): head, then items separated by `separator`, then tail.
class Chunked {
 public:
  Chunked(std::string head, std::string separator, std::string tail, std::size_t budget);
  // Starts an item; append its text to the returned string.
  std::string& item();
  // The statements, tails added; empty if no item was started.
  std::vector<std::string> finish();

 private:
  std::string head_, separator_, tail_;
  std::size_t budget_;
  std::vector<std::string> done_;
  std::string current_;
};

// Up to `size` connections, opened on first use, each lent to one borrower at a time.
class ConnectionPool {
 public:
  ConnectionPool(ConnectionSettings settings, std::size_t size);

  class Lease {
   public:
    Lease(ConnectionPool* pool, std::unique_ptr<Connection> c) : pool_(pool), c_(std::move(c)) {}
    Lease(Lease&&) = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (c_) pool_->giveBack(std::move(c_));
    }
    Connection& operator*() { return *c_; }
    Connection* operator->() { return c_.get(); }

   private:
    ConnectionPool* pool_;
    std::unique_ptr<Connection> c_;
  };

  // A connection idle for longer than this is pinged before it is lent again.
  static constexpr std::chrono::seconds kPingAfterIdle{1};

  // A connection, open and checked (see Connection::ensureOpen). Waits for a free one at most
  // the io timeout. Errors: Unavailable (none free in time, or the server cannot be reached).
  Result<Lease> acquire();

 private:
  void giveBack(std::unique_ptr<Connection> c);

  ConnectionSettings settings_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Connection>> idle_;  // returned, most recently used last
  std::size_t created_ = 0;
  std::size_t size_;
};

}  // namespace pigeon::store::mysql
