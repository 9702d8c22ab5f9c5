#include "protocol/websocket.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pigeon::protocol {
namespace {

// Builds a masked client frame.
std::string clientFrame(std::uint8_t opcode, std::string_view payload, bool fin = true,
                        std::uint8_t rsv = 0, bool masked = true) {
  std::string out;
  out += char((fin ? 0x80 : 0) | rsv | opcode);
  const std::uint8_t mask_bit = masked ? 0x80 : 0;
  if (payload.size() < 126) {
    out += char(mask_bit | payload.size());
  } else if (payload.size() <= 0xFFFF) {
    out += char(mask_bit | 126);
    out += char(payload.size() >> 8);
    out += char(payload.size() & 0xFF);
  } else {
    out += char(mask_bit | 127);
    for (int k = 0; k < 8; ++k) out += char((std::uint64_t(payload.size()) >> (56 - 8 * k)) & 0xFF);
  }
  const char mask[4] = {0x12, 0x34, 0x56, 0x78};
  if (masked) out.append(mask, 4);
  for (std::size_t i = 0; i < payload.size(); ++i) out += masked ? char(payload[i] ^ mask[i % 4]) : payload[i];
  return out;
}

struct Recorder : WsHandler {
  std::string data;
  std::vector<std::string> pings;
  std::vector<std::pair<std::uint16_t, std::string>> closes;
  void onData(std::string_view p) override { data += p; }
  void onPing(std::string_view p) override { pings.emplace_back(p); }
  void onClose(std::uint16_t code, std::string_view reason) override { closes.emplace_back(code, reason); }
};

bool feedAll(WsParser& parser, std::string wire, Recorder& r, std::size_t chunk = 1 << 20) {
  for (std::size_t i = 0; i < wire.size(); i += chunk) {
    const std::size_t n = std::min(chunk, wire.size() - i);
    if (!parser.feed(wire.data() + i, n, r)) return false;
  }
  return true;
}

TEST(WsParser, UnmasksTextFramesOfEverySizeClass) {
  for (std::size_t size : {0u, 5u, 125u, 126u, 65535u, 65536u, 200000u}) {
    std::string payload(size, 'x');
    for (std::size_t i = 0; i < size; ++i) payload[i] = char('a' + i % 26);
    WsParser parser;
    Recorder r;
    ASSERT_TRUE(feedAll(parser, clientFrame(0x1, payload), r)) << parser.error();
    EXPECT_EQ(r.data, payload) << size;
  }
}

TEST(WsParser, FragmentsControlFramesAndByteByByteDelivery) {
  const std::string wire = clientFrame(0x1, "SEND\n", false) + clientFrame(0x9, "ping!") +
                           clientFrame(0x0, "\n\nhi", false) + clientFrame(0x0, std::string(1, '\0')) +
                           clientFrame(0x8, std::string("\x03\xe8", 2) + "bye");
  for (std::size_t chunk : {1u, 3u, 1000u}) {
    WsParser parser;
    Recorder r;
    ASSERT_TRUE(feedAll(parser, wire, r, chunk)) << parser.error();
    EXPECT_EQ(r.data, std::string("SEND\n\n\nhi\0", 10));
    ASSERT_EQ(r.pings.size(), 1u);
    EXPECT_EQ(r.pings[0], "ping!");
    ASSERT_EQ(r.closes.size(), 1u);
    EXPECT_EQ(r.closes[0].first, 1000);
    EXPECT_EQ(r.closes[0].second, "bye");
  }
}

TEST(WsParser, RejectsProtocolViolations) {
  struct Case {
    std::string wire;
    std::uint16_t code;
  };
  const std::vector<Case> cases = {
      {clientFrame(0x1, "x", true, 0, false), kWsCloseProtocolError},  // unmasked
      {clientFrame(0x1, "x", true, 0x40), kWsCloseProtocolError},      // RSV1 without extension
      {clientFrame(0x0, "x"), kWsCloseProtocolError},                  // continuation first
      {clientFrame(0x1, "a", false) + clientFrame(0x1, "b"), kWsCloseProtocolError},
      {clientFrame(0x9, std::string(126, 'p')), kWsCloseProtocolError},  // control > 125
      {clientFrame(0x9, "p", false), kWsCloseProtocolError},             // fragmented control
      {clientFrame(0x3, "x"), kWsCloseProtocolError},                    // unknown opcode
      {clientFrame(0x8, "x"), kWsCloseProtocolError},                    // 1-byte close payload
  };
  for (const auto& c : cases) {
    WsParser parser;
    Recorder r;
    EXPECT_FALSE(feedAll(parser, c.wire, r));
    EXPECT_EQ(parser.closeCode(), c.code);
    EXPECT_FALSE(parser.error().empty());
    char more[] = "x";
    EXPECT_FALSE(parser.feed(more, 1, r));  // stays failed
  }
}

TEST(WsParser, IgnoresEverythingAfterAClose) {
  WsParser parser;
  Recorder r;
  ASSERT_TRUE(feedAll(parser, clientFrame(0x8, "") + clientFrame(0x9, "late") + clientFrame(0x1, "x"), r));
  EXPECT_EQ(r.closes.size(), 1u);
  EXPECT_TRUE(r.pings.empty());
  EXPECT_TRUE(r.data.empty());
}

TEST(WsParser, RejectsNonMinimalLengths) {
  std::string wire;
  wire += char(0x81);
  wire += char(0x80 | 126);
  wire += char(0);
  wire += char(5);  // 5 encoded in 16 bits
  wire += std::string(4, '\0');
  wire += "hello";
  WsParser parser;
  Recorder r;
  EXPECT_FALSE(feedAll(parser, wire, r));
}

TEST(WsParser, EnforcesTheMessageLimitAcrossFragments) {
  WsParser parser(10);
  Recorder r;
  EXPECT_FALSE(feedAll(parser, clientFrame(0x1, "123456", false) + clientFrame(0x0, "789012"), r));
  EXPECT_EQ(parser.closeCode(), kWsCloseTooBig);
}

TEST(WsEncoder, HeadersUseTheShortestLength) {
  std::uint8_t h[10];
  EXPECT_EQ(wsFrameHeader(h, WsOpcode::Text, 125), 2u);
  EXPECT_EQ(h[0], 0x81);
  EXPECT_EQ(h[1], 125);
  EXPECT_EQ(wsFrameHeader(h, WsOpcode::Binary, 126), 4u);
  EXPECT_EQ(h[1], 126);
  EXPECT_EQ(wsFrameHeader(h, WsOpcode::Text, 70000), 10u);
  EXPECT_EQ(h[1], 127);
  const std::string close = wsCloseFrame(1008, "kicked");
  EXPECT_EQ(std::uint8_t(close[0]), 0x88);
  EXPECT_EQ(close.size(), 2u + 2u + 6u);
}

}  // namespace
}  // namespace pigeon::protocol

