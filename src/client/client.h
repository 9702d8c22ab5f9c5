// The Pigeon client SDK: log in over HTTP, hold one long connection to a gateway (native TCP
// — varint32 + pigeon.v1.Envelope — or STOMP 1.2 over WebSocket, either optionally over TLS),
// send with receipts and automatic retry, receive every message of the inbox exactly once and in
// order, acknowledge, detect dead connections, reconnect with backoff and resync. Plus thin async
// helpers for the HTTP API (HttpApi). The console client (apps/pigeon) and the load generator
// are built on it. src/client/README.md has the overview and the dependency rule.
//
// Threading (the contract for everything in this header):
//   * A Client (and an HttpApi) lives on ONE executor, given at construction: an io_context run
//     by one thread, or a strand. Construct it, call every method and destroy it on that
//     executor (from another thread: asio::post(client.executor(), [&] { client.send(…); })).
//   * Every Listener callback and every completion handler of a Client runs on that executor
//     (handlers with an associated executor of their own — e.g. asio::use_awaitable from another
//     strand — are dispatched there). Listener callbacks may call Client methods (send, stop…)
//     but must not destroy the Client.
//   * Async operations accept any Asio completion token with the signature noted beside them:
//     a callback `[](Result<T> r) {…}`, asio::use_awaitable (co_await yields Result<T>),
//     asio::use_future…
//
// Errors: expected failures (network, HTTP status, server refusals) are values, Result<T> =
// std::expected<T, pigeon::Error>, never exceptions. HTTP statuses map to Errc as docs/api.md
// lists them (400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 409 Conflict,
// 413 TooLarge, 429 RateLimited, 503 Unavailable); Error::message is the server's own message
// when it sent one. Network failures and timeouts are Errc::Unavailable.
//
// Delivery guarantees: a message handed to Listener::onMessages is never handed again and never
// skipped (seq order, gapless; a gap or a duplicate from the server is absorbed by a resync). It
// is acknowledged to the server (cumulatively, batched) only after onMessages returned, so a
// message is lost to this device only if the application drops it after taking it. A send is
// retried with the same client_msg_id until the server answers it (the server deduplicates), so
// it is stored at most once; its outcome is reported exactly once via onSendResult.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"

namespace pigeon::client {

namespace asio = boost::asio;

// ---- plain data ------------------------------------------------------------------------------

enum class Transport : std::uint8_t {
  Tcp,        // the native protocol on gateway.tcp (tcp://host:port, or tls://host:port)
  WebSocket,  // STOMP 1.2 over WebSocket on gateway.ws (ws://host:port/ws, or wss://…)
};

struct TlsOptions {
  std::string ca_file;      // PEM file of trusted CAs; empty: the system's default paths
  bool verify_peer = true;  // false accepts any certificate: for tests with self-signed certs
};

// The group id of the built-in lobby every user belongs to.
inline constexpr std::uint64_t kLobbyGroup = 1;

// Where a message goes: a user (by username) or a group (by id).
struct Destination {
  std::string user;         // set for a private message
  std::uint64_t group = 0;  // set (non-zero) for a group message

