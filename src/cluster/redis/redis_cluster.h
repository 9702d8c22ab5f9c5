// The cluster's directory (routes and presence) and bus (node-to-node payloads) on one Redis
// (7.0 or later; a single server or a primary — every script touches several keys, so not a
// Redis Cluster). One RedisCluster per node is both.
//
// Directory — keys (under the prefix, "pigeon:" by default):
//   route:<user>  hash, device → "<expires_ms>|<login_ms>|<conn>|<node>|<username>"
//   online        sorted set of "<username>\0<user>", scored by the user's longest lease
// Every change is one Lua script (EVALSHA, and EVAL when the server lost its script cache on a
// restart), so a claim, a release or a renewal is atomic with the online set. Leases are kept
// per route in its value (Redis 7.0 has no expiry per hash field) and judged against the
// server's TIME, so the nodes' clocks may disagree; the hash expires with its longest lease, so
// a crashed node's routes vanish even if nothing touches them. Expired routes never count:
// reads skip them, writes purge them, and onlineUsers() drops the users whose leases all ended.
// The order of two connections of one device is (login_ms, node id, conn), compared byte-wise.
// Details in scripts.h and src/cluster/README.md.
//
// Bus — channels: node:<id> for send(), all for broadcast(). This node subscribes to both, so it
// receives its own broadcasts. send() and broadcast() queue (bounded: when full, the oldest
// payload is dropped and counted) for the publisher thread, which pipelines PUBLISHes on its own
// connection; payloads queued while Redis cannot be reached are dropped (at most once). The
// subscriber thread reads the subscription; when the link is lost (or a PING goes unanswered
// for `timeout`) it reconnects with a backoff from 100 ms doubling to 2 s, and after each
// successful re-subscription calls BusHandler::on_reconnect.
//
// Threads: directory calls are thread-safe and block (at most `timeout` per read or write, on a
// connection of a small pool, so concurrent callers do not wait for each other). Bus handlers
// run on the subscriber thread, one at a time. The destructor stops both threads: the publisher
// first sends what is queued (one try), the subscriber notices within 200 ms.
//
// Errors: Unavailable when Redis cannot be reached, does not answer within `timeout`, or
// answers with an error (a connection that failed is dropped; the next call opens another);
// BadRequest for a malformed argument (a bad node id, a negative login time). Nothing throws.
//
// Metrics (if a registry is given): pigeon_redis_errors_total, pigeon_bus_published_total,
// pigeon_bus_received_total, pigeon_bus_dropped_total, pigeon_bus_reconnects_total.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "base/metrics.h"
#include "cluster/bus.h"
#include "cluster/directory.h"
#include "cluster/node.h"
#include "cluster/redis/connection.h"

namespace pigeon::cluster {

struct RedisOptions {
  std::string address;                      // "host:port"
  NodeId self;                              // this node (its bus channel)
  std::chrono::milliseconds lease{30000};   // route lease (TTL); the relay renews every lease/3
  std::chrono::milliseconds timeout{2000};  // per command / connect
  std::string prefix = "pigeon:";           // key and channel prefix
  std::size_t max_queued = 100000;          // bus payloads waiting to be published
};

class RedisCluster final : public Directory, public Bus {
 public:
  ~RedisCluster() override;  // stops its threads
  RedisCluster(const RedisCluster&) = delete;
  RedisCluster& operator=(const RedisCluster&) = delete;

  // Directory
  Result<Claim> claim(const DeviceRoute& route) override;
  Result<bool> release(const DeviceRoute& route) override;
  Result<std::vector<Claim>> renew(std::span<const DeviceRoute> routes) override;
  Result<std::vector<std::vector<Route>>> locate(std::span<const store::UserId> users) override;
  Result<std::vector<std::pair<store::UserId, std::string>>> onlineUsers() override;
  Result<std::vector<bool>> areOnline(std::span<const store::UserId> users) override;

  // Bus
  void send(const NodeId& node, std::string payload) override;
  void broadcast(std::string payload) override;

 private:
  struct Script {
    std::string source;  // scripts::kPrelude and the script's own part
    std::string sha;     // set by loadScripts()
  };
  struct Outgoing {
    std::string channel;
    std::string payload;
  };
  struct Counters {
    Counter* errors;
    Counter* published;
    Counter* received;
    Counter* dropped;
    Counter* reconnects;
  };
  using ConnectionPtr = std::unique_ptr<redis::Connection>;

  RedisCluster(RedisOptions options, redis::Endpoint endpoint, BusHandler handler,
               MetricsRegistry* metrics);
  friend Result<std::unique_ptr<RedisCluster>> openRedisCluster(RedisOptions, BusHandler,
                                                                MetricsRegistry*);

  Result<void> loadScripts(redis::Connection& connection);
  Result<ConnectionPtr> connect();
  Result<ConnectionPtr> subscribe();
  // A connection of the pool (idle or new), and back (kept unless broken).
  Result<ConnectionPtr> borrow();
  void giveBack(ConnectionPtr connection);
  // One run of a script: its keys, then its arguments.
  struct Call {
    std::vector<std::string> keys;
    std::vector<std::string> args;
  };
  // Runs `script` once per call, pipelined on one connection: the replies in order.
  // Unavailable on any failure, an error reply included.
  Result<std::vector<redis::Reply>> evalAll(const Script& script, const std::vector<Call>& calls);
  std::unexpected<Error> failed(Error error);
  std::string routeKey(store::UserId user) const;

  void enqueue(std::string channel, std::string payload);
  void publishLoop(ConnectionPtr connection);
  void markSendLost();
  void subscribeLoop(ConnectionPtr connection);
  // Listens until the link is lost or the cluster stops.
  void listen(redis::Connection& connection);
  // Waits `pause` unless the cluster stops first; true if it stops.
  bool pauseUnlessStopping(std::chrono::milliseconds pause);
  bool stopping();

  const RedisOptions options_;
  const redis::Endpoint endpoint_;
  const BusHandler handler_;
  const std::string online_key_;
  Counter own_counters_[5];
  Counters counters_;
  Script claim_, release_, locate_, online_;

  std::mutex pool_mu_;
  std::vector<ConnectionPtr> idle_;  // guarded by pool_mu_

  std::mutex mu_;
  std::condition_variable publish_cv_;  // queue_ or stopping_ changed
  std::condition_variable stop_cv_;     // stopping_ changed
  std::deque<Outgoing> queue_;          // guarded by mu_
  bool stopping_ = false;               // guarded by mu_
  bool send_lost_ = false;              // guarded by mu_: payloads dropped since the last report
  std::thread publisher_;
  std::thread subscriber_;
};

// Connects (Unavailable if Redis does not answer within options.timeout; BadRequest for a bad
// address or node id), loads the scripts, subscribes to this node's channel and the broadcast
// channel, then starts the publisher and subscriber threads. `handler` runs on the subscriber
// thread. `metrics` may be null; if given it must outlive the result.
Result<std::unique_ptr<RedisCluster>> openRedisCluster(RedisOptions options, BusHandler handler,
                                                       MetricsRegistry* metrics);

}  // namespace pigeon::cluster
