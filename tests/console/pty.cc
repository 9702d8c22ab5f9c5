#include "pty.h"

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>

namespace pigeon::test {

std::string stripEscapes(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  std::size_t i = 0;
  while (i < raw.size()) {
    const char c = raw[i];
    if (c == '\r') {
      ++i;
      continue;
    }
    if (c != '\x1b') {
      out += c;
      ++i;
      continue;
    }
    if (i + 1 >= raw.size()) break;
    const char kind = raw[i + 1];
    if (kind == '[') {  // CSI: parameters, then one final byte in 0x40–0x7E
      std::size_t j = i + 2;
      while (j < raw.size() && !(raw[j] >= 0x40 && raw[j] <= 0x7E)) ++j;
      i = j + 1;
    } else if (kind == ']') {  // OSC: up to BEL or ESC backslash
      std::size_t j = i + 2;
      while (j < raw.size() && raw[j] != '\x07' &&
             !(raw[j] == '\x1b' && j + 1 < raw.size() && raw[j + 1] == '\\')) {
        ++j;
      }
      i = (j < raw.size() && raw[j] == '\x07') ? j + 1 : j + 2;
    } else {
      i += 2;
    }
  }
  return out;
}

PtyProcess::PtyProcess(std::vector<std::string> argv, std::map<std::string, std::string> env,
                       unsigned short cols, unsigned short rows) {
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> argv_c, env_c;
  for (auto& a : argv) argv_c.push_back(a.data());
  argv_c.push_back(nullptr);
  for (auto& e : env_strings) env_c.push_back(e.data());
  env_c.push_back(nullptr);

  winsize size{};
  size.ws_col = cols;
  size.ws_row = rows;
  pid_ = ::forkpty(&master_, nullptr, nullptr, &size);
  if (pid_ < 0) throw std::runtime_error("forkpty failed");
  if (pid_ == 0) {
    ::execve(argv_c[0], argv_c.data(), env_c.data());
    ::_exit(127);
  }
  ::fcntl(master_, F_SETFL, ::fcntl(master_, F_GETFL) | O_NONBLOCK);
  ::fcntl(master_, F_SETFD, FD_CLOEXEC);
}

PtyProcess::~PtyProcess() {
  if (!exit_status_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status;
    ::waitpid(pid_, &status, 0);
  }
  if (master_ >= 0) ::close(master_);
}

void PtyProcess::type(std::string_view keys) {
  while (!keys.empty()) {
    const ssize_t n = ::write(master_, keys.data(), keys.size());
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) {
        pump(std::chrono::milliseconds(10));  // let the program read
        continue;
      }
      return;
    }
    keys.remove_prefix(static_cast<std::size_t>(n));
  }
}

void PtyProcess::pump(std::chrono::milliseconds wait) {
  pollfd p{master_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) return;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(master_, buf, sizeof buf);
    if (n <= 0) return;  // EAGAIN, or EIO once the program has exited
    raw_.append(buf, static_cast<std::size_t>(n));
  }
}

std::string PtyProcess::screen() {
  return stripEscapes(raw_);
}

bool PtyProcess::expect(std::string_view text, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const std::string s = screen();
    if (auto pos = s.find(text, cursor_); pos != std::string::npos) {
      cursor_ = pos + text.size();
      return true;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pump(std::min(left, std::chrono::milliseconds(100)));
  }
}

bool PtyProcess::seen(std::string_view text) {
  pump(std::chrono::milliseconds(0));
  return screen().find(text) != std::string::npos;
}

std::optional<int> PtyProcess::waitExit(std::chrono::milliseconds timeout) {
  if (exit_status_) return exit_status_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    pump(std::chrono::milliseconds(0));
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pump(std::chrono::milliseconds(0));
      exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return exit_status_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    pump(std::chrono::milliseconds(20));  // output, if any, ends the wait early
  }
}

}  // namespace pigeon::test
