// Cluster mode end to end: real ZooKeeper, Redis and MariaDB on loopback (scripts/services.sh),
// three real pigeond nodes on port 0, and clients on the SDK (native TCP) that find their node
// through the API like real users. Covers chat across nodes (1:1 and groups), a device kicked
// across nodes, presence and online users across nodes, login balancing, and the failures: a
// node SIGKILLed during steady traffic, Redis restarting empty, ZooKeeper restarting, and a node
// rejoining. After each failure every acknowledged message has reached every device of its
// conversation exactly once and in conversation order.
//
// The engines run once for the whole binary; each test has its own ZooKeeper root (so its own
// node list), its own users, and its own nodes. Nothing sleeps to wait: conditions are polled
// with deadlines.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "support/http_client.h"
#include "support/pigeond_process.h"
#include "support/sdk_client.h"
#include "support/services.h"

namespace pigeon::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using client::Reason;

constexpr int kZkSessionMs = 4000;
constexpr int kRouteLeaseMs = 3000;

// ZooKeeper, Redis and MariaDB, once for every test.
class Engines : public ::testing::Environment {
 public:
  void SetUp() override {
    zookeeper = new ServiceProcess(ServiceProcess::Kind::ZooKeeper);
    redis = new ServiceProcess(ServiceProcess::Kind::Redis);
    mariadb = new ServiceProcess(ServiceProcess::Kind::MariaDB);
  }
  void TearDown() override {
    delete mariadb;
    delete redis;
    delete zookeeper;
  }
  static inline ServiceProcess* zookeeper = nullptr;
  static inline ServiceProcess* redis = nullptr;
  static inline ServiceProcess* mariadb = nullptr;
};

