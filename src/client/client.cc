// Client: the supervisor coroutine (log in → connect → serve → wait → …) and one Conn per
// long connection. Everything runs on the client's executor; coroutines hold the Impl and the
// Conn by shared_ptr, so destroying the Client only detaches the listener and closes sockets.
#include "client/client.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <random>

#include "client/backoff.h"
#include "client/inbox_order.h"
#include "client/outbox.h"
#include "client/pipe.h"
#include "client/wire.h"

namespace pigeon::client {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
constexpr auto kAwait = asio::as_tuple(asio::use_awaitable);
// While stopping with sends to write, connection attempts are at most this far apart.
constexpr milliseconds kStopRetryMax{1000};
// Inbox-end probes that fail are retried this far apart, doubling up to the maximum.
constexpr milliseconds kProbeRetryMin{100}, kProbeRetryMax{5000};

std::uint64_t randomSeed() {
  std::random_device rd;
  return (std::uint64_t(rd()) << 32) ^ rd() ^
         std::uint64_t(Clock::now().time_since_epoch().count());
}

// Coroutines of the client are ours: an exception escaping one is a bug, let run() see it.
void rethrow(std::exception_ptr e) {
  if (e) std::rethrow_exception(e);
}

std::string millis(milliseconds d) {
  return std::to_string(d.count()) + " ms";
}

// One answer of GET /api/v1/sync?limit=1: the seq of the message returned (if any), has_more,
// last_seq. nullopt if the answer is not that shape.
struct ProbeAnswer {
  std::optional<std::uint64_t> first_seq;
  bool has_more = false;
  std::uint64_t last_seq = 0;
};
std::optional<ProbeAnswer> parseProbe(const boost::json::value& v) {
  const auto* o = v.if_object();
  if (!o) return std::nullopt;
  const auto* messages = o->if_contains("messages");
  const auto* has_more = o->if_contains("has_more");
  const auto* last_seq = o->if_contains("last_seq");
  if (!messages || !messages->is_array() || !has_more || !has_more->is_bool() || !last_seq)
    return std::nullopt;
  boost::system::error_code ec;
  ProbeAnswer a;
  a.has_more = has_more->as_bool();
  a.last_seq = last_seq->to_number<std::uint64_t>(ec);
  if (ec) return std::nullopt;
  if (!messages->as_array().empty()) {
    const auto* first = messages->as_array().front().if_object();
    const auto* seq = first ? first->if_contains("seq") : nullptr;
    if (!seq) return std::nullopt;
    a.first_seq = seq->to_number<std::uint64_t>(ec);
    if (ec) return std::nullopt;
  }
  return a;
}

}  // namespace

// One long connection.
struct Conn {
  Conn(const asio::any_io_executor& ex, std::unique_ptr<Pipe> p, std::unique_ptr<Wire> w)
      : pipe(std::move(p)),
        wire(std::move(w)),
        tick(ex),
        ack_timer(ex),
        watchdog(ex),
        probe_timer(ex) {}

  std::unique_ptr<Pipe> pipe;
  std::unique_ptr<Wire> wire;
  asio::steady_timer tick, ack_timer, watchdog, probe_timer;
  std::string out;  // bytes waiting for the writer
  bool writing = false;
  bool online = false;
  bool ready = false;     // set up: the sync asked for (unless draining), the queued sends written
  bool draining = false;  // opened or set up while stopping: sends and the goodbye, no sync
  bool closed = false;
  bool timed_out = false;  // the connect watchdog fired
  bool bye_sent = false;
  bool goodbye = false;  // the server answered the goodbye
  Reason reason = Reason::None;
  std::string detail;
  Clock::time_point last_rx, last_tx, last_ping;
  milliseconds beat_every{0}, expect_every{0};
  bool ping_each_interval = false;  // native: pings are answered, so ping even while writing
  std::uint64_t first_rx_seq = 0;   // the first seq received on this connection
  std::uint64_t max_rx_seq = 0;     // highest seq received on this connection
  std::uint64_t acked = 0;          // highest seq acknowledged on this connection
  std::size_t unacked = 0;          // taken since the last ack
  bool ack_armed = false;
  // Catching up (Listener::onCaughtUp).
  bool sync_started = false;
  std::uint64_t sync_after = 0;  // the sync started after this seq (once known)
  std::optional<std::uint64_t> inbox_end;
  bool caught_up = false;
  std::uint64_t handed = 0;  // messages handed to the listener on this connection
};

