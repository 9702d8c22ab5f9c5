#include "base/rate_limiter.h"

#include <algorithm>
#include <functional>

namespace pigeon {

RateLimiter::RateLimiter(double rate_per_sec, double burst, const Clock& clock)
    : rate_(rate_per_sec), burst_(std::max(burst, 1.0)), clock_(&clock) {}

double RateLimiter::tokensAt(const Bucket& b, std::int64_t now_ms) const {
  const double elapsed = double(std::max<std::int64_t>(0, now_ms - b.updated_ms)) / 1000.0;
  return std::min(burst_, b.tokens + elapsed * rate_);
}

bool RateLimiter::hasToken(std::string_view key) {
  if (rate_ <= 0) return true;
  Shard& shard = shards_[std::hash<std::string_view>{}(key) % kShards];
  const std::int64_t now = clock_->nowMs();
  std::lock_guard lock(shard.mu);
  auto it = shard.buckets.find(std::string(key));
  if (it == shard.buckets.end()) return true;  // a fresh bucket is full
  return tokensAt(it->second, now) >= 1.0;
}

bool RateLimiter::allow(std::string_view key) {
  if (rate_ <= 0) return true;
  Shard& shard = shards_[std::hash<std::string_view>{}(key) % kShards];
  const std::int64_t now = clock_->nowMs();
  std::lock_guard lock(shard.mu);
  auto it = shard.buckets.find(std::string(key));
  if (it == shard.buckets.end()) {
    if (shard.buckets.size() >= kMaxKeysPerShard) {
      // Buckets that have refilled completely carry no information: drop them.
      std::erase_if(shard.buckets, [&](const auto& kv) { return tokensAt(kv.second, now) >= burst_; });
    }
    it = shard.buckets.emplace(std::string(key), Bucket{burst_, now}).first;
  }
  Bucket& b = it->second;
  b.tokens = tokensAt(b, now);
  b.updated_ms = now;
  if (b.tokens < 1.0) return false;
  b.tokens -= 1.0;
  return true;
}

}  // namespace pigeon
