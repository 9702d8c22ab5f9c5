#include "conn.h"

#include <boost/asio/write.hpp>
#include <charconv>

namespace pigeon::bench {
namespace asio = boost::asio;
namespace pb = protocol::pb;
using boost::system::error_code;

struct Conn::WsSink : protocol::WsHandler {
  Conn& c;
  explicit WsSink(Conn& conn) : c(conn) {}
  void onData(std::string_view payload) override { c.stomp_->feed(payload); }
  void onPing(std::string_view) override {}
  void onClose(std::uint16_t code, std::string_view) override {
    c.fail("server closed the WebSocket (" + std::to_string(code) + ")");
  }
};

Conn::Conn(asio::io_context& io, ConnTarget target, std::string token, ConnEvents& events,
           std::vector<char>& scratch, std::uint32_t index)
    : socket_(io), target_(target), token_(std::move(token)), events_(events), scratch_(scratch),
      index_(index), mask_seed_(0x9E3779B9u * (index + 1)) {}

void Conn::start() {
  error_code ec;
  socket_.open(target_.server.protocol(), ec);
  if (!ec && !target_.source.is_unspecified()) socket_.bind({target_.source, 0}, ec);
  if (ec) return fail("socket: " + ec.message());
  socket_.async_connect(target_.server, [self = shared_from_this()](const error_code& cec) {
    if (cec) return self->fail("connect: " + cec.message());
    self->onConnected();
  });
}

void Conn::onConnected() {
  error_code ec;
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  socket_.non_blocking(true, ec);
  if (target_.proto == Proto::Tcp) {
    native_ = std::make_unique<protocol::NativeParser>(1 << 20);
    pb::Envelope login;
    login.mutable_login()->set_token(token_);
    pb::Envelope sync;
    sync.mutable_sync()->set_ack_mode(pb::ACK_CLIENT);
    std::string wire;
    protocol::appendNative(wire, login);
    protocol::appendNative(wire, sync);  // pipelined: the server reads it after the login
    write(wire);
  } else {
    ws_ = std::make_unique<protocol::WsParser>(0, protocol::WsRole::Client);
    stomp_ = std::make_unique<protocol::StompParser>(protocol::StompLimits{1 << 20, 64});
    write("GET /ws HTTP/1.1\r\nHost: pigeon\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
          "Sec-WebSocket-Protocol: v12.stomp\r\n\r\n");
    std::string f;
    protocol::appendFrame(f, "CONNECT", {{"accept-version", "1.2"}, {"heart-beat", "0,0"}, {"passcode", token_}});
    writeFrame(f);
    f.clear();
    protocol::appendFrame(f, "SUBSCRIBE", {{"id", "0"}, {"destination", "/user/queue/messages"},
                                           {"ack", "client"}, {"receipt", "sub"}});
    writeFrame(f);
  }
  std::string().swap(token_);
  armRead();
}

void Conn::armRead() {
  if (reading_ || closed_) return;
  reading_ = true;
  socket_.async_wait(asio::ip::tcp::socket::wait_read, [self = shared_from_this()](const error_code& ec) {
    self->reading_ = false;
    if (self->closed_) return;
    if (ec) return self->fail("wait: " + ec.message());
    self->onReadable();
  });
}

void Conn::onReadable() {
  for (int round = 0; round < 8 && !closed_; ++round) {
    error_code ec;
    const std::size_t n = socket_.read_some(asio::buffer(scratch_), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) break;
    if (ec || n == 0) return fail(ec ? "read: " + ec.message() : "server closed the connection");
    consume(scratch_.data(), n);
    if (n < scratch_.size()) break;
  }
  ackIfDue();
  armRead();
}

void Conn::consume(char* data, std::size_t n) {
  if (native_) {
    native_->feed(std::string_view(data, n));
    for (;;) {
      const auto status = native_->next();
      if (status == protocol::NativeParser::Status::NeedMore) break;
      if (status == protocol::NativeParser::Status::Error) return fail("bad frame: " + native_->error().message);
      handleNative(native_->envelope());
      if (closed_) return;
    }
    return;
  }
  if (!upgraded_) {
    // The 101 response, then WebSocket frames (possibly in the same read).
    http_.append(data, n);
    const auto end = http_.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (http_.size() > 8192) fail("no HTTP upgrade response");
      return;
    }
    if (!http_.starts_with("HTTP/1.1 101")) return fail("upgrade refused: " + http_.substr(0, http_.find("\r\n")));
    upgraded_ = true;
    std::string rest = http_.substr(end + 4);
    std::string().swap(http_);
    if (rest.empty()) return;
    return consume(rest.data(), rest.size());
  }
  WsSink sink(*this);
  if (!ws_->feed(data, n, sink)) return fail("bad WebSocket frame: " + ws_->error());
  for (;;) {
    const auto status = stomp_->next();
    if (status == protocol::StompParser::Status::NeedMore) break;
    if (status == protocol::StompParser::Status::Heartbeat) continue;
    if (status == protocol::StompParser::Status::Error) return fail("bad STOMP frame");
    handleStomp(stomp_->frame());
    if (closed_) return;
  }
}

