// UTF-8 validation, shared by the server (STOMP text frames, search keywords, group names) and
// the client SDK. Pure code.
#pragma once

#include <string_view>

namespace pigeon {

// True when `s` is well-formed UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF,
// no truncated sequence. NUL bytes are valid.
bool isValidUtf8(std::string_view s);

}  // namespace pigeon
