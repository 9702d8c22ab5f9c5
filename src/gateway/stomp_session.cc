#include "gateway/stomp_session.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <chrono>

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
constexpr std::size_t kMaxBatchFrames = 64;
constexpr std::size_t kMaxBatchBytes = 256 * 1024;
constexpr std::int64_t kCloseGraceMs = 2000;

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

StompSession::StompSession(Gateway& gateway, LoopState& loop, asio::ip::tcp::socket socket,
                           std::string bearer)
    : gateway_(gateway),
      loop_(loop),
      socket_(std::move(socket)),
      id_(gateway.nextSessionId()),
      bearer_(std::move(bearer)),
      ws_(gateway.options().max_frame_bytes * 4),
      stomp_(protocol::StompLimits{gateway.options().max_frame_bytes, 64}) {}

StompSession::~StompSession() = default;

std::int64_t StompSession::nowMs() const {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

void StompSession::start(std::string handshake, std::string leftover) {
  boost::system::error_code ec;
  socket_.non_blocking(true, ec);
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  socket_.set_option(asio::socket_base::keep_alive(true), ec);
  const auto& opts = gateway_.options();
  const int fd = socket_.native_handle();
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &opts.keepalive_idle_s, sizeof(int));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &opts.keepalive_interval_s, sizeof(int));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &opts.keepalive_count, sizeof(int));
  gateway_.metrics().sessions.add(1);
  const auto now = nowMs();
  last_read_ms_ = last_write_ms_ = tokens_ms_ = now;
  tokens_ = gateway_.options().frame_burst;
  connect_deadline_ = now + gateway_.options().connect_timeout_ms;
  enqueue(OutFrame{std::move(handshake), nullptr, 0, true, false});
  rescheduleTimer();
  if (!leftover.empty()) {
    feed(leftover.data(), leftover.size());
    if (phase_ >= Phase::Closing) return;
  }
  pump();
}

// ---- reading -------------------------------------------------------------------------------

void StompSession::armRead() {
  if (reading_ || phase_ == Phase::Closed || (phase_ == Phase::Closing && !draining_)) return;
  reading_ = true;
  // Wait for readability without a buffer: an idle connection holds none.
  socket_.async_wait(asio::ip::tcp::socket::wait_read,
                     [self = shared_from_this()](const boost::system::error_code& ec) {
                       self->onReadable(ec);
                     });
}

void StompSession::onReadable(const boost::system::error_code& ec) {
  reading_ = false;
  if (phase_ == Phase::Closed) return;
  if (draining_) {
    // Closing: discard what the peer still sends until it closes its side.
    boost::system::error_code rec;
    for (;;) {
      const std::size_t n = socket_.read_some(asio::buffer(loop_.scratch), rec);
      if (rec == asio::error::would_block || rec == asio::error::try_again) return armRead();
      if (rec || n == 0) return closeNow("closed");
    }
  }
  if (phase_ >= Phase::Closing) return;
  if (ec) return closeNow("wait for read failed");
  for (int round = 0; round < 4; ++round) {
    boost::system::error_code rec;
    const std::size_t n = socket_.read_some(asio::buffer(loop_.scratch), rec);
    if (rec == asio::error::would_block || rec == asio::error::try_again) break;
    if (rec || n == 0) return closeNow(rec == asio::error::eof ? "peer closed" : "read failed");
    last_read_ms_ = nowMs();
    feed(loop_.scratch.data(), n);
    if (phase_ >= Phase::Closing || n < loop_.scratch.size()) break;
  }
  pump();
}

void StompSession::feed(char* data, std::size_t size) {
  if (!ws_.feed(data, size, *this)) {
    gateway_.metrics().errors.inc();
    spdlog::debug("gateway: session {}: websocket error: {}", id_, ws_.error());
    // The peer broke the WebSocket framing: there is no STOMP channel to report on.
    beginClose(ws_.closeCode());
  }
}

void StompSession::onData(std::string_view payload) { stomp_.feed(payload); }

void StompSession::onPing(std::string_view payload) {
  enqueue(OutFrame{protocol::wsFrame(protocol::WsOpcode::Pong, payload), nullptr, 0, true, false});
}

void StompSession::onClose(std::uint16_t, std::string_view) {
  if (phase_ < Phase::Closing) beginClose(protocol::kWsCloseNormal);
}

bool StompSession::inputBlocked() const {
  return phase_ == Phase::Connecting || disconnect_pending_ ||
         inflight_sends_ >= gateway_.options().max_inflight_sends ||
         queue_bytes_ > gateway_.options().max_outbound_bytes / 2;
}

