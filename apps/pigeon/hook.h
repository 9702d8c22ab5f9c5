// `--on-message <program>` (CIM's message callback): runs `/bin/sh -c <program>` for each
// incoming message with the message as one JSON line on its standard input.
//
// Never blocks the loop: the line is written asynchronously through a pipe, children are
// reaped on SIGCHLD. Bounded: at most `max_running` programs at once, at most `max_queued`
// waiting; beyond that a message is dropped (counted, reported). A program running longer than
// `timeout` is killed (with its process group). Children run in their own process group with
// default signal dispositions, so the terminal's Ctrl-C is not theirs; their stdout and stderr
// are the console's.
//
// Threads: construct, call and destroy on the executor's thread. Errors go to `report` (a line
// for the user): a failed spawn, a non-zero exit (the first few), dropped messages.
#pragma once

#include <sys/types.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace pigeon::console {

class MessageHook {
 public:
  struct Options {
    std::string program;  // a shell command line
    std::size_t max_running = 4;
    std::size_t max_queued = 1000;
    std::chrono::milliseconds timeout{30'000};
  };
  struct Stats {
    std::size_t started = 0, succeeded = 0, failed = 0, dropped = 0;
  };

  MessageHook(boost::asio::any_io_executor executor, Options options,
              std::function<void(std::string)> report);
  // Programs still running are left to finish on their own; queued ones are not started.
  ~MessageHook();
  MessageHook(const MessageHook&) = delete;
  MessageHook& operator=(const MessageHook&) = delete;

  // Runs the program with `json_line` (a newline is added) on its stdin, now or once a slot
  // is free.
  void run(std::string json_line);

  // Calls `done` once nothing runs and nothing waits (at once if so already).
  void whenIdle(std::function<void()> done);

  std::size_t running() const { return children_.size(); }
  std::size_t queued() const { return queue_.size(); }
  const Stats& stats() const { return stats_; }

 private:
  struct Child;
  void startNext();
  void spawn(std::string line);
  void reap();
  void waitChild();
  void finished(pid_t pid, int status);
  void checkIdle();

  boost::asio::any_io_executor executor_;
  Options options_;
  std::function<void(std::string)> report_;
  boost::asio::signal_set sigchld_;
  std::deque<std::string> queue_;
  std::map<pid_t, std::shared_ptr<Child>> children_;
  std::vector<std::function<void()>> idle_waiters_;
  Stats stats_;
  std::shared_ptr<bool> alive_;
};

}  // namespace pigeon::console