struct Client::Impl : std::enable_shared_from_this<Client::Impl> {
  Impl(Executor ex, ClientOptions o, Listener& l)
      : executor(ex),
        opt(std::move(o)),
        listener(&l),
        api(ex, opt.server, opt.tls, opt.http_timeout),
        order(opt.resume_after_seq, opt.resume_after_seq > 0),
        ids(randomSeed()),
        backoff(opt.backoff_min, opt.backoff_max, randomSeed()),
        wait_timer(ex),
        stop_timer(ex) {}

  Executor executor;
  ClientOptions opt;
  Listener* listener;  // null once the Client is gone
  HttpApi api;
  std::shared_ptr<asio::ssl::context> tls;
  State state = State::Idle;
  std::optional<Session> session;
  InboxOrder order;
  Outbox outbox;
  ClientMsgIds ids;
  Backoff backoff;
  ClientStats stats;
  asio::steady_timer wait_timer;
  asio::steady_timer stop_timer;  // stop()'s deadline
  std::shared_ptr<Conn> conn;
  detail::Done<Result<Session>> start_done;
  std::vector<std::move_only_function<void()>> stop_waiters;
  bool started = false;
  bool stop_requested = false;
  bool stop_expired = false;  // stop_timeout passed
  bool concluding = false;    // stop(): the last step (the HTTP ack) is under way
  bool dead = false;          // the Client was destroyed
  bool need_login = true;
  bool token_fresh = false;  // the token came from a login since the last refusal
  bool registered = false;
  std::size_t server_turn = 0;      // which of server, fallback_servers[…] is in use
  std::size_t untried_servers = 0;  // the first login tries each once before giving up
  std::uint64_t nonce = 0;
  std::uint64_t handed_max = 0;       // the highest seq handed to the listener (0: none yet)
  std::uint64_t acked_confirmed = 0;  // the highest ack a goodbye (or POST /ack) confirmed stored
  bool caught_up_before = false;      // onCaughtUp came once already

  bool hasPassword() const { return !opt.password.empty(); }
  // Nothing more for the supervisor to do: destroyed, stopped, or stop()'s last step started.
  bool over() const { return dead || state == State::Stopped || concluding; }

  // ---- reporting -----------------------------------------------------------------------------

  void setState(State s, Reason reason = Reason::None, std::string detail = {},
                milliseconds retry_in = milliseconds(0), unsigned attempt = 0) {
    state = s;
    if (listener)
      listener->onStateChange(StateChange{s, reason, std::move(detail), retry_in, attempt});
  }
  // The supervisor's progress; once stop() was called it all counts as Stopping.
  void report(State s) {
    if (!stop_requested) setState(s);
  }

  void completeStart(Result<Session> r) {
    if (!start_done) return;
    auto done = std::move(start_done);
    start_done = nullptr;
    done(std::move(r));
  }

  void reportSend(std::string id, Destination to, Result<SendReceipt> receipt) {
    if (listener)
      listener->onSendResult(SendResult{std::move(id), std::move(to), std::move(receipt)});
  }

  // Reports a send that never reached the outbox, after send() returned.
  void refuseLater(OutgoingMessage m, Error e) {
    asio::post(executor, [self = shared_from_this(), m = std::move(m), e = std::move(e)]() mutable {
      self->reportSend(std::move(m.client_msg_id), std::move(m.to), std::unexpected(std::move(e)));
    });
  }

  // The end: every send still waiting fails, the state goes to Stopped, stop() completes.
  void finish(Reason reason, std::string detail) {
    if (state == State::Stopped) return;
    stop_timer.cancel();
    const std::string why = reason != Reason::StoppedByApp ? "not sent: " + detail
                            : stop_expired ? "no answer from the server within stop_timeout (" +
                                                 millis(opt.stop_timeout) + "); the client stopped"
                                           : "not sent: the client stopped";
    for (auto& e : outbox.takeAll()) {
      reportSend(std::move(e.message.client_msg_id), std::move(e.message.to),
                 fail(Errc::Unavailable, why));
    }
    completeStart(
        fail(reason == Reason::Unauthenticated ? Errc::Unauthenticated : Errc::Unavailable,
             detail.empty() ? std::string(reasonName(reason)) : detail));
    setState(State::Stopped, reason, std::move(detail));
    for (auto& w : std::exchange(stop_waiters, {})) w();
  }

  // ---- connection plumbing -------------------------------------------------------------------

  void closeConn(const std::shared_ptr<Conn>& c, Reason reason, std::string detail) {
    if (c->closed) return;
    c->closed = true;
    c->reason = reason;
    c->detail = std::move(detail);
    c->pipe->close();
    c->tick.cancel();
    c->ack_timer.cancel();
    c->watchdog.cancel();
    c->probe_timer.cancel();
  }

