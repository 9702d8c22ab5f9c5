// Unit tests of the SDK's pure parts — backoff, ordering, the outbox, URLs, the two wires, the
// HTTP answers' parsers — and of the Client against a scripted in-process native server for
// what a correct pigeond never does (gaps, duplicates, answers lost with the connection).
#include "client/client.h"

#include <gtest/gtest.h>

#include <bit>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <functional>
#include <random>
#include <set>

#include "client/backoff.h"
#include "client/http_internal.h"
#include "client/inbox_order.h"
#include "client/outbox.h"
#include "client/pipe.h"
#include "client/wire.h"
#include "protocol/native.h"
#include "protocol/stomp.h"

namespace pigeon::client {
namespace {

using std::chrono::milliseconds;
using Kind = WireEvent::Kind;

// ---- backoff ---------------------------------------------------------------------------------

TEST(Backoff, FullJitterStaysUnderTheDoublingCeiling) {
  Backoff b(milliseconds(100), milliseconds(2000), 42);
  const std::int64_t ceilings[] = {100, 200, 400, 800, 1600, 2000, 2000, 2000};
  for (std::int64_t c : ceilings) {
    EXPECT_EQ(b.ceiling().count(), c);
    const auto d = b.next();
    EXPECT_GE(d.count(), 0);
    EXPECT_LE(d.count(), c);
  }
  EXPECT_EQ(b.attempt(), 8u);
  b.reset();
  EXPECT_EQ(b.attempt(), 0u);
  EXPECT_EQ(b.ceiling().count(), 100);
}

TEST(Backoff, JitterSpreadsOverTheWholeRange) {
  Backoff b(milliseconds(1000), milliseconds(1000), 7);
  std::int64_t lo = 1000, hi = 0;
  for (int i = 0; i < 2000; ++i) {
    const auto d = b.next().count();
    ASSERT_LE(d, 1000);
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  EXPECT_LT(lo, 50);   // full jitter reaches near zero…
  EXPECT_GT(hi, 950);  // …and near the ceiling
}

TEST(Backoff, NeverOverflowsAfterManyAttempts) {
  Backoff b(milliseconds(1), milliseconds(30'000), 1);
  for (int i = 0; i < 500; ++i) ASSERT_LE(b.next().count(), 30'000);
  EXPECT_EQ(b.ceiling().count(), 30'000);
}

TEST(Backoff, CorrectsBadBounds) {
  Backoff b(milliseconds(0), milliseconds(0), 1);  // min raised to 1, max to min
  EXPECT_EQ(b.ceiling().count(), 1);
  EXPECT_LE(b.next().count(), 1);
}

// ---- ordering --------------------------------------------------------------------------------

TEST(InboxOrder, DeliversInOrderDropsDuplicatesReportsGaps) {
  InboxOrder o(3, true);
  EXPECT_EQ(o.take(2), InboxOrder::Verdict::Duplicate);
  EXPECT_EQ(o.take(3), InboxOrder::Verdict::Duplicate);
  EXPECT_EQ(o.take(4), InboxOrder::Verdict::Deliver);
  EXPECT_EQ(o.take(6), InboxOrder::Verdict::Gap);
  EXPECT_EQ(o.last(), 4u);  // a gap takes nothing
  EXPECT_EQ(o.take(5), InboxOrder::Verdict::Deliver);
  EXPECT_EQ(o.take(6), InboxOrder::Verdict::Deliver);
  EXPECT_EQ(o.last(), 6u);
}

TEST(InboxOrder, UnknownBaseIsSetByTheFirstMessage) {
  InboxOrder o;
  EXPECT_FALSE(o.known());
  EXPECT_EQ(o.take(17), InboxOrder::Verdict::Deliver);
  EXPECT_TRUE(o.known());
  EXPECT_EQ(o.take(17), InboxOrder::Verdict::Duplicate);
  EXPECT_EQ(o.take(19), InboxOrder::Verdict::Gap);
}

TEST(InboxOrder, SyncStartSetsOrChecksTheBase) {
  InboxOrder fresh;
  EXPECT_TRUE(fresh.startAfter(10));
  EXPECT_EQ(fresh.take(11), InboxOrder::Verdict::Deliver);

  InboxOrder o(10, true);
  EXPECT_TRUE(o.startAfter(8));  // older: the repeats are dropped
  EXPECT_EQ(o.take(9), InboxOrder::Verdict::Duplicate);
  EXPECT_EQ(o.take(11), InboxOrder::Verdict::Deliver);
  EXPECT_FALSE(o.startAfter(20));  // past what we saw: reported, adopted
  EXPECT_EQ(o.take(21), InboxOrder::Verdict::Deliver);
}

// ---- the inbox end ---------------------------------------------------------------------------

// An inbox whose end grows while the search probes it, answering like GET /api/v1/sync?limit=1.
struct ProbedInbox {
  std::uint64_t end = 0;
  std::uint64_t cursor = 0;
  // Runs the search to its end; `grow` is called after each probe (new messages arrive).
  std::uint64_t run(InboxEndSearch& search, const std::function<void()>& grow = {}) {
    for (int guard = 0; !search.done(); ++guard) {
      if (guard > 200) {
        ADD_FAILURE() << "the search does not end";
        return 0;
      }
      const auto after = search.nextAfter();
      const std::uint64_t from = after.value_or(cursor);
      std::optional<std::uint64_t> first;
      if (end > from) first = from + 1;
      search.answer(after, first, end > from + 1, first.value_or(from));
      if (grow) grow();
    }
    return *search.end();
  }
};

TEST(InboxEndSearch, NothingNewTakesOneProbe) {
  ProbedInbox inbox{10};
  InboxEndSearch search(10);
  EXPECT_EQ(inbox.run(search), 10u);
  EXPECT_EQ(search.probes(), 1u);
  InboxEndSearch one(9);
  EXPECT_EQ(inbox.run(one), 10u);
  EXPECT_EQ(one.probes(), 1u);
}

TEST(InboxEndSearch, FindsAStillEndExactlyInLogarithmicProbes) {
  for (std::uint64_t end : {1u, 2u, 3u, 7u, 100u, 1000u, 123457u}) {
    SCOPED_TRACE(end);
    ProbedInbox inbox{end};
    InboxEndSearch search(0);
    EXPECT_EQ(inbox.run(search), end);
    EXPECT_LE(search.probes(), 2 * std::bit_width(end) + 2);
  }
}

TEST(InboxEndSearch, DeliveredSeqsAreFreeLowerBounds) {
  ProbedInbox inbox{5000};
  InboxEndSearch search(0);
  search.raiseLower(5000);  // the backlog was delivered before the first probe
  EXPECT_EQ(inbox.run(search), 5000u);
  EXPECT_EQ(search.probes(), 1u);
}

TEST(InboxEndSearch, UnderLiveTrafficEndsBetweenTheStartAndNow) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 2000; ++trial) {
    const std::uint64_t start = rng() % 50;
    ProbedInbox inbox{start + rng() % 3000};
    const std::uint64_t at_start = inbox.end;
    const std::uint64_t burst = rng() % 40;
    InboxEndSearch search(start);
    const std::uint64_t v = inbox.run(search, [&] { inbox.end += rng() % (burst + 1); });
    ASSERT_GE(v, at_start) << "trial " << trial;
    ASSERT_LE(v, inbox.end) << "trial " << trial;
    ASSERT_LE(search.probes(), 2 * std::bit_width(inbox.end) + 4) << "trial " << trial;
  }
}

TEST(InboxEndSearch, CursorProbeLearnsTheStart) {
  {
    ProbedInbox inbox{12, 12};  // nothing after the cursor
    InboxEndSearch search(std::nullopt);
    EXPECT_FALSE(search.nextAfter().has_value());
    EXPECT_EQ(inbox.run(search), 12u);
    EXPECT_EQ(search.start(), 12u);
    EXPECT_EQ(search.probes(), 1u);
  }
  {
    ProbedInbox inbox{13, 12};  // one
    InboxEndSearch search(std::nullopt);
    EXPECT_EQ(inbox.run(search), 13u);
    EXPECT_EQ(search.start(), 12u);
  }
  {
    ProbedInbox inbox{400, 12};  // many
    InboxEndSearch search(std::nullopt);
    EXPECT_EQ(inbox.run(search), 400u);
    EXPECT_EQ(search.start(), 12u);
    EXPECT_LE(search.probes(), 2u * 9 + 3);
  }
}

// ---- outbox ----------------------------------------------------------------------------------

OutgoingMessage msg(std::string id) {
  OutgoingMessage m;
  m.to = Destination::toUser("bob");
  m.body = "b-" + id;
  m.client_msg_id = std::move(id);
  return m;
}

TEST(Outbox, WritesOnceThenRewindsInOrder) {
  Outbox box;
  box.push(msg("a"));
  box.push(msg("b"));
  box.push(msg("c"));
  auto* a = box.nextToWrite();
  auto* b = box.nextToWrite();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->message.client_msg_id, "a");
  EXPECT_EQ(b->message.client_msg_id, "b");
  EXPECT_FALSE(a->retry);
  // "a" answered; the connection drops with b written and c not.
  ASSERT_TRUE(box.complete("a"));
  box.rewind();
  std::vector<std::string> order;
  std::vector<bool> retry;
  while (auto* e = box.nextToWrite()) {
    order.push_back(e->message.client_msg_id);
    retry.push_back(e->retry);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(retry, (std::vector<bool>{true, false}));
  EXPECT_FALSE(box.complete("zzz"));
  EXPECT_EQ(box.size(), 2u);
}

TEST(Outbox, RefusalInTheMiddleKeepsTheRestInOrder) {
  Outbox box;
  for (auto id : {"1", "2", "3", "4"}) box.push(msg(id));
  box.nextToWrite();
  box.nextToWrite();
  box.nextToWrite();
  auto refused = box.complete("2");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->body, "b-2");
  auto* next = box.nextToWrite();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->message.client_msg_id, "4");
  EXPECT_EQ(box.nextToWrite(), nullptr);
  auto all = box.takeAll();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].message.client_msg_id, "1");
  EXPECT_TRUE(box.empty());
}

TEST(ClientMsgIds, UniqueAndValid) {
  ClientMsgIds a(1), b(2);
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    for (auto* g : {&a, &b}) {
      auto id = g->next();
      EXPECT_TRUE(validClientMsgId(id)) << id;
      EXPECT_TRUE(seen.insert(id).second) << id;
    }
  }
  EXPECT_FALSE(validClientMsgId(""));
  EXPECT_FALSE(validClientMsgId("has space"));
  EXPECT_FALSE(validClientMsgId(std::string(65, 'x')));
  EXPECT_TRUE(validClientMsgId(std::string(64, 'x')));
}

