#include "store/store_conformance.h"

#include <fmt/format.h>

#include <future>
#include <map>
#include <set>
#include <thread>

namespace pigeon::store::conformance {

std::string engineName(const ::testing::TestParamInfo<StoreEngine>& info) {
  return info.param.name;
}

Result<Appended> appendAndWait(Store& store, NewMessage m) {
  auto promise = std::make_shared<std::promise<Result<Appended>>>();
  auto future = promise->get_future();
  store.append(std::move(m), [promise](Result<Appended> r) { promise->set_value(std::move(r)); });
  if (future.wait_for(kDeadline) != std::future_status::ready) {
    return fail(Errc::Internal, "append callback never ran");
  }
  return future.get();
}

NewMessage MessageMaker::operator()(std::string conversation, UserId sender,
                                    std::vector<UserId> recipients, std::string body,
                                    std::string client_msg_id) {
  NewMessage m;
  m.message.id = next_msg_id_++;
  m.message.conversation = std::move(conversation);
  m.message.sender = sender;
  m.message.sender_device = "phone";
  m.message.client_msg_id = std::move(client_msg_id);
  m.message.created_at_ms = 1700000000000;
  m.message.content_type = "text/plain";
  m.message.body = std::move(body);
  m.recipients = std::move(recipients);
  return m;
}

namespace {
bool waitForLatch(std::latch& latch) {
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (!latch.try_wait()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}
}  // namespace

void CommitterGate::close(Store& store, NewMessage m) {
  store.append(std::move(m), [this](Result<Appended> r) {
    ASSERT_TRUE(r);
    entered_.count_down();
    released_.wait();
  });
  ASSERT_TRUE(waitForLatch(entered_));
}

void Completions::add(Result<Appended> r) {
  std::lock_guard lock(mu_);
  results_.push_back(std::move(r));
  cv_.notify_all();
}

bool Completions::waitFor(std::size_t n) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, kDeadline, [&] { return results_.size() >= n; });
}

std::vector<Result<Appended>> Completions::take() {
  std::lock_guard lock(mu_);
  return std::move(results_);
}

void StoreConformance::SetUp() {
  auto harness = GetParam().make();
  ASSERT_TRUE(harness) << harness.error().message;
  harness_ = std::move(*harness);
  reopen();
}

void StoreConformance::TearDown() {
  store_.reset();
  harness_.reset();
}

void StoreConformance::reopen() {
  store_.reset();
  auto opened = harness_->open(options_, &metrics_);
  ASSERT_TRUE(opened) << opened.error().message;
  store_ = std::move(*opened);
}

namespace {

// ---- users, tokens, devices ------------------------------------------------------------------

TEST_P(StoreConformance, Users) {
  EXPECT_EQ(*store_->userCount(), 0u);
  auto alice = store_->createUser("alice", "hash-a", 1);
  ASSERT_TRUE(alice);
  EXPECT_EQ(alice->id, 1u);
  auto bob = store_->createUser("bob", "hash-b", 2);
  ASSERT_TRUE(bob);
  EXPECT_EQ(bob->id, 2u);
  auto again = store_->createUser("alice", "other", 3);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::Conflict);
  ASSERT_TRUE(store_->createUser("alfred", "hash-f", 4));
  ASSERT_TRUE(store_->createUser("Alice", "hash-A", 5));  // case-sensitive

  EXPECT_EQ(*store_->getUser(1), *alice);
  EXPECT_EQ(*store_->findUserByName("bob"), *bob);
  EXPECT_EQ(store_->getUser(99).error().code, Errc::NotFound);
  EXPECT_EQ(store_->findUserByName("carol").error().code, Errc::NotFound);

