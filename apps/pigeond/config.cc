#include "config.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace pigeon::app {

std::variant<Config, int> parseConfig(int argc, char** argv) {
  Config c;
  CLI::App app{
      "pigeond: the Pigeon instant-messaging server.\n"
      "Every flag can also be set in the TOML file given by --config (key = flag name\n"
      "without the dashes, e.g. http-port = 8080) or in the environment variable shown.\n"
      "Flags win over the environment, which wins over the file.",
      "pigeond"};
  app.set_config("--config", "", "TOML configuration file")->envname("PIGEON_CONFIG");
  app.add_option("--host", c.host, "Address to listen on")
      ->envname("PIGEON_HOST")
      ->capture_default_str();
  app.add_option("--http-port", c.http_port, "HTTP and WebSocket port (0: any free port)")
      ->envname("PIGEON_HTTP_PORT")
      ->capture_default_str();
  app.add_option("--tcp-host", c.tcp_host, "Address of the native TCP listener (default: --host)")
      ->envname("PIGEON_TCP_HOST");
  app.add_option("--tcp-port", c.tcp_port,
                 "Native protocol (varint + protobuf) port (0: any free port, -1: none)")
      ->envname("PIGEON_TCP_PORT")
      ->check(CLI::Range(-1, 65535))
      ->capture_default_str();
  auto* cert = app.add_option("--tls-cert", c.tls_cert,
                              "PEM certificate chain: HTTP/WebSocket and native TCP speak TLS")
                   ->envname("PIGEON_TLS_CERT")
                   ->check(CLI::ExistingFile);
  auto* key = app.add_option("--tls-key", c.tls_key, "PEM private key of --tls-cert")
                  ->envname("PIGEON_TLS_KEY")
                  ->check(CLI::ExistingFile);
  cert->needs(key);
  key->needs(cert);
  app.add_option("--advertise", c.advertise,
                 "Host name clients are told to connect to (default: --host)")
      ->envname("PIGEON_ADVERTISE");
  app.add_option("--data-dir", c.data_dir, "Directory of the embedded RocksDB store")
      ->envname("PIGEON_DATA_DIR")
      ->capture_default_str();
  app.add_option(
         "--durability", c.durability,
         "sync: a message is fsync'd before it is acknowledged; async: written to the OS only")
      ->envname("PIGEON_DURABILITY")
      ->check(CLI::IsMember({"sync", "async"}))
      ->capture_default_str();
  app.add_option("--worker-id", c.worker_id, "Snowflake worker id of this node (0-1023)")
      ->envname("PIGEON_WORKER_ID")
      ->check(CLI::Range(0, 1023))
      ->capture_default_str();
  app.add_option("--io-threads", c.io_threads, "Event-loop threads (0: one per core)")
      ->envname("PIGEON_IO_THREADS")
      ->capture_default_str();
  app.add_option("--workers", c.workers, "Threads for blocking work (storage, password hashing)")
      ->envname("PIGEON_WORKERS")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--max-body-bytes", c.max_body_bytes, "Largest HTTP request body and message body")
      ->envname("PIGEON_MAX_BODY_BYTES")
      ->check(CLI::Range(1024, 64 * 1024 * 1024))
      ->capture_default_str();
  app.add_option("--token-ttl", c.token_ttl_seconds, "Lifetime of a login token, in seconds")
      ->envname("PIGEON_TOKEN_TTL")
      ->check(CLI::Range(1LL, 365LL * 24 * 3600))
      ->capture_default_str();
  app.add_option("--rate-limit", c.rate_limit,
                 "HTTP requests per second per client address (0: off)")
      ->envname("PIGEON_RATE_LIMIT")
      ->check(CLI::Range(0.0, 1e9))
      ->capture_default_str();
  app.add_option("--rate-burst", c.rate_burst, "HTTP requests a client address may burst")
      ->envname("PIGEON_RATE_BURST")
      ->check(CLI::Range(1.0, 1e9))
      ->capture_default_str();
  app.add_option("--password-cost", c.password_cost,
                 "argon2id cost: interactive (64 MiB, 2 passes) or min (for tests only)")
      ->envname("PIGEON_PASSWORD_COST")
      ->check(CLI::IsMember({"interactive", "min"}))
      ->capture_default_str();
  app.add_option("--failed-logins-burst", c.failed_logins_burst,
                 "Failed logins allowed per username before it must wait")
      ->envname("PIGEON_FAILED_LOGINS_BURST")
      ->check(CLI::Range(1.0, 1e9))
      ->capture_default_str();
  app.add_option("--failed-logins-per-minute", c.failed_logins_per_minute,
                 "Failed logins per username per minute after the burst (0: no limit)")
      ->envname("PIGEON_FAILED_LOGINS_PER_MINUTE")
      ->check(CLI::Range(0.0, 1e9))
      ->capture_default_str();
  app.add_option("--log-level", c.log_level, "trace, debug, info, warn, error")
      ->envname("PIGEON_LOG_LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.add_option("--ready-file", c.ready_file,
                 "Write {\"http_port\":N,\"tcp_port\":N,\"pid\":N} here once listening (for scripts and tests)")
      ->envname("PIGEON_READY_FILE");
  app.add_option("--web-root", c.web_root,
                 "Serve the web client from this directory instead of the copy built into pigeond")
      ->envname("PIGEON_WEB_ROOT");
  app.add_option("--max-frame-bytes", c.max_frame_bytes,
                 "Largest STOMP or native frame a client may send (0: --max-body-bytes + 8 KiB, so "
                 "the largest body fits with its headers)")
      ->envname("PIGEON_MAX_FRAME_BYTES")
      ->check(CLI::Range(std::size_t(0), std::size_t(64 * 1024 * 1024)))
      ->capture_default_str();
  app.add_option("--heartbeat-ms", c.heartbeat_ms,
                 "The server's STOMP heart-beat in ms, both ways (0: none); silent clients are "
                 "closed after twice the agreed interval")
      ->envname("PIGEON_HEARTBEAT_MS")
      ->capture_default_str();
  app.add_option("--connect-timeout-ms", c.connect_timeout_ms,
                 "Time a WebSocket client has to send CONNECT")
      ->envname("PIGEON_CONNECT_TIMEOUT_MS")
      ->check(CLI::Range(100, 600000))
      ->capture_default_str();
  app.add_option("--max-outbound-bytes", c.max_outbound_bytes,
                 "Bytes queued for one connection before it is closed as a slow consumer")
      ->envname("PIGEON_MAX_OUTBOUND_BYTES")
      ->check(CLI::Range(64 * 1024, 1024 * 1024 * 1024))
      ->capture_default_str();
  app.add_option("--max-unacked", c.max_unacked,
                 "Messages in flight to a client-ack subscription before pushing pauses")
      ->envname("PIGEON_MAX_UNACKED")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  app.add_option("--frame-rate", c.frame_rate, "Frames per second per connection (0: off)")
      ->envname("PIGEON_FRAME_RATE")
      ->check(CLI::Range(0.0, 1e9))
      ->capture_default_str();
  app.add_option("--frame-burst", c.frame_burst, "Frames a connection may burst")
      ->envname("PIGEON_FRAME_BURST")
      ->check(CLI::Range(1.0, 1e9))
      ->capture_default_str();
  app.add_option("--write-timeout-ms", c.write_timeout_ms,
                 "A connection that takes none of its queued bytes for this long is closed")
      ->envname("PIGEON_WRITE_TIMEOUT_MS")
      ->check(CLI::Range(100, 3600000))
      ->capture_default_str();

  app.add_option("--cursor-delay-ms", c.cursor_delay_ms,
                 "Acknowledgements without a receipt are stored within this delay, many in one write "
                 "(0: each at once)")
      ->envname("PIGEON_CURSOR_DELAY_MS")
      ->check(CLI::Range(0, 10000))
      ->capture_default_str();
  app.add_option("--max-sessions", c.max_sessions,
                 "Long connections this node takes; more are refused (WebSocket: HTTP 503)")
      ->envname("PIGEON_MAX_SESSIONS")
      ->check(CLI::Range(1, 10000000))
      ->capture_default_str();

  app.add_option("--roles", c.roles,
                 "What this node does, of gateway (long connections), api (HTTP API and web "
                 "client) and store (schema and storage upkeep)")
      ->envname("PIGEON_ROLES")
      ->delimiter(',')
      ->check(CLI::IsMember({"gateway", "api", "store"}))
      ->capture_default_str();
  app.add_option("--node-id", c.node_id,
                 "This node's id in the cluster (default: a fresh random id at every start)")
      ->envname("PIGEON_NODE_ID");
  app.add_option("--zookeeper", c.zookeeper,
                 "Cluster mode: ZooKeeper servers host:port[,host:port...] (with --redis and --mysql)")
      ->envname("PIGEON_ZOOKEEPER");
  app.add_option("--zk-root", c.zk_root, "ZooKeeper path under which the cluster keeps its nodes")
      ->envname("PIGEON_ZK_ROOT")
      ->capture_default_str();
  app.add_option("--zk-session-timeout-ms", c.zk_session_timeout_ms,
                 "ZooKeeper session timeout: how soon a node that died leaves the cluster")
      ->envname("PIGEON_ZK_SESSION_TIMEOUT_MS")
      ->check(CLI::Range(2000, 60000))
      ->capture_default_str();
  app.add_option("--redis", c.redis, "Cluster mode: Redis host:port for routes, presence and delivery")
      ->envname("PIGEON_REDIS");
  app.add_option("--route-lease-ms", c.route_lease_ms,
                 "How long a connection's route outlives its node if the node dies (renewed every third)")
      ->envname("PIGEON_ROUTE_LEASE_MS")
      ->check(CLI::Range(1000, 3600000))
      ->capture_default_str();
  app.add_option("--mysql", c.mysql,
                 "Store messages in MySQL/MariaDB instead of RocksDB: 'host=H port=P user=U "
                 "password=W db=D'")
      ->envname("PIGEON_MYSQL");
  app.add_option("--balancer", c.balancer,
                 "How the API picks a gateway for a login: round-robin, random, consistent-hash "
                 "(on the user id) or least-connections")
      ->envname("PIGEON_BALANCER")
      ->check(CLI::IsMember({"round-robin", "random", "consistent-hash", "least-connections"}))
      ->capture_default_str();

  // CLI11 applies the config file before the environment; Pigeon wants flags over environment
  // over file. So each PIGEON_* variable whose flag is not on the command line becomes a flag.
  std::vector<std::string> args(argv + 1, argv + argc);
  std::vector<std::string> from_env;
  for (const CLI::Option* opt : app.get_options()) {
    const std::string& env = opt->get_envname();
    if (env.empty() || opt->get_lnames().empty()) continue;
    const char* value = std::getenv(env.c_str());
    if (!value) continue;
    const std::string flag = "--" + opt->get_lnames().front();
    const bool on_command_line = std::any_of(args.begin(), args.end(), [&](const std::string& a) {
      return a == flag || a.starts_with(flag + "=");
    });
    if (!on_command_line) {
      from_env.push_back(flag);
      from_env.push_back(value);
    }
  }
  args.insert(args.end(), from_env.begin(), from_env.end());
  std::reverse(args.begin(), args.end());  // CLI11 takes a reversed vector
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (c.advertise.empty()) c.advertise = c.host;
  if (c.tcp_host.empty()) c.tcp_host = c.host;
  if (c.max_frame_bytes == 0) c.max_frame_bytes = c.max_body_bytes + 8 * 1024;
  if (c.max_frame_bytes < 1024) {
    std::fprintf(stderr, "--max-frame-bytes: at least 1024 (or 0 for the default)\n");
    return 2;
  }
  if (auto problem = checkCluster(c, app.count("--worker-id") > 0); !problem.empty()) {
    std::fprintf(stderr, "pigeond: %s\n", problem.c_str());
    return 2;
  }
  return c;
}

bool Config::hasRole(std::string_view role) const {
  return std::find(roles.begin(), roles.end(), role) != roles.end();
}

std::string checkCluster(const Config& c, bool worker_id_given) {
  if (c.roles.empty()) return "--roles: give at least one of gateway, api, store";
  if (c.zookeeper.empty() != c.redis.empty()) {
    return "cluster mode needs both --zookeeper and --redis (and --mysql)";
  }
  if (c.clustered() && c.mysql.empty()) {
    return "cluster mode needs --mysql: the nodes of a cluster share one store";
  }
  if (c.mysql.empty() && !c.hasRole("store")) {
    return "the embedded store (no --mysql) needs the store role";
  }
  if (c.clustered() && worker_id_given) {
    return "--worker-id: in cluster mode ZooKeeper hands out the worker ids";
  }
  if (c.clustered() && (c.advertise == "0.0.0.0" || c.advertise == "::" || c.advertise.empty())) {
    return "cluster mode: give --advertise, the address clients and other nodes reach this one at";
  }
  if (!c.hasRole("gateway") && !c.hasRole("api") && !c.clustered()) {
    return "--roles: a single node needs the gateway or the api role";
  }
  return {};
}

}  // namespace pigeon::app
