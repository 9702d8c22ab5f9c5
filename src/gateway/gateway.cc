#include "gateway/gateway.h"

#include <spdlog/spdlog.h>

#include <future>
#include <utility>

#include "gateway/native_session.h"
#include "gateway/session.h"
#include "gateway/stomp_session.h"
#include "net/bearer.h"
#include "gateway/websocket_handshake.h"

namespace pigeon::gateway {
namespace asio = boost::asio;

GatewayMetrics::GatewayMetrics(MetricsRegistry& m)
    : sessions(m.gauge("pigeon_gateway_sessions", "Open long-connection sessions (WebSocket and native)")),
      frames_in(m.counter("pigeon_gateway_frames_in_total", "STOMP and native frames received")),
      frames_out(m.counter("pigeon_gateway_frames_out_total", "STOMP, WebSocket and native frames sent")),
      writes(m.counter("pigeon_gateway_writes_total",
                       "Socket writes of sessions (each carries one or more frames)")),
      errors(m.counter("pigeon_gateway_errors_total", "Sessions closed with an error frame (STOMP ERROR, native Error or Kicked)")),
      heartbeat_timeouts(m.counter("pigeon_gateway_heartbeat_timeouts_total",
                                   "Sessions closed for missing heart-beats")),
      connect_timeouts(m.counter("pigeon_gateway_connect_timeouts_total",
                                 "Sessions closed for not logging in (CONNECT, Login) in time")),
      slow_consumers(m.counter("pigeon_gateway_slow_consumers_total",
                               "Sessions closed because they did not take what was sent")),
      outbound_bytes(m.gauge("pigeon_gateway_outbound_bytes", "Bytes queued for sessions")) {}

void LoopState::hand(std::function<void()> task) {
  {
    std::lock_guard lock(mailbox_mu_);
    mailbox_.push_back(std::move(task));
    if (drain_posted_) return;
    drain_posted_ = true;
  }
  asio::post(*context, [this] { drain(); });
}

bool LoopState::cork(Session& session) {
  if (!corking_) return false;
  if (!session.corked_) {
    session.corked_ = true;
    corked_.push_back(session.shared_from_this());
  }
  return true;
}

void LoopState::drain() {
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard lock(mailbox_mu_);
    tasks.swap(mailbox_);
    drain_posted_ = false;
  }
  corking_ = true;
  for (auto& task : tasks) task();
  corking_ = false;
  for (auto& session : corked_) session->uncork();
  corked_.clear();
}

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

Gateway::~Gateway() {
  if (stopped_.exchange(true)) return;
  // Not stopped: the loops may not run any more, so nothing can be waited for.
  for (auto& loop : loop_states_) {
    asio::post(*loop->context, [l = loop.get()] { l->ticker.cancel(); });
  }
}

void Gateway::start() {
  for (auto& loop : loop_states_) scheduleTick(*loop);
}

void Gateway::stop() {
  if (stopped_.exchange(true)) return;
  // Acknowledgements held back for cursor_delay_ms would be lost with the loops: hand them to
  // the workers now (the caller joins the workers before closing the store).
  std::vector<std::future<void>> flushed;
  for (auto& loop : loop_states_) {
    auto done = std::make_shared<std::promise<void>>();
    flushed.push_back(done->get_future());
    asio::post(*loop->context, [l = loop.get(), done] {
      l->ticker.cancel();
      l->stopping = true;
      for (Session* session : std::exchange(l->cursor_due, {})) session->storeCursorNow();
      done->set_value();
    });
  }
  // Bounded, so that a loop that does not run cannot hang the shutdown.
  for (auto& f : flushed) f.wait_for(std::chrono::seconds(5));
}

void Gateway::scheduleTick(LoopState& loop) {
  loop.ticker.expires_after(std::chrono::milliseconds(loop.wheel.tickMs()));
  loop.ticker.async_wait([this, &loop](const boost::system::error_code& ec) {
    if (ec || stopped_.load()) return;
    loop.wheel.tick();
    storeDueCursors(loop);
    scheduleTick(loop);
  });
}

