#include "base/snowflake.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>
#include <vector>

namespace pigeon {
namespace {

TEST(Snowflake, RejectsWorkerOverTenBits) {
  ManualClock clock(Snowflake::kEpochMs + 1000);
  auto ids = Snowflake::create(1024, clock);
  ASSERT_FALSE(ids);
  EXPECT_EQ(ids.error().code, Errc::BadRequest);
}

TEST(Snowflake, CarriesWorkerAndTimestamp) {
  ManualClock clock(Snowflake::kEpochMs + 123456);
  auto ids = Snowflake::create(77, clock);
  ASSERT_TRUE(ids);
  const auto id = ids->next();
  EXPECT_EQ(Snowflake::workerOf(id), 77u);
  EXPECT_EQ(Snowflake::timestampMs(id), Snowflake::kEpochMs + 123456);
}

TEST(Snowflake, StrictlyIncreasesPastSequenceExhaustionAndClockStepBack) {
  ManualClock clock(Snowflake::kEpochMs + 5000);
  auto ids = Snowflake::create(3, clock);
  ASSERT_TRUE(ids);
  std::uint64_t last = 0;
  for (int i = 0; i < 10000; ++i) {  // > 4096 ids in one millisecond
    const auto id = ids->next();
    ASSERT_GT(id, last);
    ASSERT_EQ(Snowflake::workerOf(id), 3u);
    last = id;
  }
  clock.advanceMs(-2000);  // the wall clock steps back
  for (int i = 0; i < 100; ++i) {
    const auto id = ids->next();
    ASSERT_GT(id, last);
    last = id;
  }
}

TEST(Snowflake, ObserveMovesPastAStoredId) {
  ManualClock clock(Snowflake::kEpochMs + 1000);
  auto ids = Snowflake::create(5, clock);
  ASSERT_TRUE(ids);
  const std::uint64_t stored = (std::uint64_t(90000) << 22) | (5u << 12) | 17;  // from the "future"
  ids->observe(stored);
  EXPECT_GT(ids->next(), stored);
}

TEST(Snowflake, SetWorkerChangesTheWorkerBitsAndKeepsIncreasing) {
  ManualClock clock(Snowflake::kEpochMs + 5000);
  auto ids = Snowflake::create(900, clock);
  ASSERT_TRUE(ids);
  std::uint64_t last = 0;
  for (int i = 0; i < 10; ++i) last = ids->next();
  EXPECT_EQ(Snowflake::workerOf(last), 900u);
  ASSERT_TRUE(ids->setWorker(3));  // a smaller worker, in the same millisecond
  EXPECT_EQ(ids->worker(), 3u);
  const std::uint64_t after = ids->next();
  EXPECT_GT(after, last);
  EXPECT_EQ(Snowflake::workerOf(after), 3u);
  EXPECT_FALSE(ids->setWorker(Snowflake::kMaxWorker + 1));
  clock.advanceMs(10);
  EXPECT_EQ(Snowflake::workerOf(ids->next()), 3u);
}

TEST(Snowflake, UniqueAcrossThreads) {
  ManualClock clock(Snowflake::kEpochMs + 1);
  auto ids = Snowflake::create(1, clock);
  ASSERT_TRUE(ids);
  constexpr int kThreads = 4, kEach = 20000;
  std::vector<std::vector<std::uint64_t>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) got[t].push_back(ids->next());
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::uint64_t> all;
  for (auto& v : got) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), std::size_t(kThreads * kEach));
}

}  // namespace
}  // namespace pigeon
