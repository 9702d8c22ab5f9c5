// Error codes and the Error value shared by every module. Free of <expected>, so that pure
// code (protocol codecs, fuzz targets built with clang) can use it on its own.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pigeon {

// Every error a client can cause maps to exactly one of these; each protocol translates them
// (HTTP status, STOMP ERROR, protobuf Error) in one place.
enum class Errc : std::uint16_t {
  BadRequest,       // malformed or invalid input
  Unauthenticated,  // missing, forged or expired credentials
  Forbidden,        // authenticated but not allowed
  NotFound,         // the named user, group, conversation or message does not exist
  Conflict,         // the resource exists already (e.g. a username)
  TooLarge,         // a body or frame over its configured limit
  RateLimited,      // the client exceeded its request rate
  Unavailable,      // the server cannot serve the request now (storage failed, shutting down)
  Internal,         // a bug or an unexpected failure
};

// Stable, lower-case name of an error code, used on the wire ("not_found").
std::string_view errcName(Errc code) noexcept;

struct Error {
  Errc code;
  std::string message;  // human-readable, safe to show to the client

  friend bool operator==(const Error&, const Error&) = default;
};

}  // namespace pigeon
