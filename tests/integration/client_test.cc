// The client SDK (src/client) against the real pigeond, over both transports (native TCP and
// STOMP over WebSocket): chat, groups, offline messages, a server restart mid-session, a kicked
// device, a dead connection (SIGSTOP), refused sends, a revoked token, the HTTP helpers, stop()
// with sends queued while the server is away, and the caught-up signal after each sync.
// Each test has its own server. Nothing sleeps to wait: conditions are polled with deadlines.
#include "client/client.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "support/pigeond_process.h"
#include "support/sdk_client.h"
#include "support/services.h"

namespace pigeon::test {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using client::Client;
using client::ClientOptions;
using client::Destination;
using client::Message;
using client::Reason;
using client::SendResult;
using client::State;
using client::StateChange;
using client::Transport;

std::string transportName(const ::testing::TestParamInfo<Transport>& info) {
  return info.param == Transport::Tcp ? "Tcp" : "WebSocket";
}

class ClientTest : public ::testing::TestWithParam<Transport> {
 protected:
  // --heartbeat-ms 200: the STOMP side beats as often as a client asks (clients ask for 10 s
  // unless a test wants less).
  void SetUp() override { startServer(); }
  void TearDown() override {
    if (server_ && stopped_) ::kill(server_->pid(), SIGCONT);
  }

  // Starts (or starts again, on the same data and with new ports) the server.
  void startServer() {
    if (!server_) {
      scheme_ = "http";
      server_ = std::make_unique<PigeondProcess>(dir_.path() + "/data",
                                                 std::vector<std::string>{"--heartbeat-ms", "200"});
    }
    server_->start();
    ASSERT_NE(server_->tcpPort(), 0) << "pigeond has no native TCP listener";
    std::lock_guard lock(url_mu_);
    url_ = scheme_ + "://127.0.0.1:" + std::to_string(server_->httpPort());
  }

  std::string url() {
    std::lock_guard lock(url_mu_);
    return url_;
  }

  ClientOptions options(const std::string& user, const std::string& device = "laptop") {
    ClientOptions o = testUserOptions(user, device);
    o.server = url();
    o.resolve_server = [this] { return url(); };  // follows the server across restarts
    o.transport = GetParam();
    return o;
  }

  // Starts a client and waits until it is online.
  std::unique_ptr<TestClient> online(ClientOptions o) {
    auto c = std::make_unique<TestClient>(io_, std::move(o));
    auto s = c->start();
    EXPECT_TRUE(s) << (s ? "" : s.error().message);
    EXPECT_TRUE(waitFor([&] { return c->online(); })) << "state " << client::stateName(c->state());
    return c;
  }

  static std::vector<std::string> numbered(const std::string& prefix, int from, int to) {
    std::vector<std::string> out;
    for (int i = from; i < to; ++i) out.push_back(prefix + std::to_string(i));
    return out;
  }

  // Bodies a recipient saw, restricted to those starting with `prefix`.
  static std::vector<std::string> withPrefix(const Recorder& r, const std::string& prefix) {
    std::vector<std::string> out;
    for (auto& b : r.bodies()) {
      if (b.starts_with(prefix)) out.push_back(b);
    }
    return out;
  }

  // Every message a recipient saw has the next seq: exactly once, in order.
  static void expectGapless(const Recorder& r) {
    auto messages = r.messages();
    for (std::size_t i = 1; i < messages.size(); ++i) {
      ASSERT_EQ(messages[i].seq, messages[i - 1].seq + 1) << "at " << i;
    }
  }

