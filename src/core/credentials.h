// Password hashing (argon2id via libsodium) and bearer tokens. Thread-safe; hashing is
// CPU- and memory-heavy by design: call from worker threads, never from an I/O loop.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "base/error.h"

namespace pigeon::core {

struct PasswordCost {
  unsigned long long opslimit;        // argon2id passes
  std::size_t memlimit;               // bytes of memory per hash
  static PasswordCost interactive();  // libsodium's INTERACTIVE: 2 passes, 64 MiB
  static PasswordCost minimum();      // the least libsodium allows (for tests)
};

// Initialises libsodium; safe to call more than once. Errors: Internal if it cannot start.
Result<void> initCrypto();

// Errors: Unavailable if the hash could not be computed (out of memory).
Result<std::string> hashPassword(std::string_view password, const PasswordCost& cost);
bool verifyPassword(std::string_view password, const std::string& hash);

// A new random token: 32 random bytes, base64url without padding (43 characters).
std::string newToken();
// The token's storage key: BLAKE2b-256 of the token, raw bytes. Only this is stored.
std::string tokenHash(std::string_view token);

}  // namespace pigeon::core
