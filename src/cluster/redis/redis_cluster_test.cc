// RedisCluster against a real redis-server (ServiceProcess): the Directory contract (routes as
// ordered leases, presence) and the Bus (one hop, broadcast, order, reconnection).
#include "cluster/redis/redis_cluster.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "cluster/redis/connection.h"
#include "support/services.h"

namespace pigeon::cluster {
namespace {
using namespace std::chrono_literals;
using test::ServiceProcess;
using test::waitFor;

// What a node's bus handler received.
class Inbox {
 public:
  BusHandler handler() {
    return BusHandler{[this](std::string_view payload) {
                        std::lock_guard lock(mu_);
                        messages_.emplace_back(payload);
                      },
                      [this] { ++reconnects_; }, [this] { ++sends_lost_; }};
  }
  std::vector<std::string> messages() const {
    std::lock_guard lock(mu_);
    return messages_;
  }
  bool has(const std::string& payload) const {
    auto all = messages();
    return std::find(all.begin(), all.end(), payload) != all.end();
  }
  int reconnects() const { return reconnects_; }
  int sendsLost() const { return sends_lost_; }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> messages_;
  std::atomic<int> reconnects_{0};
  std::atomic<int> sends_lost_{0};
};

DeviceRoute route(store::UserId user, std::string device, NodeId node, std::uint64_t conn,
                  std::int64_t login_ms, std::string username = "") {
  if (username.empty()) username = "user" + std::to_string(user);
  return DeviceRoute{user, std::move(username), std::move(device),
                     Route{std::move(node), conn, login_ms}};
}

class RedisClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { redis_ = new ServiceProcess(ServiceProcess::Kind::Redis); }
  static void TearDownTestSuite() {
    delete redis_;
    redis_ = nullptr;
  }

  // Each test has keys and channels of its own.
  RedisOptions options(NodeId self, std::chrono::milliseconds lease = 30s) {
    RedisOptions o;
    o.address = redis_->address();
    o.self = std::move(self);
    o.lease = lease;
    o.prefix =
        std::string("t:") + ::testing::UnitTest::GetInstance()->current_test_info()->name() + ":";
    return o;
  }
  std::unique_ptr<RedisCluster> open(NodeId self, std::chrono::milliseconds lease = 30s,
                                     Inbox* inbox = nullptr, MetricsRegistry* metrics = nullptr) {
    auto cluster = openRedisCluster(options(std::move(self), lease),
                                    inbox ? inbox->handler() : BusHandler{}, metrics);
    EXPECT_TRUE(cluster) << cluster.error().message;
    return cluster ? std::move(*cluster) : nullptr;
  }
  static void redisCommand(const std::vector<std::string_view>& args) {
    auto endpoint = redis::parseAddress(redis_->address());
    ASSERT_TRUE(endpoint);
    auto connection = redis::Connection::open(*endpoint, 2s);
    ASSERT_TRUE(connection) << connection.error().message;
    auto reply = (*connection)->command(args);
    ASSERT_TRUE(reply) << reply.error().message;
    ASSERT_FALSE(redis::isError(**reply)) << redis::text(**reply);
  }

  static ServiceProcess* redis_;
};
ServiceProcess* RedisClusterTest::redis_ = nullptr;

TEST_F(RedisClusterTest, ClaimLocateRelease) {
  auto dir = open("node-a");
  ASSERT_TRUE(dir);
  const auto alice = route(1, "phone", "node-a", 7, 1000);
  auto claimed = dir->claim(alice);
  ASSERT_TRUE(claimed) << claimed.error().message;
  EXPECT_TRUE(claimed->came_online);
  EXPECT_FALSE(claimed->superseded);
  EXPECT_FALSE(claimed->displaced);

  const std::vector<store::UserId> users{1, 2};
  auto located = dir->locate(users);
  ASSERT_TRUE(located);
  ASSERT_EQ(located->size(), 2u);
  EXPECT_EQ((*located)[0], std::vector<Route>{alice.route});
  EXPECT_TRUE((*located)[1].empty());
  EXPECT_EQ(dir->areOnline(users), (std::vector<bool>{true, false}));

  // Claiming the same connection again is a renewal: nothing displaced, not a coming online.
  auto again = dir->claim(alice);
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->came_online);
  EXPECT_FALSE(again->displaced);