  TempDir dir_;
  std::unique_ptr<PigeondProcess> server_;
  std::string scheme_ = "http";
  std::mutex url_mu_;
  std::string url_;
  bool stopped_ = false;
  Io io_;  // last: destroyed first, after the clients of each test body
};

TEST_P(ClientTest, OneToOneChat) {
  auto alice = online(options("alice"));
  auto bob = online(options("bob"));
  for (auto& body : numbered("hi bob ", 0, 5)) alice->send(Destination::toUser("bob"), body);
  ASSERT_TRUE(waitFor([&] { return bob->rec().messageCount() >= 5; }));
  EXPECT_EQ(bob->rec().bodies(), numbered("hi bob ", 0, 5));
  const auto got = bob->rec().messages();
  EXPECT_EQ(got[0].from, "alice");
  EXPECT_EQ(got[0].content_type, "text/plain");
  EXPECT_GT(got[0].msg_id, 0u);
  EXPECT_GT(got[0].sent_at_ms, 0);
  EXPECT_TRUE(got[0].conversation.starts_with("p:"));
  expectGapless(bob->rec());

  ASSERT_TRUE(waitFor([&] { return alice->rec().okResults() == 5; }));
  const auto results = alice->rec().results();
  for (std::size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(results[i].to, Destination::toUser("bob"));
    EXPECT_EQ(results[i].receipt->conversation, got[0].conversation);
    EXPECT_EQ(results[i].receipt->conv_seq, i + 1);
    EXPECT_FALSE(results[i].receipt->duplicate);
  }
  // The sender's own inbox has the messages too, carrying the client_msg_id it sent.
  ASSERT_TRUE(waitFor([&] { return alice->rec().messageCount() == 5; }));
  EXPECT_EQ(alice->rec().messages()[0].client_msg_id, results[0].client_msg_id);

  bob->send(Destination::toUser("alice"), "hello alice");
  ASSERT_TRUE(waitFor([&] { return alice->rec().messageCount() == 6; }));
  EXPECT_EQ(alice->rec().messages().back().body, "hello alice");
  EXPECT_EQ(alice->rec().messages().back().from, "bob");
  EXPECT_TRUE(alice->rec().errors().empty());
  alice->stop();
  EXPECT_EQ(alice->state(), State::Stopped);
  EXPECT_EQ(alice->rec().states().back().reason, Reason::StoppedByApp);
}

TEST_P(ClientTest, GroupChatAndHttpHelpers) {
  auto alice = online(options("alice"));
  auto bob = online(options("bob"));
  auto carol = online(options("carol"));

  auto& api = alice->raw().api();
  auto group = io_.call<Result<client::Group>>(
      [&](auto done) { api.createGroup("friends", {"bob"}, std::move(done)); });
  ASSERT_TRUE(group) << group.error().message;
  EXPECT_EQ(group->name, "friends");
  EXPECT_EQ(group->owner, "alice");
  EXPECT_EQ(group->member_count, 2u);
  EXPECT_EQ(group->conversation, "g:" + std::to_string(group->group_id));
  auto added = io_.call<Result<void>>(
      [&](auto done) { api.addMember(group->group_id, "carol", std::move(done)); });
  ASSERT_TRUE(added) << added.error().message;
  auto again = io_.call<Result<void>>(
      [&](auto done) { api.addMember(group->group_id, "carol", std::move(done)); });
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::Conflict);

  auto groups = io_.call<Result<std::vector<client::Group>>>(
      [&](auto done) { bob->raw().api().groups(std::move(done)); });
  ASSERT_TRUE(groups);
  ASSERT_EQ(groups->size(), 2u);
  EXPECT_EQ((*groups)[0].group_id, client::kLobbyGroup);
  EXPECT_EQ((*groups)[1].group_id, group->group_id);
  auto one = io_.call<Result<client::Group>>(
      [&](auto done) { carol->raw().api().group(group->group_id, std::move(done)); });
  ASSERT_TRUE(one);
  EXPECT_EQ(one->members.size(), 3u);

  const auto to = Destination::toGroup(group->group_id);
  alice->send(to, "hello friends");
  ASSERT_TRUE(waitFor([&] { return bob->rec().messageCount() == 1; }));  // then bob answers
  bob->send(to, "hi from bob");
  for (auto* c : {alice.get(), bob.get(), carol.get()}) {
    ASSERT_TRUE(waitFor([&] { return c->rec().messageCount() == 2; }));
    for (const auto& m : c->rec().messages()) EXPECT_EQ(m.conversation, group->conversation);
  }
  EXPECT_EQ(carol->rec().messages()[0].conv_seq + 1, carol->rec().messages()[1].conv_seq);

  // Carol leaves: later messages do not reach her; her sends are refused.
  auto left = io_.call<Result<void>>(
      [&](auto done) { carol->raw().api().leaveGroup(group->group_id, std::move(done)); });
  ASSERT_TRUE(left) << left.error().message;
  alice->send(to, "carol is gone");
  ASSERT_TRUE(waitFor([&] { return bob->rec().messageCount() == 3; }));
  const std::string refused = carol->send(to, "let me back");
  ASSERT_TRUE(waitFor([&] { return carol->rec().results().size() == 1; }));
  const auto result = carol->rec().results()[0];
  EXPECT_EQ(result.client_msg_id, refused);
  ASSERT_FALSE(result.receipt);
  EXPECT_EQ(result.receipt.error().code, Errc::Forbidden);
  EXPECT_EQ(carol->rec().messageCount(), 2u);

  // The lobby.
  alice->send(Destination::toGroup(client::kLobbyGroup), "hello lobby");
  ASSERT_TRUE(waitFor([&] { return carol->rec().messageCount() == 3; }));
  EXPECT_EQ(carol->rec().messages().back().conversation, "g:1");

