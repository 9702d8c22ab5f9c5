#include "gateway/timer_wheel.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>

namespace pigeon::gateway {
namespace {

struct Probe : WheelEntry {
  int fired = 0;
  std::function<void(Probe&)> on;
  void onTimer() override {
    ++fired;
    if (on) on(*this);
  }
};

TEST(TimerWheel, FiresAfterTheDelayRoundedUpToTicks) {
  TimerWheel wheel(100, 8);
  Probe p;
  wheel.schedule(p, 250);  // 3 ticks
  wheel.tick();
  wheel.tick();
  EXPECT_EQ(p.fired, 0);
  wheel.tick();
  EXPECT_EQ(p.fired, 1);
  EXPECT_FALSE(p.scheduled());
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheel, DelaysLongerThanOneTurnTakeSeveralRounds) {
  TimerWheel wheel(10, 4);
  Probe p;
  wheel.schedule(p, 10 * 10);  // 10 ticks on a 4-slot wheel
  for (int i = 0; i < 9; ++i) wheel.tick();
  EXPECT_EQ(p.fired, 0);
  wheel.tick();
  EXPECT_EQ(p.fired, 1);
}

TEST(TimerWheel, RescheduleAndCancelAreConstantTimeAndExact) {
  TimerWheel wheel(1, 16);
  Probe a, b;
  wheel.schedule(a, 5);
  wheel.schedule(b, 5);
  wheel.schedule(a, 10);  // moved later
  wheel.cancel(b);
  for (int i = 0; i < 9; ++i) wheel.tick();
  EXPECT_EQ(a.fired, 0);
  EXPECT_EQ(b.fired, 0);
  wheel.tick();
  EXPECT_EQ(a.fired, 1);
  EXPECT_EQ(b.fired, 0);
}

TEST(TimerWheel, AnEntryMayRescheduleOrDestroyItselfWhileFiring) {
  TimerWheel wheel(1, 4);
  Probe periodic;
  periodic.on = [&](Probe& self) { wheel.schedule(self, 4); };  // exactly one turn
  wheel.schedule(periodic, 4);
  auto doomed = std::make_unique<Probe>();
  doomed->on = [&](Probe&) { doomed.reset(); };
  wheel.schedule(*doomed, 4);
  for (int i = 0; i < 12; ++i) wheel.tick();
  EXPECT_EQ(periodic.fired, 3);
  EXPECT_EQ(doomed, nullptr);
  EXPECT_EQ(wheel.size(), 1u);
}

TEST(TimerWheel, DestroyedEntriesUnlinkThemselves) {
  TimerWheel wheel(1, 4);
  {
    Probe p;
    wheel.schedule(p, 2);
    EXPECT_EQ(wheel.size(), 1u);
  }
  EXPECT_EQ(wheel.size(), 0u);
  wheel.tick();
  wheel.tick();
}

}  // namespace
}  // namespace pigeon::gateway
