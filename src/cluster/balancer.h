// Gateway balancing: which live gateway a user's login is sent to (the api nodes answer
// "where do I connect?" with it). Engine-free: it works on the list Discovery::nodes() gives.
//
// Strategies:
//   round-robin        the next node in turn (an atomic counter over the given list);
//   random             a uniformly random node;
//   consistent-hash    the node owning the user's point on a hash ring with `virtual_nodes`
//                      points per node: a user stays on one node while it lives, and a node
//                      joining or leaving moves only the users of the arcs it takes or gives
//                      up (about 1/N of them);
//   least-connections  the node with the fewest published connections (ties: smallest id).
//
// pick() only ever returns a member of the list it is given, so a node that discovery no longer
// lists (a dead one) is never chosen.
//
// Threads: Balancer is thread-safe. The consistent-hash ring is built once per set of node ids
// and reused while that set is unchanged (a short lock guards it); the other strategies take no
// lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"
#include "cluster/node.h"

namespace pigeon::cluster {

enum class BalanceStrategy { RoundRobin, Random, ConsistentHash, LeastConnections };

// "round-robin" | "random" | "consistent-hash" | "least-connections"; BadRequest otherwise.
Result<BalanceStrategy> parseBalanceStrategy(std::string_view name);
std::string_view toString(BalanceStrategy strategy);

// The nodes of `nodes` that have `role`, in their order.
std::vector<NodeInfo> nodesWithRole(const std::vector<NodeInfo>& nodes, std::string_view role);

class Balancer {
 public:
  // `virtual_nodes` (> 0) is used by the consistent-hash strategy only.
  explicit Balancer(BalanceStrategy strategy, int virtual_nodes = 160);

  // The node for `user`'s login among `nodes` (the live gateways); nullopt if `nodes` is empty.
  std::optional<NodeInfo> pick(std::uint64_t user, const std::vector<NodeInfo>& nodes);

  BalanceStrategy strategy() const { return strategy_; }

 private:
  std::optional<NodeInfo> pickOnRing(std::uint64_t user, const std::vector<NodeInfo>& nodes);
  void rebuildRingLocked(std::vector<NodeId> ids);

  const BalanceStrategy strategy_;
  const int virtual_nodes_;
  const std::uint64_t seed_;            // a per-balancer random start (round-robin, random)
  std::atomic<std::uint64_t> next_{0};  // round-robin and random: how many picks so far

  std::mutex ring_mu_;
  std::vector<NodeId> ring_ids_;  // sorted, distinct: the node set the ring was built for
  // (point, index into ring_ids_), sorted by point.
  std::vector<std::pair<std::uint64_t, std::uint32_t>> ring_;
};

}  // namespace pigeon::cluster
