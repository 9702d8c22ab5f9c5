// The cluster's storage engine: MySQL 8 or MariaDB 10.11 (InnoDB), shared by every pigeond node.
// Same contract as store.h; see store/mysql/README.md for the schema, the seq allocation and the
// failure behaviour.
//
// Appends are group-committed: `writers` committer threads, each with its own connection and
// queue, take everything queued (at most max_batch_messages) and write it in one READ COMMITTED
// transaction of a few multi-row statements. A conversation always goes to the same committer,
// so two appends to one conversation made in order on one node get conv_seqs in that order.
// The seq counters are rows locked by that transaction, so several nodes never hand out a seq
// twice or skip one, and no reader sees seq N+1 before N.
//
// Threads: every method is thread-safe. append() never blocks: it queues and returns. Its
// callback runs on a committer thread after COMMIT (or inline for an error found before
// queueing: bad input, store closing). Keep callbacks short; while one runs, that committer
// commits nothing. A callback may call any method (the blocking ones use the pool, not the
// committer's connection), at the price of holding that committer meanwhile. Every other
// method blocks on the database, on a connection from a pool of `pool_size`.
//
// Errors: Unavailable when the database cannot be reached or a statement fails — promptly while
// the server is down (connect, read and write timeouts), never hanging. A lost connection is
// reopened on its next use; the engine needs no restart, since nothing it holds in memory can
// be ahead of the database. A failed group commit fails its appends with Unavailable; a COMMIT
// whose outcome is unknown (connection lost during it) too — a client that retries with the
// same client_msg_id then gets the original if it was stored.
//
// Destruction commits everything queued and runs those callbacks; appends made meanwhile get
// Unavailable.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "base/error.h"
#include "base/metrics.h"
#include "store/store.h"

namespace pigeon::store {

struct MysqlOptions {
  std::string host = "127.0.0.1";  // TCP; "localhost" means the default Unix socket
  unsigned port = 3306;
  std::string user = "root";
  std::string password;
  std::string database = "pigeon";       // must exist; the engine creates its tables in it
  std::size_t pool_size = 8;             // connections for the blocking calls, opened on first use
  std::size_t writers = 2;               // append committers, each with its own connection
  std::size_t max_batch_messages = 512;  // most appends one committer writes in a transaction
  // true: create or upgrade the schema at open (nodes starting at once take turns). false: wait
  // (at most schema_wait) until another node has brought it to the version this build needs.
  bool migrate = true;
  std::chrono::milliseconds schema_wait{30000};  // also the longest wait for the schema lock
  std::chrono::milliseconds connect_timeout{5000};
  // Each read or write on a connection (rounded up to whole seconds); InnoDB lock waits are set
  // to half of it, so that a lock conflict is reported before the connection is given up.
  std::chrono::milliseconds io_timeout{30000};
};

// Parses "host=127.0.0.1 port=3306 user=root password=secret db=pigeon" — pairs in any order,
// separated by spaces, a value in single quotes may contain spaces (\' and \\ escape inside).
// Keys: host, port, user, password, db (or database), pool, writers, batch, migrate
// (true/false/1/0), schema_wait_ms, connect_timeout_ms, io_timeout_ms; missing keys keep
// MysqlOptions' defaults. Errors: BadRequest naming the unknown or repeated key, or the key
// whose value is bad.
Result<MysqlOptions> parseMysqlDsn(std::string_view dsn);

// Connects, migrates the schema (or waits for it, see MysqlOptions::migrate) and starts the
// committers. Errors: BadRequest (an option out of range), Unavailable (cannot connect, the
// schema lock or version did not come in time, a migration failed). `metrics` may be null;
// otherwise it must outlive the store.
Result<std::unique_ptr<Store>> openMysqlStore(const MysqlOptions& options,
                                              MetricsRegistry* metrics);

}  // namespace pigeon::store
