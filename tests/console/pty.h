// Runs a program on a pseudo-terminal, as a person at a terminal would: for tests of the
// interactive console client. Types keys, collects what the program draws, and waits (polling
// the pty with a deadline, never sleeping) for text to appear.
//
// Threads: one thread uses a PtyProcess. Errors: a failed fork/exec throws std::runtime_error;
// waits return false / nullopt at their deadline.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pigeon::test {

class PtyProcess {
 public:
  // Starts `argv` on a new pty (`cols` × `rows`) with the environment `env` (replacing the
  // parent's entirely, so the test decides TERM, HOME, passwords…).
  PtyProcess(std::vector<std::string> argv, std::map<std::string, std::string> env,
             unsigned short cols = 200, unsigned short rows = 50);
  ~PtyProcess();  // SIGKILL if still running
  PtyProcess(const PtyProcess&) = delete;
  PtyProcess& operator=(const PtyProcess&) = delete;

  // Types `keys` as they are ("\r" is Enter, "\x04" is Ctrl-D).
  void type(std::string_view keys);
  void typeLine(std::string_view line) { type(std::string(line) + "\r"); }

  // Waits until `text` appears in the output after the point the last successful expect()
  // matched (escape sequences and carriage returns removed), and moves that point past it.
  bool expect(std::string_view text, std::chrono::milliseconds timeout = std::chrono::seconds(15));
  // The same without moving the point: whether `text` is anywhere in the output so far.
  bool seen(std::string_view text);

  // Everything drawn so far, escape sequences removed; and as it came.
  std::string screen();
  const std::string& raw() const { return raw_; }

  // Waits for the program to exit; its exit status (128 + signal when killed), or nullopt.
  std::optional<int> waitExit(std::chrono::milliseconds timeout = std::chrono::seconds(15));
  pid_t pid() const { return pid_; }

 private:
  void pump(std::chrono::milliseconds wait);  // reads what is there, waiting at most `wait`

  pid_t pid_ = -1;
  int master_ = -1;
  std::string raw_;
  std::size_t cursor_ = 0;  // in screen()
  std::optional<int> exit_status_;
};

// The output with ANSI escape sequences (CSI, OSC, two-byte ESC) and '\r' removed.
std::string stripEscapes(std::string_view raw);

}  // namespace pigeon::test
