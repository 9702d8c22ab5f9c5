#include "api/http_server.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <functional>

#include "net/listener.h"

namespace pigeon::api {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using tcp_stream = beast::tcp_stream;

struct HttpServer::State : std::enable_shared_from_this<HttpServer::State> {
  State(net::IoPool& p, HttpApi& a, MetricsRegistry& m, HttpServerOptions o)
      : pool(p),
        api(a),
        options(std::move(o)),
        acceptor(std::in_place, p.context(0)),
        connections(m.gauge("pigeon_http_connections", "Open HTTP connections")),
        accepted(m.counter("pigeon_http_connections_accepted_total", "HTTP connections accepted")),
        refused(m.counter("pigeon_http_connections_refused_total",
                          "HTTP connections closed at once: over max_connections")) {}

  net::IoPool& pool;
  HttpApi& api;
  HttpServerOptions options;
  // Reset by ~HttpServer, while its loop is alive: connection coroutines may hold the state
  // until another loop is torn down, after this one.
  std::optional<tcp::acceptor> acceptor;
  std::atomic<bool> stopping{false};
  Gauge& connections;
  Counter& accepted;
  Counter& refused;
  std::string upgrade_path;
  net::UpgradeHandler upgrade_handler;

  asio::awaitable<void> acceptLoop();
  asio::awaitable<void> serve(tcp::socket socket);
  // The requests of one connection. `release` hands the connection over on an upgrade.
  template <class Stream>
  asio::awaitable<void> serveRequests(Stream& stream, std::string remote_ip,
                                      const std::function<net::Connection()>& release);
};

namespace {

http::response<http::string_body> toBeast(const Response& r, unsigned version, bool keep_alive) {
  http::response<http::string_body> res{static_cast<http::status>(r.status), version};
  res.set(http::field::server, "pigeond");
  if (!r.content_type.empty()) res.set(http::field::content_type, r.content_type);
  for (const auto& [name, value] : r.headers) res.set(name, value);
  res.keep_alive(keep_alive);
  res.body() = r.body;
  if (r.head_length) {
    res.content_length(*r.head_length);  // HEAD: the length a GET would have
  } else {
    res.prepare_payload();
  }
  return res;
}

// Maps a request-reading failure to the error reply sent before closing, or nothing when the
// peer simply went away.
std::optional<Response> readErrorResponse(const beast::error_code& ec, std::size_t body_limit) {
  if (ec == http::error::body_limit) {
    return HttpApi::errorResponse(
        413, "too_large",
        "request body is over the limit of " + std::to_string(body_limit) + " bytes");
  }
  if (ec == http::error::header_limit) {
    return HttpApi::errorResponse(431, "headers_too_large", "request headers are too large");
  }
  if (ec == http::error::end_of_stream || ec == asio::error::eof ||
      ec == asio::error::connection_reset || ec == beast::error::timeout ||
      ec == asio::error::operation_aborted || ec == http::error::partial_message) {
    return std::nullopt;
  }
  if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
    return HttpApi::errorResponse(400, "bad_request", "malformed HTTP request: " + ec.message());
  }
  return std::nullopt;
}

std::string_view pathOf(std::string_view target) {
  return target.substr(0, target.find('?'));
}

}  // namespace

