// Error values used across Pigeon. Expected failures (client input, storage, network, config)
// are returned as Result<T>; exceptions never cross a module boundary on the data path.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <utility>

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

template <typename T>
using Result = std::expected<T, Error>;

// Builds the unexpected branch of a Result: `return fail(Errc::NotFound, "no such user");`
inline std::unexpected<Error> fail(Errc code, std::string message) {
  return std::unexpected<Error>(Error{code, std::move(message)});
}

}  // namespace pigeon

// Invariant check that stays on in release builds: a broken invariant is a bug, and continuing
// could corrupt durable state.
#define PIGEON_ASSERT(cond)                              \
  do {                                                   \
    if (!(cond)) [[unlikely]]                            \
      ::pigeon::assertFailed(#cond, __FILE__, __LINE__); \
  } while (false)

namespace pigeon {
[[noreturn]] void assertFailed(const char* expr, const char* file, int line) noexcept;
}  // namespace pigeon