void StompSession::pump() {
  while (phase_ < Phase::Closing && !inputBlocked()) {
    const auto status = stomp_.next();
    if (status == StompParser::Status::NeedMore) break;
    if (status == StompParser::Status::Heartbeat) continue;
    if (status == StompParser::Status::Error) {
      const Error& e = stomp_.error();
      return fatal(e.code == Errc::TooLarge ? "frame too large" : "malformed frame", nullptr,
                   e.message);
    }
    gateway_.metrics().frames_in.inc();
    // Token bucket: frame_rate per second, up to frame_burst.
    const auto& opts = gateway_.options();
    if (opts.frame_rate > 0) {
      const auto now = nowMs();
      tokens_ = std::min(opts.frame_burst, tokens_ + double(now - tokens_ms_) * opts.frame_rate / 1000.0);
      tokens_ms_ = now;
      if (tokens_ < 1) {
        return fatal("rate limit exceeded", nullptr,
                     "more than " + std::to_string(int(opts.frame_rate)) + " frames per second");
      }
      tokens_ -= 1;
    }
    handleFrame(stomp_.frame());
  }
  if (phase_ < Phase::Closing && !inputBlocked()) armRead();
}

// ---- writing -------------------------------------------------------------------------------

void StompSession::enqueue(OutFrame frame, bool exempt) {
  if (phase_ == Phase::Closed || (phase_ == Phase::Closing && !exempt)) return;
  const std::size_t size = frame.size();
  if (!exempt && queue_bytes_ + size > gateway_.options().max_outbound_bytes) {
    gateway_.metrics().slow_consumers.inc();
    spdlog::info("gateway: session {} ({}): outbound queue over {} bytes, closing (slow consumer)",
                 id_, principal_.username, gateway_.options().max_outbound_bytes);
    return closeNow("slow consumer");
  }
  queue_bytes_ += size;
  gateway_.metrics().outbound_bytes.add(std::int64_t(size));
  queue_.push_back(std::move(frame));
  flush();
}

void StompSession::flush() {
  if (writing_ || queue_.empty() || phase_ == Phase::Closed) return;
  // Take a batch: consecutive STOMP frames share one WebSocket message (one header), so a
  // burst of deliveries costs one write.
  std::size_t count = 0, bytes = 0;
  while (count < queue_.size() && count < kMaxBatchFrames && bytes < kMaxBatchBytes) {
    bytes += queue_[count].size();
    ++count;
  }
  inflight_.assign(std::make_move_iterator(queue_.begin()),
                   std::make_move_iterator(queue_.begin() + std::ptrdiff_t(count)));
  queue_.erase(queue_.begin(), queue_.begin() + std::ptrdiff_t(count));

  buffers_.clear();
  ws_headers_.clear();
  ws_headers_.reserve(count);  // no reallocation: buffers_ point into it
  for (std::size_t i = 0; i < inflight_.size();) {
    const OutFrame& f = inflight_[i];
    if (f.raw_ws) {
      buffers_.emplace_back(asio::buffer(f.own));
      ++i;
      continue;
    }
    // A run of STOMP frames of the same kind (text or binary) becomes one message.
    std::size_t j = i;
    std::uint64_t len = 0;
    while (j < inflight_.size() && !inflight_[j].raw_ws && inflight_[j].binary == f.binary) {
      len += inflight_[j].size();
      ++j;
    }
    auto& header = ws_headers_.emplace_back();
    const std::size_t n = protocol::wsFrameHeader(
        header.data(), f.binary ? protocol::WsOpcode::Binary : protocol::WsOpcode::Text, len);
    buffers_.emplace_back(asio::buffer(header.data(), n));
    for (; i < j; ++i) {
      buffers_.emplace_back(asio::buffer(inflight_[i].own));
      if (inflight_[i].shared) buffers_.emplace_back(asio::buffer(inflight_[i].shared->stomp_tail));
    }
  }
  writing_ = true;
  write_started_ms_ = nowMs();
  rescheduleTimer();  // the write timeout
  gateway_.metrics().frames_out.inc(count);
  asio::async_write(socket_, buffers_,
                    [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                      self->onWritten(ec);
                    });
}