  void kickWriter(const std::shared_ptr<Conn>& c) {
    if (c->writing || c->closed || c->out.empty()) return;
    c->writing = true;
    asio::co_spawn(executor, writer(shared_from_this(), c), rethrow);
  }

  static asio::awaitable<void> writer(std::shared_ptr<Impl> self, std::shared_ptr<Conn> c) {
    std::string batch;
    while (!c->closed && !c->out.empty()) {
      batch.clear();
      std::swap(batch, c->out);
      auto r = co_await c->pipe->write(batch);
      if (!r) {
        self->closeConn(c, Reason::ConnectionLost, r.error().message);
        break;
      }
      c->last_tx = Clock::now();
    }
    c->writing = false;
  }

  void flushAck(const std::shared_ptr<Conn>& c) {
    c->unacked = 0;
    if (c->closed) return;
    // Only what this connection delivered may be acknowledged on it (the server checks).
    const std::uint64_t target = std::min(order.last(), c->max_rx_seq);
    if (target <= c->acked) return;
    c->wire->ack(c->out, target);
    c->acked = target;
    ++stats.acks_sent;
    kickWriter(c);
  }

  void armAck(const std::shared_ptr<Conn>& c) {
    if (c->ack_armed || c->closed) return;
    c->ack_armed = true;
    c->ack_timer.expires_after(opt.ack_delay);
    c->ack_timer.async_wait([self = shared_from_this(), c](boost::system::error_code ec) {
      c->ack_armed = false;
      if (!ec && !self->dead) self->flushAck(c);
    });
  }

  // Acknowledges what was handed over and says goodbye; the server answers once every earlier
  // send is answered and every ack stored, then closes.
  void sayGoodbye(const std::shared_ptr<Conn>& c) {
    if (c->bye_sent || c->closed) return;
    flushAck(c);
    c->wire->bye(c->out);
    c->bye_sent = true;
    kickWriter(c);
  }

  // ---- stopping ------------------------------------------------------------------------------

  // stop()'s last step, once no send is left to write (or none can be): the connection (if any)
  // closes; handed-over messages whose ack no goodbye confirmed are acknowledged over HTTP;
  // then Stopped.
  void conclude() {
    if (over()) return;
    concluding = true;
    if (conn) closeConn(conn, Reason::StoppedByApp, {});
    wait_timer.cancel();
    if (!stop_expired && session && handed_max > acked_confirmed) {
      asio::co_spawn(executor, ackOverHttp(shared_from_this(), handed_max), rethrow);
      return;
    }
    finish(Reason::StoppedByApp, {});
  }

  static asio::awaitable<void> ackOverHttp(std::shared_ptr<Impl> self, std::uint64_t seq) {
    boost::json::value body = boost::json::object{{"seq", seq}};
    auto r = co_await self->api.request(std::string("POST"), std::string("/api/v1/ack"),
                                        std::move(body), asio::use_awaitable);
    if (r) self->acked_confirmed = std::max(self->acked_confirmed, seq);
    if (!self->dead) self->finish(Reason::StoppedByApp, {});
  }

  // stop_timeout passed: whatever is left is given up.
  void stopExpired() {
    if (state == State::Stopped) return;
    stop_expired = true;
    if (conn) closeConn(conn, Reason::StoppedByApp, "stop timeout");
    wait_timer.cancel();
    finish(Reason::StoppedByApp, {});
  }

  // ---- catching up ---------------------------------------------------------------------------

  // The sync of `c` started (after `start`, or after the stored cursor): find the inbox end.
  void startCatchUp(const std::shared_ptr<Conn>& c, std::optional<std::uint64_t> start) {
    if (c->sync_started) return;
    c->sync_started = true;
    c->sync_after = start.value_or(0);
    if (!opt.find_inbox_end) return;
    asio::co_spawn(executor, findInboxEnd(shared_from_this(), c, start), rethrow);
  }