  static Destination toUser(std::string username) { return Destination{std::move(username), 0}; }
  static Destination toGroup(std::uint64_t group_id) { return Destination{{}, group_id}; }
  bool isGroup() const { return group != 0; }
  friend bool operator==(const Destination&, const Destination&) = default;
};

// One message of the inbox (from sync, a live delivery, or history).
struct Message {
  std::uint64_t seq = 0;        // this user's inbox seq: 1, 2, 3 … (0 in history pages)
  std::uint64_t msg_id = 0;     // global id (snowflake)
  std::string client_msg_id;    // the sender's id, when it gave one (matches our own sends)
  std::string conversation;     // "p:<lo>:<hi>" or "g:<group id>"
  std::uint64_t conv_seq = 0;   // place in the conversation
  std::string from;             // sender's username
  std::int64_t sent_at_ms = 0;  // milliseconds since the Unix epoch
  std::string content_type;     // "text/plain" unless the sender said otherwise
  std::string body;
};

// What the server answered for a send.
struct SendReceipt {
  std::uint64_t msg_id = 0;
  std::uint64_t seq = 0;  // the message's seq in the sender's own inbox
  std::string conversation;
  std::uint64_t conv_seq = 0;
  std::int64_t sent_at_ms = 0;  // 0 over STOMP (its RECEIPT has no time)
  bool duplicate = false;       // stored before (a retry): the original's ids
};

// The outcome of one send, reported once. error: refused by the server (NotFound: no such
// recipient; Forbidden: not a member; TooLarge; BadRequest: invalid send), refused before
// sending (BadRequest: bad id or destination; TooLarge: over max_send_bytes; RateLimited: over
// max_pending_sends; Unavailable: send() after stop()), or given up (Unavailable: the server did
// not answer before stop() ran out of stop_timeout, or the client was kicked or its credentials
// refused). A send given up may still have been stored (its answer was lost).
struct SendResult {
  std::string client_msg_id;
  Destination to;
  Result<SendReceipt> receipt;
};

struct OutgoingMessage {
  Destination to;
  std::string body;
  std::string content_type = "text/plain";
  std::string client_msg_id;  // empty: the client makes a unique one (1..64 printable ASCII)
};

// A contact came online or went offline (ClientOptions::presence).
struct PresenceChange {
  std::uint64_t user_id = 0;
  std::string username;
  bool online = false;
};

// A successful login.
struct Session {
  std::string token;
  std::uint64_t user_id = 0;
  std::string username;
  std::string device;
  std::int64_t expires_at_ms = 0;
  std::string gateway_ws;   // "" when the server offers no WebSocket gateway
  std::string gateway_tcp;  // "" when the server offers no native TCP gateway
};

struct UserRef {
  std::uint64_t user_id = 0;
  std::string username;
};

struct Group {
  std::uint64_t group_id = 0;
  std::string name;
  std::string conversation;  // "g:<group_id>"
  std::string owner;         // "" for the lobby
  std::int64_t created_at_ms = 0;
  std::uint64_t member_count = 0;
  std::vector<UserRef> members;  // empty in lists and for the lobby
};

struct HistoryPage {
  std::vector<Message> messages;  // oldest first; seq is 0
  bool has_more = false;          // older messages exist: pass messages.front().conv_seq as before
};

// ---- connection state ------------------------------------------------------------------------

enum class State : std::uint8_t {
  Idle,        // constructed, start() not called
  LoggingIn,   // HTTP login (or registration) in progress
  Connecting,  // opening the long connection, authenticating, starting the sync
  Online,      // connected and receiving
  Waiting,     // connection lost; next attempt after StateChange::retry_in
  Stopping,    // stop() called: finishing gracefully (see Client::stop). No other state is
               // reported until Stopped, even while a connection is made to write sends.
  Stopped,     // final: stop() finished, kicked, or credentials refused. No more callbacks.
};

enum class Reason : std::uint8_t {
  None,
  HeartbeatTimeout,  // no pong / heart-beat from the server for 2 intervals: dead connection
  ConnectionLost,    // the socket closed or failed
  ConnectFailed,     // could not connect / handshake / log in over the connection
  ServerError,       // the server sent a fatal error (details in StateChange::detail)
  SendRefused,       // STOMP: the server refused a send (reported to onSendResult) and, as STOMP
                     // requires after an ERROR, closed the connection; the client reconnects at
                     // once (retry_in 0) and writes the sends that followed it again
  SequenceGap,       // the server skipped a seq: the client resyncs
  Kicked,            // this device connected again elsewhere (no automatic reconnect)
  Unauthenticated,   // the credentials were refused (no automatic reconnect)
  StoppedByApp,      // stop() or the client's destruction
  DroppedByApp,      // dropConnection()
};

std::string_view stateName(State state) noexcept;
std::string_view reasonName(Reason reason) noexcept;

struct StateChange {
  State state = State::Idle;
  Reason reason = Reason::None;  // why the connection went away (Waiting, Stopped)
  std::string detail;            // for people: the server's error text, the socket error…
  std::chrono::milliseconds retry_in{0};  // Waiting: the backoff before the next attempt
  unsigned attempt = 0;                   // Waiting: consecutive failed attempts so far
};

// Counters for tests, the load generator and diagnostics. Monotonic over the Client's life.
struct ClientStats {
  std::uint64_t connects = 0;            // connections that reached Online
  std::uint64_t messages_delivered = 0;  // handed to onMessages
  std::uint64_t duplicates_dropped = 0;  // seq <= last delivered, dropped
  std::uint64_t gaps = 0;                // resyncs for a gap
  std::uint64_t sends_retried = 0;       // sends written again after a reconnect
  std::uint64_t acks_sent = 0;           // Ack / ACK frames written
  std::uint64_t logins = 0;              // successful HTTP logins
  std::uint64_t inbox_end_probes = 0;    // HTTP requests made to find the inbox end (onCaughtUp)
};

// Listener::onCaughtUp: one connection's backlog has been handed over.
struct CaughtUp {
  std::uint64_t after_seq = 0;  // this connection's sync started after this seq
  std::uint64_t end_seq = 0;    // caught up with the inbox up to here (>= its end at sync start)
  std::uint64_t messages = 0;   // handed to onMessages on this connection before this call
  bool first = false;           // the first onCaughtUp of this Client (the login's backlog)
};

// CIM's message listener. Every method runs on the Client's executor; default: ignore.
class Listener {
 public:
  virtual ~Listener() = default;
  // New inbox messages, seq-ordered and gapless, each exactly once over the Client's life.
  // Once this returns they count as taken and are acknowledged to the server (batched).
  virtual void onMessages(std::span<const Message> messages) = 0;
  // The outcome of a send (receipt or refusal), exactly once per send().
  virtual void onSendResult(const SendResult& result) { (void)result; }
  virtual void onPresence(const PresenceChange& change) { (void)change; }
  virtual void onStateChange(const StateChange& change) { (void)change; }
  // Caught up: every message that was in the inbox when this connection's sync started (every
  // seq up to the inbox's end at that moment) has been handed to onMessages — on this
  // connection or an earlier one. At most once per connection: after Online, right after the
  // onMessages call that handed the last of them (or right away when nothing was waiting).
  // Until it comes, what arrives is the backlog — what came while this device was away — and
  // whatever is stored meanwhile.
  //
  // Exactly: CaughtUp::end_seq is the inbox's end at some moment between the sync's start and
  // the call (so at least the end at the start, and never past what exists), and every seq up
  // to it has been handed over; a message stored after the start may be among those (a busy
  // inbox is not chased: the signal does not wait for a quiet moment).
  //
  // How it is known: the sync's start is the native SyncStarted, or the RECEIPT of the STOMP
  // SUBSCRIBE (sent once the server fixed the start, before the first MESSAGE). After it the
  // client asks the HTTP API where the inbox ends with `GET /api/v1/sync?after=X&limit=1`
  // probes — O(log backlog) of them, each returning at most one message (InboxEndSearch in
  // inbox_order.h; ClientStats::inbox_end_probes counts them) — all answered after the start.
  // A probe that fails is retried while the connection lasts (100 ms, doubling to 5 s apart).
  // It does not come if the connection ends first (the next connection's does), after stop(),
  // with find_inbox_end off, or while the HTTP API cannot be reached.
  virtual void onCaughtUp(const CaughtUp& info) { (void)info; }
  // This device connected again elsewhere; the Client goes to Stopped right after.
  virtual void onKicked(const std::string& reason) { (void)reason; }
  // A problem worth showing that is neither a send's outcome nor a state change: a non-fatal
  // error from the server not tied to a pending send, or an inbox that restarted past the last
  // seq seen. (Fatal server errors arrive as StateChange{Waiting, ServerError, detail}.)
  virtual void onError(const Error& error) { (void)error; }
};

// ---- completion-token plumbing ---------------------------------------------------------------

namespace detail {

template <typename R>
using Done = std::move_only_function<void(R)>;

// Runs `start(done)`; when the implementation calls done(r), the user's handler gets r on its
// associated executor (default: `ex`).
template <typename R, typename Token, typename Start>
auto initiate(const asio::any_io_executor& ex, Token&& token, Start&& start) {
  return asio::async_initiate<Token, void(R)>(
      [ex](auto handler, auto start_fn) {
        auto work = asio::make_work_guard(asio::get_associated_executor(handler, ex));
        start_fn(Done<R>([handler = std::move(handler), work = std::move(work)](R r) mutable {
          auto target = work.get_executor();
          asio::dispatch(target, [handler = std::move(handler), r = std::move(r)]() mutable {
            std::move(handler)(std::move(r));
          });
        }));
      },
      token, std::forward<Start>(start));
}

}  // namespace detail

// ---- HTTP API --------------------------------------------------------------------------------

// Async helpers for the HTTP API (docs/api.md), returning parsed results. Requests are
// independent (one short connection each) and may overlap. It keeps the base URL and the bearer
// token; the setters affect requests started afterwards. Requests in flight keep what they need
// alive: destroying the HttpApi does not cancel them, and their handlers still run (within the
// timeout), so a handler must not touch a destroyed HttpApi.
class HttpApi {
 public:
  using Executor = asio::any_io_executor;
  // `base_url`: "http://host:port" or "https://host:port" (a path prefix is allowed).
  HttpApi(Executor executor, std::string base_url, TlsOptions tls = {},
          std::chrono::milliseconds timeout = std::chrono::seconds(15));
  ~HttpApi();
  HttpApi(const HttpApi&) = delete;
  HttpApi& operator=(const HttpApi&) = delete;