  // History of the group, newest page first, oldest first within it.
  auto page = io_.call<Result<client::HistoryPage>>(
      [&](auto done) { bob->raw().api().history(group->conversation, 0, 2, std::move(done)); });
  ASSERT_TRUE(page) << page.error().message;
  ASSERT_EQ(page->messages.size(), 2u);
  EXPECT_TRUE(page->has_more);
  EXPECT_EQ(page->messages[0].body, "hi from bob");
  EXPECT_EQ(page->messages[1].body, "carol is gone");
  auto older = io_.call<Result<client::HistoryPage>>([&](auto done) {
    bob->raw().api().history(group->conversation, page->messages[0].conv_seq, 10, std::move(done));
  });
  ASSERT_TRUE(older);
  ASSERT_EQ(older->messages.size(), 1u);
  EXPECT_EQ(older->messages[0].body, "hello friends");
  EXPECT_FALSE(older->has_more);

  // Who is online, users by prefix, and the generic request — this one through a coroutine.
  auto who = asio::co_spawn(
                 io_.ctx(),
                 [&]() -> asio::awaitable<Result<std::vector<client::UserRef>>> {
                   co_return co_await api.onlineUsers(asio::use_awaitable);
                 },
                 asio::use_future)
                 .get();
  ASSERT_TRUE(who) << who.error().message;
  std::vector<std::string> names;
  for (auto& u : *who) names.push_back(u.username);
  EXPECT_EQ(names, (std::vector<std::string>{"alice", "bob", "carol"}));
  auto found = io_.call<Result<std::vector<client::UserRef>>>(
      [&](auto done) { api.findUsers("ca", 10, std::move(done)); });
  ASSERT_TRUE(found);
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].username, "carol");
  auto raw = io_.call<Result<boost::json::value>>(
      [&](auto done) { api.request("GET", "/api/v1/users/online", nullptr, std::move(done)); });
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->at("users").as_array().size(), 3u);
  auto missing = io_.call<Result<boost::json::value>>(
      [&](auto done) { api.request("GET", "/api/v1/groups/999999", nullptr, std::move(done)); });
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::NotFound);
  EXPECT_FALSE(missing.error().message.empty());
}

TEST_P(ClientTest, OfflineMessagesArriveOnceInOrderAndAcksMoveTheCursor) {
  auto alice = online(options("alice"));
  // Bob registers and goes away at once.
  {
    auto bob = online(options("bob"));
    bob->stop();
  }
  for (auto& body : numbered("offline ", 0, 30)) alice->send(Destination::toUser("bob"), body);
  ASSERT_TRUE(waitFor([&] { return alice->rec().okResults() == 30; }));

  {
    auto bob = online(options("bob"));
    ASSERT_TRUE(waitFor([&] { return bob->rec().messageCount() >= 30; }));
    EXPECT_EQ(bob->rec().bodies(), numbered("offline ", 0, 30));
    expectGapless(bob->rec());
    bob->stop();  // flushes the acknowledgement before the goodbye
    EXPECT_EQ(bob->rec().messageCount(), 30u);
    EXPECT_GE(bob->stats().acks_sent, 1u);
  }
  for (auto& body : numbered("later ", 0, 5)) alice->send(Destination::toUser("bob"), body);
  ASSERT_TRUE(waitFor([&] { return alice->rec().okResults() == 35; }));

  // A new process for the same device starts after its stored cursor: only the new ones.
  auto bob = online(options("bob"));
  ASSERT_TRUE(waitFor([&] { return bob->rec().messageCount() >= 5; }));
  EXPECT_EQ(bob->rec().bodies(), numbered("later ", 0, 5));
  EXPECT_EQ(bob->rec().messages()[0].seq, 31u);
  EXPECT_EQ(bob->stats().duplicates_dropped, 0u);

  // Another device of bob's sees the whole inbox.
  auto tablet = online(options("bob", "tablet"));
  ASSERT_TRUE(waitFor([&] { return tablet->rec().messageCount() >= 35; }));
  expectGapless(tablet->rec());
  EXPECT_EQ(tablet->rec().messages()[0].seq, 1u);
}

