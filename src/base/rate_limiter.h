// Token-bucket rate limiting keyed by a string (a client address, a user id). Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/clock.h"

namespace pigeon {

class RateLimiter {
 public:
  // `rate_per_sec` tokens are added per second up to `burst`. A rate of 0 disables limiting.
  RateLimiter(double rate_per_sec, double burst, const Clock& clock);

  // Takes one token from `key`'s bucket; false when it is empty.
  bool allow(std::string_view key);
  // Whether `key`'s bucket has a token, without taking it (for limits that charge only
  // failures: check first, allow() on failure).
  bool hasToken(std::string_view key);

  bool enabled() const { return rate_ > 0; }

 private:
  struct Bucket {
    double tokens;
    std::int64_t updated_ms;
  };

  // The bucket's tokens at `now_ms`, refilled since its last update, capped at the burst.
  double tokensAt(const Bucket& b, std::int64_t now_ms) const;

  static constexpr std::size_t kShards = 16;
  static constexpr std::size_t kMaxKeysPerShard = 4096;
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, Bucket> buckets;
  };

  double rate_;
  double burst_;
  const Clock* clock_;
  Shard shards_[kShards];
};

}  // namespace pigeon
