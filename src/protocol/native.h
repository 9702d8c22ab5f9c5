// Pigeon's native protocol framing: each frame is a pigeon.v1.Envelope (proto/pigeon.proto)
// preceded by its length as a base-128 varint of at most 5 bytes. An incremental parser for
// the bytes a peer sends, and encoders. Pure code: no I/O; fuzzed (fuzz/native_fuzz.cc).
//
// Threads: a parser belongs to one connection; use it from one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/errc.h"
#include "proto/pigeon.pb.h"

namespace pigeon::protocol {

namespace pb = ::pigeon::v1;

// The longest varint32 on the wire.
inline constexpr std::size_t kMaxVarint32Bytes = 5;

class NativeParser {
 public:
  enum class Status {
    NeedMore,  // no complete frame yet: feed more bytes
    Frame,     // envelope() holds the next frame
    Error,     // error() says why (TooLarge or BadRequest); the parser stays failed
  };

  // A frame's envelope may be at most `max_frame_bytes` long.
  explicit NativeParser(std::size_t max_frame_bytes = 64 * 1024) : max_frame_(max_frame_bytes) {}

  void feed(std::string_view bytes);
  // Parses the next frame from what was fed. Call until it returns NeedMore or Error.
  Status next();

  pb::Envelope& envelope() { return envelope_; }
  const Error& error() const { return error_; }
  std::size_t buffered() const { return buf_.size() - pos_; }

 private:
  Status failWith(Errc code, std::string message);

  std::size_t max_frame_;
  std::string buf_;
  std::size_t pos_ = 0;
  pb::Envelope envelope_;
  Error error_{Errc::BadRequest, ""};
  bool failed_ = false;
};

// Appends `value` as a varint; returns the number of bytes written to `out` (at most 10).
std::size_t putVarint(std::uint8_t* out, std::uint64_t value);
// Appends one frame (length + envelope) to `out`.
void appendNative(std::string& out, const pb::Envelope& envelope);

// Encode-once delivery: a Deliver's fields other than its seq are the same for every recipient.
// `encodeDeliverTail` serialises them once (a Deliver with seq 0, which proto3 leaves out);
// `deliverHead` writes what is per recipient — the frame length, the Envelope's deliver tag and
// length, and the seq field — into `out` (at most kMaxDeliverHead bytes). head + tail is a valid
// frame: a protobuf message's fields may come in any order.
inline constexpr std::size_t kMaxDeliverHead = 5 + 1 + 5 + 1 + 10;
std::string encodeDeliverTail(const pb::Deliver& deliver_without_seq);
std::size_t deliverHead(std::uint8_t* out, std::uint64_t seq, std::size_t tail_size);

}  // namespace pigeon::protocol