std::string unique(const std::string& base) {
  static std::atomic<int> n{0};
  return base + std::to_string(::getpid() % 100000) + "x" + std::to_string(n.fetch_add(1));
}

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override { root_ = "/" + unique("t"); }
  void TearDown() override {
    clients_.clear();  // before the nodes go: a client's stop may still talk to them
    for (auto& n : nodes_) {
      if (n && n->running()) {
        EXPECT_EQ(n->terminate(), 0) << n->log();
      }
    }
  }

  std::vector<std::string> nodeArgs(const std::vector<std::string>& extra) const {
    std::vector<std::string> args{"--zookeeper", Engines::zookeeper->address(),
                                  "--redis", Engines::redis->address(),
                                  "--mysql", Engines::mariadb->mysqlDsn(),
                                  "--zk-root", root_,
                                  "--zk-session-timeout-ms", std::to_string(kZkSessionMs),
                                  "--route-lease-ms", std::to_string(route_lease_ms_),
                                  "--advertise", "127.0.0.1",
                                  "--heartbeat-ms", "1000",
                                  "--rate-limit", "0"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  // Starts node i (a new one, or again after it was killed: then it is a new node, with a new id).
  void startNode(std::size_t i, const std::vector<std::string>& extra = {}) {
    if (nodes_.size() <= i) nodes_.resize(i + 1);
    if (!nodes_[i]) {
      nodes_[i] = std::make_unique<PigeondProcess>(dir_.path() + "/n" + std::to_string(i), nodeArgs(extra));
    }
    nodes_[i]->start();
  }
  void startNodes(std::size_t n, const std::vector<std::string>& extra = {}) {
    for (std::size_t i = 0; i < n; ++i) startNode(i, extra);
    // Every node sees every other before the test begins.
    for (std::size_t i = 0; i < n; ++i) {
      ASSERT_TRUE(waitFor([&] { return clusterSize(i) == int(n); }, 15s)) << "node " << i;
    }
  }
  PigeondProcess& node(std::size_t i) { return *nodes_[i]; }
  std::string url(std::size_t i) { return "http://127.0.0.1:" + std::to_string(nodes_[i]->httpPort()); }
  std::string tcpGateway(std::size_t i) { return "tcp://127.0.0.1:" + std::to_string(nodes_[i]->tcpPort()); }

  // The nodes node i sees alive (pigeon_cluster_nodes on its /metrics).
  int clusterSize(std::size_t i) {
    auto r = HttpClient(nodes_[i]->httpPort()).get("/metrics");
    const std::string key = "\npigeon_cluster_nodes ";
    auto at = r.body.find(key);
    if (r.status != 200 || at == std::string::npos) return -1;
    return std::atoi(r.body.c_str() + at + key.size());
  }

  // The HTTP base URL of a live node, taking turns: what a client asks before each attempt.
  std::string liveUrl() {
    std::lock_guard lock(mu_);
    for (std::size_t k = 0; k < nodes_.size(); ++k) {
      const std::size_t i = (next_url_++) % nodes_.size();
      if (nodes_[i] && nodes_[i]->running()) return url(i);
    }
    return "";
  }

  ClientOptions options(const std::string& user, const std::string& device = "phone") {
    ClientOptions o = testUserOptions(user, device);
    o.server = liveUrl();
    o.resolve_server = [this] { return liveUrl(); };
    o.transport = client::Transport::Tcp;
    o.heartbeat = 1s;
    return o;
  }
  // A user whose client connects to node i's gateway (not the one login names).
  ClientOptions optionsOn(const std::string& user, std::size_t i) {
    auto o = options(user);
    o.gateway = tcpGateway(i);
    return o;
  }
  TestClient& online(ClientOptions o) {
    clients_.push_back(std::make_unique<TestClient>(io_, std::move(o)));
    TestClient& c = *clients_.back();
    auto started = c.start();
    EXPECT_TRUE(started) << (started ? "" : started.error().message);
    EXPECT_TRUE(waitFor([&] { return c.online(); }, 15s));
    return c;
  }
  std::string gatewayOf(TestClient& c) {
    return io_.run([&] { return c.raw().session() ? c.raw().session()->gateway_tcp : std::string(); });
  }
  std::string tokenOf(TestClient& c) {
    return io_.run([&] { return c.raw().session() ? c.raw().session()->token : std::string(); });
  }

  // A group of `members` (usernames) created by `owner`'s client; returns its id.
  std::uint64_t createGroup(TestClient& owner, const std::vector<std::string>& members) {
    HttpClient h(nodes_[0]->httpPort());
    h.setToken(tokenOf(owner));
    json::array names;
    for (const auto& m : members) names.emplace_back(m);
    auto r = h.post("/api/v1/groups", json::object{{"name", "g"}, {"members", names}});
    EXPECT_EQ(r.status, 201) << r.body;
    return std::stoull(std::string(r.json().at("group_id").as_string()));
  }

  // Every acknowledged send of every client reached every participant's device exactly once, in
  // conversation order, and each device's inbox seqs are gapless. `members` maps a conversation
  // to its participants (usernames); `clients` maps a username to its client.
  void expectEveryAckedMessageOnceInOrder(std::map<std::string, TestClient*> clients,
                                          std::map<std::string, std::set<std::string>> members) {
    // Every send is answered first (retried across failures with the same client_msg_id).
    for (auto& [name, c] : clients) {
      ASSERT_TRUE(waitFor([&] { return c->pending() == 0; }, 60s)) << name << " has sends unanswered";
    }
    // What each user must have: the msg ids of every acknowledged send in its conversations.
    std::map<std::string, std::set<std::uint64_t>> expected;
    std::size_t acked = 0;
    for (auto& [name, c] : clients) {
      for (const SendResult& r : c->rec().results()) {
        ASSERT_TRUE(r.receipt) << name << ": a send was refused: " << r.receipt.error().message;
        ++acked;
        for (const auto& member : members.at(r.receipt->conversation)) {
          expected[member].insert(r.receipt->msg_id);
        }
      }
    }
    ASSERT_GT(acked, 0u);
    for (auto& [name, ids] : expected) {
      TestClient* c = clients.at(name);
      const bool all = waitFor([&] {
        std::set<std::uint64_t> have;
        for (const Message& m : c->rec().messages()) have.insert(m.msg_id);
        return std::includes(have.begin(), have.end(), ids.begin(), ids.end());
      }, 60s);
      ASSERT_TRUE(all) << name << " is missing acknowledged messages";
      const auto messages = c->rec().messages();
      std::map<std::uint64_t, int> copies;
      std::map<std::string, std::uint64_t> last_conv_seq;
      for (std::size_t i = 0; i < messages.size(); ++i) {
        const Message& m = messages[i];
        EXPECT_EQ(++copies[m.msg_id], 1) << name << " got msg " << m.msg_id << " twice";
        if (i > 0) {
          EXPECT_EQ(m.seq, messages[i - 1].seq + 1) << name << ": inbox gap";
        }
        auto& last = last_conv_seq[m.conversation];
        EXPECT_GT(m.conv_seq, last) << name << ": " << m.conversation << " out of order";
        last = m.conv_seq;
      }
    }
  }

  TempDir dir_;
  Io io_;
  std::string root_;
  int route_lease_ms_ = kRouteLeaseMs;
  std::vector<std::unique_ptr<PigeondProcess>> nodes_;
  std::vector<std::unique_ptr<TestClient>> clients_;
  std::mutex mu_;
  std::size_t next_url_ = 0;
};

// Sends from every client, in turns, until stopped: to a group of all of them and 1:1 to the
// next one. Records which conversation each message belongs to.
class Traffic {
 public:
  Traffic(std::vector<TestClient*> clients, std::vector<std::string> names, std::uint64_t group)
      : clients_(std::move(clients)), names_(std::move(names)), group_(group) {
    thread_ = std::thread([this] { run(); });
  }
  ~Traffic() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::size_t sent() const { return sent_.load(); }

 private:
  void run() {
    for (std::size_t round = 0; !stop_; ++round) {
      for (std::size_t i = 0; i < clients_.size() && !stop_; ++i) {
        const std::string body = names_[i] + " #" + std::to_string(round);
        if (round % 2 == 0) {
          clients_[i]->send(Destination::toGroup(group_), body);
        } else {
          clients_[i]->send(Destination::toUser(names_[(i + 1) % names_.size()]), body);
        }
        ++sent_;
      }
      std::this_thread::sleep_for(15ms);  // the pace of the traffic, not a wait for an event
    }
  }
  std::vector<TestClient*> clients_;
  std::vector<std::string> names_;
  std::uint64_t group_;
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> sent_{0};
  std::thread thread_;
};

// The participants of every conversation Traffic uses.
std::map<std::string, std::set<std::string>> trafficConversations(
    const std::vector<std::string>& names, const std::vector<std::uint64_t>& ids, std::uint64_t group) {
  std::map<std::string, std::set<std::string>> members;
  members["g:" + std::to_string(group)] = std::set<std::string>(names.begin(), names.end());
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::size_t j = (i + 1) % names.size();
    const auto lo = std::min(ids[i], ids[j]), hi = std::max(ids[i], ids[j]);
    members["p:" + std::to_string(lo) + ":" + std::to_string(hi)] = {names[i], names[j]};
  }
  return members;
}

