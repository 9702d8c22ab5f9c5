#include "config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

namespace pigeon::app {
namespace {

std::variant<Config, int> parse(std::initializer_list<std::string> args) {
  std::vector<std::string> storage{"pigeond"};
  storage.insert(storage.end(), args);
  std::vector<char*> argv;
  for (auto& s : storage) argv.push_back(s.data());
  return parseConfig(int(argv.size()), argv.data());
}

class ConfigTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const char* v :
         {"PIGEON_HTTP_PORT", "PIGEON_DURABILITY", "PIGEON_CONFIG", "PIGEON_TOKEN_TTL"}) {
      ::unsetenv(v);
    }
    std::remove(path_.c_str());
  }
  std::string writeToml(const std::string& text) {
    std::ofstream(path_) << text;
    return path_;
  }
  std::string path_ = ::testing::TempDir() + "pigeond_config_test.toml";
};

TEST_F(ConfigTest, DefaultsNeedNoConfiguration) {
  auto parsed = parse({});
  ASSERT_TRUE(std::holds_alternative<Config>(parsed));
  const auto& c = std::get<Config>(parsed);
  EXPECT_EQ(c.host, "127.0.0.1");
  EXPECT_EQ(c.http_port, 8080);
  EXPECT_EQ(c.data_dir, "./data");
  EXPECT_EQ(c.durability, "sync");
  EXPECT_EQ(c.advertise, "127.0.0.1");
  EXPECT_EQ(c.max_body_bytes, 64u * 1024);
}

TEST_F(ConfigTest, TheFrameLimitLeavesRoomForTheLargestBody) {
  auto defaults = parse({});
  ASSERT_TRUE(std::holds_alternative<Config>(defaults));
  EXPECT_EQ(std::get<Config>(defaults).max_frame_bytes, 64 * 1024 + 8 * 1024);
  auto bigger = parse({"--max-body-bytes", "1000000"});
  ASSERT_TRUE(std::holds_alternative<Config>(bigger));
  EXPECT_EQ(std::get<Config>(bigger).max_frame_bytes, 1000000 + 8 * 1024);
  auto set = parse({"--max-frame-bytes", "4096"});
  ASSERT_TRUE(std::holds_alternative<Config>(set));
  EXPECT_EQ(std::get<Config>(set).max_frame_bytes, 4096u);
  EXPECT_TRUE(std::holds_alternative<int>(parse({"--max-frame-bytes", "100"})));
  // The native listener and TLS: defaults, and a key without a certificate is refused.
  EXPECT_EQ(std::get<Config>(defaults).tcp_port, 9090);
  EXPECT_EQ(std::get<Config>(defaults).tcp_host, "127.0.0.1");
  EXPECT_TRUE(std::holds_alternative<int>(parse({"--tls-key", "/etc/hostname"})));
}

TEST_F(ConfigTest, FlagsBeatEnvironmentWhichBeatsTheFile) {
  const auto file = writeToml("http-port = 7001\ndurability = \"async\"\ntoken-ttl = 60\n");
  ::setenv("PIGEON_HTTP_PORT", "7002", 1);
  auto from_env = parse({"--config", file});
  ASSERT_TRUE(std::holds_alternative<Config>(from_env));
  EXPECT_EQ(std::get<Config>(from_env).http_port, 7002);      // env over file
  EXPECT_EQ(std::get<Config>(from_env).durability, "async");  // file over default
  EXPECT_EQ(std::get<Config>(from_env).token_ttl_seconds, 60);
  auto from_flag = parse({"--config", file, "--http-port", "7003"});
  ASSERT_TRUE(std::holds_alternative<Config>(from_flag));
  EXPECT_EQ(std::get<Config>(from_flag).http_port, 7003);  // flag over env
}

TEST_F(ConfigTest, ConfigFileFromTheEnvironment) {
  ::setenv("PIGEON_CONFIG", writeToml("data-dir = \"/var/lib/pigeon\"\n").c_str(), 1);
  auto parsed = parse({});
  ASSERT_TRUE(std::holds_alternative<Config>(parsed));
  EXPECT_EQ(std::get<Config>(parsed).data_dir, "/var/lib/pigeon");
}

