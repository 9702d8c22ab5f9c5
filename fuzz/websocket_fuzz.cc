// libFuzzer target for the WebSocket frame parser: any bytes, in any split, are parsed or
// refused with a close code — never a crash, a hang or an out-of-bounds access.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "protocol/websocket.h"

namespace {
struct Sink : pigeon::protocol::WsHandler {
  std::size_t bytes = 0;
  void onData(std::string_view p) override { bytes += p.size(); }
  void onPing(std::string_view p) override {
    if (p.size() > 125) std::abort();
  }
  void onClose(std::uint16_t, std::string_view reason) override {
    if (reason.size() > 123) std::abort();
  }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t chunk = 1 + data[0] % 32;
  std::vector<char> input(data + 1, data + size);
  pigeon::protocol::WsParser parser(1 << 16);
  Sink sink;
  for (std::size_t i = 0; i < input.size(); i += chunk) {
    const std::size_t n = std::min(chunk, input.size() - i);
    if (!parser.feed(input.data() + i, n, sink)) {
      if (parser.error().empty()) std::abort();
      break;
    }
  }
  return 0;
}