  Executor executor() const { return executor_; }
  const std::string& baseUrl() const;
  void setBaseUrl(std::string base_url);
  const std::string& token() const;
  void setToken(std::string token);     // the bearer token for 🔒 endpoints
  const std::string& username() const;  // set by login(); used by leaveGroup()
  void setUsername(std::string username);

  // POST /api/v1/users. Signature void(Result<UserRef>); 409 → Errc::Conflict.
  template <typename Token>
  auto registerUser(std::string username, std::string password, Token&& token) {
    return detail::initiate<Result<UserRef>>(
        executor_, std::forward<Token>(token),
        [this, u = std::move(username), p = std::move(password)](auto done) mutable {
          registerImpl(std::move(u), std::move(p), std::move(done));
        });
  }
  // POST /api/v1/sessions. void(Result<Session>). On success also keeps the token and username.
  template <typename Token>
  auto login(std::string username, std::string password, std::string device, Token&& token) {
    return detail::initiate<Result<Session>>(
        executor_, std::forward<Token>(token),
        [this, u = std::move(username), p = std::move(password),
         d = std::move(device)](auto done) mutable {
          loginImpl(std::move(u), std::move(p), std::move(d), std::move(done));
        });
  }
  // DELETE /api/v1/sessions: revokes the token. void(Result<void>).
  template <typename Token>
  auto logout(Token&& token) {
    return detail::initiate<Result<void>>(executor_, std::forward<Token>(token),
                                          [this](auto done) { logoutImpl(std::move(done)); });
  }
  // GET /api/v1/users/online (CIM's :olu). void(Result<std::vector<UserRef>>).
  template <typename Token>
  auto onlineUsers(Token&& token) {
    return detail::initiate<Result<std::vector<UserRef>>>(
        executor_, std::forward<Token>(token), [this](auto done) { onlineImpl(std::move(done)); });
  }
  // GET /api/v1/users?prefix=&limit= (name order). void(Result<std::vector<UserRef>>).
  template <typename Token>
  auto findUsers(std::string prefix, unsigned limit, Token&& token) {
    return detail::initiate<Result<std::vector<UserRef>>>(
        executor_, std::forward<Token>(token),
        [this, p = std::move(prefix), limit](auto done) mutable {
          findUsersImpl(std::move(p), limit, std::move(done));
        });
  }
  // GET /api/v1/groups: the lobby first, then mine, without members.
  // void(Result<std::vector<Group>>).
  template <typename Token>
  auto groups(Token&& token) {
    return detail::initiate<Result<std::vector<Group>>>(
        executor_, std::forward<Token>(token), [this](auto done) { groupsImpl(std::move(done)); });
  }
  // GET /api/v1/groups/{id}: with members. void(Result<Group>).
  template <typename Token>
  auto group(std::uint64_t group_id, Token&& token) {
    return detail::initiate<Result<Group>>(
        executor_, std::forward<Token>(token),
        [this, group_id](auto done) { groupImpl(group_id, std::move(done)); });
  }
  // POST /api/v1/groups (the caller is the owner). void(Result<Group>).
  template <typename Token>
  auto createGroup(std::string name, std::vector<std::string> members, Token&& token) {
    return detail::initiate<Result<Group>>(
        executor_, std::forward<Token>(token),
        [this, n = std::move(name), m = std::move(members)](auto done) mutable {
          createGroupImpl(std::move(n), std::move(m), std::move(done));
        });
  }
  // POST /api/v1/groups/{id}/members (owner only). void(Result<void>).
  template <typename Token>
  auto addMember(std::uint64_t group_id, std::string username, Token&& token) {
    return detail::initiate<Result<void>>(
        executor_, std::forward<Token>(token),
        [this, group_id, u = std::move(username)](auto done) mutable {
          memberImpl("POST", group_id, std::move(u), std::move(done));
        });
  }
  // DELETE /api/v1/groups/{id}/members/{username}. void(Result<void>).
  template <typename Token>
  auto removeMember(std::uint64_t group_id, std::string username, Token&& token) {
    return detail::initiate<Result<void>>(
        executor_, std::forward<Token>(token),
        [this, group_id, u = std::move(username)](auto done) mutable {
          memberImpl("DELETE", group_id, std::move(u), std::move(done));
        });
  }
  // Leaves a group: removeMember(group_id, username()). void(Result<void>).
  template <typename Token>
  auto leaveGroup(std::uint64_t group_id, Token&& token) {
    return removeMember(group_id, username(), std::forward<Token>(token));
  }
  // GET /api/v1/conversations/{conversation}/messages?before=&limit=. `before` 0: the newest.
  // void(Result<HistoryPage>).
  template <typename Token>
  auto history(std::string conversation, std::uint64_t before, unsigned limit, Token&& token) {
    return detail::initiate<Result<HistoryPage>>(
        executor_, std::forward<Token>(token),
        [this, c = std::move(conversation), before, limit](auto done) mutable {
          historyImpl(std::move(c), before, limit, std::move(done));
        });
  }
  // Any endpoint: `target` is the path and query ("/api/v1/search?q=x"), `body` is sent as JSON
  // unless it is null. The bearer token goes along when set. A 2xx answer yields its parsed JSON
  // body (null when empty, e.g. 204); any other status is an Error (code from the status,
  // message from the error body). void(Result<boost::json::value>).
  template <typename Token>
  auto request(std::string method, std::string target, boost::json::value body, Token&& token) {
    return detail::initiate<Result<boost::json::value>>(
        executor_, std::forward<Token>(token),
        [this, m = std::move(method), t = std::move(target),
         b = std::move(body)](auto done) mutable {
          requestImpl(std::move(m), std::move(t), std::move(b), std::move(done));
        });
  }