// ---- URLs and conversations ------------------------------------------------------------------

TEST(Endpoint, ParsesEverySchemeWithDefaults) {
  auto http = parseEndpoint("http://127.0.0.1:8080");
  ASSERT_TRUE(http) << http.error().message;
  EXPECT_EQ(http->scheme, "http");
  EXPECT_EQ(http->host, "127.0.0.1");
  EXPECT_EQ(http->port, 8080);
  EXPECT_EQ(http->target, "/");
  EXPECT_FALSE(http->tls);

  auto https = parseEndpoint("HTTPS://chat.example.org/pigeon");
  ASSERT_TRUE(https);
  EXPECT_EQ(https->scheme, "https");
  EXPECT_EQ(https->port, 443);
  EXPECT_EQ(https->target, "/pigeon");
  EXPECT_TRUE(https->tls);

  auto ws = parseEndpoint("ws://localhost:9/ws?x=1");
  ASSERT_TRUE(ws);
  EXPECT_EQ(ws->target, "/ws?x=1");
  auto wss = parseEndpoint("wss://h/ws");
  ASSERT_TRUE(wss);
  EXPECT_EQ(wss->port, 443);
  EXPECT_TRUE(wss->tls);

  auto tcp = parseEndpoint("tcp://127.0.0.1:9090");
  ASSERT_TRUE(tcp);
  EXPECT_EQ(tcp->port, 9090);
  EXPECT_FALSE(tcp->tls);
  auto tls = parseEndpoint("tls://[::1]:9443");
  ASSERT_TRUE(tls);
  EXPECT_EQ(tls->host, "::1");
  EXPECT_TRUE(tls->tls);
}

