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
      : clock_(other.clock_), worker_(other.worker_.load()), last_(other.last_.load()) {}

  // Thread-safe, lock-free.
  std::uint64_t next();

  // Switches to another worker id (a cluster node that lost its id and got a new one): every
  // later id carries `worker`, and is still greater than every id given before. Thread-safe.
  // Errors: BadRequest if worker > kMaxWorker.
  Result<void> setWorker(std::uint32_t worker);

  // Makes every later id greater than `id` (called at start-up with the largest stored id, so
  // a clock that went back across a restart cannot repeat an id).
  void observe(std::uint64_t id);

  std::uint32_t worker() const { return worker_.load(); }
  static std::int64_t timestampMs(std::uint64_t id) { return std::int64_t(id >> 22) + kEpochMs; }
  static std::uint32_t workerOf(std::uint64_t id) { return (id >> kSequenceBits) & kMaxWorker; }

 private:
  Snowflake(std::uint32_t worker, const Clock& clock)
      : clock_(&clock), worker_(worker), last_(std::uint64_t(worker) << kSequenceBits) {}

  const Clock* clock_;
  std::atomic<std::uint32_t> worker_;
  std::atomic<std::uint64_t> last_;  // the last id given (its worker bits: the current worker)
};

}  // namespace pigeon
