// Hand-off of an upgraded HTTP connection (WebSocket) from the HTTP listener to whoever serves
// it, without either depending on the other.
#pragma once

#include <functional>
#include <string>

#include "net/transport.h"

namespace pigeon::net {

// The parts of an HTTP upgrade request a WebSocket server needs.
struct UpgradeRequest {
  std::string method;
  std::string target;
  std::string upgrade, connection, ws_key, ws_version, ws_protocol, authorization;
  std::string remote_ip;
};

// Takes the connection (plain or TLS, bound to its event loop), the request, and any bytes read
// past it. Called on the connection's loop.
using UpgradeHandler =
    std::function<void(Connection connection, const UpgradeRequest& request, std::string leftover)>;

}  // namespace pigeon::net
