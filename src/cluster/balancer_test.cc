#include "cluster/balancer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <thread>

namespace pigeon::cluster {
namespace {

constexpr std::uint64_t kUsers = 100'000;

NodeInfo node(std::string id, std::uint64_t connections = 0) {
  NodeInfo n;
  n.id = std::move(id);
  n.roles = {"gateway"};
  n.ws = "ws://" + n.id + ":8080/ws";
  n.connections = connections;
  return n;
}

std::vector<NodeInfo> cluster(int count, const std::string& prefix = "gw") {
  std::vector<NodeInfo> nodes;
  for (int i = 0; i < count; ++i) nodes.push_back(node(prefix + "-" + std::to_string(i)));
  return nodes;
}

// user → node id, for users 1..kUsers.
std::vector<NodeId> assign(Balancer& balancer, const std::vector<NodeInfo>& nodes) {
  std::vector<NodeId> out;
  out.reserve(kUsers);
  for (std::uint64_t user = 1; user <= kUsers; ++user)
    out.push_back(balancer.pick(user, nodes)->id);
  return out;
}

TEST(BalanceStrategy, ParsesEveryNameAndRoundTrips) {
  for (auto s : {BalanceStrategy::RoundRobin, BalanceStrategy::Random,
                 BalanceStrategy::ConsistentHash, BalanceStrategy::LeastConnections}) {
    auto parsed = parseBalanceStrategy(toString(s));
    ASSERT_TRUE(parsed) << toString(s);
    EXPECT_EQ(*parsed, s);
  }
  EXPECT_EQ(toString(BalanceStrategy::ConsistentHash), "consistent-hash");
  EXPECT_EQ(*parseBalanceStrategy("least-connections"), BalanceStrategy::LeastConnections);
}

TEST(BalanceStrategy, RejectsUnknownNames) {
  for (std::string_view name : {"", "roundrobin", "Round-Robin", "consistent-hash ", "hash"}) {
    auto parsed = parseBalanceStrategy(name);
    ASSERT_FALSE(parsed) << name;
    EXPECT_EQ(parsed.error().code, Errc::BadRequest);
  }
}

TEST(NodesWithRole, KeepsOrderAndFilters) {
  auto a = node("a"), b = node("b"), c = node("c");
  b.roles = {"api"};
  c.roles = {"api", "gateway"};
  const auto gateways = nodesWithRole({c, b, a}, "gateway");
  ASSERT_EQ(gateways.size(), 2u);
  EXPECT_EQ(gateways[0].id, "c");
  EXPECT_EQ(gateways[1].id, "a");
  EXPECT_TRUE(nodesWithRole({a, c}, "store").empty());
}

TEST(Balancer, EmptyListGivesNothingWithEveryStrategy) {
  for (auto s : {BalanceStrategy::RoundRobin, BalanceStrategy::Random,
                 BalanceStrategy::ConsistentHash, BalanceStrategy::LeastConnections}) {
    Balancer balancer(s);
    EXPECT_FALSE(balancer.pick(42, {})) << toString(s);
  }
}

// A node discovery no longer lists (a dead one) is never returned: every pick is a member of the
// list given, also after the list shrank or changed completely.
TEST(Balancer, PicksOnlyMembersOfTheGivenList) {
  for (auto s : {BalanceStrategy::RoundRobin, BalanceStrategy::Random,
                 BalanceStrategy::ConsistentHash, BalanceStrategy::LeastConnections}) {
    Balancer balancer(s);
    const std::vector<std::vector<NodeInfo>> lists = {
        cluster(5), {node("gw-1"), node("gw-3")}, {node("gw-3")}, cluster(3, "other"), cluster(5)};
    for (const auto& list : lists) {
      std::set<NodeId> members;
      for (const auto& n : list) members.insert(n.id);
      for (std::uint64_t user = 1; user <= 2000; ++user) {
        auto picked = balancer.pick(user, list);
        ASSERT_TRUE(picked);
        ASSERT_TRUE(members.contains(picked->id)) << toString(s) << " picked " << picked->id;
      }
    }
  }
}

TEST(Balancer, ConsistentHashSpreadsUsersEvenly) {
  // Several clusters of 4, so that the bound holds for node ids in general, not one lucky set.
  for (const std::string prefix : {"gw", "node", "a1b2c3d4e5f60718", "10.0.0"}) {
    Balancer balancer(BalanceStrategy::ConsistentHash);
    const auto nodes = cluster(4, prefix);
    std::map<NodeId, std::uint64_t> load;
    for (const auto& id : assign(balancer, nodes)) ++load[id];
    ASSERT_EQ(load.size(), 4u) << prefix;
    const double fair = double(kUsers) / 4;
    for (const auto& [id, users] : load) {
      EXPECT_LE(double(users), 1.3 * fair) << id << " has " << users << " of " << kUsers;
    }
  }
}

TEST(Balancer, ConsistentHashIsStableForAListInAnyOrder) {
  Balancer a(BalanceStrategy::ConsistentHash), b(BalanceStrategy::ConsistentHash);
  auto nodes = cluster(4);
  auto reversed = std::vector<NodeInfo>(nodes.rbegin(), nodes.rend());
  for (std::uint64_t user = 1; user <= 5000; ++user) {
    ASSERT_EQ(a.pick(user, nodes)->id, b.pick(user, reversed)->id);  // two api nodes agree
    ASSERT_EQ(a.pick(user, nodes)->id, a.pick(user, reversed)->id);
  }
}

TEST(Balancer, ConsistentHashMovesAboutOneNthWhenANodeJoins) {
  Balancer balancer(BalanceStrategy::ConsistentHash);
  const auto four = cluster(4);
  const auto before = assign(balancer, four);
  auto five = four;
  five.push_back(node("gw-4"));
  const auto after = assign(balancer, five);
  std::uint64_t moved = 0;
  for (std::size_t i = 0; i < before.size(); ++i) {
    if (before[i] != after[i]) {
      ++moved;
      ASSERT_EQ(after[i], "gw-4") << "a user moved between two old nodes";
    }
  }
  EXPECT_LT(double(moved), 0.35 * double(kUsers));
  EXPECT_GT(moved, 0u);
}

TEST(Balancer, ConsistentHashKeepsUsersOfSurvivingNodesWhenOneLeaves) {
  Balancer balancer(BalanceStrategy::ConsistentHash);
  const auto five = cluster(5);
  const auto before = assign(balancer, five);
  auto four = five;
  four.erase(four.begin() + 2);  // gw-2 dies
  const auto after = assign(balancer, four);
  for (std::size_t i = 0; i < before.size(); ++i) {
    if (before[i] != "gw-2") {
      ASSERT_EQ(before[i], after[i]) << "user " << i + 1 << " moved off a surviving node";
    } else {
      ASSERT_NE(after[i], "gw-2");
    }
  }
}

TEST(Balancer, LeastConnectionsPicksTheLeastLoadedThenSmallestId) {
  Balancer balancer(BalanceStrategy::LeastConnections);
  EXPECT_EQ(balancer.pick(1, {node("a", 10), node("b", 3), node("c", 7)})->id, "b");
  EXPECT_EQ(balancer.pick(2, {node("c", 3), node("a", 9), node("b", 3)})->id, "b");
  EXPECT_EQ(balancer.pick(3, {node("z", 0)})->id, "z");
}

TEST(Balancer, RoundRobinCycles) {
  Balancer balancer(BalanceStrategy::RoundRobin);
  const auto nodes = cluster(3);
  std::vector<NodeId> picked;
  for (int i = 0; i < 9; ++i) picked.push_back(balancer.pick(7, nodes)->id);
  // From wherever it starts, it takes the nodes in turn.
  auto index = [&](const NodeId& id) {
    return std::size_t(std::find_if(nodes.begin(), nodes.end(), [&](auto& n) { return n.id == id; }) -
                       nodes.begin());
  };
  for (int i = 1; i < 9; ++i) {
    EXPECT_EQ(index(picked[std::size_t(i)]), (index(picked[std::size_t(i - 1)]) + 1) % 3);
  }
}

// Balancers (one per api node) do not all start with the same node.
TEST(Balancer, RoundRobinStartsAtARandomNode) {
  const auto nodes = cluster(3);
  std::set<NodeId> first;
  for (int i = 0; i < 64 && first.size() < 3; ++i) {
    first.insert(Balancer(BalanceStrategy::RoundRobin).pick(7, nodes)->id);
  }
  EXPECT_EQ(first.size(), 3u);
}

TEST(Balancer, RandomReachesEveryNodeRoughlyEvenly) {
  Balancer balancer(BalanceStrategy::Random);
  const auto nodes = cluster(4);
  std::map<NodeId, int> load;
  for (int i = 0; i < 40'000; ++i) ++load[balancer.pick(7, nodes)->id];
  ASSERT_EQ(load.size(), 4u);
  for (const auto& [id, n] : load) EXPECT_NEAR(n, 10'000, 1'000) << id;
}

TEST(Balancer, IsSafeFromManyThreadsWhileTheListChanges) {
  Balancer balancer(BalanceStrategy::ConsistentHash);
  const auto four = cluster(4), five = cluster(5);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (std::uint64_t user = 1; user <= 5000; ++user) {
        const auto& list = (user + std::uint64_t(t)) % 2 ? four : five;
        auto picked = balancer.pick(user, list);
        ASSERT_TRUE(picked);
        EXPECT_TRUE(list.size() == 5 || picked->id != "gw-4");
      }
    });
  }
  for (auto& t : threads) t.join();
}

}  // namespace
}  // namespace pigeon::cluster