  static asio::awaitable<void> findInboxEnd(std::shared_ptr<Impl> self, std::shared_ptr<Conn> c,
                                            std::optional<std::uint64_t> start) {
    InboxEndSearch search(start);
    milliseconds retry = kProbeRetryMin;
    for (;;) {
      if (c->closed || self->over()) co_return;
      if (self->order.known()) search.raiseLower(self->order.last());
      if (search.done()) break;
      const auto after = search.nextAfter();
      std::string target = "/api/v1/sync?limit=1";
      if (after) target += "&after=" + std::to_string(*after);
      ++self->stats.inbox_end_probes;
      auto r = co_await self->api.request(std::string("GET"), std::move(target), nullptr,
                                          asio::use_awaitable);
      if (c->closed || self->over()) co_return;
      const auto answer = r ? parseProbe(*r) : std::nullopt;
      if (!answer) {
        c->probe_timer.expires_after(retry);
        retry = std::min(retry * 2, kProbeRetryMax);
        co_await c->probe_timer.async_wait(kAwait);
        continue;
      }
      search.answer(after, answer->first_seq, answer->has_more, answer->last_seq);
    }
    c->inbox_end = search.end();
    // After the cursor: the sync's first message says where it started (the cursor the probe
    // saw may be later: this connection's own acks move it).
    if (!start) c->sync_after = c->first_rx_seq > 0 ? c->first_rx_seq - 1 : *search.start();
    self->maybeCaughtUp(c);
  }

  void maybeCaughtUp(const std::shared_ptr<Conn>& c) {
    if (c->caught_up || !c->inbox_end || c->closed || c->bye_sent || !listener) return;
    const std::uint64_t have = std::max(c->sync_after, order.known() ? order.last() : 0);
    if (have < *c->inbox_end) return;
    c->caught_up = true;
    const bool first = !std::exchange(caught_up_before, true);
    listener->onCaughtUp(CaughtUp{c->sync_after, *c->inbox_end, c->handed, first});
  }

  void writePendingSends(const std::shared_ptr<Conn>& c) {
    while (auto* e = outbox.nextToWrite()) {
      if (e->retry) ++stats.sends_retried;
      c->wire->send(c->out, e->message);
    }
    kickWriter(c);
  }

  // ---- receiving -----------------------------------------------------------------------------

  void deliver(const std::shared_ptr<Conn>& c, std::vector<Message>& batch) {
    if (batch.empty()) return;
    const std::size_t n = batch.size();
    const std::uint64_t last = batch.back().seq;
    stats.messages_delivered += n;
    if (listener) listener->onMessages(batch);
    batch.clear();
    handed_max = std::max(handed_max, last);
    c->handed += n;
    if (dead) return;
    c->unacked += n;
    if (c->unacked >= opt.ack_batch) {
      flushAck(c);
    } else {
      armAck(c);
    }
    maybeCaughtUp(c);
  }

  // Handles every event the wire has decoded so far.
  void processEvents(const std::shared_ptr<Conn>& c) {
    std::vector<Message> batch;
    WireEvent ev;
    while (!c->closed && !dead && c->wire->next(ev)) {
      if (ev.kind != WireEvent::Kind::Message) deliver(c, batch);  // keep the stream's order
      if (c->closed || dead) break;
      switch (ev.kind) {
        case WireEvent::Kind::Message: {
          // After the goodbye nothing more is acknowledged: leave these for the next session
          // (the stored cursor brings them back) rather than hand over what cannot be acked.
          if (c->bye_sent) break;
          const std::uint64_t seq = ev.message.seq;
          if (c->first_rx_seq == 0) c->first_rx_seq = seq;
          c->max_rx_seq = std::max(c->max_rx_seq, seq);
          switch (order.take(seq)) {
            case InboxOrder::Verdict::Deliver:
              batch.push_back(std::move(ev.message));
              break;
            case InboxOrder::Verdict::Duplicate:
              ++stats.duplicates_dropped;
              break;
            case InboxOrder::Verdict::Gap:
              ++stats.gaps;
              deliver(c, batch);
              closeConn(c, Reason::SequenceGap,
                        "expected seq " + std::to_string(order.last() + 1) + ", got " +
                            std::to_string(seq));
              break;
          }
          break;
        }
        case WireEvent::Kind::SyncStarted:
          if (!ev.from_cursor && !order.startAfter(ev.seq) && listener) {
            listener->onError(Error{Errc::Internal, "the server's inbox restarts after seq " +
                                                        std::to_string(ev.seq) +
                                                        ", past the last one seen"});
          }
          startCatchUp(c, ev.from_cursor ? std::nullopt : std::optional<std::uint64_t>(ev.seq));
          break;
        case WireEvent::Kind::SendOk:
          if (auto m = outbox.complete(ev.ref)) {
            reportSend(std::move(ev.ref), std::move(m->to), std::move(ev.receipt));
          }
          break;
        case WireEvent::Kind::SendRefused:
          if (ev.transient) {
            // The server's trouble (overload, storage): the send stays queued for the next
            // connection.
            closeConn(c, Reason::ServerError, ev.error.message);
            break;
          }
          if (auto m = outbox.complete(ev.ref)) {
            reportSend(std::move(ev.ref), std::move(m->to), std::unexpected(ev.error));
            // STOMP: the ERROR ends the connection; the sends after it are written again.
            if (ev.fatal) {
              closeConn(c, Reason::SendRefused,
                        "the server closed the connection after refusing a send (" +
                            ev.error.message + ")");
            }
            break;
          }
          if (listener) listener->onError(ev.error);
          if (ev.fatal) closeConn(c, Reason::ServerError, std::move(ev.error.message));
          break;
        case WireEvent::Kind::Presence:
          if (listener) listener->onPresence(ev.presence);
          break;
        case WireEvent::Kind::PingRequest:
          c->wire->pong(c->out, ev.nonce);
          kickWriter(c);
          break;
        case WireEvent::Kind::Kicked:
          closeConn(c, Reason::Kicked, std::move(ev.error.message));
          break;
        case WireEvent::Kind::AuthFailed:
          closeConn(c, Reason::Unauthenticated, std::move(ev.error.message));
          break;
        case WireEvent::Kind::Fatal:
          closeConn(c, Reason::ServerError, std::move(ev.error.message));
          break;
        case WireEvent::Kind::Warning:
          if (listener) listener->onError(ev.error);
          break;
        case WireEvent::Kind::Goodbye:
          if (c->bye_sent) {
            c->goodbye = true;
            closeConn(c, Reason::StoppedByApp, {});
          } else {
            closeConn(c, Reason::ConnectionLost, "the server said goodbye");
          }
          break;
        case WireEvent::Kind::Connected:
        case WireEvent::Kind::Pong:
        case WireEvent::Kind::Other:
          break;
      }
    }
    deliver(c, batch);  // taken by order already: hand them over even if the connection closed
  }

