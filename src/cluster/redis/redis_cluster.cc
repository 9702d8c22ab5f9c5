#include "cluster/redis/redis_cluster.h"

#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>
#include <charconv>
#include <optional>
#include <string_view>
#include <tuple>

#include "cluster/redis/scripts.h"

namespace pigeon::cluster {
using redis::Connection;
using redis::Reply;
using Clock = std::chrono::steady_clock;

namespace {

// Routes (or users) per script run: a renewal of thousands of routes is a few runs, pipelined,
// and no run holds the server for long.
constexpr std::size_t kPerScript = 500;
// Idle directory connections kept; more are opened when callers overlap, and closed after.
constexpr std::size_t kMaxIdle = 4;
// PUBLISHes per round trip, and their bytes (at least one payload, however large).
constexpr std::size_t kMaxPipeline = 1024;
constexpr std::size_t kMaxPipelineBytes = 4 << 20;
constexpr std::chrono::milliseconds kBackoffFirst{100};
constexpr std::chrono::milliseconds kBackoffMax{2000};
// The subscriber looks whether the cluster stops this often.
constexpr std::chrono::milliseconds kListenSlice{200};
// A subscription quiet this long is asked for a PING, answered within the timeout or dropped
// (a link that died silently, without a reset).
constexpr std::chrono::seconds kPingAfter{5};

template <typename T>
bool parseNumber(std::string_view s, T& out) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

// "<expires_ms>|<login_ms>|<conn>|<node>|<username>" (scripts.h) → the route.
std::optional<Route> decodeRoute(std::string_view value) {
  std::string_view parts[4];
  for (auto& part : parts) {
    const auto bar = value.find('|');
    if (bar == std::string_view::npos) return std::nullopt;
    part = value.substr(0, bar);
    value.remove_prefix(bar + 1);
  }
  Route route;
  route.node = std::string(parts[3]);
  if (!parseNumber(parts[1], route.login_ms) || !parseNumber(parts[2], route.conn)) {
    return std::nullopt;
  }
  return route;
}

Result<void> validate(const DeviceRoute& route) {
  if (auto ok = validateNodeId(route.route.node); !ok) return ok;
  if (route.route.login_ms < 0) return fail(Errc::BadRequest, "a route's login time is negative");
  return {};
}

Error unexpectedReply(std::string_view to) {
  return Error{Errc::Unavailable, "redis: unexpected reply to " + std::string(to)};
}

}  // namespace

RedisCluster::RedisCluster(RedisOptions options, redis::Endpoint endpoint, BusHandler handler,
                           MetricsRegistry* metrics)
    : options_(std::move(options)),
      endpoint_(std::move(endpoint)),
      handler_(std::move(handler)),
      online_key_(options_.prefix + "online"),
      counters_{&own_counters_[0], &own_counters_[1], &own_counters_[2], &own_counters_[3],
                &own_counters_[4]},
      claim_{std::string(redis::scripts::kPrelude) + std::string(redis::scripts::kClaim), {}},
      release_{std::string(redis::scripts::kPrelude) + std::string(redis::scripts::kRelease), {}},
      locate_{std::string(redis::scripts::kPrelude) + std::string(redis::scripts::kLocate), {}},
      online_{std::string(redis::scripts::kPrelude) + std::string(redis::scripts::kOnline), {}} {
  if (metrics != nullptr) {
    counters_.errors = &metrics->counter(
        "pigeon_redis_errors_total", "Redis calls that failed (unreachable, timeout, error reply)");
    counters_.published = &metrics->counter("pigeon_bus_published_total", "Bus payloads published");
    counters_.received = &metrics->counter("pigeon_bus_received_total", "Bus payloads received");
    counters_.dropped = &metrics->counter(
        "pigeon_bus_dropped_total", "Bus payloads dropped (queue full, or Redis unreachable)");
    counters_.reconnects = &metrics->counter("pigeon_bus_reconnects_total",
                                             "Bus subscriptions re-established after a loss");
  }
}

RedisCluster::~RedisCluster() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  publish_cv_.notify_all();
  stop_cv_.notify_all();
  if (publisher_.joinable()) publisher_.join();
  if (subscriber_.joinable()) subscriber_.join();
}

