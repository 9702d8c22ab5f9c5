// The native protocol (varint32 + pigeon.v1.Envelope over TCP) end to end against the real
// pigeond, with raw clients so that every frame is checked: login, send and its SendAck,
// delivery between a native user and a STOMP user, offline messages and resync, refused sends,
// bad input of every kind, kicks, heart-beats, and TLS on both listeners.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <optional>
#include <thread>

#include "protocol/native.h"
#include "protocol/stomp.h"
#include "support/http_client.h"
#include "support/pigeond_process.h"

namespace pigeon::test {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace json = boost::json;
namespace pb = protocol::pb;
using asio::ip::tcp;
using namespace std::chrono_literals;
using Body = pb::Envelope::BodyCase;

const std::string kCert = std::string(PIGEON_TEST_TLS_DIR) + "/cert.pem";
const std::string kKey = std::string(PIGEON_TEST_TLS_DIR) + "/key.pem";

std::string unique(const std::string& base) {
  static std::atomic<int> n{0};
  return base + std::to_string(::getpid()) + "x" + std::to_string(n.fetch_add(1));
}

struct Account {
  std::string name;
  std::string token;
  std::uint64_t id = 0;
  json::value login;  // the whole login response
};

Account registerAndLogin(std::uint16_t http_port, const std::string& name,
                         const std::string& device = "phone") {
  HttpClient c(http_port);
  auto reg = c.post("/api/v1/users", json::object{{"username", name}, {"password", "password123"}});
  EXPECT_TRUE(reg.status == 201 || reg.status == 409) << reg.body;
  auto res = c.post("/api/v1/sessions",
                    json::object{{"username", name}, {"password", "password123"}, {"device", device}});
  EXPECT_EQ(res.status, 200) << res.body;
  Account a;
  a.name = name;
  a.login = res.json();
  a.token = std::string(a.login.at("token").as_string());
  a.id = std::stoull(std::string(a.login.at("user_id").as_string()));
  return a;
}

std::shared_ptr<asio::ssl::context> clientTls() {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->load_verify_file(kCert);
  ctx->set_verify_mode(asio::ssl::verify_peer);
  return ctx;
}

// A blocking native-protocol client, plain or TLS, with read deadlines.
class NativeConn {
 public:
  explicit NativeConn(std::uint16_t port, std::shared_ptr<asio::ssl::context> tls = nullptr)
      : tls_ctx_(std::move(tls)) {
    tcp::socket socket(io_);
    socket.connect({asio::ip::make_address("127.0.0.1"), port});
    if (tls_ctx_) {
      tls_.emplace(std::move(socket), *tls_ctx_);
      tls_->set_verify_callback(asio::ssl::host_name_verification("127.0.0.1"));
      tls_->handshake(asio::ssl::stream_base::client);
    } else {
      plain_.emplace(std::move(socket));
    }
  }

  tcp::socket& socket() { return tls_ ? tls_->next_layer() : *plain_; }

  void sendRaw(std::string_view bytes) {
    if (tls_) {
      asio::write(*tls_, asio::buffer(bytes.data(), bytes.size()));
    } else {
      asio::write(*plain_, asio::buffer(bytes.data(), bytes.size()));
    }
  }
  void send(const pb::Envelope& e) {
    std::string wire;
    protocol::appendNative(wire, e);
    sendRaw(wire);
  }

  // The next frame, or nullopt when the server closed the connection or `timeout` passed
  // (closed() tells which).
  std::optional<pb::Envelope> next(std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto status = parser_.next();
      if (status == protocol::NativeParser::Status::Frame) return parser_.envelope();
      if (status == protocol::NativeParser::Status::Error) {
        ADD_FAILURE() << "the server sent a bad frame: " << parser_.error().message;
        return std::nullopt;
      }
      if (closed_) return std::nullopt;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      // An asynchronous read run for at most `left`: a TLS stream may hold whole records it
      // has read from the socket, which polling the socket would not see.
      char buf[16384];
      std::optional<std::pair<boost::system::error_code, std::size_t>> got;
      auto done = [&got](const boost::system::error_code& ec, std::size_t n) { got.emplace(ec, n); };
      if (tls_) {
        tls_->async_read_some(asio::buffer(buf), done);
      } else {
        plain_->async_read_some(asio::buffer(buf), done);
      }
      io_.restart();
      io_.run_for(left);
      if (!got) {
        socket().cancel();
        io_.restart();
        io_.run();
        if (got && got->first == asio::error::operation_aborted) return std::nullopt;
      }
      const auto [ec, n] = *got;
      if (ec || n == 0) {
        closed_ = true;
        continue;
      }
      parser_.feed(std::string_view(buf, n));
    }
  }

