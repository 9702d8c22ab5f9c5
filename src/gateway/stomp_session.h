// One WebSocket connection speaking STOMP 1.2 (docs/protocol.md).
//
// Lifetime: shared_ptr; kept alive by its pending I/O and, once connected, by the hub. Lives on
// one event loop: every member runs there; deliver(), presence() and kick() post to it.
//
// Memory: an idle session owns no read buffer (it waits for readability and reads into its
// loop's scratch buffer), its parsers release their buffers between frames, and its outbound
// queue is empty; message bodies are shared with every other recipient.
//
// Flow: after CONNECT the session is in the hub; after SUBSCRIBE it first pushes the inbox
// after the device's cursor (or `since`), read from the store in pages, then live messages.
// Whenever it falls behind — a gap, a full window of unacknowledged messages, a queue over half
// its limit — it stops taking live messages and reads the store again from its last seq, so
// nothing is missed or doubled and memory stays bounded.
#pragma once

#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/service.h"
#include "gateway/gateway.h"
#include "gateway/hub.h"
#include "gateway/timer_wheel.h"
#include "protocol/stomp.h"
#include "protocol/websocket.h"

namespace pigeon::gateway {

class StompSession final : public Endpoint,
                           public WheelEntry,
                           private protocol::WsHandler,
                           public std::enable_shared_from_this<StompSession> {
 public:
  // `bearer`: a token from the upgrade request's Authorization header, used when CONNECT has
  // no passcode.
  StompSession(Gateway& gateway, LoopState& loop, boost::asio::ip::tcp::socket socket,
               std::string bearer);
  ~StompSession() override;

  // On the socket's loop: queues the 101 `handshake`, then processes `leftover` bytes.
  void start(std::string handshake, std::string leftover);

  // Endpoint (any thread).
  void deliver(std::shared_ptr<const OutboundMessage> message, store::Seq seq) override;
  void presence(PresenceEvent event) override;
  void kick() override;

 private:
  enum class Phase : std::uint8_t { AwaitingConnect, Connecting, Connected, Closing, Closed };
  enum class AckMode : std::uint8_t { Auto, Client, ClientIndividual };

  struct OutFrame {
    std::string own;                                // STOMP bytes, or a whole WebSocket frame
    std::shared_ptr<const OutboundMessage> shared;  // the shared tail of a MESSAGE
    store::Seq auto_ack = 0;  // ack:auto — this seq is acknowledged once written
    bool raw_ws = false;      // `own` is already a WebSocket frame (101, pong, close)
    bool binary = false;      // the STOMP bytes are not valid UTF-8
    std::size_t size() const { return own.size() + (shared ? shared->stomp_tail.size() : 0); }
  };

  struct Subscription {
    std::string id;
    std::string destination;  // as the client wrote it (echoed in MESSAGE frames)
    AckMode mode = AckMode::Auto;
  };

  // ---- I/O ---------------------------------------------------------------------------------
  void armRead();
  void onReadable(const boost::system::error_code& ec);
  void feed(char* data, std::size_t size);
  // Queues a frame; over max_outbound_bytes the session is closed as a slow consumer, unless
  // `exempt` (the last frames of a close).
  void enqueue(OutFrame frame, bool exempt = false);
  void flush();
  void onWritten(const boost::system::error_code& ec);
  void beginClose(std::uint16_t ws_code);
  void closeNow(const char* why);
  void cleanup();
  void onTimer() override;
  void rescheduleTimer();
  std::int64_t nowMs() const;

  // WsHandler
  void onData(std::string_view payload) override;
  void onPing(std::string_view payload) override;
  void onClose(std::uint16_t code, std::string_view reason) override;

  // ---- STOMP -------------------------------------------------------------------------------
  void pump();
  bool inputBlocked() const;
  void handleFrame(protocol::StompFrame& frame);
  void onConnect(protocol::StompFrame& frame);
  void onAuthenticated(Result<core::Principal> who, std::string login, std::uint32_t cx,
                       std::uint32_t cy);
  void onSend(protocol::StompFrame& frame);
  void startNextSend();
  void onSent(Result<core::SendResult> result, std::optional<std::string> receipt);
  void onSubscribe(protocol::StompFrame& frame);
  void onUnsubscribe(protocol::StompFrame& frame);
  void onAck(protocol::StompFrame& frame, bool nack);
  void onDisconnect(protocol::StompFrame& frame);
  void maybeFinishDisconnect();
  void sendFrame(std::string_view command,
                 std::initializer_list<std::pair<std::string_view, std::string_view>> headers,
                 std::string_view body = {});
  void sendReceipt(const std::string* receipt);
  // Sends ERROR (message header, optional receipt-id, `detail` as body) and closes.
  void fatal(std::string_view message, const std::string* receipt = nullptr,
             std::string_view detail = {});

  // ---- delivery ----------------------------------------------------------------------------
  void onDeliver(std::shared_ptr<const OutboundMessage> message, store::Seq seq);
  bool room() const;
  std::size_t unacked() const;
  void pushMessage(std::shared_ptr<const OutboundMessage> message, store::Seq seq);
  void startSync();
  void onSynced(std::uint64_t generation, Result<core::SyncResult> result);
  void persistCursor();

  Gateway& gateway_;
  LoopState& loop_;
  boost::asio::ip::tcp::socket socket_;
  const std::uint64_t id_;
  std::string bearer_;
  Phase phase_ = Phase::AwaitingConnect;

  protocol::WsParser ws_;
  protocol::StompParser stomp_;

  // Outbound queue; `inflight_` is the batch being written.
  std::vector<OutFrame> queue_;
  std::vector<OutFrame> inflight_;
  std::vector<boost::asio::const_buffer> buffers_;
  std::vector<std::array<std::uint8_t, 10>> ws_headers_;
  std::size_t queue_bytes_ = 0;
  bool reading_ = false;
  bool writing_ = false;
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

  // After CONNECT.
  core::Principal principal_;
  bool attached_ = false;

  // SENDs: checked one at a time (so a connection's messages keep their order), then durable
  // in any number; inflight_sends_ counts those without their RECEIPT yet.
  struct PendingSend {
    core::SendRequest request;
    std::optional<std::string> receipt;
  };
  std::vector<PendingSend> send_queue_;
  bool send_running_ = false;
  std::size_t inflight_sends_ = 0;
  std::optional<std::string> disconnect_receipt_;
  bool disconnect_pending_ = false;

  // The message subscription.
  std::optional<Subscription> sub_;
  std::uint64_t sub_generation_ = 0;
  store::Seq last_pushed_ = 0;      // highest seq queued to the client (a NACK rewinds it)
  store::Seq max_pushed_ = 0;       // highest seq ever queued on this subscription
  store::Seq acked_ = 0;            // everything up to here is acknowledged
  std::set<store::Seq> acked_above_;  // client-individual acks past acked_
  store::Seq known_max_ = 0;        // highest seq seen live
  bool more_in_store_ = false;      // the store may hold messages past last_pushed_
  bool syncing_ = false;
  bool rewind_pending_ = false;     // a NACK came while a read ran: drop its result
  std::int64_t sync_retry_at_ = 0;  // read the store again at this time (0: not planned)
  std::size_t next_page_ = SIZE_MAX;  // inbox items to read next time (adapts to a slow client)

  // The device cursor as stored, and receipts waiting for it.
  store::Seq cursor_target_ = 0;
  store::Seq cursor_durable_ = 0;
  bool cursor_writing_ = false;
  std::vector<std::pair<store::Seq, std::string>> cursor_receipts_;

  std::optional<std::string> presence_sub_;
  std::uint64_t presence_counter_ = 0;
};

}  // namespace pigeon::gateway