// ---- connections -------------------------------------------------------------------------------

Result<RedisCluster::ConnectionPtr> RedisCluster::connect() {
  return Connection::open(endpoint_, options_.timeout);
}

std::unexpected<Error> RedisCluster::failed(Error error) {
  counters_.errors->inc();
  return std::unexpected(std::move(error));
}

Result<void> RedisCluster::loadScripts(Connection& connection) {
  for (Script* script : {&claim_, &release_, &locate_, &online_}) {
    auto reply = connection.command({"SCRIPT", "LOAD", script->source});
    if (!reply) return std::unexpected(reply.error());
    if ((*reply)->type != REDIS_REPLY_STRING) {
      return fail(Errc::Unavailable, "redis: SCRIPT LOAD: " + std::string(redis::text(**reply)));
    }
    script->sha = std::string(redis::text(**reply));
  }
  return {};
}

Result<RedisCluster::ConnectionPtr> RedisCluster::borrow() {
  {
    std::lock_guard lock(pool_mu_);
    while (!idle_.empty()) {
      ConnectionPtr connection = std::move(idle_.back());
      idle_.pop_back();
      // One left from before a server restart is dropped here, not failed on.
      if (!connection->peerClosed()) return connection;
    }
  }
  return connect();
}

void RedisCluster::giveBack(ConnectionPtr connection) {
  if (connection->broken()) return;
  std::lock_guard lock(pool_mu_);
  if (idle_.size() < kMaxIdle) idle_.push_back(std::move(connection));
}

Result<std::vector<Reply>> RedisCluster::evalAll(const Script& script,
                                                 const std::vector<Call>& calls) {
  if (calls.empty()) return std::vector<Reply>{};
  auto borrowed = borrow();
  if (!borrowed) return failed(borrowed.error());
  Connection& connection = **borrowed;
  auto append = [&](const Call& call, std::string_view verb, std::string_view body) {
    const std::string keys = std::to_string(call.keys.size());
    std::vector<std::string_view> argv{verb, body, keys};
    argv.insert(argv.end(), call.keys.begin(), call.keys.end());
    argv.insert(argv.end(), call.args.begin(), call.args.end());
    connection.append(argv);
  };
  for (const Call& call : calls) append(call, "EVALSHA", script.sha);
  std::vector<Reply> replies(calls.size());
  for (Reply& reply : replies) {
    auto r = connection.read();
    if (!r) return failed(r.error());
    reply = std::move(*r);
  }
  // A server that restarted has lost its script cache: those runs did not happen, so they are
  // sent again in full (which caches the script again).
  std::vector<std::size_t> again;
  for (std::size_t i = 0; i < replies.size(); ++i) {
    if (redis::isError(*replies[i]) && redis::text(*replies[i]).starts_with("NOSCRIPT")) {
      again.push_back(i);
    }
  }
  for (std::size_t i : again) append(calls[i], "EVAL", script.source);
  for (std::size_t i : again) {
    auto r = connection.read();
    if (!r) return failed(r.error());
    replies[i] = std::move(*r);
  }
  giveBack(std::move(*borrowed));
  for (const Reply& reply : replies) {
    if (redis::isError(*reply)) {
      return failed(Error{Errc::Unavailable, "redis: " + std::string(redis::text(*reply))});
    }
  }
  return replies;
}

std::string RedisCluster::routeKey(store::UserId user) const {
  return options_.prefix + "route:" + std::to_string(user);
}

// ---- directory ---------------------------------------------------------------------------------

Result<Claim> RedisCluster::claim(const DeviceRoute& route) {
  auto claims = renew(std::span(&route, 1));
  if (!claims) return std::unexpected(claims.error());
  return claims->front();
}

