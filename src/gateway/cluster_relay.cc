#include "gateway/cluster_relay.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <unordered_map>

#include "proto/cluster.pb.h"

namespace pigeon::gateway {
namespace pb = pigeon::cluster::v1;
using Clock = std::chrono::steady_clock;

namespace {

// A payload grows past this: it is sent and the rest goes in another one.
constexpr std::size_t kMaxPayloadBytes = 1 << 20;
// While the directory is unreachable, renewals are tried this often.
constexpr std::chrono::seconds kRetryRenew{1};
constexpr std::chrono::seconds kReleaseOnStop{3};

}  // namespace

ClusterRelay::ClusterRelay(Hub& hub, core::Service& service, MetricsRegistry& metrics,
                           ClusterRelayOptions options)
    : hub_(hub),
      service_(service),
      options_(std::move(options)),
      relayed_(metrics.counter("pigeon_cluster_relayed_total",
                               "Deliveries payloads sent to other nodes")),
      relay_dropped_(metrics.counter("pigeon_cluster_relay_dropped_total",
                                     "Stored messages not relayed to other nodes (their recipients resync)")),
      received_(metrics.counter("pigeon_cluster_received_total", "Payloads received from other nodes")),
      kicks_sent_(metrics.counter("pigeon_cluster_kicks_sent_total",
                                  "Kicks sent to a device's earlier connection on another node")),
      directory_errors_(metrics.counter("pigeon_cluster_directory_errors_total",
                                        "Directory calls that failed (engine unreachable)")),
      resyncs_(metrics.counter("pigeon_cluster_resyncs_total",
                               "Times every session here resynced after the bus link came back")) {}

ClusterRelay::~ClusterRelay() { stop(); }

void ClusterRelay::setEngines(cluster::Directory* directory, cluster::Bus* bus) {
  directory_ = directory;
  bus_ = bus;
}

cluster::BusHandler ClusterRelay::busHandler() {
  // Until start() (the engines set), what the bus reports is ignored: no session is served yet.
  return cluster::BusHandler{[this](std::string_view payload) {
                               if (started_.load(std::memory_order_acquire)) onBusMessage(payload);
                             },
                             [this] {
                               if (started_.load(std::memory_order_acquire)) onBusReconnect();
                             },
                             // Deliveries this node sent may be lost: the others read the store.
                             [this] {
                               if (started_.load(std::memory_order_acquire)) broadcastResync();
                             }};
}

void ClusterRelay::start() {
  started_.store(true, std::memory_order_release);
  thread_ = std::thread([this] { run(); });
}

void ClusterRelay::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

cluster::DeviceRoute ClusterRelay::routeOf(const core::Principal& who, std::uint64_t conn,
                                           std::int64_t login_ms) const {
  return cluster::DeviceRoute{who.user, who.username, who.device,
                              cluster::Route{options_.node, conn, login_ms}};
}

// ---- routes ------------------------------------------------------------------------------------

bool ClusterRelay::claim(const core::Principal& who, std::uint64_t conn, std::int64_t login_ms) {
  if (!directory_) return false;
  const cluster::DeviceRoute route = routeOf(who, conn, login_ms);
  auto claimed = directory_->claim(route);
  if (!claimed) {
    // Go on without it: the session is served here; the next renewal records the route (and
    // settles any conflict) once the directory answers again.
    directory_errors_.inc();
    spdlog::warn("cluster: route of {}/{} not recorded: {}", who.username, who.device,
                 claimed.error().message);
    unsure_epoch_.fetch_add(1, std::memory_order_acq_rel);
    {
      std::lock_guard lock(mu_);
      renew_now_ = true;
      claims_failed_ = true;
    }
    cv_.notify_one();
    return false;
  }
  if (claimed->superseded) return true;
  settleClaim(route, *claimed);
  return false;
}

void ClusterRelay::recheck() {
  {
    std::lock_guard lock(mu_);
    renew_now_ = true;
    claims_failed_ = true;  // once renewed, every session here (this one attached now) resyncs
  }
  cv_.notify_one();
}

void ClusterRelay::settleClaim(const cluster::DeviceRoute& route, const cluster::Claim& claim) {
  // A displaced connection on this node is the hub's business (attach replaces and kicks it).
  if (claim.displaced && claim.displaced->node != options_.node) {
    sendKick(claim.displaced->node, route.user, route.device, claim.displaced->conn);
  }
  if (claim.came_online) broadcastPresence(route.user, route.username, true);
}

void ClusterRelay::release(const core::Principal& who, std::uint64_t conn, std::int64_t login_ms) {
  if (!directory_) return;
  {
    std::lock_guard lock(mu_);
    releases_.push_back(routeOf(who, conn, login_ms));
  }
  cv_.notify_one();
}

void ClusterRelay::sendKick(const cluster::NodeId& node, store::UserId user,
                            const std::string& device, std::uint64_t conn) {
  if (!bus_) return;
  pb::NodeMessage m;
  m.set_from_node(options_.node);
  auto* kick = m.mutable_kick();
  kick->set_user(user);
  kick->set_device(device);
  kick->set_conn(conn);
  bus_->send(node, m.SerializeAsString());
  kicks_sent_.inc();
}

void ClusterRelay::broadcastPresence(store::UserId user, const std::string& username, bool online) {
  if (!bus_) return;
  pb::NodeMessage m;
  m.set_from_node(options_.node);
  auto* p = m.mutable_presence();
  p->set_user(user);
  p->set_username(username);
  p->set_online(online);
  bus_->broadcast(m.SerializeAsString());
}

std::vector<cluster::DeviceRoute> ClusterRelay::localRoutes() const {
  auto local = hub_.routes();
  std::vector<cluster::DeviceRoute> routes;
  routes.reserve(local.size());
  for (auto& r : local) {
    routes.push_back(cluster::DeviceRoute{r.user, std::move(r.username), std::move(r.device),
                                          cluster::Route{options_.node, r.conn, r.login_ms}});
  }
  return routes;
}

bool ClusterRelay::renewNow() {
  const auto routes = localRoutes();
  if (routes.empty()) return true;
  auto claims = directory_->renew(routes);
  if (!claims) {
    directory_errors_.inc();
    spdlog::warn("cluster: renewing {} routes failed: {}", routes.size(), claims.error().message);
    return false;
  }
  for (std::size_t i = 0; i < routes.size() && i < claims->size(); ++i) {
    const cluster::Claim& c = (*claims)[i];
    if (c.superseded) {
      // A later connection of the device logged in elsewhere while we could not tell.
      hub_.kick(routes[i].user, routes[i].device, routes[i].route.conn);
    } else {
      settleClaim(routes[i], c);
    }
  }
  return true;
}

// ---- deliveries --------------------------------------------------------------------------------

void ClusterRelay::onStored(const store::Message& message, const std::string& from,
                            const std::vector<store::InboxRef>& refs) {
  hub_.onStored(message, from, refs);  // the recipients connected here: at once
  if (!directory_ || !bus_) return;
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= options_.max_queued) {
      queue_.pop_front();
      relay_dropped_.inc();
      dropped_ = true;  // the other nodes resync once the relay catches up
    }
    queue_.push_back(Stored{message, from, refs});
  }
  cv_.notify_one();
}

