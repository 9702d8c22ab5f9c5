// The MySQL engine against a real MariaDB: one server per run of this binary (started by
// scripts/services.sh in a temporary directory, on a free port), a fresh database per test.
// The conformance suite runs here too; the rest is what a shared database adds: migrations,
// several stores (as several nodes) writing at once, and the server dying under load.
#include "store/mysql/mysql_store.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <latch>
#include <map>
#include <semaphore>
#include <set>
#include <thread>

#include "store/mysql/connection.h"
#include "store/mysql/schema.h"
#include "store/store_conformance.h"

namespace pigeon::store {
namespace {

using namespace std::chrono_literals;
using conformance::appendAndWait;
using conformance::Completions;
using conformance::kDeadline;
using conformance::StoreConformance;
using Clock = std::chrono::steady_clock;

// ---- the server --------------------------------------------------------------------------------

// A port nothing listens on right now (the kernel's pick for a socket bound to port 0).
unsigned freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  unsigned port = 0;
  if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  if (fd >= 0) ::close(fd);
  return port;
}

// One MariaDB for the whole binary, run by scripts/services.sh.
class MariadbServer : public ::testing::Environment {
 public:
  void SetUp() override {
    spdlog::set_level(spdlog::level::warn);  // one line per store opened is too many here
    std::string tmpl = (std::filesystem::temp_directory_path() / "pigeon-mysql-test.XXXXXX");
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    // A port can be taken between freePort() and the server's bind: try a few.
    for (int attempt = 0; attempt < 3 && !up_; ++attempt) {
      port_ = freePort();
      ASSERT_NE(port_, 0u);
      up_ = start();
    }
    ASSERT_TRUE(up_) << "MariaDB did not start; see " << dir_;
  }

  void TearDown() override {
    if (up_) run("stop");
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  bool start() {
    up_ = run(fmt::format("start mariadb {} {}", dir_, port_)) == 0;
    return up_;
  }
  // SIGKILL, as in a crash.
  bool kill() {
    const bool killed = run("kill") == 0;
    if (killed) up_ = false;
    return killed;
  }
  bool up() const { return up_; }
  unsigned port() const { return port_; }

  MysqlOptions options(std::string database) const {
    MysqlOptions o;
    o.port = port_;
    o.database = std::move(database);
    return o;
  }

  // A connection with no database selected, for creating and dropping test databases.
  std::unique_ptr<mysql::Connection> admin(std::string database = "") const {
    mysql::ConnectionSettings s;
    s.host = "127.0.0.1";
    s.port = port_;
    s.user = "root";
    s.database = std::move(database);
    return std::make_unique<mysql::Connection>(s);
  }

 private:
  int run(const std::string& args) {
    const std::string cmd = fmt::format("{} {} >>{}/services.log 2>&1", PIGEON_SERVICES_SH,
                                        args.starts_with("start") ? args : args + " " + dir_, dir_);
    return std::system(cmd.c_str());
  }

  std::string dir_;
  unsigned port_ = 0;
  bool up_ = false;
};

MariadbServer* const server =
    static_cast<MariadbServer*>(::testing::AddGlobalTestEnvironment(new MariadbServer));

// A database of its own, dropped at the end.
class TestDatabase {
 public:
  TestDatabase() : name_(fmt::format("pigeon_t{}", next_.fetch_add(1))) {}
  ~TestDatabase() {
    if (created_) (void)sql(fmt::format("DROP DATABASE IF EXISTS {}", name_));
  }
  Result<void> create() {
    auto r = sql(fmt::format("CREATE DATABASE {}", name_));
    created_ = r.has_value();
    return r;
  }
  const std::string& name() const { return name_; }

  // Runs `statement` (in this database if `here`) on a connection of its own.
  Result<void> sql(const std::string& statement, bool here = false) const {
    auto c = server->admin(here ? name_ : "");
    if (auto r = c->open(); !r) return mysql::storageError("admin connect", r.error());
    if (auto r = c->exec(statement); !r) return mysql::storageError(statement, r.error());
    return {};
  }
  // The first column of the first row of `query` as a number, run in this database.
  std::uint64_t number(const std::string& query) const {
    auto c = server->admin(name_);
    if (!c->open()) return UINT64_MAX;
    auto rs = c->query(query);
    if (!rs) return UINT64_MAX;
    auto row = rs->next();
    std::uint64_t v = 0;
    if (!row || !row->u64(0, v)) return UINT64_MAX;
    return v;
  }

