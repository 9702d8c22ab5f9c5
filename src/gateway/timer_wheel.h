// A hashed timing wheel: O(1) to schedule, reschedule or cancel a timer, and a tick costs only
// the timers due in that slot — heart-beat checks never scan all sessions. Entries are
// intrusive (no allocation per schedule).
//
// Threads: one wheel per event loop; every call on that loop's thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pigeon::gateway {

class TimerWheel;

// Embed one in an object that needs a timer; onTimer() runs when it is due.
class WheelEntry {
 public:
  virtual ~WheelEntry();
  // Runs on the wheel's loop. May reschedule or destroy this entry, never another one.
  virtual void onTimer() = 0;
  bool scheduled() const { return wheel_ != nullptr; }

 private:
  friend class TimerWheel;
  TimerWheel* wheel_ = nullptr;
  WheelEntry* prev_ = nullptr;
  WheelEntry* next_ = nullptr;
  std::size_t slot_ = 0;
  std::uint32_t rounds_ = 0;
};

class TimerWheel {
 public:
  // `tick_ms`: the resolution; `slots`: how many ticks one turn of the wheel spans.
  explicit TimerWheel(std::uint32_t tick_ms = 100, std::size_t slots = 512);
  ~TimerWheel();

  // (Re)schedules `entry` to fire in at least `delay_ms` (rounded up to whole ticks, at least 1).
  void schedule(WheelEntry& entry, std::int64_t delay_ms);
  void cancel(WheelEntry& entry);
  // Advances one tick and fires what is due. The owner calls it every tick_ms.
  void tick();

  std::uint32_t tickMs() const { return tick_ms_; }
  std::size_t size() const { return size_; }

 private:
  void link(WheelEntry& entry, std::size_t slot);
  void unlink(WheelEntry& entry);

  std::uint32_t tick_ms_;
  std::vector<WheelEntry*> slots_;  // heads of doubly-linked lists
  std::size_t current_ = 0;
  std::size_t size_ = 0;
  std::vector<WheelEntry*> due_;  // reused by tick()
};

}  // namespace pigeon::gateway
