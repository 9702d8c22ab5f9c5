#include "hook.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cstring>

extern char** environ;

namespace pigeon::console {
namespace asio = boost::asio;

namespace {
constexpr std::size_t kFailuresReported = 3;
}

struct MessageHook::Child {
  pid_t pid = -1;
  std::string line;
  asio::posix::stream_descriptor stdin_pipe;
  asio::steady_timer deadline;
  Child(asio::any_io_executor ex) : stdin_pipe(ex), deadline(ex) {}
};

MessageHook::MessageHook(asio::any_io_executor executor, Options options,
                         std::function<void(std::string)> report)
    : executor_(executor),
      options_(std::move(options)),
      report_(std::move(report)),
      sigchld_(executor, SIGCHLD),
      alive_(std::make_shared<bool>(true)) {
  if (options_.max_running == 0) options_.max_running = 1;
  waitChild();
}

MessageHook::~MessageHook() {
  *alive_ = false;
  boost::system::error_code ec;
  sigchld_.cancel(ec);
  for (auto& [pid, child] : children_) {
    child->deadline.cancel();
    child->stdin_pipe.close(ec);
  }
}

void MessageHook::run(std::string json_line) {
  if (children_.size() < options_.max_running) return spawn(std::move(json_line));
  if (queue_.size() >= options_.max_queued) {
    ++stats_.dropped;
    if (stats_.dropped == 1 || stats_.dropped % 100 == 0) {
      report_("on-message: " + std::to_string(stats_.dropped) +
              " message(s) not handed to the program: too many waiting");
    }
    return;
  }
  queue_.push_back(std::move(json_line));
}

void MessageHook::whenIdle(std::function<void()> done) {
  idle_waiters_.push_back(std::move(done));
  checkIdle();
}

void MessageHook::checkIdle() {
  if (!children_.empty() || !queue_.empty()) return;
  auto waiters = std::move(idle_waiters_);
  idle_waiters_.clear();
  for (auto& w : waiters) w();
}

void MessageHook::startNext() {
  while (children_.size() < options_.max_running && !queue_.empty()) {
    std::string line = std::move(queue_.front());
    queue_.pop_front();
    spawn(std::move(line));
  }
  checkIdle();
}

void MessageHook::spawn(std::string line) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    ++stats_.failed;
    report_(std::string("on-message: cannot make a pipe: ") + std::strerror(errno));
    return;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[0], STDIN_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGCHLD, SIGWINCH, SIGHUP, SIGQUIT}) {
    sigaddset(&defaults, sig);
  }
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  const char* argv[] = {"sh", "-c", options_.program.c_str(), nullptr};
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, "/bin/sh", &actions, &attr, const_cast<char**>(argv), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(fds[0]);
  if (rc != 0) {
    ::close(fds[1]);
    ++stats_.failed;
    report_(std::string("on-message: cannot start /bin/sh: ") + std::strerror(rc));
    return;
  }
  ++stats_.started;
  auto child = std::make_shared<Child>(executor_);
  child->pid = pid;
  child->line = std::move(line);
  child->line += '\n';
  boost::system::error_code ec;
  child->stdin_pipe.assign(fds[1], ec);
  children_[pid] = child;

  // The line is written asynchronously (a pipe holds 64 KiB; a body may be larger), then the
  // pipe is closed so that the program sees the end of its input.
  asio::async_write(child->stdin_pipe, asio::buffer(child->line),
                    [child](const boost::system::error_code&, std::size_t) {
                      boost::system::error_code ignored;
                      child->stdin_pipe.close(ignored);
                    });
  child->deadline.expires_after(options_.timeout);
  child->deadline.async_wait([this, child, alive = alive_](const boost::system::error_code& e) {
    if (e || !*alive) return;
    if (children_.count(child->pid)) {
      report_("on-message: the program ran longer than " +
              std::to_string(options_.timeout.count() / 1000) + " s: killed");
      ::kill(-child->pid, SIGKILL);  // its process group: the shell and what it started
    }
  });
  // A child may have exited before the SIGCHLD wait was armed for it.
  reap();
}

void MessageHook::waitChild() {
  sigchld_.async_wait([this, alive = alive_](const boost::system::error_code& ec, int) {
    if (ec || !*alive) return;
    reap();
    waitChild();
  });
}

void MessageHook::reap() {
  // Only our own children, by pid: other parts of the process may have children of their own.
  std::vector<std::pair<pid_t, int>> done;
  for (const auto& [pid, child] : children_) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) done.emplace_back(pid, status);
  }
  for (auto [pid, status] : done) finished(pid, status);
  if (!done.empty()) startNext();
}

void MessageHook::finished(pid_t pid, int status) {
  auto it = children_.find(pid);
  if (it == children_.end()) return;
  it->second->deadline.cancel();
  children_.erase(it);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    ++stats_.succeeded;
    return;
  }
  ++stats_.failed;
  if (stats_.failed <= kFailuresReported) {
    std::string what = WIFEXITED(status)
                           ? "exited with status " + std::to_string(WEXITSTATUS(status))
                           : "was killed by signal " + std::to_string(WTERMSIG(status));
    report_("on-message: the program " + what +
            (stats_.failed == kFailuresReported ? " (further failures are not shown)" : ""));
  }
}

}  // namespace pigeon::console