void Conn::handleNative(pb::Envelope& e) {
  switch (e.body_case()) {
    case pb::Envelope::kLoginResult: return;
    case pb::Envelope::kSyncStarted:
      last_seq_ = acked_ = e.sync_started().from_seq();
      ready_ = true;
      return events_.onReady(*this);
    case pb::Envelope::kDeliver: return deliver(e.deliver().seq(), e.deliver().body());
    case pb::Envelope::kSendAck: return events_.onSendAck(*this, e.send_ack().client_msg_id());
    case pb::Envelope::kError:
      if (!e.error().fatal() && !e.error().ref().empty()) {
        return events_.onSendError(*this, e.error().ref(), e.error().code());
      }
      return fail("server error " + e.error().code() + ": " + e.error().text());
    case pb::Envelope::kKicked: return fail("kicked");
    default: return;
  }
}

void Conn::handleStomp(protocol::StompFrame& f) {
  if (f.command == "MESSAGE") {
    const std::string* seq = f.header("seq");
    std::uint64_t v = 0;
    if (!seq || std::from_chars(seq->data(), seq->data() + seq->size(), v).ec != std::errc()) {
      return fail("MESSAGE without seq");
    }
    return deliver(v, f.body);
  }
  if (f.command == "RECEIPT") {
    const std::string* id = f.header("receipt-id");
    if (id && *id == "sub") {
      ready_ = true;
      return events_.onReady(*this);
    }
    if (id) events_.onSendAck(*this, *id);
    return;
  }
  if (f.command == "CONNECTED") return;
  if (f.command == "ERROR") {
    const std::string* m = f.header("message");
    return fail("ERROR " + (m ? *m : std::string()) + ": " + f.body);
  }
}

void Conn::deliver(std::uint64_t seq, std::string_view body) {
  if (last_seq_ != 0 && seq != last_seq_ + 1) {
    // The server guarantees gapless delivery on a connection: anything else is a bug.
    return fail("seq " + std::to_string(seq) + " after " + std::to_string(last_seq_));
  }
  last_seq_ = seq;
  events_.onDeliver(*this, seq, body);
}

void Conn::ackIfDue() {
  // One cumulative ack per read batch: what the batch delivered is processed.
  if (closed_ || last_seq_ <= acked_) return;
  acked_ = last_seq_;
  if (native_) {
    pb::Envelope e;
    e.mutable_ack()->set_seq(acked_);
    e.mutable_ack()->set_cumulative(true);
    std::string wire;
    protocol::appendNative(wire, e);
    write(wire);
  } else {
    std::string f;
    protocol::appendFrame(f, "ACK", {{"id", std::to_string(acked_)}});
    writeFrame(f);
  }
}

void Conn::send(std::string_view client_msg_id, std::string_view to_user, std::uint64_t to_group,
                std::string_view body) {
  if (closed_) return;
  if (native_) {
    pb::Envelope e;
    auto* s = e.mutable_send();
    s->set_client_msg_id(std::string(client_msg_id));
    if (!to_user.empty()) {
      s->set_user(std::string(to_user));
    } else {
      s->set_group(to_group);
    }
    s->set_body(std::string(body));
    std::string wire;
    protocol::appendNative(wire, e);
    write(wire);
  } else {
    const std::string dest = !to_user.empty() ? "/app/p2p/" + std::string(to_user)
                                              : "/app/group/" + std::to_string(to_group);
    std::string f;
    protocol::appendFrame(f, "SEND", {{"destination", dest}, {"client-msg-id", client_msg_id},
                                      {"receipt", client_msg_id}}, body);
    writeFrame(f);
  }
}

void Conn::writeFrame(std::string_view stomp_frame) {
  std::string wire;
  mask_seed_ = mask_seed_ * 1664525u + 1013904223u;
  protocol::appendMaskedFrame(wire, protocol::WsOpcode::Text, stomp_frame, mask_seed_);
  write(wire);
}

void Conn::write(std::string_view bytes) {
  out_.append(bytes);
  flush();
}

void Conn::flush() {
  if (closed_ || !writing_.empty() || out_.empty()) return;
  writing_.swap(out_);
  asio::async_write(socket_, asio::buffer(writing_), [self = shared_from_this()](const error_code& ec, std::size_t) {
    self->writing_.clear();
    if (self->closed_) return;
    if (ec) return self->fail("write: " + ec.message());
    if (self->out_.empty()) {
      std::string().swap(self->writing_);
      std::string().swap(self->out_);
    }
    self->flush();
  });
}

void Conn::close() {
  if (closed_) return;
  closed_ = true;
  error_code ignored;
  socket_.close(ignored);
}

void Conn::fail(std::string why) {
  if (closed_) return;
  close();
  events_.onClosed(*this, why);
}

}  // namespace pigeon::bench
