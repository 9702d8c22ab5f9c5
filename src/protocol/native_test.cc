#include "protocol/native.h"

#include <gtest/gtest.h>

namespace pigeon::protocol {
namespace {

pb::Envelope ping(std::uint64_t nonce) {
  pb::Envelope e;
  e.mutable_ping()->set_nonce(nonce);
  return e;
}

TEST(NativeParser, ParsesFramesSplitAnywhere) {
  std::string wire;
  for (std::uint64_t i = 1; i <= 3; ++i) appendNative(wire, ping(i * 1000));
  pb::Envelope send;
  send.mutable_send()->set_client_msg_id("c1");
  send.mutable_send()->set_user("bob");
  send.mutable_send()->set_body(std::string(300, 'x'));  // a two-byte length prefix
  appendNative(wire, send);
  for (std::size_t split = 0; split <= wire.size(); ++split) {
    NativeParser p;
    std::vector<pb::Envelope> got;
    for (std::string_view part : {std::string_view(wire).substr(0, split),
                                  std::string_view(wire).substr(split)}) {
      p.feed(part);
      for (;;) {
        auto status = p.next();
        if (status == NativeParser::Status::NeedMore) break;
        ASSERT_EQ(status, NativeParser::Status::Frame);
        got.push_back(p.envelope());
      }
    }
    ASSERT_EQ(got.size(), 4u) << "split at " << split;
    EXPECT_EQ(got[0].ping().nonce(), 1000u);
    EXPECT_EQ(got[2].ping().nonce(), 3000u);
    EXPECT_EQ(got[3].send().user(), "bob");
    EXPECT_EQ(got[3].send().body().size(), 300u);
    EXPECT_EQ(p.buffered(), 0u);
  }
}

TEST(NativeParser, RefusesOversizedFrameBeforeItArrives) {
  NativeParser p(100);
  std::uint8_t prefix[10];
  const std::size_t n = putVarint(prefix, 101);
  p.feed(std::string_view(reinterpret_cast<char*>(prefix), n));
  ASSERT_EQ(p.next(), NativeParser::Status::Error);
  EXPECT_EQ(p.error().code, Errc::TooLarge);
  p.feed("more");
  EXPECT_EQ(p.next(), NativeParser::Status::Error);  // stays failed
}

TEST(NativeParser, RefusesOverlongVarintAndGarbage) {
  NativeParser a;
  a.feed(std::string(6, '\xff'));
  ASSERT_EQ(a.next(), NativeParser::Status::Error);
  EXPECT_EQ(a.error().code, Errc::BadRequest);

  NativeParser b;
  b.feed(std::string("\x03\xff\xff\xff", 4));  // three bytes that are no protobuf message
  ASSERT_EQ(b.next(), NativeParser::Status::Error);
  EXPECT_EQ(b.error().code, Errc::BadRequest);
}

TEST(NativeParser, EmptyEnvelopeIsAFrameWithNoBody) {
  NativeParser p;
  p.feed(std::string_view("\x00", 1));
  ASSERT_EQ(p.next(), NativeParser::Status::Frame);
  EXPECT_EQ(p.envelope().body_case(), pb::Envelope::BODY_NOT_SET);
}

TEST(DeliverEncoding, HeadPlusSharedTailIsTheWholeDeliver) {
  pb::Deliver d;
  d.set_msg_id(77);
  d.set_client_msg_id("c-9");
  d.set_conversation("p:1:2");
  d.set_conv_seq(5);
  d.set_from("alice");
  d.set_sent_at_ms(1700000000000);
  d.set_content_type("text/plain");
  d.set_body(std::string(200, 'b'));
  const std::string tail = encodeDeliverTail(d);
  for (std::uint64_t seq : {std::uint64_t(1), std::uint64_t(300), std::uint64_t(1) << 40}) {
    std::uint8_t head[kMaxDeliverHead];
    const std::size_t n = deliverHead(head, seq, tail.size());
    std::string wire(reinterpret_cast<char*>(head), n);
    wire += tail;
    NativeParser p;
    p.feed(wire);
    ASSERT_EQ(p.next(), NativeParser::Status::Frame);
    ASSERT_TRUE(p.envelope().has_deliver());
    const pb::Deliver& got = p.envelope().deliver();
    EXPECT_EQ(got.seq(), seq);
    EXPECT_EQ(got.msg_id(), 77u);
    EXPECT_EQ(got.from(), "alice");
    EXPECT_EQ(got.body(), d.body());
    EXPECT_EQ(p.buffered(), 0u);
  }
}

// Byte for byte what protobuf writes for the whole frame (seq is field 1, so it comes first),
// across the sizes where the frame's and the Deliver's length varints grow a byte.
TEST(DeliverEncoding, HeadPlusTailIsExactlyTheSerializedEnvelope) {
  for (std::size_t body : {0, 90, 100, 110, 120, 16250, 16300, 16350, 16400, 2097000, 2097200}) {
    pb::Deliver d;
    d.set_msg_id(20486337843200000);
    d.set_conversation("g:12");
    d.set_from("bob");
    d.set_content_type("text/plain");
    d.set_body(std::string(body, 'x'));
    const std::string tail = encodeDeliverTail(d);
    for (std::uint64_t seq : {std::uint64_t(1), std::uint64_t(127), std::uint64_t(128),
                              std::uint64_t(16384), ~std::uint64_t(0)}) {
      std::uint8_t head[kMaxDeliverHead];
      const std::size_t n = deliverHead(head, seq, tail.size());
      ASSERT_LE(n, kMaxDeliverHead);
      pb::Envelope e;
      *e.mutable_deliver() = d;
      e.mutable_deliver()->set_seq(seq);
      std::string expected;
      appendNative(expected, e);
      EXPECT_EQ(std::string(reinterpret_cast<char*>(head), n) + tail, expected)
          << "body " << body << ", seq " << seq;
    }
  }
}

}  // namespace
}  // namespace pigeon::protocol
