#include "protocol/websocket.h"

#include <algorithm>
#include <cstring>

namespace pigeon::protocol {

void WsParser::unmask(char* data, std::size_t n) {
  // The mask as it lines up with data[0], then eight bytes at a time (8 is a multiple of the
  // mask's 4, so the alignment holds for the tail too).
  char m[4];
  for (std::size_t j = 0; j < 4; ++j) m[j] = char(mask_[(mask_pos_ + j) & 3]);
  std::uint32_t m32;
  std::memcpy(&m32, m, 4);
  const std::uint64_t m64 = (std::uint64_t(m32) << 32) | m32;
  std::size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    std::uint64_t v;
    std::memcpy(&v, data + k, 8);
    v ^= m64;
    std::memcpy(data + k, &v, 8);
  }
  for (; k < n; ++k) data[k] ^= m[k & 3];
  mask_pos_ = (mask_pos_ + n) & 3;
}

bool WsParser::failWith(std::uint16_t code, std::string message) {
  failed_ = true;
  close_code_ = code;
  error_ = std::move(message);
  std::string().swap(control_);
  return false;
}

bool WsParser::feed(char* data, std::size_t size, WsHandler& handler) {
  if (failed_) return false;
  std::size_t i = 0;
  while (i < size && !closed_) {
    if (!in_payload_) {
      // Assemble the header: 2 bytes, then the extended length, then the 4-byte mask.
      header_[header_len_++] = static_cast<std::uint8_t>(data[i++]);
      if (header_len_ < 2) continue;
      const std::uint8_t b0 = header_[0], b1 = header_[1];
      if (b0 & 0x70) return failWith(kWsCloseProtocolError, "reserved bits set (no extensions)");
      if (bool(b1 & 0x80) != masked_) {
        return failWith(kWsCloseProtocolError,
                        masked_ ? "client frames must be masked" : "server frames must not be masked");
      }
      const std::uint8_t len7 = b1 & 0x7F;
      const std::size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
      if (header_len_ < 2 + ext + (masked_ ? 4 : 0)) continue;

      std::uint64_t len = len7;
      if (ext == 2) {
        len = (std::uint64_t(header_[2]) << 8) | header_[3];
        if (len < 126) return failWith(kWsCloseProtocolError, "non-minimal payload length");
      } else if (ext == 8) {
        len = 0;
        for (int k = 0; k < 8; ++k) len = (len << 8) | header_[2 + k];
        if (len >> 63) return failWith(kWsCloseProtocolError, "payload length has its top bit set");
        if (len <= 0xFFFF) return failWith(kWsCloseProtocolError, "non-minimal payload length");
      }
      if (masked_) std::copy_n(header_ + 2 + ext, 4, mask_);
      header_len_ = 0;
      mask_pos_ = 0;
      fin_ = (b0 & 0x80) != 0;
      const auto op = static_cast<WsOpcode>(b0 & 0x0F);
      switch (op) {
        case WsOpcode::Continuation:
          if (!in_message_) return failWith(kWsCloseProtocolError, "continuation without a message");
          break;
        case WsOpcode::Text:
        case WsOpcode::Binary:
          if (in_message_) {
            return failWith(kWsCloseProtocolError, "new message before the last one finished");
          }
          in_message_ = true;
          message_bytes_ = 0;
          break;
        case WsOpcode::Close:
        case WsOpcode::Ping:
        case WsOpcode::Pong:
          if (!fin_) return failWith(kWsCloseProtocolError, "fragmented control frame");
          if (len > 125) return failWith(kWsCloseProtocolError, "control frame over 125 bytes");
          break;
        default:
          return failWith(kWsCloseProtocolError, "unknown opcode");
      }
      opcode_ = op;
      remaining_ = len;
      if (op == WsOpcode::Text || op == WsOpcode::Binary || op == WsOpcode::Continuation) {
        message_bytes_ += len;
        if (max_message_ != 0 && message_bytes_ > max_message_) {
          return failWith(kWsCloseTooBig, "message over the limit of " +
                                              std::to_string(max_message_) + " bytes");
        }
      }
      in_payload_ = true;
      // Fall through to deliver an empty payload's frame at once.
    }

    const std::size_t take = std::size_t(std::min<std::uint64_t>(remaining_, size - i));
    char* chunk = data + i;
    if (masked_) unmask(chunk, take);
    remaining_ -= take;
    i += take;

    const bool control = opcode_ == WsOpcode::Close || opcode_ == WsOpcode::Ping ||
                         opcode_ == WsOpcode::Pong;
    if (control) {
      control_.append(chunk, take);
    } else if (take > 0) {
      handler.onData(std::string_view(chunk, take));
    }
    if (remaining_ != 0) continue;

    // The frame is complete.
    in_payload_ = false;
    if (control) {
      std::string payload;
      payload.swap(control_);
      if (opcode_ == WsOpcode::Ping) {
        handler.onPing(payload);
      } else if (opcode_ == WsOpcode::Close) {
        if (payload.size() == 1) return failWith(kWsCloseProtocolError, "close payload of 1 byte");
        std::uint16_t code = kWsCloseNormal;
        std::string_view reason;
        if (payload.size() >= 2) {
          code = std::uint16_t((std::uint8_t(payload[0]) << 8) | std::uint8_t(payload[1]));
          reason = std::string_view(payload).substr(2);
        }
        closed_ = true;  // nothing after a close frame is processed
        handler.onClose(code, reason);
      }
      // A pong needs nothing: any bytes from the peer already count as activity.
    } else if (fin_) {
      in_message_ = false;
    }
  }
  return true;
}

std::size_t wsFrameHeader(std::uint8_t* out, WsOpcode opcode, std::uint64_t payload_len) {
  out[0] = 0x80 | static_cast<std::uint8_t>(opcode);
  if (payload_len < 126) {
    out[1] = std::uint8_t(payload_len);
    return 2;
  }
  if (payload_len <= 0xFFFF) {
    out[1] = 126;
    out[2] = std::uint8_t(payload_len >> 8);
    out[3] = std::uint8_t(payload_len);
    return 4;
  }
  out[1] = 127;
  for (int k = 0; k < 8; ++k) out[2 + k] = std::uint8_t(payload_len >> (56 - 8 * k));
  return 10;
}

std::string wsFrame(WsOpcode opcode, std::string_view payload) {
  std::uint8_t header[10];
  const std::size_t n = wsFrameHeader(header, opcode, payload.size());
  std::string out(reinterpret_cast<const char*>(header), n);
  out += payload;
  return out;
}

std::string wsCloseFrame(std::uint16_t code, std::string_view reason) {
  std::string payload;
  payload += char(code >> 8);
  payload += char(code & 0xFF);
  payload += reason.substr(0, 123);
  return wsFrame(WsOpcode::Close, payload);
}

}  // namespace pigeon::protocol

namespace pigeon::protocol {

void appendMaskedFrame(std::string& out, WsOpcode opcode, std::string_view payload,
                       std::uint32_t mask) {
  std::uint8_t header[14];
  std::size_t n = wsFrameHeader(header, opcode, payload.size());
  header[1] |= 0x80;
  const std::uint8_t key[4] = {std::uint8_t(mask >> 24), std::uint8_t(mask >> 16),
                               std::uint8_t(mask >> 8), std::uint8_t(mask)};
  std::copy_n(key, 4, header + n);
  n += 4;
  out.append(reinterpret_cast<const char*>(header), n);
  const std::size_t at = out.size();
  out.append(payload);
  for (std::size_t i = 0; i < payload.size(); ++i) out[at + i] = char(out[at + i] ^ key[i & 3]);
}

}  // namespace pigeon::protocol