// n users, each logged in through the API (so placed by the balancer), in a group together.
struct Crowd {
  std::vector<std::string> names;
  std::vector<std::uint64_t> ids;
  std::vector<TestClient*> clients;
  std::map<std::string, TestClient*> by_name;
  std::uint64_t group = 0;
};

TEST_F(ClusterTest, UsersOnDifferentNodesChatOneToOneAndInAGroup) {
  startNodes(3);
  const std::string a = unique("alice"), b = unique("bob"), c = unique("carol");
  // Each on its own node: the gateway given explicitly.
  TestClient& alice = online(optionsOn(a, 0));
  TestClient& bob = online(optionsOn(b, 1));
  TestClient& carol = online(optionsOn(c, 2));
  const std::uint64_t group = createGroup(alice, {b, c});

  alice.send(Destination::toUser(b), "hi bob, from node 0");
  bob.send(Destination::toUser(a), "hi alice, from node 1");
  for (int i = 0; i < 5; ++i) {
    alice.send(Destination::toGroup(group), "a" + std::to_string(i));
    bob.send(Destination::toGroup(group), "b" + std::to_string(i));
    carol.send(Destination::toGroup(group), "c" + std::to_string(i));
  }
  const std::string p_ab = "p:" + std::to_string(std::min(alice.userId(), bob.userId())) + ":" +
                           std::to_string(std::max(alice.userId(), bob.userId()));
  expectEveryAckedMessageOnceInOrder({{a, &alice}, {b, &bob}, {c, &carol}},
                                     {{"g:" + std::to_string(group), {a, b, c}}, {p_ab, {a, b}}});
  // The group's 15 messages reached the node of each member, in one order for everyone.
  auto groupBodies = [&](TestClient& t) {
    std::vector<std::string> out;
    for (const auto& m : t.rec().messages()) {
      if (m.conversation == "g:" + std::to_string(group)) out.push_back(m.body);
    }
    return out;
  };
  EXPECT_EQ(groupBodies(alice).size(), 15u);
  EXPECT_EQ(groupBodies(alice), groupBodies(bob));
  EXPECT_EQ(groupBodies(alice), groupBodies(carol));
}

