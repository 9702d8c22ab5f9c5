// Internal to the MySQL engine: the schema as an ordered list of migrations, and the code that
// brings a database up to date or waits until another node has.
//
// Every node may migrate at start-up; a named lock (GET_LOCK, one per database) makes them
// take turns, and the `schema_version` table (one row per applied migration) makes a second
// run a no-op. DDL commits on its own in MySQL, so a migration interrupted half-way is finished
// by the next run: its statements must be idempotent (CREATE TABLE IF NOT EXISTS, INSERT
// IGNORE, …), and its version row is written last.
//
// Rules for new migrations: append, never edit one that shipped; only add (tables, columns,
// indexes), so that nodes of the previous release keep working during a rolling upgrade — an
// older node accepts a newer schema (it logs a warning); write SQL that MariaDB 10.11 and
// MySQL 8 both accept.
//
// Threads: the functions use the connection they are given, on the caller's thread.
#pragma once

#include <chrono>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "store/mysql/connection.h"

namespace pigeon::store::mysql {

struct Migration {
  unsigned version = 0;  // 1, 2, 3 … in list order
  std::string description;
  std::vector<std::string> statements;  // run in order, each idempotent
};

// The engine's migrations, oldest first.
std::span<const Migration> migrations();
// The schema version this build needs: the last migration's.
unsigned requiredSchemaVersion();

// Applies every migration of `list` newer than the database's version, in order, holding the
// database's schema lock (waiting for it at most `lock_wait`); creates `schema_version` first
// if needed. Returns the version afterwards (higher than list's last if a newer release already
// migrated). Errors: Unavailable (lock not obtained in time, SQL error); Internal if `list` is
// not numbered 1, 2, 3 ….
Result<unsigned> migrateSchema(Connection& c, std::string_view database,
                               std::span<const Migration> list,
                               std::chrono::milliseconds lock_wait);

// The database's schema version: 0 without a schema_version table.
Result<unsigned> schemaVersion(Connection& c);

// Polls (every 100 ms) until the schema version is at least `needed`. Errors: Unavailable when
// `wait` passes first, or on a connection error.
Result<unsigned> waitForSchema(Connection& c, unsigned needed, std::chrono::milliseconds wait);

}  // namespace pigeon::store::mysql