TEST(Endpoint, RefusesWhatItCannotConnectTo) {
  for (const char* bad : {"", "127.0.0.1:8080", "ftp://h:1", "tcp://h", "tls://h", "http://:80",
                          "http://h:0", "http://h:70000", "http://h:x", "not a url"}) {
    auto e = parseEndpoint(bad);
    EXPECT_FALSE(e) << bad;
    if (!e) {
      EXPECT_EQ(e.error().code, Errc::BadRequest);
    }
  }
}

TEST(Conversation, ParsesGroupAndPrivateIds) {
  auto g = parseConversation("g:20486337843200001");
  ASSERT_TRUE(g);
  EXPECT_TRUE(g->isGroup());
  EXPECT_EQ(g->group, 20486337843200001u);
  auto p = parseConversation("p:3:12");
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->isGroup());
  EXPECT_EQ(p->user_lo, 3u);
  EXPECT_EQ(p->user_hi, 12u);
  for (const char* bad : {"", "g:", "g:0", "g:x", "p:1", "p:2:1", "p:0:1", "x:1:2", "p:1:2:3"}) {
    EXPECT_FALSE(parseConversation(bad)) << bad;
  }
}

TEST(Utf8, ValidatesLikeWebSocketNeeds) {
  EXPECT_TRUE(isUtf8("plain ascii\n"));
  EXPECT_TRUE(isUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xa6"));
  EXPECT_FALSE(isUtf8("\xff"));
  EXPECT_FALSE(isUtf8("\xc3"));              // truncated
  EXPECT_FALSE(isUtf8("\xc0\xaf"));          // overlong
  EXPECT_FALSE(isUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(isUtf8("\xf4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_TRUE(isUtf8(std::string_view("a\0b", 3)));
}

// ---- the STOMP wire --------------------------------------------------------------------------

std::vector<protocol::StompFrame> parseStomp(const std::string& bytes) {
  protocol::StompParser p;
  p.feed(bytes);
  std::vector<protocol::StompFrame> frames;
  for (;;) {
    auto s = p.next();
    if (s == protocol::StompParser::Status::Frame) {
      frames.push_back(p.frame());
    } else if (s != protocol::StompParser::Status::Heartbeat) {
      break;
    }
  }
  return frames;
}

std::vector<WireEvent> decodeAll(Wire& w, const std::string& bytes) {
  w.feed(bytes);
  std::vector<WireEvent> out;
  WireEvent ev;
  while (w.next(ev)) out.push_back(ev);
  return out;
}

TEST(StompWire, EncodesTheClientSide) {
  auto w = makeStompWire(1 << 20);
  std::string out;
  w->hello(out, Hello{"tok", "phone", "127.0.0.1", milliseconds(250), true});
  w->subscribe(out, 41, true);
  OutgoingMessage m;
  m.to = Destination::toGroup(kLobbyGroup);
  m.body = std::string("hi\0there", 8);
  m.client_msg_id = "c:1";
  w->send(out, m);
  m.to = Destination::toUser("bob");
  w->send(out, m);
  w->ack(out, 42);
  w->bye(out);
  auto frames = parseStomp(out);
  ASSERT_EQ(frames.size(), 7u);
  EXPECT_EQ(frames[0].command, "CONNECT");
  EXPECT_EQ(*frames[0].header("accept-version"), "1.2");
  EXPECT_EQ(*frames[0].header("passcode"), "tok");
  EXPECT_EQ(*frames[0].header("heart-beat"), "250,250");
  EXPECT_EQ(frames[1].command, "SUBSCRIBE");
  EXPECT_EQ(*frames[1].header("destination"), "/user/queue/messages");
  EXPECT_EQ(*frames[1].header("ack"), "client");
  EXPECT_EQ(*frames[1].header("since"), "41");
  EXPECT_EQ(*frames[2].header("destination"), "/topic/presence");
  EXPECT_EQ(frames[3].command, "SEND");
  EXPECT_EQ(*frames[3].header("destination"), "/app/group/1");
  EXPECT_EQ(*frames[3].header("client-msg-id"), "c:1");
  EXPECT_EQ(*frames[3].header("receipt"), "s:c:1");
  EXPECT_EQ(*frames[4].header("destination"), "/app/p2p/bob");
  EXPECT_EQ(frames[5].command, "ACK");
  EXPECT_EQ(*frames[5].header("id"), "42");
  EXPECT_EQ(frames[3].body, std::string("hi\0there", 8));
  EXPECT_EQ(frames[6].command, "DISCONNECT");
  EXPECT_EQ(*frames[6].header("receipt"), "bye");

  std::string fresh;
  w->subscribe(fresh, 0, false);
  auto sub = parseStomp(fresh);
  ASSERT_EQ(sub.size(), 1u);
  EXPECT_EQ(sub[0].header("since"), nullptr);  // after the device's cursor
  std::string beat;
  w->ping(beat, 1);
  EXPECT_EQ(beat, "\n");
}

TEST(StompWire, NegotiatesHeartBeats) {
  auto w = makeStompWire(1 << 20);
  std::string out;
  w->hello(out, Hello{"t", "", "h", milliseconds(200), false});
  std::string wire = "CONNECTED\nversion:1.2\nheart-beat:1000,500\nuser-id:7\nuser-name:al\n\n";
  wire.push_back('\0');
  auto ev = decodeAll(*w, wire);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, Kind::Connected);
  EXPECT_EQ(ev[0].user_id, 7u);
  EXPECT_EQ(ev[0].username, "al");
  EXPECT_EQ(ev[0].beat_every, milliseconds(500));     // max(ours 200, server wants 500)
  EXPECT_EQ(ev[0].expect_every, milliseconds(1000));  // max(ours 200, server sends 1000)

  auto quiet = makeStompWire(1 << 20);
  quiet->hello(out, Hello{"t", "", "h", milliseconds(200), false});
  std::string zero = "CONNECTED\nversion:1.2\nheart-beat:0,0\n\n";
  zero.push_back('\0');
  auto ev2 = decodeAll(*quiet, zero);
  ASSERT_EQ(ev2.size(), 1u);
  EXPECT_EQ(ev2[0].beat_every, milliseconds(0));
  EXPECT_EQ(ev2[0].expect_every, milliseconds(0));
  auto beats = decodeAll(*quiet, "\n");
  ASSERT_EQ(beats.size(), 1u);
  EXPECT_EQ(beats[0].kind, Kind::Pong);  // a heart-beat EOL counts as life
}

TEST(StompWire, DecodesMessagesReceiptsPresence) {
  auto w = makeStompWire(1 << 20);
  std::string in;
  protocol::appendFrame(in, "MESSAGE",
                        {{"subscription", "sub-0"},
                         {"message-id", "5"},
                         {"ack", "5"},
                         {"seq", "5"},
                         {"msg-id", "123456789012345"},
                         {"client-msg-id", "m-1"},
                         {"conversation", "p:1:2"},
                         {"conv-seq", "3"},
                         {"from", "bob"},
                         {"sent-at", "1795000000000"},
                         {"content-type", "text/plain"}},
                        std::string("he\0llo", 6));
  protocol::appendFrame(in, "RECEIPT",
                        {{"receipt-id", "s:m-9"},
                         {"msg-id", "99"},
                         {"seq", "6"},
                         {"conversation", "g:1"},
                         {"conv-seq", "12"},
                         {"duplicate", "true"}});
  protocol::appendFrame(in, "MESSAGE",
                        {{"subscription", "sub-1"}, {"content-type", "application/json"}},
                        R"({"user_id":"2","username":"bob","online":true})");
  protocol::appendFrame(in, "RECEIPT", {{"receipt-id", "bye"}});
  protocol::appendFrame(in, "RECEIPT", {{"receipt-id", "other"}});
  auto ev = decodeAll(*w, in);
  ASSERT_EQ(ev.size(), 5u);
  // The SUBSCRIBE's receipt marks the start of the sync (after `since`, or after the cursor).
  for (std::uint64_t since : {0u, 41u}) {
    auto sub = makeStompWire(1 << 20);
    std::string out, receipt;
    sub->subscribe(out, since, false);
    EXPECT_EQ(*parseStomp(out)[0].header("receipt"), "sync");
    protocol::appendFrame(receipt, "RECEIPT", {{"receipt-id", "sync"}});
    auto started = decodeAll(*sub, receipt);
    ASSERT_EQ(started.size(), 1u);
    EXPECT_EQ(started[0].kind, Kind::SyncStarted);
    EXPECT_EQ(started[0].seq, since);
    EXPECT_EQ(started[0].from_cursor, since == 0);
  }
  ASSERT_EQ(ev[0].kind, Kind::Message);
  const Message& m = ev[0].message;
  EXPECT_EQ(m.seq, 5u);
  EXPECT_EQ(m.msg_id, 123456789012345u);
  EXPECT_EQ(m.client_msg_id, "m-1");
  EXPECT_EQ(m.conversation, "p:1:2");  // escaped as p\c1\c2 on the wire
  EXPECT_EQ(m.conv_seq, 3u);
  EXPECT_EQ(m.from, "bob");
  EXPECT_EQ(m.sent_at_ms, 1795000000000);
  EXPECT_EQ(m.body, std::string("he\0llo", 6));
  ASSERT_EQ(ev[1].kind, Kind::SendOk);
  EXPECT_EQ(ev[1].ref, "m-9");
  EXPECT_EQ(ev[1].receipt.msg_id, 99u);
  EXPECT_EQ(ev[1].receipt.seq, 6u);
  EXPECT_EQ(ev[1].receipt.conv_seq, 12u);
  EXPECT_TRUE(ev[1].receipt.duplicate);
  ASSERT_EQ(ev[2].kind, Kind::Presence);
  EXPECT_EQ(ev[2].presence.user_id, 2u);
  EXPECT_EQ(ev[2].presence.username, "bob");
  EXPECT_TRUE(ev[2].presence.online);
  EXPECT_EQ(ev[3].kind, Kind::Goodbye);
  EXPECT_EQ(ev[4].kind, Kind::Other);
}

TEST(StompWire, ClassifiesErrors) {
  auto one = [](std::initializer_list<std::pair<std::string_view, std::string_view>> headers,
                std::string body) {
    auto w = makeStompWire(1 << 20);
    std::string in;
    protocol::appendFrame(in, "ERROR", headers, body);
    auto ev = decodeAll(*w, in);
    EXPECT_EQ(ev.size(), 1u);
    return ev.at(0);
  };
  auto refused =
      one({{"message", "no such recipient"}, {"receipt-id", "s:m-3"}}, "user 'zed' does not exist");
  EXPECT_EQ(refused.kind, Kind::SendRefused);
  EXPECT_EQ(refused.ref, "m-3");
  EXPECT_EQ(refused.error.code, Errc::NotFound);
  EXPECT_EQ(refused.error.message, "no such recipient: user 'zed' does not exist");
  EXPECT_TRUE(refused.fatal);
  EXPECT_FALSE(refused.transient);

  auto busy = one({{"message", "server unavailable"}, {"receipt-id", "s:m-4"}}, "");
  EXPECT_EQ(busy.kind, Kind::SendRefused);
  EXPECT_TRUE(busy.transient);

  EXPECT_EQ(one({{"message", "kicked"}}, "again elsewhere").kind, Kind::Kicked);
  EXPECT_EQ(one({{"message", "authentication failed"}}, "token expired").kind, Kind::AuthFailed);
  auto fatal = one({{"message", "invalid ack"}}, "seq 9 was not delivered");
  EXPECT_EQ(fatal.kind, Kind::Fatal);
  EXPECT_EQ(fatal.error.message, "invalid ack: seq 9 was not delivered");
}

TEST(StompWire, GarbageIsOneFatalEvent) {
  auto w = makeStompWire(1 << 20);
  auto ev = decodeAll(*w, std::string("lowercase\n\n") + '\0');
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, Kind::Fatal);
  EXPECT_TRUE(decodeAll(*w, "MORE").empty());
}

// ---- the native wire -------------------------------------------------------------------------

std::vector<protocol::pb::Envelope> parseNative(const std::string& bytes) {
  protocol::NativeParser p;
  p.feed(bytes);
  std::vector<protocol::pb::Envelope> out;
  while (p.next() == protocol::NativeParser::Status::Frame) out.push_back(p.envelope());
  return out;
}

std::string nativeFrame(const protocol::pb::Envelope& e) {
  std::string out;
  protocol::appendNative(out, e);
  return out;
}

TEST(NativeWire, EncodesTheClientSide) {
  auto w = makeNativeWire(1 << 20);
  std::string out;
  w->hello(out, Hello{"tok", "phone", "h", milliseconds(300), true});
  w->subscribe(out, 17, false);
  OutgoingMessage m;
  m.to = Destination::toGroup(5);
  m.body = "x";
  m.client_msg_id = "c-1";
  w->send(out, m);
  w->ack(out, 18);
  w->ping(out, 77);
  w->bye(out);
  auto e = parseNative(out);
  ASSERT_EQ(e.size(), 6u);
  EXPECT_EQ(e[0].login().token(), "tok");
  EXPECT_EQ(e[0].login().device(), "phone");
  EXPECT_EQ(e[0].login().heartbeat_ms(), 300u);
  EXPECT_TRUE(e[0].login().presence());
  EXPECT_EQ(e[1].sync().since(), 17u);
  EXPECT_EQ(e[1].sync().ack_mode(), protocol::pb::ACK_CLIENT);
  EXPECT_EQ(e[2].send().group(), 5u);
  EXPECT_EQ(e[2].send().client_msg_id(), "c-1");
  EXPECT_EQ(e[2].send().content_type(), "text/plain");
  EXPECT_EQ(e[3].ack().seq(), 18u);
  EXPECT_TRUE(e[3].ack().cumulative());
  EXPECT_EQ(e[4].ping().nonce(), 77u);
  EXPECT_TRUE(e[5].has_bye());
}

TEST(NativeWire, DecodesTheServerSide) {
  namespace pb = protocol::pb;
  auto w = makeNativeWire(1 << 20);
  std::string hello;
  w->hello(hello, Hello{"t", "", "h", milliseconds(300), false});
  std::string in;
  pb::Envelope e;
  e.mutable_login_result()->set_user_id(3);
  e.mutable_login_result()->set_username("al");
  in += nativeFrame(e);
  e.Clear();
  e.mutable_sync_started()->set_from_seq(9);
  in += nativeFrame(e);
  e.Clear();
  auto* d = e.mutable_deliver();
  d->set_seq(10);
  d->set_msg_id(555);
  d->set_conversation("g:1");
  d->set_from("bob");
  d->set_body("hey");
  in += nativeFrame(e);
  e.Clear();
  e.mutable_send_ack()->set_client_msg_id("c-1");
  e.mutable_send_ack()->set_seq(11);
  e.mutable_send_ack()->set_sent_at_ms(1234);
  in += nativeFrame(e);
  e.Clear();
  e.mutable_error()->set_code("no_such_recipient");
  e.mutable_error()->set_text("user 'zed' does not exist");
  e.mutable_error()->set_ref("c-2");
  in += nativeFrame(e);
  e.Clear();
  e.mutable_error()->set_code("unauthenticated");
  e.mutable_error()->set_fatal(true);
  in += nativeFrame(e);
  e.Clear();
  e.mutable_kicked()->set_reason("again");
  in += nativeFrame(e);
  e.Clear();
  e.mutable_pong()->set_nonce(1);
  in += nativeFrame(e);
  e.Clear();
  e.mutable_bye();
  in += nativeFrame(e);
  e.Clear();
  e.mutable_error()->set_code("unavailable");
  e.mutable_error()->set_fatal(true);
  in += nativeFrame(e);

  auto ev = decodeAll(*w, in);
  ASSERT_EQ(ev.size(), 10u);
  EXPECT_EQ(ev[0].kind, Kind::Connected);
  EXPECT_EQ(ev[0].beat_every, milliseconds(300));
  EXPECT_EQ(ev[0].expect_every, milliseconds(300));
  EXPECT_EQ(ev[1].kind, Kind::SyncStarted);
  EXPECT_EQ(ev[1].seq, 9u);
  EXPECT_EQ(ev[2].kind, Kind::Message);
  EXPECT_EQ(ev[2].message.seq, 10u);
  EXPECT_EQ(ev[2].message.content_type, "text/plain");
  EXPECT_EQ(ev[3].kind, Kind::SendOk);
  EXPECT_EQ(ev[3].ref, "c-1");
  EXPECT_EQ(ev[3].receipt.sent_at_ms, 1234);
  EXPECT_EQ(ev[4].kind, Kind::SendRefused);
  EXPECT_EQ(ev[4].error.code, Errc::NotFound);
  EXPECT_FALSE(ev[4].fatal);
  EXPECT_FALSE(ev[4].transient);
  EXPECT_EQ(ev[5].kind, Kind::AuthFailed);
  EXPECT_EQ(ev[6].kind, Kind::Kicked);
  EXPECT_EQ(ev[6].error.message, "again");
  EXPECT_EQ(ev[7].kind, Kind::Pong);
  EXPECT_EQ(ev[8].kind, Kind::Goodbye);
  EXPECT_EQ(ev[9].kind, Kind::Fatal);
  EXPECT_TRUE(ev[9].transient);
}

TEST(NativeWire, OversizedFrameIsFatal) {
  auto w = makeNativeWire(16);
  protocol::pb::Envelope e;
  e.mutable_deliver()->set_body(std::string(100, 'x'));
  auto ev = decodeAll(*w, nativeFrame(e));
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, Kind::Fatal);
}

// ---- HTTP answers ----------------------------------------------------------------------------

TEST(HttpParse, SessionAndHistory) {
  auto s = parseSessionJson(boost::json::parse(
      R"({"token":"abc","user_id":"12","username":"al","device":"d","expires_at":99,
          "gateway":{"ws":"ws://127.0.0.1:1/ws","tcp":null}})"));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->user_id, 12u);
  EXPECT_EQ(s->gateway_ws, "ws://127.0.0.1:1/ws");
  EXPECT_EQ(s->gateway_tcp, "");
  EXPECT_EQ(s->expires_at_ms, 99);
  EXPECT_FALSE(parseSessionJson(boost::json::parse(R"({"user_id":"12"})")));
  EXPECT_FALSE(parseSessionJson(boost::json::parse("[1,2]")));

  auto h = parseHistoryJson(boost::json::parse(
      R"({"messages":[{"msg_id":"7","conversation":"g:1","conv_seq":4,"from":"bob","body":"x",
                       "content_type":"text/plain","sent_at":5,"client_msg_id":"m"}],
          "has_more":true})"));
  ASSERT_TRUE(h);
  ASSERT_EQ(h->messages.size(), 1u);
  EXPECT_EQ(h->messages[0].msg_id, 7u);
  EXPECT_EQ(h->messages[0].conv_seq, 4u);
  EXPECT_EQ(h->messages[0].client_msg_id, "m");
  EXPECT_TRUE(h->has_more);
  EXPECT_FALSE(parseHistoryJson(boost::json::parse(R"({"messages":5})")));
}