 private:
  static inline std::atomic<int> next_{1};
  std::string name_;
  bool created_ = false;
};

// ---- the conformance suite ---------------------------------------------------------------------

class MysqlHarness final : public conformance::StoreHarness {
 public:
  Result<std::unique_ptr<Store>> open(const conformance::ConformanceOptions& tuning,
                                      MetricsRegistry* metrics) override {
    MysqlOptions options = server->options(db_.name());
    if (tuning.max_batch_messages != 0) options.max_batch_messages = tuning.max_batch_messages;
    return openMysqlStore(options, metrics);
  }
  TestDatabase db_;
};

INSTANTIATE_TEST_SUITE_P(Mysql, StoreConformance,
                         ::testing::Values(conformance::StoreEngine{
                             "MariaDB",
                             []() -> Result<std::unique_ptr<conformance::StoreHarness>> {
                               auto harness = std::make_unique<MysqlHarness>();
                               if (auto r = harness->db_.create(); !r)
                                 return std::unexpected(r.error());
                               return harness;
                             }}),
                         conformance::engineName);

// ---- MySQL only --------------------------------------------------------------------------------

class MysqlStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server->up());
    ASSERT_TRUE(db_.create());
  }

  Result<std::unique_ptr<Store>> open(MysqlOptions options, MetricsRegistry* metrics = nullptr) {
    return openMysqlStore(options, metrics);
  }
  MysqlOptions options() const { return server->options(db_.name()); }

  static NewMessage message(MsgId id, std::string conversation, UserId sender,
                            std::vector<UserId> recipients, std::string client_msg_id = "",
                            std::string body = "b") {
    NewMessage m;
    m.message.id = id;
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

  TestDatabase db_;
};

TEST(MysqlDsn, ParsesEveryKeyInAnyOrder) {
  auto o = parseMysqlDsn(
      "  db=chat port=3307 host=db.example user=pigeon password='a b\\'c\\\\' pool=4 writers=3 "
      "batch=100 migrate=false schema_wait_ms=100 connect_timeout_ms=200 io_timeout_ms=300 ");
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->host, "db.example");
  EXPECT_EQ(o->port, 3307u);
  EXPECT_EQ(o->user, "pigeon");
  EXPECT_EQ(o->password, "a b'c\\");
  EXPECT_EQ(o->database, "chat");
  EXPECT_EQ(o->pool_size, 4u);
  EXPECT_EQ(o->writers, 3u);
  EXPECT_EQ(o->max_batch_messages, 100u);
  EXPECT_FALSE(o->migrate);
  EXPECT_EQ(o->schema_wait, 100ms);
  EXPECT_EQ(o->connect_timeout, 200ms);
  EXPECT_EQ(o->io_timeout, 300ms);

  auto defaults = parseMysqlDsn("");
  ASSERT_TRUE(defaults);
  EXPECT_EQ(defaults->host, "127.0.0.1");
  EXPECT_EQ(defaults->port, 3306u);
  EXPECT_EQ(defaults->database, "pigeon");
  EXPECT_TRUE(defaults->migrate);
  auto spaced = parseMysqlDsn("database = x password=''");
  ASSERT_TRUE(spaced) << spaced.error().message;
  EXPECT_EQ(spaced->database, "x");
  EXPECT_EQ(spaced->password, "");
}

TEST(MysqlDsn, NamesTheBadKey) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"hots=x", "'hots'"},
      {"port=0", "'port'"},
      {"port=65536", "'port'"},
      {"port=12ab", "'port'"},
      {"pool=0", "'pool'"},
      {"writers=-1", "'writers'"},
      {"batch=", "'batch'"},
      {"migrate=maybe", "'migrate'"},
      {"io_timeout_ms=0", "'io_timeout_ms'"},
      {"host=", "'host'"},
      {"host", "'host'"},
      {"=x", "without a key"},
      {"password='abc", "'password'"},
      {"password='a'b", "'password'"},
      {"user=a user=b", "repeated key 'user'"},
      {"db=a database=b", "repeated key 'database'"},
  };
  for (const auto& [dsn, named] : cases) {
    auto o = parseMysqlDsn(dsn);
    ASSERT_FALSE(o) << dsn;
    EXPECT_EQ(o.error().code, Errc::BadRequest) << dsn;
    EXPECT_NE(o.error().message.find(named), std::string::npos) << dsn << ": " << o.error().message;
  }
}

