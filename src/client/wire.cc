#include "client/wire.h"

#include <boost/json/parse.hpp>
#include <charconv>

#include "protocol/native.h"
#include "protocol/stomp.h"

namespace pigeon::client {
namespace {

namespace pb = protocol::pb;
using Kind = WireEvent::Kind;

constexpr std::string_view kSendReceiptPrefix = "s:";
constexpr std::string_view kByeReceipt = "bye";
constexpr std::string_view kSyncReceipt = "sync";
constexpr std::string_view kMessagesSub = "sub-0";
constexpr std::string_view kPresenceSub = "sub-1";

std::uint64_t toU64(const std::string* s) {
  std::uint64_t v = 0;
  if (s) std::from_chars(s->data(), s->data() + s->size(), v);
  return v;
}
std::int64_t toI64(const std::string* s) {
  std::int64_t v = 0;
  if (s) std::from_chars(s->data(), s->data() + s->size(), v);
  return v;
}
std::string str(const std::string* s) {
  return s ? *s : std::string();
}

// ---- native --------------------------------------------------------------------------------

class NativeWire final : public Wire {
 public:
  explicit NativeWire(std::size_t max_frame) : parser_(max_frame) {}

  void hello(std::string& out, const Hello& h) override {
    pb::Envelope e;
    auto* login = e.mutable_login();
    login->set_token(h.token);
    login->set_device(h.device);
    login->set_heartbeat_ms(std::uint32_t(h.heartbeat.count()));
    login->set_presence(h.presence);
    heartbeat_ = h.heartbeat;
    protocol::appendNative(out, e);
  }
  void subscribe(std::string& out, std::uint64_t since, bool) override {
    pb::Envelope e;
    e.mutable_sync()->set_since(since);
    e.mutable_sync()->set_ack_mode(pb::ACK_CLIENT);
    protocol::appendNative(out, e);
  }
  void send(std::string& out, const OutgoingMessage& m) override {
    pb::Envelope e;
    auto* s = e.mutable_send();
    s->set_client_msg_id(m.client_msg_id);
    if (m.to.isGroup()) {
      s->set_group(m.to.group);
    } else {
      s->set_user(m.to.user);
    }
    s->set_content_type(m.content_type);
    s->set_body(m.body);
    protocol::appendNative(out, e);
  }
  void ack(std::string& out, std::uint64_t seq) override {
    pb::Envelope e;
    e.mutable_ack()->set_seq(seq);
    e.mutable_ack()->set_cumulative(true);
    protocol::appendNative(out, e);
  }
  void ping(std::string& out, std::uint64_t nonce) override {
    pb::Envelope e;
    e.mutable_ping()->set_nonce(nonce);
    protocol::appendNative(out, e);
  }
  void pong(std::string& out, std::uint64_t nonce) override {
    pb::Envelope e;
    e.mutable_pong()->set_nonce(nonce);
    protocol::appendNative(out, e);
  }
  void bye(std::string& out) override {
    pb::Envelope e;
    e.mutable_bye();
    protocol::appendNative(out, e);
  }

  void feed(std::string_view bytes) override { parser_.feed(bytes); }

  bool next(WireEvent& ev) override {
    if (failed_) return false;
    switch (parser_.next()) {
      case protocol::NativeParser::Status::NeedMore:
        return false;
      case protocol::NativeParser::Status::Error:
        failed_ = true;
        ev = WireEvent{};
        ev.kind = Kind::Fatal;
        ev.error = Error{Errc::BadRequest, "bad frame from the server: " + parser_.error().message};
        return true;
      case protocol::NativeParser::Status::Frame:
        break;
    }
    ev = WireEvent{};
    decode(parser_.envelope(), ev);
    return true;
  }