// A clean shutdown. First the messages still queued (the store committed them as it closed)
// are relayed — if that does not finish in time, or some were dropped, every node is told to
// resync. Then every route of this node goes at once — of the sessions closed lately and of
// those still open (their clients will connect elsewhere) — so that the other nodes see these
// users offline now, not when the leases end. For at most a few seconds: the rest expire.
void ClusterRelay::finishOnStop(std::vector<Stored> rest, std::vector<cluster::DeviceRoute> releases,
                                bool dropped) {
  const auto deadline = Clock::now() + kReleaseOnStop;
  std::size_t done = 0;
  while (done < rest.size() && Clock::now() < deadline) {
    const std::size_t n = std::min(rest.size() - done, options_.max_batch);
    std::vector<Stored> batch(std::make_move_iterator(rest.begin() + std::ptrdiff_t(done)),
                              std::make_move_iterator(rest.begin() + std::ptrdiff_t(done + n)));
    relay(batch);
    done += n;
  }
  if (dropped || relay_failed_ || done < rest.size()) {
    relay_dropped_.inc(rest.size() - done);
    broadcastResync();
  }
  releaseOnStop(std::move(releases), deadline);
}

void ClusterRelay::releaseOnStop(std::vector<cluster::DeviceRoute> releases,
                                 Clock::time_point deadline) {
  for (auto& route : localRoutes()) releases.push_back(std::move(route));
  for (const auto& route : releases) {
    if (Clock::now() >= deadline) return;  // the rest expire with their lease
    auto gone = directory_->release(route);
    if (!gone) return;  // the directory is unreachable: so are the others
    if (*gone) broadcastPresence(route.user, route.username, false);
  }
}