  struct Shared;  // private; shared with requests in flight

 private:
  void registerImpl(std::string u, std::string p, detail::Done<Result<UserRef>> done);
  void loginImpl(std::string u, std::string p, std::string d, detail::Done<Result<Session>> done);
  void logoutImpl(detail::Done<Result<void>> done);
  void onlineImpl(detail::Done<Result<std::vector<UserRef>>> done);
  void findUsersImpl(std::string prefix, unsigned limit,
                     detail::Done<Result<std::vector<UserRef>>> done);
  void groupsImpl(detail::Done<Result<std::vector<Group>>> done);
  void groupImpl(std::uint64_t id, detail::Done<Result<Group>> done);
  void createGroupImpl(std::string name, std::vector<std::string> members,
                       detail::Done<Result<Group>> done);
  void memberImpl(const char* method, std::uint64_t id, std::string username,
                  detail::Done<Result<void>> done);
  void historyImpl(std::string conversation, std::uint64_t before, unsigned limit,
                   detail::Done<Result<HistoryPage>> done);
  void requestImpl(std::string method, std::string target, boost::json::value body,
                   detail::Done<Result<boost::json::value>> done);

  Executor executor_;
  std::shared_ptr<Shared> shared_;
};

// ---- the client ------------------------------------------------------------------------------

struct ClientOptions {
  // The HTTP base URL: "http://127.0.0.1:8080" or "https://…".
  std::string server;
  // Optional: asked (on the client's executor) for the HTTP base URL before every connection
  // attempt (e.g. after a server restart on another port, or to pick another node); a new URL
  // means a new login. Returning "" keeps the current one.
  std::function<std::string()> resolve_server;
  // Optional: more HTTP base URLs of the same cluster (any node with the api role). When a login
  // cannot reach the server in use (network error, 503), the client moves on to the next one,
  // `server` first, round and round. Ignored while resolve_server is set.
  std::vector<std::string> fallback_servers;

