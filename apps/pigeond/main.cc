// pigeond: parses the configuration, picks the backends, wires the modules and runs until
// SIGINT or SIGTERM. Start-up errors become a message on stderr and exit code 1.
//
// One node (the default): RocksDB in --data-dir (or MySQL with --mysql), this node's hub is the
// whole truth about who is connected. Cluster mode (--zookeeper, --redis, --mysql): the store
// is MySQL, shared by every node; the node registers in ZooKeeper (which also leases its
// snowflake worker id); Redis holds the routes and carries deliveries between nodes (the
// gateway's ClusterRelay); the API picks a live gateway for each login with the balancer.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>

#include "api/http_api.h"
#include "api/http_server.h"
#include "api/static_files.h"
#include "base/clock.h"
#include "base/metrics.h"
#include "base/rate_limiter.h"
#include "cluster/balancer.h"
#include "cluster/probe.h"
#include "cluster/redis/redis_cluster.h"
#include "cluster/zookeeper/zk_discovery.h"
#include "config.h"
#include "core/service.h"
#include "gateway/cluster_relay.h"
#include "gateway/gateway.h"
#include "net/io_pool.h"
#include "net/listener.h"
#include "net/transport.h"
#include "store/mysql/mysql_store.h"
#include "store/rocksdb/rocks_store.h"
#include "webassets/web_assets.h"