  // The next frame, which must be of `kind`.
  pb::Envelope expect(Body kind, std::chrono::milliseconds timeout = 5s) {
    auto e = next(timeout);
    if (!e) {
      ADD_FAILURE() << "expected frame " << int(kind) << ", got " << (closed_ ? "a close" : "nothing");
      return {};
    }
    EXPECT_EQ(e->body_case(), kind) << "got frame " << int(e->body_case());
    if (e->has_error() && kind != Body::kError) ADD_FAILURE() << "error: " << e->error().code() << ": " << e->error().text();
    return *e;
  }

  // Reads (and returns the last error frame seen) until the server closes.
  std::optional<pb::Error> expectClose(std::chrono::milliseconds timeout = 5s) {
    std::optional<pb::Error> error;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!closed_ && std::chrono::steady_clock::now() < deadline) {
      auto e = next(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
      if (e && e->has_error()) error = e->error();
    }
    EXPECT_TRUE(closed_) << "the server did not close the connection";
    return error;
  }

  pb::LoginResult login(const std::string& token, std::uint32_t heartbeat_ms = 0, bool presence = false,
                        const std::string& device = "") {
    pb::Envelope e;
    e.mutable_login()->set_token(token);
    e.mutable_login()->set_heartbeat_ms(heartbeat_ms);
    e.mutable_login()->set_presence(presence);
    e.mutable_login()->set_device(device);
    send(e);
    return expect(Body::kLoginResult).login_result();
  }
  pb::SyncStarted sync(std::uint64_t since = 0, pb::AckMode mode = pb::ACK_CLIENT) {
    pb::Envelope e;
    e.mutable_sync()->set_since(since);
    e.mutable_sync()->set_ack_mode(mode);
    send(e);
    return expect(Body::kSyncStarted).sync_started();
  }
  void sendTo(const std::string& client_msg_id, const std::string& user, const std::string& body) {
    pb::Envelope e;
    e.mutable_send()->set_client_msg_id(client_msg_id);
    e.mutable_send()->set_user(user);
    e.mutable_send()->set_body(body);
    send(e);
  }
  void sendToGroup(const std::string& client_msg_id, std::uint64_t group, const std::string& body) {
    pb::Envelope e;
    e.mutable_send()->set_client_msg_id(client_msg_id);
    e.mutable_send()->set_group(group);
    e.mutable_send()->set_body(body);
    send(e);
  }
  void ack(std::uint64_t seq, bool cumulative = true) {
    pb::Envelope e;
    e.mutable_ack()->set_seq(seq);
    e.mutable_ack()->set_cumulative(cumulative);
    send(e);
  }
  bool closed() const { return closed_; }

 private:
  asio::io_context io_;
  std::shared_ptr<asio::ssl::context> tls_ctx_;
  std::optional<tcp::socket> plain_;
  std::optional<asio::ssl::stream<tcp::socket>> tls_;
  protocol::NativeParser parser_{1 << 20};
  bool closed_ = false;
};

