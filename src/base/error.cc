#include "base/error.h"

#include <cstdio>
#include <cstdlib>

namespace pigeon {

std::string_view errcName(Errc code) noexcept {
  switch (code) {
    case Errc::BadRequest:
      return "bad_request";
    case Errc::Unauthenticated:
      return "unauthenticated";
    case Errc::Forbidden:
      return "forbidden";
    case Errc::NotFound:
      return "not_found";
    case Errc::Conflict:
      return "conflict";
    case Errc::TooLarge:
      return "too_large";
    case Errc::RateLimited:
      return "rate_limited";
    case Errc::Unavailable:
      return "unavailable";
    case Errc::Internal:
      return "internal";
  }
  return "internal";
}

void assertFailed(const char* expr, const char* file, int line) noexcept {
  std::fprintf(stderr, "pigeon: assertion failed: %s at %s:%d\n", expr, file, line);
  std::abort();
}

}  // namespace pigeon
