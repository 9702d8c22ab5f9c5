// Input rules of the domain. Each returns BadRequest with a message that says what is allowed.
#pragma once

#include <cstddef>
#include <string_view>

#include "base/error.h"
#include "base/utf8.h"

namespace pigeon::core {

inline constexpr std::size_t kMinUsername = 3, kMaxUsername = 32;
inline constexpr std::size_t kMinPassword = 8, kMaxPassword = 1024;
inline constexpr std::size_t kMaxDevice = 64;
inline constexpr std::size_t kMaxClientMsgId = 64;
inline constexpr std::size_t kMaxContentType = 128;
inline constexpr std::size_t kMaxGroupName = 64;

Result<void> validateUsername(std::string_view name);          // 3–32 of [A-Za-z0-9_.-]
Result<void> validateUsernamePrefix(std::string_view prefix);  // 0–32 of the same
Result<void> validatePassword(std::string_view password);      // 8–1024 bytes
Result<void> validateDevice(std::string_view device);          // 1–64 of [A-Za-z0-9_.-]
Result<void> validateClientMsgId(std::string_view id);         // 0–64 printable ASCII, no spaces
Result<void> validateContentType(std::string_view type);       // 1–128 printable ASCII
Result<void> validateGroupName(std::string_view name);         // 1–64 bytes of UTF-8, no controls
using ::pigeon::isValidUtf8;  // base/utf8.h

}  // namespace pigeon::core
