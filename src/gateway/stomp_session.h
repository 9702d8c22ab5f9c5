// The STOMP 1.2 codec of a session: WebSocket framing (RFC 6455, server side) after the HTTP
// upgrade, STOMP frames inside (docs/protocol.md). Everything else — login, subscriptions,
// acknowledgements, sends, timers, the queue — is Session's.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "gateway/session.h"
#include "protocol/stomp.h"
#include "protocol/websocket.h"

namespace pigeon::gateway {

class StompSession final : public Session, private protocol::WsHandler {
 public:
  // `bearer`: a token from the upgrade request's Authorization header, used when CONNECT has
  // no passcode.
  StompSession(Gateway& gateway, LoopState& loop, std::unique_ptr<net::Transport> transport,
               std::string bearer);

  // On the connection's loop: queues the 101 `handshake`, then processes `leftover` bytes.
  void start(std::string handshake, std::string leftover);

 private:
  enum Kind : std::uint8_t { kText = 0, kBinary = 1, kRawWs = 2 };

  // Session
  bool feed(char* data, std::size_t size) override;
  bool handleNextFrame() override;
  void appendBuffers(std::span<OutFrame> batch, std::vector<boost::asio::const_buffer>& out) override;
  void onBatchWritten() override;
  void onLoggedIn(std::uint32_t server_beat_ms) override;
  void onSubscribed(const std::string* receipt, store::Seq from_seq) override;
  void onReceipt(const std::string* receipt) override;
  void onSendAccepted(const core::SendResult& result, const std::optional<std::string>& ref) override;
  void onSendRefused(const Error& error, const std::optional<std::string>& ref) override;
  bool refusalIsFatal(const Error&) const override { return true; }  // STOMP: ERROR, then close
  void encodeMessage(OutFrame& frame, std::shared_ptr<const OutboundMessage> message,
                     store::Seq seq) override;
  void encodePresence(const PresenceEvent& event) override;
  void onKicked() override;
  void onDisconnected(const std::optional<std::string>& receipt) override;
  OutFrame errorFrame(std::string_view code, std::string_view message, const std::string* receipt,
                      std::string_view detail) override;
  std::optional<OutFrame> closeFrame(CloseKind kind) override;
  OutFrame heartbeatFrame() override;

  // WsHandler
  void onData(std::string_view payload) override;
  void onPing(std::string_view payload) override;
  void onClose(std::uint16_t code, std::string_view reason) override;

  void handleFrame(protocol::StompFrame& frame);
  void onConnect(protocol::StompFrame& frame);
  void onSend(protocol::StompFrame& frame);
  void onSubscribe(protocol::StompFrame& frame);
  void onUnsubscribe(protocol::StompFrame& frame);
  void onAck(protocol::StompFrame& frame, bool nack);
  void sendFrame(std::string_view command,
                 std::initializer_list<std::pair<std::string_view, std::string_view>> headers,
                 std::string_view body = {});
  // fatal() with the STOMP ERROR's message header as the code.
  void stompFatal(std::string_view message, const std::string* receipt = nullptr,
                  std::string_view detail = {});

  std::string bearer_;
  protocol::WsParser ws_;
  protocol::StompParser stomp_;
  std::vector<std::array<std::uint8_t, 10>> ws_headers_;  // of the batch being written
  std::uint16_t ws_close_code_ = 0;  // set when the peer broke the WebSocket framing
};

}  // namespace pigeon::gateway
