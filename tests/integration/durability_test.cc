// Durability: messages acknowledged over HTTP survive a SIGKILL of pigeond, and seqs go on
// after the restart with no gap and no repeat.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "support/http_client.h"
#include "support/pigeond_process.h"

namespace pigeon::test {
namespace {

namespace json = boost::json;

struct Acked {
  std::string msg_id;
  std::int64_t seq;  // sender's inbox seq
  std::int64_t conv_seq;
};

HttpClient loginAs(std::uint16_t port, const std::string& name) {
  HttpClient c(port);
  auto res =
      c.post("/api/v1/sessions",
             json::object{{"username", name}, {"password", "password123"}, {"device", "d1"}});
  EXPECT_EQ(res.status, 200) << res.body;
  c.setToken(std::string(res.json().at("token").as_string()));
  return c;
}

// Reads a user's whole inbox through /sync, page by page.
std::vector<json::object> readInbox(const HttpClient& c) {
  std::vector<json::object> all;
  std::int64_t after = 0;
  for (;;) {
    auto res = c.get("/api/v1/sync?after=" + std::to_string(after) + "&limit=500");
    EXPECT_EQ(res.status, 200) << res.body;
    if (res.status != 200) return all;
    auto v = res.json();
    for (const auto& m : v.at("messages").as_array()) all.push_back(m.as_object());
    after = v.at("last_seq").to_number<std::int64_t>();
    if (!v.at("has_more").as_bool()) return all;
  }
}

TEST(Durability, AcknowledgedMessagesSurviveSigkillAndSeqsContinue) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  PigeondProcess server(data, {"--durability", "sync", "--rate-limit", "0"});
  server.start();
  {
    HttpClient c(server.httpPort());
    for (const char* name : {"alice", "bob"}) {
      ASSERT_EQ(
          c.post("/api/v1/users", json::object{{"username", name}, {"password", "password123"}})
              .status,
          201);
    }
  }

  // Four senders write concurrently (so commits are grouped) until the server is killed.
  constexpr int kSenders = 4;
  std::mutex mu;
  std::map<std::string, Acked> acked;  // client_msg_id -> what the server answered
  std::set<std::string> attempted;
  std::atomic<bool> stop{false};
  std::atomic<int> acked_count{0};
  std::vector<std::thread> senders;
  for (int t = 0; t < kSenders; ++t) {
    senders.emplace_back([&, t] {
      HttpClient alice = loginAs(server.httpPort(), "alice");
      for (int i = 0; !stop.load(); ++i) {
        const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
        {
          std::lock_guard lock(mu);
          attempted.insert(id);
        }
        auto res = alice.post(
            "/api/v1/messages",
            json::object{{"to_user", "bob"}, {"body", "msg " + id}, {"client_msg_id", id}});
        if (res.status != 200) return;  // the server is gone
        auto v = res.json();
        std::lock_guard lock(mu);
        acked[id] =
            Acked{std::string(v.at("msg_id").as_string()), v.at("seq").to_number<std::int64_t>(),
                  v.at("conv_seq").to_number<std::int64_t>()};
        acked_count.fetch_add(1);
      }
    });
  }
  ASSERT_TRUE(waitFor([&] { return acked_count.load() >= 300; }, std::chrono::seconds(60)));
  server.kill9();  // while requests are in flight
  stop = true;
  for (auto& t : senders) t.join();
  ASSERT_GE(acked.size(), 300u);

  server.start();
  HttpClient bob = loginAs(server.httpPort(), "bob");
  HttpClient alice = loginAs(server.httpPort(), "alice");
  auto inbox = readInbox(bob);
  std::map<std::string, json::object> by_msg_id;
  for (std::size_t i = 0; i < inbox.size(); ++i) {
    // Gapless and in order: the i-th item has seq i+1 and conv_seq i+1 (one conversation).
    ASSERT_EQ(inbox[i].at("seq").to_number<std::int64_t>(), std::int64_t(i + 1));
    ASSERT_EQ(inbox[i].at("conv_seq").to_number<std::int64_t>(), std::int64_t(i + 1));
    by_msg_id[std::string(inbox[i].at("msg_id").as_string())] = inbox[i];
  }
  ASSERT_EQ(by_msg_id.size(), inbox.size()) << "a message is stored twice";
  for (const auto& [id, a] : acked) {
    auto it = by_msg_id.find(a.msg_id);
    ASSERT_NE(it, by_msg_id.end()) << "acknowledged message " << id << " was lost";
    EXPECT_EQ(it->second.at("body").as_string(), "msg " + id);
    EXPECT_EQ(it->second.at("conv_seq").to_number<std::int64_t>(), a.conv_seq);
  }
  // Alice's own inbox holds the same messages with the seqs she was given.
  auto alice_inbox = readInbox(alice);
  ASSERT_EQ(alice_inbox.size(), inbox.size());
  for (const auto& [id, a] : acked) {
    ASSERT_EQ(std::string(alice_inbox[std::size_t(a.seq - 1)].at("msg_id").as_string()), a.msg_id);
  }

  // A client retrying everything it attempted, with the same ids, stores each exactly once.
  for (const auto& id : attempted) {
    auto res =
        alice.post("/api/v1/messages",
                   json::object{{"to_user", "bob"}, {"body", "msg " + id}, {"client_msg_id", id}});
    ASSERT_EQ(res.status, 200) << res.body;
    if (auto it = acked.find(id); it != acked.end()) {
      EXPECT_EQ(std::string(res.json().at("msg_id").as_string()), it->second.msg_id);
      EXPECT_TRUE(res.json().at("duplicate").as_bool());
    }
  }
  auto after_retry = readInbox(bob);
  ASSERT_EQ(after_retry.size(), attempted.size());
  std::set<std::string> bodies;
  for (std::size_t i = 0; i < after_retry.size(); ++i) {
    ASSERT_EQ(after_retry[i].at("seq").to_number<std::int64_t>(), std::int64_t(i + 1));
    bodies.insert(std::string(after_retry[i].at("body").as_string()));
  }
  EXPECT_EQ(bodies.size(), attempted.size());

  // And the next message continues both sequences.
  auto next =
      alice.post("/api/v1/messages", json::object{{"to_user", "bob"}, {"body", "after restart"}});
  ASSERT_EQ(next.status, 200);
  EXPECT_EQ(next.json().at("conv_seq").to_number<std::int64_t>(),
            std::int64_t(attempted.size() + 1));
}

}  // namespace
}  // namespace pigeon::test
