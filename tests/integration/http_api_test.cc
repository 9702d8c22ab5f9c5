// The HTTP API end to end, against the real pigeond: every endpoint, and every kind of bad
// input with its documented error, checking that nothing is stored for a rejected request and
// that the server keeps serving others.
#include <gtest/gtest.h>

#include <atomic>
#include <cctype>
#include <boost/json.hpp>

#include "support/http_client.h"
#include "support/pigeond_process.h"

namespace pigeon::test {
namespace {

namespace json = boost::json;

std::string str(const json::value& v, std::string_view key) {
  return std::string(v.at(key).as_string());
}
std::int64_t num(const json::value& v, std::string_view key) {
  return v.at(key).to_number<std::int64_t>();
}

class HttpApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    server_ = new PigeondProcess(dir_->path() + "/data", {"--token-ttl", "3600"});
    server_->start();
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
  }

  HttpClient client() const { return HttpClient(server_->httpPort()); }

  // Registers `name` (unique per test) and returns a client logged in as it.
  HttpClient login(const std::string& name, const std::string& device = "phone") {
    auto c = client();
    auto reg =
        c.post("/api/v1/users", json::object{{"username", name}, {"password", "password123"}});
    EXPECT_TRUE(reg.status == 201 || reg.status == 409) << reg.body;
    auto res =
        c.post("/api/v1/sessions",
               json::object{{"username", name}, {"password", "password123"}, {"device", device}});
    EXPECT_EQ(res.status, 200) << res.body;
    c.setToken(str(res.json(), "token"));
    return c;
  }

  static std::string unique(const std::string& base) {
    static std::atomic<int> n{0};
    return base + std::to_string(n.fetch_add(1));
  }

  static TempDir* dir_;
  static PigeondProcess* server_;
};
TempDir* HttpApiTest::dir_ = nullptr;
PigeondProcess* HttpApiTest::server_ = nullptr;

