// The MySQL engine: its connection string.
#include "store/mysql/mysql_store.h"

#include <gtest/gtest.h>

namespace pigeon::store {
namespace {

using namespace std::chrono_literals;

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

}  // namespace
}  // namespace pigeon::store