TEST_F(MysqlStoreTest, OpenFailsPromptlyWhenNothingListens) {
  MysqlOptions o = options();
  o.port = freePort();
  const auto t0 = Clock::now();
  auto store = open(o);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code, Errc::Unavailable);
  EXPECT_LT(Clock::now() - t0, 5s);
  o = options();
  o.writers = 0;
  EXPECT_EQ(open(o).error().code, Errc::BadRequest);
}

TEST_F(MysqlStoreTest, MigratesAnEmptyDatabaseOnce) {
  const unsigned version = mysql::requiredSchemaVersion();
  ASSERT_EQ(version, mysql::migrations().size());
  {
    auto store = open(options());
    ASSERT_TRUE(store) << store.error().message;
  }
  EXPECT_EQ(db_.number("SELECT COUNT(*) FROM schema_version"), version);
  EXPECT_EQ(db_.number("SELECT MAX(version) FROM schema_version"), version);
  const std::uint64_t tables = db_.number(fmt::format(
      "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{}'", db_.name()));
  EXPECT_EQ(tables, 13u);
  EXPECT_EQ(db_.number(fmt::format("SELECT COUNT(*) FROM information_schema.tables WHERE "
                                   "table_schema = '{}' AND engine <> 'InnoDB'",
                                   db_.name())),
            0u);

  // Again, with data in it: nothing is re-applied, nothing lost.
  {
    auto store = open(options());
    ASSERT_TRUE(store);
    ASSERT_TRUE((*store)->createUser("alice", "h", 1));
  }
  auto store = open(options());
  ASSERT_TRUE(store);
  EXPECT_EQ(db_.number("SELECT COUNT(*) FROM schema_version"), version);
  EXPECT_EQ(*(*store)->userCount(), 1u);
}

// A database that a newer release migrated further still opens (migrations only add).
TEST_F(MysqlStoreTest, AcceptsANewerSchema) {
  ASSERT_TRUE(open(options()));
  ASSERT_TRUE(
      db_.sql("INSERT INTO schema_version (version, description) VALUES (99, 'future')", true));
  auto store = open(options());
  ASSERT_TRUE(store) << store.error().message;
  MysqlOptions waiting = options();
  waiting.migrate = false;
  EXPECT_TRUE(open(waiting));
}

// migrateSchema itself, with migrations of the test's own: only the new ones run, in order.
TEST_F(MysqlStoreTest, MigrationsRunInOrderAndOnlyOnce) {
  auto c = server->admin(db_.name());
  ASSERT_TRUE(c->open());
  std::vector<mysql::Migration> list = {
      {1, "a table", {"CREATE TABLE IF NOT EXISTS steps (n INT NOT NULL) ENGINE=InnoDB"}},
      {2, "a first row", {"INSERT INTO steps VALUES (2)"}},  // not idempotent: must run once
  };
  auto v = mysql::migrateSchema(*c, db_.name(), list, 5s);
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_EQ(*v, 2u);
  list.push_back(
      {3, "more rows", {"INSERT INTO steps VALUES (3)", "INSERT INTO steps VALUES (4)"}});
  v = mysql::migrateSchema(*c, db_.name(), list, 5s);
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, 3u);
  ASSERT_TRUE(mysql::migrateSchema(*c, db_.name(), list, 5s));
  EXPECT_EQ(db_.number("SELECT COUNT(*) FROM steps"), 3u);
  EXPECT_EQ(db_.number("SELECT SUM(n) FROM steps"), 9u);
  EXPECT_EQ(*mysql::schemaVersion(*c), 3u);

  // A failing migration stops there, and records nothing for itself.
  list.push_back({4, "broken", {"INSERT INTO no_such_table VALUES (1)"}});
  list.push_back({5, "after", {"INSERT INTO steps VALUES (5)"}});
  auto broken = mysql::migrateSchema(*c, db_.name(), list, 5s);
  ASSERT_FALSE(broken);
  EXPECT_EQ(broken.error().code, Errc::Unavailable);
  EXPECT_EQ(*mysql::schemaVersion(*c), 3u);
  EXPECT_EQ(db_.number("SELECT COUNT(*) FROM steps"), 3u);

  std::vector<mysql::Migration> gap = {{1, "x", {}}, {3, "y", {}}};
  EXPECT_EQ(mysql::migrateSchema(*c, db_.name(), gap, 5s).error().code, Errc::Internal);
}

