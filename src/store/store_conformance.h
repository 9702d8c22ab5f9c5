// The contract of store.h as a GoogleTest suite, run against every engine. An engine's test
// binary links pigeon::store_conformance and instantiates the suite with a StoreEngine that
// knows how to give each test a fresh, empty place for its data and to open the engine on it:
//
//   INSTANTIATE_TEST_SUITE_P(Rocks, StoreConformance, ::testing::Values(StoreEngine{"RocksDB",
//       [] { return makeRocksHarness(); }}), engineName);
//
// Only what every engine must do lives here; what one engine does of its own (fault injection,
// its on-disk layout, its cluster behaviour) stays in that engine's test.
//
// Also the helpers those engine tests share: append-and-wait with a deadline, a gate that holds
// a committer inside a callback, a collector of callbacks.
//
// Threads: the helpers are thread-safe where noted; the fixture is used by the test's thread.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/metrics.h"
#include "store/store.h"

namespace pigeon::store::conformance {

using namespace std::chrono_literals;
inline constexpr auto kDeadline = 30s;  // the longest any test waits for anything

// Engine settings a conformance test varies. Zero: the engine's default.
struct ConformanceOptions {
  std::size_t max_batch_messages = 0;  // most appends one group commit takes
};

// One test's data (a directory, a database) and the way to open the engine on it. Owned by the
// fixture; destroyed (removing the data) after the last store opened on it is gone.
class StoreHarness {
 public:
  virtual ~StoreHarness() = default;
  // Opens the engine over this harness's data. Opening again once the previous store is
  // destroyed sees everything that store acknowledged (a restart).
  virtual Result<std::unique_ptr<Store>> open(const ConformanceOptions& options,
                                              MetricsRegistry* metrics) = 0;
};

struct StoreEngine {
  std::string name;  // a GoogleTest name: letters, digits, underscores
  // A fresh, empty place per test; an error fails the test.
  std::function<Result<std::unique_ptr<StoreHarness>>()> make;
};

// For INSTANTIATE_TEST_SUITE_P: names each instance after its engine.
std::string engineName(const ::testing::TestParamInfo<StoreEngine>& info);

// Appends and waits (at most kDeadline) for the callback; Internal if it never ran.
Result<Appended> appendAndWait(Store& store, NewMessage m);

// Builds messages with increasing ids (from 1000) and fixed metadata. Thread-safe.
class MessageMaker {
 public:
  NewMessage operator()(std::string conversation, UserId sender, std::vector<UserId> recipients,
                        std::string body, std::string client_msg_id = "");

 private:
  std::atomic<MsgId> next_msg_id_{1000};
};

// Holds the committer that commits a conversation's appends inside a callback until released,
// so that the appends to that conversation issued meanwhile are all queued (in flight) at once.
// An engine may commit different conversations on different threads: close the gate with a
// message of the conversation the test then appends to.
class CommitterGate {
 public:
  // Appends `m`, whose callback blocks its committer; returns once it is blocked.
  void close(Store& store, NewMessage m);
  void open() { released_.count_down(); }

 private:
  std::latch entered_{1};
  std::latch released_{1};
};

// Collects append callbacks and lets a test wait for N of them with a deadline. Thread-safe.
class Completions {
 public:
  void add(Result<Appended> r);
  bool waitFor(std::size_t n);
  std::vector<Result<Appended>> take();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Result<Appended>> results_;
};

// The suite's fixture: a fresh harness and an open store per test.
class StoreConformance : public ::testing::TestWithParam<StoreEngine> {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Closes the store (committing what is queued) and opens it again on the same data.
  void reopen();

  Result<Appended> appendAndWait(NewMessage m) {
    return conformance::appendAndWait(*store_, std::move(m));
  }
  NewMessage message(std::string conversation, UserId sender, std::vector<UserId> recipients,
                     std::string body, std::string client_msg_id = "") {
    return make_message_(std::move(conversation), sender, std::move(recipients), std::move(body),
                         std::move(client_msg_id));
  }
  std::uint64_t counterValue(const std::string& name) { return metrics_.counter(name, "").value(); }

  ConformanceOptions options_;
  MetricsRegistry metrics_;
  std::unique_ptr<StoreHarness> harness_;
  std::unique_ptr<Store> store_;
  MessageMaker make_message_;
};

}  // namespace pigeon::store::conformance
