#include "client/pipe.h"

#include <openssl/ssl.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "base/utf8.h"

namespace pigeon::client {
namespace {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
constexpr auto kAwait = asio::as_tuple(asio::use_awaitable);

std::unexpected<Error> netError(std::string_view what, const boost::system::error_code& ec) {
  return fail(Errc::Unavailable, std::string(what) + ": " + ec.message());
}

asio::awaitable<Result<tcp::resolver::results_type>> resolve(const Endpoint& ep) {
  tcp::resolver resolver(co_await asio::this_coro::executor);
  auto [ec, results] = co_await resolver.async_resolve(ep.host, std::to_string(ep.port), kAwait);
  if (ec) co_return netError("resolve " + ep.host, ec);
  co_return results;
}

// TLS on top of a connected socket: SNI, host name verification when verifying.
template <typename SslStream>
asio::awaitable<Result<void>> tlsHandshake(SslStream& stream, const Endpoint& ep, bool verify) {
  if (!SSL_set_tlsext_host_name(stream.native_handle(), ep.host.c_str())) {
    co_return fail(Errc::Unavailable, "TLS: cannot set the server name");
  }
  if (verify) stream.set_verify_callback(asio::ssl::host_name_verification(ep.host));
  auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::client, kAwait);
  if (ec) co_return netError("TLS handshake with " + ep.host, ec);
  co_return Result<void>{};
}

bool verifies(const std::shared_ptr<asio::ssl::context>& ctx) {
  return SSL_CTX_get_verify_mode(ctx->native_handle()) != SSL_VERIFY_NONE;
}

// Native TCP, plain or TLS.
template <bool kTls>
class RawPipe final : public Pipe {
  using Stream = std::conditional_t<kTls, asio::ssl::stream<tcp::socket>, tcp::socket>;

 public:
  RawPipe(asio::any_io_executor ex, Endpoint ep, std::shared_ptr<asio::ssl::context> tls)
      : ep_(std::move(ep)), tls_(std::move(tls)), stream_(make(ex)) {}

  asio::awaitable<Result<void>> open() override {
    auto results = co_await resolve(ep_);
    if (!results) co_return std::unexpected(results.error());
    auto [ec, endpoint] = co_await asio::async_connect(socket(), *results, kAwait);
    if (ec) co_return netError("connect to " + ep_.host + ":" + std::to_string(ep_.port), ec);
    socket().set_option(tcp::no_delay(true), ec);
    if constexpr (kTls) {
      auto shaken = co_await tlsHandshake(stream_, ep_, verifies(tls_));
      if (!shaken) co_return shaken;
    }
    co_return Result<void>{};
  }

  asio::awaitable<Result<void>> read(std::string& out) override {
    const std::size_t old = out.size();
    out.resize(old + 16 * 1024);
    auto [ec, n] =
        co_await stream_.async_read_some(asio::buffer(out.data() + old, 16 * 1024), kAwait);
    out.resize(old + n);
    if (ec && n == 0) co_return netError("read", ec);
    co_return Result<void>{};
  }

  asio::awaitable<Result<void>> write(std::string_view bytes) override {
    auto [ec, n] = co_await asio::async_write(stream_, asio::buffer(bytes), kAwait);
    if (ec) co_return netError("write", ec);
    co_return Result<void>{};
  }

  asio::awaitable<void> shutdown() override {
    if constexpr (kTls) co_await stream_.async_shutdown(kAwait);
    boost::system::error_code ec;
    socket().shutdown(tcp::socket::shutdown_both, ec);
    socket().close(ec);
  }

  void close() override {
    boost::system::error_code ec;
    socket().close(ec);
  }

 private:
  Stream make(asio::any_io_executor ex) {
    if constexpr (kTls) {
      return Stream(ex, *tls_);
    } else {
      return Stream(ex);
    }
  }
  tcp::socket& socket() {
    if constexpr (kTls) {
      return stream_.next_layer();
    } else {
      return stream_;
    }
  }

  Endpoint ep_;
  std::shared_ptr<asio::ssl::context> tls_;
  Stream stream_;
};

// WebSocket (STOMP subprotocol), plain or over TLS.
template <bool kTls>
class WsPipe final : public Pipe {
  using Next = std::conditional_t<kTls, beast::ssl_stream<beast::tcp_stream>, beast::tcp_stream>;

 public:
  WsPipe(asio::any_io_executor ex, Endpoint ep, std::shared_ptr<asio::ssl::context> tls,
         std::size_t max_message)
      : ep_(std::move(ep)), tls_(std::move(tls)), ws_(make(ex)) {
    ws_.read_message_max(max_message);
    ws_.auto_fragment(false);
    ws_.set_option(websocket::stream_base::decorator([](websocket::request_type& req) {
      req.set(beast::http::field::sec_websocket_protocol, "v12.stomp");
      req.set(beast::http::field::user_agent, "pigeon-client/0.1");
    }));
  }

