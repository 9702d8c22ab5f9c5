// libFuzzer target for the native frame decoder (varint32 length + pigeon.v1.Envelope): any
// bytes, fed in any split, must either parse into envelopes whose re-encoding parses back
// the same, or fail cleanly — never crash, hang, read out of bounds or buffer past the limit.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/native.h"

using pigeon::protocol::NativeParser;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  // The first byte picks the chunk size, so splits are explored too.
  const std::size_t chunk = 1 + data[0] % 64;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  constexpr std::size_t kLimit = 4096;
  NativeParser parser(kLimit);
  for (std::size_t i = 0; i < input.size(); i += chunk) {
    parser.feed(input.substr(i, chunk));
    for (;;) {
      const auto status = parser.next();
      if (status != NativeParser::Status::Frame) break;
      const auto& envelope = parser.envelope();
      // Round trip: what we encode, we parse back to the same bytes.
      std::string wire;
      pigeon::protocol::appendNative(wire, envelope);
      NativeParser again(1 << 20);
      again.feed(wire);
      if (again.next() != NativeParser::Status::Frame ||
          again.envelope().SerializeAsString() != envelope.SerializeAsString() ||
          again.buffered() != 0) {
        std::abort();
      }
    }
    // A frame in progress is never buffered past its length prefix's limit.
    if (parser.buffered() > kLimit + pigeon::protocol::kMaxVarint32Bytes + chunk) std::abort();
  }
  return 0;
}