Result<std::vector<Claim>> RedisCluster::renew(std::span<const DeviceRoute> routes) {
  for (const DeviceRoute& route : routes) {
    if (auto ok = validate(route); !ok) return std::unexpected(ok.error());
  }
  const std::string lease = std::to_string(options_.lease.count());
  std::vector<Call> calls;
  for (std::size_t i = 0; i < routes.size(); ++i) {
    if (i % kPerScript == 0) calls.push_back(Call{{online_key_}, {lease}});
    const DeviceRoute& r = routes[i];
    calls.back().keys.push_back(routeKey(r.user));
    auto& args = calls.back().args;
    args.push_back(std::to_string(r.user));
    args.push_back(r.device);
    args.push_back(std::to_string(r.route.login_ms));
    args.push_back(std::to_string(r.route.conn));
    args.push_back(r.route.node);
    args.push_back(r.username);
  }
  auto replies = evalAll(claim_, calls);
  if (!replies) return std::unexpected(replies.error());
  std::vector<Claim> claims;
  claims.reserve(routes.size());
  for (std::size_t c = 0; c < calls.size(); ++c) {
    const redisReply& reply = *(*replies)[c];
    const std::size_t n = calls[c].keys.size() - 1;
    if (reply.type != REDIS_REPLY_ARRAY || reply.elements != 3 * n) {
      return failed(unexpectedReply("the claim script"));
    }
    for (std::size_t i = 0; i < n; ++i) {
      redisReply* const* e = reply.element + 3 * i;
      Claim claim;
      claim.superseded = e[0]->integer != 0;
      claim.came_online = e[1]->integer != 0;
      if (e[2]->type == REDIS_REPLY_STRING) {
        claim.displaced = decodeRoute(redis::text(*e[2]));
        if (!claim.displaced) return failed(unexpectedReply("the claim script"));
      }
      claims.push_back(std::move(claim));
    }
  }
  return claims;
}

Result<bool> RedisCluster::release(const DeviceRoute& route) {
  if (auto ok = validate(route); !ok) return std::unexpected(ok.error());
  std::vector<Call> calls{
      Call{{online_key_, routeKey(route.user)},
           {std::to_string(route.user), route.device, std::to_string(route.route.login_ms),
            std::to_string(route.route.conn), route.route.node, route.username}}};
  auto replies = evalAll(release_, calls);
  if (!replies) return std::unexpected(replies.error());
  const redisReply& reply = *replies->front();
  if (reply.type != REDIS_REPLY_INTEGER) return failed(unexpectedReply("the release script"));
  return reply.integer != 0;
}

Result<std::vector<std::vector<Route>>> RedisCluster::locate(std::span<const store::UserId> users) {
  std::vector<Call> calls;
  for (std::size_t i = 0; i < users.size(); ++i) {
    if (i % kPerScript == 0) calls.emplace_back();
    calls.back().keys.push_back(routeKey(users[i]));
  }
  auto replies = evalAll(locate_, calls);
  if (!replies) return std::unexpected(replies.error());
  std::vector<std::vector<Route>> located;
  located.reserve(users.size());
  for (std::size_t c = 0; c < calls.size(); ++c) {
    const redisReply& reply = *(*replies)[c];
    if (reply.type != REDIS_REPLY_ARRAY || reply.elements != calls[c].keys.size()) {
      return failed(unexpectedReply("the locate script"));
    }
    for (std::size_t i = 0; i < reply.elements; ++i) {
      const redisReply& values = *reply.element[i];
      std::vector<Route> routes;
      for (std::size_t j = 0; values.type == REDIS_REPLY_ARRAY && j < values.elements; ++j) {
        auto route = decodeRoute(redis::text(*values.element[j]));
        if (!route) return failed(unexpectedReply("the locate script"));
        routes.push_back(std::move(*route));
      }
      located.push_back(std::move(routes));
    }
  }
  return located;
}

Result<std::vector<bool>> RedisCluster::areOnline(std::span<const store::UserId> users) {
  auto located = locate(users);
  if (!located) return std::unexpected(located.error());
  std::vector<bool> online;
  online.reserve(located->size());
  for (const auto& routes : *located) online.push_back(!routes.empty());
  return online;
}

