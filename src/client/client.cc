// Client: the supervisor coroutine (log in → connect → serve → wait → …) and one Conn per
// long connection. Everything runs on the client's executor; coroutines hold the Impl and the
// Conn by shared_ptr, so destroying the Client only detaches the listener and closes sockets.
#include "client/client.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
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

}  // namespace

// One long connection.
struct Conn {
  Conn(const asio::any_io_executor& ex, std::unique_ptr<Pipe> p, std::unique_ptr<Wire> w)
      : pipe(std::move(p)), wire(std::move(w)), tick(ex), ack_timer(ex), watchdog(ex) {}

  std::unique_ptr<Pipe> pipe;
  std::unique_ptr<Wire> wire;
  asio::steady_timer tick, ack_timer, watchdog;
  std::string out;  // bytes waiting for the writer
  bool writing = false;
  bool online = false;
  bool closed = false;
  bool timed_out = false;  // the connect watchdog fired
  bool bye_sent = false;
  Reason reason = Reason::None;
  std::string detail;
  Clock::time_point last_rx, last_tx, last_ping;
  milliseconds beat_every{0}, expect_every{0};
  bool ping_each_interval = false;  // native: pings are answered, so ping even while writing
  std::uint64_t max_rx_seq = 0;     // highest seq received on this connection
  std::uint64_t acked = 0;          // highest seq acknowledged on this connection
  std::size_t unacked = 0;          // taken since the last ack
  bool ack_armed = false;
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
        wait_timer(ex) {}

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
  std::shared_ptr<Conn> conn;
  detail::Done<Result<Session>> start_done;
  std::vector<std::move_only_function<void()>> stop_waiters;
  bool started = false;
  bool stop_requested = false;
  bool dead = false;  // the Client was destroyed
  bool need_login = true;
  bool token_fresh = false;  // the token came from a login since the last refusal
  bool registered = false;
  std::uint64_t nonce = 0;

  bool hasPassword() const { return !opt.password.empty(); }

  // ---- reporting -----------------------------------------------------------------------------

