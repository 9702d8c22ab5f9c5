// One long connection, whatever its protocol: authentication, the send pipeline, the message
// subscription (resync from the store, then live), acknowledgements and the device cursor,
// presence, heart-beat and write deadlines, and the bounded outbound queue. A codec subclass
// (StompSession: STOMP 1.2 over WebSocket; NativeSession: varint + protobuf over TCP) parses
// frames into calls of the protected operations below and encodes the events this class
// raises through its pure virtual hooks. Both protocols therefore have the same semantics,
// limits and errors, and deliver to each other through the one Hub.
//
// Lifetime: shared_ptr; kept alive by its pending I/O and, once logged in, by the hub. Lives on
// one event loop: every member runs there; deliver(), presence() and kick() post to it.
//
// Memory: an idle session owns no read buffer on a plain connection (the transport waits for
// readability and reads into its loop's scratch buffer), its parser releases its buffer between
// frames, and its outbound queue is empty; message bodies are shared with every recipient.
//
// Flow: after login the session is in the hub; after subscribing it first pushes the inbox
// after the device's cursor (or `since`), read from the store in pages, then live messages.
// Whenever it falls behind — a gap, a full window of unacknowledged messages, a queue over half
// its limit — it stops taking live messages and reads the store again from its last seq, so
// nothing is missed or doubled and memory stays bounded.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "core/service.h"
#include "gateway/gateway.h"
#include "gateway/hub.h"
#include "gateway/timer_wheel.h"
#include "net/transport.h"

