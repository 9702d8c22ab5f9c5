#include "hook.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace pigeon::console {
namespace {

namespace fs = std::filesystem;

class HookTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "pigeon-hook-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs the loop until `hook` is idle, with a deadline.
  void runUntilIdle(MessageHook& hook) {
    bool idle = false;
    hook.whenIdle([&] {
      idle = true;
      io_.stop();
    });
    boost::asio::steady_timer deadline(io_, std::chrono::seconds(20));
    deadline.async_wait([&](auto ec) {
      if (!ec) io_.stop();
    });
    io_.restart();
    io_.run();
    ASSERT_TRUE(idle) << "the hook did not finish in time";
  }

  static std::string read(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::string dir_;
  boost::asio::io_context io_;
  std::vector<std::string> reports_;
};

TEST_F(HookTest, EachMessageReachesTheProgramAsOneLine) {
  MessageHook::Options options;
  // Each run writes its stdin to its own file, named after the shell's pid.
  options.program = "cat > " + dir_ + "/msg.$$";
  options.max_running = 2;
  MessageHook hook(io_.get_executor(), options, [&](std::string r) { reports_.push_back(r); });
  for (int i = 0; i < 10; ++i) hook.run("{\"n\":" + std::to_string(i) + "}");
  EXPECT_LE(hook.running(), 2u);
  runUntilIdle(hook);
  std::multiset<std::string> seen;
  for (const auto& e : fs::directory_iterator(dir_)) seen.insert(read(e.path()));
  ASSERT_EQ(seen.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(seen.count("{\"n\":" + std::to_string(i) + "}\n"));
  EXPECT_EQ(hook.stats().succeeded, 10u);
  EXPECT_TRUE(reports_.empty());
}

TEST_F(HookTest, ALargeLineIsWrittenWhole) {
  MessageHook::Options options;
  options.program = "wc -c > " + dir_ + "/count";
  MessageHook hook(io_.get_executor(), options, [&](std::string r) { reports_.push_back(r); });
  hook.run(std::string(300'000, 'x'));  // several times a pipe's buffer
  runUntilIdle(hook);
  EXPECT_EQ(std::stoul(read(fs::path(dir_) / "count")), 300'001u);
}

TEST_F(HookTest, FailuresAndOverflowAreReported) {
  MessageHook::Options options;
  options.program = "read line; exit 3";  // waits for its input: the loop is not running yet
  options.max_running = 1;
  options.max_queued = 2;
  MessageHook hook(io_.get_executor(), options, [&](std::string r) { reports_.push_back(r); });
  for (int i = 0; i < 5; ++i) hook.run("{}");  // 1 runs, 2 wait, 2 are dropped
  EXPECT_EQ(hook.stats().dropped, 2u);
  runUntilIdle(hook);
  EXPECT_EQ(hook.stats().failed, 3u);
  ASSERT_FALSE(reports_.empty());
  EXPECT_NE(reports_.front().find("not handed"), std::string::npos);
  bool status_reported = false;
  for (const auto& r : reports_) status_reported |= r.find("status 3") != std::string::npos;
  EXPECT_TRUE(status_reported);
}

TEST_F(HookTest, AProgramThatHangsIsKilled) {
  MessageHook::Options options;
  options.program = "sleep 30";
  options.timeout = std::chrono::milliseconds(200);
  MessageHook hook(io_.get_executor(), options, [&](std::string r) { reports_.push_back(r); });
  hook.run("{}");
  runUntilIdle(hook);
  EXPECT_EQ(hook.stats().failed, 1u);
}

}  // namespace
}  // namespace pigeon::console
