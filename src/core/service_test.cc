#include "core/service.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <condition_variable>
#include <mutex>

#include "core/conversation.h"
#include "store/rocksdb/rocks_store.h"

namespace pigeon::core {
namespace {

class RecordingSink : public DeliverySink {
 public:
  void onStored(const store::Message& m, const std::string& from,
                const std::vector<store::InboxRef>& refs) override {
    std::lock_guard lock(mu);
    calls.push_back({m, from, refs});
    cv.notify_all();
  }
  // The sink runs just after the sender's callback: wait for `n` calls (with a deadline).
  std::size_t waitForCalls(std::size_t n) {
    std::unique_lock lock(mu);
    cv.wait_for(lock, std::chrono::seconds(10), [&] { return calls.size() >= n; });
    return calls.size();
  }
  struct Call {
    store::Message message;
    std::string from;
    std::vector<store::InboxRef> refs;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Call> calls;
};

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "pigeon-core-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    open();
  }
  void TearDown() override {
    service_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void open() {
    auto store = store::openRocksStore(store::RocksOptions{dir_}, nullptr);
    ASSERT_TRUE(store) << store.error().message;
    store_ = std::move(*store);
    ServiceOptions options;
    options.password_cost = PasswordCost::minimum();
    options.token_ttl_ms = 60'000;
    options.max_body_bytes = 1024;
    options.max_search_scan = max_search_scan_;
    auto service = Service::create(*store_, clock_, metrics_, options);
    ASSERT_TRUE(service) << service.error().message;
    service_ = std::move(*service);
    service_->setDeliverySink(&sink_);
  }
  void reopen() {
    service_.reset();
    store_.reset();
    open();
  }

  Principal user(const std::string& name, const std::string& device = "phone") {
    auto u = service_->registerUser(name, "password123");
    if (!u && u.error().code != Errc::Conflict) ADD_FAILURE() << u.error().message;
    auto login = service_->login(name, "password123", device);
    EXPECT_TRUE(login) << (login ? "" : login.error().message);
    return login->principal;
  }

  Result<SendResult> send(const Principal& who, SendRequest req) {
    std::promise<Result<SendResult>> p;
    auto f = p.get_future();
    service_->send(who, std::move(req), [&](Result<SendResult> r) { p.set_value(std::move(r)); });
    EXPECT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    return f.get();
  }
  Result<SendResult> sendTo(const Principal& who, const std::string& to, const std::string& body,
                            const std::string& client_id = "") {
    SendRequest req;
    req.to_user = to;
    req.body = body;
    req.client_msg_id = client_id;
    return send(who, std::move(req));
  }
  Result<SendResult> sendGroup(const Principal& who, GroupId g, const std::string& body) {
    SendRequest req;
    req.to_group = g;
    req.body = body;
    return send(who, std::move(req));
  }

  std::string dir_;
  std::size_t max_search_scan_ = 5000;
  ManualClock clock_{Snowflake::kEpochMs + 1'000'000};
  MetricsRegistry metrics_;
  RecordingSink sink_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Service> service_;
};

TEST_F(ServiceTest, RegisterValidatesAndRefusesTakenNames) {
  auto alice = service_->registerUser("alice", "password123");
  ASSERT_TRUE(alice);
  EXPECT_EQ(alice->username, "alice");
  EXPECT_NE(alice->password_hash.find("$argon2id$"), std::string::npos);
  EXPECT_EQ(service_->registerUser("alice", "password456").error().code, Errc::Conflict);
  EXPECT_EQ(service_->registerUser("al", "password123").error().code, Errc::BadRequest);
  EXPECT_EQ(service_->registerUser("bob", "short").error().code, Errc::BadRequest);
}

TEST_F(ServiceTest, LoginDoesNotTellUnknownUserFromWrongPassword) {
  ASSERT_TRUE(service_->registerUser("alice", "password123"));
  auto wrong = service_->login("alice", "password124", "phone");
  auto unknown = service_->login("nobody", "password123", "phone");
  ASSERT_FALSE(wrong);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(wrong.error(), unknown.error());
  EXPECT_EQ(wrong.error().code, Errc::Unauthenticated);
  EXPECT_EQ(service_->login("alice", "password123", "bad device").error().code, Errc::BadRequest);
}

TEST_F(ServiceTest, RepeatedFailedLoginsAreLimitedPerUsername) {
  ASSERT_TRUE(service_->registerUser("alice", "password123"));
  for (int i = 0; i < 10; ++i) {  // the burst
    EXPECT_EQ(service_->login("alice", "wrong-pass", "d").error().code, Errc::Unauthenticated);
  }
  // Now even the right password waits: guessing is capped per account.
  EXPECT_EQ(service_->login("alice", "password123", "d").error().code, Errc::RateLimited);
  EXPECT_EQ(service_->login("alice", "wrong-pass", "d").error().code, Errc::RateLimited);
  ASSERT_TRUE(service_->registerUser("bob", "password123"));
  EXPECT_TRUE(service_->login("bob", "password123", "d"));  // other users are not affected
  clock_.advanceMs(12'000);  // 5 per minute: one try back
  EXPECT_TRUE(service_->login("alice", "password123", "d"));
  // Successful logins are not charged.
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(service_->login("bob", "password123", "d"));
}

TEST_F(ServiceTest, TokensAuthenticateUntilExpiryOrLogout) {
  ASSERT_TRUE(service_->registerUser("alice", "password123"));
  auto login = service_->login("alice", "password123", "laptop");
  ASSERT_TRUE(login);
  auto who = service_->authenticate(login->token);
  ASSERT_TRUE(who);
  EXPECT_EQ(who->username, "alice");
  EXPECT_EQ(who->device, "laptop");
  EXPECT_EQ(service_->authenticate("forged-token").error().code, Errc::Unauthenticated);
  EXPECT_EQ(service_->authenticate("").error().code, Errc::Unauthenticated);

  clock_.advanceMs(59'999);
  EXPECT_TRUE(service_->authenticate(login->token));
  clock_.advanceMs(1);
  auto expired = service_->authenticate(login->token);
  ASSERT_FALSE(expired);
  EXPECT_EQ(expired.error().code, Errc::Unauthenticated);

  auto second = service_->login("alice", "password123", "laptop");
  ASSERT_TRUE(second);
  ASSERT_TRUE(service_->logout(second->token));
  EXPECT_EQ(service_->authenticate(second->token).error().code, Errc::Unauthenticated);

  // A token that expires unused is purged (the others are gone already: deleted when an
  // expired one was presented, and at logout).
  auto third = service_->login("alice", "password123", "laptop");
  ASSERT_TRUE(third);
  EXPECT_EQ(*service_->purgeExpiredTokens(), 0u);
  clock_.advanceMs(60'000);
  EXPECT_EQ(*service_->purgeExpiredTokens(), 1u);
  EXPECT_EQ(service_->authenticate(third->token).error().code, Errc::Unauthenticated);
}

TEST_F(ServiceTest, DirectMessageReachesBothInboxesOnce) {
  auto alice = user("alice");
  auto bob = user("bob");
  auto sent = sendTo(alice, "bob", "hello bob", "c1");
  ASSERT_TRUE(sent) << sent.error().message;
  EXPECT_EQ(sent->conv_seq, 1u);
  EXPECT_EQ(sent->seq, 1u);
  EXPECT_FALSE(sent->duplicate);
  EXPECT_EQ(sent->conversation, directConversation(alice.user, bob.user));

  auto bob_sync = service_->sync(bob, Seq{0}, 10);
  ASSERT_TRUE(bob_sync);
  ASSERT_EQ(bob_sync->messages.size(), 1u);
  EXPECT_EQ(bob_sync->messages[0].message.body, "hello bob");
  EXPECT_EQ(bob_sync->messages[0].from, "alice");
  EXPECT_EQ(bob_sync->messages[0].message.id, sent->msg_id);
  auto alice_sync = service_->sync(alice, Seq{0}, 10);
  ASSERT_TRUE(alice_sync);
  ASSERT_EQ(alice_sync->messages.size(), 1u);  // the sender's other devices see it

  ASSERT_EQ(sink_.waitForCalls(1), 1u);
  EXPECT_EQ(sink_.calls[0].from, "alice");
  EXPECT_EQ(sink_.calls[0].refs.size(), 2u);
}

TEST_F(ServiceTest, RepeatedClientMsgIdGivesTheSameResultAndNoSecondMessage) {
  auto alice = user("alice");
  auto bob = user("bob");
  auto first = sendTo(alice, "bob", "once", "same-id");
  auto again = sendTo(alice, "bob", "once", "same-id");
  ASSERT_TRUE(first);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->msg_id, first->msg_id);
  EXPECT_EQ(again->seq, first->seq);
  EXPECT_EQ(again->conv_seq, first->conv_seq);
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(service_->sync(bob, Seq{0}, 10)->messages.size(), 1u);
  // A duplicate is not delivered again: after a later message's delivery, still one call for
  // the first.
  ASSERT_TRUE(sendTo(bob, "alice", "marker"));
  ASSERT_EQ(sink_.waitForCalls(2), 2u);
  EXPECT_EQ(sink_.calls[1].message.body, "marker");
  // Another sender may use the same client id.
  auto from_bob = sendTo(bob, "alice", "mine", "same-id");
  ASSERT_TRUE(from_bob);
  EXPECT_FALSE(from_bob->duplicate);
}

TEST_F(ServiceTest, BadSendsStoreNothing) {
  auto alice = user("alice");
  auto bob = user("bob");
  auto carol = user("carol");
  EXPECT_EQ(sendTo(alice, "nobody", "x").error().code, Errc::NotFound);
  EXPECT_EQ(sendTo(alice, "bob", std::string(1025, 'x')).error().code, Errc::TooLarge);
  SendRequest both;
  both.to_user = "bob";
  both.to_group = kLobbyId;
  EXPECT_EQ(send(alice, both).error().code, Errc::BadRequest);
  SendRequest neither;
  EXPECT_EQ(send(alice, neither).error().code, Errc::BadRequest);
  SendRequest bad_type;
  bad_type.to_user = "bob";
  bad_type.content_type = "";
  EXPECT_EQ(send(alice, bad_type).error().code, Errc::BadRequest);

  auto group = service_->createGroup(alice, "pair", {"bob"});
  ASSERT_TRUE(group);
  EXPECT_EQ(sendGroup(carol, group->group.id, "let me in").error().code, Errc::Forbidden);
  EXPECT_EQ(sendGroup(carol, 999, "where").error().code, Errc::NotFound);

  for (const auto& p : {alice, bob, carol}) {
    EXPECT_TRUE(service_->sync(p, Seq{0}, 10)->messages.empty()) << p.username;
  }
  EXPECT_TRUE(sink_.calls.empty());
}

TEST_F(ServiceTest, GroupsMembershipAndOwnership) {
  auto alice = user("alice");
  auto bob = user("bob");
  auto carol = user("carol");
  auto created = service_->createGroup(alice, "friends", {"bob"});
  ASSERT_TRUE(created) << created.error().message;
  const GroupId g = created->group.id;
  EXPECT_EQ(created->member_count, 2u);
  EXPECT_EQ(created->owner_name, "alice");

  EXPECT_EQ(service_->createGroup(alice, "x", {"nobody"}).error().code, Errc::NotFound);
  EXPECT_EQ(service_->addMember(bob, g, "carol").error().code, Errc::Forbidden);
  EXPECT_EQ(service_->getGroup(carol, g).error().code, Errc::Forbidden);
  ASSERT_TRUE(service_->addMember(alice, g, "carol"));
  EXPECT_EQ(service_->addMember(alice, g, "carol").error().code, Errc::Conflict);
  auto view = service_->getGroup(carol, g);
  ASSERT_TRUE(view);
  EXPECT_EQ(view->members.size(), 3u);

  EXPECT_EQ(service_->removeMember(bob, g, "carol").error().code, Errc::Forbidden);
  ASSERT_TRUE(service_->leaveGroup(carol, g));
  EXPECT_EQ(service_->getGroup(carol, g).error().code, Errc::Forbidden);
  EXPECT_EQ(service_->leaveGroup(alice, g).error().code, Errc::Conflict);
  ASSERT_TRUE(service_->removeMember(alice, g, "bob"));
  EXPECT_EQ(service_->removeMember(alice, g, "bob").error().code, Errc::NotFound);
  EXPECT_EQ(service_->getGroup(alice, 12345).error().code, Errc::NotFound);

  auto mine = service_->listGroups(alice);
  ASSERT_TRUE(mine);
  ASSERT_EQ(mine->size(), 2u);  // the lobby and "friends"
  EXPECT_EQ((*mine)[0].group.name, "lobby");
  EXPECT_EQ((*mine)[1].group.name, "friends");
  EXPECT_EQ(service_->listGroups(bob)->size(), 1u);  // only the lobby now
}

TEST_F(ServiceTest, EveryUserIsInTheLobby) {
  auto alice = user("alice");
  auto bob = user("bob");
  auto carol = user("carol");
  auto sent = sendGroup(bob, kLobbyId, "hi all");
  ASSERT_TRUE(sent) << sent.error().message;
  EXPECT_EQ(sent->conversation, "g:1");
  for (const auto& p : {alice, bob, carol}) {
    auto s = service_->sync(p, Seq{0}, 10);
    ASSERT_TRUE(s);
    ASSERT_EQ(s->messages.size(), 1u) << p.username;
    EXPECT_EQ(s->messages[0].message.body, "hi all");
  }
  EXPECT_EQ(service_->listGroups(alice)->front().member_count, 3u);
  EXPECT_EQ(service_->getGroup(carol, kLobbyId)->member_count, 3u);
  EXPECT_EQ(service_->leaveGroup(alice, kLobbyId).error().code, Errc::BadRequest);
  EXPECT_EQ(service_->addMember(alice, kLobbyId, "bob").error().code, Errc::BadRequest);
}

TEST_F(ServiceTest, SyncFollowsTheDeviceCursorAndAckIsCumulativePerDevice) {
  auto alice = user("alice");
  auto bob_phone = user("bob", "phone");
  auto bob_laptop = user("bob", "laptop");
  for (int i = 1; i <= 5; ++i) ASSERT_TRUE(sendTo(alice, "bob", "m" + std::to_string(i)));

  auto page = service_->sync(bob_phone, std::nullopt, 2);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->messages.size(), 2u);
  EXPECT_TRUE(page->has_more);
  EXPECT_EQ(page->last_seq, 2u);
  ASSERT_TRUE(service_->ack(bob_phone, 2));
  ASSERT_TRUE(service_->ack(bob_phone, 1));  // an older ack does not move the cursor back

  auto rest = service_->sync(bob_phone, std::nullopt, 10);
  ASSERT_TRUE(rest);
  ASSERT_EQ(rest->messages.size(), 3u);
  EXPECT_EQ(rest->messages.front().seq, 3u);
  EXPECT_EQ(rest->messages.back().message.body, "m5");
  EXPECT_FALSE(rest->has_more);

  EXPECT_EQ(service_->sync(bob_laptop, std::nullopt, 10)->messages.size(), 5u);  // own cursor
  EXPECT_EQ(service_->ack(bob_phone, 6).error().code, Errc::BadRequest);
  EXPECT_TRUE(service_->sync(bob_phone, Seq{5}, 10)->messages.empty());
}

TEST_F(ServiceTest, HistoryPagesBackwardsAndOnlyForParticipants) {
  auto alice = user("alice");
  auto bob = user("bob");
  auto eve = user("eve");
  for (int i = 1; i <= 7; ++i) ASSERT_TRUE(sendTo(alice, "bob", "m" + std::to_string(i)));
  const std::string conv = directConversation(alice.user, bob.user);
  auto newest = service_->history(bob, conv, 0, 3);
  ASSERT_TRUE(newest);
  ASSERT_EQ(newest->size(), 3u);
  EXPECT_EQ((*newest)[0].message.conv_seq, 5u);
  EXPECT_EQ((*newest)[2].message.conv_seq, 7u);
  auto older = service_->history(bob, conv, 5, 10);
  ASSERT_TRUE(older);
  ASSERT_EQ(older->size(), 4u);
  EXPECT_EQ((*older)[0].message.body, "m1");
  EXPECT_EQ(service_->history(eve, conv, 0, 10).error().code, Errc::Forbidden);
  EXPECT_EQ(service_->history(eve, "nonsense", 0, 10).error().code, Errc::BadRequest);
  EXPECT_EQ(service_->history(eve, "g:777", 0, 10).error().code, Errc::NotFound);
}

TEST_F(ServiceTest, SeqsAndIdsContinueAfterReopen) {
  auto alice = user("alice");
  auto bob = user("bob");
  auto first = sendTo(alice, "bob", "before");
  ASSERT_TRUE(first);
  reopen();
  auto second = sendTo(alice, "bob", "after");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->conv_seq, first->conv_seq + 1);
  EXPECT_EQ(second->seq, first->seq + 1);
  EXPECT_GT(second->msg_id, first->msg_id);
  // Tokens survive a restart.
  EXPECT_TRUE(service_->authenticate(service_->login("bob", "password123", "phone")->token));
}

TEST_F(ServiceTest, FindUsersByPrefix) {
  user("alice");
  user("alina");
  user("bob");
  auto found = service_->findUsers("ali", 10);
  ASSERT_TRUE(found);
  ASSERT_EQ(found->size(), 2u);
  EXPECT_EQ((*found)[0].username, "alice");
  EXPECT_EQ(service_->findUsers("", 10)->size(), 3u);
  EXPECT_EQ(service_->findUsers("a b", 10).error().code, Errc::BadRequest);
}

TEST_F(ServiceTest, SearchFindsTheCallersMessagesNewestFirst) {
  auto alice = user("alice");
  auto bob = user("bob");
  auto carol = user("carol");
  ASSERT_TRUE(sendTo(bob, "alice", "Lunch at noon?"));
  ASSERT_TRUE(sendTo(alice, "bob", "sure, LUNCH it is"));
  ASSERT_TRUE(sendGroup(carol, kLobbyId, "lunch for everyone"));
  ASSERT_TRUE(sendTo(bob, "carol", "lunch without alice"));  // not in alice's inbox
  ASSERT_TRUE(sendTo(bob, "alice", "café crème"));
  SendRequest binary;
  binary.to_user = "alice";
  binary.body = "lunch";
  binary.content_type = "application/octet-stream";  // not text: not searched
  ASSERT_TRUE(send(bob, std::move(binary)));

  auto found = service_->search(alice, "lUnCh", 0, 10);
  ASSERT_TRUE(found) << found.error().message;
  ASSERT_EQ(found->messages.size(), 3u);
  EXPECT_EQ(found->messages[0].message.body, "lunch for everyone");
  EXPECT_EQ(found->messages[0].message.conversation, "g:1");
  EXPECT_EQ(found->messages[0].from, "carol");
  EXPECT_EQ(found->messages[1].message.body, "sure, LUNCH it is");
  EXPECT_EQ(found->messages[2].message.body, "Lunch at noon?");
  EXPECT_GT(found->messages[0].seq, found->messages[1].seq);
  EXPECT_TRUE(found->complete);
  EXPECT_EQ(found->next_before, 0u);
  EXPECT_EQ(found->scanned, 5u);

  // UTF-8: whole characters, exact bytes outside ASCII (É is not folded to é).
  EXPECT_EQ(service_->search(alice, "CAFÉ", 0, 10)->messages.size(), 0u);
  EXPECT_EQ(service_->search(alice, "CAFé CRèME", 0, 10)->messages.size(), 1u);

  // The limit of matches stops the scan; next_before goes on from there.
  auto first = service_->search(alice, "lunch", 0, 1);
  ASSERT_TRUE(first);
  ASSERT_EQ(first->messages.size(), 1u);
  EXPECT_FALSE(first->complete);
  EXPECT_EQ(first->next_before, first->messages[0].seq);
  auto rest = service_->search(alice, "lunch", first->next_before, 10);
  ASSERT_TRUE(rest);
  ASSERT_EQ(rest->messages.size(), 2u);
  EXPECT_EQ(rest->messages[0].message.body, "sure, LUNCH it is");
  EXPECT_TRUE(rest->complete);

  EXPECT_EQ(service_->search(alice, "", 0, 10).error().code, Errc::BadRequest);
  EXPECT_EQ(service_->search(alice, std::string(kMaxSearchQuery + 1, 'x'), 0, 10).error().code,
            Errc::BadRequest);
  EXPECT_EQ(service_->search(alice, "\xff", 0, 10).error().code, Errc::BadRequest);
  EXPECT_TRUE(service_->search(user("dave"), "lunch", 0, 10)->complete);  // empty inbox
}

TEST_F(ServiceTest, SearchExaminesAtMostTheConfiguredNumberOfItems) {
  max_search_scan_ = 300;  // more than one store read (256), less than the inbox
  reopen();
  auto alice = user("alice");
  auto bob = user("bob");
  ASSERT_TRUE(sendTo(bob, "alice", "needle"));  // seq 1: outside the scanned window
  for (int i = 0; i < 400; ++i) ASSERT_TRUE(sendTo(bob, "alice", "hay " + std::to_string(i)));
  ASSERT_TRUE(sendTo(bob, "alice", "another needle"));  // seq 402

  auto found = service_->search(alice, "needle", 0, 10);
  ASSERT_TRUE(found);
  ASSERT_EQ(found->messages.size(), 1u);
  EXPECT_EQ(found->messages[0].message.body, "another needle");
  EXPECT_EQ(found->scanned, 300u);
  EXPECT_FALSE(found->complete);
  EXPECT_EQ(found->next_before, 103u);  // seqs 402 … 103 were examined

  auto older = service_->search(alice, "needle", found->next_before, 10);
  ASSERT_TRUE(older);
  EXPECT_EQ(older->scanned, 102u);
  EXPECT_TRUE(older->complete);
  ASSERT_EQ(older->messages.size(), 1u);
  EXPECT_EQ(older->messages[0].message.body, "needle");
  EXPECT_EQ(older->messages[0].seq, 1u);
}

}  // namespace
}  // namespace pigeon::core

namespace pigeon::core {
namespace {

TEST_F(ServiceTest, WithoutAWorkerIdLeaseNothingGetsAnId) {
  auto alice = user("lease-alice");
  user("lease-bob");
  auto before = sendTo(alice, "lease-bob", "one");
  ASSERT_TRUE(before);
  service_->setWorkerId(std::nullopt);  // the node may have lost its ZooKeeper lease
  auto refused = sendTo(alice, "lease-bob", "two");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::Unavailable);
  auto group = service_->createGroup(alice, "g", {"lease-bob"});
  ASSERT_FALSE(group);
  EXPECT_EQ(group.error().code, Errc::Unavailable);
  service_->setWorkerId(77);  // a new lease, maybe another id
  auto after = sendTo(alice, "lease-bob", "three");
  ASSERT_TRUE(after) << after.error().message;
  EXPECT_EQ(Snowflake::workerOf(after->msg_id), 77u);
  EXPECT_GT(after->msg_id, before->msg_id);
  EXPECT_EQ(after->conv_seq, before->conv_seq + 1);  // nothing was stored meanwhile
}

}  // namespace
}  // namespace pigeon::core
