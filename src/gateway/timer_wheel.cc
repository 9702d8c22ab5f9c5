#include "gateway/timer_wheel.h"

#include <algorithm>

namespace pigeon::gateway {

WheelEntry::~WheelEntry() {
  if (wheel_) wheel_->cancel(*this);
}

TimerWheel::TimerWheel(std::uint32_t tick_ms, std::size_t slots)
    : tick_ms_(std::max<std::uint32_t>(1, tick_ms)), slots_(std::max<std::size_t>(2, slots), nullptr) {}

TimerWheel::~TimerWheel() {
  for (WheelEntry* head : slots_) {
    for (WheelEntry* e = head; e;) {
      WheelEntry* next = e->next_;
      e->wheel_ = nullptr;
      e->prev_ = e->next_ = nullptr;
      e = next;
    }
  }
}

void TimerWheel::link(WheelEntry& e, std::size_t slot) {
  e.wheel_ = this;
  e.slot_ = slot;
  e.prev_ = nullptr;
  e.next_ = slots_[slot];
  if (e.next_) e.next_->prev_ = &e;
  slots_[slot] = &e;
  ++size_;
}

void TimerWheel::unlink(WheelEntry& e) {
  if (e.prev_) {
    e.prev_->next_ = e.next_;
  } else {
    slots_[e.slot_] = e.next_;
  }
  if (e.next_) e.next_->prev_ = e.prev_;
  e.prev_ = e.next_ = nullptr;
  e.wheel_ = nullptr;
  --size_;
}

void TimerWheel::schedule(WheelEntry& e, std::int64_t delay_ms) {
  if (e.wheel_) e.wheel_->unlink(e);
  const std::uint64_t ticks =
      std::max<std::uint64_t>(1, (std::uint64_t(std::max<std::int64_t>(0, delay_ms)) + tick_ms_ - 1) / tick_ms_);
  const std::size_t n = slots_.size();
  e.rounds_ = std::uint32_t((ticks - 1) / n);
  link(e, (current_ + ticks) % n);
}

void TimerWheel::cancel(WheelEntry& e) {
  if (e.wheel_ == this) unlink(e);
}

void TimerWheel::tick() {
  current_ = (current_ + 1) % slots_.size();
  // Detach the whole slot first: timers rescheduled while firing land in fresh lists.
  due_.clear();
  for (WheelEntry* e = slots_[current_]; e;) {
    WheelEntry* next = e->next_;
    e->prev_ = e->next_ = nullptr;
    e->wheel_ = nullptr;
    --size_;
    due_.push_back(e);
    e = next;
  }
  slots_[current_] = nullptr;
  for (WheelEntry* e : due_) {
    if (e->rounds_ > 0) {
      --e->rounds_;
      link(*e, current_);  // one more turn
    } else {
      e->onTimer();  // may reschedule or destroy e itself
    }
  }
}

}  // namespace pigeon::gateway
