#include "support/services.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <stdexcept>

namespace pigeon::test {
namespace {

const char* kindName(ServiceProcess::Kind kind) {
  switch (kind) {
    case ServiceProcess::Kind::Redis: return "redis";
    case ServiceProcess::Kind::ZooKeeper: return "zookeeper";
    case ServiceProcess::Kind::MariaDB: return "mariadb";
  }
  return "?";
}

}  // namespace

std::uint16_t freePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot find a free port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

ServiceProcess::ServiceProcess(Kind kind) : kind_(kind) {
  // Another process may take the port between freePort() and the server's bind: try again.
  for (int attempt = 0;; ++attempt) {
    port_ = freePort();
    try {
      start();
      return;
    } catch (const std::runtime_error&) {
      if (attempt == 2) throw;
    }
  }
}

ServiceProcess::~ServiceProcess() {
  try {
    if (running_) kill9();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ServiceProcess: %s\n", e.what());
  }
}

void ServiceProcess::run(const std::string& command) {
  const std::string line = std::string(PIGEON_SERVICES_SCRIPT) + " " + command + " 2>&1";
  FILE* out = ::popen(line.c_str(), "r");
  if (!out) throw std::runtime_error("cannot run " + line);
  std::string text;
  std::array<char, 4096> buf;
  while (std::size_t n = std::fread(buf.data(), 1, buf.size(), out)) text.append(buf.data(), n);
  const int status = ::pclose(out);
  if (status != 0) throw std::runtime_error(line + " failed:\n" + text);
}

void ServiceProcess::start() {
  run(std::string("start ") + kindName(kind_) + " " + dir_.path() + " " + std::to_string(port_));
  running_ = true;
}

void ServiceProcess::stop() {
  run("stop " + dir_.path());
  running_ = false;
}

void ServiceProcess::kill9() {
  run("kill " + dir_.path());
  running_ = false;
}

std::string ServiceProcess::mysqlDsn() const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=root db=pigeon";
}

}  // namespace pigeon::test