TEST_F(ClusterTest, ASecondLoginOfADeviceOnAnotherNodeKicksTheFirst) {
  startNodes(2);
  const std::string a = unique("alice"), b = unique("bob");
  TestClient& first = online(optionsOn(a, 0));
  TestClient& second = online(optionsOn(a, 1));  // the same device ("phone"), on the other node
  ASSERT_TRUE(waitFor([&] { return first.state() == State::Stopped; }, 10s));
  EXPECT_EQ(first.rec().kicked(), 1);
  EXPECT_EQ(first.rec().states().back().reason, Reason::Kicked);
  TestClient& bob = online(optionsOn(b, 0));
  bob.send(Destination::toUser(a), "are you there");
  ASSERT_TRUE(waitFor([&] { return second.rec().messageCount() == 1; }, 10s));
  EXPECT_EQ(second.state(), State::Online);
  EXPECT_EQ(first.rec().messageCount(), 0u);
}

TEST_F(ClusterTest, PresenceAndOnlineUsersSpanTheNodes) {
  startNodes(3);
  const std::string a = unique("alice"), b = unique("bob");
  auto on = [&](const std::string& name, std::size_t i) {
    auto o = optionsOn(name, i);
    o.presence = true;
    return o;
  };
  // Contacts share a group: bob exists (registered) before alice's group is made.
  ASSERT_EQ(HttpClient(node(1).httpPort())
                .post("/api/v1/users", json::object{{"username", b}, {"password", "password-" + b}})
                .status,
            201);
  TestClient& alice = online(on(a, 0));
  createGroup(alice, {b});
  TestClient& bob = online(on(b, 1));
  ASSERT_TRUE(waitFor([&] {
    for (const auto& p : alice.rec().presence()) {
      if (p.username == b && p.online) return true;
    }
    return false;
  }, 10s)) << "alice (node 0) did not hear bob (node 1) come online";

  // Any node lists both as online.
  HttpClient h(node(2).httpPort());
  h.setToken(tokenOf(alice));
  auto onlineNames = [&] {
    std::set<std::string> names;
    auto r = h.get("/api/v1/users/online");
    if (r.status != 200) return names;
    const json::value body = r.json();
    for (const auto& u : body.at("users").as_array()) {
      names.insert(std::string(u.at("username").as_string()));
    }
    return names;
  };
  ASSERT_TRUE(waitFor([&] {
    auto names = onlineNames();
    return names.contains(a) && names.contains(b);
  }, 10s));

  bob.stop();
  ASSERT_TRUE(waitFor([&] {
    auto events = alice.rec().presence();
    return !events.empty() && events.back().username == b && !events.back().online;
  }, 10s)) << "alice did not hear bob go offline";
  EXPECT_FALSE(onlineNames().contains(b));
}

// A node stopped cleanly (SIGTERM) releases its routes: its users are offline for the others at
// once, not when their leases (here a minute) end.
TEST_F(ClusterTest, ANodeThatStopsCleanlyTakesItsUsersOffline) {
  route_lease_ms_ = 60000;
  startNodes(2);
  const std::string a = unique("leaving");
  auto o = options(a);
  o.resolve_server = nullptr;  // stays with node 1: nowhere to come back to
  o.server = url(1);
  o.gateway = tcpGateway(1);
  TestClient& alice = online(std::move(o));
  HttpClient h(node(0).httpPort());
  h.setToken(tokenOf(alice));
  auto isOnline = [&] {
    auto r = h.get("/api/v1/users/online");
    const json::value body = r.json();
    for (const auto& u : body.at("users").as_array()) {
      if (u.at("username").as_string() == a) return true;
    }
    return false;
  };
  ASSERT_TRUE(waitFor(isOnline, 10s));
  EXPECT_EQ(node(1).terminate(), 0) << node(1).log();
  ASSERT_TRUE(waitFor([&] { return !isOnline(); }, 10s)) << "still online after its node stopped";
}