TEST_F(ConfigTest, BadValuesAreRefusedWithAnExitCode) {
  for (auto args : {std::vector<std::string>{"--durability", "maybe"},
                    std::vector<std::string>{"--worker-id", "1024"},
                    std::vector<std::string>{"--http-port", "70000"},
                    std::vector<std::string>{"--no-such-flag"}}) {
    std::vector<std::string> storage{"pigeond"};
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : storage) argv.push_back(s.data());
    auto parsed = parseConfig(int(argv.size()), argv.data());
    ASSERT_TRUE(std::holds_alternative<int>(parsed)) << args[0];
    EXPECT_NE(std::get<int>(parsed), 0) << args[0];
  }
  ::setenv("PIGEON_DURABILITY", "sometimes", 1);
  auto parsed = parse({});
  ASSERT_TRUE(std::holds_alternative<int>(parsed));
}

TEST_F(ConfigTest, ClusterFlags) {
  auto single = parse({});
  ASSERT_TRUE(std::holds_alternative<Config>(single));
  EXPECT_FALSE(std::get<Config>(single).clustered());
  EXPECT_EQ(std::get<Config>(single).roles, (std::vector<std::string>{"gateway", "api", "store"}));

  auto node = parse({"--zookeeper", "127.0.0.1:2181", "--redis", "127.0.0.1:6379", "--mysql",
                     "host=127.0.0.1 db=pigeon", "--roles", "gateway,api", "--advertise", "10.0.0.7",
                     "--balancer", "consistent-hash", "--node-id", "n1"});
  ASSERT_TRUE(std::holds_alternative<Config>(node));
  const Config& c = std::get<Config>(node);
  EXPECT_TRUE(c.clustered());
  EXPECT_TRUE(c.hasRole("gateway"));
  EXPECT_FALSE(c.hasRole("store"));
  EXPECT_EQ(c.balancer, "consistent-hash");
  EXPECT_EQ(c.node_id, "n1");

  // A single node on MySQL needs neither ZooKeeper nor Redis.
  EXPECT_TRUE(std::holds_alternative<Config>(parse({"--mysql", "host=127.0.0.1"})));
}

TEST_F(ConfigTest, ClusterFlagsThatDoNotFitAreRefused) {
  const std::string zk = "127.0.0.1:2181", redis = "127.0.0.1:6379", mysql = "host=127.0.0.1";
  for (auto args : std::vector<std::vector<std::string>>{
           {"--zookeeper", zk, "--mysql", mysql},                 // no Redis
           {"--redis", redis, "--mysql", mysql},                  // no ZooKeeper
           {"--zookeeper", zk, "--redis", redis},                 // nodes need a shared store
           {"--roles", "gateway,api"},                            // RocksDB needs the store role
           {"--roles", "gateway,router"},                         // no such role
           {"--zookeeper", zk, "--redis", redis, "--mysql", mysql, "--worker-id", "3"},
           {"--zookeeper", zk, "--redis", redis, "--mysql", mysql, "--host", "0.0.0.0"},
           {"--balancer", "fastest"},
       }) {
    std::vector<std::string> storage{"pigeond"};
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : storage) argv.push_back(a.data());
    testing::internal::CaptureStderr();
    auto parsed = parseConfig(int(argv.size()), argv.data());
    const std::string err = testing::internal::GetCapturedStderr();
    ASSERT_TRUE(std::holds_alternative<int>(parsed)) << args[0] << " " << args[1];
    EXPECT_NE(std::get<int>(parsed), 0);
    EXPECT_FALSE(err.empty());
  }
}

TEST_F(ConfigTest, HelpListsEveryFlagAndExitsZero) {
  testing::internal::CaptureStdout();
  auto parsed = parse({"--help"});
  const std::string help = testing::internal::GetCapturedStdout();
  ASSERT_TRUE(std::holds_alternative<int>(parsed));
  EXPECT_EQ(std::get<int>(parsed), 0);
  for (const char* flag : {"--config", "--host", "--http-port", "--advertise", "--data-dir",
                           "--durability", "--worker-id", "--io-threads", "--workers",
                           "--max-body-bytes", "--token-ttl", "--rate-limit", "--rate-burst",
                           "--password-cost", "--log-level", "--ready-file", "--max-frame-bytes",
                           "--heartbeat-ms", "--connect-timeout-ms", "--max-outbound-bytes",
                           "--max-unacked", "--frame-rate", "--frame-burst", "--write-timeout-ms",
                           "--max-sessions", "--web-root", "--failed-logins-burst",
                           "--failed-logins-per-minute", "--tcp-host", "--tcp-port", "--tls-cert",
                           "--tls-key", "--roles", "--node-id", "--zookeeper", "--zk-root",
                           "--zk-session-timeout-ms", "--redis", "--route-lease-ms", "--mysql",
                           "--balancer", "PIGEON_HTTP_PORT"}) {
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
}  // namespace pigeon::app
