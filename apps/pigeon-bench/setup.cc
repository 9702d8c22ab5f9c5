#include "setup.h"

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace pigeon::bench {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

bool parseHttpUrl(const std::string& url, HttpServer& out) {
  const std::string prefix = "http://";
  if (!url.starts_with(prefix)) return false;
  const std::string rest = url.substr(prefix.size());
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos) return false;
  out.host = rest.substr(0, colon);
  try {
    out.port = static_cast<std::uint16_t>(std::stoi(rest.substr(colon + 1)));
  } catch (...) {
    return false;
  }
  return out.port != 0;
}

struct SetupClient::Impl {
  HttpServer server;
  asio::io_context io;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;

  void connect() {
    stream.emplace(io);
    stream->connect(asio::ip::tcp::endpoint(asio::ip::make_address(server.host), server.port));
  }
};

SetupClient::SetupClient(HttpServer server) : impl_(std::make_unique<Impl>()) {
  impl_->server = std::move(server);
}
SetupClient::~SetupClient() = default;

boost::json::value SetupClient::request(const std::string& method, const std::string& target,
                                        const boost::json::value& body, const std::string& token,
                                        int& status) {
  for (int attempt = 0;; ++attempt) {
    try {
      if (!impl_->stream) impl_->connect();
      http::request<http::string_body> req{http::string_to_verb(method), target, 11};
      req.set(http::field::host, impl_->server.host);
      req.keep_alive(true);
      if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
      if (!body.is_null()) {
        req.set(http::field::content_type, "application/json");
        req.body() = boost::json::serialize(body);
      }
      req.prepare_payload();
      http::write(*impl_->stream, req);
      http::response<http::string_body> res;
      http::read(*impl_->stream, impl_->buffer, res);
      status = res.result_int();
      if (!res.keep_alive()) impl_->stream.reset();
      return res.body().empty() ? boost::json::value() : boost::json::parse(res.body());
    } catch (const std::exception&) {
      // The server closed a kept-alive connection: reconnect once.
      impl_->stream.reset();
      impl_->buffer.clear();
      if (attempt >= 1) throw;
    }
  }
}

void parallel(const HttpServer& server, std::size_t n, std::size_t threads,
              const std::function<void(SetupClient&, std::size_t)>& fn) {
  std::atomic<std::size_t> next{0};
  std::exception_ptr error;
  std::mutex mu;
  std::vector<std::thread> pool;
  for (std::size_t t = 0; t < std::min(threads, std::max<std::size_t>(n, 1)); ++t) {
    pool.emplace_back([&] {
      SetupClient client(server);
      for (;;) {
        const std::size_t i = next.fetch_add(1);
        if (i >= n) return;
        try {
          fn(client, i);
        } catch (...) {
          std::lock_guard lock(mu);
          if (!error) error = std::current_exception();
          next.store(n);
          return;
        }
      }
    });
  }
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace pigeon::bench