Result<std::vector<std::pair<store::UserId, std::string>>> RedisCluster::onlineUsers() {
  auto replies = evalAll(online_, {Call{{online_key_}, {}}});
  if (!replies) return std::unexpected(replies.error());
  const redisReply& reply = *replies->front();
  if (reply.type != REDIS_REPLY_ARRAY) return failed(unexpectedReply("the online script"));
  std::vector<std::pair<store::UserId, std::string>> users;
  users.reserve(reply.elements);
  for (std::size_t i = 0; i < reply.elements; ++i) {
    // "<username>\0<user>": the id follows the last NUL.
    const std::string_view member = redis::text(*reply.element[i]);
    const auto nul = member.rfind('\0');
    store::UserId id = 0;
    if (nul == std::string_view::npos || !parseNumber(member.substr(nul + 1), id)) {
      return failed(unexpectedReply("the online script"));
    }
    users.emplace_back(id, std::string(member.substr(0, nul)));
  }
  // The set is ordered by score (the leases); the contract's order is the username's.
  std::sort(users.begin(), users.end(), [](const auto& a, const auto& b) {
    return std::tie(a.second, a.first) < std::tie(b.second, b.first);
  });
  return users;
}

// ---- bus: publishing ---------------------------------------------------------------------------

void RedisCluster::send(const NodeId& node, std::string payload) {
  enqueue(options_.prefix + "node:" + node, std::move(payload));
}

void RedisCluster::broadcast(std::string payload) {
  enqueue(options_.prefix + "all", std::move(payload));
}

void RedisCluster::enqueue(std::string channel, std::string payload) {
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= std::max<std::size_t>(options_.max_queued, 1)) {
      queue_.pop_front();
      counters_.dropped->inc();
      send_lost_ = true;
    }
    queue_.push_back(Outgoing{std::move(channel), std::move(payload)});
  }
  publish_cv_.notify_one();
}

