// ZkDiscovery against a real ZooKeeper (scripts/services.sh via ServiceProcess), one server per
// test, which the tests restart and stop. Waits poll for the condition with a deadline, no
// sleeps. A network partition (the server up, a client cut off, so that the server expires its
// session) goes through Partition, a TCP forwarder the test can cut.
#include "cluster/zookeeper/zk_discovery.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

#include <atomic>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include "base/snowflake.h"
#include "support/services.h"

namespace pigeon::cluster {
namespace {

using namespace std::chrono_literals;
using test::ServiceProcess;
using test::waitFor;
using Clock = std::chrono::steady_clock;

constexpr auto kDeadline = 20s;

NodeInfo makeNode(const std::string& id, int port) {
  NodeInfo n;
  n.id = id;
  n.roles = {"gateway", "api"};
  n.ws = "ws://127.0.0.1:" + std::to_string(port) + "/ws";
  n.tcp = "tcp://127.0.0.1:" + std::to_string(port + 1);
  n.http = "http://127.0.0.1:" + std::to_string(port + 2);
  n.started_at_ms = 1'700'000'000'000 + port;
  return n;
}

// Every on_worker_id call, in order.
class WorkerLog {
 public:
  void record(std::optional<std::uint32_t> id) {
    std::lock_guard lock(mu_);
    calls_.push_back(id);
  }
  std::vector<std::optional<std::uint32_t>> calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::optional<std::uint32_t>> calls_;
};

// A node of the test cluster: its discovery and what it was told about its worker id.
struct TestNode {
  std::unique_ptr<WorkerLog> log = std::make_unique<WorkerLog>();
  std::unique_ptr<ZkDiscovery> discovery;

  ZkDiscovery* operator->() const { return discovery.get(); }
};

ZkDiscoveryOptions optionsFor(const ServiceProcess& zk, const std::string& root, NodeInfo self) {
  ZkDiscoveryOptions o;
  o.hosts = zk.address();
  o.root = root;
  o.self = std::move(self);
  o.update_interval = 100ms;
  return o;
}

TestNode startNode(ZkDiscoveryOptions options) {
  TestNode node;
  options.on_worker_id = [log = node.log.get()](std::optional<std::uint32_t> id) {
    log->record(id);
  };
  auto started = ZkDiscovery::start(std::move(options));
  if (!started)
    ADD_FAILURE() << started.error().message;
  else
    node.discovery = std::move(*started);
  return node;
}

std::vector<NodeId> ids(const std::vector<NodeInfo>& nodes) {
  std::vector<NodeId> out;
  for (const auto& n : nodes) out.push_back(n.id);
  return out;
}

// Whether the rendered metrics have the sample line `sample` (not just a HELP text starting so).
bool hasSample(const MetricsRegistry& metrics, const std::string& sample) {
  return metrics.render().find("\n" + sample + "\n") != std::string::npos;
}

bool sees(const TestNode& node, const std::vector<NodeId>& expected) {
  return ids(node->nodes()) == expected;
}

// A raw client of the same server, to write what a broken node would.
class RawClient {
 public:
  explicit RawClient(const std::string& hosts)
      : zh_(zookeeper_init2(hosts.c_str(), nullptr, 10000, nullptr, nullptr, 0,
                            [](const char*) {})) {}  // its log lines are noise here
  ~RawClient() {
    if (zh_) zookeeper_close(zh_);
  }
  bool connected() const { return zh_ && zoo_state(zh_) == ZOO_CONNECTED_STATE; }
  int create(const std::string& path, const std::string& data) {
    return zoo_create(zh_, path.c_str(), data.data(), int(data.size()), &ZOO_OPEN_ACL_UNSAFE,
                      ZOO_EPHEMERAL, nullptr, 0);
  }
  int set(const std::string& path, const std::string& data) {
    return zoo_set(zh_, path.c_str(), data.data(), int(data.size()), -1);
  }

