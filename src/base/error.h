// Error values used across Pigeon. Expected failures (client input, storage, network, config)
// are returned as Result<T>; exceptions never cross a module boundary on the data path.
#pragma once

#include <expected>
#include <string>
#include <utility>

#include "base/errc.h"

namespace pigeon {

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
