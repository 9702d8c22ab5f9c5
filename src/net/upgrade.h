// Hand-off of an upgraded HTTP connection (WebSocket) from the HTTP listener to whoever serves
// it, without either depending on the other.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <string>

namespace pigeon::net {

// The parts of an HTTP upgrade request a WebSocket server needs.
struct UpgradeRequest {
  std::string method;
  std::string target;
  std::string upgrade, connection, ws_key, ws_version, ws_protocol, authorization;
  std::string remote_ip;
};

// Takes the socket (bound to its event loop), the request, and any bytes read past it. Called
// on the socket's loop.
using UpgradeHandler = std::function<void(boost::asio::ip::tcp::socket socket,
                                          const UpgradeRequest& request, std::string leftover)>;

}  // namespace pigeon::net
