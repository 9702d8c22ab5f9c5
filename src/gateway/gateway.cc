#include "gateway/gateway.h"

#include <spdlog/spdlog.h>

#include <boost/asio/write.hpp>

#include "gateway/stomp_session.h"
#include "net/bearer.h"
#include "gateway/websocket_handshake.h"

namespace pigeon::gateway {
namespace asio = boost::asio;

GatewayMetrics::GatewayMetrics(MetricsRegistry& m)
    : sessions(m.gauge("pigeon_gateway_sessions", "Open WebSocket sessions")),
      frames_in(m.counter("pigeon_gateway_frames_in_total", "STOMP frames received")),
      frames_out(m.counter("pigeon_gateway_frames_out_total", "STOMP and WebSocket frames sent")),
      errors(m.counter("pigeon_gateway_errors_total", "Sessions closed with an ERROR frame")),
      heartbeat_timeouts(m.counter("pigeon_gateway_heartbeat_timeouts_total",
                                   "Sessions closed for missing heart-beats")),
      connect_timeouts(m.counter("pigeon_gateway_connect_timeouts_total",
                                 "Sessions closed for not sending CONNECT in time")),
      slow_consumers(m.counter("pigeon_gateway_slow_consumers_total",
                               "Sessions closed because they did not take what was sent")),
      outbound_bytes(m.gauge("pigeon_gateway_outbound_bytes", "Bytes queued for sessions")) {}

Gateway::Gateway(net::IoPool& loops, core::Service& service, asio::any_io_executor workers,
                 MetricsRegistry& metrics, GatewayOptions options)
    : loops_(loops),
      service_(service),
      workers_(workers),
      options_(options),
      metrics_(metrics),
      hub_(service, workers, metrics) {
  for (std::size_t i = 0; i < loops_.size(); ++i) {
    loop_states_.push_back(std::make_unique<LoopState>(loops_.context(i), options_.tick_ms));
  }
}

Gateway::~Gateway() { stop(); }

void Gateway::start() {
  for (auto& loop : loop_states_) scheduleTick(*loop);
}

void Gateway::stop() {
  if (stopped_.exchange(true)) return;
  for (auto& loop : loop_states_) {
    asio::post(*loop->context, [l = loop.get()] { l->ticker.cancel(); });
  }
}

void Gateway::scheduleTick(LoopState& loop) {
  loop.ticker.expires_after(std::chrono::milliseconds(loop.wheel.tickMs()));
  loop.ticker.async_wait([this, &loop](const boost::system::error_code& ec) {
    if (ec || stopped_.load()) return;
    loop.wheel.tick();
    scheduleTick(loop);
  });
}

LoopState* Gateway::loopOf(const asio::any_io_executor& executor) {
  for (auto& loop : loop_states_) {
    if (&executor.context() == static_cast<asio::execution_context*>(loop->context)) return loop.get();
  }
  return nullptr;
}

void Gateway::acceptWebSocket(asio::ip::tcp::socket socket, const UpgradeRequest& request,
                              std::string leftover) {
  auto response = webSocketHandshakeResponse(HandshakeInput{
      request.upgrade, request.connection, request.ws_key, request.ws_version, request.ws_protocol});
  if (response && request.method != "GET") {
    response = fail(Errc::BadRequest, "a WebSocket upgrade is a GET request");
  }
  LoopState* loop = loopOf(socket.get_executor());
  const bool full = metrics_.sessions.value() >= std::int64_t(options_.max_sessions);
  if (!response || !loop || stopped_.load() || full) {
    const std::string message = !response ? response.error().message
                                : full    ? "too many connections; try another node or later"
                                          : "server is shutting down";
    auto text = std::make_shared<std::string>(
        httpErrorResponse(response ? 503 : 400, response ? "Service Unavailable" : "Bad Request", message));
    auto sock = std::make_shared<asio::ip::tcp::socket>(std::move(socket));
    asio::async_write(*sock, asio::buffer(*text), [text, sock](const boost::system::error_code&, std::size_t) {
      boost::system::error_code ignored;
      sock->shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    });
    return;
  }
  std::string bearer(net::bearerToken(request.authorization).value_or(""));
  auto session = std::make_shared<StompSession>(*this, *loop, std::move(socket), std::move(bearer));
  session->start(std::move(*response), std::move(leftover));
}

}  // namespace pigeon::gateway
