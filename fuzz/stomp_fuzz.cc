// libFuzzer target for the STOMP frame parser: any bytes, fed in any split, must either parse
// into frames whose re-encoding parses back the same, or fail cleanly — never crash, hang or
// read out of bounds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/stomp.h"

using pigeon::protocol::StompParser;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  // The first byte picks the chunk size, so splits are explored too.
  const std::size_t chunk = 1 + data[0] % 64;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  pigeon::protocol::StompLimits limits;
  limits.max_frame_bytes = 4096;
  limits.max_headers = 16;
  StompParser parser(limits);
  for (std::size_t i = 0; i < input.size(); i += chunk) {
    parser.feed(input.substr(i, chunk));
    for (;;) {
      const auto status = parser.next();
      if (status == StompParser::Status::NeedMore || status == StompParser::Status::Error) break;
      if (status != StompParser::Status::Frame) continue;
      const auto& frame = parser.frame();
      if (frame.command == "CONNECT" || frame.command == "CONNECTED") continue;
      // Round trip: what we encode, we parse back identically.
      std::string wire = frame.command + "\n";
      for (const auto& [name, value] : frame.headers) {
        if (name == "content-length") continue;
        pigeon::protocol::appendEscaped(wire, name);
        wire += ':';
        pigeon::protocol::appendEscaped(wire, value);
        wire += '\n';
      }
      wire += "content-length:" + std::to_string(frame.body.size()) + "\n\n" + frame.body;
      wire += '\0';
      StompParser again(pigeon::protocol::StompLimits{1 << 20, 1024});
      again.feed(wire);
      if (again.next() != StompParser::Status::Frame || again.frame().body != frame.body ||
          again.frame().command != frame.command) {
        std::abort();
      }
    }
  }
  return 0;
}