void StompSession::onWritten(const boost::system::error_code& ec) {
  writing_ = false;
  if (phase_ == Phase::Closed) return;
  if (ec) return closeNow("write failed");
  std::size_t written = 0;
  Seq auto_acked = 0;
  for (const OutFrame& f : inflight_) {
    written += f.size();
    auto_acked = std::max(auto_acked, f.auto_ack);
  }
  queue_bytes_ -= written;
  gateway_.metrics().outbound_bytes.add(-std::int64_t(written));
  inflight_.clear();
  last_write_ms_ = nowMs();
  if (queue_.empty()) {
    // Idle again: give the batch memory back.
    std::vector<OutFrame>().swap(inflight_);
    std::vector<OutFrame>().swap(queue_);
    std::vector<asio::const_buffer>().swap(buffers_);
    std::vector<std::array<std::uint8_t, 10>>().swap(ws_headers_);
  }
  if (auto_acked > cursor_target_) {
    cursor_target_ = auto_acked;  // ack:auto: written is acknowledged
    persistCursor();
  }
  if (phase_ == Phase::Closing && queue_.empty()) {
    // Everything (the ERROR, the close frame) is out: half-close, then read and discard until
    // the peer closes too (or the close deadline), so pipelined bytes it sent do not turn our
    // close into a reset that could destroy the ERROR before the peer reads it.
    boost::system::error_code ignored;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    draining_ = true;
    reading_ = false;
    return armRead();
  }
  flush();
  if (phase_ == Phase::Connected) startSync();  // room may have opened
  if (phase_ < Phase::Closing) pump();          // input may have been blocked on the queue
}

void StompSession::beginClose(std::uint16_t ws_code) {
  if (phase_ >= Phase::Closing) return;
  phase_ = Phase::Closing;
  // SENDs queued behind the one being checked are dropped: nothing after an ERROR is stored.
  inflight_sends_ -= send_queue_.size();
  send_queue_.clear();
  close_deadline_ = nowMs() + kCloseGraceMs;
  enqueue(OutFrame{protocol::wsCloseFrame(ws_code, ""), nullptr, 0, true, false}, true);
  rescheduleTimer();
}

void StompSession::closeNow(const char* why) {
  if (phase_ == Phase::Closed) return;
  spdlog::debug("gateway: session {} ({}) closed: {}", id_, principal_.username, why);
  phase_ = Phase::Closed;
  boost::system::error_code ignored;
  socket_.close(ignored);
  cleanup();
}

void StompSession::cleanup() {
  loop_.wheel.cancel(*this);
  if (attached_) {
    attached_ = false;
    gateway_.hub().detach(principal_.user, principal_.device, this);
  }
  if (presence_sub_) {
    presence_sub_.reset();
    gateway_.hub().unsubscribePresence(principal_.user, this);
  }
  gateway_.metrics().outbound_bytes.add(-std::int64_t(queue_bytes_));
  queue_bytes_ = 0;
  // inflight_ stays until the pending write completes: its buffers point into it.
  std::vector<OutFrame>().swap(queue_);
  inflight_sends_ -= send_queue_.size();
  std::vector<PendingSend>().swap(send_queue_);
  gateway_.metrics().sessions.add(-1);
}

// ---- timers --------------------------------------------------------------------------------

void StompSession::rescheduleTimer() {
  if (phase_ == Phase::Closed) return;
  const auto now = nowMs();
  std::int64_t due = now + 60000;
  if (phase_ == Phase::AwaitingConnect || phase_ == Phase::Connecting) {
    due = std::min(due, connect_deadline_);
  }
  if (phase_ == Phase::Closing) due = std::min(due, close_deadline_);
  if (in_heartbeat_ms_) due = std::min(due, last_read_ms_ + 2 * std::int64_t(in_heartbeat_ms_) + 1);
  if (out_heartbeat_ms_) due = std::min(due, last_write_ms_ + std::int64_t(out_heartbeat_ms_));
  if (writing_) due = std::min(due, write_started_ms_ + gateway_.options().write_timeout_ms);
  if (sync_retry_at_) due = std::min(due, sync_retry_at_);
  loop_.wheel.schedule(*this, due - now);
}

void StompSession::onTimer() {
  auto self = shared_from_this();
  const auto now = nowMs();
  auto& m = gateway_.metrics();
  if ((phase_ == Phase::AwaitingConnect || phase_ == Phase::Connecting) && now >= connect_deadline_) {
    m.connect_timeouts.inc();
    return fatal("connect timeout", nullptr,
                 "no CONNECT within " + std::to_string(gateway_.options().connect_timeout_ms) + " ms");
  }
  if (phase_ == Phase::Closing && now >= close_deadline_) return closeNow("close timed out");
  if (writing_ && now - write_started_ms_ >= gateway_.options().write_timeout_ms) {
    m.slow_consumers.inc();
    return closeNow("write timeout (slow consumer)");
  }
  if (phase_ == Phase::Connected) {
    // While we are not reading (input blocked on our side), the client's heart-beats wait in
    // the socket: that is not silence.
    if (inputBlocked()) last_read_ms_ = now;
    if (sync_retry_at_ && now >= sync_retry_at_) {
      sync_retry_at_ = 0;
      more_in_store_ = true;
      startSync();
    }
    if (in_heartbeat_ms_ && now - last_read_ms_ > 2 * std::int64_t(in_heartbeat_ms_)) {
      m.heartbeat_timeouts.inc();
      spdlog::info("gateway: session {} ({}): silent for {} ms, closing", id_, principal_.username,
                   now - last_read_ms_);
      return closeNow("heart-beat timeout");
    }
    if (out_heartbeat_ms_ && now - last_write_ms_ >= std::int64_t(out_heartbeat_ms_) && !writing_) {
      last_write_ms_ = now;
      enqueue(OutFrame{"\n", nullptr, 0, false, false});  // a STOMP heart-beat
    }
  }
  rescheduleTimer();
}