  auto al = store_->listUsers("al", 10);
  ASSERT_TRUE(al);
  ASSERT_EQ(al->size(), 2u);
  EXPECT_EQ((*al)[0].username, "alfred");
  EXPECT_EQ((*al)[1].username, "alice");
  EXPECT_EQ(store_->listUsers("al", 1)->size(), 1u);
  EXPECT_EQ(store_->listUsers("", 100)->size(), 4u);
  EXPECT_TRUE(store_->listUsers("zz", 10)->empty());
  EXPECT_EQ(*store_->allUserIds(), (std::vector<UserId>{1, 2, 3, 4}));
  EXPECT_EQ(*store_->userCount(), 4u);  // the refused duplicate is not counted

  reopen();
  EXPECT_EQ(*store_->userCount(), 4u);  // read from the stored counter, before any create
  auto carol = store_->createUser("carol", "hash-c", 6);
  ASSERT_TRUE(carol);
  EXPECT_EQ(carol->id, 5u);
  EXPECT_EQ(*store_->userCount(), 5u);
  EXPECT_EQ(*store_->findUserByName("alice"), *alice);
}

TEST_P(StoreConformance, Tokens) {
  Token t{std::string(32, '\x01'), 7, "web", 10, 20};
  ASSERT_TRUE(store_->putToken(t));
  EXPECT_EQ(*store_->getToken(t.token_hash), t);
  EXPECT_EQ(store_->getToken(std::string(32, '\x02')).error().code, Errc::NotFound);
  ASSERT_TRUE(store_->deleteToken(t.token_hash));
  EXPECT_EQ(store_->getToken(t.token_hash).error().code, Errc::NotFound);
  EXPECT_TRUE(store_->deleteToken(t.token_hash));  // idempotent
}

TEST_P(StoreConformance, PurgesExpiredTokensOnly) {
  ASSERT_TRUE(store_->putToken(Token{std::string(32, 'a'), 1, "web", 0, 100}));
  ASSERT_TRUE(store_->putToken(Token{std::string(32, 'b'), 1, "web", 0, 200}));
  ASSERT_TRUE(store_->putToken(Token{std::string(32, 'c'), 2, "app", 0, 300}));
  EXPECT_EQ(*store_->purgeExpiredTokens(200), 2u);  // expiring at 200 is expired at 200
  EXPECT_EQ(store_->getToken(std::string(32, 'a')).error().code, Errc::NotFound);
  EXPECT_EQ(store_->getToken(std::string(32, 'b')).error().code, Errc::NotFound);
  EXPECT_TRUE(store_->getToken(std::string(32, 'c')));
  EXPECT_EQ(*store_->purgeExpiredTokens(200), 0u);
}

TEST_P(StoreConformance, Devices) {
  ASSERT_TRUE(store_->touchDevice(1, "phone", 100));
  ASSERT_TRUE(store_->touchDevice(1, "web", 150));
  ASSERT_TRUE(store_->touchDevice(1, "phone", 200));
  ASSERT_TRUE(store_->touchDevice(2, "tablet", 300));
  auto devices = store_->listDevices(1);
  ASSERT_TRUE(devices);
  EXPECT_EQ(*devices, (std::vector<Device>{{"phone", 100, 200}, {"web", 150, 150}}));
  EXPECT_TRUE(store_->listDevices(3)->empty());
}

