#include "base/errc.h"

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

}  // namespace pigeon
