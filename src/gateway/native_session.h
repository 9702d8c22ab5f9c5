// The native codec of a session: varint32-length-prefixed pigeon.v1.Envelope frames over TCP
// or TLS (proto/pigeon.proto, docs/protocol.md "Native protocol"). Everything else — login,
// the subscription, acknowledgements, sends, timers, the queue — is Session's, shared with
// STOMP.
//
// Differences from STOMP, by design: every Send is answered (SendAck, or an Error naming its
// client_msg_id); a Send refused for its content (no such recipient, not a member, too large,
// invalid) does not close the connection; the client pings and the server answers, so the
// server sends nothing while the client is quiet.
#pragma once

#include "gateway/session.h"
#include "protocol/native.h"

namespace pigeon::gateway {

class NativeSession final : public Session {
 public:
  NativeSession(Gateway& gateway, LoopState& loop, std::unique_ptr<net::Transport> transport);

  // On the connection's loop: starts reading.
  void start();

 private:
  // Session
  bool feed(char* data, std::size_t size) override;
  bool handleNextFrame() override;
  void appendBuffers(std::span<OutFrame> batch, std::vector<boost::asio::const_buffer>& out) override;
  void onLoggedIn(std::uint32_t server_beat_ms) override;
  void onSubscribed(const std::string* receipt, store::Seq from_seq) override;
  void onReceipt(const std::string* receipt) override;
  void onSendAccepted(const core::SendResult& result, const std::optional<std::string>& ref) override;
  void onSendRefused(const Error& error, const std::optional<std::string>& ref) override;
  // Only the refusals docs/protocol.md lists as not fatal keep the connection.
  bool refusalIsFatal(const Error& error) const override {
    return error.code != Errc::NotFound && error.code != Errc::Forbidden &&
           error.code != Errc::TooLarge && error.code != Errc::BadRequest;
  }
  void encodeMessage(OutFrame& frame, std::shared_ptr<const OutboundMessage> message,
                     store::Seq seq) override;
  void encodePresence(const PresenceEvent& event) override;
  void onKicked() override;
  void onDisconnected(const std::optional<std::string>& receipt) override;
  OutFrame errorFrame(std::string_view code, std::string_view message, const std::string* receipt,
                      std::string_view detail) override;
  std::optional<OutFrame> closeFrame(CloseKind kind) override;
  OutFrame heartbeatFrame() override;

  void handle(protocol::pb::Envelope& envelope);
  void onLogin(protocol::pb::Login& login);
  void onSend(protocol::pb::Send& send);
  void onSync(const protocol::pb::SyncRequest& sync);
  void onAck(const protocol::pb::Ack& ack);
  void send(const protocol::pb::Envelope& envelope);

  protocol::NativeParser parser_;
  bool wants_presence_ = false;
};

}  // namespace pigeon::gateway