namespace pigeon::gateway {

class Session : public Endpoint,
                public WheelEntry,
                public net::TransportHandler,
                public std::enable_shared_from_this<Session> {
 public:
  Session(Gateway& gateway, LoopState& loop, std::unique_ptr<net::Transport> transport);
  ~Session() override;

  // Endpoint (any thread, but deliverHere(): on the loop).
  void deliver(std::shared_ptr<const OutboundMessage> message, store::Seq seq) override;
  LoopState* loop() override { return &loop_; }
  void deliverHere(std::shared_ptr<const OutboundMessage> message, store::Seq seq) override {
    onDeliver(std::move(message), seq);
  }
  void presence(PresenceEvent event) override;
  void kick() override;
  void resync() override;
  std::uint64_t connId() const override { return id_; }

  // On the session's loop, when the gateway stops: stores the acknowledgements held back for
  // cursor_delay_ms at once.
  void storeCursorNow();
  // On the loop, for the loop's ticker: if this session's acknowledgements are due by `by_ms`
  // and no cursor write runs, appends its cursor to `into` (if it moved), marks the write as
  // running and returns true (the caller then drops it from LoopState::cursor_due and later
  // calls onCursorStored() with the outcome).
  bool takeDueCursor(std::int64_t by_ms, std::vector<store::CursorUpdate>& into);
  void onCursorStored(Result<store::Seq> moved);

 protected:
  enum class Phase : std::uint8_t { AwaitingLogin, Authenticating, Connected, Closing, Closed };
  enum class AckMode : std::uint8_t { Auto, Client, ClientIndividual };
  enum class CloseKind : std::uint8_t { Normal, Error };

  // One frame to send. `own` is this session's bytes; `tail`, when set, points into `shared`
  // (the bytes every recipient of a message shares) and is written after `own`.
  struct OutFrame {
    std::string own;
    std::shared_ptr<const OutboundMessage> shared;
    const std::string* tail = nullptr;
    store::Seq auto_ack = 0;  // ack mode auto: this seq is acknowledged once written
    std::uint8_t kind = 0;    // the codec's own tag (STOMP: text, binary or raw WebSocket)
    std::size_t size() const { return own.size() + (tail ? tail->size() : 0); }
  };

  struct Subscription {
    std::string id;           // the client's name for it (STOMP), echoed on deliveries
    std::string destination;  // as the client wrote it (STOMP)
    AckMode mode = AckMode::Auto;
  };

  // Sets up the socket and timers; queues `greeting` (e.g. a 101 response) if not empty.
  void begin(OutFrame greeting);

  // ---- for codecs: input -----------------------------------------------------------------
  // Parses and handles frames while input is not blocked, then waits for more.
  void pump();
  // Counts a received frame against the rate limit; false: the session failed (stop parsing).
  bool admitFrame();
  // Login with a token. `login`, when not empty, must be the token's username; `device`, when
  // not empty, the token's device. `client_beat_ms`: the client sends something at least this
  // often (0: never); `wants_beat_ms`: it wants something from us this often (0: never).
  void login(std::string token, std::string login, std::string device,
             std::uint32_t client_beat_ms, std::uint32_t wants_beat_ms);
  // `ref` identifies the send in the answer (STOMP receipt, native client_msg_id).
  void submitSend(core::SendRequest request, std::optional<std::string> ref);
  void subscribe(Subscription sub, std::optional<store::Seq> since, const std::string* receipt);
  // Ends the message subscription; false if there is none with this id.
  bool unsubscribe(const std::string& id);
  void subscribePresence(std::string id);
  bool unsubscribePresence(const std::string& id);
  // Acknowledges `seq` (and everything before it when `cumulative`), or hands back every
  // unacknowledged message (`nack`). The codec checks ackProblem() first.
  void acknowledge(store::Seq seq, bool cumulative, const std::string* receipt);
  void nack(const std::string* receipt);
  // Why an ACK of `seq` is not acceptable, or empty.
  std::string ackProblem(store::Seq seq) const;
  // Stop taking input; answer with onDisconnected() once earlier sends and acks are durable.
  void disconnect(std::optional<std::string> receipt);
  // Sends the codec's error for `code` (a snake_case name), then closes.
  void fatal(std::string_view code, std::string_view message, const std::string* receipt = nullptr,
             std::string_view detail = {});
  // Queues a frame; over max_outbound_bytes the session is closed as a slow consumer, unless
  // `exempt` (the last frames of a close).
  void enqueue(OutFrame frame, bool exempt = false);
  void beginClose(CloseKind kind);
  void closeNow(const char* why);

  // ---- for codecs: state -----------------------------------------------------------------
  Gateway& gateway_;
  LoopState& loop_;
  std::unique_ptr<net::Transport> transport_;
  const std::uint64_t id_;
  Phase phase_ = Phase::AwaitingLogin;
  core::Principal principal_;
  std::optional<Subscription> sub_;
  std::optional<std::string> presence_sub_;
  std::uint64_t presence_counter_ = 0;

  // ---- the codec's part ------------------------------------------------------------------
  // Bytes from the peer: decode the transport framing and buffer frames.
  virtual bool feed(char* data, std::size_t size) = 0;
  // Handles the next buffered frame; false when there is none.
  virtual bool handleNextFrame() = 0;
  // Appends the buffers that write `batch` to `out` (they must stay valid while it is written).
  virtual void appendBuffers(std::span<OutFrame> batch,
                             std::vector<boost::asio::const_buffer>& out) = 0;
  virtual void onBatchWritten() {}
  virtual void onLoggedIn(std::uint32_t server_beat_ms) = 0;
  virtual void onSubscribed(const std::string* receipt, store::Seq from_seq) = 0;
  virtual void onReceipt(const std::string* receipt) = 0;
  virtual void onSendAccepted(const core::SendResult& result, const std::optional<std::string>& ref) = 0;
  virtual void onSendRefused(const Error& error, const std::optional<std::string>& ref) = 0;
  // Whether refusing a send closes the connection (then later sends are not stored). Called on
  // a worker thread: must not touch mutable state.
  virtual bool refusalIsFatal(const Error& error) const = 0;
  virtual void encodeMessage(OutFrame& frame, std::shared_ptr<const OutboundMessage> message,
                             store::Seq seq) = 0;
  virtual void encodePresence(const PresenceEvent& event) = 0;
  virtual void onKicked() = 0;
  virtual void onDisconnected(const std::optional<std::string>& receipt) = 0;
  // The error frame for fatal(); queued exempt from the queue limit.
  virtual OutFrame errorFrame(std::string_view code, std::string_view message,
                              const std::string* receipt, std::string_view detail) = 0;
  // The last frame before a close (a WebSocket close frame), if the protocol has one.
  virtual std::optional<OutFrame> closeFrame(CloseKind kind) = 0;
  // A heart-beat (only asked for when the client wants them).
  virtual OutFrame heartbeatFrame() = 0;

 private:
  // TransportHandler
  bool onInput(char* data, std::size_t size) override;
  void onReadDone(const boost::system::error_code& ec) override;
  void onWritten(const boost::system::error_code& ec) override;

  void armRead();
  bool inputBlocked() const;
  void flush();
  void cleanup();
  void onTimer() override;
  void rescheduleTimer();
  std::int64_t nowMs() const;

  void onAuthenticated(Result<core::Principal> who, bool superseded, std::string login,
                       std::string device, std::uint32_t client_beat_ms, std::uint32_t wants_beat_ms);
  void startNextSend();
  void onSent(Result<core::SendResult> result, std::optional<std::string> ref);
  void maybeFinishDisconnect();
  void onDeliver(std::shared_ptr<const OutboundMessage> message, store::Seq seq);
  bool room() const;
  std::size_t unacked() const;
  void pushMessage(std::shared_ptr<const OutboundMessage> message, store::Seq seq);
  void startSync();
  void onSynced(std::uint64_t generation, Result<core::SyncResult> result);
  void persistCursor();
  void persistCursorSoon();
  void clearCursorDue();

  friend struct LoopState;  // corks and uncorks
  void uncork() {
    corked_ = false;
    flush();
  }

  // Outbound queue; `inflight_` is the batch being written.
  std::vector<OutFrame> queue_;
  std::vector<OutFrame> inflight_;
  std::vector<boost::asio::const_buffer> buffers_;
  std::size_t queue_bytes_ = 0;
  bool reading_ = false;
  bool writing_ = false;
  bool corked_ = false;  // queued during a mailbox burst: the loop flushes it at the end
  bool draining_ = false;  // closing: reading and discarding until the peer closes

  // Times (steady clock, ms) for the timer wheel.
  std::int64_t connect_deadline_ = 0;
  std::int64_t last_read_ms_ = 0;
  std::int64_t last_write_ms_ = 0;
  std::int64_t write_started_ms_ = 0;
  std::int64_t close_deadline_ = 0;
  std::uint32_t in_heartbeat_ms_ = 0;   // the client beats at least this often (0: never)
  std::uint32_t out_heartbeat_ms_ = 0;  // we beat this often (0: never)

  // Per-connection frame rate (token bucket).
  double tokens_ = 0;
  std::int64_t tokens_ms_ = 0;

  bool attached_ = false;  // in the hub
  std::int64_t login_ms_ = 0;  // wall clock: orders this device's connections in a cluster

  // Sends: checked in order, a batch at a time on one worker (so a connection's messages keep
  // their order), then durable in any number; inflight_sends_ counts those not answered yet.
  struct PendingSend {
    core::SendRequest request;
    std::optional<std::string> ref;
  };
  std::vector<PendingSend> send_queue_;
  bool send_running_ = false;
  std::size_t inflight_sends_ = 0;
  std::optional<std::string> disconnect_receipt_;
  bool disconnect_pending_ = false;

  // The message subscription.
  std::uint64_t sub_generation_ = 0;
  store::Seq last_pushed_ = 0;      // highest seq queued to the client (a NACK rewinds it)
  store::Seq max_pushed_ = 0;       // highest seq ever queued on this subscription
  store::Seq acked_ = 0;            // everything up to here is acknowledged
  std::set<store::Seq> acked_above_;  // single acks past acked_
  store::Seq known_max_ = 0;        // highest seq seen live
  bool more_in_store_ = false;      // the store may hold messages past last_pushed_
  bool syncing_ = false;
  bool rewind_pending_ = false;     // a NACK came while a read ran: drop its result
  bool resync_pending_ = false;     // a cluster resync came while a read ran: read again after
  std::uint64_t route_epoch_ = 0;   // the relay's unsureEpoch() before this session's claim
  std::int64_t sync_retry_at_ = 0;  // read the store again at this time (0: not planned)
  std::size_t next_page_ = SIZE_MAX;  // inbox items to read next time (adapts to a slow client)

  // The device cursor as stored, and receipts waiting for it.
  store::Seq cursor_target_ = 0;
  store::Seq cursor_durable_ = 0;
  bool cursor_writing_ = false;
  std::int64_t cursor_due_ms_ = 0;  // persistCursorSoon(): write by this time (0: not planned)
  std::vector<std::pair<store::Seq, std::string>> cursor_receipts_;
};

}  // namespace pigeon::gateway
