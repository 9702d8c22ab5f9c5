// The gateway's side of a cluster: it connects this node's hub to the cluster's directory
// (where every device is connected) and bus (one hop to another node).
//
//  - Routes: a session that logs in claims its device's route before it reads anything from
//    the store (claim(), blocking, on the worker that authenticated it), so a message stored
//    after the claim is relayed here and one stored before is in the store when the session
//    reads it. The claim names the device's earlier connection, which is kicked wherever it is
//    (a Kick on the bus to its node); a session whose route a later connection owns is kicked
//    itself. Closed sessions release their route; every route here is renewed every third of
//    the lease, which also re-creates the routes after the directory lost them (a restart).
//  - Deliveries: as the core's DeliverySink it hands each stored message to the local hub at
//    once, and queues it for the relay thread, which looks up where the other recipients are
//    connected (one directory call for a batch of messages) and sends each other node one
//    Deliveries payload with just its recipients — one hop per destination node.
//  - What comes over the bus: deliveries go to the local hub, kicks to the hub's connection,
//    presence changes to the watchers here; when the bus link comes back after a loss, every
//    session here resyncs from the store (it may have missed deliveries).
//  - Presence: who is online is the directory's answer (core::Presence for the API, and
//    ClusterPresence for the hub's contact presence). Comings and goings are broadcast
//    (PresenceChange) by the node where the directory said the user came online or went
//    offline.
//
// Nothing here is needed for correctness of what is stored: a relay that fails (directory or
// bus down) only delays live delivery until the recipients' sessions resync.
//
// Threads: claim() blocks (worker threads); release() and onStored() never block; the relay
// thread does the directory lookups, the publishing and the renewals; bus handlers run on the
// bus's thread. start() before serving, stop() before the engines go.
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/metrics.h"
#include "cluster/bus.h"
#include "cluster/directory.h"
#include "core/presence.h"
#include "core/service.h"
#include "gateway/hub.h"

namespace pigeon::gateway {

struct ClusterRelayOptions {
  cluster::NodeId node;                              // this node's id
  std::chrono::milliseconds lease{30000};            // the directory's route lease
  std::size_t max_batch = 512;                       // stored messages relayed per lookup
  std::size_t max_queued = 100000;                   // over it, the oldest are dropped (resync)
};

class ClusterRelay final : public core::DeliverySink,
                           public core::Presence,
                           public ClusterPresence {
 public:
  // `hub` and `service` must outlive the relay.
  ClusterRelay(Hub& hub, core::Service& service, MetricsRegistry& metrics,
               ClusterRelayOptions options);
  ~ClusterRelay() override;

  // The engines, before start(): they must outlive stop().
  void setEngines(cluster::Directory* directory, cluster::Bus* bus);
  // What the bus calls with payloads for this node (ignored until start()).
  cluster::BusHandler busHandler();
  void start();
  // Stops the relay thread, after it relayed what is queued and removed this node's routes from
  // the directory — the sessions' here and those released lately — for at most 3 s in all (if
  // messages were left unrelayed, every node is told to resync; routes left expire with their
  // lease). Call it when the node leaves, after the store closed (its last commits are relayed).
  void stop();

  // A session of `who` logged in as connection `conn` at `login_ms`: claims the device's route,
  // kicks the earlier connection, broadcasts the user's coming online. Returns true if a later
  // connection owns the route (the caller closes its session as kicked). If the directory is
  // unreachable the session goes on (the next renewal records it). Blocking.
  bool claim(const core::Principal& who, std::uint64_t conn, std::int64_t login_ms);
  // Sessions attach to the hub some time after their claim. If the directory may have lost
  // routes in between (a claim or a renewal failed, the bus link came back), a renewal that ran
  // meanwhile did not include the new session: it calls recheck(), and the relay renews again
  // and then has every session here resync. unsureEpoch() changes whenever that may be the case.
  std::uint64_t unsureEpoch() const { return unsure_epoch_.load(std::memory_order_acquire); }
  void recheck();

  // The session closed (it owned its hub entry): releases the route if still its own and
  // broadcasts the user's going offline. Never blocks (runs on the relay thread).
  void release(const core::Principal& who, std::uint64_t conn, std::int64_t login_ms);

  // core::DeliverySink (store thread)
  void onStored(const store::Message& message, const std::string& from,
                const std::vector<store::InboxRef>& refs) override;
  // core::Presence: users online anywhere (blocking). Falls back to this node's if the
  // directory is unreachable.
  std::vector<std::pair<store::UserId, std::string>> onlineUsers() const override;
  // ClusterPresence (blocking)
  Result<std::vector<bool>> areOnline(std::span<const store::UserId> users) override;

 private:
  struct Stored {
    store::Message message;
    std::string from;
    std::vector<store::InboxRef> refs;
  };
  void run();
  void finishOnStop(std::vector<Stored> rest, std::vector<cluster::DeviceRoute> releases,
                    bool dropped);
  void releaseOnStop(std::vector<cluster::DeviceRoute> releases,
                     std::chrono::steady_clock::time_point deadline);
  void relay(std::vector<Stored>& batch);
  std::vector<cluster::DeviceRoute> localRoutes() const;  // every connection here, as routes
  bool renewNow();  // false: the directory did not answer
  void broadcastResync();
  void settleClaim(const cluster::DeviceRoute& route, const cluster::Claim& claim);
  void sendKick(const cluster::NodeId& node, store::UserId user, const std::string& device,
                std::uint64_t conn);
  void broadcastPresence(store::UserId user, const std::string& username, bool online);
  void onBusMessage(std::string_view payload);
  void onBusReconnect();
  cluster::DeviceRoute routeOf(const core::Principal& who, std::uint64_t conn,
                               std::int64_t login_ms) const;

  Hub& hub_;
  core::Service& service_;
  ClusterRelayOptions options_;
  cluster::Directory* directory_ = nullptr;
  cluster::Bus* bus_ = nullptr;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Stored> queue_;                    // guarded by mu_
  std::vector<cluster::DeviceRoute> releases_;  // guarded by mu_
  bool renew_now_ = false;                      // guarded by mu_
  bool claims_failed_ = false;                  // guarded by mu_: see routes_unsure_
  bool stopping_ = false;                       // guarded by mu_
  bool dropped_ = false;                        // guarded by mu_: the queue overflowed
  std::atomic<bool> started_{false};            // start() ran: the bus handlers act
  std::atomic<std::uint64_t> unsure_epoch_{0};  // see unsureEpoch()
  // Relay thread only. The directory may lack this node's routes (a claim or renewal failed, or
  // the bus came back after a loss): once a renewal succeeds, every session here resyncs, since
  // messages stored meanwhile were not relayed to it.
  bool routes_unsure_ = false;
  // Relay thread only. Messages were not relayed (the directory did not answer): once it answers
  // again, every node is told to resync (it does not know to whom they were due).
  bool relay_failed_ = false;
  std::thread thread_;

  Counter& relayed_;         // Deliveries payloads sent
  Counter& relay_dropped_;   // stored messages not relayed (queue full, directory down)
  Counter& received_;        // payloads received
  Counter& kicks_sent_;
  Counter& directory_errors_;
  Counter& resyncs_;
};

}  // namespace pigeon::gateway