// Every string the store keeps is opaque bytes: quotes, backslashes, NUL, bytes that are not
// UTF-8 come back unchanged, and names compare bytewise.
TEST_P(StoreConformance, StringsAreBinarySafe) {
  const std::string odd_name = std::string("o'k\\\"\0\xff;--", 10);
  auto user = store_->createUser(odd_name, std::string("h\0\x80", 3), -7);
  ASSERT_TRUE(user) << user.error().message;
  EXPECT_EQ(*store_->findUserByName(odd_name), *user);
  EXPECT_EQ(store_->findUserByName(odd_name.substr(0, 9)).error().code, Errc::NotFound);
  auto listed = store_->listUsers(std::string("o'k\\", 4), 10);
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front(), *user);
  ASSERT_TRUE(store_->createUser("\xff\xff", "h", 0));
  ASSERT_TRUE(store_->createUser("\xff\xff\x01", "h", 0));
  EXPECT_EQ(store_->listUsers("\xff\xff", 10)->size(), 2u);  // a prefix of 0xff bytes

  const std::string device = std::string("d'\0\\", 4);
  ASSERT_TRUE(store_->touchDevice(user->id, device, 5));
  EXPECT_EQ(*store_->listDevices(user->id), (std::vector<Device>{{device, 5, 5}}));
  EXPECT_EQ(*store_->advanceCursor(user->id, device, 3), 3u);
  EXPECT_EQ(*store_->getCursor(user->id, device), 3u);

  Token t{std::string("\0'\\\"\n\r\x1a", 7), user->id, device, 1, 2};
  ASSERT_TRUE(store_->putToken(t));
  EXPECT_EQ(*store_->getToken(t.token_hash), t);

  Group g{3, std::string("g\0'\\", 4), user->id, -1};
  ASSERT_TRUE(store_->createGroup(g, {user->id}));
  EXPECT_EQ(*store_->getGroup(3), g);

  std::string body;
  for (int i = 0; i < 256; ++i) body.push_back(static_cast<char>(i));
  auto m = message("p:'\\\"", user->id, {user->id}, body, std::string("c'\\", 3));
  m.message.sender_device = device;
  m.message.content_type = std::string("t\0y", 3);
  auto r = appendAndWait(m);
  ASSERT_TRUE(r) << r.error().message;
  m.message.conv_seq = 1;
  EXPECT_EQ(r->message, m.message);
  EXPECT_EQ(*store_->getMessage(m.message.id), m.message);
  EXPECT_EQ(store_->readInbox(user->id, 0, 10)->at(0).message, m.message);
  EXPECT_EQ(store_->readTimeline("p:'\\\"", 0, 10)->at(0), m.message);
  auto dup =
      appendAndWait(message("p:'\\\"", user->id, {user->id}, "again", std::string("c'\\", 3)));
  ASSERT_TRUE(dup);
  EXPECT_TRUE(dup->duplicate);
  EXPECT_EQ(dup->message, m.message);
}

// ---- groups ----------------------------------------------------------------------------------

TEST_P(StoreConformance, GroupsAndMembership) {
  Group g{10, "friends", 1, 1234};
  ASSERT_TRUE(store_->createGroup(g, {1, 2}));
  EXPECT_EQ(store_->createGroup(g, {1}).error().code, Errc::Conflict);
  EXPECT_EQ(store_->createGroup(Group{11, "x", 5, 0}, {1}).error().code, Errc::BadRequest);
  EXPECT_EQ(*store_->getGroup(10), g);
  EXPECT_EQ(store_->getGroup(11).error().code, Errc::NotFound);

  EXPECT_EQ(*store_->addMember(10, 3), true);
  EXPECT_EQ(*store_->addMember(10, 3), false);
  EXPECT_EQ(*store_->listMembers(10), (std::vector<UserId>{1, 2, 3}));
  EXPECT_TRUE(*store_->isMember(10, 3));
  EXPECT_EQ(*store_->removeMember(10, 2), true);
  EXPECT_EQ(*store_->removeMember(10, 2), false);
  EXPECT_FALSE(*store_->isMember(10, 2));
  EXPECT_EQ(*store_->listMembers(10), (std::vector<UserId>{1, 3}));

  ASSERT_TRUE(store_->createGroup(Group{5, "early", 3, 0}, {3}));
  EXPECT_EQ(*store_->groupsOf(3), (std::vector<GroupId>{5, 10}));
  EXPECT_TRUE(store_->groupsOf(2)->empty());

  EXPECT_EQ(store_->addMember(99, 1).error().code, Errc::NotFound);
  EXPECT_EQ(store_->removeMember(99, 1).error().code, Errc::NotFound);
  EXPECT_FALSE(*store_->isMember(99, 1));
}

// ---- messages --------------------------------------------------------------------------------