 private:
  zhandle_t* zh_;
};

// Forwards TCP connections from its own loopback port to ZooKeeper's until cut(): then it drops
// every connection and closes new ones at once, until heal().
class Partition {
 public:
  explicit Partition(std::uint16_t target) : target_(target) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr = loopback(0);
    socklen_t len = sizeof addr;
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) ||
        ::listen(listen_fd_, 16) ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len)) {
      throw std::runtime_error("Partition: cannot listen");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~Partition() {
    stop_ = true;
    thread_.join();
    dropAll();
    ::close(listen_fd_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  void cut() { cut_ = true; }
  void heal() { cut_ = false; }

 private:
  static sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    return addr;
  }
  void dropAll() {
    for (auto [a, b] : pairs_) {
      ::close(a);
      ::close(b);
    }
    pairs_.clear();
  }
  void run() {
    while (!stop_) {
      if (cut_) dropAll();
      std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
      for (auto [a, b] : pairs_) {
        fds.push_back({a, POLLIN, 0});
        fds.push_back({b, POLLIN, 0});
      }
      if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
      std::vector<std::pair<int, int>> alive;
      for (std::size_t i = 0; i < pairs_.size(); ++i) {
        auto [a, b] = pairs_[i];
        const bool ok = pump(fds[1 + 2 * i].revents, a, b) && pump(fds[2 + 2 * i].revents, b, a);
        if (ok) {
          alive.emplace_back(a, b);
        } else {
          ::close(a);
          ::close(b);
        }
      }
      pairs_ = std::move(alive);
      if (fds[0].revents & POLLIN) accept();  // after the pairs fds[] describes
    }
  }
  void accept() {
    const int client = ::accept(listen_fd_, nullptr, nullptr);
    if (client < 0) return;
    const int server = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr = loopback(target_);
    if (cut_ || server < 0 || ::connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr)) {
      ::close(client);
      if (server >= 0) ::close(server);
      return;
    }
    pairs_.emplace_back(client, server);
  }
  // Copies what `from` has to `to`; false when either is finished.
  static bool pump(short revents, int from, int to) {
    if (!(revents & (POLLIN | POLLHUP | POLLERR))) return true;
    char buf[16384];
    const ssize_t n = ::read(from, buf, sizeof buf);
    if (n <= 0) return false;
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = ::write(to, buf + done, std::size_t(n - done));
      if (w <= 0) return false;
      done += w;
    }
    return true;
  }

  std::uint16_t target_, port_ = 0;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false}, cut_{false};
  std::vector<std::pair<int, int>> pairs_;  // (client, server), the forwarder's thread only
  std::thread thread_;
};

TEST(ZkDiscovery, RejectsBadOptions) {
  const auto bad = [](auto change) {
    ZkDiscoveryOptions o;
    o.hosts = "127.0.0.1:2181";
    o.self = makeNode("node-a", 9000);
    change(o);
    auto started = ZkDiscovery::start(o);
    return started ? Errc::Internal : started.error().code;
  };
  EXPECT_EQ(bad([](auto& o) { o.hosts = ""; }), Errc::BadRequest);
  EXPECT_EQ(bad([](auto& o) { o.hosts = "127.0.0.1"; }), Errc::BadRequest);
  EXPECT_EQ(bad([](auto& o) { o.hosts = "127.0.0.1:2181,:99"; }), Errc::BadRequest);
  EXPECT_EQ(bad([](auto& o) { o.root = "pigeon"; }), Errc::BadRequest);
  EXPECT_EQ(bad([](auto& o) { o.root = "/pigeon/"; }), Errc::BadRequest);
  EXPECT_EQ(bad([](auto& o) { o.self.id = "a/b"; }), Errc::BadRequest);
  EXPECT_EQ(bad([](auto& o) { o.update_interval = 0ms; }), Errc::BadRequest);
}

TEST(ZkDiscovery, StartFailsWithinItsTimeoutWhenNothingListens) {
  auto o = ZkDiscoveryOptions{};
  o.hosts = "127.0.0.1:" + std::to_string(test::freePort());
  o.self = makeNode("lonely", 9000);
  o.start_timeout = 1500ms;
  const auto began = Clock::now();
  auto started = ZkDiscovery::start(o);
  const auto took = Clock::now() - began;
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, Errc::Unavailable);
  EXPECT_GE(took, 1500ms);
  EXPECT_LT(took, 5s) << "start() and the cleanup after it must not hang";
}