  asio::awaitable<Result<void>> open() override {
    auto results = co_await resolve(ep_);
    if (!results) co_return std::unexpected(results.error());
    auto [ec, endpoint] = co_await beast::get_lowest_layer(ws_).async_connect(*results, kAwait);
    if (ec) co_return netError("connect to " + ep_.host + ":" + std::to_string(ep_.port), ec);
    beast::get_lowest_layer(ws_).socket().set_option(tcp::no_delay(true), ec);
    if constexpr (kTls) {
      auto shaken = co_await tlsHandshake(ws_.next_layer(), ep_, verifies(tls_));
      if (!shaken) co_return shaken;
    }
    const std::string host = ep_.host.find(':') != std::string::npos
                                 ? "[" + ep_.host + "]:" + std::to_string(ep_.port)
                                 : ep_.host + ":" + std::to_string(ep_.port);
    websocket::response_type response;
    auto [hec] = co_await ws_.async_handshake(response, host, ep_.target, kAwait);
    if (hec) {
      if (response.result_int() != 0 && response.result_int() != 101) {
        co_return fail(response.result_int() == 503 ? Errc::Unavailable : Errc::BadRequest,
                       "WebSocket upgrade refused: HTTP " + std::to_string(response.result_int()));
      }
      co_return netError("WebSocket handshake", hec);
    }
    co_return Result<void>{};
  }

  asio::awaitable<Result<void>> read(std::string& out) override {
    buffer_.clear();
    auto [ec, n] = co_await ws_.async_read(buffer_, kAwait);
    if (ec) {
      if (ec == websocket::error::closed) co_return fail(Errc::Unavailable, "closed by the server");
      co_return netError("read", ec);
    }
    const auto data = buffer_.cdata();
    out.append(static_cast<const char*>(data.data()), data.size());
    co_return Result<void>{};
  }

  asio::awaitable<Result<void>> write(std::string_view bytes) override {
    ws_.binary(!isUtf8(bytes));
    auto [ec, n] = co_await ws_.async_write(asio::buffer(bytes), kAwait);
    if (ec) co_return netError("write", ec);
    co_return Result<void>{};
  }

  asio::awaitable<void> shutdown() override {
    if (ws_.is_open()) co_await ws_.async_close(websocket::close_code::normal, kAwait);
    close();
  }

  void close() override {
    boost::system::error_code ec;
    beast::get_lowest_layer(ws_).socket().close(ec);
  }

 private:
  websocket::stream<Next> make(asio::any_io_executor ex) {
    if constexpr (kTls) {
      return websocket::stream<Next>(ex, *tls_);
    } else {
      return websocket::stream<Next>(ex);
    }
  }

  Endpoint ep_;
  std::shared_ptr<asio::ssl::context> tls_;
  websocket::stream<Next> ws_;
  beast::flat_buffer buffer_;
};

}  // namespace

std::unique_ptr<Pipe> makePipe(asio::any_io_executor executor, Endpoint endpoint,
                               std::shared_ptr<asio::ssl::context> tls, std::size_t max_message) {
  const bool ws = endpoint.scheme == "ws" || endpoint.scheme == "wss";
  if (ws) {
    if (endpoint.tls)
      return std::make_unique<WsPipe<true>>(executor, std::move(endpoint), std::move(tls),
                                            max_message);
    return std::make_unique<WsPipe<false>>(executor, std::move(endpoint), nullptr, max_message);
  }
  if (endpoint.tls)
    return std::make_unique<RawPipe<true>>(executor, std::move(endpoint), std::move(tls));
  return std::make_unique<RawPipe<false>>(executor, std::move(endpoint), nullptr);
}

Result<std::shared_ptr<asio::ssl::context>> makeTlsContext(const TlsOptions& options) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  boost::system::error_code ec;
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                       asio::ssl::context::no_tlsv1_1,
                   ec);
  if (!options.verify_peer) {
    ctx->set_verify_mode(asio::ssl::verify_none, ec);
    return ctx;
  }
  if (options.ca_file.empty()) {
    ctx->set_default_verify_paths(ec);
  } else {
    ctx->load_verify_file(options.ca_file, ec);
  }
  if (ec) return fail(Errc::BadRequest, "TLS CA file '" + options.ca_file + "': " + ec.message());
  ctx->set_verify_mode(asio::ssl::verify_peer, ec);
  return ctx;
}

bool isUtf8(std::string_view s) { return isValidUtf8(s); }

}  // namespace pigeon::client
