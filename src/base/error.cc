#include "base/error.h"

#include <cstdio>
#include <cstdlib>

namespace pigeon {

void assertFailed(const char* expr, const char* file, int line) noexcept {
  std::fprintf(stderr, "pigeon: assertion failed: %s at %s:%d\n", expr, file, line);
  std::abort();
}

}  // namespace pigeon