TEST_F(HttpApiTest, HealthAndMetrics) {
  auto health = client().get("/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(str(health.json(), "status"), "ok");
  auto metrics = client().get("/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.headers["content-type"].find("text/plain"), std::string::npos);
  EXPECT_NE(metrics.body.find("# TYPE pigeon_http_requests_total counter"), std::string::npos);
  EXPECT_NE(metrics.body.find("pigeon_store_commit_seconds_bucket"), std::string::npos);
  EXPECT_NE(metrics.body.find("pigeon_messages_stored_total"), std::string::npos);
}

TEST_F(HttpApiTest, RegisterAndLogin) {
  const std::string name = unique("reg");
  auto c = client();
  auto reg = c.post("/api/v1/users", json::object{{"username", name}, {"password", "password123"}});
  ASSERT_EQ(reg.status, 201) << reg.body;
  EXPECT_EQ(str(reg.json(), "username"), name);
  EXPECT_FALSE(str(reg.json(), "user_id").empty());

  auto again =
      c.post("/api/v1/users", json::object{{"username", name}, {"password", "password123"}});
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(again.errorCode(), "conflict");

  auto login =
      c.post("/api/v1/sessions",
             json::object{{"username", name}, {"password", "password123"}, {"device", "web"}});
  ASSERT_EQ(login.status, 200) << login.body;
  auto v = login.json();
  EXPECT_EQ(str(v, "token").size(), 43u);
  EXPECT_EQ(str(v, "user_id"), str(reg.json(), "user_id"));
  EXPECT_EQ(str(v, "device"), "web");
  EXPECT_GT(num(v, "expires_at"), 0);
  ASSERT_TRUE(v.at("gateway").is_object());
  EXPECT_TRUE(v.at("gateway").as_object().contains("ws"));
  EXPECT_TRUE(v.at("gateway").as_object().contains("tcp"));

  auto wrong =
      c.post("/api/v1/sessions",
             json::object{{"username", name}, {"password", "password999"}, {"device", "web"}});
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(wrong.errorCode(), "unauthenticated");
}

TEST_F(HttpApiTest, ChatSyncAckAndHistory) {
  const std::string a = unique("alice"), b = unique("bob");
  auto alice = login(a);
  auto bob = login(b);
  std::string conversation;
  for (int i = 1; i <= 3; ++i) {
    auto sent =
        alice.post("/api/v1/messages", json::object{{"to_user", b},
                                                    {"body", "hi " + std::to_string(i)},
                                                    {"client_msg_id", "c" + std::to_string(i)}});
    ASSERT_EQ(sent.status, 200) << sent.body;
    auto v = sent.json();
    EXPECT_EQ(num(v, "conv_seq"), i);
    EXPECT_EQ(num(v, "seq"), i);
    EXPECT_FALSE(str(v, "msg_id").empty());
    EXPECT_GT(num(v, "sent_at"), 0);
    conversation = str(v, "conversation");
  }
  // Same client_msg_id: same answer, nothing new stored.
  auto dup = alice.post("/api/v1/messages",
                        json::object{{"to_user", b}, {"body", "hi 3"}, {"client_msg_id", "c3"}});
  ASSERT_EQ(dup.status, 200);
  EXPECT_EQ(num(dup.json(), "conv_seq"), 3);
  EXPECT_TRUE(dup.json().at("duplicate").as_bool());

  auto sync = bob.get("/api/v1/sync?limit=2");
  ASSERT_EQ(sync.status, 200) << sync.body;
  auto sv = sync.json();
  ASSERT_EQ(sv.at("messages").as_array().size(), 2u);
  EXPECT_TRUE(sv.at("has_more").as_bool());
  EXPECT_EQ(num(sv, "last_seq"), 2);
  const auto& m0 = sv.at("messages").as_array()[0];
  EXPECT_EQ(str(m0, "from"), a);
  EXPECT_EQ(str(m0, "body"), "hi 1");
  EXPECT_EQ(str(m0, "content_type"), "text/plain");
  EXPECT_EQ(str(m0, "conversation"), conversation);
  EXPECT_EQ(num(m0, "seq"), 1);
  EXPECT_EQ(num(m0, "conv_seq"), 1);
  EXPECT_EQ(str(m0, "client_msg_id"), "c1");

  auto ack = bob.post("/api/v1/ack", json::object{{"seq", 2}});
  EXPECT_EQ(ack.status, 204) << ack.body;
  auto rest = bob.get("/api/v1/sync");  // after the device's cursor
  ASSERT_EQ(rest.status, 200);
  ASSERT_EQ(rest.json().at("messages").as_array().size(), 1u);
  EXPECT_EQ(num(rest.json().at("messages").as_array()[0], "seq"), 3);
  EXPECT_FALSE(rest.json().at("has_more").as_bool());
  auto past_end = bob.post("/api/v1/ack", json::object{{"seq", 99}});
  EXPECT_EQ(past_end.status, 400);

  auto history = bob.get("/api/v1/conversations/" + conversation + "/messages?limit=2");
  ASSERT_EQ(history.status, 200) << history.body;
  auto hv = history.json().at("messages").as_array();
  ASSERT_EQ(hv.size(), 2u);
  EXPECT_EQ(num(hv[0], "conv_seq"), 2);
  EXPECT_EQ(num(hv[1], "conv_seq"), 3);
  EXPECT_TRUE(history.json().at("has_more").as_bool());
  auto older = bob.get("/api/v1/conversations/" + conversation + "/messages?before=2");
  ASSERT_EQ(older.status, 200);
  ASSERT_EQ(older.json().at("messages").as_array().size(), 1u);
  EXPECT_FALSE(older.json().at("has_more").as_bool());
}

TEST_F(HttpApiTest, SearchTheCallersMessages) {
  const std::string a = unique("alice"), b = unique("bob"), c = unique("carol");
  auto alice = login(a);
  auto bob = login(b);
  auto carol = login(c);
  const std::string word = unique("Kumquat");  // unique: the lobby is shared between tests
  ASSERT_EQ(bob.post("/api/v1/messages", json::object{{"to_user", a}, {"body", "a " + word}}).status,
            200);
  ASSERT_EQ(carol.post("/api/v1/messages", json::object{{"to_user", b}, {"body", word}}).status,
            200);  // not alice's
  ASSERT_EQ(alice.post("/api/v1/messages",
                       json::object{{"to_group", "lobby"}, {"body", "my " + word + " 🍊"}})
                .status,
            200);

  // Case-insensitive for ASCII, UTF-8 in the query (percent-encoded), newest first.
  std::string lower = word;
  for (char& ch : lower) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  auto found = alice.get("/api/v1/messages/search?q=" + lower + "%20%F0%9F%8D%8A");
  ASSERT_EQ(found.status, 200) << found.body;
  auto fv = found.json();
  ASSERT_EQ(fv.at("messages").as_array().size(), 1u);
  EXPECT_EQ(str(fv.at("messages").as_array()[0], "conversation"), "g:1");

  auto both = alice.get("/api/v1/messages/search?q=" + lower + "&limit=10");
  ASSERT_EQ(both.status, 200) << both.body;
  auto bv = both.json();
  const auto& items = bv.at("messages").as_array();
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(str(items[0], "from"), a);
  EXPECT_EQ(str(items[0], "body"), "my " + word + " 🍊");
  EXPECT_EQ(str(items[1], "from"), b);
  EXPECT_EQ(str(items[1], "body"), "a " + word);
  EXPECT_EQ(str(items[1], "content_type"), "text/plain");
  EXPECT_FALSE(str(items[1], "msg_id").empty());
  EXPECT_GT(num(items[0], "seq"), num(items[1], "seq"));
  EXPECT_GT(num(items[1], "conv_seq"), 0);
  EXPECT_TRUE(bv.at("complete").as_bool());
  EXPECT_TRUE(bv.at("next_before").is_null());
  EXPECT_GE(num(bv, "scanned"), 2);

  auto one = alice.get("/api/v1/messages/search?q=" + word + "&limit=1");
  ASSERT_EQ(one.status, 200);
  EXPECT_FALSE(one.json().at("complete").as_bool());
  auto next = num(one.json(), "next_before");
  auto rest = alice.get("/api/v1/messages/search?q=" + word + "&before=" + std::to_string(next));
  ASSERT_EQ(rest.status, 200);
  ASSERT_EQ(rest.json().at("messages").as_array().size(), 1u);
  EXPECT_EQ(str(rest.json().at("messages").as_array()[0], "from"), b);

  EXPECT_EQ(alice.get("/api/v1/messages/search").status, 400);
  EXPECT_EQ(alice.get("/api/v1/messages/search?q=").status, 400);
  EXPECT_EQ(alice.get("/api/v1/messages/search?q=" + std::string(257, 'x')).status, 400);
  EXPECT_EQ(alice.get("/api/v1/messages/search?q=%FF").status, 400);
  EXPECT_EQ(alice.get("/api/v1/messages/search?q=x&limit=0").status, 400);
  EXPECT_EQ(alice.get("/api/v1/messages/search?q=x&limit=abc").status, 400);
  EXPECT_EQ(alice.post("/api/v1/messages/search", json::object{}).status, 405);
  EXPECT_EQ(client().get("/api/v1/messages/search?q=x").status, 401);
}

TEST_F(HttpApiTest, GroupsEndToEnd) {
  const std::string a = unique("owner"), b = unique("member"), c = unique("outsider");
  auto owner = login(a);
  auto member = login(b);
  auto outsider = login(c);
  auto created =
      owner.post("/api/v1/groups", json::object{{"name", "team"}, {"members", json::array{b}}});
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string gid = str(created.json(), "group_id");
  EXPECT_EQ(num(created.json(), "member_count"), 2);
  EXPECT_EQ(str(created.json(), "owner"), a);

  auto sent =
      member.post("/api/v1/messages", json::object{{"to_group", gid}, {"body", "hello team"}});
  ASSERT_EQ(sent.status, 200) << sent.body;
  EXPECT_EQ(str(sent.json(), "conversation"), "g:" + gid);
  auto owner_sync = owner.get("/api/v1/sync");
  ASSERT_EQ(owner_sync.json().at("messages").as_array().size(), 1u);

  // Outsiders can neither read, write nor manage the group; nothing is stored.
  EXPECT_EQ(outsider.get("/api/v1/groups/" + gid).status, 403);
  auto denied = outsider.post("/api/v1/messages", json::object{{"to_group", gid}, {"body", "x"}});
  EXPECT_EQ(denied.status, 403);
  EXPECT_EQ(denied.errorCode(), "forbidden");
  EXPECT_EQ(outsider.get("/api/v1/conversations/g:" + gid + "/messages").status, 403);
  EXPECT_EQ(member.post("/api/v1/groups/" + gid + "/members", json::object{{"username", c}}).status,
            403);
  EXPECT_EQ(owner.get("/api/v1/conversations/g:" + gid + "/messages")
                .json()
                .at("messages")
                .as_array()
                .size(),
            1u);

  EXPECT_EQ(owner.post("/api/v1/groups/" + gid + "/members", json::object{{"username", c}}).status,
            204);
  EXPECT_EQ(owner.post("/api/v1/groups/" + gid + "/members", json::object{{"username", c}}).status,
            409);
  auto view = outsider.get("/api/v1/groups/" + gid);
  ASSERT_EQ(view.status, 200);
  EXPECT_EQ(view.json().at("members").as_array().size(), 3u);
  EXPECT_EQ(outsider.del("/api/v1/groups/" + gid + "/members/" + c).status, 204);  // leave
  EXPECT_EQ(owner.del("/api/v1/groups/" + gid + "/members/" + b).status, 204);
  EXPECT_EQ(owner.del("/api/v1/groups/" + gid + "/members/" + a).status, 409);  // owner stays

  auto mine = owner.get("/api/v1/groups");
  ASSERT_EQ(mine.status, 200);
  auto groups = mine.json().at("groups").as_array();
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(str(groups[0], "name"), "lobby");
  EXPECT_EQ(str(groups[1], "group_id"), gid);

  EXPECT_EQ(owner.get("/api/v1/groups/424242").status, 404);
  EXPECT_EQ(owner.get("/api/v1/groups/abc").status, 400);
  auto lobby =
      member.post("/api/v1/messages", json::object{{"to_group", "lobby"}, {"body", "hi all"}});
  ASSERT_EQ(lobby.status, 200) << lobby.body;
  EXPECT_EQ(str(lobby.json(), "conversation"), "g:1");
}

TEST_F(HttpApiTest, UsersByPrefixNeedsAToken) {
  const std::string prefix = unique("pfx");
  auto a = login(prefix + "a");
  login(prefix + "b");
  auto found = a.get("/api/v1/users?prefix=" + prefix);
  ASSERT_EQ(found.status, 200);
  ASSERT_EQ(found.json().at("users").as_array().size(), 2u);
  EXPECT_EQ(str(found.json().at("users").as_array()[0], "username"), prefix + "a");
  EXPECT_EQ(client().get("/api/v1/users?prefix=" + prefix).status, 401);
  EXPECT_EQ(a.get("/api/v1/users?limit=0").status, 400);
}

TEST_F(HttpApiTest, MalformedJsonWrongTypesAndMissingFields) {
  const std::string a = unique("bad"), b = unique("victim");
  auto alice = login(a);
  auto bob = login(b);
  struct Case {
    std::string target, body;
  };
  const std::vector<Case> cases = {
      {"/api/v1/messages", "{\"to_user\": \"" + b + "\", \"body\": \"x\""},  // truncated
      {"/api/v1/messages", "not json"},
      {"/api/v1/messages", "[1,2,3]"},
      {"/api/v1/messages", ""},
      {"/api/v1/messages", "{\"to_user\": 42, \"body\": \"x\"}"},
      {"/api/v1/messages", "{\"to_user\": \"" + b + "\", \"body\": 7}"},
      {"/api/v1/messages", "{\"to_user\": \"" + b + "\"}"},
      {"/api/v1/messages", "{\"body\": \"nobody to send to\"}"},
      {"/api/v1/messages",
       "{\"to_user\": \"" + b + "\", \"to_group\": \"lobby\", \"body\": \"x\"}"},
      {"/api/v1/messages", "{\"to_group\": 5, \"body\": \"x\"}"},
      {"/api/v1/ack", "{\"seq\": \"1\"}"},
      {"/api/v1/ack", "{\"seq\": -1}"},
      {"/api/v1/ack", "{}"},
      {"/api/v1/groups", "{\"name\": \"g\", \"members\": \"" + b + "\"}"},
      {"/api/v1/groups", "{\"members\": []}"},
      {"/api/v1/users", "{\"username\": \"x\"}"},
      {"/api/v1/users", "{\"username\": [], \"password\": \"password123\"}"},
      {"/api/v1/sessions", "{\"username\": \"" + a + "\"}"},
      {"/api/v1/messages", std::string(100, '[') + std::string(100, ']')},  // deeper than allowed
  };
  for (const auto& c : cases) {
    auto res = alice.postRaw(c.target, c.body);
    EXPECT_EQ(res.status, 400) << c.target << " " << c.body << " -> " << res.body;
    EXPECT_EQ(res.errorCode(), "bad_request") << c.body;
    auto v = res.json();
    ASSERT_TRUE(v.is_object()) << res.body;
    EXPECT_FALSE(v.at("error").at("message").as_string().empty());
  }
  EXPECT_TRUE(bob.get("/api/v1/sync").json().at("messages").as_array().empty());
  EXPECT_EQ(alice.get("/api/v1/sync?after=x").status, 400);
  EXPECT_EQ(alice.get("/api/v1/sync?limit=100000").status, 400);
  EXPECT_EQ(alice.get("/api/v1/conversations/zzz/messages").status, 400);
  EXPECT_EQ(alice.get("/api/v1/nothing-here").status, 404);
  EXPECT_EQ(alice.request("PUT", "/api/v1/messages", "{}").status, 405);
}

TEST_F(HttpApiTest, UnknownTargetsAndOtherUsersData) {
  const std::string a = unique("ua"), b = unique("ub"), e = unique("eve");
  auto alice = login(a);
  auto bob = login(b);
  auto eve = login(e);
  auto sent = alice.post("/api/v1/messages", json::object{{"to_user", b}, {"body", "private"}});
  ASSERT_EQ(sent.status, 200);
  const std::string conv = str(sent.json(), "conversation");

  auto missing_user =
      alice.post("/api/v1/messages", json::object{{"to_user", "no-such-user"}, {"body", "x"}});
  EXPECT_EQ(missing_user.status, 404);
  EXPECT_EQ(missing_user.errorCode(), "not_found");
  EXPECT_EQ(
      alice.post("/api/v1/messages", json::object{{"to_group", "987654"}, {"body", "x"}}).status,
      404);
  // Eve cannot read Alice and Bob's conversation, and her inbox does not have it.
  auto peek = eve.get("/api/v1/conversations/" + conv + "/messages");
  EXPECT_EQ(peek.status, 403);
  EXPECT_EQ(peek.errorCode(), "forbidden");
  EXPECT_TRUE(eve.get("/api/v1/sync").json().at("messages").as_array().empty());
  EXPECT_EQ(bob.get("/api/v1/sync").json().at("messages").as_array().size(), 1u);
}

TEST_F(HttpApiTest, ForgedMissingAndLoggedOutTokens) {
  auto alice = login(unique("tok"));
  auto forged = client();
  forged.setToken("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
  auto res = forged.get("/api/v1/sync");
  EXPECT_EQ(res.status, 401);
  EXPECT_EQ(res.errorCode(), "unauthenticated");
  EXPECT_EQ(res.headers["www-authenticate"], "Bearer");
  EXPECT_EQ(client().get("/api/v1/sync").status, 401);
  EXPECT_EQ(client().post("/api/v1/messages", json::object{{"to_user", "x"}, {"body", "y"}}).status,
            401);

  EXPECT_EQ(alice.get("/api/v1/sync").status, 200);
  EXPECT_EQ(alice.del("/api/v1/sessions").status, 204);
  EXPECT_EQ(alice.get("/api/v1/sync").status, 401);
  EXPECT_EQ(alice.del("/api/v1/sessions").status, 401);
}

TEST_F(HttpApiTest, HugeBodiesAndBrokenHttpAreRefusedAndTheServerGoesOn) {
  const std::string a = unique("big"), b = unique("bigrcpt");
  auto alice = login(a);
  auto bob = login(b);
  // Over the HTTP body limit: 413 before any parsing.
  auto huge = alice.postRaw("/api/v1/messages", std::string(1 << 20, 'x'));
  EXPECT_EQ(huge.status, 413);
  EXPECT_EQ(huge.errorCode(), "too_large");
  // A message body over the message limit inside a valid request: 413 too.
  auto big_msg = alice.post(
      "/api/v1/messages", json::object{{"to_user", b}, {"body", std::string(64 * 1024 + 1, 'y')}});
  EXPECT_EQ(big_msg.status, 413) << big_msg.body;
  // Not HTTP at all.
  auto garbage = client().sendRaw("HELLO\r\n\r\n");
  EXPECT_EQ(garbage.status, 400);
  EXPECT_TRUE(bob.get("/api/v1/sync").json().at("messages").as_array().empty());
  // Everyone else is still served.
  EXPECT_EQ(client().get("/healthz").status, 200);
  EXPECT_EQ(alice.post("/api/v1/messages", json::object{{"to_user", b}, {"body", "small"}}).status,
            200);
}

TEST(HttpApiLimits, ExpiredTokensAreRefused) {
  TempDir dir;
  PigeondProcess server(dir.path() + "/data", {"--token-ttl", "1"});
  server.start();
  HttpClient c(server.httpPort());
  ASSERT_EQ(
      c.post("/api/v1/users", json::object{{"username", "shortlived"}, {"password", "password123"}})
          .status,
      201);
  auto login = c.post("/api/v1/sessions",
                      json::object{{"username", "shortlived"}, {"password", "password123"}});
  ASSERT_EQ(login.status, 200);
  c.setToken(str(login.json(), "token"));
  HttpResponse last;
  ASSERT_TRUE(waitFor(
      [&] {
        last = c.get("/api/v1/sync");
        return last.status == 401;
      },
      std::chrono::seconds(10)));
  EXPECT_NE(last.body.find("token expired"), std::string::npos) << last.body;
}

TEST(HttpApiLimits, TooManyRequestsFromOneClientLeaveOthersServed) {
  TempDir dir;
  PigeondProcess server(dir.path() + "/data", {"--rate-limit", "1", "--rate-burst", "5"});
  server.start();
  HttpClient noisy(server.httpPort(), "127.0.0.1");
  HttpClient quiet(server.httpPort(), "127.0.0.2");
  int limited = 0;
  HttpResponse refused;
  for (int i = 0; i < 20; ++i) {
    auto res = noisy.post("/api/v1/users", json::object{{"username", "flood" + std::to_string(i)},
                                                        {"password", "password123"}});
    if (res.status == 429) {
      ++limited;
      refused = res;
    }
  }
  EXPECT_GE(limited, 10);
  EXPECT_EQ(refused.errorCode(), "rate_limited");
  EXPECT_EQ(refused.headers["retry-after"], "1");
  // The refused registrations stored nothing: at most burst + refill accounts exist.
  auto other =
      quiet.post("/api/v1/users", json::object{{"username", "quiet"}, {"password", "password123"}});
  EXPECT_EQ(other.status, 201) << other.body;
  auto login = quiet.post("/api/v1/sessions",
                          json::object{{"username", "quiet"}, {"password", "password123"}});
  ASSERT_EQ(login.status, 200);
  quiet.setToken(str(login.json(), "token"));
  auto users = quiet.get("/api/v1/users?prefix=flood&limit=100");
  ASSERT_EQ(users.status, 200);
  EXPECT_EQ(users.json().at("users").as_array().size(), std::size_t(20 - limited));
}

TEST(HttpApiStatic, ServesTheWebRootWithHeadersAndNothingOutsideIt) {
  TempDir dir;
  PigeondProcess server(dir.path() + "/data", {"--web-root", PIGEON_WEB_FIXTURE});
  server.start();
  HttpClient c(server.httpPort());
  auto index = c.get("/");
  ASSERT_EQ(index.status, 200);
  EXPECT_EQ(index.headers["content-type"], "text/html; charset=utf-8");
  EXPECT_NE(index.headers["content-security-policy"].find("default-src 'self'"), std::string::npos);
  EXPECT_EQ(index.headers["cache-control"], "no-cache");
  EXPECT_EQ(c.get("/chat/bob").body, index.body);  // a client-side route
  auto js = c.get("/assets/app-1a2b.js");
  ASSERT_EQ(js.status, 200);
  EXPECT_NE(js.headers["cache-control"].find("immutable"), std::string::npos);
  auto head = c.request("HEAD", "/", "");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers["content-length"], std::to_string(index.body.size()));
  for (const char* bad : {"/../etc/passwd", "/%2e%2e/etc/passwd", "/..%2Fetc%2Fpasswd", "/missing.png"}) {
    EXPECT_EQ(c.get(bad).status, 404) << bad;
  }
  EXPECT_EQ(c.get("/api/v1/nothing").errorCode(), "not_found");
}

TEST(HttpApiLimits, ShutsDownCleanlyOnSigterm) {
  TempDir dir;
  PigeondProcess server(dir.path() + "/data");
  server.start();
  EXPECT_EQ(HttpClient(server.httpPort()).get("/healthz").status, 200);
  EXPECT_EQ(server.terminate(), 0);
}

}  // namespace
}  // namespace pigeon::test
