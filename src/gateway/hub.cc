#include "gateway/hub.h"

#include "gateway/gateway.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>

namespace pigeon::gateway {

Hub::Hub(core::Service& service, boost::asio::any_io_executor workers, MetricsRegistry& metrics)
    : service_(service),
      presence_strand_(boost::asio::make_strand(std::move(workers))),
      connections_(metrics.gauge("pigeon_gateway_connections", "Connected and authenticated sessions")),
      online_users_(metrics.gauge("pigeon_gateway_online_users", "Users with at least one session")),
      deliveries_(metrics.counter("pigeon_gateway_deliveries_total",
                                  "Messages handed to online sessions")),
      kicks_(metrics.counter("pigeon_gateway_kicks_total",
                             "Sessions replaced by a new connection of the same device")) {}

std::shared_ptr<Endpoint> Hub::attach(store::UserId user, const std::string& username,
                                      const std::string& device, std::shared_ptr<Endpoint> endpoint,
                                      std::int64_t login_ms) {
  std::shared_ptr<Endpoint> replaced;
  bool came_online = false;
  {
    Shard& shard = shardOf(user);
    std::lock_guard lock(shard.mu);
    UserEntry& entry = shard.users[user];
    entry.username = username;
    came_online = entry.devices.empty();
    auto it = std::find_if(entry.devices.begin(), entry.devices.end(),
                           [&](const auto& d) { return d.device == device; });
    if (it != entry.devices.end()) {
      replaced = std::move(it->endpoint);
      it->endpoint = std::move(endpoint);
      it->login_ms = login_ms;
    } else {
      entry.devices.push_back(DeviceConn{device, std::move(endpoint), login_ms});
      connections_.add(1);
    }
  }
  if (replaced) kicks_.inc();
  if (came_online) {
    online_users_.add(1);
    if (!cluster_) announce(user, username, true);  // a cluster announces through the relay
  }
  return replaced;
}

bool Hub::detach(store::UserId user, const std::string& device, const Endpoint* endpoint) {
  std::string username;
  bool went_offline = false;
  {
    Shard& shard = shardOf(user);
    std::lock_guard lock(shard.mu);
    auto uit = shard.users.find(user);
    if (uit == shard.users.end()) return false;
    UserEntry& entry = uit->second;
    auto it = std::find_if(entry.devices.begin(), entry.devices.end(), [&](const auto& d) {
      return d.device == device && d.endpoint.get() == endpoint;
    });
    if (it == entry.devices.end()) return false;  // replaced meanwhile: the new one stays
    entry.devices.erase(it);
    connections_.add(-1);
    if (entry.devices.empty()) {
      went_offline = true;
      username = entry.username;
      if (entry.presence_watchers.empty()) shard.users.erase(uit);
    }
  }
  if (went_offline) {
    online_users_.add(-1);
    if (!cluster_) announce(user, username, false);
  }
  return true;
}

bool Hub::kick(store::UserId user, const std::string& device, std::uint64_t conn) {
  std::shared_ptr<Endpoint> kicked;
  bool went_offline = false;
  {
    Shard& shard = shardOf(user);
    std::lock_guard lock(shard.mu);
    auto uit = shard.users.find(user);
    if (uit == shard.users.end()) return false;
    UserEntry& entry = uit->second;
    auto it = std::find_if(entry.devices.begin(), entry.devices.end(), [&](const auto& d) {
      return d.device == device && d.endpoint->connId() == conn;
    });
    if (it == entry.devices.end()) return false;
    kicked = std::move(it->endpoint);
    entry.devices.erase(it);
    connections_.add(-1);
    went_offline = entry.devices.empty();
    if (went_offline && entry.presence_watchers.empty()) shard.users.erase(uit);
  }
  kicks_.inc();
  if (went_offline) online_users_.add(-1);
  kicked->kick();  // it no longer owns a hub entry: its close does not detach
  return true;
}

std::vector<LocalRoute> Hub::routes() const {
  std::vector<LocalRoute> out;
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mu);
    for (const auto& [id, entry] : shard.users) {
      for (const auto& d : entry.devices) {
        out.push_back(LocalRoute{id, entry.username, d.device, d.endpoint->connId(), d.login_ms});
      }
    }
  }
  return out;
}

void Hub::resyncAll() {
  std::vector<std::shared_ptr<Endpoint>> all;
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mu);
    for (const auto& [id, entry] : shard.users) {
      for (const auto& d : entry.devices) all.push_back(d.endpoint);
    }
  }
  for (auto& endpoint : all) endpoint->resync();
}