TEST_P(ClientTest, ServerRestartMidSessionLosesAndDuplicatesNothing) {
  auto alice = online(options("alice"));
  auto bob = online(options("bob"));
  const int kRound = 60;
  // Round 0 crashes the server (SIGKILL), round 1 stops it cleanly (SIGTERM); each time it comes
  // back on the same data with other ports, while sends are in flight and more are queued.
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round == 0 ? "SIGKILL" : "SIGTERM");
    const int first = round * kRound;
    for (int i = first; i < first + kRound / 2; ++i) {
      alice->send(Destination::toUser("bob"), "m" + std::to_string(i));
    }
    ASSERT_TRUE(waitFor([&] { return bob->rec().messageCount() >= std::size_t(first + 5); }));
    const std::size_t mark = alice->rec().stateCount();
    if (round == 0) {
      server_->kill9();
    } else {
      EXPECT_EQ(server_->terminate(), 0);
    }
    for (int i = first + kRound / 2; i < first + kRound; ++i) {
      alice->send(Destination::toUser("bob"), "m" + std::to_string(i));
    }
    ASSERT_TRUE(waitFor([&] {
      return alice->rec()
          .when(mark, [](const StateChange& s) { return s.state != State::Online; })
          .has_value();
    }));
    startServer();

    const std::size_t total = std::size_t(first + kRound);
    ASSERT_TRUE(waitFor([&] { return alice->rec().results().size() == total; }, 30s));
    EXPECT_EQ(alice->rec().okResults(), total);
    EXPECT_EQ(alice->pending(), 0u);
    ASSERT_TRUE(waitFor([&] { return bob->rec().messageCount() >= total; }, 30s));
    EXPECT_EQ(bob->rec().bodies(), numbered("m", 0, int(total)));
    expectGapless(bob->rec());
    EXPECT_GE(alice->stats().connects, std::uint64_t(round + 2));
    EXPECT_GE(bob->stats().connects, std::uint64_t(round + 2));
    // The server moved: the client asked again where to connect.
    EXPECT_GE(alice->stats().logins, std::uint64_t(round + 2));
    // conv_seqs of the conversation are 1..total: every send stored exactly once.
    auto messages = bob->rec().messages();
    for (std::size_t i = 0; i < total; ++i) EXPECT_EQ(messages[i].conv_seq, i + 1);
  }
}

// A cluster's client knows several API nodes: the first login moves on from one that does not
// answer, and so does a login after the node in use went away.
TEST_P(ClientTest, LoginsMoveOnToTheFallbackServers) {
  const std::string dead = "http://127.0.0.1:" + std::to_string(test::freePort());
  auto o = options("alice");
  o.resolve_server = nullptr;
  o.server = dead;
  o.fallback_servers = {url()};
  auto alice = online(o);
  auto bob = online(options("bob"));
  alice->send(Destination::toUser("bob"), "via the second server");
  ASSERT_TRUE(waitFor([&] { return bob->rec().messageCount() == 1; }));
  EXPECT_EQ(alice->stats().logins, 1u);

  auto alone = options("carol");
  alone.resolve_server = nullptr;
  alone.server = dead;
  TestClient lost(io_, alone);
  auto refused = lost.start();  // no other server to try: the first login decides
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::Unavailable);
}

TEST_P(ClientTest, KickedDeviceStopsAndDoesNotComeBack) {
  auto first = online(options("alice", "phone"));
  auto bob = online(options("bob"));
  auto second = online(options("alice", "phone"));
  ASSERT_TRUE(waitFor([&] { return first->state() == State::Stopped; }));
  EXPECT_EQ(first->rec().kicked(), 1);
  EXPECT_EQ(first->rec().states().back().reason, Reason::Kicked);
  bob->send(Destination::toUser("alice"), "are you there");
  ASSERT_TRUE(waitFor([&] { return second->rec().messageCount() == 1; }));
  EXPECT_EQ(second->state(), State::Online);
  EXPECT_EQ(second->rec().kicked(), 0);
  EXPECT_EQ(first->rec().messageCount(), 0u);
  EXPECT_EQ(first->stats().connects, 1u);
  // A send on a stopped client is reported, not queued.
  first->send(Destination::toUser("bob"), "too late");
  ASSERT_TRUE(waitFor([&] { return first->rec().results().size() == 1; }));
  EXPECT_EQ(first->rec().results()[0].receipt.error().code, Errc::Unavailable);
}

TEST_P(ClientTest, DeadConnectionIsDetectedByHeartBeatsThenResynced) {
  auto alice = online(options("alice"));
  auto opts = options("bob");
  opts.heartbeat = 200ms;
  opts.connect_timeout = 1s;
  auto bob = online(opts);
  alice->send(Destination::toUser("bob"), "before");
  ASSERT_TRUE(waitFor([&] { return bob->rec().messageCount() == 1; }));

  const std::size_t mark = bob->rec().stateCount();
  ASSERT_EQ(::kill(server_->pid(), SIGSTOP), 0);
  stopped_ = true;
  const auto frozen = std::chrono::steady_clock::now();
  ASSERT_TRUE(waitFor([&] {
    return bob->rec()
        .when(mark,
              [](const StateChange& s) {
                return s.state == State::Waiting && s.reason == Reason::HeartbeatTimeout;
              })
        .has_value();
  }));
  const auto detected = *bob->rec().when(
      mark, [](const StateChange& s) { return s.reason == Reason::HeartbeatTimeout; });
  // Two intervals of 200 ms, checked every 50 ms: well under a second.
  EXPECT_LT(detected - frozen, 1000ms);
  EXPECT_GE(detected - frozen, 350ms);

  ASSERT_EQ(::kill(server_->pid(), SIGCONT), 0);
  stopped_ = false;
  for (auto& body : numbered("after ", 0, 10)) alice->send(Destination::toUser("bob"), body);
  ASSERT_TRUE(waitFor([&] { return bob->rec().messageCount() >= 11; }));
  ASSERT_TRUE(waitFor([&] { return bob->online(); }));
  auto expected = numbered("after ", 0, 10);
  expected.insert(expected.begin(), "before");
  EXPECT_EQ(bob->rec().bodies(), expected);
  expectGapless(bob->rec());
  EXPECT_GE(bob->stats().connects, 2u);
}

