#include "gateway/native_session.h"

#include <spdlog/spdlog.h>

namespace pigeon::gateway {
namespace asio = boost::asio;
namespace pb = protocol::pb;
using store::Seq;

namespace {

constexpr std::string_view kServerName = "pigeon/0.1";
constexpr std::size_t kMaxClientMsgId = 64;

// The wire code of a refused send (docs/protocol.md lists them). The first four refuse this
// message only; the rest are the server's trouble and fatal ("unavailable" covers a store that
// failed, a corrupt record, anything unexpected: the client reconnects and retries).
std::string_view sendErrorCode(Errc code) {
  switch (code) {
    case Errc::NotFound: return "no_such_recipient";
    case Errc::Forbidden: return "forbidden";
    case Errc::TooLarge: return "too_large";
    case Errc::BadRequest: return "invalid_send";
    case Errc::RateLimited: return "rate_limited";
    case Errc::Unauthenticated: return "unauthenticated";
    default: return "unavailable";
  }
}

}  // namespace

NativeSession::NativeSession(Gateway& gateway, LoopState& loop,
                             std::unique_ptr<net::Transport> transport)
    : Session(gateway, loop, std::move(transport)),
      // The envelope around a Send holds its body plus ids and a content type.
      parser_(gateway.options().max_frame_bytes) {}

void NativeSession::start() {
  begin(OutFrame{});
  pump();
}

bool NativeSession::feed(char* data, std::size_t size) {
  parser_.feed(std::string_view(data, size));
  return true;
}

bool NativeSession::handleNextFrame() {
  const auto status = parser_.next();
  if (status == protocol::NativeParser::Status::NeedMore) return false;
  if (status == protocol::NativeParser::Status::Error) {
    const Error& e = parser_.error();
    fatal(e.code == Errc::TooLarge ? "too_large" : "malformed_frame",
          e.code == Errc::TooLarge ? "frame too large" : "malformed frame", nullptr, e.message);
    return false;
  }
  if (!admitFrame()) return false;
  handle(parser_.envelope());
  return true;
}

void NativeSession::appendBuffers(std::span<OutFrame> batch, std::vector<asio::const_buffer>& out) {
  for (const OutFrame& f : batch) {
    out.emplace_back(asio::buffer(f.own));
    if (f.tail) out.emplace_back(asio::buffer(*f.tail));
  }
}

void NativeSession::send(const pb::Envelope& envelope) {
  OutFrame f;
  protocol::appendNative(f.own, envelope);
  enqueue(std::move(f));
}

// ---- frames from the client ----------------------------------------------------------------

void NativeSession::handle(pb::Envelope& e) {
  using B = pb::Envelope::BodyCase;
  const B body = e.body_case();
  if (body == B::kPing) {  // answered in any phase: a client may probe before logging in
    pb::Envelope pong;
    pong.mutable_pong()->set_nonce(e.ping().nonce());
    return send(pong);
  }
  if (phase_ == Phase::AwaitingLogin) {
    if (body == B::kLogin) return onLogin(*e.mutable_login());
    return fatal("not_logged_in", "not logged in", nullptr, "send Login (with the token) first");
  }
  switch (body) {
    case B::kSend: return onSend(*e.mutable_send());
    case B::kSync: return onSync(e.sync());
    case B::kAck: return onAck(e.ack());
    case B::kNack:
      if (auto problem = ackProblem(e.nack().seq()); !problem.empty()) {
        return fatal("invalid_ack", "invalid nack", nullptr, problem);
      }
      return nack(nullptr);
    case B::kBye: return disconnect(std::string());
    case B::kLogin: return fatal("already_logged_in", "already logged in");
    case B::BODY_NOT_SET:
      return fatal("unknown_frame", "unknown frame",  nullptr,
                   "an Envelope with no known body (a newer client?)");
    default:
      return fatal("unexpected_frame", "unexpected frame", nullptr,
                   "this frame is sent by the server, not by clients");
  }
}

void NativeSession::onLogin(pb::Login& login) {
  if (login.token().empty()) {
    return fatal("missing_token", "missing token", nullptr,
                 "send the token from POST /api/v1/sessions in Login.token");
  }
  if (login.heartbeat_ms() > 86400000) {
    return fatal("bad_request", "invalid heart-beat", nullptr, "heartbeat_ms is over a day");
  }
  wants_presence_ = login.presence();
  // The client pings; the server only answers, so it wants no heart-beats of ours.
  Session::login(std::move(*login.mutable_token()), std::string(), std::move(*login.mutable_device()),
                 login.heartbeat_ms(), 0);
}

void NativeSession::onLoggedIn(std::uint32_t server_beat_ms) {
  pb::Envelope e;
  auto* r = e.mutable_login_result();
  r->set_session_id(id_);
  r->set_user_id(principal_.user);
  r->set_username(principal_.username);
  r->set_device(principal_.device);
  r->set_heartbeat_ms(server_beat_ms);
  r->set_server(std::string(kServerName));
  send(e);
  if (wants_presence_) subscribePresence("presence");
}

void NativeSession::onSend(pb::Send& s) {
  if (s.client_msg_id().empty() || s.client_msg_id().size() > kMaxClientMsgId) {
    // Without a usable id the answer could not name the send: a protocol error.
    return fatal("invalid_send", "invalid send", nullptr, "client_msg_id must be 1 to 64 bytes");
  }
  core::SendRequest request;
  switch (s.to_case()) {
    case pb::Send::kUser: request.to_user = std::move(*s.mutable_user()); break;
    case pb::Send::kGroup: request.to_group = s.group(); break;
    default: {
      pb::Envelope e;
      auto* err = e.mutable_error();
      err->set_code("invalid_send");
      err->set_text("a Send needs a user or a group");
      err->set_ref(s.client_msg_id());
      return send(e);
    }
  }
  request.client_msg_id = s.client_msg_id();
  if (!s.content_type().empty()) request.content_type = std::move(*s.mutable_content_type());
  request.body = std::move(*s.mutable_body());
  std::string ref = std::move(*s.mutable_client_msg_id());
  submitSend(std::move(request), std::move(ref));
}

void NativeSession::onSendAccepted(const core::SendResult& r, const std::optional<std::string>& ref) {
  pb::Envelope e;
  auto* a = e.mutable_send_ack();
  a->set_client_msg_id(ref.value_or(""));
  a->set_msg_id(r.msg_id);
  a->set_seq(r.seq);
  a->set_conversation(r.conversation);
  a->set_conv_seq(r.conv_seq);
  a->set_sent_at_ms(r.sent_at_ms);
  a->set_duplicate(r.duplicate);
  send(e);
}

void NativeSession::onSendRefused(const Error& error, const std::optional<std::string>& ref) {
  // The store failing is the server's trouble, not this message's: close, and the client
  // retries with the same client_msg_id on its next connection.
  if (refusalIsFatal(error)) {
    const std::string_view code = sendErrorCode(error.code);
    return fatal(code, code == "unavailable" ? "server unavailable" : "send refused", nullptr,
                 error.message);
  }
  pb::Envelope e;
  auto* err = e.mutable_error();
  err->set_code(std::string(sendErrorCode(error.code)));
  err->set_text(error.message);
  err->set_ref(ref.value_or(""));
  send(e);
}

void NativeSession::onSync(const pb::SyncRequest& sync) {
  if (sub_) return fatal("already_subscribed", "already subscribed", nullptr, "one SyncRequest per connection");
  AckMode mode;
  switch (sync.ack_mode()) {
    case pb::ACK_AUTO: mode = AckMode::Auto; break;
    case pb::ACK_CLIENT: mode = AckMode::ClientIndividual; break;  // cumulative or single
    default: return fatal("bad_request", "invalid ack mode", nullptr, "ack_mode must be ACK_AUTO or ACK_CLIENT");
  }
  std::optional<Seq> since;
  if (sync.since() > 0) since = sync.since();
  subscribe(Subscription{"messages", {}, mode}, since, nullptr);
}

void NativeSession::onSubscribed(const std::string*, Seq from_seq) {
  pb::Envelope e;
  e.mutable_sync_started()->set_from_seq(from_seq);
  send(e);
}

void NativeSession::onAck(const pb::Ack& ack) {
  if (auto problem = ackProblem(ack.seq()); !problem.empty()) {
    return fatal("invalid_ack", "invalid ack", nullptr, problem);
  }
  acknowledge(ack.seq(), ack.cumulative(), nullptr);
}

void NativeSession::onReceipt(const std::string*) {}  // the native protocol has no receipts

void NativeSession::onDisconnected(const std::optional<std::string>&) {
  pb::Envelope e;
  e.mutable_bye();
  send(e);
}

void NativeSession::onKicked() {
  gateway_.metrics().errors.inc();
  pb::Envelope e;
  e.mutable_kicked()->set_reason("this device connected again from somewhere else");
  OutFrame f;
  protocol::appendNative(f.own, e);
  enqueue(std::move(f), true);
  beginClose(CloseKind::Error);
}

Session::OutFrame NativeSession::errorFrame(std::string_view code, std::string_view message,
                                            const std::string*, std::string_view detail) {
  pb::Envelope e;
  auto* err = e.mutable_error();
  err->set_code(std::string(code));
  err->set_text(detail.empty() ? std::string(message) : std::string(message) + ": " + std::string(detail));
  err->set_fatal(true);
  OutFrame f;
  protocol::appendNative(f.own, e);
  return f;
}

std::optional<Session::OutFrame> NativeSession::closeFrame(CloseKind) { return std::nullopt; }

Session::OutFrame NativeSession::heartbeatFrame() {
  pb::Envelope e;
  e.mutable_pong();  // never asked for (the server does not beat); harmless if it were
  OutFrame f;
  protocol::appendNative(f.own, e);
  return f;
}

// ---- to the client -------------------------------------------------------------------------

void NativeSession::encodeMessage(OutFrame& f, std::shared_ptr<const OutboundMessage> message, Seq seq) {
  const std::string& tail = message->nativeTail();
  std::uint8_t head[protocol::kMaxDeliverHead];
  const std::size_t n = protocol::deliverHead(head, seq, tail.size());
  f.own.assign(reinterpret_cast<const char*>(head), n);
  f.tail = &tail;
  f.shared = std::move(message);
}

void NativeSession::encodePresence(const PresenceEvent& event) {
  pb::Envelope e;
  auto* p = e.mutable_presence();
  p->set_user_id(event.user);
  p->set_username(event.username);
  p->set_online(event.online);
  send(e);
}

}  // namespace pigeon::gateway
