// Node-to-node messages: one hop from a node to another (or to all). The cluster's
// implementation is Redis pub/sub (cluster/redis). Payloads are opaque bytes (the gateway's
// cluster relay encodes them, see proto/cluster.proto).
//
// Delivery is at most once: a payload is lost if its destination or the link is down. That is
// safe because nothing depends on it alone — a message is in the store before it is relayed, and
// a node told that its link came back (BusHandler::on_reconnect) makes its sessions resync, and
// a node told that payloads it sent were lost (BusHandler::on_send_lost) has every node resync.
// Payloads from one sender to one destination arrive in the order sent.
//
// Threads: send() and broadcast() are thread-safe and never block (they queue); on_message and
// on_reconnect run on the bus's subscriber thread, one at a time, on_send_lost on its publisher
// thread; none may block for long.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "cluster/node.h"

namespace pigeon::cluster {

struct BusHandler {
  // A payload sent to this node (or broadcast).
  std::function<void(std::string_view payload)> on_message;
  // The subscription was (re)established after a loss: payloads sent meanwhile may be lost.
  // Not called for the first subscription.
  std::function<void()> on_reconnect;
  // Payloads this node sent were dropped (the queue overflowed, or Redis could not be reached)
  // and publishing works again: the caller tells the others to resync. Runs on the bus's
  // publisher thread; may call send() and broadcast().
  std::function<void()> on_send_lost;
};

class Bus {
 public:
  virtual ~Bus() = default;
  virtual void send(const NodeId& node, std::string payload) = 0;
  virtual void broadcast(std::string payload) = 0;
};

}  // namespace pigeon::cluster
