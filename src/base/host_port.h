// The host and port of a URL as nodes advertise them: "tcp://10.0.0.7:9090",
// "wss://[::1]:8443/ws", or "host:port" alone. The port is required (no scheme defaults); the
// client SDK's parseEndpoint is the full parser for what users type.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pigeon {

struct HostPort {
  std::string host;  // without brackets for IPv6
  std::uint16_t port = 0;
};

// nullopt if there is no host, or the port is missing, not a number or not in 1–65535.
std::optional<HostPort> hostPortOf(std::string_view url);

}  // namespace pigeon