// A blocking STOMP-over-WebSocket client (Beast), plain or TLS, reads bounded by SO_RCVTIMEO.
template <class Next>
class StompConn {
 public:
  template <class... Args>
  StompConn(std::uint16_t port, const std::string& token, Args&&... next_args)
      : ws_(std::forward<Args>(next_args)...) {
    auto& sock = beast::get_lowest_layer(ws_);
    sock.connect({asio::ip::make_address("127.0.0.1"), port});
    timeval tv{5, 0};
    ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if constexpr (!std::is_same_v<Next, tcp::socket>) ws_.next_layer().handshake(asio::ssl::stream_base::client);
    ws_.set_option(beast::websocket::stream_base::decorator([](beast::websocket::request_type& req) {
      req.set(beast::http::field::sec_websocket_protocol, "v12.stomp");
    }));
    ws_.handshake("127.0.0.1", "/ws");
    std::string connect;
    protocol::appendFrame(connect, "CONNECT", {{"accept-version", "1.2"}, {"host", "pigeon"}, {"passcode", token}});
    write(connect);
    EXPECT_EQ(frame().command, "CONNECTED");
  }
  void write(const std::string& bytes) {
    ws_.text(true);
    ws_.write(asio::buffer(bytes));
  }
  void subscribe() {
    std::string f;
    protocol::appendFrame(f, "SUBSCRIBE", {{"id", "0"}, {"destination", "/user/queue/messages"}, {"receipt", "s"}});
    write(f);
    EXPECT_EQ(frame().command, "RECEIPT");
  }
  protocol::StompFrame frame() {
    for (;;) {
      const auto status = parser_.next();
      if (status == protocol::StompParser::Status::Frame) return parser_.frame();
      if (status == protocol::StompParser::Status::Heartbeat) continue;
      if (status == protocol::StompParser::Status::Error) {
        ADD_FAILURE() << "bad STOMP frame from the server";
        return {};
      }
      beast::flat_buffer buffer;
      boost::system::error_code ec;
      ws_.read(buffer, ec);
      if (ec) {
        ADD_FAILURE() << "STOMP read failed: " << ec.message();
        return {};
      }
      parser_.feed(beast::buffers_to_string(buffer.data()));
    }
  }

 private:
  beast::websocket::stream<Next> ws_;
  protocol::StompParser parser_;
};

class NativeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    server_ = new PigeondProcess(dir_->path() + "/data",
                                 {"--heartbeat-ms", "300", "--connect-timeout-ms", "1000",
                                  "--max-frame-bytes", "4096", "--max-body-bytes", "2048"});
    server_->start();
  }
  static void TearDownTestSuite() {
    // A clean exit on SIGTERM (and, in sanitizer builds, no leak report).
    EXPECT_EQ(server_->terminate(), 0) << server_->log();
    delete server_;
    delete dir_;
  }
  static std::uint16_t http() { return server_->httpPort(); }
  static std::uint16_t tcp() { return server_->tcpPort(); }

  static TempDir* dir_;
  static PigeondProcess* server_;
};
TempDir* NativeTest::dir_ = nullptr;
PigeondProcess* NativeTest::server_ = nullptr;

TEST_F(NativeTest, LoginResponseNamesTheTcpGateway) {
  auto a = registerAndLogin(http(), unique("gw"));
  EXPECT_EQ(std::string(a.login.at("gateway").at("tcp").as_string()), "tcp://127.0.0.1:" + std::to_string(tcp()));
  NativeConn c(tcp());
  auto r = c.login(a.token);
  EXPECT_EQ(r.user_id(), a.id);
  EXPECT_EQ(r.username(), a.name);
  EXPECT_EQ(r.device(), "phone");
  EXPECT_EQ(r.heartbeat_ms(), 300u);
}

TEST_F(NativeTest, NativeAndStompUsersChatBothWays) {
  auto alice = registerAndLogin(http(), unique("alice"));
  auto bob = registerAndLogin(http(), unique("bob"));
  NativeConn a(tcp());
  a.login(alice.token);
  a.sync();
  asio::io_context io;
  StompConn<tcp::socket> b(http(), bob.token, io);
  b.subscribe();

  a.sendTo("m1", bob.name, "hello bob");
  auto ack = a.expect(Body::kSendAck).send_ack();
  EXPECT_EQ(ack.client_msg_id(), "m1");
  EXPECT_EQ(ack.conv_seq(), 1u);
  EXPECT_FALSE(ack.duplicate());
  // The sender's own devices get the message too (its inbox), after the SendAck.
  auto echo = a.expect(Body::kDeliver).deliver();
  EXPECT_EQ(echo.seq(), ack.seq());
  EXPECT_EQ(echo.client_msg_id(), "m1");
  auto at_bob = b.frame();
  ASSERT_EQ(at_bob.command, "MESSAGE");
  EXPECT_EQ(at_bob.body, "hello bob");
  EXPECT_EQ(*at_bob.header("from"), alice.name);
  EXPECT_EQ(*at_bob.header("msg-id"), std::to_string(ack.msg_id()));

  std::string send;
  protocol::appendFrame(send, "SEND", {{"destination", "/app/p2p/" + alice.name}, {"client-msg-id", "s1"}, {"receipt", "r1"}},
                        "hi alice");
  b.write(send);
  auto d = a.expect(Body::kDeliver).deliver();
  EXPECT_EQ(d.body(), "hi alice");
  EXPECT_EQ(d.from(), bob.name);
  EXPECT_EQ(d.conversation(), ack.conversation());
  EXPECT_EQ(d.conv_seq(), 2u);
  EXPECT_EQ(d.seq(), echo.seq() + 1);  // the inbox is gapless
  EXPECT_EQ(d.content_type(), "text/plain");
  EXPECT_GT(d.sent_at_ms(), 0);
}

