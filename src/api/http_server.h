// The HTTP/1.1 listener: accepts connections on the I/O loops, reads requests with Beast
// (keep-alive, body and header limits, idle timeout) and answers them through HttpApi. With a
// TLS context it serves HTTPS (and WebSocket upgrades over it) instead.
//
// Threads: start()/stop() from the owning thread; each connection runs on one I/O loop.
#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "api/http_api.h"
#include "base/error.h"
#include "net/io_pool.h"
#include "net/upgrade.h"

namespace pigeon::api {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;               // 0: any free port (see boundPort())
  std::size_t max_body_bytes = 64 * 1024;  // larger bodies get 413
  std::size_t max_header_bytes = 16 * 1024;
  std::chrono::seconds idle_timeout{60};
  std::size_t max_connections = 10000;
  std::shared_ptr<boost::asio::ssl::context> tls;  // null: plain HTTP
  std::chrono::seconds handshake_timeout{10};       // to finish the TLS handshake
};

class HttpServer {
 public:
  HttpServer(net::IoPool& pool, HttpApi& api, MetricsRegistry& metrics, HttpServerOptions options);
  // Destroy after the loops have stopped, before the IoPool.
  ~HttpServer();

  // Requests for `path` (e.g. "/ws") are handed, socket and all, to `handler`. Call before
  // start().
  void setUpgradeHandler(std::string path, net::UpgradeHandler handler);

  // Binds and starts accepting. Errors: Unavailable if the address cannot be bound.
  Result<void> start();
  // Stops accepting; open connections close after their current request.
  void stop();
  std::uint16_t boundPort() const { return bound_port_; }

 private:
  struct State;
  std::shared_ptr<State> state_;
  std::uint16_t bound_port_ = 0;
};

}  // namespace pigeon::api