TEST_P(StoreConformance, AppendThenReadInboxAndTimeline) {
  for (int i = 1; i <= 10; ++i) {
    auto r = appendAndWait(message("p:1:2", 1, {1, 2}, "m" + std::to_string(i)));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->message.conv_seq, Seq(i));
    EXPECT_EQ(r->sender_seq, Seq(i));
    EXPECT_FALSE(r->duplicate);
  }
  ASSERT_TRUE(appendAndWait(message("p:2:3", 3, {2, 3}, "other")));

  auto inbox = store_->readInbox(2, 0, 100);
  ASSERT_TRUE(inbox);
  ASSERT_EQ(inbox->size(), 11u);
  for (std::size_t i = 0; i < 11; ++i) EXPECT_EQ((*inbox)[i].seq, i + 1);
  EXPECT_EQ((*inbox)[0].message.body, "m1");
  EXPECT_EQ((*inbox)[10].message.conversation, "p:2:3");
  auto page = store_->readInbox(2, 4, 3);
  ASSERT_EQ(page->size(), 3u);
  EXPECT_EQ((*page)[0].seq, 5u);
  EXPECT_EQ((*page)[0].message.body, "m5");
  EXPECT_TRUE(store_->readInbox(2, 11, 10)->empty());
  EXPECT_TRUE(store_->readInbox(4, 0, 10)->empty());
  EXPECT_EQ(*store_->lastInboxSeq(2), 11u);
  EXPECT_EQ(*store_->lastInboxSeq(3), 1u);
  EXPECT_EQ(*store_->lastInboxSeq(4), 0u);

  auto newest = store_->readTimeline("p:1:2", 0, 3);
  ASSERT_TRUE(newest);
  ASSERT_EQ(newest->size(), 3u);
  EXPECT_EQ((*newest)[0].conv_seq, 8u);  // ascending
  EXPECT_EQ((*newest)[2].conv_seq, 10u);
  auto older = store_->readTimeline("p:1:2", 8, 3);
  ASSERT_EQ(older->size(), 3u);
  EXPECT_EQ((*older)[0].conv_seq, 5u);
  EXPECT_EQ((*older)[2].conv_seq, 7u);
  auto oldest = store_->readTimeline("p:1:2", 3, 10);
  ASSERT_EQ(oldest->size(), 2u);
  EXPECT_EQ((*oldest)[0].body, "m1");
  EXPECT_TRUE(store_->readTimeline("p:1:2", 1, 10)->empty());
  EXPECT_EQ(store_->readTimeline("p:1:2", 0, 100)->size(), 10u);
  EXPECT_TRUE(store_->readTimeline("p:1", 0, 10)->empty());  // a prefix is not a conversation
  EXPECT_EQ(store_->readTimeline("p:2:3", 0, 10)->size(), 1u);
}