void ClusterRelay::run() {
  const auto renew_every = std::max<Clock::duration>(options_.lease / 3, std::chrono::milliseconds(100));
  auto next_renew = Clock::now() + renew_every;
  for (;;) {
    std::vector<Stored> batch;
    std::vector<cluster::DeviceRoute> releases;
    bool renew_due = false;
    {
      std::unique_lock lock(mu_);
      cv_.wait_until(lock, next_renew, [&] {
        return stopping_ || !queue_.empty() || !releases_.empty() || renew_now_;
      });
      if (stopping_) {
        std::vector<Stored> rest(std::make_move_iterator(queue_.begin()),
                                 std::make_move_iterator(queue_.end()));
        queue_.clear();
        releases.swap(releases_);
        const bool dropped = std::exchange(dropped_, false);
        lock.unlock();
        finishOnStop(std::move(rest), std::move(releases), dropped);
        return;
      }
      const std::size_t n = std::min(queue_.size(), options_.max_batch);
      batch.assign(std::make_move_iterator(queue_.begin()),
                   std::make_move_iterator(queue_.begin() + std::ptrdiff_t(n)));
      queue_.erase(queue_.begin(), queue_.begin() + std::ptrdiff_t(n));
      releases.swap(releases_);
      renew_due = renew_now_ || Clock::now() >= next_renew;
      renew_now_ = false;
      if (claims_failed_) routes_unsure_ = true;
      claims_failed_ = false;
      if (std::exchange(dropped_, false)) relay_failed_ = true;
    }
    for (const auto& route : releases) {
      auto gone = directory_->release(route);
      if (!gone) {
        directory_errors_.inc();  // the lease ends it
      } else if (*gone) {
        broadcastPresence(route.user, route.username, false);
      }
    }
    if (!batch.empty()) {
      relay(batch);
    } else if (relay_failed_) {
      // Messages were not relayed and none came since: tell the others now. If the bus cannot
      // carry this either, it reports the loss once it can (on_send_lost), which resyncs again.
      relay_failed_ = false;
      broadcastResync();
    }
    if (renew_due) {
      const bool renewed = renewNow();
      next_renew = Clock::now() + (renewed ? renew_every : Clock::duration(kRetryRenew));
      if (!renewed) {
        unsure_epoch_.fetch_add(1, std::memory_order_acq_rel);
        routes_unsure_ = true;
      } else if (routes_unsure_) {
        // The directory knows every route here again: from now on every message for them is
        // relayed here. Whatever was stored before is read now.
        routes_unsure_ = false;
        resyncs_.inc();
        hub_.resyncAll();
      }
    }
  }
}

void ClusterRelay::broadcastResync() {
  pb::NodeMessage m;
  m.set_from_node(options_.node);
  m.mutable_resync();
  bus_->broadcast(m.SerializeAsString());
}

