// Runs the real pigeond binary for an integration test: on port 0, with a temporary data
// directory, waiting (by polling, with a deadline) until it has written its ready file.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace pigeon::test {

// A directory under /tmp removed with everything in it when the object goes.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class PigeondProcess {
 public:
  // `data_dir` is kept across restarts; `extra_args` are appended to the defaults
  // (--host 127.0.0.1 --http-port 0 --tcp-port 0 --password-cost min --log-level info), each of
  // which is left out when `extra_args` sets that flag.
  PigeondProcess(std::string data_dir, std::vector<std::string> extra_args = {});
  ~PigeondProcess();  // SIGKILL if still running

  // Starts and waits until it listens. Throws std::runtime_error (with the log) on failure.
  void start();
  void kill9();     // SIGKILL and reap
  int terminate();  // SIGTERM, wait for exit; returns the exit status (or -1)
  bool running() const { return pid_ > 0; }
  std::uint16_t httpPort() const { return http_port_; }
  std::uint16_t tcpPort() const { return tcp_port_; }  // 0: no native listener
  pid_t pid() const { return pid_; }
  std::string log() const;  // everything it printed

 private:
  std::string data_dir_;
  std::vector<std::string> extra_args_;
  std::string ready_file_, log_file_;
  pid_t pid_ = -1;
  std::uint16_t http_port_ = 0;
  std::uint16_t tcp_port_ = 0;
};

// Polls `condition` until it is true or `timeout` passes; returns its last value.
bool waitFor(const std::function<bool()>& condition,
             std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace pigeon::test
