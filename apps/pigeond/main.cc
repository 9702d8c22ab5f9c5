// pigeond: parses the configuration, picks the backends, wires the modules and runs until
// SIGINT or SIGTERM. Start-up errors become a message on stderr and exit code 1.
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
#include "config.h"
#include "core/service.h"
#include "gateway/gateway.h"
#include "net/io_pool.h"
#include "net/listener.h"
#include "net/transport.h"
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

int run(const app::Config& config) {
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  MetricsRegistry metrics;

  std::error_code fs_ec;
  std::filesystem::create_directories(config.data_dir, fs_ec);
  if (fs_ec) return fatal("cannot create data dir '" + config.data_dir + "': " + fs_ec.message());

  store::RocksOptions store_options;
  store_options.path = config.data_dir;
  store_options.durability =
      config.durability == "async" ? store::Durability::Async : store::Durability::Sync;
  auto store = store::openRocksStore(store_options, &metrics);
  if (!store)
    return fatal("cannot open the store in '" + config.data_dir + "': " + store.error().message);

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
  api_options.presence = &gateway.hub();
  api_options.static_files = &web_files;
  api::HttpApi http_api(**service, workers.get_executor(), limiter, metrics, api_options);
  api::HttpServerOptions http_options;
  http_options.host = config.host;
  http_options.port = config.http_port;
  // The HTTP body holds a JSON-escaped message body plus a little: allow for both.
  http_options.max_body_bytes = config.max_body_bytes * 2 + 4096;
  http_options.tls = tls;
  api::HttpServer http(loops, http_api, metrics, http_options);
  http.setUpgradeHandler("/ws", [&gateway](net::Connection connection,
                                           const net::UpgradeRequest& request, std::string leftover) {
    gateway.acceptWebSocket(std::move(connection), request, std::move(leftover));
  });
  if (auto ok = http.start(); !ok) return fatal(ok.error().message);
  net::Listener native(loops, tls, [&gateway](net::Connection connection) {
    gateway.acceptNative(std::move(connection));
  });
  int tcp_port = -1;
  if (config.tcp_port >= 0) {
    if (auto ok = native.start(config.tcp_host, std::uint16_t(config.tcp_port)); !ok) {
      return fatal(ok.error().message);
    }
    tcp_port = native.boundPort();
  }
  const std::string advertise_host =
      config.advertise.find(':') != std::string::npos ? "[" + config.advertise + "]" : config.advertise;
  http_api.setGatewayAddresses(
      std::string(tls ? "wss://" : "ws://") + advertise_host + ":" + std::to_string(http.boundPort()) + "/ws",
      tcp_port < 0 ? std::string()
                   : std::string(tls ? "tls://" : "tcp://") + advertise_host + ":" + std::to_string(tcp_port));
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
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (!ec) spdlog::info("pigeond: signal {}, shutting down", signal);
    purge_timer.cancel();
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
  // The store goes first: closing it commits what is queued and runs those callbacks, which
  // use the service and post to the (stopped, still alive) loops.
  store->reset();
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