void Gateway::storeDueCursors(LoopState& loop) {
  if (loop.cursor_due.empty()) return;
  using namespace std::chrono;
  // Everything due before the next tick goes now, so no acknowledgement waits longer than
  // cursor_delay_ms.
  const std::int64_t by =
      duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count() +
      loop.wheel.tickMs();
  std::vector<std::shared_ptr<Session>> sessions;
  std::vector<store::CursorUpdate> updates;
  for (auto it = loop.cursor_due.begin(); it != loop.cursor_due.end();) {
    const std::size_t before = updates.size();
    if (!(*it)->takeDueCursor(by, updates)) {
      ++it;
      continue;
    }
    if (updates.size() > before) sessions.push_back((*it)->shared_from_this());
    it = loop.cursor_due.erase(it);
  }
  if (sessions.empty()) return;
  auto work = [this, &loop, sessions = std::move(sessions), updates = std::move(updates)]() mutable {
    auto moved = service_.storeCursors(updates);
    asio::post(*loop.context, [sessions = std::move(sessions), moved = std::move(moved)] {
      for (std::size_t i = 0; i < sessions.size(); ++i) {
        sessions[i]->onCursorStored(moved ? Result<store::Seq>((*moved)[i])
                                          : std::unexpected(moved.error()));
      }
    });
  };
  asio::post(workers_, std::move(work));
}

LoopState* Gateway::loopOf(const asio::any_io_executor& executor) {
  for (auto& loop : loop_states_) {
    if (&executor.context() == static_cast<asio::execution_context*>(loop->context)) return loop.get();
  }
  return nullptr;
}

void Gateway::acceptWebSocket(net::Connection connection, const UpgradeRequest& request,
                              std::string leftover) {
  auto response = webSocketHandshakeResponse(HandshakeInput{
      request.upgrade, request.connection, request.ws_key, request.ws_version, request.ws_protocol});
  if (response && request.method != "GET") {
    response = fail(Errc::BadRequest, "a WebSocket upgrade is a GET request");
  }
  LoopState* loop = loopOf(net::executorOf(connection));
  const bool full = metrics_.sessions.value() >= std::int64_t(options_.max_sessions);
  auto transport = net::makeTransport(std::move(connection), loop ? std::span<char>(loop->scratch) : std::span<char>());
  if (!response || !loop || stopped_.load() || full) {
    const std::string message = !response ? response.error().message
                                : full    ? "too many connections; try another node or later"
                                          : "server is shutting down";
    auto text = std::make_shared<std::string>(
        httpErrorResponse(response ? 503 : 400, response ? "Service Unavailable" : "Bad Request", message));
    // The transport needs an owner while it writes: a small one that goes with the write.
    struct Refusal : net::TransportHandler {
      std::unique_ptr<net::Transport> transport;
      std::shared_ptr<std::string> text;
      bool onInput(char*, std::size_t) override { return false; }
      void onReadDone(const boost::system::error_code&) override {}
      void onWritten(const boost::system::error_code&) override { transport->shutdownSend(); }
    };
    auto refusal = std::make_shared<Refusal>();
    refusal->transport = std::move(transport);
    refusal->text = std::move(text);
    std::vector<asio::const_buffer> buffers{asio::buffer(*refusal->text)};
    refusal->transport->write(refusal, buffers);
    return;
  }
  std::string bearer(net::bearerToken(request.authorization).value_or(""));
  auto session = std::make_shared<StompSession>(*this, *loop, std::move(transport), std::move(bearer));
  session->start(std::move(*response), std::move(leftover));
}

void Gateway::acceptNative(net::Connection connection) {
  LoopState* loop = loopOf(net::executorOf(connection));
  const bool full = metrics_.sessions.value() >= std::int64_t(options_.max_sessions);
  if (!loop || stopped_.load() || full) {
    // Nothing to say in the protocol before a Login: the client sees the close and retries
    // (through the API, which names a node with room).
    return;
  }
  auto session = std::make_shared<NativeSession>(
      *this, *loop, net::makeTransport(std::move(connection), loop->scratch));
  session->start();
}

}  // namespace pigeon::gateway