// ---- the Client against a scripted native server ---------------------------------------------

namespace pb = protocol::pb;

// A native-protocol server on 127.0.0.1:0 in the test's io_context. `script` answers each frame
// a client sends (appending replies to `out`, or asking to close).
class ScriptedServer {
 public:
  using Script =
      std::function<void(std::size_t conn, const pb::Envelope& in, std::string& out, bool& close)>;

  ScriptedServer(asio::io_context& io, Script script)
      : io_(io), acceptor_(io, {asio::ip::address_v4::loopback(), 0}), script_(std::move(script)) {
    asio::co_spawn(io_, accept(), asio::detached);
  }
  ~ScriptedServer() {
    boost::system::error_code ec;
    acceptor_.close(ec);
    for (auto& s : sockets_) s->close(ec);
  }
  std::string url() const {
    return "tcp://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
  }
  // Frames received, per connection.
  const std::vector<std::vector<pb::Envelope>>& received() const { return received_; }

 private:
  asio::awaitable<void> accept() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      auto s = std::make_shared<asio::ip::tcp::socket>(std::move(socket));
      sockets_.push_back(s);
      received_.emplace_back();
      asio::co_spawn(io_, serve(received_.size() - 1, s), asio::detached);
    }
  }
  asio::awaitable<void> serve(std::size_t id, std::shared_ptr<asio::ip::tcp::socket> s) {
    protocol::NativeParser parser;
    char buf[4096];
    for (;;) {
      auto [ec, n] =
          co_await s->async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      parser.feed(std::string_view(buf, n));
      while (parser.next() == protocol::NativeParser::Status::Frame) {
        received_[id].push_back(parser.envelope());
        std::string out;
        bool close = false;
        script_(id, parser.envelope(), out, close);
        if (!out.empty())
          co_await asio::async_write(*s, asio::buffer(out), asio::as_tuple(asio::use_awaitable));
        if (close) {
          boost::system::error_code ignored;
          s->close(ignored);
          co_return;
        }
      }
    }
  }

  asio::io_context& io_;
  asio::ip::tcp::acceptor acceptor_;
  Script script_;
  std::vector<std::shared_ptr<asio::ip::tcp::socket>> sockets_;
  std::vector<std::vector<pb::Envelope>> received_;
};

