// The HTTP JSON API under /api/v1, plus /healthz and /metrics. Documented in docs/api.md.
//
// Threads: handle() runs on an I/O loop and never blocks it: every call into core::Service is
// offloaded to the worker pool. One HttpApi serves all loops; it is thread-safe.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <functional>
#include <optional>
#include <string>

#include "api/http_types.h"
#include "api/static_files.h"
#include "base/metrics.h"
#include "base/rate_limiter.h"
#include "core/presence.h"
#include "core/service.h"

namespace pigeon::api {

// The long-connection gateways a login names.
struct GatewayChoice {
  std::string ws;   // empty: none (the JSON field is null)
  std::string tcp;
};

struct ApiOptions {
  // Addresses returned by login for the long-connection gateways; empty while this node does
  // not serve that transport (then the JSON field is null).
  std::string gateway_ws;
  std::string gateway_tcp;
  // Cluster mode: picks the gateway node for a login by `user` (nullopt: none is alive, the
  // login answers 503). Called on a worker. Null: this node's own addresses above.
  std::function<std::optional<GatewayChoice>(store::UserId user)> pick_gateway;
  // false: this node does not have the api role; /api/v1 answers 404 saying so.
  bool serve_api = true;
  // Who is online (GET /api/v1/users/online); null: nobody is reported online.
  const core::Presence* presence = nullptr;
  // The web client served at / (GET and HEAD outside /api); null or empty: 404.
  const StaticFiles* static_files = nullptr;
};

class HttpApi {
 public:
  // `workers` runs the blocking calls. Everything passed must outlive the HttpApi.
  HttpApi(core::Service& service, boost::asio::any_io_executor workers, RateLimiter& limiter,
          MetricsRegistry& metrics, ApiOptions options);

  boost::asio::awaitable<Response> handle(Request request);

  // Sets the gateway addresses login returns (known once the listeners are bound). Call
  // before serving.
  void setGatewayAddresses(std::string ws, std::string tcp) {
    options_.gateway_ws = std::move(ws);
    options_.gateway_tcp = std::move(tcp);
  }

  // The JSON error body every failure uses: {"error":{"code","message"}}, with its status.
  static Response errorResponse(const Error& error);
  static Response errorResponse(int status, std::string_view code, std::string_view message);
  static int httpStatus(Errc code);

 private:
  struct Route;
  boost::asio::awaitable<Response> dispatch(Request& request, std::string& route_name);

  core::Service& service_;
  boost::asio::any_io_executor workers_;
  RateLimiter& limiter_;
  MetricsRegistry& metrics_;
  ApiOptions options_;
  Counter& rate_limited_;
};

}  // namespace pigeon::api
