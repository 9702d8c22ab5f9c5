#include "net/listener.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

namespace pigeon::net {
namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

struct Listener::State : std::enable_shared_from_this<Listener::State> {
  State(IoPool& p, std::shared_ptr<asio::ssl::context> t, Handler h, std::chrono::milliseconds ht)
      : pool(p), tls(std::move(t)), handler(std::move(h)), handshake_timeout(ht), acceptor(std::in_place, p.context(0)),
        backoff(std::in_place, p.context(0)) {}

  IoPool& pool;
  std::shared_ptr<asio::ssl::context> tls;
  Handler handler;
  std::chrono::milliseconds handshake_timeout;
  // Reset by ~Listener, while its loop is alive (handlers may keep the state longer).
  std::optional<tcp::acceptor> acceptor;
  std::optional<asio::steady_timer> backoff;
  std::atomic<bool> stopping{false};

  void accept() {
    acceptor->async_accept(pool.next(), [self = shared_from_this()](const error_code& ec, tcp::socket socket) {
      if (self->stopping.load() || ec == asio::error::operation_aborted) return;
      if (ec) {
        // Out of file descriptors and similar: back off briefly instead of spinning.
        spdlog::warn("listener: accept failed: {}", ec.message());
        self->backoff->expires_after(std::chrono::milliseconds(50));
        self->backoff->async_wait([self](const error_code&) {
          if (!self->stopping.load()) self->accept();
        });
        return;
      }
      auto executor = socket.get_executor();
      asio::post(executor, [self, socket = std::move(socket)]() mutable { self->serve(std::move(socket)); });
      self->accept();
    });
  }

  void serve(tcp::socket socket) {
    if (!tls) return handler(Connection(std::move(socket)));
    auto stream = std::make_unique<TlsStream>(boost::beast::tcp_stream(std::move(socket)), *tls);
    stream->next_layer().expires_after(handshake_timeout);
    auto* raw = stream.get();
    raw->async_handshake(asio::ssl::stream_base::server,
                         [self = shared_from_this(), stream = std::move(stream)](const error_code& ec) mutable {
                           if (ec) {
                             spdlog::debug("listener: TLS handshake failed: {}", ec.message());
                             return;  // the stream closes as it goes
                           }
                           stream->next_layer().expires_never();
                           self->handler(Connection(std::move(stream)));
                         });
  }
};

Listener::Listener(IoPool& pool, std::shared_ptr<asio::ssl::context> tls, Handler handler,
                   std::chrono::milliseconds handshake_timeout)
    : state_(std::make_shared<State>(pool, std::move(tls), std::move(handler), handshake_timeout)) {}

Listener::~Listener() {
  stop();
  state_->acceptor.reset();
  state_->backoff.reset();
}

Result<void> listenOn(tcp::acceptor& acceptor, const std::string& host, std::uint16_t port) {
  error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) return fail(Errc::BadRequest, "bad listen address '" + host + "'");
  const tcp::endpoint endpoint(address, port);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail(Errc::Unavailable, "cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message());
  return {};
}

Result<void> Listener::start(const std::string& host, std::uint16_t port) {
  if (auto ok = listenOn(*state_->acceptor, host, port); !ok) return ok;
  bound_port_ = state_->acceptor->local_endpoint().port();
  state_->accept();
  return {};
}

void Listener::stop() {
  if (state_->stopping.exchange(true)) return;
  asio::post(state_->pool.context(0), [state = state_] {
    error_code ignored;
    if (state->acceptor) state->acceptor->close(ignored);
    if (state->backoff) state->backoff->cancel();
  });
}

}  // namespace pigeon::net
