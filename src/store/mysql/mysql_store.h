// The cluster's storage engine: MySQL 8 or MariaDB 10.11 (InnoDB), shared by every pigeond node.
// Its options, and the connection string they are read from.
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

}  // namespace pigeon::store
