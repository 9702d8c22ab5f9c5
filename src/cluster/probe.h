// Liveness of a gateway, checked where it matters: before a login is sent to it. ZooKeeper
// removes a node that died only when its session expires (--zk-session-timeout-ms later); in
// between, the node is still listed. The probe opens a TCP connection to the node's gateway
// port: a dead process's port refuses at once, a dead machine does not answer within the
// timeout. Either way the balancer picks another node.
//
// A live answer is never reused (a login costs far more than one connect on a LAN, and a node
// may die between two logins); a dead answer is remembered for `remember`, so that logins do
// not each wait out the timeout against a machine that went silent.
//
// Threads: thread-safe; alive() blocks for at most the timeout (call it from a worker).
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>

#include "cluster/node.h"

namespace pigeon::cluster {

class LivenessProbe {
 public:
  LivenessProbe(std::chrono::milliseconds timeout, std::chrono::milliseconds remember);

  // Whether `node`'s gateway accepts connections (its native TCP port, else its WebSocket
  // one). A node with neither address is not a gateway: false.
  bool alive(const NodeInfo& node);

 private:
  bool connect(const std::string& host, std::uint16_t port) const;

  struct Answer {
    std::chrono::steady_clock::time_point at;  // when the node was found dead
  };
  const std::chrono::milliseconds timeout_;
  const std::chrono::milliseconds remember_;
  std::mutex mu_;
  std::unordered_map<NodeId, Answer> answers_;  // dead nodes, guarded by mu_
};

}  // namespace pigeon::cluster