  // ---- the coroutines ------------------------------------------------------------------------

  // Opens the pipe and authenticates. On success the wire may hold more decoded frames.
  asio::awaitable<Result<void>> establish(std::shared_ptr<Conn> c, Endpoint ep) {
    c->watchdog.expires_after(opt.connect_timeout);
    c->watchdog.async_wait([c](boost::system::error_code ec) {
      if (ec || c->online) return;
      c->timed_out = true;
      c->pipe->close();
    });
    auto timedOut = [&](Error e) -> Result<void> {
      if (c->timed_out)
        e = Error{Errc::Unavailable, "connect timeout after " + millis(opt.connect_timeout)};
      return std::unexpected(std::move(e));
    };
    auto opened = co_await c->pipe->open();
    if (!opened) co_return timedOut(opened.error());
    if (c->closed) co_return fail(Errc::Unavailable, "closed");
    // The device the token is bound to (login's answer; with a bare token, the one configured).
    Hello hello{session->token, session->device, ep.host, opt.heartbeat, opt.presence};
    std::string out;
    c->wire->hello(out, hello);
    auto written = co_await c->pipe->write(out);
    if (!written) co_return timedOut(written.error());
    std::string buf;
    for (;;) {
      WireEvent ev;
      while (c->wire->next(ev)) {
        switch (ev.kind) {
          case WireEvent::Kind::Connected:
            c->watchdog.cancel();
            c->beat_every = ev.beat_every;
            c->expect_every = ev.expect_every;
            if (session->user_id == 0) session->user_id = ev.user_id;
            if (session->username.empty()) session->username = ev.username;
            co_return Result<void>{};
          case WireEvent::Kind::AuthFailed:
            co_return fail(Errc::Unauthenticated, ev.error.message);
          case WireEvent::Kind::Kicked:
          case WireEvent::Kind::Fatal:
          case WireEvent::Kind::SendRefused:
            co_return fail(ev.error.code, ev.error.message);
          default:
            break;
        }
      }
      buf.clear();
      auto r = co_await c->pipe->read(buf);
      if (!r) co_return timedOut(r.error());
      if (c->closed) co_return fail(Errc::Unavailable, "closed");
      c->wire->feed(buf);
    }
  }

