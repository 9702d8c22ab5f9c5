#include "cluster/probe.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <charconv>

namespace pigeon::cluster {
namespace asio = boost::asio;

LivenessProbe::LivenessProbe(std::chrono::milliseconds timeout, std::chrono::milliseconds remember)
    : timeout_(timeout), remember_(remember) {}

bool LivenessProbe::hostPort(std::string_view url, std::string& host, std::uint16_t& port) {
  if (auto scheme = url.find("://"); scheme != std::string_view::npos) url.remove_prefix(scheme + 3);
  if (auto path = url.find('/'); path != std::string_view::npos) url = url.substr(0, path);
  const auto colon = url.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view h = url.substr(0, colon), p = url.substr(colon + 1);
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (ec != std::errc() || end != p.data() + p.size() || value == 0 || value > 65535) return false;
  host = std::string(h);
  port = std::uint16_t(value);
  return true;
}

bool LivenessProbe::connect(const std::string& host, std::uint16_t port) const {
  asio::io_context io;
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  asio::ip::tcp::socket socket(io);
  if (ec) {
    // A name, not an address: resolve it (advertised addresses are usually literal).
    asio::ip::tcp::resolver resolver(io);
    auto found = resolver.resolve(host, std::to_string(port), ec);
    if (ec) return false;
    ec = asio::error::would_block;  // until the connect completes
    asio::async_connect(socket, found, [&](const boost::system::error_code& e, const auto&) { ec = e; });
  } else {
    ec = asio::error::would_block;  // until the connect completes
    socket.async_connect({address, port}, [&](const boost::system::error_code& e) { ec = e; });
  }
  io.run_for(timeout_);
  return !ec && socket.is_open();
}

bool LivenessProbe::alive(const NodeInfo& node) {
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mu_);
    if (auto it = answers_.find(node.id); it != answers_.end() && now - it->second.at < remember_) {
      return false;
    }
  }
  std::string host;
  std::uint16_t port = 0;
  const bool ok = (hostPort(node.tcp, host, port) || hostPort(node.ws, host, port)) && connect(host, port);
  std::lock_guard lock(mu_);
  if (ok) {
    answers_.erase(node.id);
  } else {
    // Forget dead nodes not asked about for long (they left the cluster).
    if (answers_.size() > 1024) std::erase_if(answers_, [&](const auto& a) { return now - a.second.at >= remember_; });
    answers_[node.id] = Answer{now};
  }
  return ok;
}

}  // namespace pigeon::cluster
