// A long connection's byte stream, plain TCP or TLS, behind one small interface so the
// gateway's sessions do not care which.
//
// Plain: waits for readability without a buffer and reads into a scratch buffer shared by
// every connection on the loop (an idle connection holds no read buffer). TLS: reads into a
// buffer of its own (OpenSSL keeps per-connection state anyway) and copies each batch of
// writes into one buffer, because a TLS stream encrypts one buffer per record.
//
// Threads: a transport lives on its socket's loop; call it only there. One read and one write
// may be outstanding at a time.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <memory>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "base/error.h"

namespace pigeon::net {

// A TLS connection as the listeners hand it over (the handshake done).
using TlsStream = boost::asio::ssl::stream<boost::beast::tcp_stream>;
// An accepted connection, plain or TLS, bound to its event loop.
using Connection = std::variant<boost::asio::ip::tcp::socket, std::unique_ptr<TlsStream>>;

// Whoever owns a transport gets its events here, on the transport's loop.
class TransportHandler {
 public:
  virtual ~TransportHandler() = default;
  // Bytes from the peer (several calls per read are possible). Return false to take no more
  // in this read.
  virtual bool onInput(char* data, std::size_t size) = 0;
  // The read is over: `ec` empty means what had arrived was handed over (read again to wait for
  // more); otherwise the peer closed (eof) or the connection failed.
  virtual void onReadDone(const boost::system::error_code& ec) = 0;
  // The write is complete (or failed).
  virtual void onWritten(const boost::system::error_code& ec) = 0;
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual boost::asio::any_io_executor executor() = 0;
  // The TCP socket underneath (for options and addresses).
  virtual boost::asio::ip::tcp::socket& socket() = 0;
  virtual bool secure() const = 0;
  // Waits for input, hands it to `handler`, then calls onReadDone. The handler is kept alive
  // until then.
  virtual void read(std::shared_ptr<TransportHandler> handler) = 0;
  // Writes all of `buffers` (which must stay valid until onWritten), then calls onWritten.
  virtual void write(std::shared_ptr<TransportHandler> handler,
                     const std::vector<boost::asio::const_buffer>& buffers) = 0;
  // Half-close: no more bytes from us (the peer reads end-of-stream).
  virtual void shutdownSend() = 0;
  // Closes at once; outstanding operations complete with operation_aborted.
  virtual void close() = 0;
};

// `scratch` belongs to the socket's loop and outlives the transport.
std::unique_ptr<Transport> makePlainTransport(boost::asio::ip::tcp::socket socket,
                                              std::span<char> scratch);
std::unique_ptr<Transport> makeTlsTransport(std::unique_ptr<TlsStream> stream);
// Either of the above, as `connection` is.
std::unique_ptr<Transport> makeTransport(Connection connection, std::span<char> scratch);
// The loop a connection is bound to.
boost::asio::any_io_executor executorOf(Connection& connection);

// Sets TCP_NODELAY, and keep-alive probes after `idle_s` seconds of silence, every
// `interval_s`, `count` times.
void tuneSocket(boost::asio::ip::tcp::socket& socket, int idle_s, int interval_s, int count);

// A server TLS context (TLS 1.2 and later) from PEM files. Errors: BadRequest naming the file
// that could not be used.
Result<std::shared_ptr<boost::asio::ssl::context>> makeServerTlsContext(
    const std::string& cert_file, const std::string& key_file);

}  // namespace pigeon::net