TEST_F(NativeTest, OfflineMessagesArriveInOrderAndTheCursorFollowsAcks) {
  auto alice = registerAndLogin(http(), unique("off-a"));
  auto bob = registerAndLogin(http(), unique("off-b"));
  {
    NativeConn a(tcp());
    a.login(alice.token);
    for (int i = 1; i <= 5; ++i) {
      a.sendTo("o" + std::to_string(i), bob.name, "msg " + std::to_string(i));
      EXPECT_EQ(a.expect(Body::kSendAck).send_ack().conv_seq(), std::uint64_t(i));
    }
  }
  std::uint64_t third = 0;
  {
    NativeConn b(tcp());
    b.login(bob.token);
    EXPECT_EQ(b.sync().from_seq(), 0u);
    for (int i = 1; i <= 5; ++i) {
      auto d = b.expect(Body::kDeliver).deliver();
      EXPECT_EQ(d.body(), "msg " + std::to_string(i));
      if (i == 3) third = d.seq();
    }
    b.ack(third);  // cumulative: 1..3 are done
    pb::Envelope bye;
    bye.mutable_bye();
    b.send(bye);
    b.expect(Body::kBye);  // after the cursor is stored
    b.expectClose();
  }
  {
    NativeConn b(tcp());
    b.login(bob.token);
    EXPECT_EQ(b.sync().from_seq(), third);  // from the stored cursor
    EXPECT_EQ(b.expect(Body::kDeliver).deliver().body(), "msg 4");
    EXPECT_EQ(b.expect(Body::kDeliver).deliver().body(), "msg 5");
    EXPECT_FALSE(b.next(300ms)) << "nothing past the inbox end";
  }
  {
    NativeConn b(tcp());
    b.login(bob.token);
    EXPECT_EQ(b.sync(1).from_seq(), 1u);  // an explicit since wins
    EXPECT_EQ(b.expect(Body::kDeliver).deliver().body(), "msg 2");
  }
}

// Acks without a receipt are held back (--cursor-delay-ms, 100 ms by default) and the loops
// store every session's due cursor together: all of them reach the store, soon.
TEST_F(NativeTest, AcksOfManyConnectionsAreStoredSoonWithoutAReceipt) {
  auto sender = registerAndLogin(http(), unique("acks-s"));
  std::vector<Account> readers;
  for (int i = 0; i < 12; ++i) readers.push_back(registerAndLogin(http(), unique("acks-r")));
  {
    NativeConn s(tcp());
    s.login(sender.token);
    for (std::size_t r = 0; r < readers.size(); ++r) {
      for (int i = 0; i < 3; ++i) {
        s.sendTo("a" + std::to_string(r) + "-" + std::to_string(i), readers[r].name, "hello");
        s.expect(Body::kSendAck);
      }
    }
  }
  std::vector<std::unique_ptr<NativeConn>> conns;
  for (const auto& reader : readers) {
    auto c = std::make_unique<NativeConn>(tcp());
    c->login(reader.token);
    EXPECT_EQ(c->sync().from_seq(), 0u);
    std::uint64_t last = 0;
    for (int i = 0; i < 3; ++i) last = c->expect(Body::kDeliver).deliver().seq();
    c->ack(last);
    conns.push_back(std::move(c));
  }
  // The device's stored cursor is what an HTTP sync without `after` starts from: nothing is
  // left after it once the ack is stored.
  for (const auto& reader : readers) {
    HttpClient h(http());
    h.setToken(reader.token);
    EXPECT_TRUE(waitFor([&] {
      auto r = h.get("/api/v1/sync?limit=10");
      return r.status == 200 && r.json().at("messages").as_array().empty();
    }, 5s)) << reader.name << "'s ack was not stored";
  }
}

