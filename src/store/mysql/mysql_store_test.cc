// The MySQL engine against a real MariaDB: one server per run of this binary (started by
// scripts/services.sh in a temporary directory, on a free port), a fresh database per test.
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

namespace pigeon::store {
namespace {

using namespace std::chrono_literals;
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

// ---- schema
// --------------------------------------------------------------------------------------

class MysqlStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server->up());
    ASSERT_TRUE(db_.create());
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

}  // namespace
}  // namespace pigeon::store