namespace {

using namespace pigeon;

int fatal(const std::string& what) {
  spdlog::critical("{}", what);
  return 1;
}

// Written atomically (write, then rename) so a reader never sees half a file.
bool writeReadyFile(const std::string& path, std::uint16_t http_port, int tcp_port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "{\"http_port\":" << http_port << ",\"tcp_port\":" << tcp_port
        << ",\"pid\":" << ::getpid() << "}\n";
    if (!out) return false;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  return !ec;
}

// The store: MySQL when --mysql is given (a node with the store role creates or upgrades its
// schema; the others wait for it), else RocksDB in --data-dir.
Result<std::unique_ptr<store::Store>> openStore(const app::Config& config, MetricsRegistry& metrics) {
  if (!config.mysql.empty()) {
    auto options = store::parseMysqlDsn(config.mysql);
    if (!options) return fail(options.error().code, "--mysql: " + options.error().message);
    options->migrate = config.hasRole("store");
    auto opened = store::openMysqlStore(*options, &metrics);
    if (!opened) {
      return fail(opened.error().code, "cannot open the MySQL store at " + options->host + ":" +
                                           std::to_string(options->port) + ": " + opened.error().message);
    }
    return opened;
  }
  std::error_code fs_ec;
  std::filesystem::create_directories(config.data_dir, fs_ec);
  if (fs_ec) {
    return fail(Errc::Unavailable, "cannot create data dir '" + config.data_dir + "': " + fs_ec.message());
  }
  store::RocksOptions store_options;
  store_options.path = config.data_dir;
  store_options.durability =
      config.durability == "async" ? store::Durability::Async : store::Durability::Sync;
  auto opened = store::openRocksStore(store_options, &metrics);
  if (!opened) {
    return fail(opened.error().code,
                "cannot open the store in '" + config.data_dir + "': " + opened.error().message);
  }
  return opened;
}

// "host" or "[v6]" for a URL.
std::string hostPort(const std::string& host, std::uint16_t port) {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

int run(const app::Config& config) {
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  MetricsRegistry metrics;

  auto store = openStore(config, metrics);
  if (!store) return fatal(store.error().message);

  core::ServiceOptions service_options;
  service_options.worker_id = config.worker_id;
  service_options.token_ttl_ms = config.token_ttl_seconds * 1000;
  service_options.max_body_bytes = config.max_body_bytes;
  service_options.failed_logins_burst = config.failed_logins_burst;
  service_options.failed_logins_per_minute = config.failed_logins_per_minute;
  service_options.password_cost = config.password_cost == "min" ? core::PasswordCost::minimum()
                                                                : core::PasswordCost::interactive();
  auto service = core::Service::create(**store, SystemClock::instance(), metrics, service_options);
  if (!service) return fatal("cannot start: " + service.error().message);
  // In a cluster no id is issued until ZooKeeper leases this node a worker id.
  if (config.clustered()) (*service)->setWorkerId(std::nullopt);
  const cluster::NodeId node_id = config.node_id.empty() ? cluster::newNodeId() : config.node_id;
  if (auto ok = cluster::validateNodeId(node_id); !ok) return fatal("--node-id: " + ok.error().message);

  std::shared_ptr<boost::asio::ssl::context> tls;
  if (!config.tls_cert.empty()) {
    auto ctx = net::makeServerTlsContext(config.tls_cert, config.tls_key);
    if (!ctx) return fatal(ctx.error().message);
    tls = std::move(*ctx);
  }

  // Declared in this order so that they are destroyed in the reverse one: the loops and
  // workers stop before the service and the store they call go away.
  boost::asio::thread_pool workers(config.workers);
  net::IoPool loops(config.io_threads);
  gateway::GatewayOptions gateway_options;
  gateway_options.max_frame_bytes = config.max_frame_bytes;
  gateway_options.heartbeat_ms = config.heartbeat_ms;
  gateway_options.connect_timeout_ms = config.connect_timeout_ms;
  gateway_options.max_outbound_bytes = config.max_outbound_bytes;
  gateway_options.max_unacked = config.max_unacked;
  gateway_options.frame_rate = config.frame_rate;
  gateway_options.frame_burst = config.frame_burst;
  gateway_options.write_timeout_ms = config.write_timeout_ms;
  gateway_options.max_sessions = config.max_sessions;
  gateway_options.cursor_delay_ms = config.cursor_delay_ms;
  gateway::Gateway gateway(loops, **service, workers.get_executor(), metrics, gateway_options);
  (*service)->setDeliverySink(&gateway.hub());

  // Cluster mode: the relay stands between the service and the hub (every node has one: a
  // message stored on an api-only node is relayed to its recipients' gateways too).
  std::unique_ptr<gateway::ClusterRelay> relay;
  std::unique_ptr<cluster::RedisCluster> redis;
  // Whichever way run() returns: the workers (whose presence tasks call the relay and Redis)
  // stop first, then the relay's thread, then Redis (whose subscriber calls the relay), and the
  // relay after it.
  struct ClusterTeardown {
    boost::asio::thread_pool& workers;
    std::unique_ptr<gateway::ClusterRelay>& relay;
    std::unique_ptr<cluster::RedisCluster>& redis;
    bool workers_joined = false;
    ~ClusterTeardown() {
      if (!workers_joined && redis) {
        workers.stop();
        workers.join();
      }
      if (relay) relay->stop();
      redis.reset();
    }
  } cluster_teardown{workers, relay, redis};
  std::unique_ptr<cluster::ZkDiscovery> discovery;  // assigned before the loops run
  if (config.clustered()) {
    gateway::ClusterRelayOptions relay_options;
    relay_options.node = node_id;
    relay_options.lease = std::chrono::milliseconds(config.route_lease_ms);
    relay = std::make_unique<gateway::ClusterRelay>(gateway.hub(), **service, metrics, relay_options);
    cluster::RedisOptions redis_options;
    redis_options.address = config.redis;
    redis_options.self = node_id;
    redis_options.lease = relay_options.lease;
    (*service)->setDeliverySink(relay.get());
    gateway.hub().setClusterPresence(relay.get());
    gateway.setRelay(relay.get());
    // The bus's threads start here; the relay ignores them until start().
    auto opened = cluster::openRedisCluster(redis_options, relay->busHandler(), &metrics);
    if (!opened) return fatal("cannot reach Redis at " + config.redis + ": " + opened.error().message);
    redis = std::move(*opened);
    relay->setEngines(redis.get(), redis.get());
    relay->start();
  }

  // The web client: from --web-root if given, else the copy embedded at build time.
  api::StaticFiles web_files;
  if (!config.web_root.empty()) {
    auto files = api::StaticFiles::fromDirectory(config.web_root);
    if (!files) return fatal(files.error().message);
    web_files = std::move(*files);
  } else {
    std::vector<std::pair<std::string_view, std::string_view>> embedded;
    for (const auto& asset : webassets::embedded()) embedded.emplace_back(asset.path, asset.data);
    web_files = api::StaticFiles::fromMemory(embedded);
  }

  RateLimiter limiter(config.rate_limit, config.rate_burst, SystemClock::instance());
  api::ApiOptions api_options;
  api_options.presence = relay ? static_cast<const core::Presence*>(relay.get()) : &gateway.hub();
  api_options.serve_api = config.hasRole("api");
  std::optional<cluster::Balancer> balancer;
  // A node that died stays listed in ZooKeeper until its session expires: each pick is checked.
  cluster::LivenessProbe probe(std::chrono::milliseconds(500), std::chrono::seconds(1));
  if (config.clustered()) {
    auto strategy = cluster::parseBalanceStrategy(config.balancer);
    if (!strategy) return fatal("--balancer: " + strategy.error().message);
    balancer.emplace(*strategy);
    // Called on workers once the loops run, by when `discovery` is set.
    api_options.pick_gateway = [&discovery, &balancer, &probe](store::UserId user) -> std::optional<api::GatewayChoice> {
      auto gateways = cluster::nodesWithRole(discovery->nodes(), "gateway");
      while (auto picked = balancer->pick(user, gateways)) {
        if (probe.alive(*picked)) return api::GatewayChoice{picked->ws, picked->tcp};
        std::erase_if(gateways, [&](const cluster::NodeInfo& n) { return n.id == picked->id; });
      }
      return std::nullopt;
    };
  }
  api_options.static_files = &web_files;
  api::HttpApi http_api(**service, workers.get_executor(), limiter, metrics, api_options);
  api::HttpServerOptions http_options;
  http_options.host = config.host;
  http_options.port = config.http_port;
  // The HTTP body holds a JSON-escaped message body plus a little: allow for both.
  http_options.max_body_bytes = config.max_body_bytes * 2 + 4096;
  http_options.tls = tls;
  api::HttpServer http(loops, http_api, metrics, http_options);
  const bool serve_gateway = config.hasRole("gateway");
  if (serve_gateway) {
    http.setUpgradeHandler("/ws", [&gateway](net::Connection connection,
                                             const net::UpgradeRequest& request, std::string leftover) {
      gateway.acceptWebSocket(std::move(connection), request, std::move(leftover));
    });
  }
  if (auto ok = http.start(); !ok) return fatal(ok.error().message);
  net::Listener native(loops, tls, [&gateway](net::Connection connection) {
    gateway.acceptNative(std::move(connection));
  });
  int tcp_port = -1;
  if (serve_gateway && config.tcp_port >= 0) {
    if (auto ok = native.start(config.tcp_host, std::uint16_t(config.tcp_port)); !ok) {
      return fatal(ok.error().message);
    }
    tcp_port = native.boundPort();
  }
  cluster::NodeInfo self;
  self.id = node_id;
  self.roles = config.roles;
  self.http = std::string(tls ? "https://" : "http://") + hostPort(config.advertise, http.boundPort());
  if (serve_gateway) {
    self.ws = std::string(tls ? "wss://" : "ws://") + hostPort(config.advertise, http.boundPort()) + "/ws";
    if (tcp_port >= 0) {
      self.tcp = std::string(tls ? "tls://" : "tcp://") + hostPort(config.advertise, std::uint16_t(tcp_port));
    }
  }
  self.started_at_ms = SystemClock::instance().nowMs();
  http_api.setGatewayAddresses(self.ws, self.tcp);
  if (!config.clustered()) {
    metrics.gauge("pigeon_cluster_nodes", "Live nodes this node sees, itself included").set(1);
  }
  if (config.clustered()) {
    cluster::ZkDiscoveryOptions zk_options;
    zk_options.hosts = config.zookeeper;
    zk_options.root = config.zk_root;
    zk_options.session_timeout = std::chrono::milliseconds(config.zk_session_timeout_ms);
    zk_options.self = self;
    zk_options.metrics = &metrics;
    core::Service* svc = service->get();
    zk_options.on_worker_id = [svc](std::optional<std::uint32_t> worker) {
      if (worker) {
        spdlog::info("pigeond: snowflake worker id {} leased from ZooKeeper", *worker);
      } else {
        spdlog::warn("pigeond: the worker id lease may be lost: no ids are issued until renewed");
      }
      svc->setWorkerId(worker);
    };
    auto started = cluster::ZkDiscovery::start(std::move(zk_options));
    if (!started) {
      return fatal("cannot register in ZooKeeper at " + config.zookeeper + ": " + started.error().message);
    }
    discovery = std::move(*started);
    spdlog::info("pigeond: node {} joined the cluster ({} nodes live)", node_id, discovery->nodes().size());
  }
  // SIGINT and SIGTERM are handled from here on: whoever reads the ready file may signal at
  // once and gets a clean shutdown, not the default action.
  boost::asio::io_context main_loop;
  boost::asio::signal_set signals(main_loop, SIGINT, SIGTERM);
  // Before the loops run: a failure here returns while nothing runs on them yet (the sockets
  // already listen, so nobody who reads the file is refused).
  if (!config.ready_file.empty() && !writeReadyFile(config.ready_file, http.boundPort(), tcp_port)) {
    return fatal("cannot write the ready file '" + config.ready_file + "'");
  }
  gateway.start();
  loops.start();

  spdlog::info("pigeond: listening on {}://{}:{} (data in {}, durability {}, web client: {})",
               tls ? "https" : "http", config.host, http.boundPort(), config.data_dir,
               config.durability, web_files.empty() ? "none" : std::to_string(web_files.size()) + " files");
  if (tcp_port >= 0) {
    spdlog::info("pigeond: native protocol on {}://{}:{}", tls ? "tls" : "tcp", config.tcp_host, tcp_port);
  }

  // Expired tokens are refused anyway; purging them hourly (and now) keeps the table from
  // growing with every login.
  boost::asio::steady_timer purge_timer(main_loop);
  std::function<void()> purge_tokens = [&] {
    boost::asio::post(workers, [&service] {
      if (auto n = (*service)->purgeExpiredTokens(); !n) {
        spdlog::warn("pigeond: purging expired tokens failed: {}", n.error().message);
      } else if (*n > 0) {
        spdlog::info("pigeond: purged {} expired tokens", *n);
      }
    });
    purge_timer.expires_after(std::chrono::hours(1));
    purge_timer.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) purge_tokens();
    });
  };
  purge_tokens();
  // Cluster mode: the connection count other nodes balance on, published every second.
  boost::asio::steady_timer load_timer(main_loop);
  std::function<void()> publish_load = [&] {
    if (!discovery) return;
    discovery->setConnections(gateway.hub().connections());
    load_timer.expires_after(std::chrono::seconds(1));
    load_timer.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) publish_load();
    });
  };
  publish_load();
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (!ec) spdlog::info("pigeond: signal {}, shutting down", signal);
    purge_timer.cancel();
    load_timer.cancel();
  });
  main_loop.run();

  // Stop accepting, stop the loops (open requests get no answer: a client retries a send with
  // the same client_msg_id and gets the stored result), finish the blocking work, then let
  // the store commit what is queued as it closes.
  http.stop();
  native.stop();
  gateway.stop();
  loops.stop();
  workers.join();
  cluster_teardown.workers_joined = true;
  // Leaves ZooKeeper (after the workers, which pick gateways with it): no login is sent here.
  discovery.reset();
  // The store closes first: closing it commits what is queued and runs those callbacks, which
  // use the service, post to the (stopped, still alive) loops and queue for the relay.
  store->reset();
  // Then the relay relays what is queued, removes this node's routes and stops, before the
  // engine it calls goes (cluster_teardown does the same on every other way out of run()).
  if (relay) relay->stop();
  redis.reset();
  service->reset();
  spdlog::info("pigeond: stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = pigeon::app::parseConfig(argc, argv);
  if (auto* code = std::get_if<int>(&parsed)) return *code;
  return run(std::get<pigeon::app::Config>(parsed));
}