TEST(ZkDiscovery, TwoNodesSeeEachOtherWithTheirAddresses) {
  ServiceProcess zk(ServiceProcess::Kind::ZooKeeper);
  MetricsRegistry metrics;
  auto a_options = optionsFor(zk, "/pigeon", makeNode("node-a", 9000));
  a_options.metrics = &metrics;
  auto a = startNode(a_options);
  auto b = startNode(optionsFor(zk, "/pigeon", makeNode("node-b", 9100)));
  ASSERT_TRUE(a.discovery && b.discovery);

  ASSERT_TRUE(waitFor(
      [&] {
        return sees(a, {"node-a", "node-b"}) && sees(b, {"node-a", "node-b"});
      },
      kDeadline));
  EXPECT_EQ(a->nodes()[1], makeNode("node-b", 9100));  // every field, addresses included
  EXPECT_EQ(b->nodes()[0], makeNode("node-a", 9000));

  EXPECT_TRUE(hasSample(metrics, "pigeon_cluster_nodes 2")) << metrics.render();
  EXPECT_TRUE(hasSample(metrics, "pigeon_zookeeper_sessions_total 1")) << metrics.render();
  EXPECT_TRUE(hasSample(metrics, "pigeon_zookeeper_connected 1")) << metrics.render();
}

TEST(ZkDiscovery, StartReturnsWithItselfListedAndAWorkerId) {
  ServiceProcess zk(ServiceProcess::Kind::ZooKeeper);
  auto a = startNode(optionsFor(zk, "/deep/cluster", makeNode("node-a", 9000)));
  ASSERT_TRUE(a.discovery);
  EXPECT_EQ(ids(a->nodes()), std::vector<NodeId>{"node-a"});  // no wait: start() read the list
  ASSERT_TRUE(a->workerId());
  EXPECT_EQ(a.log->calls(), std::vector<std::optional<std::uint32_t>>{a->workerId()});
}

TEST(ZkDiscovery, ConnectionCountReachesTheOthers) {
  ServiceProcess zk(ServiceProcess::Kind::ZooKeeper);
  auto a = startNode(optionsFor(zk, "/pigeon", makeNode("node-a", 9000)));
  auto b = startNode(optionsFor(zk, "/pigeon", makeNode("node-b", 9100)));
  ASSERT_TRUE(a.discovery && b.discovery);
  ASSERT_TRUE(waitFor([&] { return sees(b, {"node-a", "node-b"}); }, kDeadline));

  for (std::uint64_t count : {42u, 0u, 1234u}) {
    a->setConnections(count);
    EXPECT_TRUE(waitFor(
        [&] {
          auto nodes = b->nodes();
          return nodes.size() == 2 && nodes[0].connections == count;
        },
        kDeadline))
        << count;
  }
  EXPECT_EQ(b->nodes()[0].ws, "ws://127.0.0.1:9000/ws");
}

TEST(ZkDiscovery, LiveNodesHoldDistinctWorkerIds) {
  ServiceProcess zk(ServiceProcess::Kind::ZooKeeper);
  std::vector<TestNode> nodes;
  for (int i = 0; i < 3; ++i) {
    nodes.push_back(startNode(
        optionsFor(zk, "/pigeon", makeNode("node-" + std::to_string(i), 9000 + 100 * i))));
    ASSERT_TRUE(nodes.back().discovery);
  }
  std::set<std::uint32_t> workers;
  for (const auto& n : nodes) {
    ASSERT_TRUE(n->workerId());
    EXPECT_LE(*n->workerId(), Snowflake::kMaxWorker);
    workers.insert(*n->workerId());
    EXPECT_EQ(n.log->calls(), std::vector<std::optional<std::uint32_t>>{n->workerId()});
  }
  EXPECT_EQ(workers.size(), 3u);
}