  EXPECT_EQ(dir->release(alice), true);
  located = dir->locate(users);
  ASSERT_TRUE(located);
  EXPECT_TRUE((*located)[0].empty());
  EXPECT_EQ(dir->areOnline(users), (std::vector<bool>{false, false}));
  EXPECT_EQ(dir->onlineUsers(), (std::vector<std::pair<store::UserId, std::string>>{}));
}

TEST_F(RedisClusterTest, SecondDeviceOfAUser) {
  auto dir = open("node-a");
  ASSERT_TRUE(dir);
  const auto phone = route(1, "phone", "node-a", 1, 1000);
  const auto web = route(1, "web", "node-b", 2, 2000);
  ASSERT_TRUE(dir->claim(phone));
  auto second = dir->claim(web);
  ASSERT_TRUE(second);
  EXPECT_FALSE(second->came_online);
  EXPECT_FALSE(second->displaced);
  EXPECT_FALSE(second->superseded);

  const std::vector<store::UserId> users{1};
  auto located = dir->locate(users);
  ASSERT_TRUE(located);
  auto routes = (*located)[0];
  std::sort(routes.begin(), routes.end(), [](auto& a, auto& b) { return a.conn < b.conn; });
  EXPECT_EQ(routes, (std::vector<Route>{phone.route, web.route}));

  EXPECT_EQ(dir->release(phone), false);  // web is still there
  EXPECT_EQ(dir->release(web), true);
}

TEST_F(RedisClusterTest, LaterLoginDisplacesTheEarlier) {
  auto dir = open("node-a");
  ASSERT_TRUE(dir);
  const auto first = route(1, "phone", "node-a", 1, 1000);
  const auto second = route(1, "phone", "node-b", 7, 2000);
  ASSERT_TRUE(dir->claim(first));
  auto claimed = dir->claim(second);
  ASSERT_TRUE(claimed);
  EXPECT_EQ(claimed->displaced, first.route);
  EXPECT_FALSE(claimed->superseded);
  EXPECT_FALSE(claimed->came_online);
  const std::vector<store::UserId> users{1};
  EXPECT_EQ(dir->locate(users), (std::vector<std::vector<Route>>{{second.route}}));

  // Same login time: the node id orders them, then the connection id (as numbers: 9 < 10).
  const auto third = route(1, "phone", "node-c", 9, 2000);
  EXPECT_EQ(dir->claim(third)->displaced, second.route);
  const auto fourth = route(1, "phone", "node-c", 10, 2000);
  EXPECT_EQ(dir->claim(fourth)->displaced, third.route);
  EXPECT_EQ(dir->locate(users), (std::vector<std::vector<Route>>{{fourth.route}}));
}

TEST_F(RedisClusterTest, EarlierClaimArrivingLateIsSuperseded) {
  auto dir = open("node-a");
  ASSERT_TRUE(dir);
  const auto later = route(1, "phone", "node-b", 1, 2000);
  const auto earlier = route(1, "phone", "node-a", 5, 1000);
  ASSERT_TRUE(dir->claim(later));
  auto claimed = dir->claim(earlier);
  ASSERT_TRUE(claimed);
  EXPECT_TRUE(claimed->superseded);
  EXPECT_FALSE(claimed->came_online);
  EXPECT_FALSE(claimed->displaced);
  const std::vector<store::UserId> users{1};
  EXPECT_EQ(dir->locate(users), (std::vector<std::vector<Route>>{{later.route}}));
  // Renewing the earlier one does not take the route back either.
  auto renewed = dir->renew(std::vector<DeviceRoute>{earlier});
  ASSERT_TRUE(renewed);
  EXPECT_TRUE(renewed->at(0).superseded);
  EXPECT_EQ(dir->locate(users), (std::vector<std::vector<Route>>{{later.route}}));
}

