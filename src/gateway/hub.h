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
};

class Hub final : public core::DeliverySink, public core::Presence {
 public:
  // `workers` runs the store reads behind presence notifications.
  Hub(core::Service& service, boost::asio::any_io_executor workers, MetricsRegistry& metrics);

  // Registers `endpoint` as (user, device)'s connection. Returns the endpoint it replaces, which
  // the caller kicks, or null.
  std::shared_ptr<Endpoint> attach(store::UserId user, const std::string& username,
                                   const std::string& device, std::shared_ptr<Endpoint> endpoint);
  // Removes (user, device) if `endpoint` is still its connection (a kicked one is not).
  void detach(store::UserId user, const std::string& device, const Endpoint* endpoint);

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
  struct UserEntry {
    std::string username;
    std::vector<std::pair<std::string, std::shared_ptr<Endpoint>>> devices;
    std::vector<std::shared_ptr<Endpoint>> presence_watchers;
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<store::UserId, UserEntry> users;
  };
  Shard& shardOf(store::UserId user) { return shards_[user % kShards]; }
  const Shard& shardOf(store::UserId user) const { return shards_[user % kShards]; }
  void announce(store::UserId user, const std::string& username, bool online);
  std::vector<std::shared_ptr<Endpoint>> watchersOf(store::UserId user) const;
  bool isOnline(store::UserId user) const;

  static constexpr std::size_t kShards = 16;
  core::Service& service_;
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