TEST_F(MysqlStoreTest, NodesStartingAtOnceMigrateOnce) {
  constexpr int kNodes = 6;
  std::latch go(kNodes);
  std::vector<std::future<Result<std::unique_ptr<Store>>>> opened;
  for (int i = 0; i < kNodes; ++i) {
    opened.push_back(std::async(std::launch::async, [&] {
      go.arrive_and_wait();
      return open(options());
    }));
  }
  std::vector<std::unique_ptr<Store>> stores;
  for (auto& f : opened) {
    auto store = f.get();
    ASSERT_TRUE(store) << store.error().message;
    stores.push_back(std::move(*store));
  }
  EXPECT_EQ(db_.number("SELECT COUNT(*) FROM schema_version"), mysql::requiredSchemaVersion());
  ASSERT_TRUE(stores[0]->createUser("alice", "h", 1));
  EXPECT_EQ(stores[kNodes - 1]->findUserByName("alice")->username, "alice");
}

TEST_F(MysqlStoreTest, WithoutMigrateWaitsForAnotherNode) {
  MysqlOptions waiting = options();
  waiting.migrate = false;
  waiting.schema_wait = 20s;
  auto follower = std::async(std::launch::async, [&] { return open(waiting); });
  // Once the follower is connected and polling, a node that migrates comes up.
  const auto deadline = Clock::now() + kDeadline;
  while (db_.number(fmt::format(
             "SELECT COUNT(*) FROM information_schema.processlist WHERE db = '{}'", db_.name())) <
         2) {  // the follower's connection and the one counting
    ASSERT_LT(Clock::now(), deadline);
    ASSERT_EQ(follower.wait_for(0s), std::future_status::timeout) << "returned before a schema";
  }
  auto leader = open(options());
  ASSERT_TRUE(leader) << leader.error().message;
  ASSERT_EQ(follower.wait_for(kDeadline), std::future_status::ready);
  auto store = follower.get();
  ASSERT_TRUE(store) << store.error().message;
  ASSERT_TRUE((*leader)->createUser("alice", "h", 1));
  EXPECT_EQ((*store)->findUserByName("alice")->id, 1u);

  // With nobody to migrate it, the wait ends with Unavailable.
  TestDatabase empty;
  ASSERT_TRUE(empty.create());
  MysqlOptions alone = server->options(empty.name());
  alone.migrate = false;
  alone.schema_wait = 300ms;
  const auto t0 = Clock::now();
  auto refused = open(alone);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::Unavailable);
  EXPECT_NE(refused.error().message.find("schema version 0"), std::string::npos);
  EXPECT_LT(Clock::now() - t0, 5s);
}

// The body is kept once, in messages; the inbox holds ids.
TEST_F(MysqlStoreTest, BodyIsStoredOnlyInMessages) {
  auto store = open(options());
  ASSERT_TRUE(store);
  auto r = appendAndWait(**store, message(7, "g:1", 1, {1, 2, 3}, "", "hello group"));
  ASSERT_TRUE(r);
  EXPECT_EQ(db_.number("SELECT COUNT(*) FROM messages WHERE body = 'hello group'"), 1u);
  EXPECT_EQ(db_.number("SELECT COUNT(*) FROM inbox WHERE msg_id = 7"), 3u);
  EXPECT_EQ(db_.number(fmt::format("SELECT COUNT(*) FROM information_schema.columns WHERE "
                                   "table_schema = '{}' AND data_type LIKE '%blob'",
                                   db_.name())),
            1u);
}

// Bodies up to the packet limit, batches that need several statements, a message to many.
TEST_F(MysqlStoreTest, LargeBatchesAreSplitIntoStatements) {
  auto store = open(options());
  ASSERT_TRUE(store);
  std::vector<UserId> everyone;
  for (UserId u = 1; u <= 30000; ++u) everyone.push_back(u);
  auto lobby = appendAndWait(**store, message(1, "g:0", 1, everyone, "", "to everyone"));
  ASSERT_TRUE(lobby) << lobby.error().message;
  EXPECT_EQ(lobby->refs.size(), everyone.size());
  EXPECT_EQ(*(*store)->lastInboxSeq(30000), 1u);

  const std::string big(3 << 20, '\'');  // escaping doubles it
  Completions done;
  for (MsgId id = 2; id < 12; ++id) {
    (*store)->append(message(id, "p:1:2", 1, {1, 2}, "", big),
                     [&](Result<Appended> r) { done.add(std::move(r)); });
  }
  ASSERT_TRUE(done.waitFor(10));
  for (auto& r : done.take()) ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ((*store)->getMessage(11)->body, big);
  EXPECT_EQ(*(*store)->lastInboxSeq(2), 11u);

  bool called = false;
  (*store)->append(message(99, "p:1:2", 1, {1, 2}, "", std::string(16 << 20, 'x')),
                   [&](Result<Appended> r) {
                     called = true;
                     ASSERT_FALSE(r);
                     EXPECT_EQ(r.error().code, Errc::TooLarge);
                   });
  EXPECT_TRUE(called);
}

