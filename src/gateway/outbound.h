// What the gateway sends to sessions, encoded once and shared by every session that gets it.
#pragma once

#include <memory>
#include <string>

#include "store/types.h"

namespace pigeon::gateway {

// A stored message on its way to online devices. The STOMP encoding of everything that is the
// same for every recipient (the tail of the MESSAGE frame: its shared headers, the blank line,
// the body and the NUL) is built once; each session writes only its own short head
// (subscription, message-id, ack, seq) before these shared bytes.
struct OutboundMessage {
  store::Message message;
  std::string from;
  std::string stomp_tail;
  bool body_is_utf8 = true;  // false: WebSocket frames carrying it must be binary

  static std::shared_ptr<const OutboundMessage> make(store::Message message, std::string from);
};

// A contact came online or went offline.
struct PresenceEvent {
  store::UserId user = 0;
  std::string username;
  bool online = false;
};

}  // namespace pigeon::gateway