// (How an engine keeps the body once is checked by each engine's own test.)
TEST_P(StoreConformance, EachRecipientGetsItsOwnSeq) {
  ASSERT_TRUE(appendAndWait(message("p:2:3", 2, {2, 3}, "warm-up")));
  auto r = appendAndWait(message("g:1", 1, {1, 2, 3}, "hello group"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->refs, (std::vector<InboxRef>{{1, 1}, {2, 2}, {3, 2}}));
  EXPECT_EQ(r->sender_seq, 1u);
  auto stored = store_->getMessage(r->message.id);
  ASSERT_TRUE(stored);
  EXPECT_EQ(*stored, r->message);
  EXPECT_EQ(stored->body, "hello group");
  for (UserId u : {1, 2, 3}) {
    auto items = store_->readInbox(u, 0, 10);
    ASSERT_TRUE(items);
    EXPECT_EQ(items->back().message.id, r->message.id);
  }

  reopen();
  EXPECT_EQ(*store_->getMessage(r->message.id), r->message);
  EXPECT_EQ(store_->getMessage(1).error().code, Errc::NotFound);
}

TEST_P(StoreConformance, SenderNotARecipientHasSeqZero) {
  auto r = appendAndWait(message("g:5", 9, {1, 2}, "announcement"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->sender_seq, 0u);
  EXPECT_EQ(*store_->lastInboxSeq(9), 0u);
  // A message with no inbox references (pure read diffusion) still gets a timeline entry.
  auto big = appendAndWait(message("g:5", 1, {}, "to everyone"));
  ASSERT_TRUE(big);
  EXPECT_TRUE(big->refs.empty());
  EXPECT_EQ(big->message.conv_seq, 2u);
}

TEST_P(StoreConformance, RejectsInvalidAppendsInline) {
  auto check = [&](NewMessage m, Errc code) {
    bool called = false;
    store_->append(std::move(m), [&](Result<Appended> r) {
      called = true;
      ASSERT_FALSE(r);
      EXPECT_EQ(r.error().code, code);
    });
    EXPECT_TRUE(called);  // immediate errors are reported inline
  };
  auto no_id = message("p:1:2", 1, {1, 2}, "x");
  no_id.message.id = 0;
  check(std::move(no_id), Errc::BadRequest);
  check(message("", 1, {1}, "x"), Errc::BadRequest);
  check(message(std::string("p:1\0:2", 6), 1, {1}, "x"), Errc::BadRequest);
  check(message("p:1:2", 1, {1, 2, 1}, "x"), Errc::BadRequest);
  EXPECT_EQ(*store_->lastInboxSeq(1), 0u);
}

TEST_P(StoreConformance, DuplicateClientMsgIdWritesNothing) {
  auto first = appendAndWait(message("p:1:2", 1, {1, 2}, "once", "c-1"));
  ASSERT_TRUE(first);
  EXPECT_FALSE(first->duplicate);
  auto again = appendAndWait(message("p:1:2", 1, {1, 2}, "once (retry)", "c-1"));
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->message, first->message);
  EXPECT_EQ(again->sender_seq, first->sender_seq);
  EXPECT_TRUE(again->refs.empty());
  EXPECT_EQ(*store_->lastInboxSeq(1), 1u);
  EXPECT_EQ(*store_->lastInboxSeq(2), 1u);
  EXPECT_EQ(store_->readTimeline("p:1:2", 0, 10)->size(), 1u);

  // Same client id from another sender is a different message; empty ids never dedupe.
  auto other = appendAndWait(message("p:1:2", 2, {1, 2}, "mine", "c-1"));
  ASSERT_TRUE(other);
  EXPECT_FALSE(other->duplicate);
  EXPECT_FALSE(appendAndWait(message("p:1:2", 1, {1, 2}, "a"))->duplicate);
  EXPECT_FALSE(appendAndWait(message("p:1:2", 1, {1, 2}, "a"))->duplicate);

  reopen();  // the idempotency entry is durable
  auto later = appendAndWait(message("p:1:2", 1, {1, 2}, "retry after restart", "c-1"));
  ASSERT_TRUE(later);
  EXPECT_TRUE(later->duplicate);
  EXPECT_EQ(later->message, first->message);
}

TEST_P(StoreConformance, DuplicatesOfAnInFlightMessageWaitForIt) {
  CommitterGate gate;
  gate.close(*store_, message("p:1:2", 8, {8, 9}, "blocker"));
  // The committer is stuck in the blocker's callback: the next append stays in flight.
  Completions original;
  Completions dups;
  store_->append(message("p:1:2", 1, {1, 2}, "x", "c-7"),
                 [&](Result<Appended> r) { original.add(std::move(r)); });
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      store_->append(message("p:1:2", 1, {1, 2}, "x" + std::to_string(i), "c-7"),
                     [&](Result<Appended> r) { dups.add(std::move(r)); });
    });
  }
  for (auto& t : threads) t.join();
  gate.open();
  ASSERT_TRUE(original.waitFor(1));
  ASSERT_TRUE(dups.waitFor(4));
  auto first = original.take().at(0);
  ASSERT_TRUE(first);
  EXPECT_FALSE(first->duplicate);
  for (auto& d : dups.take()) {
    ASSERT_TRUE(d);
    EXPECT_TRUE(d->duplicate);
    EXPECT_EQ(d->message, first->message);
    EXPECT_EQ(d->sender_seq, first->sender_seq);
    EXPECT_TRUE(d->refs.empty());
  }
  EXPECT_EQ(*store_->lastInboxSeq(1), 1u);
  EXPECT_EQ(*store_->lastInboxSeq(2), 1u);
}

