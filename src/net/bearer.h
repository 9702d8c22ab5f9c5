// The token of an `Authorization: Bearer <token>` header, shared by the HTTP API and the
// WebSocket upgrade.
#pragma once

#include <optional>
#include <string_view>

namespace pigeon::net {

// The token, or nullopt when the header is absent or not a Bearer credential.
inline std::optional<std::string_view> bearerToken(std::string_view authorization) {
  constexpr std::string_view kBearer = "Bearer ";
  if (!authorization.starts_with(kBearer)) return std::nullopt;
  return authorization.substr(kBearer.size());
}

}  // namespace pigeon::net