// ---- STOMP frames --------------------------------------------------------------------------

void StompSession::sendFrame(
    std::string_view command,
    std::initializer_list<std::pair<std::string_view, std::string_view>> headers,
    std::string_view body) {
  OutFrame f;
  protocol::appendFrame(f.own, command, headers, body);
  f.binary = !core::isValidUtf8(f.own);  // ids and bodies echo client bytes
  enqueue(std::move(f));
}

void StompSession::sendReceipt(const std::string* receipt) {
  if (receipt) sendFrame("RECEIPT", {{"receipt-id", *receipt}});
}

void StompSession::fatal(std::string_view message, const std::string* receipt,
                         std::string_view detail) {
  if (phase_ >= Phase::Closing) return;
  gateway_.metrics().errors.inc();
  spdlog::debug("gateway: session {} ({}): ERROR {}: {}", id_, principal_.username, message, detail);
  OutFrame f;
  if (receipt) {
    protocol::appendFrame(f.own, "ERROR",
                          {{"message", message}, {"receipt-id", *receipt}, {"content-type", "text/plain"}},
                          detail);
  } else {
    protocol::appendFrame(f.own, "ERROR", {{"message", message}, {"content-type", "text/plain"}},
                          detail);
  }
  f.binary = !core::isValidUtf8(f.own);
  enqueue(std::move(f), true);  // the last frame: sent even over the limit
  beginClose(protocol::kWsClosePolicyViolation);
}

void StompSession::handleFrame(StompFrame& frame) {
  const std::string& cmd = frame.command;
  const std::string* receipt = frame.header("receipt");
  if (phase_ == Phase::AwaitingConnect) {
    if (cmd == "CONNECT" || cmd == "STOMP") return onConnect(frame);
    return fatal("not connected", receipt, "send CONNECT (with the token as passcode) first");
  }
  if (cmd == "SEND") return onSend(frame);
  if (cmd == "ACK") return onAck(frame, false);
  if (cmd == "NACK") return onAck(frame, true);
  if (cmd == "SUBSCRIBE") return onSubscribe(frame);
  if (cmd == "UNSUBSCRIBE") return onUnsubscribe(frame);
  if (cmd == "DISCONNECT") return onDisconnect(frame);
  if (cmd == "CONNECT" || cmd == "STOMP") return fatal("already connected", receipt);
  if (cmd == "BEGIN" || cmd == "COMMIT" || cmd == "ABORT") {
    return fatal("transactions are not supported", receipt);
  }
  return fatal("unknown command", receipt, "'" + cmd + "' is not a STOMP 1.2 client command");
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
    return beginClose(protocol::kWsClosePolicyViolation);
  }
  std::uint32_t cx = 0, cy = 0;
  if (const std::string* hb = frame.header("heart-beat"); hb && !parseHeartbeat(*hb, cx, cy)) {
    return fatal("malformed heart-beat header", nullptr, "expected heart-beat:<cx>,<cy>");
  }
  std::string token;
  if (const std::string* passcode = frame.header("passcode"); passcode && !passcode->empty()) {
    token = *passcode;
  } else {
    token = bearer_;
  }
  if (token.empty()) {
    return fatal("missing passcode", nullptr,
                 "send the token from POST /api/v1/sessions as the passcode header");
  }
  const std::string* login = frame.header("login");
  phase_ = Phase::Connecting;
  auto work = [self = shared_from_this(), token = std::move(token),
               login = login ? *login : std::string(), cx, cy]() mutable {
    auto who = self->gateway_.service().authenticate(token);
    asio::post(self->socket_.get_executor(), [self, who = std::move(who), login = std::move(login),
                                              cx, cy]() mutable {
      self->onAuthenticated(std::move(who), std::move(login), cx, cy);
    });
  };
  asio::post(gateway_.workers(), std::move(work));
}