TEST_P(ClientTest, RefusedSendIsReportedNotRetriedAndTheRestGoThrough) {
  auto alice = online(options("alice"));
  auto bob = online(options("bob"));
  const std::string before = alice->send(Destination::toUser("bob"), "one");
  const std::string bad = alice->send(Destination::toUser("nobody-here"), "lost");
  const std::string after = alice->send(Destination::toUser("bob"), "two");
  ASSERT_TRUE(waitFor([&] { return alice->rec().results().size() == 3; }));
  ASSERT_TRUE(waitFor([&] { return bob->rec().messageCount() == 2; }));
  EXPECT_EQ(bob->rec().bodies(), (std::vector<std::string>{"one", "two"}));
  std::map<std::string, SendResult> by_id;
  for (auto& r : alice->rec().results()) by_id.emplace(r.client_msg_id, r);
  ASSERT_EQ(by_id.size(), 3u);
  EXPECT_TRUE(by_id.at(before).receipt);
  EXPECT_TRUE(by_id.at(after).receipt);
  ASSERT_FALSE(by_id.at(bad).receipt);
  EXPECT_EQ(by_id.at(bad).receipt.error().code, Errc::NotFound);
  EXPECT_FALSE(by_id.at(bad).receipt.error().message.empty());
  EXPECT_EQ(alice->pending(), 0u);
  ASSERT_TRUE(waitFor([&] { return alice->online(); }));
  // Over STOMP the ERROR ended the connection: a quiet, immediate reconnect (SendRefused, no
  // wait), not a server error. The native protocol keeps the connection.
  std::size_t refused_waits = 0;
  for (const auto& st : alice->rec().states()) {
    EXPECT_NE(st.reason, Reason::ServerError) << st.detail;
    if (st.state == State::Waiting && st.reason == Reason::SendRefused) {
      ++refused_waits;
      EXPECT_EQ(st.retry_in, 0ms);
    }
  }
  EXPECT_EQ(refused_waits, GetParam() == Transport::WebSocket ? 1u : 0u);
  // Reported once, never retried: nothing more comes, and a later send still works.
  alice->send(Destination::toUser("bob"), "three");
  ASSERT_TRUE(waitFor([&] { return bob->rec().messageCount() == 3; }));
  ASSERT_TRUE(waitFor([&] { return alice->rec().results().size() == 4; }));
}

TEST_P(ClientTest, RevokedTokenLogsInAgain) {
  auto alice = online(options("alice"));
  auto bob = online(options("bob"));
  EXPECT_EQ(alice->stats().logins, 1u);
  auto out = io_.call<Result<void>>([&](auto done) { alice->raw().api().logout(std::move(done)); });
  ASSERT_TRUE(out) << out.error().message;
  alice->drop();
  ASSERT_TRUE(waitFor([&] { return alice->stats().logins == 2 && alice->online(); }));
  bob->send(Destination::toUser("alice"), "still here?");
  ASSERT_TRUE(waitFor([&] { return alice->rec().messageCount() == 1; }));
}

TEST_P(ClientTest, WrongPasswordStopsWithUnauthenticated) {
  { auto alice = online(options("alice")); }
  auto o = options("alice");
  o.register_user = false;
  o.password = "not-the-password";
  TestClient c(io_, o);
  auto s = c.start();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::Unauthenticated);
  EXPECT_EQ(c.state(), State::Stopped);
  EXPECT_EQ(c.rec().states().back().reason, Reason::Unauthenticated);
}

TEST_P(ClientTest, PresenceOfContacts) {
  auto o = options("alice");
  o.presence = true;
  auto alice = online(o);
  auto bob = online(options("bob"));
  auto group = io_.call<Result<client::Group>>(
      [&](auto done) { alice->raw().api().createGroup("pair", {"bob"}, std::move(done)); });
  ASSERT_TRUE(group);
  // Bob becomes a contact only now: his next connection is announced.
  bob->drop();
  ASSERT_TRUE(waitFor([&] {
    for (auto& p : alice->rec().presence()) {
      if (p.username == "bob" && p.online) return true;
    }
    return false;
  }));
}

