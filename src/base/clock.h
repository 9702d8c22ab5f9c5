// Wall-clock time, injectable so that tests can control expiry and ids.
#pragma once

#include <atomic>
#include <cstdint>

namespace pigeon {

// Milliseconds since the Unix epoch. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::int64_t nowMs() const = 0;
};

// The system's real-time clock.
class SystemClock final : public Clock {
 public:
  std::int64_t nowMs() const override;
  static SystemClock& instance();
};

// A clock that only moves when told to; for tests.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(std::int64_t start_ms) : now_(start_ms) {}
  std::int64_t nowMs() const override { return now_.load(std::memory_order_relaxed); }
  void advanceMs(std::int64_t delta) { now_.fetch_add(delta, std::memory_order_relaxed); }
  void setMs(std::int64_t ms) { now_.store(ms, std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> now_;
};

}  // namespace pigeon