void StompSession::onAuthenticated(Result<core::Principal> who, std::string login,
                                   std::uint32_t cx, std::uint32_t cy) {
  if (phase_ != Phase::Connecting) return;
  if (!who) return fatal("authentication failed", nullptr, who.error().message);
  if (!login.empty() && login != who->username) {
    return fatal("authentication failed", nullptr, "login does not match the token's user");
  }
  principal_ = std::move(*who);
  phase_ = Phase::Connected;
  bearer_.clear();
  bearer_.shrink_to_fit();
  attached_ = true;
  if (auto replaced = gateway_.hub().attach(principal_.user, principal_.username, principal_.device,
                                            shared_from_this())) {
    replaced->kick();
  }
  // Heart-beats (STOMP 1.2 §Heart-beating): each side beats at the slower of what one can do
  // and the other wants; 0 on either side means none in that direction.
  const std::uint32_t server = gateway_.options().heartbeat_ms;
  out_heartbeat_ms_ = (cy > 0 && server > 0) ? std::max(server, cy) : 0;
  in_heartbeat_ms_ = (cx > 0 && server > 0) ? std::max(server, cx) : 0;
  last_read_ms_ = nowMs();
  const std::string hb = std::to_string(server) + "," + std::to_string(server);
  const std::string session = std::to_string(id_);
  const std::string user_id = std::to_string(principal_.user);
  sendFrame("CONNECTED", {{"version", "1.2"},
                          {"heart-beat", hb},
                          {"session", session},
                          {"server", kServerName},
                          {"user-id", user_id},
                          {"user-name", principal_.username}});
  rescheduleTimer();
  pump();
}

void StompSession::onSend(StompFrame& frame) {
  const std::string* receipt = frame.header("receipt");
  const std::string* destination = frame.header("destination");
  if (!destination) return fatal("missing destination", receipt, "SEND needs a destination header");
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
      return fatal("unknown destination", receipt, "group ids are positive integers or 'lobby'");
    }
    request.to_group = gid;
  } else {
    return fatal("unknown destination", receipt,
                 "send to /app/p2p/<username> or /app/group/<group_id>, not '" + *destination + "'");
  }
  if (const std::string* id = frame.header("client-msg-id")) request.client_msg_id = *id;
  if (const std::string* type = frame.header("content-type")) request.content_type = *type;
  request.body = std::move(frame.body);
  send_queue_.push_back(PendingSend{std::move(request),
                                    receipt ? std::optional<std::string>(*receipt) : std::nullopt});
  ++inflight_sends_;
  startNextSend();
}

void StompSession::startNextSend() {
  if (send_running_ || send_queue_.empty() || phase_ != Phase::Connected) return;
  send_running_ = true;
  PendingSend next = std::move(send_queue_.front());
  send_queue_.erase(send_queue_.begin());
  auto work = [self = shared_from_this(), who = principal_, next = std::move(next)]() mutable {
    auto executor = self->socket_.get_executor();
    self->gateway_.service().send(
        who, std::move(next.request),
        [self, executor, receipt = std::move(next.receipt)](Result<core::SendResult> r) mutable {
          asio::post(executor, [self, r = std::move(r), receipt = std::move(receipt)]() mutable {
            self->onSent(std::move(r), std::move(receipt));
          });
        });
    // The checks are done and the append is queued in order: the next SEND may start.
    asio::post(executor, [self] {
      self->send_running_ = false;
      self->startNextSend();
    });
  };
  asio::post(gateway_.workers(), std::move(work));
}

void StompSession::onSent(Result<core::SendResult> result, std::optional<std::string> receipt) {
  --inflight_sends_;
  if (phase_ != Phase::Connected) return;
  if (!result) {
    const Error& e = result.error();
    const char* message = "send failed";
    switch (e.code) {
      case Errc::NotFound: message = "no such recipient"; break;
      case Errc::Forbidden: message = "forbidden"; break;
      case Errc::TooLarge: message = "body too large"; break;
      case Errc::BadRequest: message = "invalid send"; break;
      case Errc::Unavailable: message = "server unavailable"; break;
      default: break;
    }
    return fatal(message, receipt ? &*receipt : nullptr, e.message);
  }
  if (receipt) {
    const std::string msg_id = std::to_string(result->msg_id);
    const std::string seq = std::to_string(result->seq);
    const std::string conv_seq = std::to_string(result->conv_seq);
    sendFrame("RECEIPT", {{"receipt-id", *receipt},
                          {"msg-id", msg_id},
                          {"seq", seq},
                          {"conversation", result->conversation},
                          {"conv-seq", conv_seq},
                          {"duplicate", result->duplicate ? "true" : "false"}});
  }
  maybeFinishDisconnect();
  if (phase_ == Phase::Connected) pump();
}

