// The hub's part of fan-out: a stored group message handed to every online member's
// connection (Hub::onStored: one OutboundMessage, then a lookup and a post per device).
// Endpoints here only count, so this is the hub's cost per delivery, without the sessions'.
#include <benchmark/benchmark.h>

#include <atomic>
#include <boost/asio/thread_pool.hpp>
#include <filesystem>

#include "base/clock.h"
#include "base/metrics.h"
#include "core/service.h"
#include "gateway/hub.h"
#include "store/rocksdb/rocks_store.h"

namespace {

using namespace pigeon;

struct CountingEndpoint : gateway::Endpoint {
  std::atomic<std::uint64_t> n{0};
  void deliver(std::shared_ptr<const gateway::OutboundMessage>, store::Seq) override {
    n.fetch_add(1, std::memory_order_relaxed);
  }
  void presence(gateway::PresenceEvent) override {}
  void kick() override {}
};

void BM_HubFanout(benchmark::State& state) {
  const auto members = std::size_t(state.range(0));
  std::string tmpl = (std::filesystem::temp_directory_path() / "pigeon-fanout-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) return state.SkipWithError("mkdtemp failed");
  {
    auto st = std::move(*store::openRocksStore(store::RocksOptions{tmpl}, nullptr));
    MetricsRegistry metrics;
    ManualClock clock(1795000000000);
    core::ServiceOptions options;
    auto service = std::move(*core::Service::create(*st, clock, metrics, options));
    boost::asio::thread_pool pool(1);
    gateway::Hub hub(*service, pool.get_executor(), metrics);
    auto endpoint = std::make_shared<CountingEndpoint>();
    std::vector<store::InboxRef> refs;
    for (std::size_t i = 1; i <= members; ++i) {
      hub.attach(i, "u" + std::to_string(i), "d", endpoint);
      refs.push_back(store::InboxRef{store::UserId(i), store::Seq(1)});
    }
    store::Message m;
    m.id = 1;
    m.conversation = "g:2";
    m.body = std::string(100, 'x');
    for (auto _ : state) {
      hub.onStored(m, "alice", refs);
    }
    state.SetItemsProcessed(std::int64_t(state.iterations() * members));
    state.counters["deliveries"] = double(endpoint->n.load());
    pool.join();
  }
  std::filesystem::remove_all(tmpl);
}
BENCHMARK(BM_HubFanout)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

}  // namespace