TEST_P(ClientTest, OverTlsWithTheServersCertificate) {
  const std::string tls = PIGEON_TEST_TLS_DIR;
  server_ = std::make_unique<PigeondProcess>(
      dir_.path() + "/tls-data",
      std::vector<std::string>{"--tls-cert", tls + "/cert.pem", "--tls-key", tls + "/key.pem"});
  scheme_ = "https";
  startServer();

  auto trusted = [&](const std::string& user) {
    auto o = options(user);
    o.tls.ca_file = tls + "/cert.pem";  // verified, host name (127.0.0.1) included
    return o;
  };
  auto alice = online(trusted("alice"));
  auto bob = online(trusted("bob"));
  const auto* session = io_.run([&] { return alice->raw().session(); });
  ASSERT_NE(session, nullptr);
  EXPECT_TRUE(session->gateway_tcp.starts_with("tls://")) << session->gateway_tcp;
  EXPECT_TRUE(session->gateway_ws.starts_with("wss://")) << session->gateway_ws;
  alice->send(Destination::toUser("bob"), "over TLS");
  ASSERT_TRUE(waitFor([&] { return bob->rec().messageCount() == 1; }));
  EXPECT_EQ(bob->rec().bodies()[0], "over TLS");

  // The test certificate is not among the system's CAs: verification fails, start() says so.
  TestClient untrusting(io_, options("carol"));
  auto refused = untrusting.start();
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::Unavailable);
  EXPECT_NE(refused.error().message.find("TLS"), std::string::npos) << refused.error().message;
  EXPECT_EQ(untrusting.state(), State::Stopped);

  // Verification off (tests only) connects anyway.
  auto o = options("dave");
  o.tls.verify_peer = false;
  auto dave = online(o);
  dave->send(Destination::toUser("bob"), "unverified");
  ASSERT_TRUE(waitFor([&] { return bob->rec().messageCount() == 2; }));
}

// The history of the one conversation between two users, as the HTTP API has it.
std::vector<Message> historyOf(Io& io, TestClient& reader, const std::string& conversation) {
  auto page = io.call<Result<client::HistoryPage>>(
      [&](auto done) { reader.raw().api().history(conversation, 0, 500, std::move(done)); });
  EXPECT_TRUE(page) << page.error().message;
  return page ? page->messages : std::vector<Message>{};
}

TEST_P(ClientTest, StopSendsWhatWasQueuedWhileTheServerWasAway) {
  auto bob = online(options("bob"));
  auto o = options("alice");
  o.stop_timeout = 60s;  // the server is started again after stop(): give it time under ASan
  auto alice = online(o);
  alice->send(Destination::toUser("bob"), "before");
  ASSERT_TRUE(waitFor([&] { return alice->rec().okResults() == 1; }));

  const std::size_t mark = alice->rec().stateCount();
  ASSERT_EQ(server_->terminate(), 0);
  ASSERT_TRUE(waitFor([&] {
    return alice->rec()
        .when(mark, [](const StateChange& s) { return s.state == State::Waiting; })
        .has_value();
  }));
  // Queued while the server is away, then stop(): it must get them stored, not give up.
  const auto queued = numbered("queued ", 0, 20);
  for (const auto& body : queued) alice->send(Destination::toUser("bob"), body);
  const std::size_t stop_mark = alice->rec().stateCount();
  auto stopped = alice->stopLater();
  EXPECT_EQ(alice->state(), State::Stopping);
  EXPECT_EQ(alice->pending(), queued.size());
  startServer();  // back on the same data (other ports: resolve_server follows)
  ASSERT_EQ(stopped.wait_for(60s), std::future_status::ready);
  EXPECT_EQ(alice->state(), State::Stopped);

  // Every send answered with a receipt, none given up.
  const auto results = alice->rec().results();
  ASSERT_EQ(results.size(), queued.size() + 1);
  for (const auto& r : results) {
    ASSERT_TRUE(r.receipt) << r.client_msg_id << ": " << r.receipt.error().message;
    EXPECT_FALSE(r.receipt->duplicate);
  }
  EXPECT_EQ(alice->pending(), 0u);
  // Nothing but Stopping then Stopped was reported once stop() was called.
  std::vector<State> after_stop;
  for (std::size_t i = stop_mark; i < alice->rec().states().size(); ++i) {
    after_stop.push_back(alice->rec().states()[i].state);
  }
  EXPECT_EQ(after_stop, (std::vector<State>{State::Stopping, State::Stopped}));
  EXPECT_GE(alice->stats().connects, 2u);

  // Stored exactly once, in order: bob (reconnected) gets each once, and the conversation's
  // history over HTTP has conv_seq 1..21.
  auto expected = queued;
  expected.insert(expected.begin(), "before");
  ASSERT_TRUE(waitFor([&] { return bob->rec().messageCount() >= expected.size(); }, 30s));
  EXPECT_EQ(bob->rec().bodies(), expected);
  expectGapless(bob->rec());
  const auto history = historyOf(io_, *bob, bob->rec().messages()[0].conversation);
  ASSERT_EQ(history.size(), expected.size());
  for (std::size_t i = 0; i < history.size(); ++i) {
    EXPECT_EQ(history[i].body, expected[i]);
    EXPECT_EQ(history[i].conv_seq, i + 1);
  }
}

