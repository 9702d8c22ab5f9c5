// The gateway's table of live connections: user → device → endpoint, and who watches whose
// presence. It is the core's DeliverySink (stored messages go to every online device of every
// recipient) and its Presence (who is online).
//
// Threads: every method is thread-safe (16 mutex shards by user id). Endpoints are called
// outside the locks and must only post to their own loop.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/strand.hpp>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/metrics.h"
#include "core/presence.h"
#include "core/service.h"
#include "gateway/outbound.h"

namespace pigeon::gateway {

struct LoopState;

// One live connection, whatever its protocol.
class Endpoint {
 public:
  virtual ~Endpoint() = default;
  // Each of these may be called from any thread; implementations post to their own loop.
  virtual void deliver(std::shared_ptr<const OutboundMessage> message, store::Seq seq) = 0;
  // An endpoint that lives on a gateway loop names it: the hub then hands all of a message's
  // deliveries to that loop's mailbox at once, and calls deliverHere() there.
  virtual LoopState* loop() { return nullptr; }
  virtual void deliverHere(std::shared_ptr<const OutboundMessage> message, store::Seq seq) {
    deliver(std::move(message), seq);
  }
  virtual void presence(PresenceEvent event) = 0;
  virtual void kick() = 0;
  // Reads the store again from the last message it sent (live deliveries may have been lost).
  virtual void resync() {}
  // The connection's id on this node (its route in a cluster), 0 if it has none.
  virtual std::uint64_t connId() const { return 0; }
};

// This node's connection as the cluster's directory knows it.
struct LocalRoute {
  store::UserId user = 0;
  std::string username;
  std::string device;
  std::uint64_t conn = 0;
  std::int64_t login_ms = 0;
};

// Who is online beyond this node (cluster mode). Implemented by the cluster relay.
class ClusterPresence {
 public:
  virtual ~ClusterPresence() = default;
  // Blocking (called on a worker). Errors: Unavailable.
  virtual Result<std::vector<bool>> areOnline(std::span<const store::UserId> users) = 0;
};

class Hub final : public core::DeliverySink, public core::Presence {
 public:
  // `workers` runs the store reads behind presence notifications.
  Hub(core::Service& service, boost::asio::any_io_executor workers, MetricsRegistry& metrics);

  // Cluster mode, before serving: who is online is the cluster's answer, and this node's own
  // comings and goings are announced by the cluster relay (PresenceChange on the bus, which
  // comes back here as announce()), not by attach/detach.
  void setClusterPresence(ClusterPresence* cluster) { cluster_ = cluster; }

  // Registers `endpoint` as (user, device)'s connection, logged in at `login_ms` (wall clock).
  // Returns the endpoint it replaces, which the caller kicks, or null.
  std::shared_ptr<Endpoint> attach(store::UserId user, const std::string& username,
                                   const std::string& device, std::shared_ptr<Endpoint> endpoint,
                                   std::int64_t login_ms = 0);
  // Removes (user, device) if `endpoint` is still its connection (a kicked one is not); true if
  // it was.
  bool detach(store::UserId user, const std::string& device, const Endpoint* endpoint);
  // Kicks (user, device)'s connection if it is still `conn` (a later one logged in elsewhere),
  // and removes it. True if there was such a connection.
  bool kick(store::UserId user, const std::string& device, std::uint64_t conn);
  // Every connection here, as routes (for the cluster directory's renewals).
  std::vector<LocalRoute> routes() const;
  // Asks every connection to read the store again (live deliveries may have been lost).
  void resyncAll();
  // Tells the watchers of `user`'s contacts that `user` came online or went offline, if that
  // is still true once checked (so a late event never leaves a watcher on a stale state).
  void announce(store::UserId user, const std::string& username, bool online);

  // `endpoint` (of `user`) receives presence changes of user's contacts until unsubscribed;
  // it first gets an "online" event for each contact online now.
  void subscribePresence(store::UserId user, std::shared_ptr<Endpoint> endpoint);
  void unsubscribePresence(store::UserId user, const Endpoint* endpoint);

  std::size_t connections() const;

  // core::DeliverySink
  void onStored(const store::Message& message, const std::string& from,
                const std::vector<store::InboxRef>& refs) override;
  // core::Presence
  std::vector<std::pair<store::UserId, std::string>> onlineUsers() const override;

 private:
  struct DeviceConn {
    std::string device;
    std::shared_ptr<Endpoint> endpoint;
    std::int64_t login_ms = 0;
  };
  struct UserEntry {
    std::string username;
    std::vector<DeviceConn> devices;
    std::vector<std::shared_ptr<Endpoint>> presence_watchers;
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<store::UserId, UserEntry> users;
  };
  Shard& shardOf(store::UserId user) { return shards_[user % kShards]; }
  const Shard& shardOf(store::UserId user) const { return shards_[user % kShards]; }
  std::vector<std::shared_ptr<Endpoint>> watchersOf(store::UserId user) const;
  bool isOnline(store::UserId user) const;

  static constexpr std::size_t kShards = 16;
  core::Service& service_;
  ClusterPresence* cluster_ = nullptr;
  // Presence announcements run here one at a time, so a user's online and offline events
  // reach watchers in the order they happened.
  boost::asio::strand<boost::asio::any_io_executor> presence_strand_;
  Shard shards_[kShards];
  Gauge& connections_;
  Gauge& online_users_;
  Counter& deliveries_;
  Counter& kicks_;
};

}  // namespace pigeon::gateway