  static asio::awaitable<void> ticker(std::shared_ptr<Impl> self, std::shared_ptr<Conn> c) {
    milliseconds shortest{0};
    for (milliseconds d : {c->beat_every, c->expect_every}) {
      if (d.count() > 0 && (shortest.count() == 0 || d < shortest)) shortest = d;
    }
    if (shortest.count() == 0) co_return;
    const milliseconds period = std::max(milliseconds(5), shortest / 4);
    for (;;) {
      c->tick.expires_after(period);
      co_await c->tick.async_wait(kAwait);
      if (c->closed || self->dead) co_return;
      const auto now = Clock::now();
      if (c->expect_every.count() > 0 && now - c->last_rx > 2 * c->expect_every) {
        self->closeConn(c, Reason::HeartbeatTimeout,
                        "nothing from the server for " +
                            millis(std::chrono::duration_cast<milliseconds>(now - c->last_rx)) +
                            " (heart-beat " + millis(c->expect_every) + ")");
        co_return;
      }
      if (c->beat_every.count() > 0) {
        const auto since =
            c->ping_each_interval ? c->last_ping : std::max(c->last_tx, c->last_ping);
        if (now - since >= c->beat_every) {
          c->wire->ping(c->out, ++self->nonce);
          c->last_ping = now;
          self->kickWriter(c);
        }
      }
    }
  }

  // Reads until the connection closes.
  asio::awaitable<void> serve(std::shared_ptr<Conn> c) {
    std::string buf;
    for (;;) {
      processEvents(c);
      if (c->closed || dead) co_return;
      buf.clear();
      auto r = co_await c->pipe->read(buf);
      if (c->closed) co_return;
      if (!r) {
        closeConn(c, Reason::ConnectionLost, r.error().message);
        co_return;
      }
      c->last_rx = Clock::now();
      c->wire->feed(buf);
    }
  }

  // Moves to the next of `server` and `fallback_servers` (without resolve_server).
  void nextServer() {
    if (opt.resolve_server || opt.fallback_servers.empty()) return;
    server_turn = (server_turn + 1) % (opt.fallback_servers.size() + 1);
    api.setBaseUrl(server_turn == 0 ? opt.server : opt.fallback_servers[server_turn - 1]);
  }

  asio::awaitable<Result<Session>> login() {
    if (opt.register_user && !registered) {
      auto r = co_await api.registerUser(opt.username, opt.password, asio::use_awaitable);
      if (!r && r.error().code != Errc::Conflict) co_return std::unexpected(r.error());
      registered = true;
    }
    co_return co_await api.login(opt.username, opt.password, opt.device, asio::use_awaitable);
  }

  Result<Endpoint> gatewayEndpoint() {
    const bool tcp = opt.transport == Transport::Tcp;
    std::string url = opt.gateway;
    if (url.empty()) url = tcp ? session->gateway_tcp : session->gateway_ws;
    if (url.empty()) {
      return fail(Errc::Unavailable, std::string("the server offers no ") +
                                         (tcp ? "native TCP" : "WebSocket") + " gateway");
    }
    auto ep = parseEndpoint(url);
    if (!ep) return ep;
    const bool fits = tcp ? (ep->scheme == "tcp" || ep->scheme == "tls")
                          : (ep->scheme == "ws" || ep->scheme == "wss");
    if (!fits) return fail(Errc::BadRequest, "gateway '" + url + "' does not fit the transport");
    if (ep->tls && !tls) {
      auto ctx = makeTlsContext(opt.tls);
      if (!ctx) return std::unexpected(ctx.error());
      tls = *ctx;
    }
    return ep;
  }

  // A refused send is no failure of the connection: reconnect at once. While stopping the wait
  // is not reported and is at most kStopRetryMax (stop_timeout bounds it all).
  asio::awaitable<void> waitBackoff(Reason reason, std::string detail) {
    milliseconds delay = reason == Reason::SendRefused ? milliseconds(0) : backoff.next();
    if (stop_requested) {
      delay = std::min(delay, kStopRetryMax);
    } else {
      setState(State::Waiting, reason, std::move(detail), delay, backoff.attempt());
    }
    if (over() || (stop_requested && outbox.empty())) co_return;
    wait_timer.expires_after(delay);
    co_await wait_timer.async_wait(kAwait);  // cancelled by reconnectNow() and stop()
  }

  static asio::awaitable<void> run(std::shared_ptr<Impl> self) { co_await self->loop(); }

