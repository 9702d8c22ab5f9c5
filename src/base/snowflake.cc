#include "base/snowflake.h"

#include <algorithm>
#include <string>

namespace pigeon {
namespace {
constexpr std::uint64_t kSeqMask = (1u << Snowflake::kSequenceBits) - 1;
constexpr int kTsShift = Snowflake::kWorkerBits + Snowflake::kSequenceBits;
}  // namespace

Result<Snowflake> Snowflake::create(std::uint32_t worker, const Clock& clock) {
  if (worker > kMaxWorker) {
    return fail(Errc::BadRequest,
                "worker id " + std::to_string(worker) + " is over " + std::to_string(kMaxWorker));
  }
  return Snowflake(worker, clock);
}

std::uint64_t Snowflake::next() {
  const std::uint64_t now_ts = std::uint64_t(std::max<std::int64_t>(0, clock_->nowMs() - kEpochMs));
  std::uint64_t last = last_.load(std::memory_order_relaxed);
  for (;;) {
    // The worker bits travel in last_, so a setWorker() between our load and our CAS makes the
    // CAS fail and the loop start over with the new bits.
    const std::uint64_t worker_bits = last & (std::uint64_t(kMaxWorker) << kSequenceBits);
    const std::uint64_t last_ts = last >> kTsShift;
    std::uint64_t next;
    if (now_ts > last_ts) {
      next = (now_ts << kTsShift) | worker_bits;
    } else if ((last & kSeqMask) < kSeqMask) {
      next = last + 1;
    } else {  // sequence exhausted in this millisecond: borrow the next one
      next = ((last_ts + 1) << kTsShift) | worker_bits;
    }
    if (last_.compare_exchange_weak(last, next, std::memory_order_relaxed)) return next;
  }
}

Result<void> Snowflake::setWorker(std::uint32_t worker) {
  if (worker > kMaxWorker) {
    return fail(Errc::BadRequest,
                "worker id " + std::to_string(worker) + " is over " + std::to_string(kMaxWorker));
  }
  worker_.store(worker);
  // Move to the next millisecond with the new worker bits and sequence 0: above every id given
  // so far whatever the two workers' numbers.
  std::uint64_t last = last_.load(std::memory_order_relaxed);
  for (;;) {
    const std::uint64_t next = (((last >> kTsShift) + 1) << kTsShift) | (std::uint64_t(worker) << kSequenceBits);
    if (last_.compare_exchange_weak(last, next, std::memory_order_relaxed)) return {};
  }
}

void Snowflake::observe(std::uint64_t id) {
  // Keep our worker bits: move to the observed id's millisecond and sequence.
  const std::uint64_t mine = (id & ~(std::uint64_t(kMaxWorker) << kSequenceBits)) |
                             (std::uint64_t(worker_.load()) << kSequenceBits);
  std::uint64_t last = last_.load(std::memory_order_relaxed);
  while (mine > last && !last_.compare_exchange_weak(last, mine, std::memory_order_relaxed)) {
  }
}

}  // namespace pigeon
