#include "net/transport.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <boost/asio/write.hpp>

namespace pigeon::net {
namespace asio = boost::asio;
using boost::system::error_code;

namespace {

class PlainTransport final : public Transport {
 public:
  PlainTransport(asio::ip::tcp::socket socket, std::span<char> scratch)
      : socket_(std::move(socket)), scratch_(scratch) {
    error_code ignored;
    socket_.non_blocking(true, ignored);
  }

  asio::any_io_executor executor() override { return socket_.get_executor(); }
  asio::ip::tcp::socket& socket() override { return socket_; }
  bool secure() const override { return false; }

  void read(std::shared_ptr<TransportHandler> handler) override {
    // Wait for readability without a buffer: an idle connection holds none.
    socket_.async_wait(asio::ip::tcp::socket::wait_read,
                       [this, handler = std::move(handler)](const error_code& ec) {
                         if (ec) return handler->onReadDone(ec);
                         // A few rounds at most, so one busy peer cannot hold the loop.
                         for (int round = 0; round < 4; ++round) {
                           error_code rec;
                           const std::size_t n = socket_.read_some(asio::buffer(scratch_.data(), scratch_.size()), rec);
                           if (rec == asio::error::would_block || rec == asio::error::try_again) break;
                           if (rec) return handler->onReadDone(rec);
                           if (n == 0) return handler->onReadDone(asio::error::eof);
                           if (!handler->onInput(scratch_.data(), n) || n < scratch_.size()) break;
                         }
                         handler->onReadDone({});
                       });
  }

  void write(std::shared_ptr<TransportHandler> handler,
             const std::vector<asio::const_buffer>& buffers) override {
    asio::async_write(socket_, buffers,
                      [handler = std::move(handler)](const error_code& ec, std::size_t) {
                        handler->onWritten(ec);
                      });
  }

  void shutdownSend() override {
    error_code ignored;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  }
  void close() override {
    error_code ignored;
    socket_.close(ignored);
  }

 private:
  asio::ip::tcp::socket socket_;
  std::span<char> scratch_;
};

class TlsTransport final : public Transport {
 public:
  explicit TlsTransport(std::unique_ptr<TlsStream> stream) : stream_(std::move(stream)) {}

  asio::any_io_executor executor() override { return stream_->get_executor(); }
  asio::ip::tcp::socket& socket() override { return stream_->next_layer().socket(); }
  bool secure() const override { return true; }

  void read(std::shared_ptr<TransportHandler> handler) override {
    if (in_.empty()) in_.resize(16 * 1024);  // one TLS record
    stream_->async_read_some(asio::buffer(in_),
                             [this, handler = std::move(handler)](const error_code& ec, std::size_t n) {
                               if (n > 0) handler->onInput(in_.data(), n);
                               // A TLS stream reports a peer that closed without close_notify as
                               // stream_truncated: for us that is end of stream.
                               if (ec == asio::ssl::error::stream_truncated) {
                                 return handler->onReadDone(asio::error::eof);
                               }
                               handler->onReadDone(ec);
                             });
  }

  void write(std::shared_ptr<TransportHandler> handler,
             const std::vector<asio::const_buffer>& buffers) override {
    std::size_t total = 0;
    for (const auto& b : buffers) total += b.size();
    out_.clear();
    out_.reserve(total);
    for (const auto& b : buffers) out_.append(static_cast<const char*>(b.data()), b.size());
    asio::async_write(*stream_, asio::buffer(out_),
                      [this, handler = std::move(handler)](const error_code& ec, std::size_t) {
                        // Written: an idle connection keeps no copy (a batch may be 256 KiB).
                        std::string().swap(out_);
                        handler->onWritten(ec);
                      });
  }

  // The TCP half-close without a TLS close_notify: what we sent before it is complete at the
  // application level (a close frame, an ERROR, a Bye), and waiting for the peer's close_notify
  // would tie up the read side we use to drain.
  void shutdownSend() override {
    error_code ignored;
    socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  }
  void close() override {
    error_code ignored;
    socket().close(ignored);
  }

 private:
  std::unique_ptr<TlsStream> stream_;
  std::vector<char> in_;
  std::string out_;
};

}  // namespace

std::unique_ptr<Transport> makePlainTransport(asio::ip::tcp::socket socket, std::span<char> scratch) {
  return std::make_unique<PlainTransport>(std::move(socket), scratch);
}

std::unique_ptr<Transport> makeTlsTransport(std::unique_ptr<TlsStream> stream) {
  return std::make_unique<TlsTransport>(std::move(stream));
}

std::unique_ptr<Transport> makeTransport(Connection connection, std::span<char> scratch) {
  if (auto* tls = std::get_if<std::unique_ptr<TlsStream>>(&connection)) {
    return makeTlsTransport(std::move(*tls));
  }
  return makePlainTransport(std::move(std::get<asio::ip::tcp::socket>(connection)), scratch);
}

asio::any_io_executor executorOf(Connection& connection) {
  if (auto* tls = std::get_if<std::unique_ptr<TlsStream>>(&connection)) return (*tls)->get_executor();
  return std::get<asio::ip::tcp::socket>(connection).get_executor();
}

void tuneSocket(asio::ip::tcp::socket& socket, int idle_s, int interval_s, int count) {
  error_code ec;
  socket.set_option(asio::ip::tcp::no_delay(true), ec);
  socket.set_option(asio::socket_base::keep_alive(true), ec);
  const int fd = socket.native_handle();
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof(int));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval_s, sizeof(int));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(int));
}

Result<std::shared_ptr<asio::ssl::context>> makeServerTlsContext(const std::string& cert_file,
                                                                 const std::string& key_file) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
  error_code ec;
  ctx->use_certificate_chain_file(cert_file, ec);
  if (ec) return fail(Errc::BadRequest, "cannot use TLS certificate file '" + cert_file + "': " + ec.message());
  ctx->use_private_key_file(key_file, asio::ssl::context::pem, ec);
  if (ec) return fail(Errc::BadRequest, "cannot use TLS key file '" + key_file + "': " + ec.message());
  return ctx;
}

}  // namespace pigeon::net