TEST_P(ClientTest, StopFromTheOnlineCallbackSendsWhatWasQueued) {
  auto bob = online(options("bob"));
  TestClient alice(io_, options("alice"));
  std::promise<void> stopped;
  alice.rec().on_state = [&](const StateChange& s) {
    if (s.state == State::Online) alice.raw().stop([&] { stopped.set_value(); });
  };
  const auto queued = numbered("early ", 0, 10);
  for (const auto& body : queued) alice.send(Destination::toUser("bob"), body);  // before start
  ASSERT_TRUE(alice.start());
  ASSERT_EQ(stopped.get_future().wait_for(30s), std::future_status::ready);
  EXPECT_EQ(alice.state(), State::Stopped);
  ASSERT_EQ(alice.rec().okResults(), queued.size());
  EXPECT_EQ(alice.rec().results().size(), queued.size());
  ASSERT_TRUE(waitFor([&] { return bob->rec().messageCount() >= queued.size(); }));
  EXPECT_EQ(bob->rec().bodies(), queued);
  // The stopping connection started no sync: nothing was handed over, no catch-up.
  EXPECT_EQ(alice.rec().messageCount(), 0u);
  EXPECT_TRUE(alice.rec().caughtUp().empty());
}

TEST_P(ClientTest, StopRightAfterARefusedSendStillStoresTheOthersOnce) {
  // Over STOMP the refusal ends the connection and the sends after it are not stored there:
  // stop() connects again for them.
  auto bob = online(options("bob"));
  auto alice = online(options("alice"));
  const std::vector<std::string> bodies{"one", "lost", "two", "three"};
  const auto ids = io_.run([&] {
    std::vector<std::string> out;
    for (const auto& body : bodies) {
      out.push_back(
          alice->raw().send(Destination::toUser(body == "lost" ? "nobody-here" : "bob"), body));
    }
    alice->raw().stop([] {});  // at once: nothing is answered yet
    return out;
  });
  ASSERT_TRUE(waitFor([&] { return alice->state() == State::Stopped; }, 30s));
  std::map<std::string, SendResult> by_id;
  for (auto& r : alice->rec().results()) by_id.emplace(r.client_msg_id, r);
  ASSERT_EQ(by_id.size(), 4u);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const auto& r = by_id.at(ids[i]);
    if (bodies[i] == "lost") {
      ASSERT_FALSE(r.receipt);
      EXPECT_EQ(r.receipt.error().code, Errc::NotFound);
    } else {
      EXPECT_TRUE(r.receipt) << bodies[i] << ": " << r.receipt.error().message;
    }
  }
  if (GetParam() == Transport::WebSocket) {
    EXPECT_GE(alice->stats().connects, 2u);
    EXPECT_GE(alice->stats().sends_retried, 2u);
  }
  ASSERT_TRUE(waitFor([&] { return bob->rec().messageCount() >= 3; }));
  EXPECT_EQ(bob->rec().bodies(), (std::vector<std::string>{"one", "two", "three"}));
  const auto history = historyOf(io_, *bob, bob->rec().messages()[0].conversation);
  EXPECT_EQ(history.size(), 3u);
}

TEST_P(ClientTest, StopGivesUpAfterStopTimeoutWhenTheServerStaysAway) {
  auto o = options("alice");
  o.stop_timeout = 300ms;
  auto alice = online(o);
  const std::size_t mark = alice->rec().stateCount();
  ASSERT_EQ(server_->terminate(), 0);
  ASSERT_TRUE(waitFor([&] {
    return alice->rec()
        .when(mark, [](const StateChange& s) { return s.state == State::Waiting; })
        .has_value();
  }));
  for (const auto& body : numbered("never ", 0, 3)) alice->send(Destination::toUser("bob"), body);
  const auto begun = std::chrono::steady_clock::now();
  auto stopped = alice->stopLater();
  ASSERT_EQ(stopped.wait_for(10s), std::future_status::ready);
  const auto took = std::chrono::steady_clock::now() - begun;
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 5s);
  const auto results = alice->rec().results();
  ASSERT_EQ(results.size(), 3u);
  for (const auto& r : results) {
    ASSERT_FALSE(r.receipt);
    EXPECT_EQ(r.receipt.error().code, Errc::Unavailable);
    EXPECT_NE(r.receipt.error().message.find("stop_timeout"), std::string::npos)
        << r.receipt.error().message;
  }
}