TEST_F(RedisClusterTest, StaleReleaseKeepsTheNewerRoute) {
  auto dir = open("node-a");
  ASSERT_TRUE(dir);
  const auto old_route = route(1, "phone", "node-a", 1, 1000);
  const auto new_route = route(1, "phone", "node-b", 2, 2000);
  ASSERT_TRUE(dir->claim(old_route));
  ASSERT_TRUE(dir->claim(new_route));
  EXPECT_EQ(dir->release(old_route), false);
  const std::vector<store::UserId> users{1};
  EXPECT_EQ(dir->locate(users), (std::vector<std::vector<Route>>{{new_route.route}}));
  EXPECT_EQ(dir->areOnline(users), std::vector<bool>{true});
}

TEST_F(RedisClusterTest, RoutesExpireWithoutRenewal) {
  auto dir = open("node-a", 300ms);
  ASSERT_TRUE(dir);
  ASSERT_TRUE(dir->claim(route(1, "phone", "node-a", 1, 1000)));
  ASSERT_TRUE(dir->claim(route(2, "phone", "node-a", 2, 1000)));
  const std::vector<store::UserId> users{1, 2};
  EXPECT_EQ(dir->areOnline(users), (std::vector<bool>{true, true}));
  EXPECT_EQ(dir->onlineUsers()->size(), 2u);
  ASSERT_TRUE(waitFor(
      [&] {
        return dir->areOnline(users) == std::vector<bool>{false, false};
      },
      3s));
  auto located = dir->locate(users);
  ASSERT_TRUE(located);
  EXPECT_TRUE((*located)[0].empty() && (*located)[1].empty());
  EXPECT_EQ(dir->onlineUsers(), (std::vector<std::pair<store::UserId, std::string>>{}));
  // A claim after the expiry is a coming online again.
  auto claimed = dir->claim(route(1, "phone", "node-a", 3, 5000));
  ASSERT_TRUE(claimed);
  EXPECT_TRUE(claimed->came_online);
  EXPECT_FALSE(claimed->displaced);
}

TEST_F(RedisClusterTest, RenewKeepsRoutesAliveAndRecreatesThem) {
  const auto lease = 600ms;
  auto dir = open("node-a", lease);
  ASSERT_TRUE(dir);
  // Enough routes for several script runs in one pipeline.
  std::vector<DeviceRoute> routes;
  std::vector<store::UserId> users;
  for (store::UserId u = 1; u <= 1200; ++u) {
    routes.push_back(route(u, "phone", "node-a", u, 1000));
    users.push_back(u);
  }
  auto first = dir->renew(routes);
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_EQ(first->size(), routes.size());
  EXPECT_TRUE(first->front().came_online && first->back().came_online);

  // Renewed every third of the lease, for three leases: never gone.
  const auto until = std::chrono::steady_clock::now() + 3 * lease;
  while (std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(lease / 3);  // the renewal period, not a wait for a condition
    auto renewed = dir->renew(routes);
    ASSERT_TRUE(renewed);
    EXPECT_FALSE(renewed->front().came_online);
    EXPECT_FALSE(renewed->back().superseded);
    auto online = dir->areOnline(users);
    ASSERT_TRUE(online);
    EXPECT_EQ(std::count(online->begin(), online->end(), true), 1200);
  }

  // The server lost everything, its scripts included: the next renewal records them again.
  redisCommand({"FLUSHALL"});
  redisCommand({"SCRIPT", "FLUSH"});
  EXPECT_EQ(dir->areOnline(std::span(users).first(1)), std::vector<bool>{false});
  auto recreated = dir->renew(routes);
  ASSERT_TRUE(recreated) << recreated.error().message;
  EXPECT_TRUE(recreated->front().came_online);
  EXPECT_FALSE(recreated->front().displaced);
  auto located = dir->locate(users);
  ASSERT_TRUE(located);
  EXPECT_EQ((*located)[41], std::vector<Route>{routes[41].route});
  EXPECT_EQ(dir->onlineUsers()->size(), 1200u);
}

