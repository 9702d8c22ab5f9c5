// A TCP listener for long connections: accepts on one address, spreads connections over the
// event loops, and (with a TLS context) completes the TLS handshake before handing them on.
//
// Threads: construct, start() and stop() on the main thread (stop() may also run on any
// thread); the handler runs on the connection's loop.
#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "base/error.h"
#include "net/io_pool.h"
#include "net/transport.h"

namespace pigeon::net {

// Opens `acceptor` on host:port (port 0: any free port) with SO_REUSEADDR and starts listening.
// Errors: BadRequest (not an IP address), Unavailable (cannot bind or listen). Shared by every
// listener of pigeond (this one and the HTTP server).
Result<void> listenOn(boost::asio::ip::tcp::acceptor& acceptor, const std::string& host,
                      std::uint16_t port);

class Listener {
 public:
  using Handler = std::function<void(Connection connection)>;

  // `tls` null: plain TCP. `handshake_timeout`: a client that does not finish the TLS
  // handshake in time is dropped.
  Listener(IoPool& pool, std::shared_ptr<boost::asio::ssl::context> tls, Handler handler,
           std::chrono::milliseconds handshake_timeout = std::chrono::seconds(10));
  ~Listener();

  // Binds and starts accepting (port 0: any free port). Errors: Unavailable (cannot listen),
  // BadRequest (bad address).
  Result<void> start(const std::string& host, std::uint16_t port);
  void stop();
  std::uint16_t boundPort() const { return bound_port_; }

 private:
  struct State;
  std::shared_ptr<State> state_;
  std::uint16_t bound_port_ = 0;
};

}  // namespace pigeon::net