TEST_F(ClusterTest, LoginsAreSpreadOverLiveNodesAndNeverNameADeadOne) {
  startNodes(3, {"--balancer", "round-robin"});
  std::set<std::string> gateways;
  HttpClient h(node(0).httpPort());
  const std::string name = unique("spread");
  ASSERT_EQ(h.post("/api/v1/users", json::object{{"username", name}, {"password", "password123"}}).status, 201);
  auto login = [&](HttpClient& via) {
    auto r = via.post("/api/v1/sessions", json::object{{"username", name}, {"password", "password123"}, {"device", "d"}});
    EXPECT_EQ(r.status, 200) << r.body;
    return std::string(r.json().at("gateway").at("tcp").as_string());
  };
  for (int i = 0; i < 6; ++i) gateways.insert(login(h));
  EXPECT_EQ(gateways.size(), 3u) << "round-robin names every node";

  const std::string dead = tcpGateway(2);
  node(2).kill9();
  // At once — while ZooKeeper still lists it — no login names the dead node: each pick is
  // probed. Nor after ZooKeeper ended its session.
  ASSERT_EQ(clusterSize(0), 3) << "ZooKeeper still lists the dead node";
  for (int i = 0; i < 12; ++i) EXPECT_NE(login(h), dead);
  ASSERT_TRUE(waitFor([&] { return clusterSize(0) == 2; }, std::chrono::milliseconds(kZkSessionMs * 3)));
  std::set<std::string> after;
  for (int i = 0; i < 12; ++i) after.insert(login(h));
  EXPECT_EQ(after, (std::set<std::string>{tcpGateway(0), tcpGateway(1)}));
}

// A node dies (SIGKILL) while everyone is sending: its clients log in again through the API,
// land on a live node and resync; nothing acknowledged is lost, doubled or reordered.
TEST_F(ClusterTest, ANodeKilledDuringTrafficLosesNothing) {
  startNodes(3, {"--balancer", "round-robin"});
  Crowd crowd;
  for (int i = 0; i < 6; ++i) crowd.names.push_back(unique("u"));
  for (const auto& name : crowd.names) {
    auto o = options(name);
    o.resolve_server = nullptr;
    o.server = url(0);  // logins through node 0's API take turns over the three gateways
    TestClient& c = online(std::move(o));
    crowd.clients.push_back(&c);
    crowd.by_name[name] = &c;
    crowd.ids.push_back(c.userId());
  }
  std::set<std::string> used;
  for (auto* c : crowd.clients) used.insert(gatewayOf(*c));
  ASSERT_EQ(used.size(), 3u) << "the users are on all three nodes";
  crowd.group = createGroup(*crowd.clients[0],
                            std::vector<std::string>(crowd.names.begin() + 1, crowd.names.end()));

  Traffic traffic(crowd.clients, crowd.names, crowd.group);
  ASSERT_TRUE(waitFor([&] { return traffic.sent() >= 60; }, 10s));
  const std::string victim = tcpGateway(1);
  node(1).kill9();
  // The victim's clients move to live nodes (logging in through node 0 until ZooKeeper drops
  // the dead node, a login may still name it: the client then logs in again), and the traffic
  // goes on for a while after that.
  for (auto* c : crowd.clients) {
    ASSERT_TRUE(waitFor([&] { return c->online() && gatewayOf(*c) != victim; }, 30s));
  }
  const std::size_t moved = traffic.sent();
  ASSERT_TRUE(waitFor([&] { return traffic.sent() >= moved + 120; }, 20s));
  traffic.stop();
  expectEveryAckedMessageOnceInOrder(crowd.by_name,
                                     trafficConversations(crowd.names, crowd.ids, crowd.group));
}