namespace pigeon::protocol {
namespace {

TEST(WsClientRole, ParsesServerFramesAndRefusesMaskedOnes) {
  for (std::size_t size : {0u, 125u, 126u, 70000u}) {
    std::string payload(size, 'q');
    std::string wire(10, '\0');
    wire.resize(wsFrameHeader(reinterpret_cast<std::uint8_t*>(wire.data()), WsOpcode::Text, size));
    wire += payload;
    WsParser parser(0, WsRole::Client);
    Recorder r;
    ASSERT_TRUE(feedAll(parser, wire, r, 7)) << parser.error();
    EXPECT_EQ(r.data, payload);
  }
  WsParser parser(0, WsRole::Client);
  Recorder r;
  EXPECT_FALSE(feedAll(parser, clientFrame(0x1, "masked"), r));
  EXPECT_EQ(parser.error(), "server frames must not be masked");
}

TEST(WsClientRole, MaskedFramesRoundTripThroughTheServerParser) {
  for (std::size_t size : {0u, 3u, 126u, 70000u}) {
    std::string payload(size, '\0');
    for (std::size_t i = 0; i < size; ++i) payload[i] = char(i * 7);
    std::string wire;
    appendMaskedFrame(wire, WsOpcode::Binary, payload, 0xA1B2C3D4u);
    WsParser server;
    Recorder r;
    ASSERT_TRUE(feedAll(server, wire, r, 5)) << server.error();
    EXPECT_EQ(r.data, payload);
  }
}

}  // namespace
}  // namespace pigeon::protocol