void RedisCluster::publishLoop(ConnectionPtr connection) {
  auto backoff = kBackoffFirst;
  for (;;) {
    std::vector<Outgoing> batch;
    {
      std::unique_lock lock(mu_);
      publish_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything was sent
      std::size_t bytes = 0;
      while (!queue_.empty() && batch.size() < kMaxPipeline &&
             (batch.empty() || bytes + queue_.front().payload.size() <= kMaxPipelineBytes)) {
        bytes += queue_.front().payload.size();
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    if (connection && connection->peerClosed()) connection.reset();
    if (!connection) {
      auto fresh = connect();
      if (!fresh) {
        // At most once: what cannot be sent now is dropped, and the receivers resync.
        if (backoff == kBackoffFirst)
          spdlog::warn("redis: bus cannot publish: {}", fresh.error().message);
        counters_.errors->inc();
        counters_.dropped->inc(batch.size());
        markSendLost();
        if (pauseUnlessStopping(backoff)) return;
        backoff = std::min(backoff * 2, kBackoffMax);
        continue;
      }
      connection = std::move(*fresh);
      backoff = kBackoffFirst;
    }
    for (const Outgoing& m : batch) connection->append({"PUBLISH", m.channel, m.payload});
    std::size_t published = 0;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      auto reply = connection->read();
      if (!reply) {
        spdlog::warn("redis: bus publishing failed: {}", reply.error().message);
        counters_.errors->inc();
        connection.reset();
        break;
      }
      if (!redis::isError(**reply)) ++published;
    }
    counters_.published->inc(published);
    counters_.dropped->inc(batch.size() - published);
    if (published < batch.size()) markSendLost();
    if (published > 0) {
      bool lost = false;
      {
        std::lock_guard lock(mu_);
        lost = std::exchange(send_lost_, false);
      }
      if (lost && handler_.on_send_lost) handler_.on_send_lost();
    }
  }
}

void RedisCluster::markSendLost() {
  std::lock_guard lock(mu_);
  send_lost_ = true;
}

// ---- bus: subscription -------------------------------------------------------------------------

Result<RedisCluster::ConnectionPtr> RedisCluster::subscribe() {
  auto connection = connect();
  if (!connection) return connection;
  const std::string mine = options_.prefix + "node:" + options_.self;
  const std::string all = options_.prefix + "all";
  (*connection)->append({"SUBSCRIBE", mine, all});
  for (int i = 0; i < 2; ++i) {  // one confirmation per channel
    auto reply = (*connection)->read();
    if (!reply) return std::unexpected(reply.error());
    const redisReply& r = **reply;
    if (r.type != REDIS_REPLY_ARRAY || r.elements != 3 ||
        redis::text(*r.element[0]) != "subscribe") {
      return std::unexpected(unexpectedReply("SUBSCRIBE"));
    }
  }
  return connection;
}

void RedisCluster::subscribeLoop(ConnectionPtr connection) {
  auto backoff = kBackoffFirst;
  for (;;) {
    if (connection) {
      listen(*connection);
      connection.reset();
    }
    if (pauseUnlessStopping(backoff)) return;
    backoff = std::min(backoff * 2, kBackoffMax);
    auto fresh = subscribe();
    if (!fresh) {
      counters_.errors->inc();
      continue;
    }
    connection = std::move(*fresh);
    backoff = kBackoffFirst;
    counters_.reconnects->inc();
    spdlog::info("redis: bus subscription re-established");
    if (handler_.on_reconnect) handler_.on_reconnect();
  }
}

void RedisCluster::listen(Connection& connection) {
  auto last_heard = Clock::now();
  std::optional<Clock::time_point> ping_sent;
  while (!stopping()) {
    auto reply = connection.poll(kListenSlice);
    if (!reply) {
      spdlog::warn("redis: bus subscription lost: {}", reply.error().message);
      counters_.errors->inc();
      return;
    }
    const auto now = Clock::now();
    if (!*reply) {
      if (ping_sent && now - *ping_sent > options_.timeout) {
        spdlog::warn("redis: bus subscription lost: no answer to PING");
        counters_.errors->inc();
        return;
      }
      if (!ping_sent && now - last_heard > kPingAfter) {
        connection.append({"PING"});
        ping_sent = now;
      }
      continue;
    }
    last_heard = now;
    ping_sent.reset();
    const redisReply& r = **reply;
    if (r.type == REDIS_REPLY_ARRAY && r.elements == 3 && redis::text(*r.element[0]) == "message") {
      counters_.received->inc();
      if (handler_.on_message) handler_.on_message(redis::text(*r.element[2]));
    }
  }
}

bool RedisCluster::pauseUnlessStopping(std::chrono::milliseconds pause) {
  std::unique_lock lock(mu_);
  return stop_cv_.wait_for(lock, pause, [&] { return stopping_; });
}

bool RedisCluster::stopping() {
  std::lock_guard lock(mu_);
  return stopping_;
}

// ---- opening -----------------------------------------------------------------------------------

Result<std::unique_ptr<RedisCluster>> openRedisCluster(RedisOptions options, BusHandler handler,
                                                       MetricsRegistry* metrics) {
  auto endpoint = redis::parseAddress(options.address);
  if (!endpoint) return std::unexpected(endpoint.error());
  if (auto ok = validateNodeId(options.self); !ok) return std::unexpected(ok.error());
  if (options.lease.count() <= 0 || options.timeout.count() <= 0) {
    return fail(Errc::BadRequest, "redis: the lease and the timeout must be positive");
  }
  std::unique_ptr<RedisCluster> cluster(
      new RedisCluster(std::move(options), std::move(*endpoint), std::move(handler), metrics));
  auto directory = cluster->connect();
  if (!directory) return std::unexpected(directory.error());
  if (auto ok = cluster->loadScripts(**directory); !ok) return std::unexpected(ok.error());
  cluster->giveBack(std::move(*directory));
  auto subscription = cluster->subscribe();
  if (!subscription) return std::unexpected(subscription.error());
  auto publisher = cluster->connect();
  if (!publisher) return std::unexpected(publisher.error());
  cluster->publisher_ =
      std::thread(&RedisCluster::publishLoop, cluster.get(), std::move(*publisher));
  cluster->subscriber_ =
      std::thread(&RedisCluster::subscribeLoop, cluster.get(), std::move(*subscription));
  return cluster;
}

}  // namespace pigeon::cluster