void put(std::string& out, const pb::Envelope& e) {
  protocol::appendNative(out, e);
}
void loginResult(std::string& out) {
  pb::Envelope e;
  e.mutable_login_result()->set_user_id(1);
  e.mutable_login_result()->set_username("al");
  put(out, e);
}
void syncStarted(std::string& out, std::uint64_t from) {
  pb::Envelope e;
  e.mutable_sync_started()->set_from_seq(from);
  put(out, e);
}
void deliver(std::string& out, std::uint64_t seq) {
  pb::Envelope e;
  e.mutable_deliver()->set_seq(seq);
  e.mutable_deliver()->set_body("m" + std::to_string(seq));
  e.mutable_deliver()->set_conversation("g:1");
  put(out, e);
}

void sendAck(std::string& out, const std::string& client_msg_id, std::uint64_t seq) {
  pb::Envelope e;
  auto* ack = e.mutable_send_ack();
  ack->set_client_msg_id(client_msg_id);
  ack->set_msg_id(1000 + seq);
  ack->set_seq(seq);
  ack->set_conversation("p:1:2");
  ack->set_conv_seq(seq);
  put(out, e);
}

struct Recorder : Listener {
  std::vector<Message> messages;
  std::vector<SendResult> results;
  std::vector<StateChange> states;
  void onMessages(std::span<const Message> m) override {
    messages.insert(messages.end(), m.begin(), m.end());
  }
  void onSendResult(const SendResult& r) override { results.push_back(r); }
  void onStateChange(const StateChange& s) override { states.push_back(s); }
};