TEST_F(RedisClusterTest, OnlineUsersOrderedByUsername) {
  auto dir = open("node-a");
  ASSERT_TRUE(dir);
  ASSERT_TRUE(dir->claim(route(1, "phone", "node-a", 1, 1000, "carol")));
  ASSERT_TRUE(dir->claim(route(2, "phone", "node-a", 2, 1000, "alice")));
  ASSERT_TRUE(dir->claim(route(3, "web", "node-b", 3, 1000, "bob|builder")));
  ASSERT_TRUE(dir->claim(route(3, "phone", "node-a", 4, 1000, "bob|builder")));
  using Users = std::vector<std::pair<store::UserId, std::string>>;
  EXPECT_EQ(dir->onlineUsers(), (Users{{2, "alice"}, {3, "bob|builder"}, {1, "carol"}}));
  EXPECT_EQ(dir->release(route(2, "phone", "node-a", 2, 1000, "alice")), true);
  EXPECT_EQ(dir->release(route(3, "web", "node-b", 3, 1000, "bob|builder")), false);
  EXPECT_EQ(dir->onlineUsers(), (Users{{3, "bob|builder"}, {1, "carol"}}));
}

TEST_F(RedisClusterTest, RejectsMalformedRoutes) {
  auto dir = open("node-a");
  ASSERT_TRUE(dir);
  auto bad_node = dir->claim(route(1, "phone", "node|a", 1, 1000));
  ASSERT_FALSE(bad_node);
  EXPECT_EQ(bad_node.error().code, Errc::BadRequest);
  auto bad_time = dir->claim(route(1, "phone", "node-a", 1, -5));
  ASSERT_FALSE(bad_time);
  EXPECT_EQ(bad_time.error().code, Errc::BadRequest);
}

TEST_F(RedisClusterTest, BusSendBroadcastOrderAndBinaryPayloads) {
  MetricsRegistry metrics;
  Inbox a_in, b_in, c_in;
  auto a = open("node-a", 30s, &a_in, &metrics);
  auto b = open("node-b", 30s, &b_in);
  auto c = open("node-c", 30s, &c_in);
  ASSERT_TRUE(a && b && c);

  const std::string binary("\0pigeon\0\xff\x01", 10);
  a->send("node-b", binary);
  a->broadcast("marker");
  ASSERT_TRUE(
      waitFor([&] { return b_in.has("marker") && c_in.has("marker") && a_in.has("marker"); }));
  // One sender's payloads arrive in order: the send came before the marker, or never.
  EXPECT_EQ(b_in.messages(), (std::vector<std::string>{binary, "marker"}));
  EXPECT_EQ(c_in.messages(), std::vector<std::string>{"marker"});
  EXPECT_EQ(a_in.messages(), std::vector<std::string>{"marker"});  // its own broadcast

  for (int i = 0; i < 2000; ++i) a->send("node-c", std::to_string(i));
  ASSERT_TRUE(waitFor([&] { return c_in.messages().size() == 2001; }));
  auto got = c_in.messages();
  for (int i = 0; i < 2000; ++i) ASSERT_EQ(got[std::size_t(i) + 1], std::to_string(i));
  // Counted once the publisher read the replies, which may be after the receiver got them.
  auto& published = metrics.counter("pigeon_bus_published_total", "");
  EXPECT_TRUE(waitFor([&] { return published.value() == 2002; })) << published.value();
  EXPECT_EQ(metrics.counter("pigeon_bus_received_total", "").value(), 1u);
  EXPECT_EQ(metrics.counter("pigeon_bus_dropped_total", "").value(), 0u);
}

TEST_F(RedisClusterTest, BoundedQueueDropsTheOldest) {
  // No Redis behind the publisher once it is down: what is queued beyond the bound is dropped.
  ServiceProcess redis(ServiceProcess::Kind::Redis);
  MetricsRegistry metrics;
  RedisOptions o;
  o.address = redis.address();
  o.self = "node-a";
  o.max_queued = 10;
  auto cluster = openRedisCluster(o, {}, &metrics);
  ASSERT_TRUE(cluster);
  redis.stop();
  for (int i = 0; i < 1000; ++i) (*cluster)->send("node-b", "x");  // never blocks
  auto& dropped = metrics.counter("pigeon_bus_dropped_total", "");
  ASSERT_TRUE(waitFor([&] { return dropped.value() == 1000; }));
}