TEST(ZkDiscovery, NodeThatLeavesDisappearsAndFreesItsWorkerId) {
  ServiceProcess zk(ServiceProcess::Kind::ZooKeeper);
  auto a = startNode(optionsFor(zk, "/pigeon", makeNode("node-a", 9000)));
  auto b = startNode(optionsFor(zk, "/pigeon", makeNode("node-b", 9100)));
  ASSERT_TRUE(a.discovery && b.discovery);
  ASSERT_TRUE(waitFor([&] { return sees(a, {"node-a", "node-b"}); }, kDeadline));
  const auto b_worker = b->workerId();

  b.discovery.reset();
  ASSERT_TRUE(waitFor([&] { return sees(a, {"node-a"}); }, kDeadline));

  // The lowest free id is taken: the one b gave back.
  auto c = startNode(optionsFor(zk, "/pigeon", makeNode("node-c", 9200)));
  ASSERT_TRUE(c.discovery);
  EXPECT_EQ(c->workerId(), b_worker);
  EXPECT_NE(c->workerId(), a->workerId());
}

TEST(ZkDiscovery, SkipsMalformedRecords) {
  ServiceProcess zk(ServiceProcess::Kind::ZooKeeper);
  auto a = startNode(optionsFor(zk, "/pigeon", makeNode("node-a", 9000)));
  ASSERT_TRUE(a.discovery);
  RawClient raw(zk.address());
  ASSERT_TRUE(waitFor([&] { return raw.connected(); }, kDeadline));
  ASSERT_EQ(raw.create("/pigeon/nodes/broken", "not json"), ZOK);
  ASSERT_EQ(raw.create("/pigeon/nodes/impostor", toJson(makeNode("node-z", 1))), ZOK);
  ASSERT_EQ(raw.create("/pigeon/nodes/node-m", "{}"), ZOK);
  // Once the malformed one is fixed it is listed: a's watch on it is still set.
  ASSERT_EQ(raw.set("/pigeon/nodes/node-m", toJson(makeNode("node-m", 9300))), ZOK);
  ASSERT_TRUE(waitFor([&] { return sees(a, {"node-a", "node-m"}); }, kDeadline));
}

TEST(ZkDiscovery, NodesComeBackAfterZooKeeperRestarts) {
  ServiceProcess zk(ServiceProcess::Kind::ZooKeeper);
  auto a = startNode(optionsFor(zk, "/pigeon", makeNode("node-a", 9000)));
  auto b = startNode(optionsFor(zk, "/pigeon", makeNode("node-b", 9100)));
  ASSERT_TRUE(a.discovery && b.discovery);
  ASSERT_TRUE(waitFor([&] { return sees(a, {"node-a", "node-b"}); }, kDeadline));

  zk.stop();
  zk.start();  // same port, data kept
  a->setConnections(7);
  const auto both = [&] {
    return sees(a, {"node-a", "node-b"}) && sees(b, {"node-a", "node-b"}) &&
           b->nodes()[0].connections == 7 && a->workerId() && b->workerId() &&
           *a->workerId() != *b->workerId();
  };
  ASSERT_TRUE(waitFor(both, kDeadline));
}