  // The supervisor: log in, connect, serve, wait, again — until stop(), a kick or refused
  // credentials. After stop() it goes on only while sends are waiting to be written.
  asio::awaitable<void> loop() {
    for (;;) {
      if (over()) co_return;
      if (stop_requested && outbox.empty()) co_return conclude();
      if (opt.resolve_server) {
        std::string url = opt.resolve_server();
        if (!url.empty() && url != api.baseUrl()) {
          api.setBaseUrl(std::move(url));
          if (hasPassword()) need_login = true;
        }
      }
      if (need_login) {
        if (!hasPassword()) co_return finish(Reason::Unauthenticated, "the token was refused");
        report(State::LoggingIn);
        auto r = co_await login();
        if (over()) co_return;
        if (!r) {
          // The first login decides (wrong password, unreachable server — once every server
          // given was tried); later ones retry unless the credentials themselves are refused.
          if (start_done && r.error().code == Errc::Unavailable && untried_servers > 0) {
            --untried_servers;
            nextServer();
            continue;
          }
          if (start_done || r.error().code == Errc::Unauthenticated ||
              r.error().code == Errc::BadRequest) {
            const Reason why = r.error().code == Errc::Unauthenticated ? Reason::Unauthenticated
                                                                       : Reason::ConnectFailed;
            completeStart(std::unexpected(r.error()));
            co_return finish(why, r.error().message);
          }
          if (r.error().code == Errc::Unavailable) nextServer();  // that node may be gone
          co_await waitBackoff(Reason::ConnectFailed, "login: " + r.error().message);
          continue;
        }
        session = *r;
        ++stats.logins;
        need_login = false;
        token_fresh = true;
        completeStart(*session);
        if (over()) co_return;
      }

      auto ep = gatewayEndpoint();
      if (!ep) {
        if (hasPassword() && opt.gateway.empty()) need_login = true;
        co_await waitBackoff(Reason::ConnectFailed, ep.error().message);
        continue;
      }
      report(State::Connecting);
      auto wire = opt.transport == Transport::Tcp ? makeNativeWire(opt.max_frame_bytes)
                                                  : makeStompWire(opt.max_frame_bytes);
      auto c = std::make_shared<Conn>(
          executor, makePipe(executor, *ep, tls, opt.max_frame_bytes * 2), std::move(wire));
      c->ping_each_interval = opt.transport == Transport::Tcp;
      conn = c;
      auto est = co_await establish(c, *ep);
      if (!est || over()) {
        closeConn(c, Reason::ConnectFailed, est ? "closed" : est.error().message);
        if (conn == c) conn.reset();
      }
      if (over()) co_return;
      if (!est) {
        if (est.error().code == Errc::Unauthenticated) {
          if (!hasPassword()) co_return finish(Reason::Unauthenticated, est.error().message);
          need_login = true;
          if (!token_fresh) continue;  // an old token expired or was revoked: log in at once
          token_fresh = false;
        } else if (hasPassword() && opt.gateway.empty() && !c->online) {
          need_login = true;  // the server may have moved: ask again where to connect
        }
        co_await waitBackoff(est.error().code == Errc::Unauthenticated ? Reason::Unauthenticated
                                                                       : Reason::ConnectFailed,
                             est.error().message);
        continue;
      }

      // Online: start the sync, then (re)send everything unanswered, in order. While stopping:
      // no sync, only the sends and the goodbye.
      c->online = true;
      c->last_rx = c->last_tx = c->last_ping = Clock::now();
      ++stats.connects;
      backoff.reset();
      report(State::Online);  // the listener may call stop() (or dropConnection()) here
      if (over()) co_return;
      c->draining = stop_requested;
      if (!c->draining) c->wire->subscribe(c->out, order.known() ? order.last() : 0, opt.presence);
      outbox.rewind();
      writePendingSends(c);
      c->ready = true;
      if (c->draining) sayGoodbye(c);
      asio::co_spawn(executor, ticker(shared_from_this(), c), rethrow);
      co_await serve(c);
      if (conn == c) conn.reset();
      if (dead) co_return;
      if (c->goodbye) acked_confirmed = std::max(acked_confirmed, c->acked);
      if (over()) co_return;
      switch (c->reason) {
        case Reason::Kicked:
          if (listener) listener->onKicked(c->detail);
          co_return finish(Reason::Kicked, c->detail);
        case Reason::Unauthenticated:
          if (!hasPassword()) co_return finish(Reason::Unauthenticated, c->detail);
          need_login = true;
          break;
        default:
          break;
      }
      // Stopping with sends left (a STOMP refusal closed the connection, or it was lost): the
      // loop's top concludes, or connects again for them.
      if (stop_requested && outbox.empty()) continue;
      co_await waitBackoff(c->reason, c->detail);
    }
  }
};

// ---- Client ----------------------------------------------------------------------------------

Client::Client(Executor executor, ClientOptions options, Listener& listener)
    : executor_(executor), impl_(std::make_shared<Impl>(executor, std::move(options), listener)) {}

Client::~Client() {
  Impl& i = *impl_;
  i.dead = true;
  i.listener = nullptr;
  i.start_done = nullptr;
  i.stop_waiters.clear();
  if (i.conn) i.closeConn(i.conn, Reason::StoppedByApp, {});
  i.wait_timer.cancel();
  i.stop_timer.cancel();
}

