#include "gateway/stomp_session.h"

#include <spdlog/spdlog.h>

#include <charconv>

#include "core/conversation.h"
#include "core/validation.h"
#include "gateway/websocket_handshake.h"

namespace pigeon::gateway {
namespace asio = boost::asio;
using protocol::StompFrame;
using protocol::StompParser;
using store::Seq;

namespace {

constexpr std::string_view kQueueDestination = "/user/queue/messages";
constexpr std::string_view kPresenceDestination = "/topic/presence";
constexpr std::string_view kServerName = "pigeon/0.1";

bool parseU64(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

// "cx,cy" of a heart-beat header.
bool parseHeartbeat(std::string_view s, std::uint32_t& cx, std::uint32_t& cy) {
  const auto comma = s.find(',');
  if (comma == std::string_view::npos) return false;
  std::uint64_t a, b;
  if (!parseU64(s.substr(0, comma), a) || !parseU64(s.substr(comma + 1), b)) return false;
  if (a > 86400000 || b > 86400000) return false;
  cx = std::uint32_t(a);
  cy = std::uint32_t(b);
  return true;
}

}  // namespace

StompSession::StompSession(Gateway& gateway, LoopState& loop,
                           std::unique_ptr<net::Transport> transport, std::string bearer)
    : Session(gateway, loop, std::move(transport)),
      bearer_(std::move(bearer)),
      ws_(gateway.options().max_frame_bytes * 4),
      stomp_(protocol::StompLimits{gateway.options().max_frame_bytes, 64}) {}

void StompSession::start(std::string handshake, std::string leftover) {
  begin(OutFrame{std::move(handshake), nullptr, nullptr, 0, kRawWs});
  if (!leftover.empty()) {
    feed(leftover.data(), leftover.size());
    if (phase_ >= Phase::Closing) return;
  }
  pump();
}

// ---- framing -------------------------------------------------------------------------------

bool StompSession::feed(char* data, std::size_t size) {
  if (!ws_.feed(data, size, *this)) {
    gateway_.metrics().errors.inc();
    spdlog::debug("gateway: session {}: websocket error: {}", id_, ws_.error());
    // The peer broke the WebSocket framing: there is no STOMP channel to report on, only the
    // close code the parser chose (1002 protocol error, 1009 message too big).
    ws_close_code_ = ws_.closeCode();
    beginClose(CloseKind::Error);
    return false;
  }
  return true;
}

void StompSession::onData(std::string_view payload) { stomp_.feed(payload); }

void StompSession::onPing(std::string_view payload) {
  enqueue(OutFrame{protocol::wsFrame(protocol::WsOpcode::Pong, payload), nullptr, nullptr, 0, kRawWs});
}

void StompSession::onClose(std::uint16_t, std::string_view) {
  if (phase_ < Phase::Closing) beginClose(CloseKind::Normal);
}

bool StompSession::handleNextFrame() {
  for (;;) {
    const auto status = stomp_.next();
    if (status == StompParser::Status::NeedMore) return false;
    if (status == StompParser::Status::Heartbeat) continue;
    if (status == StompParser::Status::Error) {
      const Error& e = stomp_.error();
      stompFatal(e.code == Errc::TooLarge ? "frame too large" : "malformed frame", nullptr, e.message);
      return false;
    }
    if (!admitFrame()) return false;
    handleFrame(stomp_.frame());
    return true;
  }
}

void StompSession::appendBuffers(std::span<OutFrame> batch, std::vector<asio::const_buffer>& out) {
  ws_headers_.clear();
  ws_headers_.reserve(batch.size());  // no reallocation: the buffers point into it
  for (std::size_t i = 0; i < batch.size();) {
    const OutFrame& f = batch[i];
    if (f.kind == kRawWs) {
      out.emplace_back(asio::buffer(f.own));
      ++i;
      continue;
    }
    // A run of STOMP frames of the same kind (text or binary) becomes one WebSocket message,
    // so a burst of deliveries costs one header.
    std::size_t j = i;
    std::uint64_t len = 0;
    while (j < batch.size() && batch[j].kind == f.kind) {
      len += batch[j].size();
      ++j;
    }
    auto& header = ws_headers_.emplace_back();
    const std::size_t n = protocol::wsFrameHeader(
        header.data(), f.kind == kBinary ? protocol::WsOpcode::Binary : protocol::WsOpcode::Text, len);
    out.emplace_back(asio::buffer(header.data(), n));
    for (; i < j; ++i) {
      out.emplace_back(asio::buffer(batch[i].own));
      if (batch[i].tail) out.emplace_back(asio::buffer(*batch[i].tail));
    }
  }
}

void StompSession::onBatchWritten() { std::vector<std::array<std::uint8_t, 10>>().swap(ws_headers_); }

void StompSession::sendFrame(
    std::string_view command,
    std::initializer_list<std::pair<std::string_view, std::string_view>> headers,
    std::string_view body) {
  OutFrame f;
  protocol::appendFrame(f.own, command, headers, body);
  f.kind = core::isValidUtf8(f.own) ? kText : kBinary;  // ids and bodies echo client bytes
  enqueue(std::move(f));
}

void StompSession::stompFatal(std::string_view message, const std::string* receipt,
                              std::string_view detail) {
  fatal({}, message, receipt, detail);
}

Session::OutFrame StompSession::errorFrame(std::string_view, std::string_view message,
                                           const std::string* receipt, std::string_view detail) {
  OutFrame f;
  if (receipt) {
    protocol::appendFrame(f.own, "ERROR",
                          {{"message", message}, {"receipt-id", *receipt}, {"content-type", "text/plain"}},
                          detail);
  } else {
    protocol::appendFrame(f.own, "ERROR", {{"message", message}, {"content-type", "text/plain"}},
                          detail);
  }
  f.kind = core::isValidUtf8(f.own) ? kText : kBinary;
  return f;
}

std::optional<Session::OutFrame> StompSession::closeFrame(CloseKind kind) {
  const std::uint16_t code = ws_close_code_ ? ws_close_code_
                             : kind == CloseKind::Normal ? protocol::kWsCloseNormal
                                                         : protocol::kWsClosePolicyViolation;
  return OutFrame{protocol::wsCloseFrame(code, ""), nullptr, nullptr, 0, kRawWs};
}

Session::OutFrame StompSession::heartbeatFrame() { return OutFrame{"\n", nullptr, nullptr, 0, kText}; }

// ---- STOMP frames --------------------------------------------------------------------------

void StompSession::handleFrame(StompFrame& frame) {
  const std::string& cmd = frame.command;
  const std::string* receipt = frame.header("receipt");
  if (phase_ == Phase::AwaitingLogin) {
    if (cmd == "CONNECT" || cmd == "STOMP") return onConnect(frame);
    return stompFatal("not connected", receipt, "send CONNECT (with the token as passcode) first");
  }
  if (cmd == "SEND") return onSend(frame);
  if (cmd == "ACK") return onAck(frame, false);
  if (cmd == "NACK") return onAck(frame, true);
  if (cmd == "SUBSCRIBE") return onSubscribe(frame);
  if (cmd == "UNSUBSCRIBE") return onUnsubscribe(frame);
  if (cmd == "DISCONNECT") {
    const std::string* r = frame.header("receipt");
    return disconnect(r ? std::optional<std::string>(*r) : std::nullopt);
  }
  if (cmd == "CONNECT" || cmd == "STOMP") return stompFatal("already connected", receipt);
  if (cmd == "BEGIN" || cmd == "COMMIT" || cmd == "ABORT") {
    return stompFatal("transactions are not supported", receipt);
  }
  return stompFatal("unknown command", receipt, "'" + cmd + "' is not a STOMP 1.2 client command");
}

void StompSession::onConnect(StompFrame& frame) {
  const std::string* versions = frame.header("accept-version");
  if (!versions || !headerListHas(*versions, "1.2")) {
    OutFrame f;
    protocol::appendFrame(f.own, "ERROR",
                          {{"version", "1.2"}, {"message", "unsupported protocol version"},
                           {"content-type", "text/plain"}},
                          "this server speaks STOMP 1.2: send accept-version:1.2");
    enqueue(std::move(f), true);
    gateway_.metrics().errors.inc();
    return beginClose(CloseKind::Error);
  }
  std::uint32_t cx = 0, cy = 0;
  if (const std::string* hb = frame.header("heart-beat"); hb && !parseHeartbeat(*hb, cx, cy)) {
    return stompFatal("malformed heart-beat header", nullptr, "expected heart-beat:<cx>,<cy>");
  }
  std::string token;
  if (const std::string* passcode = frame.header("passcode"); passcode && !passcode->empty()) {
    token = *passcode;
  } else {
    token = bearer_;
  }
  if (token.empty()) {
    return stompFatal("missing passcode", nullptr,
                      "send the token from POST /api/v1/sessions as the passcode header");
  }
  const std::string* name = frame.header("login");
  login(std::move(token), name ? *name : std::string(), std::string(), cx, cy);
}

void StompSession::onLoggedIn(std::uint32_t server_beat_ms) {
  bearer_.clear();
  bearer_.shrink_to_fit();
  const std::string hb = std::to_string(server_beat_ms) + "," + std::to_string(server_beat_ms);
  const std::string session = std::to_string(id_);
  const std::string user_id = std::to_string(principal_.user);
  sendFrame("CONNECTED", {{"version", "1.2"},
                          {"heart-beat", hb},
                          {"session", session},
                          {"server", kServerName},
                          {"user-id", user_id},
                          {"user-name", principal_.username}});
}

void StompSession::onSend(StompFrame& frame) {
  const std::string* receipt = frame.header("receipt");
  const std::string* destination = frame.header("destination");
  if (!destination) return stompFatal("missing destination", receipt, "SEND needs a destination header");
  core::SendRequest request;
  std::string_view dest = *destination;
  if (dest.starts_with("/app/p2p/") && dest.size() > 9) {
    request.to_user = std::string(dest.substr(9));
  } else if (dest.starts_with("/app/group/") && dest.size() > 11) {
    const std::string_view id = dest.substr(11);
    std::uint64_t gid = 0;
    if (id == core::kLobbyName) {
      gid = core::kLobbyId;
    } else if (!parseU64(id, gid) || gid == 0) {
      return stompFatal("unknown destination", receipt, "group ids are positive integers or 'lobby'");
    }
    request.to_group = gid;
  } else {
    return stompFatal("unknown destination", receipt,
                      "send to /app/p2p/<username> or /app/group/<group_id>, not '" + *destination + "'");
  }
  if (const std::string* id = frame.header("client-msg-id")) request.client_msg_id = *id;
  if (const std::string* type = frame.header("content-type")) request.content_type = *type;
  request.body = std::move(frame.body);
  submitSend(std::move(request), receipt ? std::optional<std::string>(*receipt) : std::nullopt);
}

void StompSession::onSendAccepted(const core::SendResult& result, const std::optional<std::string>& ref) {
  if (!ref) return;
  const std::string msg_id = std::to_string(result.msg_id);
  const std::string seq = std::to_string(result.seq);
  const std::string conv_seq = std::to_string(result.conv_seq);
  sendFrame("RECEIPT", {{"receipt-id", *ref},
                        {"msg-id", msg_id},
                        {"seq", seq},
                        {"conversation", result.conversation},
                        {"conv-seq", conv_seq},
                        {"duplicate", result.duplicate ? "true" : "false"}});
}

void StompSession::onSendRefused(const Error& e, const std::optional<std::string>& ref) {
  // STOMP 1.2: a SEND the server cannot process gets an ERROR, and the connection closes.
  const char* message = "send failed";
  switch (e.code) {
    case Errc::NotFound: message = "no such recipient"; break;
    case Errc::Forbidden: message = "forbidden"; break;
    case Errc::TooLarge: message = "body too large"; break;
    case Errc::BadRequest: message = "invalid send"; break;
    case Errc::Unavailable: message = "server unavailable"; break;
    default: break;
  }
  stompFatal(message, ref ? &*ref : nullptr, e.message);
}

void StompSession::onSubscribe(StompFrame& frame) {
  const std::string* receipt = frame.header("receipt");
  const std::string* id = frame.header("id");
  const std::string* destination = frame.header("destination");
  if (!id || id->empty()) return stompFatal("missing id", receipt, "SUBSCRIBE needs an id header");
  if (!destination) return stompFatal("missing destination", receipt, "SUBSCRIBE needs a destination");
  if ((sub_ && sub_->id == *id) || (presence_sub_ && *presence_sub_ == *id)) {
    return stompFatal("duplicate subscription id", receipt, "id '" + *id + "' is in use");
  }
  std::string_view dest = *destination;
  if (dest == kPresenceDestination) {
    if (presence_sub_) return stompFatal("already subscribed", receipt, "one presence subscription per connection");
    subscribePresence(*id);
    return onReceipt(receipt);
  }
  // "/user/queue/messages", or the explicit "/user/<own name>/queue/messages".
  if (dest != kQueueDestination) {
    const std::string own = "/user/" + principal_.username + "/queue/messages";
    if (dest == own) {
      // fine: an explicit form of our own queue
    } else if (dest.starts_with("/user/") && dest.ends_with("/queue/messages")) {
      return stompFatal("forbidden", receipt, "you may subscribe only to your own queue");
    } else {
      return stompFatal("unknown destination", receipt,
                        "subscribe to /user/queue/messages or /topic/presence, not '" + *destination + "'");
    }
  }
  if (sub_) return stompFatal("already subscribed", receipt, "one message subscription per connection");
  AckMode mode = AckMode::Auto;
  if (const std::string* ack = frame.header("ack")) {
    if (*ack == "auto") {
      mode = AckMode::Auto;
    } else if (*ack == "client") {
      mode = AckMode::Client;
    } else if (*ack == "client-individual") {
      mode = AckMode::ClientIndividual;
    } else {
      return stompFatal("invalid ack mode", receipt, "ack must be auto, client or client-individual");
    }
  }
  std::optional<Seq> since;
  if (const std::string* s = frame.header("since")) {
    std::uint64_t v = 0;
    if (!parseU64(*s, v)) return stompFatal("invalid since", receipt, "since must be a seq number");
    since = v;
  }
  subscribe(Subscription{*id, std::string(dest), mode}, since, receipt);
}

void StompSession::onSubscribed(const std::string* receipt, Seq) { onReceipt(receipt); }

void StompSession::onReceipt(const std::string* receipt) {
  if (receipt) sendFrame("RECEIPT", {{"receipt-id", *receipt}});
}

void StompSession::onUnsubscribe(StompFrame& frame) {
  const std::string* receipt = frame.header("receipt");
  const std::string* id = frame.header("id");
  if (!id) return stompFatal("missing id", receipt, "UNSUBSCRIBE needs the subscription id");
  if (unsubscribe(*id) || unsubscribePresence(*id)) return onReceipt(receipt);
  return stompFatal("unknown subscription", receipt, "no subscription with id '" + *id + "'");
}

void StompSession::onAck(StompFrame& frame, bool is_nack) {
  const std::string* receipt = frame.header("receipt");
  const std::string* id = frame.header("id");
  std::uint64_t seq = 0;
  if (!id || !parseU64(*id, seq) || seq == 0) {
    return stompFatal("invalid ack", receipt, "ACK and NACK need the id from the MESSAGE's ack header");
  }
  if (!sub_ || sub_->mode == AckMode::Auto) {
    return stompFatal("invalid ack", receipt, "no subscription with ack:client or ack:client-individual");
  }
  if (auto problem = ackProblem(seq); !problem.empty()) {
    return stompFatal("invalid ack", receipt, problem);
  }
  if (is_nack) return nack(receipt);
  acknowledge(seq, sub_->mode == AckMode::Client, receipt);
}

void StompSession::onDisconnected(const std::optional<std::string>& receipt) {
  if (receipt) sendFrame("RECEIPT", {{"receipt-id", *receipt}});
}

void StompSession::onKicked() {
  stompFatal("kicked", nullptr, "this device connected again from somewhere else");
}

// ---- delivery ------------------------------------------------------------------------------

void StompSession::encodePresence(const PresenceEvent& event) {
  const std::string body = "{\"user_id\":\"" + std::to_string(event.user) + "\",\"username\":\"" +
                           event.username + "\",\"online\":" + (event.online ? "true" : "false") + "}";
  const std::string message_id = "p-" + std::to_string(++presence_counter_);
  sendFrame("MESSAGE", {{"destination", kPresenceDestination},
                        {"subscription", *presence_sub_},
                        {"message-id", message_id},
                        {"content-type", "application/json"}},
            body);
}

void StompSession::encodeMessage(OutFrame& f, std::shared_ptr<const OutboundMessage> message, Seq seq) {
  const std::string seq_text = std::to_string(seq);
  std::string& h = f.own;
  h.reserve(96 + sub_->id.size());
  h += "MESSAGE\ndestination:";
  protocol::appendEscaped(h, sub_->destination);
  h += "\nsubscription:";
  protocol::appendEscaped(h, sub_->id);
  h += "\nmessage-id:";
  h += seq_text;
  if (sub_->mode != AckMode::Auto) {
    h += "\nack:";
    h += seq_text;
  }
  h += "\nseq:";
  h += seq_text;
  h += '\n';
  f.kind = message->body_is_utf8 ? kText : kBinary;
  f.tail = &message->stomp_tail;
  f.shared = std::move(message);
}

}  // namespace pigeon::gateway
