// Reconnect backoff: exponential with full jitter. The n-th consecutive failure waits a time
// drawn uniformly from [0, min(max, min * 2^n)] ("full jitter"), so that many clients that lost
// the same server do not come back in lock-step. Pure code; the random source is injectable.
//
// Threads: one owner; not synchronised.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace pigeon::client {

class Backoff {
 public:
  using Duration = std::chrono::milliseconds;

  // `min` > 0 and `max` >= `min` (corrected if not). `seed` seeds the jitter.
  Backoff(Duration min, Duration max, std::uint64_t seed);

  // The wait before the next attempt; counts one more failure.
  Duration next();
  // The upper bound next() would draw below, without drawing.
  Duration ceiling() const;
  // A success: the next failure starts again from `min`.
  void reset() { attempt_ = 0; }
  unsigned attempt() const { return attempt_; }

 private:
  Duration min_, max_;
  unsigned attempt_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace pigeon::client