TEST_F(NativeTest, RefusedSendsKeepTheConnectionAndRetriesAreNotStoredTwice) {
  auto alice = registerAndLogin(http(), unique("ref-a"));
  auto bob = registerAndLogin(http(), unique("ref-b"));
  NativeConn a(tcp());
  a.login(alice.token);
  a.sendTo("x1", unique("nobody"), "hello?");
  auto e = a.expect(Body::kError).error();
  EXPECT_EQ(e.code(), "no_such_recipient");
  EXPECT_EQ(e.ref(), "x1");
  EXPECT_FALSE(e.fatal());
  a.sendToGroup("x2", 999999, "hello group?");
  e = a.expect(Body::kError).error();
  EXPECT_TRUE(e.code() == "no_such_recipient" || e.code() == "forbidden") << e.code();
  EXPECT_EQ(e.ref(), "x2");
  a.sendTo("x3", bob.name, std::string(2049, 'z'));  // over --max-body-bytes, under the frame limit
  e = a.expect(Body::kError).error();
  EXPECT_EQ(e.code(), "too_large");
  pb::Envelope no_target;
  no_target.mutable_send()->set_client_msg_id("x4");
  a.send(no_target);
  EXPECT_EQ(a.expect(Body::kError).error().code(), "invalid_send");

  // Still connected: a good send works, and its retry is answered with the same ids.
  a.sendTo("ok", bob.name, "fine");
  auto first = a.expect(Body::kSendAck).send_ack();
  a.sendTo("ok", bob.name, "fine");
  auto again = a.expect(Body::kSendAck).send_ack();
  EXPECT_TRUE(again.duplicate());
  EXPECT_EQ(again.msg_id(), first.msg_id());
  EXPECT_EQ(again.conv_seq(), 1u);
  // Nothing refused was stored: bob's inbox holds the one message.
  NativeConn b(tcp());
  b.login(bob.token);
  b.sync();
  EXPECT_EQ(b.expect(Body::kDeliver).deliver().body(), "fine");
  EXPECT_FALSE(b.next(300ms));
}

TEST_F(NativeTest, BadInputGetsADocumentedErrorAndOthersAreServed) {
  auto alice = registerAndLogin(http(), unique("bad"));
  NativeConn bystander(tcp());
  bystander.login(alice.token, 0, false, "phone");

  auto fatal_code = [](NativeConn& c) {
    auto e = c.expectClose();
    EXPECT_TRUE(e && e->fatal());
    return e ? e->code() : std::string();
  };
  {
    NativeConn c(tcp());
    // Not our protocol: 'G' reads as a 71-byte frame that is no Envelope.
    c.sendRaw("GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: a browser that took a wrong turn\r\n"
              "Accept: */*\r\n\r\n");
    EXPECT_EQ(fatal_code(c), "malformed_frame");
  }
  {
    NativeConn c(tcp());
    c.sendRaw(std::string("\xff\xff\xff\xff\x0f", 5));  // a 4 GiB frame
    EXPECT_EQ(fatal_code(c), "too_large");
  }
  {
    NativeConn c(tcp());
    c.sendRaw(std::string("\xff\xff\xff\xff\xff\x01", 6));  // not a varint32
    EXPECT_EQ(fatal_code(c), "malformed_frame");
  }
  {
    NativeConn c(tcp());
    c.sendTo("m", "bob", "hi");  // before Login
    EXPECT_EQ(fatal_code(c), "not_logged_in");
  }
  {
    NativeConn c(tcp());
    pb::Envelope e;
    e.mutable_login()->set_token("forged-token");
    c.send(e);
    EXPECT_EQ(fatal_code(c), "unauthenticated");
  }
  {
    NativeConn c(tcp());
    pb::Envelope e;
    e.mutable_login()->set_token(alice.token);
    e.mutable_login()->set_device("someone-elses-device");
    c.send(e);
    EXPECT_EQ(fatal_code(c), "unauthenticated");
  }
  {
    auto other = registerAndLogin(http(), unique("bad1"), "tablet");
    NativeConn c(tcp());
    c.login(other.token);
    c.send(pb::Envelope());  // no body: a frame from a newer client
    EXPECT_EQ(fatal_code(c), "unknown_frame");
  }
  {
    auto other = registerAndLogin(http(), unique("bad2"), "tablet");
    NativeConn c(tcp());
    c.login(other.token);
    pb::Envelope e;
    e.mutable_deliver()->set_seq(1);  // a server frame
    c.send(e);
    EXPECT_EQ(fatal_code(c), "unexpected_frame");
  }
  {
    auto other = registerAndLogin(http(), unique("bad3"), "tablet");
    NativeConn c(tcp());
    c.login(other.token);
    c.sync();
    c.ack(42);  // never delivered
    EXPECT_EQ(fatal_code(c), "invalid_ack");
  }
  {
    NativeConn c(tcp());  // silent: no Login within --connect-timeout-ms
    EXPECT_EQ(fatal_code(c), "connect_timeout");
  }
  // The bystander was served throughout.
  pb::Envelope ping;
  ping.mutable_ping()->set_nonce(7);
  bystander.send(ping);
  EXPECT_EQ(bystander.expect(Body::kPong).pong().nonce(), 7u);
}