// Runs the io_context on this thread until `done` or 5 s.
bool runUntil(asio::io_context& io, const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    io.run_for(milliseconds(5));
  }
  return true;
}

ClientOptions scriptedOptions(const ScriptedServer& server) {
  ClientOptions o;
  o.server = "http://127.0.0.1:1";  // never used: a token and a gateway are given
  o.token = "tok";
  o.gateway = server.url();
  o.transport = Transport::Tcp;
  o.heartbeat = milliseconds(0);
  o.backoff_min = milliseconds(1);
  o.backoff_max = milliseconds(10);
  o.ack_delay = milliseconds(1);
  return o;
}

TEST(ClientScripted, DuplicatesAreDroppedAndAGapResyncsFromTheLastSeq) {
  asio::io_context io;
  ScriptedServer server(io, [](std::size_t conn, const pb::Envelope& in, std::string& out, bool&) {
    if (in.has_login()) loginResult(out);
    if (!in.has_sync()) return;
    if (conn == 0) {
      syncStarted(out, 0);
      for (std::uint64_t seq : {1, 2, 2, 3, 5}) deliver(out, seq);  // a duplicate, then a gap
    } else {
      syncStarted(out, in.sync().since());
      for (std::uint64_t seq = in.sync().since() + 1; seq <= 5; ++seq) deliver(out, seq);
    }
  });
  Recorder rec;
  Client client(io.get_executor(), scriptedOptions(server), rec);
  client.start([](Result<Session>) {});
  ASSERT_TRUE(runUntil(io, [&] { return rec.messages.size() >= 5; }));
  std::vector<std::uint64_t> seqs;
  for (auto& m : rec.messages) seqs.push_back(m.seq);
  EXPECT_EQ(seqs, (std::vector<std::uint64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(client.lastSeq(), 5u);
  EXPECT_EQ(client.stats().duplicates_dropped, 1u);
  EXPECT_EQ(client.stats().gaps, 1u);
  EXPECT_EQ(client.stats().connects, 2u);
  ASSERT_EQ(server.received().size(), 2u);
  // The second connection asked for everything after the last seq handed over, in client mode.
  const auto& second = server.received()[1];
  ASSERT_GE(second.size(), 2u);
  EXPECT_TRUE(second[0].has_login());
  EXPECT_EQ(second[0].login().token(), "tok");
  ASSERT_TRUE(second[1].has_sync());
  EXPECT_EQ(second[1].sync().since(), 3u);
  EXPECT_EQ(second[1].sync().ack_mode(), pb::ACK_CLIENT);
  // Acks are cumulative and name only seqs delivered on their own connection.
  ASSERT_TRUE(runUntil(io, [&] {
    for (auto& e : server.received()[1]) {
      if (e.has_ack() && e.ack().seq() == 5) return true;
    }
    return false;
  }));
  for (std::size_t c = 0; c < 2; ++c) {
    for (auto& e : server.received()[c]) {
      if (!e.has_ack()) continue;
      EXPECT_TRUE(e.ack().cumulative());
      EXPECT_LE(e.ack().seq(), c == 0 ? 3u : 5u);
      EXPECT_GE(e.ack().seq(), c == 0 ? 1u : 4u);
    }
  }
  bool waiting_for_gap = false;
  for (auto& s : rec.states)
    waiting_for_gap |= s.state == State::Waiting && s.reason == Reason::SequenceGap;
  EXPECT_TRUE(waiting_for_gap);
}

TEST(ClientScripted, AnUnansweredSendIsResentWithTheSameIdAndReportedOnce) {
  asio::io_context io;
  ScriptedServer server(
      io, [](std::size_t conn, const pb::Envelope& in, std::string& out, bool& close) {
        if (in.has_login()) loginResult(out);
        if (in.has_sync()) syncStarted(out, 0);
        if (!in.has_send()) return;
        if (conn == 0) {
          close = true;  // stored, but the answer is lost with the connection
          return;
        }
        pb::Envelope e;
        auto* ack = e.mutable_send_ack();
        ack->set_client_msg_id(in.send().client_msg_id());
        ack->set_msg_id(77);
        ack->set_seq(1);
        ack->set_conversation("p:1:2");
        ack->set_conv_seq(1);
        ack->set_duplicate(true);
        put(out, e);
      });
  Recorder rec;
  Client client(io.get_executor(), scriptedOptions(server), rec);
  // Queued before start: written once online.
  const std::string id = client.send(Destination::toUser("bob"), "hello");
  EXPECT_EQ(client.pendingSends(), 1u);
  client.start([](Result<Session>) {});
  ASSERT_TRUE(runUntil(io, [&] { return !rec.results.empty(); }));
  ASSERT_EQ(rec.results.size(), 1u);
  EXPECT_EQ(rec.results[0].client_msg_id, id);
  ASSERT_TRUE(rec.results[0].receipt);
  EXPECT_TRUE(rec.results[0].receipt->duplicate);
  EXPECT_EQ(rec.results[0].receipt->msg_id, 77u);
  EXPECT_EQ(client.stats().sends_retried, 1u);
  EXPECT_EQ(client.pendingSends(), 0u);
  ASSERT_EQ(server.received().size(), 2u);
  std::vector<std::string> ids;
  for (auto& conn : server.received()) {
    for (auto& e : conn) {
      if (e.has_send()) ids.push_back(e.send().client_msg_id());
    }
  }
  EXPECT_EQ(ids, (std::vector<std::string>{id, id}));
}

TEST(ClientScripted, RefusesBadSendsLocally) {
  asio::io_context io;
  Recorder rec;
  ClientOptions o;
  o.server = "http://127.0.0.1:1";
  o.token = "tok";
  o.max_send_bytes = 100;
  Client client(io.get_executor(), o, rec);
  client.send(Destination::toUser("bob"), std::string(200, 'x'));
  OutgoingMessage bad_id;
  bad_id.to = Destination::toUser("bob");
  bad_id.client_msg_id = "has space";
  client.send(bad_id);
  client.send(Destination{}, "nowhere");
  EXPECT_EQ(client.pendingSends(), 0u);
  EXPECT_TRUE(rec.results.empty());  // reported after send() returns, never inside it
  ASSERT_TRUE(runUntil(io, [&] { return rec.results.size() == 3; }));
  EXPECT_EQ(rec.results[0].receipt.error().code, Errc::TooLarge);
  EXPECT_EQ(rec.results[1].receipt.error().code, Errc::BadRequest);
  EXPECT_EQ(rec.results[2].receipt.error().code, Errc::BadRequest);
}

TEST(ClientScripted, StopFromOnlineWritesTheQueuedSendsThenSaysGoodbye) {
  asio::io_context io;
  std::uint64_t seq = 0;
  ScriptedServer server(io,
                        [&](std::size_t, const pb::Envelope& in, std::string& out, bool& close) {
                          if (in.has_login()) loginResult(out);
                          if (in.has_sync()) syncStarted(out, 0);
                          if (in.has_send()) sendAck(out, in.send().client_msg_id(), ++seq);
                          if (in.has_bye()) {
                            pb::Envelope e;
                            e.mutable_bye();
                            put(out, e);
                            close = true;
                          }
                        });
  struct StopWhenOnline : Recorder {
    Client* client = nullptr;
    bool stopped = false;
    void onStateChange(const StateChange& s) override {
      Recorder::onStateChange(s);
      if (s.state == State::Online) client->stop([this] { stopped = true; });
    }
  } rec;
  auto o = scriptedOptions(server);
  o.find_inbox_end = false;
  Client client(io.get_executor(), o, rec);
  rec.client = &client;
  for (int i = 0; i < 3; ++i) client.send(Destination::toUser("bob"), "m" + std::to_string(i));
  client.start([](Result<Session>) {});
  ASSERT_TRUE(runUntil(io, [&] { return rec.stopped; }));
  EXPECT_EQ(client.state(), State::Stopped);
  ASSERT_EQ(rec.results.size(), 3u);
  for (auto& r : rec.results) EXPECT_TRUE(r.receipt) << r.receipt.error().message;
  // Login, the three sends, then Bye — no sync while stopping.
  ASSERT_EQ(server.received().size(), 1u);
  const auto& frames = server.received()[0];
  ASSERT_EQ(frames.size(), 5u);
  EXPECT_TRUE(frames[0].has_login());
  for (int i = 1; i <= 3; ++i) EXPECT_TRUE(frames[i].has_send()) << i;
  EXPECT_TRUE(frames[4].has_bye());
  std::vector<State> states;
  for (auto& s : rec.states) states.push_back(s.state);
  EXPECT_EQ(states, (std::vector<State>{State::Connecting, State::Online, State::Stopping,
                                        State::Stopped}));
}

TEST(ClientScripted, StopWithoutStartIsImmediate) {
  asio::io_context io;
  Recorder rec;
  ClientOptions o;
  o.server = "http://127.0.0.1:1";
  o.token = "tok";
  Client client(io.get_executor(), o, rec);
  client.send(Destination::toUser("bob"), "queued");
  bool stopped = false;
  client.stop([&] { stopped = true; });
  ASSERT_TRUE(runUntil(io, [&] { return stopped; }));
  EXPECT_EQ(client.state(), State::Stopped);
  ASSERT_EQ(rec.results.size(), 1u);
  EXPECT_EQ(rec.results[0].receipt.error().code, Errc::Unavailable);
}

}  // namespace
}  // namespace pigeon::client
