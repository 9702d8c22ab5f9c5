#include "gateway/hub.h"

#include <gtest/gtest.h>

#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "store/rocksdb/rocks_store.h"

namespace pigeon::gateway {
namespace {

struct FakeEndpoint : Endpoint {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<std::string, store::Seq>> delivered;  // (body, seq)
  std::vector<PresenceEvent> events;
  int kicks = 0;
  void deliver(std::shared_ptr<const OutboundMessage> m, store::Seq seq) override {
    std::lock_guard lock(mu);
    delivered.emplace_back(m->message.body, seq);
  }
  void presence(PresenceEvent e) override {
    std::lock_guard lock(mu);
    events.push_back(e);
    cv.notify_all();
  }
  void kick() override { ++kicks; }
  bool waitEvents(std::size_t n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(10), [&] { return events.size() >= n; });
  }
};

class HubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "pigeon-hub-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    store_ = std::move(*store::openRocksStore(store::RocksOptions{dir_}, nullptr));
    core::ServiceOptions options;
    options.password_cost = core::PasswordCost::minimum();
    service_ = std::move(*core::Service::create(*store_, clock_, metrics_, options));
    hub_ = std::make_unique<Hub>(*service_, pool_.get_executor(), metrics_);
  }
  void TearDown() override {
    pool_.join();
    hub_.reset();
    service_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  store::UserId user(const std::string& name) { return service_->registerUser(name, "password123")->id; }

  std::string dir_;
  SystemClock& clock_ = SystemClock::instance();
  MetricsRegistry metrics_;
  boost::asio::thread_pool pool_{2};
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<core::Service> service_;
  std::unique_ptr<Hub> hub_;
};

TEST_F(HubTest, DeliversToEveryDeviceOfEveryRecipientWithItsOwnSeq) {
  auto phone = std::make_shared<FakeEndpoint>(), laptop = std::make_shared<FakeEndpoint>(),
       other = std::make_shared<FakeEndpoint>();
  hub_->attach(1, "alice", "phone", phone);
  hub_->attach(1, "alice", "laptop", laptop);
  hub_->attach(2, "bob", "phone", other);
  store::Message m;
  m.body = "hi";
  hub_->onStored(m, "alice", {{1, 7}, {2, 3}, {9, 1}});
  ASSERT_EQ(phone->delivered.size(), 1u);
  EXPECT_EQ(phone->delivered[0].second, 7u);
  ASSERT_EQ(laptop->delivered.size(), 1u);
  ASSERT_EQ(other->delivered.size(), 1u);
  EXPECT_EQ(other->delivered[0].second, 3u);
  EXPECT_EQ(hub_->connections(), 3u);
}

TEST_F(HubTest, ANewConnectionForTheSameDeviceReplacesTheOld) {
  auto first = std::make_shared<FakeEndpoint>(), second = std::make_shared<FakeEndpoint>();
  EXPECT_EQ(hub_->attach(1, "alice", "phone", first), nullptr);
  EXPECT_EQ(hub_->attach(1, "alice", "phone", second), first);
  hub_->detach(1, "phone", first.get());  // the old one closing must not remove the new one
  store::Message m;
  hub_->onStored(m, "x", {{1, 1}});
  EXPECT_TRUE(first->delivered.empty());
  EXPECT_EQ(second->delivered.size(), 1u);
  EXPECT_EQ(hub_->onlineUsers().size(), 1u);
  hub_->detach(1, "phone", second.get());
  EXPECT_TRUE(hub_->onlineUsers().empty());
}

TEST_F(HubTest, PresenceGoesToContactsOnly) {
  const auto alice = user("alice"), bob = user("bob"), carol = user("carol");
  core::Principal a{alice, "alice", "d", 0};
  ASSERT_TRUE(service_->createGroup(a, "pair", {"bob"}));
  auto bob_watch = std::make_shared<FakeEndpoint>(), carol_watch = std::make_shared<FakeEndpoint>();
  hub_->attach(bob, "bob", "d", bob_watch);
  hub_->attach(carol, "carol", "d", carol_watch);
  hub_->subscribePresence(bob, bob_watch);
  hub_->subscribePresence(carol, carol_watch);
  auto alice_ep = std::make_shared<FakeEndpoint>();
  hub_->attach(alice, "alice", "d", alice_ep);
  ASSERT_TRUE(bob_watch->waitEvents(1));
  EXPECT_EQ(bob_watch->events[0].username, "alice");
  EXPECT_TRUE(bob_watch->events[0].online);
  hub_->detach(alice, "d", alice_ep.get());
  pool_.join();  // every announcement has run
  // The snapshot and the announcement may both report alice online; the last word is offline.
  ASSERT_GE(bob_watch->events.size(), 2u);
  EXPECT_FALSE(bob_watch->events.back().online);
  EXPECT_EQ(bob_watch->events.back().username, "alice");
  EXPECT_TRUE(carol_watch->events.empty());  // carol shares no group with alice
}

TEST_F(HubTest, PresenceSnapshotListsContactsOnlineNow) {
  const auto alice = user("alice"), bob = user("bob");
  core::Principal a{alice, "alice", "d", 0};
  ASSERT_TRUE(service_->createGroup(a, "pair", {"bob"}));
  hub_->attach(alice, "alice", "d", std::make_shared<FakeEndpoint>());
  auto bob_watch = std::make_shared<FakeEndpoint>();
  hub_->subscribePresence(bob, bob_watch);
  ASSERT_TRUE(bob_watch->waitEvents(1));
  EXPECT_EQ(bob_watch->events[0].user, alice);
}

}  // namespace
}  // namespace pigeon::gateway