 private:
  void decode(pb::Envelope& e, WireEvent& ev) {
    switch (e.body_case()) {
      case pb::Envelope::kLoginResult: {
        const auto& r = e.login_result();
        ev.kind = Kind::Connected;
        ev.user_id = r.user_id();
        ev.username = r.username();
        // The server answers our pings; it sends nothing on its own while idle.
        ev.beat_every = heartbeat_;
        ev.expect_every = heartbeat_;
        return;
      }
      case pb::Envelope::kSyncStarted:
        ev.kind = Kind::SyncStarted;
        ev.seq = e.sync_started().from_seq();
        return;
      case pb::Envelope::kDeliver: {
        auto& d = *e.mutable_deliver();
        ev.kind = Kind::Message;
        Message& m = ev.message;
        m.seq = d.seq();
        m.msg_id = d.msg_id();
        m.client_msg_id = std::move(*d.mutable_client_msg_id());
        m.conversation = std::move(*d.mutable_conversation());
        m.conv_seq = d.conv_seq();
        m.from = std::move(*d.mutable_from());
        m.sent_at_ms = d.sent_at_ms();
        m.content_type =
            d.content_type().empty() ? "text/plain" : std::move(*d.mutable_content_type());
        m.body = std::move(*d.mutable_body());
        return;
      }
      case pb::Envelope::kSendAck: {
        const auto& a = e.send_ack();
        ev.kind = Kind::SendOk;
        ev.ref = a.client_msg_id();
        ev.receipt = SendReceipt{a.msg_id(),   a.seq(),        a.conversation(),
                                 a.conv_seq(), a.sent_at_ms(), a.duplicate()};
        return;
      }
      case pb::Envelope::kPresence:
        ev.kind = Kind::Presence;
        ev.presence =
            PresenceChange{e.presence().user_id(), e.presence().username(), e.presence().online()};
        return;
      case pb::Envelope::kPong:
        ev.kind = Kind::Pong;
        return;
      case pb::Envelope::kPing:
        ev.kind = Kind::PingRequest;
        ev.nonce = e.ping().nonce();
        return;
      case pb::Envelope::kKicked:
        ev.kind = Kind::Kicked;
        ev.error =
            Error{Errc::Conflict, e.kicked().reason().empty() ? "kicked" : e.kicked().reason()};
        return;
      case pb::Envelope::kBye:
        ev.kind = Kind::Goodbye;
        return;
      case pb::Envelope::kError: {
        const auto& err = e.error();
        const Errc code = errcOfNativeCode(err.code());
        ev.error = Error{code, err.text().empty() ? err.code() : err.text()};
        ev.fatal = err.fatal();
        ev.transient =
            code == Errc::RateLimited || code == Errc::Unavailable || code == Errc::Internal;
        if (code == Errc::Unauthenticated) {
          ev.kind = Kind::AuthFailed;
        } else if (!err.ref().empty()) {
          ev.kind = Kind::SendRefused;
          ev.ref = err.ref();
        } else {
          ev.kind = err.fatal() ? Kind::Fatal : Kind::Warning;
        }
        return;
      }
      default:
        ev.kind = Kind::Other;
        return;
    }
  }

  protocol::NativeParser parser_;
  std::chrono::milliseconds heartbeat_{0};
  bool failed_ = false;
};

// ---- STOMP ---------------------------------------------------------------------------------

class StompWire final : public Wire {
 public:
  explicit StompWire(std::size_t max_frame) : parser_(protocol::StompLimits{max_frame, 64}) {}

  void hello(std::string& out, const Hello& h) override {
    heartbeat_ = h.heartbeat;
    const std::string beat =
        std::to_string(h.heartbeat.count()) + "," + std::to_string(h.heartbeat.count());
    protocol::appendFrame(
        out, "CONNECT",
        {{"accept-version", "1.2"}, {"host", h.host}, {"passcode", h.token}, {"heart-beat", beat}});
  }
  void subscribe(std::string& out, std::uint64_t since, bool presence) override {
    // The RECEIPT comes once the server has fixed where the sync starts (before the first
    // MESSAGE): the SyncStarted event, for onCaughtUp.
    since_ = since;
    if (since > 0) {
      const std::string s = std::to_string(since);
      protocol::appendFrame(out, "SUBSCRIBE",
                            {{"id", kMessagesSub},
                             {"destination", "/user/queue/messages"},
                             {"ack", "client"},
                             {"since", s},
                             {"receipt", kSyncReceipt}});
    } else {
      protocol::appendFrame(out, "SUBSCRIBE",
                            {{"id", kMessagesSub},
                             {"destination", "/user/queue/messages"},
                             {"ack", "client"},
                             {"receipt", kSyncReceipt}});
    }
    if (presence) {
      protocol::appendFrame(out, "SUBSCRIBE",
                            {{"id", kPresenceSub}, {"destination", "/topic/presence"}});
    }
  }
  void send(std::string& out, const OutgoingMessage& m) override {
    const std::string destination =
        m.to.isGroup() ? "/app/group/" + std::to_string(m.to.group) : "/app/p2p/" + m.to.user;
    const std::string receipt = std::string(kSendReceiptPrefix) + m.client_msg_id;
    protocol::appendFrame(out, "SEND",
                          {{"destination", destination},
                           {"client-msg-id", m.client_msg_id},
                           {"receipt", receipt},
                           {"content-type", m.content_type}},
                          m.body);
  }
  void ack(std::string& out, std::uint64_t seq) override {
    protocol::appendFrame(out, "ACK", {{"id", std::to_string(seq)}});
  }
  void ping(std::string& out, std::uint64_t) override { out += '\n'; }
  void pong(std::string&, std::uint64_t) override {}
  void bye(std::string& out) override {
    protocol::appendFrame(out, "DISCONNECT", {{"receipt", kByeReceipt}});
  }