TEST_F(MysqlStoreTest, UsersCreatedOnSeveralNodesHaveGaplessIds) {
  auto a = open(options());
  auto b = open(options());
  ASSERT_TRUE(a && b);
  Store* nodes[] = {a->get(), b->get()};
  constexpr int kThreads = 4;
  constexpr int kEach = 25;
  std::atomic<int> shared_won{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  std::mutex mu;
  std::set<UserId> ids;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Store& s = *nodes[t % 2];
      for (int i = 0; i < kEach; ++i) {
        auto u = s.createUser(fmt::format("user-{}-{}", t, i), "h", i);
        if (!u) {
          ++failures;
          continue;
        }
        std::lock_guard lock(mu);
        ids.insert(u->id);
      }
      auto shared = s.createUser("everyone-wants-this", "h", 0);
      if (shared) {
        ++shared_won;
        std::lock_guard lock(mu);
        ids.insert(shared->id);
      } else if (shared.error().code != Errc::Conflict) {
        ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(shared_won.load(), 1);
  const std::size_t n = kThreads * kEach + 1;
  ASSERT_EQ(ids.size(), n);
  EXPECT_EQ(*ids.begin(), 1u);
  EXPECT_EQ(*ids.rbegin(), n);
  EXPECT_EQ(*nodes[0]->userCount(), n);
  EXPECT_EQ(nodes[1]->allUserIds()->size(), n);
}

// What a result says about one append, and where it was made.
struct Sent {
  int node = 0, thread = 0, index = 0;
  std::string conversation;
  Result<Appended> result = std::unexpected(Error{});
};

// Checks every inbox and timeline of the database against the acknowledged appends: gapless
// 1..N, each reference where its callback said, conversations in conv_seq order in every inbox.
void verifyConsistent(Store& store, const std::vector<const Appended*>& acked,
                      const std::vector<std::string>& conversations,
                      const std::vector<UserId>& users) {
  std::map<UserId, std::map<Seq, MsgId>> expected;
  for (const Appended* a : acked) {
    for (const InboxRef& ref : a->refs) {
      EXPECT_TRUE(expected[ref.user].emplace(ref.seq, a->message.id).second)
          << "user " << ref.user << " seq " << ref.seq << " given twice";
      if (ref.user == a->message.sender) {
        EXPECT_EQ(a->sender_seq, ref.seq);
      }
    }
  }
  for (UserId u : users) {
    auto inbox = store.readInbox(u, 0, 1'000'000);
    ASSERT_TRUE(inbox) << inbox.error().message;
    EXPECT_EQ(*store.lastInboxSeq(u), inbox->size());
    std::map<std::string, Seq> last_conv_seq;
    for (std::size_t i = 0; i < inbox->size(); ++i) {
      const InboxItem& item = (*inbox)[i];
      ASSERT_EQ(item.seq, i + 1) << "user " << u;
      auto it = expected[u].find(item.seq);
      if (it != expected[u].end()) {
        EXPECT_EQ(it->second, item.message.id) << "user " << u << " seq " << item.seq;
      }
      Seq& last = last_conv_seq[item.message.conversation];
      ASSERT_GT(item.message.conv_seq, last) << "user " << u << " conversation order";
      last = item.message.conv_seq;
    }
    // Every acknowledged reference is there (the inbox may hold more: unknown outcomes).
    if (!expected[u].empty()) {
      EXPECT_GE(inbox->size(), expected[u].rbegin()->first);
    }
  }
  for (const std::string& conv : conversations) {
    auto timeline = store.readTimeline(conv, 0, 1'000'000);
    ASSERT_TRUE(timeline);
    for (std::size_t i = 0; i < timeline->size(); ++i) {
      ASSERT_EQ((*timeline)[i].conv_seq, i + 1) << conv;
    }
  }
}

// Several stores on one database, as several nodes: thousands of appends to shared 1:1 and
// group conversations at once.
TEST_F(MysqlStoreTest, SeveralNodesAppendingAtOnceKeepSeqsGaplessAndOrdered) {
  constexpr int kNodes = 3;
  constexpr int kThreads = 3;  // per node
  constexpr int kPerThread = 500;
  MetricsRegistry metrics;
  std::vector<std::unique_ptr<Store>> nodes;
  for (int n = 0; n < kNodes; ++n) {
    auto s = open(options(), &metrics);
    ASSERT_TRUE(s) << s.error().message;
    nodes.push_back(std::move(*s));
  }
  // 12 users; 1:1 conversations between neighbours and four overlapping groups.
  std::vector<std::pair<std::string, std::vector<UserId>>> convs;
  for (UserId u = 1; u <= 12; ++u) {
    const UserId v = u % 12 + 1;
    convs.push_back(
        {fmt::format("p:{}:{}", std::min(u, v), std::max(u, v)), {std::min(u, v), std::max(u, v)}});
  }
  convs.push_back({"g:1", {1, 2, 3, 4, 5, 6}});
  convs.push_back({"g:2", {4, 5, 6, 7, 8, 9, 10}});
  convs.push_back({"g:3", {1, 3, 5, 7, 9, 11}});
  convs.push_back({"g:4", {2, 4, 6, 8, 10, 12, 1}});
  std::vector<UserId> users;
  for (UserId u = 1; u <= 12; ++u) users.push_back(u);

  // Each client thread keeps at most kWindow appends in flight, so that the six committers
  // write many small transactions that interleave on the shared counter rows.
  constexpr std::ptrdiff_t kWindow = 16;
  std::vector<Sent> sent(kNodes * kThreads * kPerThread);
  std::vector<std::unique_ptr<std::counting_semaphore<kWindow>>> windows;
  for (int i = 0; i < kNodes * kThreads; ++i) {
    windows.push_back(std::make_unique<std::counting_semaphore<kWindow>>(kWindow));
  }
  Completions done;
  std::atomic<MsgId> ids{1};
  std::latch go(kNodes * kThreads);
  std::vector<std::thread> threads;
  for (int n = 0; n < kNodes; ++n) {
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, n, t] {
        auto& window = *windows[n * kThreads + t];
        go.arrive_and_wait();
        for (int i = 0; i < kPerThread; ++i) {
          const auto& [conv, members] = convs[(n * 7 + t * 3 + i * 5) % convs.size()];
          const std::size_t slot = (n * kThreads + t) * kPerThread + i;
          sent[slot].node = n;
          sent[slot].thread = t;
          sent[slot].index = i;
          sent[slot].conversation = conv;
          NewMessage m = message(ids.fetch_add(1), conv, members[i % members.size()], members,
                                 fmt::format("n{}-t{}-{}", n, t, i));
          ASSERT_TRUE(window.try_acquire_for(kDeadline));
          nodes[n]->append(std::move(m), [&, slot](Result<Appended> r) {
            sent[slot].result = std::move(r);
            window.release();
            done.add(Appended{});  // counts the answers; the result itself is in `sent`
          });
        }
      });
    }
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(done.waitFor(sent.size()));

  std::vector<const Appended*> acked;
  std::map<std::tuple<int, int, std::string>, Seq> last_in_thread;
  std::map<std::string, std::set<Seq>> conv_seqs;
  for (const Sent& s : sent) {
    ASSERT_TRUE(s.result) << s.result.error().message;
    EXPECT_FALSE(s.result->duplicate);
    acked.push_back(&*s.result);
    EXPECT_TRUE(conv_seqs[s.conversation].insert(s.result->message.conv_seq).second);
    // Appends made in order on one node to one conversation get conv_seqs in that order.
    Seq& last = last_in_thread[{s.node, s.thread, s.conversation}];
    EXPECT_GT(s.result->message.conv_seq, last);
    last = s.result->message.conv_seq;
  }
  std::vector<std::string> conversations;
  std::size_t total = 0;
  for (const auto& [conv, members] : convs) {
    conversations.push_back(conv);
    total += (*nodes[0]->readTimeline(conv, 0, 1'000'000)).size();
  }
  EXPECT_EQ(total, sent.size());
  verifyConsistent(*nodes[1], acked, conversations, users);
  std::size_t refs = 0;
  for (const Appended* a : acked) refs += a->refs.size();
  std::size_t inboxes = 0;
  for (UserId u : users) inboxes += *nodes[2]->lastInboxSeq(u);
  EXPECT_EQ(inboxes, refs);
  EXPECT_LT(metrics.counter("pigeon_store_commits_total", "").value(), sent.size());
  std::cout
      << "[ INFO     ] " << metrics.counter("pigeon_store_commits_total", "").value()
      << " commits, retries: "
      << metrics.counter("pigeon_store_commit_retries_total", "", "reason=\"deadlock\"").value()
      << " deadlock, "
      << metrics.counter("pigeon_store_commit_retries_total", "", "reason=\"lock_wait_timeout\"")
             .value()
      << " lock wait\n";
}

