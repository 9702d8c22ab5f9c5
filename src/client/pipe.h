// A byte pipe to a server: plain TCP, TLS, WebSocket or WebSocket over TLS, chosen by the
// Endpoint's scheme. Reads and writes are coroutines whose failures are values. WebSocket
// messages are the unit of reading and writing (a STOMP frame may span several; several may
// share one); a written batch goes as a text message when it is valid UTF-8, else binary.
//
// Threads: a Pipe belongs to its executor; one read and one write may be in flight at once.
// close() may be called at any time on that executor and ends both with an error.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>
#include <string_view>

#include "base/error.h"
#include "client/client.h"

namespace pigeon::client {

class Pipe {
 public:
  virtual ~Pipe() = default;
  // Resolves, connects, and performs the TLS and WebSocket handshakes.
  virtual asio::awaitable<Result<void>> open() = 0;
  // Appends the next bytes (WebSocket: the next message) to `out`.
  virtual asio::awaitable<Result<void>> read(std::string& out) = 0;
  virtual asio::awaitable<Result<void>> write(std::string_view bytes) = 0;
  // The polite end (WebSocket close, TLS close_notify); bound it with a timer and close().
  virtual asio::awaitable<void> shutdown() = 0;
  // Ends everything now.
  virtual void close() = 0;
};

// `tls` must be set for TLS endpoints and outlive the pipe. `max_message` bounds a WebSocket
// message read.
std::unique_ptr<Pipe> makePipe(asio::any_io_executor executor, Endpoint endpoint,
                               std::shared_ptr<asio::ssl::context> tls, std::size_t max_message);

// An SSL context for clients from the options (CA file or system paths, verification on/off).
Result<std::shared_ptr<asio::ssl::context>> makeTlsContext(const TlsOptions& options);

// True if `bytes` is valid UTF-8.
bool isUtf8(std::string_view bytes);

}  // namespace pigeon::client
