// The directory: where every user's devices are connected, cluster-wide (user → device → node),
// and so who is online. The cluster's implementation is Redis (cluster/redis); a single node
// needs none (its gateway's hub is the whole truth).
//
// Routes are leases: each expires unless its node renews it, so the routes of a node that
// crashed disappear by themselves. Two connections of one device are ordered by their login
// time (then node id, then connection id): the later one owns the route, and nothing the
// earlier one does — a late release, a renewal — takes the route back.
//
// Threads: every method is thread-safe and BLOCKS on the network: call it from a worker
// thread, never from an I/O loop. Errors: Unavailable when the engine cannot be reached (the
// caller decides whether to go on without it); BadRequest for malformed arguments.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "cluster/node.h"
#include "store/types.h"

namespace pigeon::cluster {

// Where one connection lives.
struct Route {
  NodeId node;
  std::uint64_t conn = 0;      // the connection's id on its node (unique per node incarnation)
  std::int64_t login_ms = 0;   // when it logged in (wall clock, ms since the Unix epoch)
  friend bool operator==(const Route&, const Route&) = default;
};

// A device's connection: whose, which device, where.
struct DeviceRoute {
  store::UserId user = 0;
  std::string username;  // kept beside the route, for lists of online users
  std::string device;
  Route route;
};

struct Claim {
  // The route this claim replaced: the device's earlier connection, on this node or another,
  // which the caller closes (kicks). Empty when the device had no live route.
  std::optional<Route> displaced;
  // A later connection of the device owns the route: this one was not recorded, and the caller
  // closes its own connection.
  bool superseded = false;
  // The user had no live route before this claim (came online, cluster-wide).
  bool came_online = false;
};

class Directory {
 public:
  virtual ~Directory() = default;

  // Records the connection as the device's route (unless a later one owns it: superseded).
  virtual Result<Claim> claim(const DeviceRoute& route) = 0;
  // Removes the device's route if it is still exactly `route`. Returns true if the user has no
  // live route left (went offline, cluster-wide).
  virtual Result<bool> release(const DeviceRoute& route) = 0;
  // Re-asserts this node's routes (extends their leases; re-creates any that are missing, e.g.
  // after the engine restarted empty). One Claim per route, in order, as claim() would answer.
  virtual Result<std::vector<Claim>> renew(std::span<const DeviceRoute> routes) = 0;
  // Each user's live routes, in the order of `users`.
  virtual Result<std::vector<std::vector<Route>>> locate(std::span<const store::UserId> users) = 0;
  // Users with at least one live route, as (id, username), ordered by username.
  virtual Result<std::vector<std::pair<store::UserId, std::string>>> onlineUsers() = 0;
  // Whether each user has a live route, in the order of `users`.
  virtual Result<std::vector<bool>> areOnline(std::span<const store::UserId> users) = 0;
};

}  // namespace pigeon::cluster
