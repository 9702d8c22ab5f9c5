// pigeond's configuration: command-line flags, an optional TOML file (--config) and PIGEON_*
// environment variables, in that order of precedence. No configuration is needed for the
// default single node.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace pigeon::app {

struct Config {
  std::string host = "127.0.0.1";
  std::uint16_t http_port = 8080;
  std::string tcp_host;             // the native TCP listener's address; defaults to host
  std::int32_t tcp_port = 9090;     // 0: any free port; -1: no native listener
  std::string tls_cert, tls_key;    // PEM files: both listeners speak TLS when given
  std::string advertise;  // host told to clients; defaults to host
  std::string data_dir = "./data";
  std::string durability = "sync";
  std::uint32_t worker_id = 0;
  std::size_t io_threads = 0;  // 0: one per core
  std::size_t workers = 16;
  std::size_t max_body_bytes = 64 * 1024;
  std::int64_t token_ttl_seconds = 7 * 24 * 3600;
  double rate_limit = 200;
  double rate_burst = 400;
  std::string password_cost = "interactive";
  double failed_logins_burst = 10;
  double failed_logins_per_minute = 5;
  std::string log_level = "info";
  std::string ready_file;
  std::string web_root;  // serve the web client from here instead of the embedded copy
  // The long-connection gateway (WebSocket/STOMP and native).
  std::size_t max_frame_bytes = 0;  // 0: max_body_bytes + 8 KiB (room for the headers)
  std::uint32_t heartbeat_ms = 10000;
  std::uint32_t connect_timeout_ms = 5000;
  std::size_t max_outbound_bytes = 1 << 20;
  std::size_t max_unacked = 1000;
  double frame_rate = 500;
  double frame_burst = 1000;
  std::uint32_t write_timeout_ms = 30000;
  std::uint32_t cursor_delay_ms = 100;
  std::size_t max_sessions = 50000;

  // Cluster mode (all three engines together), or a single node on MySQL (--mysql alone).
  std::vector<std::string> roles{"gateway", "api", "store"};
  std::string node_id;       // empty: a fresh random id at every start
  std::string zookeeper;     // host:port[,host:port…]
  std::string zk_root = "/pigeon";
  std::uint32_t zk_session_timeout_ms = 10000;
  std::string redis;         // host:port
  std::uint32_t route_lease_ms = 30000;
  std::string mysql;         // "host=… port=… user=… password=… db=…"
  std::string balancer = "round-robin";

  bool hasRole(std::string_view role) const;
  bool clustered() const { return !zookeeper.empty(); }
};

// Parses argv. Returns the config, or an exit code when the program should stop now (--help
// printed, or an error explained on stderr).
std::variant<Config, int> parseConfig(int argc, char** argv);

// Why the cluster flags of `c` do not fit together, or empty. `worker_id_given`: --worker-id
// was set explicitly.
std::string checkCluster(const Config& c, bool worker_id_given);

}  // namespace pigeon::app
