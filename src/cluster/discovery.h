// Discovery: which nodes are alive, with their addresses and load. The cluster's implementation
// keeps each node registered in ZooKeeper (cluster/zookeeper); a single node uses
// StaticDiscovery, which knows only itself.
//
// Threads: every method is thread-safe and never blocks (implementations keep a snapshot that
// their own threads refresh).
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "cluster/node.h"

namespace pigeon::cluster {

class Discovery {
 public:
  virtual ~Discovery() = default;
  // The live nodes, this one included once registered, ordered by id.
  virtual std::vector<NodeInfo> nodes() const = 0;
  // This node's number of long connections, published at the next periodic update.
  virtual void setConnections(std::uint64_t connections) = 0;
};

// One node that knows only itself.
class StaticDiscovery final : public Discovery {
 public:
  explicit StaticDiscovery(NodeInfo self) : self_(std::move(self)) {}
  std::vector<NodeInfo> nodes() const override {
    std::lock_guard lock(mu_);
    return {self_};
  }
  void setConnections(std::uint64_t connections) override {
    std::lock_guard lock(mu_);
    self_.connections = connections;
  }

 private:
  mutable std::mutex mu_;
  NodeInfo self_;
};

}  // namespace pigeon::cluster