asio::awaitable<void> HttpServer::State::acceptLoop() {
  auto self = shared_from_this();
  while (!stopping.load()) {
    asio::io_context& loop = pool.next();
    auto [ec, socket] = co_await acceptor->async_accept(loop, asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (stopping.load() || ec == asio::error::operation_aborted) break;
      spdlog::warn("http: accept failed: {}", ec.message());
      // Out of file descriptors and similar: back off briefly instead of spinning.
      asio::steady_timer timer(acceptor->get_executor(), std::chrono::milliseconds(50));
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    accepted.inc();
    if (connections.value() >= std::int64_t(options.max_connections)) {
      refused.inc();
      continue;  // the socket closes as it goes out of scope
    }
    socket.set_option(tcp::no_delay(true));
    auto executor = socket.get_executor();
    asio::co_spawn(executor, serve(std::move(socket)), asio::detached);
  }
}

asio::awaitable<void> HttpServer::State::serve(tcp::socket socket) {
  auto self = shared_from_this();
  connections.add(1);
  struct Done {
    Gauge& g;
    ~Done() { g.add(-1); }
  } done{connections};

  beast::error_code ep_ec;
  const auto endpoint = socket.remote_endpoint(ep_ec);
  std::string remote_ip = ep_ec ? "" : endpoint.address().to_string();
  if (!options.tls) {
    tcp_stream stream(std::move(socket));
    std::function<net::Connection()> release = [&stream] { return net::Connection(stream.release_socket()); };
    co_await serveRequests(stream, std::move(remote_ip), release);
    co_return;
  }
  auto stream = std::make_unique<net::TlsStream>(tcp_stream(std::move(socket)), *options.tls);
  stream->next_layer().expires_after(options.handshake_timeout);
  auto [hec] = co_await stream->async_handshake(asio::ssl::stream_base::server,
                                                asio::as_tuple(asio::use_awaitable));
  if (hec) co_return;  // not a TLS client, or gone: nothing to answer
  std::function<net::Connection()> release = [&stream] {
    stream->next_layer().expires_never();
    return net::Connection(std::move(stream));
  };
  co_await serveRequests(*stream, std::move(remote_ip), release);
}

template <class Stream>
asio::awaitable<void> HttpServer::State::serveRequests(Stream& stream, std::string remote_ip,
                                                       const std::function<net::Connection()>& release) {
  auto& lowest = beast::get_lowest_layer(stream);
  beast::flat_buffer buffer;

  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(options.max_body_bytes);
    parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
    lowest.expires_after(options.idle_timeout);
    auto [ec, n] =
        co_await http::async_read(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
    (void)n;
    if (ec) {
      if (auto reply = readErrorResponse(ec, options.max_body_bytes)) {
        auto res = toBeast(*reply, 11, false);
        lowest.expires_after(std::chrono::seconds(5));
        co_await http::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
        // Lingering close: the client may still be sending the body we refused. Closing with
        // unread data would reset the connection and could destroy our answer before the
        // client reads it, so half-close and discard what comes, for a short while.
        beast::error_code ignored;
        lowest.socket().shutdown(tcp::socket::shutdown_send, ignored);
        lowest.expires_after(std::chrono::seconds(2));
        char sink[4096];
        for (std::size_t drained = 0; drained < (8u << 20);) {
          auto [rec, got] =
              co_await stream.async_read_some(asio::buffer(sink), asio::as_tuple(asio::use_awaitable));
          if (rec) break;
          drained += got;
        }
      }
      break;
    }
    http::request<http::string_body> req = parser.release();
    if (upgrade_handler && pathOf(req.target()) == upgrade_path) {
      net::UpgradeRequest up;
      up.method = std::string(req.method_string());
      up.target = std::string(req.target());
      up.upgrade = std::string(req[http::field::upgrade]);
      up.connection = std::string(req[http::field::connection]);
      up.ws_key = std::string(req[http::field::sec_websocket_key]);
      up.ws_version = std::string(req[http::field::sec_websocket_version]);
      up.ws_protocol = std::string(req[http::field::sec_websocket_protocol]);
      up.authorization = std::string(req[http::field::authorization]);
      up.remote_ip = remote_ip;
      std::string leftover = beast::buffers_to_string(buffer.data());
      upgrade_handler(release(), up, std::move(leftover));
      co_return;
    }
    Request request;
    request.method = std::string(req.method_string());
    request.target = std::string(req.target());
    request.authorization = std::string(req[http::field::authorization]);
    request.body = std::move(req.body());
    request.remote_ip = remote_ip;

    lowest.expires_never();
    Response response = co_await api.handle(std::move(request));
    const bool keep_alive = req.keep_alive() && !stopping.load();
    auto res = toBeast(response, req.version(), keep_alive);
    lowest.expires_after(options.idle_timeout);
    auto [wec, wn] = co_await http::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
    (void)wn;
    if (wec || !keep_alive) break;
  }
  beast::error_code ignored;
  lowest.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

HttpServer::HttpServer(net::IoPool& pool, HttpApi& api, MetricsRegistry& metrics,
                       HttpServerOptions options)
    : state_(std::make_shared<State>(pool, api, metrics, std::move(options))) {}

HttpServer::~HttpServer() {
  stop();
  state_->acceptor.reset();
}

void HttpServer::setUpgradeHandler(std::string path, net::UpgradeHandler handler) {
  state_->upgrade_path = std::move(path);
  state_->upgrade_handler = std::move(handler);
}

Result<void> HttpServer::start() {
  auto& acceptor = *state_->acceptor;
  if (auto ok = net::listenOn(acceptor, state_->options.host, state_->options.port); !ok) return ok;
  bound_port_ = acceptor.local_endpoint().port();
  asio::co_spawn(acceptor.get_executor(), state_->acceptLoop(), asio::detached);
  return {};
}

void HttpServer::stop() {
  if (state_->stopping.exchange(true)) return;
  asio::post(state_->acceptor->get_executor(), [state = state_] {
    beast::error_code ignored;
    if (state->acceptor) state->acceptor->close(ignored);
  });
}

}  // namespace pigeon::api