void Hub::subscribePresence(store::UserId user, std::shared_ptr<Endpoint> endpoint) {
  {
    Shard& shard = shardOf(user);
    std::lock_guard lock(shard.mu);
    shard.users[user].presence_watchers.push_back(endpoint);
  }
  // The snapshot: every contact online now.
  boost::asio::post(presence_strand_, [this, user, endpoint = std::move(endpoint)] {
    auto contacts = service_.contactsOf(user);
    if (!contacts) {
      spdlog::warn("gateway: presence snapshot for user {} failed: {}", user, contacts.error().message);
      return;
    }
    if (cluster_) {  // online anywhere in the cluster
      auto online = cluster_->areOnline(*contacts);
      if (!online) {
        spdlog::warn("gateway: presence snapshot for user {} failed: {}", user, online.error().message);
        return;
      }
      for (std::size_t i = 0; i < contacts->size(); ++i) {
        if (!(*online)[i]) continue;
        auto name = service_.usernameOf((*contacts)[i]);
        if (name) endpoint->presence(PresenceEvent{(*contacts)[i], std::move(*name), true});
      }
      return;
    }
    for (store::UserId contact : *contacts) {
      const Shard& shard = shardOf(contact);
      std::string name;
      {
        std::lock_guard lock(shard.mu);
        auto it = shard.users.find(contact);
        if (it == shard.users.end() || it->second.devices.empty()) continue;
        name = it->second.username;
      }
      endpoint->presence(PresenceEvent{contact, std::move(name), true});
    }
  });
}

void Hub::unsubscribePresence(store::UserId user, const Endpoint* endpoint) {
  Shard& shard = shardOf(user);
  std::lock_guard lock(shard.mu);
  auto uit = shard.users.find(user);
  if (uit == shard.users.end()) return;
  std::erase_if(uit->second.presence_watchers, [&](const auto& w) { return w.get() == endpoint; });
  if (uit->second.devices.empty() && uit->second.presence_watchers.empty()) shard.users.erase(uit);
}

std::vector<std::shared_ptr<Endpoint>> Hub::watchersOf(store::UserId user) const {
  const Shard& shard = shardOf(user);
  std::lock_guard lock(shard.mu);
  auto it = shard.users.find(user);
  if (it == shard.users.end()) return {};
  return it->second.presence_watchers;
}

bool Hub::isOnline(store::UserId user) const {
  const Shard& shard = shardOf(user);
  std::lock_guard lock(shard.mu);
  auto it = shard.users.find(user);
  return it != shard.users.end() && !it->second.devices.empty();
}

void Hub::announce(store::UserId user, const std::string& username, bool online) {
  boost::asio::post(presence_strand_, [this, user, username, online] {
    // The state may have flipped again since: announce only what is still true, so a watcher
    // never ends on a stale state (the later transition announces itself).
    if (cluster_) {
      const store::UserId one[] = {user};
      auto now = cluster_->areOnline(one);
      if (!now || (*now)[0] != online) return;
    } else if (isOnline(user) != online) {
      return;
    }
    auto contacts = service_.contactsOf(user);
    if (!contacts) {
      spdlog::warn("gateway: presence of user {} not announced: {}", user, contacts.error().message);
      return;
    }
    for (store::UserId contact : *contacts) {
      for (auto& watcher : watchersOf(contact)) {
        watcher->presence(PresenceEvent{user, username, online});
      }
    }
  });
}

std::size_t Hub::connections() const { return std::size_t(std::max<std::int64_t>(0, connections_.value())); }

void Hub::onStored(const store::Message& message, const std::string& from,
                   const std::vector<store::InboxRef>& refs) {
  using Targets = std::vector<std::pair<std::shared_ptr<Endpoint>, store::Seq>>;
  // The message's deliveries grouped by loop (a handful): one mailbox task per loop.
  std::vector<std::pair<LoopState*, Targets>> by_loop;
  std::shared_ptr<const OutboundMessage> out;
  std::size_t delivered = 0;
  for (const store::InboxRef& ref : refs) {
    const Shard& shard = shardOf(ref.user);
    std::lock_guard lock(shard.mu);
    auto it = shard.users.find(ref.user);
    if (it == shard.users.end()) continue;
    for (const auto& [device, endpoint, login_ms] : it->second.devices) {
      if (!out) out = OutboundMessage::make(message, from);  // encoded once, for everyone
      ++delivered;
      LoopState* loop = endpoint->loop();
      if (loop == nullptr) {
        endpoint->deliver(out, ref.seq);  // only posts: fine under the lock
        continue;
      }
      auto group = std::find_if(by_loop.begin(), by_loop.end(), [&](auto& g) { return g.first == loop; });
      if (group == by_loop.end()) group = by_loop.insert(by_loop.end(), {loop, Targets{}});
      group->second.emplace_back(endpoint, ref.seq);
    }
  }
  for (auto& [loop, targets] : by_loop) {
    loop->hand([out, targets = std::move(targets)] {
      for (const auto& [endpoint, seq] : targets) endpoint->deliverHere(out, seq);
    });
  }
  deliveries_.inc(delivered);
}

std::vector<std::pair<store::UserId, std::string>> Hub::onlineUsers() const {
  std::vector<std::pair<store::UserId, std::string>> out;
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mu);
    for (const auto& [id, entry] : shard.users) {
      if (!entry.devices.empty()) out.emplace_back(id, entry.username);
    }
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.second < b.second; });
  return out;
}

}  // namespace pigeon::gateway
