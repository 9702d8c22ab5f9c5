// Throughput of durable appends through the RocksDB engine's group commit: `threads` callers
// each keep `inflight` appends outstanding (closed loop), sync=true (the default durability).
#include <benchmark/benchmark.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>

#include "store/rocksdb/rocks_store.h"

namespace {

using namespace pigeon;

void BM_DurableAppend(benchmark::State& state) {
  const int inflight = int(state.range(0));
  const bool sync = state.range(1) != 0;
  std::string dir = (std::filesystem::temp_directory_path() / "pigeon-bench-XXXXXX").string();
  if (!::mkdtemp(dir.data())) state.SkipWithError("mkdtemp");
  store::RocksOptions options{dir};
  options.durability = sync ? store::Durability::Sync : store::Durability::Async;
  MetricsRegistry metrics;
  auto opened = store::openRocksStore(options, &metrics);
  if (!opened) state.SkipWithError(opened.error().message.c_str());
  auto& st = **opened;

  std::mutex mu;
  std::condition_variable cv;
  int outstanding = 0;
  std::uint64_t next_id = 1;
  std::int64_t done = 0;
  auto append = [&] {
    store::NewMessage nm;
    nm.message.id = next_id++;
    nm.message.conversation = "p:1:" + std::to_string(2 + next_id % 100);
    nm.message.sender = 1;
    nm.message.content_type = "text/plain";
    nm.message.body = std::string(100, 'm');
    nm.recipients = {1, 2 + next_id % 100};
    st.append(std::move(nm), [&](Result<store::Appended> r) {
      if (!r) std::abort();
      std::lock_guard lock(mu);
      --outstanding;
      ++done;
      cv.notify_one();
    });
  };
  for (auto _ : state) {
    std::unique_lock lock(mu);
    while (outstanding >= inflight) cv.wait(lock);
    ++outstanding;  // under the lock: callbacks decrement it on the committer thread
    lock.unlock();
    append();
  }
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return outstanding == 0; });
  lock.unlock();
  state.SetItemsProcessed(done);
  state.counters["commits"] = double(metrics.counter("pigeon_store_commits_total", "").value());
  opened->reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_DurableAppend)
    ->ArgNames({"inflight", "sync"})
    ->Args({1, 1})
    ->Args({64, 1})
    ->Args({1024, 1})
    ->Args({1024, 0})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