  void feed(std::string_view bytes) override { parser_.feed(bytes); }

  bool next(WireEvent& ev) override {
    if (failed_) return false;
    for (;;) {
      switch (parser_.next()) {
        case protocol::StompParser::Status::NeedMore:
          return false;
        case protocol::StompParser::Status::Heartbeat:
          ev = WireEvent{};
          ev.kind = Kind::Pong;
          return true;
        case protocol::StompParser::Status::Error:
          failed_ = true;
          ev = WireEvent{};
          ev.kind = Kind::Fatal;
          ev.error =
              Error{Errc::BadRequest, "bad frame from the server: " + parser_.error().message};
          return true;
        case protocol::StompParser::Status::Frame:
          ev = WireEvent{};
          decode(parser_.frame(), ev);
          return true;
      }
    }
  }

 private:
  void decode(protocol::StompFrame& f, WireEvent& ev) {
    if (f.command == "MESSAGE") {
      const std::string* sub = f.header("subscription");
      if (sub && *sub == kPresenceSub) return decodePresence(f, ev);
      ev.kind = Kind::Message;
      Message& m = ev.message;
      m.seq = toU64(f.header("seq"));
      m.msg_id = toU64(f.header("msg-id"));
      m.client_msg_id = str(f.header("client-msg-id"));
      m.conversation = str(f.header("conversation"));
      m.conv_seq = toU64(f.header("conv-seq"));
      m.from = str(f.header("from"));
      m.sent_at_ms = toI64(f.header("sent-at"));
      const std::string* type = f.header("content-type");
      m.content_type = type ? *type : "text/plain";
      m.body = std::move(f.body);
      if (m.seq == 0) {
        ev.kind = Kind::Fatal;
        ev.error = Error{Errc::BadRequest, "MESSAGE without a seq from the server"};
      }
      return;
    }
    if (f.command == "RECEIPT") {
      const std::string id = str(f.header("receipt-id"));
      if (id == kByeReceipt) {
        ev.kind = Kind::Goodbye;
      } else if (id == kSyncReceipt) {
        ev.kind = Kind::SyncStarted;
        ev.seq = since_;
        ev.from_cursor = since_ == 0;
      } else if (id.starts_with(kSendReceiptPrefix)) {
        ev.kind = Kind::SendOk;
        ev.ref = id.substr(kSendReceiptPrefix.size());
        const std::string* dup = f.header("duplicate");
        ev.receipt = SendReceipt{toU64(f.header("msg-id")),
                                 toU64(f.header("seq")),
                                 str(f.header("conversation")),
                                 toU64(f.header("conv-seq")),
                                 0,
                                 dup && *dup == "true"};
      } else {
        ev.kind = Kind::Other;
      }
      return;
    }
    if (f.command == "CONNECTED") {
      ev.kind = Kind::Connected;
      ev.user_id = toU64(f.header("user-id"));
      ev.username = str(f.header("user-name"));
      // STOMP 1.2 negotiation: heart-beat:sx,sy from the server, cx,cy = ours.
      std::uint64_t sx = 0, sy = 0;
      if (const std::string* hb = f.header("heart-beat")) {
        const auto comma = hb->find(',');
        if (comma != std::string::npos) {
          const std::string a = hb->substr(0, comma), b = hb->substr(comma + 1);
          sx = toU64(&a);
          sy = toU64(&b);
        }
      }
      const auto ours = std::uint64_t(heartbeat_.count());
      if (ours > 0 && sy > 0) ev.beat_every = std::chrono::milliseconds(std::max(ours, sy));
      if (ours > 0 && sx > 0) ev.expect_every = std::chrono::milliseconds(std::max(ours, sx));
      return;
    }
    if (f.command == "ERROR") {
      const std::string message = str(f.header("message"));
      const Errc code = errcOfStompMessage(message);
      std::string text = message.empty() ? "error" : message;
      if (!f.body.empty()) text += ": " + f.body;
      ev.error = Error{code, std::move(text)};
      ev.fatal = true;  // STOMP: the server closes after every ERROR
      ev.transient = code == Errc::RateLimited || code == Errc::Unavailable;
      const std::string receipt = str(f.header("receipt-id"));
      if (message == "kicked") {
        ev.kind = Kind::Kicked;
        ev.error.message = f.body.empty() ? "kicked" : f.body;
      } else if (code == Errc::Unauthenticated) {
        ev.kind = Kind::AuthFailed;
      } else if (receipt.starts_with(kSendReceiptPrefix)) {
        ev.kind = Kind::SendRefused;
        ev.ref = receipt.substr(kSendReceiptPrefix.size());
      } else {
        ev.kind = Kind::Fatal;
      }
      return;
    }
    ev.kind = Kind::Other;
  }

