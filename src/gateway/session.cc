#include "gateway/session.h"

#include "gateway/cluster_relay.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>
#include <boost/asio/post.hpp>
#include <chrono>

namespace pigeon::gateway {
namespace asio = boost::asio;
using store::Seq;

namespace {

constexpr std::size_t kMaxBatchFrames = 64;
constexpr std::size_t kMaxBatchBytes = 256 * 1024;
constexpr std::int64_t kCloseGraceMs = 2000;
constexpr std::size_t kSendBatch = 64;

}  // namespace

Session::Session(Gateway& gateway, LoopState& loop, std::unique_ptr<net::Transport> transport)
    : gateway_(gateway), loop_(loop), transport_(std::move(transport)), id_(gateway.nextSessionId()) {}

Session::~Session() = default;

std::int64_t Session::nowMs() const {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

void Session::begin(OutFrame greeting) {
  const auto& opts = gateway_.options();
  net::tuneSocket(transport_->socket(), opts.keepalive_idle_s, opts.keepalive_interval_s,
                  opts.keepalive_count);
  gateway_.metrics().sessions.add(1);
  const auto now = nowMs();
  last_read_ms_ = last_write_ms_ = tokens_ms_ = now;
  tokens_ = opts.frame_burst;
  connect_deadline_ = now + opts.connect_timeout_ms;
  if (!greeting.own.empty()) enqueue(std::move(greeting));
  rescheduleTimer();
}

// ---- reading -------------------------------------------------------------------------------

void Session::armRead() {
  if (reading_ || phase_ == Phase::Closed || (phase_ == Phase::Closing && !draining_)) return;
  reading_ = true;
  transport_->read(shared_from_this());
}

bool Session::onInput(char* data, std::size_t size) {
  if (phase_ == Phase::Closed || draining_) return true;  // closing: discard
  if (phase_ >= Phase::Closing) return false;
  last_read_ms_ = nowMs();
  return feed(data, size) && phase_ < Phase::Closing;
}

void Session::onReadDone(const boost::system::error_code& ec) {
  reading_ = false;
  if (phase_ == Phase::Closed) return;
  if (draining_) {
    if (ec) return closeNow("closed");
    return armRead();
  }
  if (phase_ >= Phase::Closing) return;
  if (ec) return closeNow(ec == asio::error::eof ? "peer closed" : "read failed");
  pump();
}

bool Session::inputBlocked() const {
  return phase_ == Phase::Authenticating || disconnect_pending_ ||
         inflight_sends_ >= gateway_.options().max_inflight_sends ||
         queue_bytes_ > gateway_.options().max_outbound_bytes / 2;
}

void Session::pump() {
  while (phase_ < Phase::Closing && !inputBlocked()) {
    if (!handleNextFrame()) break;
  }
  if (phase_ < Phase::Closing && !inputBlocked()) armRead();
}

bool Session::admitFrame() {
  gateway_.metrics().frames_in.inc();
  // Token bucket: frame_rate per second, up to frame_burst.
  const auto& opts = gateway_.options();
  if (opts.frame_rate <= 0) return true;
  const auto now = nowMs();
  tokens_ = std::min(opts.frame_burst, tokens_ + double(now - tokens_ms_) * opts.frame_rate / 1000.0);
  tokens_ms_ = now;
  if (tokens_ < 1) {
    fatal("rate_limited", "rate limit exceeded", nullptr,
          "more than " + std::to_string(int(opts.frame_rate)) + " frames per second");
    return false;
  }
  tokens_ -= 1;
  return true;
}

// ---- writing -------------------------------------------------------------------------------

void Session::enqueue(OutFrame frame, bool exempt) {
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
  if (loop_.cork(*this)) return;  // written with the rest of the burst
  flush();
}

void Session::flush() {
  if (writing_ || queue_.empty() || phase_ == Phase::Closed) return;
  // Take a batch: one write for a burst of frames.
  std::size_t count = 0, bytes = 0;
  while (count < queue_.size() && count < kMaxBatchFrames && bytes < kMaxBatchBytes) {
    bytes += queue_[count].size();
    ++count;
  }
  inflight_.assign(std::make_move_iterator(queue_.begin()),
                   std::make_move_iterator(queue_.begin() + std::ptrdiff_t(count)));
  queue_.erase(queue_.begin(), queue_.begin() + std::ptrdiff_t(count));
  buffers_.clear();
  appendBuffers(inflight_, buffers_);
  writing_ = true;
  write_started_ms_ = nowMs();
  rescheduleTimer();  // the write timeout
  gateway_.metrics().frames_out.inc(count);
  gateway_.metrics().writes.inc();
  transport_->write(shared_from_this(), buffers_);
}

void Session::onWritten(const boost::system::error_code& ec) {
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
  onBatchWritten();
  last_write_ms_ = nowMs();
  if (queue_.empty()) {
    // Idle again: give the batch memory back.
    std::vector<OutFrame>().swap(inflight_);
    std::vector<OutFrame>().swap(queue_);
    std::vector<asio::const_buffer>().swap(buffers_);
  }
  if (auto_acked > cursor_target_) {
    cursor_target_ = auto_acked;  // ack mode auto: written is acknowledged
    persistCursorSoon();
  }
  if (phase_ == Phase::Closing && queue_.empty()) {
    // Everything (the error, the close frame) is out: half-close, then read and discard until
    // the peer closes too (or the close deadline), so pipelined bytes it sent do not turn our
    // close into a reset that could destroy the error before the peer reads it.
    transport_->shutdownSend();
    draining_ = true;
    return armRead();
  }
  flush();
  if (phase_ == Phase::Connected) startSync();  // room may have opened
  if (phase_ < Phase::Closing) pump();          // input may have been blocked on the queue
}

void Session::beginClose(CloseKind kind) {
  if (phase_ >= Phase::Closing) return;
  phase_ = Phase::Closing;
  // Sends queued behind the one being checked are dropped: nothing after an error is stored.
  inflight_sends_ -= send_queue_.size();
  send_queue_.clear();
  close_deadline_ = nowMs() + kCloseGraceMs;
  if (auto last = closeFrame(kind)) enqueue(std::move(*last), true);
  rescheduleTimer();
  if (!writing_ && queue_.empty()) {  // nothing to flush: go straight to the half-close
    transport_->shutdownSend();
    draining_ = true;
    armRead();
  }
}

void Session::closeNow(const char* why) {
  if (phase_ == Phase::Closed) return;
  spdlog::debug("gateway: session {} ({}) closed: {}", id_, principal_.username, why);
  phase_ = Phase::Closed;
  transport_->close();
  cleanup();
}

void Session::cleanup() {
  loop_.wheel.cancel(*this);
  // Acknowledgements not stored yet are stored now, connection or not.
  if (cursor_target_ > cursor_durable_ && !cursor_writing_) persistCursor();
  clearCursorDue();  // in any case: the loop must not keep a pointer to a closed session
  if (attached_) {
    attached_ = false;
    if (gateway_.hub().detach(principal_.user, principal_.device, this) && gateway_.relay()) {
      gateway_.relay()->release(principal_, id_, login_ms_);
    }
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

void Session::fatal(std::string_view code, std::string_view message, const std::string* receipt,
                    std::string_view detail) {
  if (phase_ >= Phase::Closing) return;
  gateway_.metrics().errors.inc();
  spdlog::debug("gateway: session {} ({}): error {}: {}", id_, principal_.username, message, detail);
  enqueue(errorFrame(code, message, receipt, detail), true);  // sent even over the limit
  beginClose(CloseKind::Error);
}

// ---- timers --------------------------------------------------------------------------------

void Session::rescheduleTimer() {
  if (phase_ == Phase::Closed) return;
  const auto now = nowMs();
  std::int64_t due = now + 60000;
  if (phase_ == Phase::AwaitingLogin || phase_ == Phase::Authenticating) {
    due = std::min(due, connect_deadline_);
  }
  if (phase_ == Phase::Closing) due = std::min(due, close_deadline_);
  if (in_heartbeat_ms_) due = std::min(due, last_read_ms_ + 2 * std::int64_t(in_heartbeat_ms_) + 1);
  if (out_heartbeat_ms_) due = std::min(due, last_write_ms_ + std::int64_t(out_heartbeat_ms_));
  if (writing_) due = std::min(due, write_started_ms_ + gateway_.options().write_timeout_ms);
  if (sync_retry_at_) due = std::min(due, sync_retry_at_);
  loop_.wheel.schedule(*this, due - now);
}

void Session::onTimer() {
  auto self = shared_from_this();
  const auto now = nowMs();
  auto& m = gateway_.metrics();
  if ((phase_ == Phase::AwaitingLogin || phase_ == Phase::Authenticating) && now >= connect_deadline_) {
    m.connect_timeouts.inc();
    return fatal("connect_timeout", "connect timeout", nullptr,
                 "not logged in within " + std::to_string(gateway_.options().connect_timeout_ms) + " ms");
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
      enqueue(heartbeatFrame());
    }
  }
  rescheduleTimer();
}

// ---- login ---------------------------------------------------------------------------------

void Session::login(std::string token, std::string login, std::string device,
                    std::uint32_t client_beat_ms, std::uint32_t wants_beat_ms) {
  phase_ = Phase::Authenticating;
  auto work = [self = shared_from_this(), token = std::move(token), login = std::move(login),
               device = std::move(device), client_beat_ms, wants_beat_ms]() mutable {
    auto who = self->gateway_.service().authenticate(token);
    bool superseded = false;
    const bool fits = who && (login.empty() || login == who->username) &&
                      (device.empty() || device == who->device);
    if (fits && self->gateway_.relay()) {
      // In a cluster the device's route is claimed before the session reads anything from the
      // store: a message stored from now on is relayed here, one stored before is read.
      self->login_ms_ = SystemClock::instance().nowMs();
      self->route_epoch_ = self->gateway_.relay()->unsureEpoch();
      superseded = self->gateway_.relay()->claim(*who, self->id_, self->login_ms_);
    }
    asio::post(self->transport_->executor(),
               [self, who = std::move(who), superseded, login = std::move(login),
                device = std::move(device), client_beat_ms, wants_beat_ms]() mutable {
                 self->onAuthenticated(std::move(who), superseded, std::move(login),
                                       std::move(device), client_beat_ms, wants_beat_ms);
               });
  };
  asio::post(gateway_.workers(), std::move(work));
}

void Session::onAuthenticated(Result<core::Principal> who, bool superseded, std::string login,
                              std::string device, std::uint32_t client_beat_ms,
                              std::uint32_t wants_beat_ms) {
  if (phase_ != Phase::Authenticating) {
    // Closed while the worker authenticated: a route it claimed is this connection's, and goes.
    if (who && !superseded && login_ms_ != 0 && gateway_.relay()) {
      gateway_.relay()->release(*who, id_, login_ms_);
    }
    return;
  }
  if (!who) return fatal("unauthenticated", "authentication failed", nullptr, who.error().message);
  if (!login.empty() && login != who->username) {
    return fatal("unauthenticated", "authentication failed", nullptr,
                 "login does not match the token's user");
  }
  if (!device.empty() && device != who->device) {
    return fatal("unauthenticated", "authentication failed", nullptr,
                 "device does not match the token's device");
  }
  principal_ = std::move(*who);
  if (superseded) return onKicked();  // a later connection of this device owns its route
  phase_ = Phase::Connected;
  attached_ = true;
  if (auto replaced = gateway_.hub().attach(principal_.user, principal_.username, principal_.device,
                                            shared_from_this(), login_ms_)) {
    replaced->kick();
  }
  // The directory may have lost routes since this session claimed its own: renew it again now
  // that the hub has it, and resync after.
  if (gateway_.relay() && gateway_.relay()->unsureEpoch() != route_epoch_) gateway_.relay()->recheck();
  // Heart-beats (as STOMP 1.2 negotiates them): each side beats at the slower of what one can
  // do and the other wants; 0 on either side means none in that direction.
  const std::uint32_t server = gateway_.options().heartbeat_ms;
  out_heartbeat_ms_ = (wants_beat_ms > 0 && server > 0) ? std::max(server, wants_beat_ms) : 0;
  in_heartbeat_ms_ = (client_beat_ms > 0 && server > 0) ? std::max(server, client_beat_ms) : 0;
  last_read_ms_ = nowMs();
  onLoggedIn(server);
  rescheduleTimer();
  pump();
}

// ---- sending -------------------------------------------------------------------------------

void Session::submitSend(core::SendRequest request, std::optional<std::string> ref) {
  send_queue_.push_back(PendingSend{std::move(request), std::move(ref)});
  ++inflight_sends_;
  startNextSend();
}

void Session::startNextSend() {
  if (send_running_ || send_queue_.empty() || phase_ != Phase::Connected) return;
  send_running_ = true;
  // Everything queued (up to a batch) is checked on one worker in order, then appended in
  // that order: one round trip for the batch, not one per send.
  const std::size_t n = std::min(send_queue_.size(), kSendBatch);
  std::vector<PendingSend> batch(std::make_move_iterator(send_queue_.begin()),
                                 std::make_move_iterator(send_queue_.begin() + std::ptrdiff_t(n)));
  send_queue_.erase(send_queue_.begin(), send_queue_.begin() + std::ptrdiff_t(n));
  auto work = [self = shared_from_this(), who = principal_, batch = std::move(batch)]() mutable {
    auto executor = self->transport_->executor();
    core::Service& service = self->gateway_.service();
    std::size_t i = 0;
    while (i < batch.size()) {
      PendingSend& next = batch[i++];
      auto draft = service.check(who, std::move(next.request));
      if (!draft) {
        const bool fatal = self->refusalIsFatal(draft.error());
        asio::post(executor, [self, error = std::move(draft.error()), ref = std::move(next.ref)]() mutable {
          self->onSent(std::unexpected(std::move(error)), std::move(ref));
        });
        if (fatal) break;  // the connection closes: nothing after this send is stored
        continue;
      }
      // The answer goes through the loop's mailbox, like the message's deliveries that follow
      // it, so the sender gets its answer before its own copy of the message.
      service.commit(who, std::move(*draft),
                     [self, ref = std::move(next.ref)](Result<core::SendResult> r) mutable {
                       self->loop_.hand([self, r = std::move(r), ref = std::move(ref)]() mutable {
                         self->onSent(std::move(r), std::move(ref));
                       });
                     });
    }
    const std::size_t dropped = batch.size() - i;
    asio::post(executor, [self, dropped] {
      self->inflight_sends_ -= dropped;
      self->send_running_ = false;
      self->startNextSend();
    });
  };
  asio::post(gateway_.workers(), std::move(work));
}

void Session::onSent(Result<core::SendResult> result, std::optional<std::string> ref) {
  --inflight_sends_;
  if (phase_ != Phase::Connected) return;
  if (!result) {
    onSendRefused(result.error(), ref);
  } else {
    onSendAccepted(*result, ref);
    // In a mailbox burst the answer does not wait for the burst's deliveries to other
    // sessions: the sender's next send depends on it.
    if (corked_) flush();
  }
  maybeFinishDisconnect();
  if (phase_ == Phase::Connected) pump();
}

void Session::disconnect(std::optional<std::string> receipt) {
  disconnect_receipt_ = std::move(receipt);
  disconnect_pending_ = true;  // input stops; answered once earlier sends and acks are durable
  persistCursor();             // calls maybeFinishDisconnect()
}

void Session::maybeFinishDisconnect() {
  if (!disconnect_pending_ || phase_ != Phase::Connected) return;
  if (inflight_sends_ > 0 || cursor_writing_ || cursor_target_ > cursor_durable_) return;
  disconnect_pending_ = false;
  onDisconnected(disconnect_receipt_);
  beginClose(CloseKind::Normal);
}

// ---- subscriptions and acknowledgements ----------------------------------------------------

void Session::subscribe(Subscription sub, std::optional<Seq> since, const std::string* receipt) {
  sub_ = std::move(sub);
  const std::uint64_t generation = ++sub_generation_;
  syncing_ = true;  // live messages wait until we know where to start
  rewind_pending_ = false;
  resync_pending_ = false;
  acked_above_.clear();
  last_pushed_ = max_pushed_ = acked_ = 0;  // nothing delivered on this subscription yet
  std::string receipt_id = receipt ? *receipt : std::string();
  auto work = [self = shared_from_this(), who = principal_, generation, since,
               receipt_id = std::move(receipt_id)] {
    auto cursor = self->gateway_.service().cursorOf(who);
    Result<Seq> end = Seq{0};
    if (cursor && since) end = self->gateway_.service().inboxEnd(who);
    asio::post(self->transport_->executor(), [self, cursor = std::move(cursor), end = std::move(end),
                                              generation, since, receipt_id] {
      if (self->phase_ != Phase::Connected || generation != self->sub_generation_) return;
      const std::string* rcpt = receipt_id.empty() ? nullptr : &receipt_id;
      if (!cursor) return self->fatal("unavailable", "server unavailable", rcpt, cursor.error().message);
      if (!end) return self->fatal("unavailable", "server unavailable", rcpt, end.error().message);
      if (since && *end < *since) {
        return self->fatal("invalid_since", "invalid since", rcpt,
                           "since " + std::to_string(*since) + " is past the end of the inbox (" +
                               std::to_string(*end) + ")");
      }
      const Seq start = since.value_or(*cursor);
      self->onSubscribed(rcpt, start);
      self->cursor_durable_ = self->cursor_target_ = *cursor;
      self->last_pushed_ = self->acked_ = start;
      self->more_in_store_ = true;
      self->syncing_ = false;
      self->startSync();
    });
  };
  asio::post(gateway_.workers(), std::move(work));
}

bool Session::unsubscribe(const std::string& id) {
  if (!sub_ || sub_->id != id) return false;
  sub_.reset();
  ++sub_generation_;
  syncing_ = false;
  return true;
}

void Session::subscribePresence(std::string id) {
  presence_sub_ = std::move(id);
  gateway_.hub().subscribePresence(principal_.user, shared_from_this());
}

bool Session::unsubscribePresence(const std::string& id) {
  if (!presence_sub_ || *presence_sub_ != id) return false;
  presence_sub_.reset();
  gateway_.hub().unsubscribePresence(principal_.user, this);
  return true;
}

std::string Session::ackProblem(Seq seq) const {
  if (!sub_ || sub_->mode == AckMode::Auto) return "no subscription with client acknowledgements";
  // Against the highest seq ever sent: after a NACK rewinds last_pushed_, acknowledgements of
  // messages the client did get are still welcome.
  if (seq == 0 || seq > max_pushed_) return "seq " + std::to_string(seq) + " was not delivered";
  return {};
}

void Session::nack(const std::string* receipt) {
  // Hand everything unacknowledged back: resend from the acknowledged floor. A store read in
  // flight started past the floor: its result is dropped and the read starts over.
  last_pushed_ = acked_;
  more_in_store_ = true;
  if (syncing_) rewind_pending_ = true;
  onReceipt(receipt);
  startSync();
}

void Session::acknowledge(Seq seq, bool cumulative, const std::string* receipt) {
  if (cumulative) {
    acked_ = std::max<Seq>(acked_, seq);
    acked_above_.erase(acked_above_.begin(), acked_above_.upper_bound(acked_));
  } else if (seq > acked_) {
    acked_above_.insert(seq);
  }
  while (!acked_above_.empty() && *acked_above_.begin() == acked_ + 1) {
    acked_ = *acked_above_.begin();
    acked_above_.erase(acked_above_.begin());
  }
  if (acked_ > last_pushed_) last_pushed_ = acked_;  // acknowledged after a NACK: not resent
  if (acked_ > cursor_target_) cursor_target_ = acked_;
  if (receipt) {
    if (cursor_receipts_.size() >= gateway_.options().max_unacked) {
      return fatal("too_many_receipts", "too many receipts pending", receipt,
                   "wait for ACK receipts before asking for more");
    }
    cursor_receipts_.emplace_back(cursor_target_, *receipt);
    persistCursor();  // a receipt waits for the disk: write now
  } else {
    persistCursorSoon();
  }
  startSync();  // the window may have room again
}

// ---- delivery ------------------------------------------------------------------------------

void Session::deliver(std::shared_ptr<const OutboundMessage> message, Seq seq) {
  asio::post(transport_->executor(), [self = shared_from_this(), message = std::move(message), seq]() mutable {
    self->onDeliver(std::move(message), seq);
  });
}

void Session::kick() {
  asio::post(transport_->executor(), [self = shared_from_this()] {
    if (self->phase_ == Phase::Connected) {
      self->attached_ = false;  // the new connection owns the hub entry now
      self->onKicked();
    }
  });
}

void Session::resync() {
  asio::post(transport_->executor(), [self = shared_from_this()] {
    if (self->phase_ != Phase::Connected || !self->sub_) return;
    self->more_in_store_ = true;
    // A read in flight may have started before what was missed was stored: read once more after.
    if (self->syncing_) self->resync_pending_ = true;
    self->startSync();
  });
}

void Session::presence(PresenceEvent event) {
  asio::post(transport_->executor(), [self = shared_from_this(), event = std::move(event)] {
    if (self->phase_ != Phase::Connected || !self->presence_sub_) return;
    self->encodePresence(event);
  });
}

void Session::onDeliver(std::shared_ptr<const OutboundMessage> message, Seq seq) {
  if (phase_ != Phase::Connected || !sub_) return;  // a later subscription reads the store
  known_max_ = std::max(known_max_, seq);
  if (seq <= last_pushed_) return;  // already sent from the store
  if (syncing_) return;             // the running read will get to it
  if (seq == last_pushed_ + 1 && room()) return pushMessage(std::move(message), seq);
  // A gap, or no room: take it from the store when there is room.
  more_in_store_ = true;
  startSync();
}

bool Session::room() const {
  if (!sub_) return false;
  if (queue_bytes_ > gateway_.options().max_outbound_bytes / 2) return false;
  if (sub_->mode == AckMode::Auto) return true;
  // Also bound the span past the floor, so single acks above a gap (one entry each in
  // acked_above_) cannot pile up without end.
  return unacked() < gateway_.options().max_unacked &&
         last_pushed_ - acked_ < 2 * gateway_.options().max_unacked;
}

std::size_t Session::unacked() const {
  // Sent and not acknowledged: past the floor, minus single acks among them (after a NACK
  // rewinds last_pushed_, some single acks lie beyond it).
  const auto acked_sent = std::distance(acked_above_.begin(), acked_above_.upper_bound(last_pushed_));
  return std::size_t(last_pushed_ - acked_) - std::size_t(acked_sent);
}

void Session::pushMessage(std::shared_ptr<const OutboundMessage> message, Seq seq) {
  OutFrame f;
  if (sub_->mode == AckMode::Auto) f.auto_ack = seq;
  encodeMessage(f, std::move(message), seq);
  last_pushed_ = seq;
  max_pushed_ = std::max(max_pushed_, seq);
  enqueue(std::move(f));
}

void Session::startSync() {
  if (syncing_ || !more_in_store_ || !sub_ || phase_ != Phase::Connected || !room()) return;
  syncing_ = true;
  std::size_t limit = std::min(gateway_.options().sync_page, next_page_);
  if (sub_->mode != AckMode::Auto) {
    limit = std::min<std::size_t>(limit, gateway_.options().max_unacked - unacked());
  }
  auto work = [self = shared_from_this(), who = principal_, after = last_pushed_, limit,
               generation = sub_generation_] {
    auto result = self->gateway_.service().sync(who, after, limit);
    asio::post(self->transport_->executor(), [self, generation, result = std::move(result)]() mutable {
      self->onSynced(generation, std::move(result));
    });
  };
  asio::post(gateway_.workers(), std::move(work));
}

void Session::onSynced(std::uint64_t generation, Result<core::SyncResult> result) {
  if (phase_ != Phase::Connected || generation != sub_generation_) return;
  syncing_ = false;
  if (rewind_pending_) {  // a NACK rewound last_pushed_ while this read ran: read again
    rewind_pending_ = false;
    more_in_store_ = true;
    return startSync();
  }
  if (!result) return fatal("unavailable", "server unavailable", nullptr, result.error().message);
  bool stopped_early = false;
  std::size_t pushed = 0;
  for (auto& view : result->messages) {
    if (view.seq <= last_pushed_) continue;
    if (!room()) {  // the rest stays in the store until the client catches up
      stopped_early = true;
      break;
    }
    if (acked_above_.contains(view.seq)) {  // acknowledged singly before a NACK
      last_pushed_ = view.seq;
      continue;
    }
    pushMessage(OutboundMessage::make(std::move(view.message), std::move(view.from)), view.seq);
    ++pushed;
    if (phase_ != Phase::Connected) return;
  }
  // A client slower than a page reads no more than it took last time (big messages, full queue).
  next_page_ = stopped_early ? std::max<std::size_t>(1, pushed) : gateway_.options().sync_page;
  more_in_store_ = stopped_early || result->has_more || std::exchange(resync_pending_, false);
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

void Session::persistCursorSoon() {
  // Acks without a receipt are stored within cursor_delay_ms: the loop's ticker collects every
  // session due and stores their cursors in one store write (Gateway::storeDueCursors). A busy
  // connection that acknowledges every read would otherwise cost a store write per message, and
  // a worker blocked on each.
  if (gateway_.options().cursor_delay_ms == 0 || disconnect_pending_ || loop_.stopping) {
    return persistCursor();
  }
  if (cursor_due_ms_ || cursor_target_ <= cursor_durable_) return;
  cursor_due_ms_ = nowMs() + gateway_.options().cursor_delay_ms;
  loop_.cursor_due.insert(this);
}

void Session::clearCursorDue() {
  if (!cursor_due_ms_) return;
  cursor_due_ms_ = 0;
  loop_.cursor_due.erase(this);
}

bool Session::takeDueCursor(std::int64_t by_ms, std::vector<store::CursorUpdate>& into) {
  if (cursor_due_ms_ > by_ms || cursor_writing_) return false;  // due later, or a write runs
  cursor_due_ms_ = 0;  // the caller removes us from loop_.cursor_due
  if (cursor_target_ <= cursor_durable_) return true;
  cursor_writing_ = true;
  into.push_back(store::CursorUpdate{principal_.user, principal_.device, cursor_target_});
  return true;
}

void Session::storeCursorNow() {
  clearCursorDue();
  if (cursor_target_ <= cursor_durable_) return;
  if (!cursor_writing_) return persistCursor();
  // A write is under way, and the loop may not run its answer (it stops): store the rest
  // alongside it (the store moves a cursor forward only, so the order does not matter).
  auto work = [self = shared_from_this(),
               update = store::CursorUpdate{principal_.user, principal_.device, cursor_target_}] {
    if (auto moved = self->gateway_.service().storeCursors({&update, 1}); !moved) {
      spdlog::warn("gateway: session {}: cursor not stored: {}", self->id_, moved.error().message);
    }
  };
  asio::post(gateway_.workers(), std::move(work));
}

void Session::persistCursor() {
  clearCursorDue();
  // Answer the ACK receipts that are durable now, even while more writes follow.
  if (!cursor_receipts_.empty()) {
    std::vector<std::pair<Seq, std::string>> waiting;
    waiting.swap(cursor_receipts_);
    for (auto& [target, receipt] : waiting) {
      if (target <= cursor_durable_) {
        onReceipt(&receipt);
      } else {
        cursor_receipts_.emplace_back(target, std::move(receipt));
      }
    }
  }
  if (cursor_writing_ || cursor_target_ <= cursor_durable_) return maybeFinishDisconnect();
  cursor_writing_ = true;
  // Runs whatever the phase: an acknowledgement made before a close is still stored.
  auto work = [self = shared_from_this(),
               update = store::CursorUpdate{principal_.user, principal_.device, cursor_target_}] {
    auto moved = self->gateway_.service().storeCursors({&update, 1});
    asio::post(self->transport_->executor(), [self, moved = std::move(moved)] {
      self->onCursorStored(moved ? Result<Seq>(moved->front()) : std::unexpected(moved.error()));
    });
  };
  asio::post(gateway_.workers(), std::move(work));
}

void Session::onCursorStored(Result<Seq> moved) {
  cursor_writing_ = false;
  if (!moved) {
    // The cursor could not be stored (storage failing): close rather than retry in a loop;
    // the device resyncs from its stored cursor when it comes back.
    spdlog::warn("gateway: session {}: cursor not stored: {}", id_, moved.error().message);
    cursor_target_ = cursor_durable_;
    return fatal("unavailable", "server unavailable", nullptr, moved.error().message);
  }
  cursor_durable_ = std::max(cursor_durable_, *moved);
  // Acks that came meanwhile wait for the next delay too, unless someone waits for them.
  if (cursor_receipts_.empty() && !disconnect_pending_ && phase_ == Phase::Connected) {
    return persistCursorSoon();
  }
  persistCursor();
}

}  // namespace pigeon::gateway