void StompSession::onSubscribe(StompFrame& frame) {
  const std::string* receipt = frame.header("receipt");
  const std::string* id = frame.header("id");
  const std::string* destination = frame.header("destination");
  if (!id || id->empty()) return fatal("missing id", receipt, "SUBSCRIBE needs an id header");
  if (!destination) return fatal("missing destination", receipt, "SUBSCRIBE needs a destination");
  if ((sub_ && sub_->id == *id) || (presence_sub_ && *presence_sub_ == *id)) {
    return fatal("duplicate subscription id", receipt, "id '" + *id + "' is in use");
  }
  std::string_view dest = *destination;
  if (dest == kPresenceDestination) {
    if (presence_sub_) return fatal("already subscribed", receipt, "one presence subscription per connection");
    presence_sub_ = *id;
    gateway_.hub().subscribePresence(principal_.user, shared_from_this());
    return sendReceipt(receipt);
  }
  // "/user/queue/messages", or the explicit "/user/<own name>/queue/messages".
  if (dest != kQueueDestination) {
    const std::string own = "/user/" + principal_.username + "/queue/messages";
    if (dest == own) {
      // fine: an explicit form of our own queue
    } else if (dest.starts_with("/user/") && dest.ends_with("/queue/messages")) {
      return fatal("forbidden", receipt, "you may subscribe only to your own queue");
    } else {
      return fatal("unknown destination", receipt,
                   "subscribe to /user/queue/messages or /topic/presence, not '" + *destination + "'");
    }
  }
  if (sub_) return fatal("already subscribed", receipt, "one message subscription per connection");
  AckMode mode = AckMode::Auto;
  if (const std::string* ack = frame.header("ack")) {
    if (*ack == "auto") {
      mode = AckMode::Auto;
    } else if (*ack == "client") {
      mode = AckMode::Client;
    } else if (*ack == "client-individual") {
      mode = AckMode::ClientIndividual;
    } else {
      return fatal("invalid ack mode", receipt, "ack must be auto, client or client-individual");
    }
  }
  std::optional<Seq> since;
  if (const std::string* s = frame.header("since")) {
    std::uint64_t v = 0;
    if (!parseU64(*s, v)) return fatal("invalid since", receipt, "since must be a seq number");
    since = v;
  }
  sub_ = Subscription{*id, std::string(dest), mode};
  const std::uint64_t generation = ++sub_generation_;
  syncing_ = true;  // live messages wait until we know where to start
  rewind_pending_ = false;
  acked_above_.clear();
  last_pushed_ = max_pushed_ = acked_ = 0;  // nothing delivered on this subscription yet
  std::string receipt_id = receipt ? *receipt : std::string();
  auto work = [self = shared_from_this(), who = principal_, generation, since,
               receipt_id = std::move(receipt_id)] {
    auto cursor = self->gateway_.service().cursorOf(who);
    Result<Seq> end = Seq{0};
    if (cursor && since) end = self->gateway_.service().inboxEnd(who);
    asio::post(self->socket_.get_executor(), [self, cursor = std::move(cursor), end = std::move(end),
                                              generation, since, receipt_id] {
      if (self->phase_ != Phase::Connected || generation != self->sub_generation_) return;
      const std::string* rcpt = receipt_id.empty() ? nullptr : &receipt_id;
      if (!cursor) return self->fatal("server unavailable", rcpt, cursor.error().message);
      if (!end) return self->fatal("server unavailable", rcpt, end.error().message);
      if (since && *end < *since) {
        return self->fatal("invalid since", rcpt,
                           "since " + std::to_string(*since) + " is past the end of the inbox (" +
                               std::to_string(*end) + ")");
      }
      self->sendReceipt(rcpt);
      self->cursor_durable_ = self->cursor_target_ = *cursor;
      const Seq start = since.value_or(*cursor);
      self->last_pushed_ = self->acked_ = start;
      self->more_in_store_ = true;
      self->syncing_ = false;
      self->startSync();
    });
  };
  asio::post(gateway_.workers(), std::move(work));
}

void StompSession::onUnsubscribe(StompFrame& frame) {
  const std::string* receipt = frame.header("receipt");
  const std::string* id = frame.header("id");
  if (!id) return fatal("missing id", receipt, "UNSUBSCRIBE needs the subscription id");
  if (sub_ && sub_->id == *id) {
    sub_.reset();
    ++sub_generation_;
    syncing_ = false;
    return sendReceipt(receipt);
  }
  if (presence_sub_ && *presence_sub_ == *id) {
    presence_sub_.reset();
    gateway_.hub().unsubscribePresence(principal_.user, this);
    return sendReceipt(receipt);
  }
  return fatal("unknown subscription", receipt, "no subscription with id '" + *id + "'");
}

