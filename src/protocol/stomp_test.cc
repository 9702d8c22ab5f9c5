#include "protocol/stomp.h"

#include <gtest/gtest.h>

#include <string>

namespace pigeon::protocol {
namespace {

using namespace std::string_literals;
using Status = StompParser::Status;

TEST(StompParser, ParsesAFrameWithHeadersAndBody) {
  StompParser p;
  p.feed("SEND\ndestination:/app/p2p/bob\nreceipt:r1\n\nhello\0"s);
  ASSERT_EQ(p.next(), Status::Frame);
  EXPECT_EQ(p.frame().command, "SEND");
  ASSERT_NE(p.frame().header("destination"), nullptr);
  EXPECT_EQ(*p.frame().header("destination"), "/app/p2p/bob");
  EXPECT_EQ(*p.frame().header("receipt"), "r1");
  EXPECT_EQ(p.frame().header("missing"), nullptr);
  EXPECT_EQ(p.frame().body, "hello");
  EXPECT_EQ(p.next(), Status::NeedMore);
  EXPECT_EQ(p.buffered(), 0u);
}

TEST(StompParser, AcceptsCrLfLineEndsAndRepeatedHeadersKeepTheFirst) {
  StompParser p;
  p.feed("SEND\r\nfoo:1\r\nfoo:2\r\n\r\nx\0"s);
  ASSERT_EQ(p.next(), Status::Frame);
  EXPECT_EQ(*p.frame().header("foo"), "1");
  EXPECT_EQ(p.frame().body, "x");
}

TEST(StompParser, ContentLengthBodiesMayHoldNul) {
  StompParser p;
  p.feed("SEND\ncontent-length:3\n\na\0b\0"s);
  ASSERT_EQ(p.next(), Status::Frame);
  EXPECT_EQ(p.frame().body, "a\0b"s);
}

TEST(StompParser, HeartbeatsBetweenFramesAreReported) {
  StompParser p;
  p.feed("\n\r\n");
  EXPECT_EQ(p.next(), Status::Heartbeat);
  EXPECT_EQ(p.next(), Status::NeedMore);
  p.feed("DISCONNECT\n\n\0\n\n"s);
  ASSERT_EQ(p.next(), Status::Frame);
  EXPECT_EQ(p.frame().command, "DISCONNECT");
  EXPECT_EQ(p.next(), Status::Heartbeat);
}

TEST(StompParser, FramesSplitAnywhereAndSeveralInOneRead) {
  const std::string wire = "SEND\ndestination:/a\ncontent-length:5\n\nhello\0SEND\ndestination:/b\n\nworld\0"s;
  for (std::size_t chunk : {1u, 2u, 3u, 7u, 100u}) {
    StompParser p;
    std::vector<std::string> bodies;
    for (std::size_t i = 0; i < wire.size(); i += chunk) {
      p.feed(std::string_view(wire).substr(i, chunk));
      for (;;) {
        auto s = p.next();
        if (s == Status::Frame) bodies.push_back(p.frame().body);
        if (s == Status::NeedMore) break;
        ASSERT_NE(s, Status::Error) << p.error().message;
      }
    }
    ASSERT_EQ(bodies.size(), 2u) << chunk;
    EXPECT_EQ(bodies[0], "hello");
    EXPECT_EQ(bodies[1], "world");
  }
}

TEST(StompParser, UnescapesHeadersExceptInConnect) {
  StompParser p;
  p.feed("SEND\nconv:p\\c1\\c2\nnl:a\\nb\\\\\n\n\0CONNECT\npasscode:a\\cb\n\n\0"s);
  ASSERT_EQ(p.next(), Status::Frame);
  EXPECT_EQ(*p.frame().header("conv"), "p:1:2");
  EXPECT_EQ(*p.frame().header("nl"), "a\nb\\");
  ASSERT_EQ(p.next(), Status::Frame);
  EXPECT_EQ(*p.frame().header("passcode"), "a\\cb");
}

TEST(StompParser, RejectsMalformedFrames) {
  const std::string cases[] = {
      "send\n\n\0"s,                        // lower-case command
      "SEND\nno-colon\n\n\0"s,              // header without a colon
      "SEND\n:empty-name\n\n\0"s,           // empty header name
      "SEND\nbad:\\t\n\n\0"s,               // undefined escape
      "SEND\ncontent-length:x\n\n\0"s,      // bad content-length
      "SEND\ncontent-length:-1\n\n\0"s,     // negative content-length
      "SEND\ncontent-length:1\n\nab\0"s,    // body longer than content-length
      "\rX"s,                               // CR without LF
  };
  for (const auto& wire : cases) {
    StompParser p;
    p.feed(wire);
    Status s;
    while ((s = p.next()) == Status::Heartbeat) {
    }
    EXPECT_EQ(s, Status::Error) << wire;
    EXPECT_EQ(p.error().code, Errc::BadRequest) << wire;
    EXPECT_FALSE(p.error().message.empty());
    EXPECT_EQ(p.next(), Status::Error);  // stays failed
  }
}

TEST(StompParser, RejectsFramesOverTheLimit) {
  StompLimits limits;
  limits.max_frame_bytes = 100;
  {
    StompParser p(limits);  // headers that never end
    p.feed("SEND\n" + std::string(200, 'a'));
    EXPECT_EQ(p.next(), Status::Error);
    EXPECT_EQ(p.error().code, Errc::TooLarge);
  }
  {
    StompParser p(limits);  // a content-length over the limit is refused before the body arrives
    p.feed("SEND\ncontent-length:1000\n\n");
    EXPECT_EQ(p.next(), Status::Error);
    EXPECT_EQ(p.error().code, Errc::TooLarge);
  }
  {
    StompParser p(limits);  // a NUL-terminated body that keeps going
    p.feed("SEND\n\n" + std::string(200, 'b'));
    EXPECT_EQ(p.next(), Status::Error);
    EXPECT_EQ(p.error().code, Errc::TooLarge);
  }
  {
    StompParser p(limits);  // exactly at the limit is fine
    const std::string frame = "SEND\n\n" + std::string(100 - 7, 'c') + '\0';
    ASSERT_EQ(frame.size(), 100u);
    p.feed(frame);
    EXPECT_EQ(p.next(), Status::Frame);
  }
  {
    StompLimits few;
    few.max_headers = 2;
    StompParser p(few);
    p.feed("SEND\na:1\nb:2\nc:3\n\n\0"s);
    EXPECT_EQ(p.next(), Status::Error);
    EXPECT_EQ(p.error().code, Errc::TooLarge);
  }
}

TEST(StompParser, AHugeContentLengthCannotWrapPastTheLimit) {
  StompParser p;
  p.feed("SEND\ncontent-length:18446744073709551577\n\n" + std::string(300, 'x') + '\0');
  EXPECT_EQ(p.next(), Status::Error);
  EXPECT_EQ(p.error().code, Errc::TooLarge);
}

TEST(StompParser, RejectsNulInHeaders) {
  StompParser p;
  p.feed("SEND\nfoo:a\0b\n\n\0"s);
  EXPECT_EQ(p.next(), Status::Error);
}

TEST(StompParser, StompCommandHeadersAreNotUnescaped) {
  StompParser p;
  p.feed("STOMP\npasscode:a\\b\n\n\0"s);
  ASSERT_EQ(p.next(), Status::Frame);
  EXPECT_EQ(*p.frame().header("passcode"), "a\\b");
}

TEST(StompParser, ABodyArrivingByteByByteIsScannedOnce) {
  StompLimits limits;
  limits.max_frame_bytes = 1 << 20;
  StompParser p(limits);
  p.feed("SEND\n\n");
  EXPECT_EQ(p.next(), Status::NeedMore);
  for (int i = 0; i < 200000; ++i) {  // quadratic rescanning would take minutes here
    p.feed("y");
    ASSERT_EQ(p.next(), Status::NeedMore);
  }
  p.feed(std::string(1, '\0'));
  ASSERT_EQ(p.next(), Status::Frame);
  EXPECT_EQ(p.frame().body.size(), 200000u);
}

TEST(StompEncoder, EscapesAndAddsContentLengthAndRoundTrips) {
  std::string out;
  appendFrame(out, "MESSAGE", {{"conversation", "p:1:2"}, {"from", "a\nb"}}, "hi\0there"s);
  EXPECT_NE(out.find("conversation:p\\c1\\c2\n"), std::string::npos);
  EXPECT_NE(out.find("content-length:8\n"), std::string::npos);
  StompParser p;
  p.feed(out);
  ASSERT_EQ(p.next(), Status::Frame);
  EXPECT_EQ(*p.frame().header("conversation"), "p:1:2");
  EXPECT_EQ(*p.frame().header("from"), "a\nb");
  EXPECT_EQ(p.frame().body, "hi\0there"s);
}

TEST(StompEncoder, ConnectedHeadersAreNotEscaped) {
  std::string out;
  appendFrame(out, "CONNECTED", {{"version", "1.2"}, {"server", "pigeon:1"}});
  EXPECT_EQ(out, "CONNECTED\nversion:1.2\nserver:pigeon:1\n\n\0"s);
}

}  // namespace
}  // namespace pigeon::protocol