// Redis restarts empty (no persistence): the nodes renew their routes, resync their sessions and
// the bus carries deliveries again. Nothing acknowledged is lost.
TEST_F(ClusterTest, ARedisRestartLosesNothing) {
  startNodes(3);
  Crowd crowd;
  for (int i = 0; i < 6; ++i) {
    const std::string name = unique("r");
    auto o = options(name);
    o.gateway = tcpGateway(std::size_t(i) % 3);
    TestClient& c = online(std::move(o));
    crowd.names.push_back(name);
    crowd.clients.push_back(&c);
    crowd.by_name[name] = &c;
    crowd.ids.push_back(c.userId());
  }
  crowd.group = createGroup(*crowd.clients[0],
                            std::vector<std::string>(crowd.names.begin() + 1, crowd.names.end()));
  Traffic traffic(crowd.clients, crowd.names, crowd.group);
  ASSERT_TRUE(waitFor([&] { return traffic.sent() >= 60; }, 10s));
  Engines::redis->stop();
  const std::size_t during = traffic.sent();
  ASSERT_TRUE(waitFor([&] { return traffic.sent() >= during + 40; }, 10s));
  Engines::redis->start();
  const std::size_t after = traffic.sent();
  ASSERT_TRUE(waitFor([&] { return traffic.sent() >= after + 60; }, 10s));
  traffic.stop();
  for (auto* c : crowd.clients) ASSERT_TRUE(waitFor([&] { return c->pending() == 0; }, 60s));
  expectEveryAckedMessageOnceInOrder(crowd.by_name,
                                     trafficConversations(crowd.names, crowd.ids, crowd.group));
  // The routes are back in the new Redis: every user is listed online again.
  HttpClient h(node(0).httpPort());
  h.setToken(tokenOf(*crowd.clients[0]));
  ASSERT_TRUE(waitFor([&] {
    auto r = h.get("/api/v1/users/online");
    if (r.status != 200) return false;
    std::set<std::string> names;
    const json::value body = r.json();
    for (const auto& u : body.at("users").as_array()) names.insert(std::string(u.at("username").as_string()));
    return std::all_of(crowd.names.begin(), crowd.names.end(), [&](auto& n) { return names.contains(n); });
  }, 15s));
}

// ZooKeeper restarts (on its data): the nodes keep or renew their sessions, stay registered,
// keep issuing ids, and logins still find every node.
TEST_F(ClusterTest, AZooKeeperRestartKeepsTheClusterWhole) {
  startNodes(3, {"--balancer", "round-robin"});
  const std::string a = unique("zk-a"), b = unique("zk-b");
  TestClient& alice = online(optionsOn(a, 0));
  TestClient& bob = online(optionsOn(b, 2));
  Engines::zookeeper->stop();
  alice.send(Destination::toUser(b), "while ZooKeeper is down");
  Engines::zookeeper->start();
  alice.send(Destination::toUser(b), "after");
  ASSERT_TRUE(waitFor([&] { return alice.pending() == 0; }, 30s));
  ASSERT_TRUE(waitFor([&] { return bob.rec().messageCount() == 2; }, 30s));
  EXPECT_EQ(bob.rec().bodies(), (std::vector<std::string>{"while ZooKeeper is down", "after"}));
  for (std::size_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(waitFor([&] { return clusterSize(i) == 3; }, 30s)) << "node " << i;
  }
  HttpClient h(node(1).httpPort());
  const std::string name = unique("zk-spread");
  ASSERT_EQ(h.post("/api/v1/users", json::object{{"username", name}, {"password", "password123"}}).status, 201);
  std::set<std::string> gateways;
  for (int i = 0; i < 6; ++i) {
    auto r = h.post("/api/v1/sessions", json::object{{"username", name}, {"password", "password123"}});
    ASSERT_EQ(r.status, 200) << r.body;
    gateways.insert(std::string(r.json().at("gateway").at("tcp").as_string()));
  }
  EXPECT_EQ(gateways.size(), 3u);
}

// A node that died comes back (a new process, a new node id): it rejoins the list, takes logins,
// and its users chat with everyone else.
TEST_F(ClusterTest, AKilledNodeRejoins) {
  startNodes(3);
  node(2).kill9();
  ASSERT_TRUE(waitFor([&] { return clusterSize(0) == 2; }, std::chrono::milliseconds(kZkSessionMs * 3)));
  startNode(2);
  for (std::size_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(waitFor([&] { return clusterSize(i) == 3; }, 15s)) << "node " << i;
  }
  const std::string a = unique("back-a"), b = unique("back-b");
  TestClient& alice = online(optionsOn(a, 2));  // on the node that came back
  TestClient& bob = online(optionsOn(b, 0));
  alice.send(Destination::toUser(b), "I am back");
  bob.send(Destination::toUser(a), "welcome");
  ASSERT_TRUE(waitFor([&] { return alice.rec().messageCount() == 2 && bob.rec().messageCount() == 2; }, 15s));
  EXPECT_EQ(alice.rec().bodies(), bob.rec().bodies());
}

}  // namespace
}  // namespace pigeon::test

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new pigeon::test::Engines);
  return RUN_ALL_TESTS();
}