void StompSession::onAck(StompFrame& frame, bool nack) {
  const std::string* receipt = frame.header("receipt");
  const std::string* id = frame.header("id");
  std::uint64_t seq = 0;
  if (!id || !parseU64(*id, seq) || seq == 0) {
    return fatal("invalid ack", receipt, "ACK and NACK need the id from the MESSAGE's ack header");
  }
  if (!sub_ || sub_->mode == AckMode::Auto) {
    return fatal("invalid ack", receipt, "no subscription with ack:client or ack:client-individual");
  }
  // Against the highest seq ever sent: after a NACK rewinds last_pushed_, acknowledgements of
  // messages the client did get are still welcome.
  if (seq > max_pushed_) return fatal("invalid ack", receipt, "seq " + *id + " was not delivered");
  if (nack) {
    // Hand everything unacknowledged back: resend from the acknowledged floor. A store read in
    // flight started past the floor: its result is dropped and the read starts over.
    last_pushed_ = acked_;
    more_in_store_ = true;
    if (syncing_) rewind_pending_ = true;
    sendReceipt(receipt);
    return startSync();
  }
  if (sub_->mode == AckMode::Client) {
    acked_ = std::max<Seq>(acked_, seq);
    acked_above_.clear();
  } else if (seq > acked_) {
    acked_above_.insert(seq);
    while (!acked_above_.empty() && *acked_above_.begin() == acked_ + 1) {
      acked_ = *acked_above_.begin();
      acked_above_.erase(acked_above_.begin());
    }
  }
  if (acked_ > last_pushed_) last_pushed_ = acked_;  // acknowledged after a NACK: not resent
  if (acked_ > cursor_target_) cursor_target_ = acked_;
  if (receipt) {
    if (cursor_receipts_.size() >= gateway_.options().max_unacked) {
      return fatal("too many receipts pending", receipt, "wait for ACK receipts before asking for more");
    }
    cursor_receipts_.emplace_back(cursor_target_, *receipt);
  }
  persistCursor();
  startSync();  // the window may have room again
}

void StompSession::onDisconnect(StompFrame& frame) {
  if (const std::string* receipt = frame.header("receipt")) disconnect_receipt_ = *receipt;
  disconnect_pending_ = true;  // input stops; answered once earlier SENDs and ACKs are durable
  maybeFinishDisconnect();
}

void StompSession::maybeFinishDisconnect() {
  if (!disconnect_pending_ || phase_ != Phase::Connected) return;
  if (inflight_sends_ > 0 || cursor_writing_ || cursor_target_ > cursor_durable_) return;
  disconnect_pending_ = false;
  if (disconnect_receipt_) sendFrame("RECEIPT", {{"receipt-id", *disconnect_receipt_}});
  beginClose(protocol::kWsCloseNormal);
}

// ---- delivery ------------------------------------------------------------------------------

void StompSession::deliver(std::shared_ptr<const OutboundMessage> message, Seq seq) {
  asio::post(socket_.get_executor(), [self = shared_from_this(), message = std::move(message), seq]() mutable {
    self->onDeliver(std::move(message), seq);
  });
}

void StompSession::kick() {
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    if (self->phase_ == Phase::Connected) {
      self->attached_ = false;  // the new connection owns the hub entry now
      self->fatal("kicked", nullptr, "this device connected again from somewhere else");
    }
  });
}

void StompSession::presence(PresenceEvent event) {
  asio::post(socket_.get_executor(), [self = shared_from_this(), event = std::move(event)] {
    if (self->phase_ != Phase::Connected || !self->presence_sub_) return;
    const std::string body = "{\"user_id\":\"" + std::to_string(event.user) + "\",\"username\":\"" +
                             event.username + "\",\"online\":" + (event.online ? "true" : "false") +
                             "}";
    const std::string message_id = "p-" + std::to_string(++self->presence_counter_);
    self->sendFrame("MESSAGE", {{"destination", kPresenceDestination},
                                {"subscription", *self->presence_sub_},
                                {"message-id", message_id},
                                {"content-type", "application/json"}},
                    body);
  });
}

void StompSession::onDeliver(std::shared_ptr<const OutboundMessage> message, Seq seq) {
  if (phase_ != Phase::Connected || !sub_) return;  // a later SUBSCRIBE reads the store
  known_max_ = std::max(known_max_, seq);
  if (seq <= last_pushed_) return;  // already sent from the store
  if (syncing_) return;             // the running read will get to it
  if (seq == last_pushed_ + 1 && room()) return pushMessage(std::move(message), seq);
  // A gap, or no room: take it from the store when there is room.
  more_in_store_ = true;
  startSync();
}

bool StompSession::room() const {
  if (!sub_) return false;
  if (queue_bytes_ > gateway_.options().max_outbound_bytes / 2) return false;
  if (sub_->mode == AckMode::Auto) return true;
  // Also bound the span past the floor, so individual acks above a gap (one entry each in
  // acked_above_) cannot pile up without end.
  return unacked() < gateway_.options().max_unacked &&
         last_pushed_ - acked_ < 2 * gateway_.options().max_unacked;
}

