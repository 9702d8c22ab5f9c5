// The long-connection gateway: WebSocket connections at /ws carrying STOMP 1.2, and native
// connections (varint + protobuf) from the TCP listener, plain or TLS (see docs/protocol.md).
// It owns the hub of live sessions, one timer wheel per event loop, and the options every
// session shares.
//
// Threads: construct and start() on the main thread before the loops run; acceptWebSocket()
// is called on the loop that owns the socket; everything else is internal.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "base/metrics.h"
#include "core/service.h"
#include "gateway/hub.h"
#include "gateway/timer_wheel.h"
#include "net/io_pool.h"
#include "net/transport.h"
#include "net/upgrade.h"

namespace pigeon::gateway {

struct GatewayOptions {
  std::size_t max_frame_bytes = 64 * 1024;     // a larger frame gets an error and a close
  std::uint32_t heartbeat_ms = 10000;           // the server's side of heart-beat negotiation
  std::uint32_t connect_timeout_ms = 5000;      // to send CONNECT after the upgrade
  std::size_t max_outbound_bytes = 1 << 20;     // a session's queue; over it: closed
  std::size_t max_unacked = 1000;               // messages in flight for ack:client(-individual)
  double frame_rate = 500;                      // frames per second per connection (0: off)
  double frame_burst = 1000;
  std::uint32_t write_timeout_ms = 30000;       // queued bytes the peer does not take: closed
  std::size_t max_inflight_sends = 128;         // SENDs awaiting their RECEIPT per connection
  std::size_t sync_page = 200;                  // inbox items read per step of a resync
  std::uint32_t cursor_delay_ms = 100;          // acks without a receipt are stored this late at most (0: at once)
  std::uint32_t tick_ms = 100;                  // timer wheel resolution
  std::size_t max_sessions = 50000;             // more connections are refused (WebSocket: 503)
  // TCP keep-alive for connections whose client opted out of heart-beats: a peer that
  // vanished is found after idle + interval × count seconds.
  int keepalive_idle_s = 60, keepalive_interval_s = 10, keepalive_count = 3;
};

using net::UpgradeRequest;

class Session;
class ClusterRelay;

// Per event loop: its timer wheel, its mailbox, and a scratch buffer every session on the loop
// reads into (one handler runs at a time per loop, and sessions consume what they read at once,
// so no session needs a read buffer of its own).
struct LoopState {
  explicit LoopState(boost::asio::io_context& ctx, std::uint32_t tick_ms)
      : context(&ctx), wheel(tick_ms), ticker(ctx) {}

  // The mailbox: work handed to this loop by other threads in bursts — a stored message's
  // deliveries to the sessions here, its sender's answer. Tasks run on the loop in the order
  // handed, all that arrived meanwhile in one handler, and the sessions' writes wait until the
  // end of that handler: one post per loop per burst instead of one per session, and one write
  // per session for everything it got in the burst. Thread-safe.
  void hand(std::function<void()> task);
  // On the loop, from Session::enqueue: true if a burst is running, in which case the session
  // is flushed at its end.
  bool cork(Session& session);

  boost::asio::io_context* context;
  TimerWheel wheel;
  boost::asio::steady_timer ticker;
  std::vector<char> scratch = std::vector<char>(64 * 1024);
  // Sessions holding acknowledgements back for cursor_delay_ms (the ticker stores those due,
  // Gateway::stop() all), and whether the gateway is stopping (then nothing is held back).
  std::unordered_set<Session*> cursor_due;
  bool stopping = false;

 private:
  void drain();

  std::mutex mailbox_mu_;
  std::vector<std::function<void()>> mailbox_;  // guarded by mailbox_mu_
  bool drain_posted_ = false;                   // guarded by mailbox_mu_
  bool corking_ = false;                        // on the loop: a burst is running
  std::vector<std::shared_ptr<Session>> corked_;  // on the loop: to flush after the burst
};

struct GatewayMetrics {
  explicit GatewayMetrics(MetricsRegistry& m);
  Gauge& sessions;            // open sessions (WebSocket and native), logged in or not
  Counter& frames_in;
  Counter& frames_out;
  Counter& writes;
  Counter& errors;            // ERROR frames sent
  Counter& heartbeat_timeouts;
  Counter& connect_timeouts;
  Counter& slow_consumers;
  Gauge& outbound_bytes;      // bytes queued in all sessions
};

class Gateway {
 public:
  Gateway(net::IoPool& loops, core::Service& service, boost::asio::any_io_executor workers,
          MetricsRegistry& metrics, GatewayOptions options);
  ~Gateway();

  // Starts the per-loop tickers. Call once, before the loops run.
  void start();
  // Call while the loops still run: stores the acknowledgements sessions hold back
  // (cursor_delay_ms) and waits until each loop has handed them to the workers, then stops the
  // tickers; open sessions are abandoned with their loops. (Destroying a gateway that was not
  // stopped only stops the tickers.)
  void stop();

  Hub& hub() { return hub_; }
  // Cluster mode: the relay sessions claim and release their routes through. Set before
  // serving; null on a single node.
  void setRelay(ClusterRelay* relay) { relay_ = relay; }
  ClusterRelay* relay() const { return relay_; }

  // Takes over an upgraded connection: validates the handshake, answers 101 (or an HTTP error)
  // and runs a STOMP session on it. `leftover` holds bytes read past the request.
  void acceptWebSocket(net::Connection connection, const UpgradeRequest& request,
                       std::string leftover);
  // Runs a native-protocol session on an accepted connection (closed at once while full or
  // stopping). Call on the connection's loop.
  void acceptNative(net::Connection connection);

  // Shared with the sessions.
  core::Service& service() { return service_; }
  const boost::asio::any_io_executor& workers() const { return workers_; }
  const GatewayOptions& options() const { return options_; }
  GatewayMetrics& metrics() { return metrics_; }
  std::uint64_t nextSessionId() { return ++session_ids_; }

 private:
  void scheduleTick(LoopState& loop);
  // Stores the cursors of the loop's sessions whose acknowledgements are due: one store write,
  // one worker, whatever their number.
  void storeDueCursors(LoopState& loop);
  LoopState* loopOf(const boost::asio::any_io_executor& executor);

  net::IoPool& loops_;
  core::Service& service_;
  boost::asio::any_io_executor workers_;
  GatewayOptions options_;
  GatewayMetrics metrics_;
  Hub hub_;
  ClusterRelay* relay_ = nullptr;
  std::vector<std::unique_ptr<LoopState>> loop_states_;
  std::atomic<std::uint64_t> session_ids_{0};
  std::atomic<bool> stopped_{false};
};

}  // namespace pigeon::gateway