void ClusterRelay::relay(std::vector<Stored>& batch) {
  // Every recipient of the batch, once: one directory call for all of them.
  std::vector<store::UserId> users;
  for (const Stored& s : batch) {
    for (const auto& ref : s.refs) users.push_back(ref.user);
  }
  std::sort(users.begin(), users.end());
  users.erase(std::unique(users.begin(), users.end()), users.end());
  auto located = directory_->locate(users);
  if (!located) {
    directory_errors_.inc();
    relay_dropped_.inc(batch.size());
    relay_failed_ = true;
    spdlog::warn("cluster: {} messages not relayed: {}", batch.size(), located.error().message);
    return;
  }
  if (relay_failed_) {
    // Some messages before these were not relayed, to recipients nobody knows: every node
    // resyncs its sessions (those already up to date read nothing).
    relay_failed_ = false;
    broadcastResync();
  }
  // The other nodes each recipient is connected to.
  std::unordered_map<store::UserId, std::vector<const cluster::NodeId*>> elsewhere;
  for (std::size_t i = 0; i < users.size() && i < located->size(); ++i) {
    for (const cluster::Route& route : (*located)[i]) {
      if (route.node == options_.node) continue;
      auto& nodes = elsewhere[users[i]];
      if (std::none_of(nodes.begin(), nodes.end(), [&](auto* n) { return *n == route.node; })) {
        nodes.push_back(&route.node);
      }
    }
  }
  if (elsewhere.empty()) return;
  // One payload per destination node, with each message's recipients there.
  struct Outgoing {
    pb::NodeMessage message;
    std::size_t bytes = 0;
  };
  std::map<cluster::NodeId, Outgoing> out;
  auto flush = [&](const cluster::NodeId& node, Outgoing& o) {
    if (o.bytes == 0) return;
    o.message.set_from_node(options_.node);
    bus_->send(node, o.message.SerializeAsString());
    relayed_.inc();
    o = Outgoing{};
  };
  for (const Stored& s : batch) {
    std::map<cluster::NodeId, pb::Delivery*> mine;  // this message's entry per node
    for (const auto& ref : s.refs) {
      auto it = elsewhere.find(ref.user);
      if (it == elsewhere.end()) continue;
      for (const cluster::NodeId* node : it->second) {
        pb::Delivery*& d = mine[*node];
        Outgoing& o = out[*node];
        if (d == nullptr) {
          if (o.bytes > kMaxPayloadBytes) flush(*node, o);
          d = o.message.mutable_deliveries()->add_messages();
          const store::Message& m = s.message;
          d->set_msg_id(m.id);
          d->set_conversation(m.conversation);
          d->set_conv_seq(m.conv_seq);
          d->set_sender(m.sender);
          d->set_sender_device(m.sender_device);
          d->set_client_msg_id(m.client_msg_id);
          d->set_created_at_ms(m.created_at_ms);
          d->set_content_type(m.content_type);
          d->set_body(m.body);
          d->set_from(s.from);
          o.bytes += m.body.size() + m.conversation.size() + 64;
        }
        auto* r = d->add_refs();
        r->set_user(ref.user);
        r->set_seq(ref.seq);
        o.bytes += 12;
      }
    }
  }
  for (auto& [node, o] : out) flush(node, o);
}

// ---- from the bus ------------------------------------------------------------------------------

void ClusterRelay::onBusMessage(std::string_view payload) {
  pb::NodeMessage m;
  if (!m.ParseFromArray(payload.data(), int(payload.size()))) {
    spdlog::warn("cluster: a bus payload of {} bytes is not a NodeMessage", payload.size());
    return;
  }
  received_.inc();
  switch (m.body_case()) {
    case pb::NodeMessage::kDeliveries:
      for (const pb::Delivery& d : m.deliveries().messages()) {
        store::Message message;
        message.id = d.msg_id();
        message.conversation = d.conversation();
        message.conv_seq = d.conv_seq();
        message.sender = d.sender();
        message.sender_device = d.sender_device();
        message.client_msg_id = d.client_msg_id();
        message.created_at_ms = d.created_at_ms();
        message.content_type = d.content_type();
        message.body = d.body();
        std::vector<store::InboxRef> refs;
        refs.reserve(std::size_t(d.refs_size()));
        for (const auto& r : d.refs()) refs.push_back(store::InboxRef{r.user(), r.seq()});
        hub_.onStored(message, d.from(), refs);
      }
      break;
    case pb::NodeMessage::kKick:
      hub_.kick(m.kick().user(), m.kick().device(), m.kick().conn());
      break;
    case pb::NodeMessage::kPresence:
      hub_.announce(m.presence().user(), m.presence().username(), m.presence().online());
      break;
    case pb::NodeMessage::kResync:
      resyncs_.inc();
      hub_.resyncAll();
      break;
    default:
      break;  // a newer node's message: ignored
  }
}

void ClusterRelay::onBusReconnect() {
  // Deliveries sent while the link was down are lost, and the directory may have restarted
  // empty: renew this node's routes now, then (run()) every session here reads the store again.
  // In that order, so that no message falls between the read and the routes being known.
  spdlog::info("cluster: bus link back: renewing the routes, then every session here resyncs");
  unsure_epoch_.fetch_add(1, std::memory_order_acq_rel);
  {
    std::lock_guard lock(mu_);
    renew_now_ = true;
    claims_failed_ = true;
  }
  cv_.notify_one();
}

// ---- presence ----------------------------------------------------------------------------------

std::vector<std::pair<store::UserId, std::string>> ClusterRelay::onlineUsers() const {
  if (directory_) {
    auto users = directory_->onlineUsers();
    if (users) return std::move(*users);
    directory_errors_.inc();
    spdlog::warn("cluster: online users from this node only: {}", users.error().message);
  }
  return hub_.onlineUsers();
}

Result<std::vector<bool>> ClusterRelay::areOnline(std::span<const store::UserId> users) {
  if (!directory_) return fail(Errc::Unavailable, "no directory");
  return directory_->areOnline(users);
}

}  // namespace pigeon::gateway