std::size_t StompSession::unacked() const {
  // Sent and not acknowledged: past the floor, minus individual acks among them (after a NACK
  // rewinds last_pushed_, some individual acks lie beyond it).
  const auto acked_sent = std::distance(acked_above_.begin(), acked_above_.upper_bound(last_pushed_));
  return std::size_t(last_pushed_ - acked_) - std::size_t(acked_sent);
}

void StompSession::pushMessage(std::shared_ptr<const OutboundMessage> message, Seq seq) {
  OutFrame f;
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
  } else {
    f.auto_ack = seq;
  }
  h += "\nseq:";
  h += seq_text;
  h += '\n';
  f.binary = !message->body_is_utf8;
  f.shared = std::move(message);
  last_pushed_ = seq;
  max_pushed_ = std::max(max_pushed_, seq);
  enqueue(std::move(f));
}

void StompSession::startSync() {
  if (syncing_ || !more_in_store_ || !sub_ || phase_ != Phase::Connected || !room()) return;
  syncing_ = true;
  std::size_t limit = std::min(gateway_.options().sync_page, next_page_);
  if (sub_->mode != AckMode::Auto) {
    limit = std::min<std::size_t>(limit, gateway_.options().max_unacked - unacked());
  }
  auto work = [self = shared_from_this(), who = principal_, after = last_pushed_, limit,
               generation = sub_generation_] {
    auto result = self->gateway_.service().sync(who, after, limit);
    asio::post(self->socket_.get_executor(), [self, generation, result = std::move(result)]() mutable {
      self->onSynced(generation, std::move(result));
    });
  };
  asio::post(gateway_.workers(), std::move(work));
}

void StompSession::onSynced(std::uint64_t generation, Result<core::SyncResult> result) {
  if (phase_ != Phase::Connected || generation != sub_generation_) return;
  syncing_ = false;
  if (rewind_pending_) {  // a NACK rewound last_pushed_ while this read ran: read again
    rewind_pending_ = false;
    more_in_store_ = true;
    return startSync();
  }
  if (!result) return fatal("server unavailable", nullptr, result.error().message);
  bool stopped_early = false;
  std::size_t pushed = 0;
  for (auto& view : result->messages) {
    if (view.seq <= last_pushed_) continue;
    if (!room()) {  // the rest stays in the store until the client catches up
      stopped_early = true;
      break;
    }
    if (acked_above_.contains(view.seq)) {  // acknowledged individually before a NACK
      last_pushed_ = view.seq;
      continue;
    }
    pushMessage(OutboundMessage::make(std::move(view.message), std::move(view.from)), view.seq);
    ++pushed;
    if (phase_ != Phase::Connected) return;
  }
  // A client slower than a page reads no more than it took last time (big messages, full queue).
  next_page_ = stopped_early ? std::max<std::size_t>(1, pushed) : gateway_.options().sync_page;
  more_in_store_ = stopped_early || result->has_more;
  if (!more_in_store_ && known_max_ > last_pushed_) {
    // A live message we dropped is past what the store returned. Read again — at once if this
    // read made progress, otherwise after a tick, so a store that lags cannot spin us.
    if (pushed > 0) {
      more_in_store_ = true;
    } else {
      sync_retry_at_ = nowMs() + gateway_.options().tick_ms;
      rescheduleTimer();
    }
  }
  startSync();
}

void StompSession::persistCursor() {
  // Answer the ACK receipts that are durable now, even while more writes follow (B4).
  if (!cursor_receipts_.empty()) {
    std::vector<std::pair<Seq, std::string>> waiting;
    waiting.swap(cursor_receipts_);
    for (auto& [target, receipt] : waiting) {
      if (target <= cursor_durable_) {
        sendFrame("RECEIPT", {{"receipt-id", receipt}});
      } else {
        cursor_receipts_.emplace_back(target, std::move(receipt));
      }
    }
  }
  if (cursor_writing_ || cursor_target_ <= cursor_durable_) return maybeFinishDisconnect();
  cursor_writing_ = true;
  // Runs whatever the phase: an acknowledgement made before a close is still stored.
  auto work = [self = shared_from_this(), who = principal_, target = cursor_target_] {
    auto moved = self->gateway_.service().ack(who, target);
    asio::post(self->socket_.get_executor(), [self, moved = std::move(moved)] {
      self->cursor_writing_ = false;
      if (!moved) {
        // The cursor could not be stored (storage failing): close rather than retry in a loop;
        // the device resyncs from its stored cursor when it comes back.
        spdlog::warn("gateway: session {}: cursor not stored: {}", self->id_, moved.error().message);
        self->cursor_target_ = self->cursor_durable_;
        return self->fatal("server unavailable", nullptr, moved.error().message);
      }
      self->cursor_durable_ = std::max(self->cursor_durable_, *moved);
      self->persistCursor();
    });
  };
  asio::post(gateway_.workers(), std::move(work));
}

}  // namespace pigeon::gateway