void Client::startImpl(detail::Done<Result<Session>> done) {
  Impl& i = *impl_;
  if (i.started) return done(fail(Errc::BadRequest, "start() was called already"));
  i.started = true;
  i.untried_servers = i.opt.resolve_server ? 0 : i.opt.fallback_servers.size();
  if (!i.opt.token.empty()) {
    Session s;
    s.token = i.opt.token;
    s.username = i.opt.username;
    s.device = i.opt.device;
    i.session = s;
    i.api.setToken(s.token);
    i.api.setUsername(s.username);
    i.need_login = false;
    done(std::move(s));
  } else if (!i.hasPassword()) {
    done(fail(Errc::BadRequest, "neither a password nor a token"));
    i.finish(Reason::Unauthenticated, "neither a password nor a token");
    return;
  } else {
    i.start_done = std::move(done);
  }
  asio::co_spawn(executor_, Impl::run(impl_), rethrow);
}

std::string Client::send(OutgoingMessage message) {
  Impl& i = *impl_;
  if (message.client_msg_id.empty()) message.client_msg_id = i.ids.next();
  if (message.content_type.empty()) message.content_type = "text/plain";
  std::string id = message.client_msg_id;
  const std::size_t size =
      message.body.size() + message.content_type.size() + id.size() + message.to.user.size();
  if (!validClientMsgId(id)) {
    i.refuseLater(std::move(message),
                  Error{Errc::BadRequest, "client_msg_id must be 1 to 64 printable characters"});
  } else if (message.to.user.empty() == (message.to.group == 0)) {
    i.refuseLater(std::move(message),
                  Error{Errc::BadRequest, "a message goes to a user or to a group"});
  } else if (size > i.opt.max_send_bytes) {
    i.refuseLater(std::move(message),
                  Error{Errc::TooLarge, "message of " + std::to_string(size) +
                                            " bytes is over the limit of " +
                                            std::to_string(i.opt.max_send_bytes)});
  } else if (i.stop_requested || i.state == State::Stopped) {
    i.refuseLater(std::move(message), Error{Errc::Unavailable, "not sent: the client stopped"});
  } else if (i.outbox.size() >= i.opt.max_pending_sends) {
    i.refuseLater(std::move(message),
                  Error{Errc::RateLimited, "too many sends waiting for the server"});
  } else {
    i.outbox.push(std::move(message));
    // Before the connection is set up (inside onStateChange(Online)) the supervisor writes it.
    if (i.conn && i.conn->ready && !i.conn->closed) i.writePendingSends(i.conn);
  }
  return id;
}

void Client::stopImpl(std::move_only_function<void()> done) {
  Impl& i = *impl_;
  if (i.state == State::Stopped) {
    asio::post(executor_, std::move(done));
    return;
  }
  i.stop_waiters.push_back(std::move(done));
  if (i.stop_requested) return;
  i.stop_requested = true;
  if (!i.started) return i.finish(Reason::StoppedByApp, {});
  i.stop_timer.expires_after(i.opt.stop_timeout);
  i.stop_timer.async_wait([self = impl_](boost::system::error_code ec) {
    if (!ec && !self->dead) self->stopExpired();
  });
  i.setState(State::Stopping);
  if (i.over()) return;
  auto c = i.conn;
  if (c && c->online && !c->closed) {
    // Set up already: say goodbye now. Being set up (stop() from onStateChange(Online)): the
    // supervisor writes the sends, then says goodbye.
    if (c->ready) i.sayGoodbye(c);
    return;
  }
  if (!i.outbox.empty()) {
    // Sends to write: a connection being opened is let finish; a wait is cut short.
    i.backoff.reset();
    i.wait_timer.cancel();
    return;
  }
  i.conclude();
}

void Client::dropConnection() {
  if (impl_->conn)
    impl_->closeConn(impl_->conn, Reason::DroppedByApp, "dropped by the application");
}

void Client::reconnectNow() {
  impl_->wait_timer.cancel();
}

State Client::state() const {
  return impl_->state;
}
const Session* Client::session() const {
  return impl_->session ? &*impl_->session : nullptr;
}
std::uint64_t Client::lastSeq() const {
  return impl_->order.last();
}
std::size_t Client::pendingSends() const {
  return impl_->outbox.size();
}
ClientStats Client::stats() const {
  return impl_->stats;
}
HttpApi& Client::api() {
  return impl_->api;
}

}  // namespace pigeon::client
