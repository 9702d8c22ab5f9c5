// The server's half of the WebSocket opening handshake (RFC 6455 §4.2).
#pragma once

#include <string>
#include <string_view>

#include "base/error.h"

namespace pigeon::gateway {

// Whether a comma-separated header value (Connection, Sec-WebSocket-Protocol, STOMP's
// accept-version) holds `token`, ignoring case and spaces around items.
bool headerListHas(std::string_view list, std::string_view token);

// base64(SHA-1(key + the RFC's GUID)), the Sec-WebSocket-Accept value.
std::string webSocketAccept(std::string_view key);

struct HandshakeInput {
  std::string_view upgrade, connection, ws_key, ws_version, ws_protocol;
};

// The 101 response, or BadRequest when the request is not a valid WebSocket upgrade. Offers of
// "v12.stomp" (or, failing that, "v11.stomp"/"v10.stomp") are answered with that protocol.
Result<std::string> webSocketHandshakeResponse(const HandshakeInput& in);

// A complete HTTP error response for a refused upgrade.
std::string httpErrorResponse(int status, std::string_view reason, std::string_view message);

}  // namespace pigeon::gateway