TEST_F(NativeTest, ASecondLoginOfTheSameDeviceKicksTheFirst) {
  auto alice = registerAndLogin(http(), unique("kick"));
  NativeConn first(tcp());
  first.login(alice.token);
  NativeConn second(tcp());
  second.login(alice.token);
  EXPECT_EQ(first.expect(Body::kKicked).body_case(), Body::kKicked);
  first.expectClose();
  pb::Envelope ping;
  ping.mutable_ping()->set_nonce(1);
  second.send(ping);
  EXPECT_EQ(second.expect(Body::kPong).pong().nonce(), 1u);
}

TEST_F(NativeTest, PingsKeepAConnectionAliveAndSilenceClosesIt) {
  auto alice = registerAndLogin(http(), unique("hb"));
  NativeConn talker(tcp());
  talker.login(alice.token, 300, false, "phone");
  NativeConn silent(tcp());
  auto other = registerAndLogin(http(), unique("hb2"));
  silent.login(other.token, 300);
  // Over 1.5 s (five heart-beat periods) the talker pings every 100 ms; the silent one is
  // closed after two periods without a frame.
  const auto until = std::chrono::steady_clock::now() + 1500ms;
  std::uint64_t nonce = 0;
  while (std::chrono::steady_clock::now() < until) {
    pb::Envelope ping;
    ping.mutable_ping()->set_nonce(++nonce);
    talker.send(ping);
    ASSERT_EQ(talker.expect(Body::kPong).pong().nonce(), nonce);
    // Paces the pings: nothing else is coming on either connection.
    if (!silent.closed()) {
      silent.next(100ms);
    } else {
      EXPECT_FALSE(talker.next(100ms));
    }
  }
  EXPECT_TRUE(silent.closed()) << "a client silent for five periods is still connected";
  EXPECT_FALSE(talker.closed());
}

TEST_F(NativeTest, PresenceOfContacts) {
  auto alice = registerAndLogin(http(), unique("pa"));
  auto bob = registerAndLogin(http(), unique("pb"));
  {  // members of a group in common are contacts
    HttpClient c(http());
    c.setToken(alice.token);
    auto created = c.post("/api/v1/groups", json::object{{"name", "friends"}, {"members", json::array{json::value(bob.name)}}});
    ASSERT_EQ(created.status, 201) << created.body;
  }
  NativeConn a(tcp());
  a.login(alice.token, 0, true);
  NativeConn b(tcp());
  b.login(bob.token);
  auto p = a.expect(Body::kPresence).presence();
  EXPECT_EQ(p.username(), bob.name);
  EXPECT_TRUE(p.online());
}

