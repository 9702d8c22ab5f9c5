// WebSocket framing (RFC 6455, no extensions): an incremental parser for the peer's frames
// (masked client frames on the server; unmasked server frames in clients such as
// pigeon-bench) and encoders for both sides. Pure code, fuzzed (fuzz/websocket_fuzz.cc).
//
// The parser streams: payload bytes are unmasked in place and handed on as they arrive, so a
// connection never buffers a whole message and an idle one holds nothing. Message boundaries
// are not reported: the STOMP layer above parses a byte stream.
//
// Threads: a parser belongs to one connection; use it from one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pigeon::protocol {

enum class WsOpcode : std::uint8_t {
  Continuation = 0x0,
  Text = 0x1,
  Binary = 0x2,
  Close = 0x8,
  Ping = 0x9,
  Pong = 0xA,
};

// Close codes the server sends.
inline constexpr std::uint16_t kWsCloseNormal = 1000;
inline constexpr std::uint16_t kWsCloseProtocolError = 1002;
inline constexpr std::uint16_t kWsClosePolicyViolation = 1008;
inline constexpr std::uint16_t kWsCloseTooBig = 1009;

class WsHandler {
 public:
  virtual ~WsHandler() = default;
  virtual void onData(std::string_view payload) = 0;  // text or binary message bytes
  virtual void onPing(std::string_view payload) = 0;  // answer with a pong
  virtual void onClose(std::uint16_t code, std::string_view reason) = 0;
};

// Which side parses: a server reads masked frames, a client unmasked ones.
enum class WsRole : std::uint8_t { Server, Client };

class WsParser {
 public:
  // `max_message_bytes`: the most a data message may carry (0: no limit).
  explicit WsParser(std::uint64_t max_message_bytes = 0, WsRole role = WsRole::Server)
      : max_message_(max_message_bytes), masked_(role == WsRole::Server) {}

  // Parses `data` (unmasking it in place) and calls `handler`. Returns false on a protocol
  // violation: then error() says why and closeCode() which close code to send; the parser
  // stays failed.
  bool feed(char* data, std::size_t size, WsHandler& handler);

  const std::string& error() const { return error_; }
  std::uint16_t closeCode() const { return close_code_; }

 private:
  bool failWith(std::uint16_t code, std::string message);
  void unmask(char* data, std::size_t n);

  std::uint64_t max_message_;
  bool masked_;  // frames carry a mask (they come from a client)
  // Frame header being assembled (at most 14 bytes).
  std::uint8_t header_[14];
  std::size_t header_len_ = 0;
  // Current frame.
  bool in_payload_ = false;
  WsOpcode opcode_ = WsOpcode::Continuation;
  bool fin_ = false;
  std::uint64_t remaining_ = 0;
  std::uint8_t mask_[4] = {0, 0, 0, 0};
  std::size_t mask_pos_ = 0;
  // Message state across fragments.
  bool in_message_ = false;
  std::uint64_t message_bytes_ = 0;
  // A control frame's payload (at most 125 bytes), allocated only while one is arriving.
  std::string control_;
  bool failed_ = false;
  bool closed_ = false;  // a close frame arrived: the rest is ignored
  std::string error_;
  std::uint16_t close_code_ = kWsCloseProtocolError;
};

// Writes the header of an unmasked, final server frame into `out` (at most 10 bytes); returns
// its length.
std::size_t wsFrameHeader(std::uint8_t* out, WsOpcode opcode, std::uint64_t payload_len);

// A whole small server frame (control frames, the close frame).
std::string wsFrame(WsOpcode opcode, std::string_view payload);
std::string wsCloseFrame(std::uint16_t code, std::string_view reason);

// Appends a final client frame masked with `mask` (a client must pick a fresh random-looking
// key per frame).
void appendMaskedFrame(std::string& out, WsOpcode opcode, std::string_view payload,
                       std::uint32_t mask);

}  // namespace pigeon::protocol