TEST_P(StoreConformance, GroupCommitMergesQueuedAppends) {
  CommitterGate gate;
  gate.close(*store_, message("p:1:2", 8, {8, 9}, "blocker"));
  const auto commits_before = counterValue("pigeon_store_commits_total");
  Completions done;
  for (int i = 0; i < 100; ++i) {
    store_->append(message("p:1:2", 1, {1, 2}, "m"),
                   [&](Result<Appended> r) { done.add(std::move(r)); });
  }
  gate.open();
  ASSERT_TRUE(done.waitFor(100));
  for (auto& r : done.take()) ASSERT_TRUE(r);
  EXPECT_EQ(counterValue("pigeon_store_commits_total") - commits_before, 1u);
  EXPECT_EQ(counterValue("pigeon_store_messages_appended_total"), 101u);
  const std::string text = metrics_.render();
  EXPECT_NE(text.find("pigeon_store_commit_seconds_count"), std::string::npos);
  EXPECT_NE(text.find("pigeon_store_append_seconds_count 101"), std::string::npos);
}

TEST_P(StoreConformance, MaxBatchMessagesSplitsGroups) {
  options_.max_batch_messages = 10;
  reopen();
  CommitterGate gate;
  gate.close(*store_, message("p:1:2", 8, {8, 9}, "blocker"));
  const auto commits_before = counterValue("pigeon_store_commits_total");
  Completions done;
  for (int i = 0; i < 35; ++i) {
    store_->append(message("p:1:2", 1, {1, 2}, "m"),
                   [&](Result<Appended> r) { done.add(std::move(r)); });
  }
  gate.open();
  ASSERT_TRUE(done.waitFor(35));
  EXPECT_EQ(counterValue("pigeon_store_commits_total") - commits_before, 4u);
  EXPECT_EQ(*store_->lastInboxSeq(2), 35u);
}

