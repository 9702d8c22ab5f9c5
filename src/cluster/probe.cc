#include "cluster/probe.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "base/host_port.h"

namespace pigeon::cluster {
namespace asio = boost::asio;

LivenessProbe::LivenessProbe(std::chrono::milliseconds timeout, std::chrono::milliseconds remember)
    : timeout_(timeout), remember_(remember) {}

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
  auto address = hostPortOf(node.tcp);
  if (!address) address = hostPortOf(node.ws);
  const bool ok = address && connect(address->host, address->port);
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
