// Real Redis, ZooKeeper and MariaDB servers for integration tests, started on loopback by
// scripts/services.sh (the same script scripts/cluster.sh uses), each in a temporary directory on
// a free port. Stopped, and the directory removed, when the object goes.
#pragma once

#include <cstdint>
#include <string>

#include "support/pigeond_process.h"

namespace pigeon::test {

class ServiceProcess {
 public:
  enum class Kind { Redis, ZooKeeper, MariaDB };

  // Starts it and waits until it answers. Throws std::runtime_error with the script's output.
  explicit ServiceProcess(Kind kind);
  ~ServiceProcess();
  ServiceProcess(const ServiceProcess&) = delete;
  ServiceProcess& operator=(const ServiceProcess&) = delete;

  void start();    // again after stop() or kill9(), on the same port and directory (its data kept)
  void stop();     // SIGTERM, and wait until it is gone
  void kill9();    // SIGKILL (a crash), and wait until it is gone
  bool running() const { return running_; }
  std::uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // For --mysql: "host=127.0.0.1 port=P user=root db=pigeon".
  std::string mysqlDsn() const;

 private:
  void run(const std::string& command);
  Kind kind_;
  TempDir dir_;
  std::uint16_t port_ = 0;
  bool running_ = false;
};

// A TCP port on 127.0.0.1 that nothing listens on right now.
std::uint16_t freePort();

}  // namespace pigeon::test
