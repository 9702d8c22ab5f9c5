#include "base/rate_limiter.h"

#include <gtest/gtest.h>

namespace pigeon {
namespace {

TEST(RateLimiter, AllowsBurstThenRefusesThenRefills) {
  ManualClock clock(1000);
  RateLimiter limiter(2.0, 3.0, clock);  // 2 per second, burst 3
  EXPECT_TRUE(limiter.allow("a"));
  EXPECT_TRUE(limiter.allow("a"));
  EXPECT_TRUE(limiter.allow("a"));
  EXPECT_FALSE(limiter.allow("a"));
  clock.advanceMs(500);  // one token back
  EXPECT_TRUE(limiter.allow("a"));
  EXPECT_FALSE(limiter.allow("a"));
}

TEST(RateLimiter, KeysAreIndependent) {
  ManualClock clock(0);
  RateLimiter limiter(1.0, 1.0, clock);
  EXPECT_TRUE(limiter.allow("a"));
  EXPECT_FALSE(limiter.allow("a"));
  EXPECT_TRUE(limiter.allow("b"));
}

TEST(RateLimiter, HasTokenLooksWithoutTaking) {
  ManualClock clock(0);
  RateLimiter limiter(1.0, 2.0, clock);
  EXPECT_TRUE(limiter.hasToken("a"));
  EXPECT_TRUE(limiter.hasToken("a"));  // looking takes nothing
  EXPECT_TRUE(limiter.allow("a"));
  EXPECT_TRUE(limiter.allow("a"));
  EXPECT_FALSE(limiter.hasToken("a"));
  clock.advanceMs(1000);
  EXPECT_TRUE(limiter.hasToken("a"));
}

TEST(RateLimiter, ZeroRateDisables) {
  ManualClock clock(0);
  RateLimiter limiter(0, 1, clock);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(limiter.allow("a"));
}

TEST(RateLimiter, ManyKeysStayBounded) {
  ManualClock clock(0);
  RateLimiter limiter(1.0, 1.0, clock);
  for (int i = 0; i < 200000; ++i) {
    ASSERT_TRUE(limiter.allow("k" + std::to_string(i)));
    clock.advanceMs(1);  // buckets older than a second have refilled: evictable
  }
  EXPECT_FALSE(limiter.allow("k199999"));  // the recent key is still tracked
}

}  // namespace
}  // namespace pigeon
