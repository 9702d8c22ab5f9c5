// What the gateway sends to sessions, encoded once and shared by every session that gets it.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "store/types.h"

namespace pigeon::gateway {

// A stored message on its way to online devices. What is the same for every recipient is
// encoded once per protocol and shared; each session writes only its own short head before it.
//   STOMP: the tail of the MESSAGE frame (its shared headers, the blank line, the body, the
//   NUL); the head has the subscription, message-id, ack and seq.
//   Native: the Deliver message without its seq (built on first use); the head has the frame
//   length, the Envelope tag and the seq.
struct OutboundMessage {
  store::Message message;
  std::string from;
  std::string stomp_tail;
  bool body_is_utf8 = true;  // false: WebSocket frames carrying it must be binary

  static std::shared_ptr<const OutboundMessage> make(store::Message message, std::string from);

  // Thread-safe: the first caller encodes.
  const std::string& nativeTail() const;

 private:
  mutable std::once_flag native_once_;
  mutable std::string native_tail_;
};

// A contact came online or went offline.
struct PresenceEvent {
  store::UserId user = 0;
  std::string username;
  bool online = false;
};

}  // namespace pigeon::gateway