  void setState(State s, Reason reason = Reason::None, std::string detail = {},
                milliseconds retry_in = milliseconds(0), unsigned attempt = 0) {
    state = s;
    if (listener)
      listener->onStateChange(StateChange{s, reason, std::move(detail), retry_in, attempt});
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
    const std::string why = reason == Reason::StoppedByApp ? "the client stopped" : detail;
    for (auto& e : outbox.takeAll()) {
      reportSend(std::move(e.message.client_msg_id), std::move(e.message.to),
                 fail(Errc::Unavailable, "not sent: " + why));
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
    stats.messages_delivered += n;
    if (listener) listener->onMessages(batch);
    batch.clear();
    if (dead) return;
    c->unacked += n;
    if (c->unacked >= opt.ack_batch) {
      flushAck(c);
    } else {
      armAck(c);
    }
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
          if (!order.startAfter(ev.seq) && listener) {
            listener->onError(Error{Errc::Internal, "the server's inbox restarts after seq " +
                                                        std::to_string(ev.seq) +
                                                        ", past the last one seen"});
          }
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
          } else if (listener) {
            listener->onError(ev.error);
          }
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
          closeConn(c, Reason::StoppedByApp, {});
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

  asio::awaitable<void> waitBackoff(Reason reason, std::string detail) {
    const milliseconds delay = backoff.next();
    setState(State::Waiting, reason, std::move(detail), delay, backoff.attempt());
    if (stop_requested || dead) co_return;
    wait_timer.expires_after(delay);
    co_await wait_timer.async_wait(kAwait);  // cancelled by reconnectNow() and stop()
  }

  static asio::awaitable<void> run(std::shared_ptr<Impl> self) { co_await self->loop(); }

  asio::awaitable<void> loop() {
    while (!stop_requested && !dead) {
      if (opt.resolve_server) {
        std::string url = opt.resolve_server();
        if (!url.empty() && url != api.baseUrl()) {
          api.setBaseUrl(std::move(url));
          if (hasPassword()) need_login = true;
        }
      }
      if (need_login) {
        if (!hasPassword()) co_return finish(Reason::Unauthenticated, "the token was refused");
        setState(State::LoggingIn);
        auto r = co_await login();
        if (stop_requested || dead) break;
        if (!r) {
          // The first login decides (wrong password, unreachable server); later ones retry
          // unless the credentials themselves are refused.
          if (start_done || r.error().code == Errc::Unauthenticated ||
              r.error().code == Errc::BadRequest) {
            const Reason why = r.error().code == Errc::Unauthenticated ? Reason::Unauthenticated
                                                                       : Reason::ConnectFailed;
            completeStart(std::unexpected(r.error()));
            co_return finish(why, r.error().message);
          }
          co_await waitBackoff(Reason::ConnectFailed, "login: " + r.error().message);
          continue;
        }
        session = *r;
        ++stats.logins;
        need_login = false;
        token_fresh = true;
        completeStart(*session);
      }

      auto ep = gatewayEndpoint();
      if (!ep) {
        if (hasPassword() && opt.gateway.empty()) need_login = true;
        co_await waitBackoff(Reason::ConnectFailed, ep.error().message);
        continue;
      }
      setState(State::Connecting);
      auto wire = opt.transport == Transport::Tcp ? makeNativeWire(opt.max_frame_bytes)
                                                  : makeStompWire(opt.max_frame_bytes);
      auto c = std::make_shared<Conn>(
          executor, makePipe(executor, *ep, tls, opt.max_frame_bytes * 2), std::move(wire));
      c->ping_each_interval = opt.transport == Transport::Tcp;
      conn = c;
      auto est = co_await establish(c, *ep);
      if (!est) {
        closeConn(c, Reason::ConnectFailed, est.error().message);
        conn.reset();
        if (stop_requested || dead) break;
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

      // Online: start the sync, then (re)send everything unanswered, in order.
      c->online = true;
      c->last_rx = c->last_tx = c->last_ping = Clock::now();
      ++stats.connects;
      backoff.reset();
      setState(State::Online);
      if (stop_requested || dead || c->closed) {
        conn.reset();
        if (!c->closed) closeConn(c, Reason::StoppedByApp, {});
        break;
      }
      c->wire->subscribe(c->out, order.known() ? order.last() : 0, opt.presence);
      outbox.rewind();
      writePendingSends(c);
      asio::co_spawn(executor, ticker(shared_from_this(), c), rethrow);
      co_await serve(c);
      conn.reset();
      if (dead) co_return;
      switch (c->reason) {
        case Reason::Kicked:
          if (listener) listener->onKicked(c->detail);
          co_return finish(Reason::Kicked, c->detail);
        case Reason::StoppedByApp:
          co_return finish(Reason::StoppedByApp, c->detail);
        case Reason::Unauthenticated:
          if (!hasPassword()) co_return finish(Reason::Unauthenticated, c->detail);
          need_login = true;
          [[fallthrough]];
        default:
          if (stop_requested) co_return finish(Reason::StoppedByApp, {});
          co_await waitBackoff(c->reason, c->detail);
          break;
      }
    }
    if (!dead) finish(Reason::StoppedByApp, {});
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
}

void Client::startImpl(detail::Done<Result<Session>> done) {
  Impl& i = *impl_;
  if (i.started) return done(fail(Errc::BadRequest, "start() was called already"));
  i.started = true;
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
    if (i.conn && i.conn->online && !i.conn->closed) i.writePendingSends(i.conn);
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
  auto c = i.conn;
  if (c && c->online && !c->closed) {
    i.setState(State::Stopping);
    i.flushAck(c);
    c->wire->bye(c->out);
    c->bye_sent = true;
    i.kickWriter(c);
    c->watchdog.expires_after(i.opt.stop_timeout);
    c->watchdog.async_wait([self = impl_, c](boost::system::error_code ec) {
      if (!ec) self->closeConn(c, Reason::StoppedByApp, "no answer to the goodbye");
    });
  } else {
    if (c) i.closeConn(c, Reason::StoppedByApp, {});
    i.wait_timer.cancel();
  }
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
