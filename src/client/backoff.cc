#include "client/backoff.h"

#include <algorithm>

namespace pigeon::client {

Backoff::Backoff(Duration min, Duration max, std::uint64_t seed)
    : min_(std::max(min, Duration(1))), max_(std::max(max, min_)), rng_(seed) {}

Backoff::Duration Backoff::ceiling() const {
  // min * 2^attempt without overflow: stop doubling once past max.
  Duration c = min_;
  for (unsigned i = 0; i < attempt_ && c < max_; ++i) c *= 2;
  return std::min(c, max_);
}

Backoff::Duration Backoff::next() {
  const Duration c = ceiling();
  ++attempt_;
  std::uniform_int_distribution<std::int64_t> pick(0, c.count());
  return Duration(pick(rng_));
}

}  // namespace pigeon::client