// ZooKeeper restores its sessions when it restarts (stopping it expires none): a node cut off
// by the outage gives its worker id up after a third of the session timeout, keeps its session,
// and gets the same id back. Real expiry: StartsANewSessionAfterItsSessionExpired.
TEST(ZkDiscovery, GivesUpItsWorkerIdWhileZooKeeperIsDownAndGetsItBack) {
  ServiceProcess zk(ServiceProcess::Kind::ZooKeeper);
  MetricsRegistry metrics;
  // Long enough for the session to outlive the restart on a slow machine; the id is given up
  // 2 s into the outage.
  auto a_options = optionsFor(zk, "/pigeon", makeNode("node-a", 9000));
  a_options.session_timeout = 6000ms;
  a_options.metrics = &metrics;
  auto a = startNode(a_options);
  auto b_options = optionsFor(zk, "/pigeon", makeNode("node-b", 9100));
  b_options.session_timeout = 6000ms;
  auto b = startNode(b_options);
  ASSERT_TRUE(a.discovery && b.discovery);
  ASSERT_TRUE(waitFor([&] { return sees(a, {"node-a", "node-b"}); }, kDeadline));

  zk.stop();
  ASSERT_TRUE(waitFor([&] { return !a->workerId() && !b->workerId(); }, kDeadline));
  EXPECT_TRUE(hasSample(metrics, "pigeon_zookeeper_connected 0")) << metrics.render();
  zk.start();

  ASSERT_TRUE(waitFor(
      [&] {
        return sees(a, {"node-a", "node-b"}) && sees(b, {"node-a", "node-b"}) && a->workerId() &&
               b->workerId() && *a->workerId() != *b->workerId();
      },
      kDeadline));
  for (const auto* node : {&a, &b}) {
    const auto calls = node->log->calls();
    ASSERT_EQ(calls.size(), 3u);  // id, nullopt (cut off), the same id again
    EXPECT_TRUE(calls[0]);
    EXPECT_FALSE(calls[1]);
    EXPECT_EQ(calls[2], calls[0]);
  }
  EXPECT_TRUE(hasSample(metrics, "pigeon_zookeeper_sessions_total 1")) << metrics.render();
  EXPECT_TRUE(hasSample(metrics, "pigeon_zookeeper_connected 1")) << metrics.render();
}

// A partition longer than the session timeout, ZooKeeper up: the server expires the session
// (the others see the node go), and when the node gets through again it starts a new session,
// registers again and claims a worker id again.
TEST(ZkDiscovery, StartsANewSessionAfterItsSessionExpired) {
  ServiceProcess zk(ServiceProcess::Kind::ZooKeeper);
  Partition partition(zk.port());
  MetricsRegistry metrics;
  auto a_options = optionsFor(zk, "/pigeon", makeNode("node-a", 9000));
  a_options.hosts = partition.address();
  // Short, for a short test, but not the server's minimum (2 s): on this shared machine a stall
  // of the server or the client must not expire the new session too.
  a_options.session_timeout = 4000ms;
  a_options.metrics = &metrics;
  auto a = startNode(a_options);
  auto b = startNode(optionsFor(zk, "/pigeon", makeNode("node-b", 9100)));
  ASSERT_TRUE(a.discovery && b.discovery);
  ASSERT_TRUE(waitFor([&] { return sees(b, {"node-a", "node-b"}); }, kDeadline));

  partition.cut();
  ASSERT_TRUE(waitFor([&] { return !a->workerId(); }, kDeadline));
  ASSERT_TRUE(waitFor([&] { return sees(b, {"node-b"}); }, kDeadline));  // expired by the server
  // Meanwhile the expired node's id is free for others.
  auto c = startNode(optionsFor(zk, "/pigeon", makeNode("node-c", 9200)));
  ASSERT_TRUE(c.discovery);
  partition.heal();

  ASSERT_TRUE(waitFor(
      [&] {
        return sees(a, {"node-a", "node-b", "node-c"}) && sees(b, {"node-a", "node-b", "node-c"}) &&
               a->workerId();
      },
      kDeadline));
  const std::set<std::uint32_t> workers{*a->workerId(), *b->workerId(), *c->workerId()};
  EXPECT_EQ(workers.size(), 3u);
  const auto calls = a.log->calls();
  ASSERT_EQ(calls.size(), 3u);  // id, nullopt (cut off), a new id in the new session
  EXPECT_TRUE(calls[0]);
  EXPECT_FALSE(calls[1]);
  EXPECT_EQ(calls[2], a->workerId());
  EXPECT_NE(calls[2], calls[0]) << "c took a's old id while a was cut off";
  EXPECT_TRUE(hasSample(metrics, "pigeon_zookeeper_sessions_total 2")) << metrics.render();
  EXPECT_TRUE(hasSample(metrics, "pigeon_zookeeper_connected 1")) << metrics.render();
}

}  // namespace
}  // namespace pigeon::cluster