// Many threads, a few conversations, shared recipients: every inbox and every conversation is
// exactly 1..N, and every inbox lists each conversation in conv_seq order. Then a restart.
TEST_P(StoreConformance, ConcurrentAppendsHaveGaplessOrderedSeqs) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 500;
  const std::vector<std::pair<std::string, std::vector<UserId>>> convs = {
      {"g:1", {1, 2, 3, 10}}, {"g:2", {2, 3, 4, 10}}, {"p:1:5", {1, 5}}, {"g:3", {3, 4, 5, 6, 10}}};
  std::atomic<MsgId> ids{1};
  Completions done;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const auto& [conv, members] = convs[(t + i) % convs.size()];
        NewMessage m;
        m.message.id = ids.fetch_add(1);
        m.message.conversation = conv;
        m.message.sender = members[0];
        m.message.client_msg_id = fmt::format("t{}-{}", t, i);
        m.message.body = "b";
        m.recipients = members;
        store_->append(std::move(m), [&](Result<Appended> r) { done.add(std::move(r)); });
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(done.waitFor(kThreads * kPerThread));
  std::map<UserId, std::set<Seq>> seen_refs;
  for (auto& r : done.take()) {
    ASSERT_TRUE(r) << r.error().message;
    for (const auto& ref : r->refs) EXPECT_TRUE(seen_refs[ref.user].insert(ref.seq).second);
  }
  EXPECT_LT(counterValue("pigeon_store_commits_total"), std::uint64_t(kThreads * kPerThread));

  auto verify = [&](std::map<std::string, Seq>& conv_len, std::map<UserId, Seq>& inbox_len) {
    for (const auto& [conv, members] : convs) {
      auto timeline = store_->readTimeline(conv, 0, 1'000'000);
      ASSERT_TRUE(timeline);
      for (std::size_t i = 0; i < timeline->size(); ++i) ASSERT_EQ((*timeline)[i].conv_seq, i + 1);
      conv_len[conv] = timeline->size();
    }
    for (UserId u : {1, 2, 3, 4, 5, 6, 10}) {
      auto inbox = store_->readInbox(u, 0, 1'000'000);
      ASSERT_TRUE(inbox);
      std::map<std::string, Seq> last_conv_seq;
      for (std::size_t i = 0; i < inbox->size(); ++i) {
        const auto& item = (*inbox)[i];
        ASSERT_EQ(item.seq, i + 1);
        Seq& last = last_conv_seq[item.message.conversation];
        ASSERT_GT(item.message.conv_seq, last) << "user " << u << " conversation order";
        last = item.message.conv_seq;
      }
      EXPECT_EQ(inbox->size(), seen_refs[u].size());
      inbox_len[u] = inbox->size();
    }
  };
  std::map<std::string, Seq> conv_len;
  std::map<UserId, Seq> inbox_len;
  verify(conv_len, inbox_len);
  Seq total = 0;
  for (auto& [conv, n] : conv_len) total += n;
  EXPECT_EQ(total, Seq(kThreads * kPerThread));
  EXPECT_EQ(inbox_len[10], conv_len["g:1"] + conv_len["g:2"] + conv_len["g:3"]);

  reopen();
  std::map<std::string, Seq> conv_len2;
  std::map<UserId, Seq> inbox_len2;
  verify(conv_len2, inbox_len2);
  EXPECT_EQ(conv_len2, conv_len);
  EXPECT_EQ(inbox_len2, inbox_len);
  NewMessage next;
  next.message.id = ids.fetch_add(1);
  next.message.conversation = "g:1";
  next.message.sender = 1;
  next.recipients = {1, 2, 3, 10};
  auto r = appendAndWait(std::move(next));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->message.conv_seq, conv_len["g:1"] + 1);
  EXPECT_EQ(r->refs[3], (InboxRef{10, inbox_len[10] + 1}));
  EXPECT_EQ(*store_->maxMessageId(), r->message.id);
}

TEST_P(StoreConformance, MaxMessageId) {
  EXPECT_EQ(*store_->maxMessageId(), 0u);
  for (MsgId id : {MsgId{300}, MsgId{1} << 40, MsgId{70}}) {
    auto m = message("p:1:2", 1, {1, 2}, "x");
    m.message.id = id;
    ASSERT_TRUE(appendAndWait(std::move(m)));
  }
  EXPECT_EQ(*store_->maxMessageId(), MsgId{1} << 40);
}

// ---- cursors ---------------------------------------------------------------------------------