  void decodePresence(const protocol::StompFrame& f, WireEvent& ev) {
    ev.kind = Kind::Other;
    boost::system::error_code ec;
    const boost::json::value v = boost::json::parse(f.body, ec);
    if (ec || !v.is_object()) return;
    const auto& o = v.as_object();
    const auto* id = o.if_contains("user_id");
    const auto* name = o.if_contains("username");
    const auto* online = o.if_contains("online");
    if (!id || !id->is_string() || !name || !name->is_string() || !online || !online->is_bool())
      return;
    const std::string id_text(id->as_string());
    ev.kind = Kind::Presence;
    ev.presence =
        PresenceChange{toU64(&id_text), std::string(name->as_string()), online->as_bool()};
  }

  protocol::StompParser parser_;
  std::chrono::milliseconds heartbeat_{0};
  std::uint64_t since_ = 0;  // of the SUBSCRIBE, for its RECEIPT
  bool failed_ = false;
};

}  // namespace

std::unique_ptr<Wire> makeNativeWire(std::size_t max_frame_bytes) {
  return std::make_unique<NativeWire>(max_frame_bytes);
}
std::unique_ptr<Wire> makeStompWire(std::size_t max_frame_bytes) {
  return std::make_unique<StompWire>(max_frame_bytes);
}

Errc errcOfNativeCode(std::string_view code) {
  if (code == "no_such_recipient" || code == "not_found") return Errc::NotFound;
  if (code == "forbidden") return Errc::Forbidden;
  if (code == "too_large") return Errc::TooLarge;
  if (code == "rate_limited") return Errc::RateLimited;
  if (code == "unavailable") return Errc::Unavailable;
  if (code == "internal") return Errc::Internal;
  if (code == "unauthenticated" || code == "missing_token") return Errc::Unauthenticated;
  if (code == "conflict" || code == "kicked") return Errc::Conflict;
  return Errc::BadRequest;
}

Errc errcOfStompMessage(std::string_view message) {
  if (message == "no such recipient") return Errc::NotFound;
  if (message == "forbidden") return Errc::Forbidden;
  if (message == "body too large" || message == "frame too large") return Errc::TooLarge;
  if (message == "rate limit exceeded" || message == "too many receipts pending") {
    return Errc::RateLimited;
  }
  if (message == "server unavailable") return Errc::Unavailable;
  if (message == "authentication failed" || message == "missing passcode") {
    return Errc::Unauthenticated;
  }
  if (message == "kicked") return Errc::Conflict;
  return Errc::BadRequest;
}

}  // namespace pigeon::client
