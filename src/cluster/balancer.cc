#include "cluster/balancer.h"

#include <algorithm>
#include <random>
#include <tuple>

namespace pigeon::cluster {
namespace {

// splitmix64's output function: a bijection on 64 bits with full avalanche, so consecutive user
// ids and similar node ids land far apart on the ring.
constexpr std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// FNV-1a over the bytes, finished with mix64 (FNV alone mixes its last bytes poorly). Stable
// across processes and builds, unlike std::hash: every api node must build the same ring.
std::uint64_t hashString(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return mix64(h);
}

// The ring point of `id`'s replica `replica`: the splitmix64 sequence seeded by the id's hash.
std::uint64_t ringPoint(std::uint64_t id_hash, std::uint32_t replica) {
  return mix64(id_hash + 0x9e3779b97f4a7c15ULL * (std::uint64_t(replica) + 1));
}

}  // namespace

Result<BalanceStrategy> parseBalanceStrategy(std::string_view name) {
  for (auto s : {BalanceStrategy::RoundRobin, BalanceStrategy::Random,
                 BalanceStrategy::ConsistentHash, BalanceStrategy::LeastConnections}) {
    if (name == toString(s)) return s;
  }
  return fail(Errc::BadRequest, "unknown balance strategy '" + std::string(name) +
                                    "' (round-robin, random, consistent-hash, least-connections)");
}

std::string_view toString(BalanceStrategy strategy) {
  switch (strategy) {
    case BalanceStrategy::RoundRobin:
      return "round-robin";
    case BalanceStrategy::Random:
      return "random";
    case BalanceStrategy::ConsistentHash:
      return "consistent-hash";
    case BalanceStrategy::LeastConnections:
      return "least-connections";
  }
  return "?";
}

std::vector<NodeInfo> nodesWithRole(const std::vector<NodeInfo>& nodes, std::string_view role) {
  std::vector<NodeInfo> out;
  for (const auto& n : nodes) {
    if (n.hasRole(role)) out.push_back(n);
  }
  return out;
}

Balancer::Balancer(BalanceStrategy strategy, int virtual_nodes)
    : strategy_(strategy), virtual_nodes_(virtual_nodes), seed_([] {
        std::random_device entropy;
        return (std::uint64_t(entropy()) << 32) | entropy();
      }()) {
  PIGEON_ASSERT(virtual_nodes > 0);
}

std::optional<NodeInfo> Balancer::pick(std::uint64_t user, const std::vector<NodeInfo>& nodes) {
  if (nodes.empty()) return std::nullopt;
  switch (strategy_) {
    case BalanceStrategy::RoundRobin:
      // From a random start: api nodes that all started at once do not send their first logins
      // to the same gateway.
      return nodes[(seed_ + next_.fetch_add(1, std::memory_order_relaxed)) % nodes.size()];
    case BalanceStrategy::Random:
      return nodes[mix64(seed_ + next_.fetch_add(1, std::memory_order_relaxed)) % nodes.size()];
    case BalanceStrategy::LeastConnections:
      return *std::min_element(nodes.begin(), nodes.end(), [](const auto& a, const auto& b) {
        return std::tie(a.connections, a.id) < std::tie(b.connections, b.id);
      });
    case BalanceStrategy::ConsistentHash:
      return pickOnRing(user, nodes);
  }
  return std::nullopt;
}

std::optional<NodeInfo> Balancer::pickOnRing(std::uint64_t user,
                                             const std::vector<NodeInfo>& nodes) {
  std::vector<NodeId> ids;
  ids.reserve(nodes.size());
  for (const auto& n : nodes) ids.push_back(n.id);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());

  std::lock_guard lock(ring_mu_);
  if (ids != ring_ids_) rebuildRingLocked(std::move(ids));
  const std::uint64_t point = mix64(user);
  auto it = std::upper_bound(ring_.begin(), ring_.end(), point,
                             [](std::uint64_t p, const auto& entry) { return p < entry.first; });
  if (it == ring_.end()) it = ring_.begin();  // the ring wraps around
  const NodeId& owner = ring_ids_[it->second];
  // The ring holds exactly the ids of `nodes`, so the owner is one of them.
  auto node =
      std::find_if(nodes.begin(), nodes.end(), [&](const auto& n) { return n.id == owner; });
  PIGEON_ASSERT(node != nodes.end());
  return *node;
}

void Balancer::rebuildRingLocked(std::vector<NodeId> ids) {
  ring_ids_ = std::move(ids);
  ring_.clear();
  ring_.reserve(ring_ids_.size() * std::size_t(virtual_nodes_));
  for (std::uint32_t i = 0; i < ring_ids_.size(); ++i) {
    const std::uint64_t h = hashString(ring_ids_[i]);
    for (int r = 0; r < virtual_nodes_; ++r) ring_.emplace_back(ringPoint(h, std::uint32_t(r)), i);
  }
  // Ties (two equal 64-bit points) are broken by node index, so every process orders them alike.
  std::sort(ring_.begin(), ring_.end());
}

}  // namespace pigeon::cluster
