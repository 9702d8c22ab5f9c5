// 64-bit unique, time-ordered ids: 41 bits of milliseconds since kEpochMs, 10 bits of worker id,
// 12 bits of sequence. Ids from one generator strictly increase, even if the wall clock steps
// back (the generator then keeps counting from its last timestamp).
#pragma once

#include <atomic>
#include <cstdint>

#include "base/clock.h"
#include "base/error.h"

namespace pigeon {

class Snowflake {
 public:
  static constexpr std::int64_t kEpochMs = 1704067200000;  // 2024-01-01T00:00:00Z
  static constexpr int kWorkerBits = 10;
  static constexpr int kSequenceBits = 12;
  static constexpr std::uint32_t kMaxWorker = (1u << kWorkerBits) - 1;

  // Errors: BadRequest if worker > kMaxWorker.
  static Result<Snowflake> create(std::uint32_t worker, const Clock& clock);

  Snowflake(Snowflake&& other) noexcept
      : clock_(other.clock_), worker_(other.worker_), last_(other.last_.load()) {}

  // Thread-safe, lock-free.
  std::uint64_t next();

  // Makes every later id greater than `id` (called at start-up with the largest stored id, so
  // a clock that went back across a restart cannot repeat an id).
  void observe(std::uint64_t id);

  std::uint32_t worker() const { return worker_; }
  static std::int64_t timestampMs(std::uint64_t id) { return std::int64_t(id >> 22) + kEpochMs; }
  static std::uint32_t workerOf(std::uint64_t id) { return (id >> kSequenceBits) & kMaxWorker; }

 private:
  Snowflake(std::uint32_t worker, const Clock& clock) : clock_(&clock), worker_(worker) {}

  const Clock* clock_;
  std::uint32_t worker_;
  std::atomic<std::uint64_t> last_{0};
};

}  // namespace pigeon