// The same (sender, client_msg_id) sent through several nodes at once is stored once; every
// answer names that one message.
TEST_F(MysqlStoreTest, ConcurrentDuplicatesOnSeveralNodesAreStoredOnce) {
  constexpr int kNodes = 3;
  constexpr int kKeys = 300;
  MetricsRegistry metrics;
  std::vector<std::unique_ptr<Store>> nodes;
  for (int n = 0; n < kNodes; ++n) {
    auto s = open(options(), &metrics);
    ASSERT_TRUE(s);
    nodes.push_back(std::move(*s));
  }
  std::vector<Completions> done(kNodes);
  std::latch go(kNodes);
  std::vector<std::thread> threads;
  for (int n = 0; n < kNodes; ++n) {
    threads.emplace_back([&, n] {
      go.arrive_and_wait();
      for (int k = 0; k < kKeys; ++k) {
        // Alternately to a 1:1 and a group, each node with its own message id and body.
        NewMessage m = k % 2 == 0 ? message(MsgId(n * 1000 + k + 1), "p:1:2", 1, {1, 2},
                                            fmt::format("c-{}", k), fmt::format("node {}", n))
                                  : message(MsgId(n * 1000 + k + 1), "g:9", 1, {1, 2, 3, 4},
                                            fmt::format("c-{}", k), fmt::format("node {}", n));
        nodes[n]->append(std::move(m), [&, n](Result<Appended> r) { done[n].add(std::move(r)); });
      }
    });
  }
  for (auto& t : threads) t.join();
  std::map<std::string, std::vector<Appended>> by_key;
  for (int n = 0; n < kNodes; ++n) {
    ASSERT_TRUE(done[n].waitFor(kKeys));
    for (auto& r : done[n].take()) {
      ASSERT_TRUE(r) << r.error().message;
      by_key[r->message.client_msg_id].push_back(std::move(*r));
    }
  }
  ASSERT_EQ(by_key.size(), std::size_t(kKeys));
  for (const auto& [key, answers] : by_key) {
    ASSERT_EQ(answers.size(), std::size_t(kNodes));
    int originals = 0;
    for (const Appended& a : answers) {
      if (!a.duplicate) ++originals;
      EXPECT_EQ(a.message, answers[0].message) << key;
      EXPECT_EQ(a.sender_seq, answers[0].sender_seq) << key;
    }
    EXPECT_EQ(originals, 1) << key;
  }
  EXPECT_EQ(nodes[0]->readTimeline("p:1:2", 0, 10'000)->size(), std::size_t(kKeys / 2));
  EXPECT_EQ(nodes[1]->readTimeline("g:9", 0, 10'000)->size(), std::size_t(kKeys / 2));
  EXPECT_EQ(*nodes[2]->lastInboxSeq(1), Seq(kKeys));
  EXPECT_EQ(*nodes[2]->lastInboxSeq(3), Seq(kKeys / 2));
  EXPECT_EQ(db_.number("SELECT COUNT(*) FROM messages"), std::uint64_t(kKeys));
  EXPECT_EQ(db_.number("SELECT COUNT(*) FROM idempotency"), std::uint64_t(kKeys));
  std::cout << "[ INFO     ] "
            << metrics.counter("pigeon_store_commit_retries_total", "", "reason=\"duplicate_key\"")
                   .value()
            << " transactions ran again for a key another node was writing\n";
}

// The server dies under load and comes back: acknowledged appends are all there, calls during
// the outage fail Unavailable without hanging, and the store works again without a restart.
TEST_F(MysqlStoreTest, SurvivesTheServerBeingKilledDuringAppends) {
  MysqlOptions o = options();
  o.io_timeout = 5s;
  o.connect_timeout = 2s;
  auto opened = open(o);
  ASSERT_TRUE(opened);
  Store& store = **opened;
  // Whatever happens below, the next tests get their server back.
  struct Restart {
    ~Restart() {
      if (!server->up()) server->start();
    }
  } restart;

  constexpr std::size_t kWindow = 64;
  const std::vector<std::pair<std::string, std::vector<UserId>>> convs = {
      {"p:1:2", {1, 2}}, {"g:1", {1, 2, 3}}, {"p:2:3", {2, 3}}};
  std::mutex mu;
  std::condition_variable cv;
  std::size_t in_flight = 0;
  std::vector<NewMessage> originals;                // by index
  std::map<std::size_t, Result<Appended>> results;  // by index
  std::atomic<bool> stop{false};
  std::atomic<bool> last_failed{false};
  std::atomic<std::size_t> acked{0}, refused{0};
  std::thread writer([&] {
    for (std::size_t i = 0; !stop; ++i) {
      if (last_failed) std::this_thread::sleep_for(20ms);  // a client backs off after an error
      const auto& [conv, members] = convs[i % convs.size()];
      NewMessage m = message(i + 1, conv, members[0], members, fmt::format("k-{}", i));
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return in_flight < kWindow; });
      ++in_flight;
      originals.push_back(m);
      lock.unlock();
      store.append(std::move(m), [&, i](Result<Appended> r) {
        std::lock_guard guard(mu);
        (r ? acked : refused).fetch_add(1);
        last_failed = !r;
        results.emplace(i, std::move(r));
        --in_flight;
        cv.notify_all();
      });
    }
  });
  auto waitUntil = [&](auto condition, std::chrono::seconds limit) {
    const auto deadline = Clock::now() + limit;
    while (!condition()) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(5ms);
    }
    return true;
  };
  ASSERT_TRUE(waitUntil([&] { return acked.load() >= 300; }, 30s));
  ASSERT_TRUE(server->kill());
  ASSERT_TRUE(waitUntil([&] { return refused.load() >= 1; }, 30s)) << "appends kept succeeding";

  // Calls during the outage: Unavailable, promptly.
  for (int i = 0; i < 3; ++i) {
    const auto t0 = Clock::now();
    auto inbox = store.readInbox(1, 0, 10);
    ASSERT_FALSE(inbox);
    EXPECT_EQ(inbox.error().code, Errc::Unavailable);
    auto user = store.createUser("during-outage", "h", 0);
    ASSERT_FALSE(user);
    EXPECT_EQ(user.error().code, Errc::Unavailable);
    EXPECT_LT(Clock::now() - t0, 3s);
  }
  const std::size_t refused_before = refused.load();
  ASSERT_TRUE(waitUntil([&] { return refused.load() > refused_before + 10; }, 30s))
      << "appends during the outage were not answered";

  ASSERT_TRUE(server->start());
  const std::size_t acked_before = acked.load();
  ASSERT_TRUE(waitUntil([&] { return acked.load() > acked_before + 100; }, 30s))
      << "appends did not succeed again after the restart";
  stop = true;
  writer.join();
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, kDeadline, [&] { return in_flight == 0; }));
  }

  // Every acknowledged append is stored where its answer said.
  std::vector<const Appended*> ok;
  std::vector<std::size_t> failed;
  for (const auto& [i, r] : results) {
    if (r) {
      ok.push_back(&*r);
      auto stored = store.getMessage(r->message.id);
      ASSERT_TRUE(stored) << "acknowledged message " << r->message.id << " lost";
      EXPECT_EQ(*stored, r->message);
    } else {
      EXPECT_EQ(r.error().code, Errc::Unavailable) << r.error().message;
      failed.push_back(i);
    }
  }
  verifyConsistent(store, ok, {"p:1:2", "g:1", "p:2:3"}, {1, 2, 3});

  // The client's retries of the failed ones: each is stored exactly once in the end (a
  // duplicate if its commit did go through).
  Completions retried;
  for (std::size_t i : failed) {
    NewMessage retry = originals[i];
    retry.message.id += 1'000'000;
    store.append(std::move(retry), [&](Result<Appended> r) { retried.add(std::move(r)); });
  }
  ASSERT_TRUE(retried.waitFor(failed.size()));
  for (auto& r : retried.take()) ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(db_.number("SELECT COUNT(*) FROM messages"), results.size());
  verifyConsistent(store, ok, {"p:1:2", "g:1", "p:2:3"}, {1, 2, 3});
  std::cout << "[ INFO     ] " << ok.size() << " acknowledged, " << failed.size()
            << " failed during the outage\n";
}

}  // namespace
}  // namespace pigeon::store
