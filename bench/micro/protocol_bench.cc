// Cost of the wire formats on the hot path: parsing what clients send, encoding what the
// server fans out.
#include <benchmark/benchmark.h>

#include <string>

#include "gateway/outbound.h"
#include "protocol/native.h"
#include "protocol/stomp.h"
#include "protocol/websocket.h"

namespace {

using namespace std::string_literals;
using pigeon::protocol::StompParser;

const std::string kSend =
    "SEND\ndestination:/app/p2p/bob\nclient-msg-id:c-123456\nreceipt:r-123456\n"
    "content-type:text/plain\ncontent-length:100\n\n" +
    std::string(100, 'x') + '\0';

// One SEND frame (100-byte body) through the incremental parser.
void BM_StompParseSend(benchmark::State& state) {
  StompParser parser;
  for (auto _ : state) {
    parser.feed(kSend);
    auto status = parser.next();
    benchmark::DoNotOptimize(status);
    benchmark::DoNotOptimize(parser.frame().body.data());
  }
  state.SetBytesProcessed(std::int64_t(state.iterations() * kSend.size()));
}
BENCHMARK(BM_StompParseSend);

// Unmasking and streaming a 4 KiB client WebSocket frame.
void BM_WebSocketUnmask4K(benchmark::State& state) {
  struct Sink : pigeon::protocol::WsHandler {
    std::size_t n = 0;
    void onData(std::string_view p) override { n += p.size(); }
    void onPing(std::string_view) override {}
    void onClose(std::uint16_t, std::string_view) override {}
  } sink;
  std::string frame = "\x82\xfe\x10\x00"s + "\x01\x02\x03\x04"s + std::string(4096, 'y');
  std::string buf;
  pigeon::protocol::WsParser parser;
  for (auto _ : state) {
    buf = frame;
    parser.feed(buf.data(), buf.size(), sink);
  }
  benchmark::DoNotOptimize(sink.n);
  state.SetBytesProcessed(std::int64_t(state.iterations() * frame.size()));
}
BENCHMARK(BM_WebSocketUnmask4K);

pigeon::store::Message sampleMessage(std::size_t body) {
  pigeon::store::Message m;
  m.id = 20486337843200000;
  m.conversation = "g:20486337843200001";
  m.conv_seq = 1234;
  m.sender = 7;
  m.created_at_ms = 1795000000000;
  m.content_type = "text/plain";
  m.client_msg_id = "c-123456";
  m.body = std::string(body, 'z');
  return m;
}

// Encoding a message once for fan-out (the shared tail of every recipient's MESSAGE frame).
void BM_EncodeOutboundMessage(benchmark::State& state) {
  const auto m = sampleMessage(std::size_t(state.range(0)));
  for (auto _ : state) {
    auto out = pigeon::gateway::OutboundMessage::make(m, "alice");
    benchmark::DoNotOptimize(out->stomp_tail.data());
  }
}
BENCHMARK(BM_EncodeOutboundMessage)->Arg(100)->Arg(4096);

// One native Send (100-byte body) through the frame decoder.
void BM_NativeParseSend(benchmark::State& state) {
  pigeon::protocol::pb::Envelope e;
  auto* send = e.mutable_send();
  send->set_client_msg_id("c-123456");
  send->set_user("bob");
  send->set_content_type("text/plain");
  send->set_body(std::string(100, 'x'));
  std::string wire;
  pigeon::protocol::appendNative(wire, e);
  pigeon::protocol::NativeParser parser;
  for (auto _ : state) {
    parser.feed(wire);
    auto status = parser.next();
    benchmark::DoNotOptimize(status);
    benchmark::DoNotOptimize(parser.envelope().send().body().data());
  }
  state.SetBytesProcessed(std::int64_t(state.iterations() * wire.size()));
}
BENCHMARK(BM_NativeParseSend);

// Encoding the shared part of a native Deliver, once per message.
void BM_NativeDeliverTail(benchmark::State& state) {
  const auto m = sampleMessage(std::size_t(state.range(0)));
  for (auto _ : state) {
    auto out = pigeon::gateway::OutboundMessage::make(m, "alice");
    benchmark::DoNotOptimize(out->nativeTail().data());
  }
}
BENCHMARK(BM_NativeDeliverTail)->Arg(100)->Arg(4096);

// What each recipient's connection adds per native Deliver: its frame length and seq.
void BM_NativeDeliverHead(benchmark::State& state) {
  std::uint8_t head[pigeon::protocol::kMaxDeliverHead];
  std::uint64_t seq = 1000000;
  for (auto _ : state) {
    benchmark::DoNotOptimize(pigeon::protocol::deliverHead(head, ++seq, 180));
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_NativeDeliverHead);

}  // namespace
