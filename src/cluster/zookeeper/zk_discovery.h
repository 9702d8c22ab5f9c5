// Discovery on ZooKeeper: every node keeps an ephemeral znode with its NodeInfo (JSON, see
// cluster/node.h) under <root>/nodes/<id>, holds a Snowflake worker id as the ephemeral znode
// <root>/workers/<n>, and watches <root>/nodes to keep a snapshot of the live nodes. The layout
// and the recovery rules are in cluster/README.md.
//
// A thread of its own does every blocking ZooKeeper call: it registers, claims the worker id,
// re-reads what the watches say changed, republishes the connection count (every
// `update_interval`, only when it changed), and recovers from disconnections (the C client
// reconnects by itself, within the session) and from session expiry (a new session:
// re-register, re-claim, re-watch). The C client's own threads only flag events for it.
//
// Worker ids: no two live nodes hold the same id. When this node may have lost its id — its
// session expired, or it has been disconnected so long that the server may have expired the
// session and given the id to another node — on_worker_id(nullopt) is called, and
// on_worker_id(n) again once an id is held in a live session (the same one if the session
// survived). Stop issuing ids between the two calls.
//
// Threads: every method is thread-safe and never blocks on the network, except start() and the
// destructor. Callbacks (on_worker_id) run on the discovery's thread, one at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "base/error.h"
#include "base/metrics.h"
#include "cluster/discovery.h"

namespace pigeon::cluster {

struct ZkDiscoveryOptions {
  std::string hosts;             // "host:port[,host:port…]"
  std::string root = "/pigeon";  // znodes live under it
  std::chrono::milliseconds session_timeout{10000};
  std::chrono::milliseconds update_interval{1000};  // how often the connection count is
                                                    // republished (only if changed)
  std::chrono::milliseconds start_timeout{10000};   // start() fails (Unavailable) if not
                                                    // registered by then
  NodeInfo self;                                    // what this node publishes
  // Called (from the discovery's thread) when this node gains a Snowflake worker id
  // (0..Snowflake::kMaxWorker), and with nullopt when it may have lost it (session expired, or
  // disconnected so long that the session may have expired). Not called by the destructor.
  std::function<void(std::optional<std::uint32_t>)> on_worker_id;
  MetricsRegistry* metrics =
      nullptr;  // optional: pigeon_cluster_nodes,
                // pigeon_zookeeper_sessions_total, pigeon_zookeeper_connected
};

class ZkDiscovery final : public Discovery {
 public:
  // Connects, registers, claims a worker id and reads the node list, all within start_timeout.
  // Errors: BadRequest for bad options (hosts, root, self.id, durations); Unavailable when
  // ZooKeeper cannot be reached or the node is not registered with a worker id in time.
  static Result<std::unique_ptr<ZkDiscovery>> start(ZkDiscoveryOptions options);

  // Deletes this node's znodes (a clean leave, seen at once by the others) and closes the
  // session. Blocks for at most one ZooKeeper round trip or two.
  ~ZkDiscovery() override;

  // The live nodes, this one included, ordered by id: the latest snapshot the watches gave.
  std::vector<NodeInfo> nodes() const override;
  // Published at the next periodic update.
  void setConnections(std::uint64_t connections) override;
  // The worker id held now; nullopt while it may have been lost.
  std::optional<std::uint32_t> workerId() const;

 private:
  struct Impl;  // the session, the thread and the snapshot (zk_discovery.cc)
  explicit ZkDiscovery(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pigeon::cluster