TEST_P(ClientTest, CaughtUpComesOnceTheBacklogIsHandedOver) {
  auto alice = online(options("alice"));
  {
    // A new device with nothing waiting is caught up at once.
    auto bob = online(options("bob"));
    ASSERT_TRUE(waitFor([&] { return bob->rec().caughtUp().size() == 1; }));
    const auto c = bob->rec().caughtUp()[0];
    EXPECT_EQ(c.after_seq, 0u);
    EXPECT_EQ(c.end_seq, 0u);
    EXPECT_EQ(c.messages, 0u);
    EXPECT_TRUE(c.first);
    bob->stop();
  }
  const std::size_t kBacklog = 300;
  for (auto& body : numbered("away ", 0, int(kBacklog))) {
    alice->send(Destination::toUser("bob"), body);
  }
  ASSERT_TRUE(waitFor([&] { return alice->rec().okResults() == kBacklog; }, 30s));

  auto bob = online(options("bob"));
  ASSERT_TRUE(waitFor([&] { return bob->rec().caughtUp().size() == 1; }, 30s));
  // Everything that was waiting had been handed over when the signal came.
  EXPECT_EQ(bob->rec().messagesAtCaughtUp()[0], kBacklog);
  auto c = bob->rec().caughtUp()[0];
  EXPECT_EQ(c.after_seq, 0u);
  EXPECT_EQ(c.end_seq, kBacklog);
  EXPECT_EQ(c.messages, kBacklog);
  EXPECT_TRUE(c.first);
  // A handful of tiny probes, not a second read of the backlog.
  EXPECT_LE(bob->stats().inbox_end_probes, 2u * 9 + 3);
  EXPECT_EQ(bob->rec().bodies(), numbered("away ", 0, int(kBacklog)));

  // Live messages do not repeat it; a new connection catches up again (nothing missed).
  alice->send(Destination::toUser("bob"), "live");
  ASSERT_TRUE(waitFor([&] { return bob->rec().messageCount() == kBacklog + 1; }));
  EXPECT_EQ(bob->rec().caughtUp().size(), 1u);
  bob->drop();
  ASSERT_TRUE(waitFor([&] { return bob->rec().caughtUp().size() == 2; }));
  c = bob->rec().caughtUp()[1];
  EXPECT_EQ(c.after_seq, kBacklog + 1);
  EXPECT_EQ(c.end_seq, kBacklog + 1);
  EXPECT_EQ(c.messages, 0u);
  EXPECT_FALSE(c.first);
}

TEST_P(ClientTest, CaughtUpUnderLiveTrafficCoversTheBacklogAtSyncStart) {
  auto alice = online(options("alice"));
  { online(options("bob"))->stop(); }
  for (auto& body : numbered("m", 0, 100)) alice->send(Destination::toUser("bob"), body);
  ASSERT_TRUE(waitFor([&] { return alice->rec().okResults() == 100; }, 30s));
  // More keep coming while bob syncs: the signal must come anyway, after at least the 100.
  for (auto& body : numbered("m", 100, 400)) alice->send(Destination::toUser("bob"), body);
  auto bob = online(options("bob"));
  ASSERT_TRUE(waitFor([&] { return bob->rec().caughtUp().size() == 1; }, 30s));
  EXPECT_GE(bob->rec().messagesAtCaughtUp()[0], 100u);
  const auto c = bob->rec().caughtUp()[0];
  EXPECT_GE(c.end_seq, 100u);
  EXPECT_EQ(c.messages, bob->rec().messagesAtCaughtUp()[0]);
  ASSERT_TRUE(waitFor([&] { return bob->rec().messageCount() >= 400; }, 30s));
  EXPECT_EQ(bob->rec().bodies(), numbered("m", 0, 400));
  expectGapless(bob->rec());
}

TEST_P(ClientTest, StopAcknowledgesOverHttpWhatNoGoodbyeCovered) {
  auto alice = online(options("alice"));
  auto o = options("bob");
  o.ack_delay = 60s;  // nothing is acknowledged on the connection that got the messages
  o.ack_batch = 1000;
  auto bob = online(o);
  for (auto& body : numbered("n", 0, 10)) alice->send(Destination::toUser("bob"), body);
  ASSERT_TRUE(waitFor([&] { return bob->rec().messageCount() == 10; }));
  EXPECT_EQ(bob->stats().acks_sent, 0u);
  bob->drop();  // that connection is gone with its acks; the next one cannot acknowledge them
  ASSERT_TRUE(waitFor([&] { return bob->stats().connects == 2 && bob->online(); }));
  bob->stop();
  bob.reset();
  // The device's cursor moved anyway: a new process of it gets nothing again.
  auto again = online(options("bob"));
  ASSERT_TRUE(waitFor([&] { return again->rec().caughtUp().size() == 1; }));
  EXPECT_EQ(again->rec().caughtUp()[0].after_seq, 10u);
  EXPECT_EQ(again->rec().messageCount(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Transports, ClientTest,
                         ::testing::Values(Transport::Tcp, Transport::WebSocket), transportName);

}  // namespace
}  // namespace pigeon::test
