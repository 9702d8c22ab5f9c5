// The embedded storage engine: RocksDB in a local directory. Used by the default single node.
//
// Layout: one column family per record kind, keys big-endian so that iteration order is
// numeric order (see rocks_store.cc for the exact keys). Message appends go through one
// committer thread that merges every append queued meanwhile into a single WriteBatch and
// writes it with one WAL sync (group commit).
//
// Threads: append() callbacks run on the committer thread, one after another, after their
// group is durable. Keep them short (hand work to another thread): while a callback runs, no
// group commits. A callback may call append() (it never blocks), but must not call
// advanceCursor(), which waits for the committer and would deadlock. Errors found before
// queueing (bad input, duplicate already on disk, store shutting down or failed) are answered
// inline on the caller's thread. append() does a RocksDB point read (idempotency) and, the
// first time a conversation or user is seen, one seek; both usually hit memory.
//
// Durability::Sync also applies to the small writes (users, tokens, devices, groups).
// Destruction commits everything queued, then closes; appends made meanwhile get Unavailable.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "base/error.h"
#include "base/metrics.h"
#include "store/store.h"

namespace pigeon::store {

enum class Durability {
  Sync,   // WAL fsync'd before an append or cursor move is acknowledged (default)
  Async,  // WAL written to the OS, not fsync'd: survives a process crash, not a power loss
};

struct RocksOptions {
  std::string path;  // the data directory; created if missing
  Durability durability = Durability::Sync;
  std::size_t max_batch_messages = 4096;  // most appends merged into one group commit
  // Per-conversation and per-user seq counters kept in memory; when more than this many are
  // cached and nothing is queued, the cache is dropped and reloaded lazily from disk.
  std::size_t max_cached_counters = std::size_t{1} << 20;
  // Tests only: called by the committer before each group commit; returning true makes that
  // commit fail as a disk error would.
  std::function<bool()> inject_commit_failure;
};

// Opens (creating if needed) the store at options.path. Errors: Unavailable if RocksDB cannot
// open it (locked by another process, corrupt, no permission). `metrics` may be null;
// otherwise it must outlive the store.
Result<std::unique_ptr<Store>> openRocksStore(const RocksOptions& options,
                                              MetricsRegistry* metrics);

}  // namespace pigeon::store
