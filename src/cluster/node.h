// A node of a Pigeon cluster as the others see it: its id, roles and advertised addresses.
// Plain values; the registry (ZooKeeper) stores each node's NodeInfo as JSON.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace pigeon::cluster {

// Unique per process incarnation (a restarted node gets a new one), so a route or a message
// addressed to a dead node can never reach its successor by mistake. 1–64 characters of
// [A-Za-z0-9._-].
using NodeId = std::string;

struct NodeInfo {
  NodeId id;
  std::vector<std::string> roles;  // of "gateway", "api", "store"
  std::string ws;                  // "ws://host:port/ws" or "wss://…"; empty: none
  std::string tcp;                 // "tcp://host:port" or "tls://…"; empty: none
  std::string http;                // "http://host:port" or "https://…"; empty: none
  std::uint64_t connections = 0;   // long connections held now (as last published)
  std::int64_t started_at_ms = 0;  // wall clock, milliseconds since the Unix epoch

  bool hasRole(std::string_view role) const;
  friend bool operator==(const NodeInfo&, const NodeInfo&) = default;
};

// A fresh random node id (16 hex digits).
NodeId newNodeId();
// Errors: BadRequest naming what is wrong.
Result<void> validateNodeId(std::string_view id);

// The registry's encoding: one JSON object. fromJson: BadRequest for anything malformed.
std::string toJson(const NodeInfo& node);
Result<NodeInfo> nodeFromJson(std::string_view json);

}  // namespace pigeon::cluster