TEST_F(RedisClusterTest, SurvivesARedisRestart) {
  ServiceProcess redis(ServiceProcess::Kind::Redis);
  MetricsRegistry metrics;
  Inbox inbox;
  RedisOptions o;
  o.address = redis.address();
  o.self = "node-a";
  o.timeout = 1s;
  auto opened = openRedisCluster(o, inbox.handler(), &metrics);
  ASSERT_TRUE(opened) << opened.error().message;
  auto& cluster = **opened;
  const auto alice = route(1, "phone", "node-a", 1, 1000);
  ASSERT_TRUE(cluster.claim(alice));
  const std::vector<store::UserId> users{1};

  redis.stop();
  const auto before = std::chrono::steady_clock::now();
  auto claimed = cluster.claim(alice);
  ASSERT_FALSE(claimed);
  EXPECT_EQ(claimed.error().code, Errc::Unavailable);
  auto located = cluster.locate(users);
  ASSERT_FALSE(located);
  EXPECT_EQ(located.error().code, Errc::Unavailable);
  auto online = cluster.onlineUsers();
  ASSERT_FALSE(online);
  EXPECT_EQ(online.error().code, Errc::Unavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - before, 3 * o.timeout);
  cluster.send("node-b", "lost while Redis is down");
  ASSERT_TRUE(waitFor([&] { return metrics.counter("pigeon_bus_dropped_total", "").value() >= 1; }));
  EXPECT_EQ(inbox.sendsLost(), 0) << "reported once publishing works again, not before";

  redis.start();  // empty: no persistence, no scripts
  ASSERT_TRUE(waitFor([&] { return cluster.renew(std::vector<DeviceRoute>{alice}).has_value(); }));
  EXPECT_EQ(cluster.locate(users), (std::vector<std::vector<Route>>{{alice.route}}));
  ASSERT_TRUE(waitFor([&] { return inbox.reconnects() == 1; }));
  EXPECT_EQ(metrics.counter("pigeon_bus_reconnects_total", "").value(), 1u);
  cluster.send("node-a", "after");
  ASSERT_TRUE(waitFor([&] { return inbox.has("after"); }));
  // The payload lost while Redis was down is reported, once.
  ASSERT_TRUE(waitFor([&] { return inbox.sendsLost() == 1; }));
  EXPECT_GT(metrics.counter("pigeon_redis_errors_total", "").value(), 0u);
}

TEST(RedisClusterOpen, UnavailableWhenNothingListens) {
  RedisOptions o;
  o.address = "127.0.0.1:" + std::to_string(test::freePort());
  o.self = "node-a";
  o.timeout = 500ms;
  const auto before = std::chrono::steady_clock::now();
  auto cluster = openRedisCluster(o, {}, nullptr);
  ASSERT_FALSE(cluster);
  EXPECT_EQ(cluster.error().code, Errc::Unavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - before, o.timeout + 500ms);
}

TEST(RedisClusterOpen, UnavailableWhenNothingAnswers) {
  // A socket that accepts connections (in the kernel's backlog) but never answers.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 16), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  RedisOptions o;
  o.address = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  o.self = "node-a";
  o.timeout = 300ms;
  const auto before = std::chrono::steady_clock::now();
  auto cluster = openRedisCluster(o, {}, nullptr);
  const auto took = std::chrono::steady_clock::now() - before;
  ::close(fd);
  ASSERT_FALSE(cluster);
  EXPECT_EQ(cluster.error().code, Errc::Unavailable);
  EXPECT_GE(took, o.timeout);
  EXPECT_LT(took, o.timeout + 500ms);
}

TEST(RedisClusterOpen, BadRequestForABadAddressOrNodeId) {
  RedisOptions o;
  o.self = "node-a";
  for (const char* address :
       {"", "localhost", "localhost:", "localhost:0", "localhost:70000", ":6379"}) {
    o.address = address;
    auto cluster = openRedisCluster(o, {}, nullptr);
    ASSERT_FALSE(cluster) << address;
    EXPECT_EQ(cluster.error().code, Errc::BadRequest) << address;
  }
  o.address = "127.0.0.1:6379";
  o.self = "no spaces";
  auto cluster = openRedisCluster(o, {}, nullptr);
  ASSERT_FALSE(cluster);
  EXPECT_EQ(cluster.error().code, Errc::BadRequest);
}

}  // namespace
}  // namespace pigeon::cluster
