#include "core/validation.h"

#include <string>

namespace pigeon::core {
namespace {

bool isNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

bool allNameChars(std::string_view s) {
  for (char c : s) {
    if (!isNameChar(c)) return false;
  }
  return true;
}

bool allPrintableAscii(std::string_view s, bool allow_space) {
  for (char c : s) {
    if (c < 0x21 || c > 0x7e) {
      if (!(allow_space && c == ' ')) return false;
    }
  }
  return true;
}

}  // namespace

Result<void> validateUsername(std::string_view name) {
  if (name.size() < kMinUsername || name.size() > kMaxUsername || !allNameChars(name)) {
    return fail(Errc::BadRequest, "username must be 3 to 32 characters of A-Z a-z 0-9 _ . -");
  }
  return {};
}

Result<void> validateUsernamePrefix(std::string_view prefix) {
  if (prefix.size() > kMaxUsername || !allNameChars(prefix)) {
    return fail(Errc::BadRequest, "prefix must be at most 32 characters of A-Z a-z 0-9 _ . -");
  }
  return {};
}

Result<void> validatePassword(std::string_view password) {
  if (password.size() < kMinPassword) {
    return fail(Errc::BadRequest, "password must be at least 8 characters");
  }
  if (password.size() > kMaxPassword) {
    return fail(Errc::BadRequest, "password must be at most 1024 bytes");
  }
  return {};
}

Result<void> validateDevice(std::string_view device) {
  if (device.empty() || device.size() > kMaxDevice || !allNameChars(device)) {
    return fail(Errc::BadRequest, "device must be 1 to 64 characters of A-Z a-z 0-9 _ . -");
  }
  return {};
}

Result<void> validateClientMsgId(std::string_view id) {
  if (id.size() > kMaxClientMsgId || !allPrintableAscii(id, false)) {
    return fail(Errc::BadRequest, "client_msg_id must be at most 64 printable ASCII characters");
  }
  return {};
}

Result<void> validateContentType(std::string_view type) {
  if (type.empty() || type.size() > kMaxContentType || !allPrintableAscii(type, true)) {
    return fail(Errc::BadRequest, "content_type must be 1 to 128 printable ASCII characters");
  }
  return {};
}

Result<void> validateGroupName(std::string_view name) {
  if (name.empty() || name.size() > kMaxGroupName || !isValidUtf8(name)) {
    return fail(Errc::BadRequest, "group name must be 1 to 64 bytes of UTF-8");
  }
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) {
      return fail(Errc::BadRequest, "group name must not contain control characters");
    }
  }
  return {};
}


}  // namespace pigeon::core