TEST_P(StoreConformance, CursorOnlyMovesForwardAndPersists) {
  EXPECT_EQ(*store_->getCursor(1, "phone"), 0u);
  EXPECT_EQ(*store_->advanceCursor(1, "phone", 5), 5u);
  EXPECT_EQ(*store_->advanceCursor(1, "phone", 3), 5u);
  EXPECT_EQ(*store_->getCursor(1, "phone"), 5u);
  EXPECT_EQ(*store_->getCursor(1, "web"), 0u);

  std::vector<std::thread> threads;
  std::atomic<bool> regressed{false};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      Seq last = 0;
      for (int i = 0; i < 200; ++i) {
        auto r = store_->advanceCursor(1, "web", Seq((i * 7 + t * 13) % 1000 + 1));
        if (!r || *r < last) regressed = true;
        if (r) last = *r;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_FALSE(regressed);
  Seq expected = 0;
  for (int t = 0; t < 8; ++t) {
    for (int i = 0; i < 200; ++i) expected = std::max<Seq>(expected, (i * 7 + t * 13) % 1000 + 1);
  }
  EXPECT_EQ(*store_->getCursor(1, "web"), expected);

  reopen();
  EXPECT_EQ(*store_->getCursor(1, "phone"), 5u);
  EXPECT_EQ(*store_->getCursor(1, "web"), expected);
}

TEST_P(StoreConformance, AdvanceCursorsMovesManyDevicesInOneCall) {
  ASSERT_TRUE(store_->advanceCursor(2, "phone", 9));
  std::vector<CursorUpdate> updates;
  for (UserId u = 1; u <= 100; ++u) updates.push_back(CursorUpdate{u, "phone", u});
  updates.push_back(CursorUpdate{1, "web", 4});
  updates.push_back(CursorUpdate{1, "web", 3});  // the same device again, lower: max wins
  auto moved = store_->advanceCursors(updates);
  ASSERT_TRUE(moved) << moved.error().message;
  ASSERT_EQ(moved->size(), updates.size());
  EXPECT_EQ((*moved)[0], 1u);
  EXPECT_EQ((*moved)[1], 9u);  // user 2 was at 9 already: cursors never go back
  EXPECT_EQ((*moved)[99], 100u);
  EXPECT_EQ((*moved)[100], 4u);
  EXPECT_EQ((*moved)[101], 4u);
  EXPECT_TRUE(store_->advanceCursors({})->empty());

  reopen();
  EXPECT_EQ(*store_->getCursor(1, "phone"), 1u);
  EXPECT_EQ(*store_->getCursor(2, "phone"), 9u);
  EXPECT_EQ(*store_->getCursor(100, "phone"), 100u);
  EXPECT_EQ(*store_->getCursor(1, "web"), 4u);
}

// ---- shutdown --------------------------------------------------------------------------------

TEST_P(StoreConformance, DestructorDrainsQueuedAppends) {
  CommitterGate gate;
  gate.close(*store_, message("p:1:2", 8, {8, 9}, "blocker"));
  Completions done;
  for (int i = 0; i < 50; ++i) {
    store_->append(message("p:1:2", 1, {1, 2}, "m"),
                   [&](Result<Appended> r) { done.add(std::move(r)); });
  }
  std::thread closer([&] { store_.reset(); });
  gate.open();
  closer.join();  // returns only after the queue is committed
  ASSERT_TRUE(done.waitFor(50));
  for (auto& r : done.take()) ASSERT_TRUE(r);
  reopen();
  EXPECT_EQ(*store_->lastInboxSeq(2), 50u);
}

// Appends issued while the destructor runs get Unavailable (or, if they got in before it
// started, are drained and durable): a chain of appends, each issued from the previous one's
// callback, stops at the first Unavailable.
TEST_P(StoreConformance, AppendsAfterShutdownBeginsAreRefused) {
  Store* raw = store_.get();
  std::atomic<int> committed{0};
  std::promise<Error> refused;
  std::latch started{1};
  std::function<void()> next;
  next = [&] {
    NewMessage m;
    m.message.id = 1 + MsgId(committed.load());
    m.message.conversation = "p:1:2";
    m.message.sender = 1;
    m.recipients = {1, 2};
    raw->append(std::move(m), [&](Result<Appended> r) {
      if (!r) {
        refused.set_value(r.error());
        return;
      }
      if (++committed == 1) started.count_down();
      next();
    });
  };
  next();
  started.wait();
  store_.reset();  // the chain runs on the committer thread until the destructor refuses it
  auto future = refused.get_future();
  ASSERT_EQ(future.wait_for(kDeadline), std::future_status::ready);
  EXPECT_EQ(future.get().code, Errc::Unavailable);
  reopen();
  EXPECT_EQ(*store_->lastInboxSeq(2), Seq(committed.load()));
  EXPECT_EQ(store_->readTimeline("p:1:2", 0, 1'000'000)->size(), std::size_t(committed.load()));
}

}  // namespace
}  // namespace pigeon::store::conformance