// TLS on both listeners: the native port and HTTPS (login, then wss for STOMP).
class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    server_ = new PigeondProcess(dir_->path() + "/data", {"--tls-cert", kCert, "--tls-key", kKey});
    server_->start();
  }
  static void TearDownTestSuite() {
    // A clean exit on SIGTERM (and, in sanitizer builds, no leak report).
    EXPECT_EQ(server_->terminate(), 0) << server_->log();
    delete server_;
    delete dir_;
  }
  // POST over HTTPS, verifying the server's certificate.
  static json::value httpsPost(const std::string& target, const json::value& body, int* status) {
    asio::io_context io;
    auto ctx = clientTls();
    beast::ssl_stream<beast::tcp_stream> stream(io, *ctx);
    stream.set_verify_callback(asio::ssl::host_name_verification("127.0.0.1"));
    beast::get_lowest_layer(stream).connect({asio::ip::make_address("127.0.0.1"), server_->httpPort()});
    stream.handshake(asio::ssl::stream_base::client);
    beast::http::request<beast::http::string_body> req{beast::http::verb::post, target, 11};
    req.set(beast::http::field::host, "127.0.0.1");
    req.set(beast::http::field::content_type, "application/json");
    req.body() = json::serialize(body);
    req.prepare_payload();
    beast::http::write(stream, req);
    beast::flat_buffer buffer;
    beast::http::response<beast::http::string_body> res;
    beast::http::read(stream, buffer, res);
    *status = res.result_int();
    return json::parse(res.body());
  }
  static Account account(const std::string& name) {
    int status = 0;
    httpsPost("/api/v1/users", json::object{{"username", name}, {"password", "password123"}}, &status);
    EXPECT_EQ(status, 201);
    Account a;
    a.name = name;
    a.login = httpsPost("/api/v1/sessions",
                        json::object{{"username", name}, {"password", "password123"}, {"device", "d"}}, &status);
    EXPECT_EQ(status, 200);
    a.token = std::string(a.login.at("token").as_string());
    return a;
  }

  static TempDir* dir_;
  static PigeondProcess* server_;
};
TempDir* TlsTest::dir_ = nullptr;
PigeondProcess* TlsTest::server_ = nullptr;

TEST_F(TlsTest, NativeOverTlsAndStompOverWssChat) {
  auto alice = account(unique("tls-a"));
  auto bob = account(unique("tls-b"));
  const auto port = std::to_string(server_->tcpPort());
  EXPECT_EQ(std::string(alice.login.at("gateway").at("tcp").as_string()), "tls://127.0.0.1:" + port);
  EXPECT_EQ(std::string(alice.login.at("gateway").at("ws").as_string()),
            "wss://127.0.0.1:" + std::to_string(server_->httpPort()) + "/ws");

  NativeConn a(server_->tcpPort(), clientTls());
  a.login(alice.token);
  a.sync();
  asio::io_context io;
  auto ctx = clientTls();
  StompConn<asio::ssl::stream<tcp::socket>> b(server_->httpPort(), bob.token, io, *ctx);
  b.subscribe();
  a.sendTo("t1", bob.name, std::string(20000, 'L'));  // spans TLS records
  a.expect(Body::kSendAck);
  auto m = b.frame();
  ASSERT_EQ(m.command, "MESSAGE");
  EXPECT_EQ(m.body, std::string(20000, 'L'));
  std::string send;
  protocol::appendFrame(send, "SEND", {{"destination", "/app/p2p/" + alice.name}, {"receipt", "r"}}, "over wss");
  b.write(send);
  EXPECT_EQ(b.frame().command, "RECEIPT");
  a.expect(Body::kDeliver);  // the echo of t1
  EXPECT_EQ(a.expect(Body::kDeliver).deliver().body(), "over wss");
}

// Reads and writes overlap on one TLS stream: a window of sends to oneself keeps the server
// reading Sends while it writes SendAcks and Delivers. Everything arrives, in order.
TEST_F(TlsTest, FullDuplexTrafficOverTlsLosesNothing) {
  auto alice = account(unique("tls-d"));
  NativeConn a(server_->tcpPort(), clientTls());
  a.login(alice.token);
  a.sync(0, pb::ACK_AUTO);
  constexpr int kTotal = 200, kWindow = 16;
  const std::string body(3000, 'd');
  int sent = 0, acked = 0;
  std::uint64_t last_seq = 0;
  std::vector<std::string> delivered;
  while (acked < kTotal || int(delivered.size()) < kTotal) {
    while (sent < kTotal && sent - acked < kWindow) {
      a.sendTo("fd" + std::to_string(sent), alice.name, body + std::to_string(sent));
      ++sent;
    }
    auto e = a.next();
    ASSERT_TRUE(e) << "stalled after " << acked << " acks and " << delivered.size() << " delivers";
    if (e->has_send_ack()) {
      EXPECT_EQ(e->send_ack().client_msg_id(), "fd" + std::to_string(acked));
      ++acked;
    } else {
      ASSERT_TRUE(e->has_deliver()) << "frame " << int(e->body_case());
      EXPECT_EQ(e->deliver().seq(), last_seq + 1);
      last_seq = e->deliver().seq();
      delivered.push_back(e->deliver().body());
    }
  }
  for (int i = 0; i < kTotal; ++i) EXPECT_EQ(delivered[i], body + std::to_string(i));
}