  std::string username;
  std::string password;  // for login and for logging in again when the token is refused
  std::string device = "default";
  bool register_user = false;  // start() registers the user first (an existing one is fine)
  // Optional: a token from an earlier login (for `device`, which must be the token's). Used
  // first; with a password the client logs in again when it is refused. Without a login,
  // `gateway` must be set.
  std::string token;

  Transport transport = Transport::Tcp;
  // Optional: the gateway URL to use instead of the one login returns
  // (tcp://h:p, tls://h:p, ws://h:p/ws, wss://h:p/ws).
  std::string gateway;
  TlsOptions tls;         // for https, wss and tls gateways
  bool presence = false;  // receive PresenceChange for contacts

  // The heart-beat: a Ping (TCP) / an EOL (STOMP, when idle) at least this often; the
  // connection is declared dead after twice the interval without a pong or anything else from
  // the server (over STOMP the interval is the one negotiated with the server's heart-beat).
  std::chrono::milliseconds heartbeat{10'000};
  std::chrono::milliseconds connect_timeout{10'000};  // connect + handshakes + Login/CONNECT
  std::chrono::milliseconds http_timeout{15'000};     // one HTTP request
  // stop(): how long it may take to connect (if needed), write the queued sends and have them
  // answered, and say goodbye. Sends still unanswered then are given up.
  std::chrono::milliseconds stop_timeout{5'000};
  // Reconnect backoff: exponential from backoff_min to backoff_max, full jitter (the wait is
  // uniform in [0, min(max, min_ * 2^attempt)]); the first retry after a clean loss is quick.
  std::chrono::milliseconds backoff_min{250};
  std::chrono::milliseconds backoff_max{30'000};

  // After each sync started, find where the inbox ended over HTTP (a few tiny GET
  // /api/v1/sync requests per connection), for Listener::onCaughtUp. Off: no onCaughtUp.
  bool find_inbox_end = true;
  // The first sync starts after this seq; 0: after the device's cursor stored on the server.
  // Later syncs start after the last seq handed to the listener.
  std::uint64_t resume_after_seq = 0;
  // Acks: one cumulative ack once this many messages are taken, or `ack_delay` after the first
  // unacknowledged one, whichever comes first.
  std::size_t ack_batch = 64;
  std::chrono::milliseconds ack_delay{100};
  // Sends waiting for their answer (including those queued while offline). Past this, send()
  // reports Errc::RateLimited at once.
  std::size_t max_pending_sends = 10'000;
  std::size_t max_frame_bytes = 1 << 20;  // largest frame accepted from the server
  // Largest send (body + content type + id) the client writes; bigger ones are refused at once
  // with Errc::TooLarge. A frame over the server's --max-frame-bytes (64 KiB) would make the
  // server close the connection without naming the send, and the retry would repeat that
  // forever. Keep it at or below the server's limit minus a little framing.
  std::size_t max_send_bytes = 64 * 1024 - 512;
};

class Client {
 public:
  using Executor = asio::any_io_executor;

  // `listener` must outlive the Client. Does nothing until start().
  Client(Executor executor, ClientOptions options, Listener& listener);
  // Abrupt: closes the connection at once (no Bye), cancels everything; no callback runs after.
  // Sends not yet answered are NOT reported (use stop() for a graceful end).
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  Executor executor() const { return executor_; }

  // Logs in (registering first with register_user), then connects and stays connected —
  // reconnecting and resyncing — until stop(). Completes once with the first login's outcome:
  // an Error (e.g. Unauthenticated for a wrong password, Unavailable when the server cannot be
  // reached) means the client went to Stopped. With only a token (no password) it completes at
  // once with the Session it knows. void(Result<Session>). Call once.
  template <typename Token>
  auto start(Token&& token) {
    return detail::initiate<Result<Session>>(executor_, std::forward<Token>(token),
                                             [this](auto done) { startImpl(std::move(done)); });
  }

  // Queues a message and returns its client_msg_id. Written at once when Online, otherwise when
  // the connection is back; retried with the same id after every reconnect until answered.
  // The outcome comes to Listener::onSendResult. Sends are stored in the order of send() calls
  // (a refused one does not block the others).
  std::string send(OutgoingMessage message);
  std::string send(Destination to, std::string body) {
    OutgoingMessage message;
    message.to = std::move(to);
    message.body = std::move(body);
    return send(std::move(message));
  }

  // Graceful end, within stop_timeout, whatever the state (Stopping is reported at once):
  //   * with sends waiting for their answer and no connection up (logging in, connecting,
  //     waiting to retry), it gets one up — skipping the backoff wait, retrying at most a
  //     second apart — without starting a sync; a connection being opened is let finish;
  //   * on the connection it writes the sends not yet written, acknowledges what was handed
  //     over, and says goodbye (TCP Bye → Bye; STOMP DISCONNECT with a receipt), which the
  //     server answers only once every earlier send is answered and every ack stored;
  //   * if the connection ends first (a STOMP refusal closes it; the server goes away), it
  //     connects again while sends are left;
  //   * messages handed over whose ack the server did not confirm are acknowledged over HTTP
  //     (POST /api/v1/ack) when no goodbye covered them;
  //   * then closes, goes to Stopped and completes. Sends the server did not answer in time are
  //     reported as failed (Errc::Unavailable). With nothing to send or acknowledge and no
  //     connection up, it ends at once.
  // send() after stop() is refused (Errc::Unavailable). Messages arriving after the goodbye are
  // not handed over (the next session gets them). May be called from a Listener callback,
  // onStateChange(Online) included. void(). Idempotent.
  template <typename Token>
  auto stop(Token&& token) {
    return asio::async_initiate<Token, void()>(
        [this](auto handler) {
          auto work = asio::make_work_guard(asio::get_associated_executor(handler, executor_));
          stopImpl([handler = std::move(handler), work = std::move(work)]() mutable {
            auto target = work.get_executor();
            asio::dispatch(target, std::move(handler));
          });
        },
        token);
  }

  // Closes the current connection as if the network failed (Reason::DroppedByApp); the client
  // reconnects with backoff and resyncs. For tests and for "network changed" hints.
  void dropConnection();
  // Skips the rest of the current backoff wait (e.g. the user pressed "retry").
  void reconnectNow();

  State state() const;
  // The login in use (token, user id, gateways), or nullptr before the first login.
  const Session* session() const;
  // The highest seq handed to onMessages (or resume_after_seq / the first sync's start).
  std::uint64_t lastSeq() const;
  std::size_t pendingSends() const;
  ClientStats stats() const;
  // The HTTP helpers, sharing this client's server address and token (kept current across
  // re-logins).
  HttpApi& api();

  struct Impl;  // private

 private:
  void startImpl(detail::Done<Result<Session>> done);
  void stopImpl(std::move_only_function<void()> done);

  Executor executor_;
  std::shared_ptr<Impl> impl_;
};

// ---- small pure helpers (tested in client_test.cc) -------------------------------------------

// A URL the client connects to: http(s) for the API, tcp/tls for the native gateway, ws(s) for
// STOMP. Default ports: http 80, https 443, ws 80, wss 443; tcp and tls need one.
struct Endpoint {
  std::string scheme;  // lower case: http, https, tcp, tls, ws, wss
  std::string host;    // without brackets for IPv6
  std::uint16_t port = 0;
  std::string target;  // path (and query); "/" when empty
  bool tls = false;    // https, wss, tls
};
Result<Endpoint> parseEndpoint(std::string_view url);

// A conversation id taken apart: "g:<group id>" or "p:<lo user id>:<hi user id>".
// Errc::BadRequest for anything else.
struct ConversationRef {
  std::uint64_t group = 0;                 // non-zero for a group conversation
  std::uint64_t user_lo = 0, user_hi = 0;  // the two users of a private one (equal: a note to self)
  bool isGroup() const { return group != 0; }
};
Result<ConversationRef> parseConversation(std::string_view conversation);

}  // namespace pigeon::client