// docs/protocol.md: a client that does not finish the TLS handshake within 10 s is dropped, on
// both listeners (a silent one and one that stops half way through its ClientHello).
TEST_F(TlsTest, AnUnfinishedHandshakeIsDroppedAfterTenSeconds) {
  asio::io_context io;
  std::vector<tcp::socket> peers;
  for (std::uint16_t port : {server_->tcpPort(), server_->httpPort()}) {
    for (bool partial : {false, true}) {
      tcp::socket& s = peers.emplace_back(io);
      s.connect({asio::ip::make_address("127.0.0.1"), port});
      if (partial) asio::write(s, asio::buffer(std::string("\x16\x03\x01\x02\x00\x01", 6)));
    }
  }
  const auto start = std::chrono::steady_clock::now();
  for (auto& s : peers) {
    timeval tv{15, 0};
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char byte;
    boost::system::error_code ec;
    const std::size_t n = s.read_some(asio::buffer(&byte, 1), ec);
    EXPECT_EQ(n, 0u);
    EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();
  }
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, 9s);
  EXPECT_LT(waited, 14s);
  auto a = account(unique("tls-e"));  // and the server serves TLS clients meanwhile
  NativeConn c(server_->tcpPort(), clientTls());
  EXPECT_EQ(c.login(a.token).username(), a.name);
}

TEST_F(TlsTest, PlainClientsOnTlsPortsGetNowhereAndTheServerGoesOn) {
  {
    NativeConn plain(server_->tcpPort());
    pb::Envelope e;
    e.mutable_login()->set_token("x");
    plain.send(e);  // not a TLS ClientHello: the handshake fails and the server closes
    EXPECT_FALSE(plain.next(5s));
    EXPECT_TRUE(plain.closed());
  }
  HttpClient http(server_->httpPort());
  EXPECT_EQ(http.get("/healthz").status, 0);  // plain HTTP to the HTTPS port gets no answer
  auto a = account(unique("tls-c"));  // and TLS clients are still served
  NativeConn c(server_->tcpPort(), clientTls());
  EXPECT_EQ(c.login(a.token).username(), a.name);
}

// A clean shutdown stores what was acknowledged: acknowledgements without a receipt wait up to
// --cursor-delay-ms to be stored in one write, and SIGTERM must not drop them.
TEST(NativeShutdownTest, AnAckReadBeforeSigtermIsStored) {
  TempDir dir;
  PigeondProcess server(dir.path() + "/data", {"--cursor-delay-ms", "10000"});
  server.start();
  auto alice = registerAndLogin(server.httpPort(), unique("sd-a"));
  auto bob = registerAndLogin(server.httpPort(), unique("sd-b"));
  {
    NativeConn a(server.tcpPort());
    a.login(alice.token);
    for (int i = 0; i < 3; ++i) {
      a.sendTo("m" + std::to_string(i), bob.name, "msg " + std::to_string(i));
      a.expect(Body::kSendAck);
    }
  }
  NativeConn b(server.tcpPort());
  b.login(bob.token);
  b.sync();
  std::uint64_t last = 0;
  for (int i = 0; i < 3; ++i) last = b.expect(Body::kDeliver).deliver().seq();
  b.ack(last);
  pb::Envelope ping;  // answered after the Ack is handled: frames are handled in order
  ping.mutable_ping()->set_nonce(9);
  b.send(ping);
  EXPECT_EQ(b.expect(Body::kPong).pong().nonce(), 9u);
  EXPECT_EQ(server.terminate(), 0) << server.log();

  server.start();
  NativeConn again(server.tcpPort());
  again.login(bob.token);
  EXPECT_EQ(again.sync().from_seq(), last);  // the cursor moved before the shutdown
  EXPECT_FALSE(again.next(300ms));           // nothing acknowledged comes again
  EXPECT_EQ(server.terminate(), 0) << server.log();
}

}  // namespace
}  // namespace pigeon::test
