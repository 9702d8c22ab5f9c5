// pigeon-bench's lean client connection: the native protocol or STOMP over WebSocket straight
// on Asio and Pigeon's own codecs (src/protocol), without the SDK's retries, reconnects and
// per-message bookkeeping, so that one process can drive tens of thousands of connections and
// hundreds of thousands of messages a second. Any failure ends the connection and is reported:
// the load generator counts it rather than hiding it.
//
// Threads: single-threaded; every Conn of a process lives on one io_context.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/native.h"
#include "protocol/stomp.h"
#include "protocol/websocket.h"

namespace pigeon::bench {

enum class Proto : std::uint8_t { Tcp, Ws };

class Conn;

class ConnEvents {
 public:
  virtual ~ConnEvents() = default;
  virtual void onReady(Conn& c) = 0;  // logged in and subscribed
  // An inbox message, in seq order (the Conn checks the seq is the next one).
  virtual void onDeliver(Conn& c, std::uint64_t seq, std::string_view body) = 0;
  virtual void onSendAck(Conn& c, std::string_view client_msg_id) = 0;
  virtual void onSendError(Conn& c, std::string_view client_msg_id, std::string_view error) = 0;
  virtual void onClosed(Conn& c, std::string_view why) = 0;
};

struct ConnTarget {
  Proto proto = Proto::Tcp;
  boost::asio::ip::tcp::endpoint server;  // the native port, or the HTTP port for WebSocket
  boost::asio::ip::address source;        // local address to connect from
};

class Conn : public std::enable_shared_from_this<Conn> {
 public:
  // `scratch` is the process's shared read buffer (one io_context thread).
  Conn(boost::asio::io_context& io, ConnTarget target, std::string token, ConnEvents& events,
       std::vector<char>& scratch, std::uint32_t index);

  // Connects, logs in and subscribes (since: 0 = from the stored cursor, ack mode client).
  void start();
  // Queues a message (client_msg_id must be unique per sender), to a user or (user empty) a group.
  void send(std::string_view client_msg_id, std::string_view to_user, std::uint64_t to_group,
            std::string_view body);
  void close();

  std::uint32_t index() const { return index_; }
  bool ready() const { return ready_; }
  std::uint64_t lastSeq() const { return last_seq_; }
  // Bytes the kernel would not take yet (queued in this process).
  std::size_t queuedBytes() const { return out_.size() + writing_.size(); }

 private:
  void onConnected();
  void armRead();
  void onReadable();
  void consume(char* data, std::size_t n);
  void handleNative(protocol::pb::Envelope& e);
  void handleStomp(protocol::StompFrame& f);
  void deliver(std::uint64_t seq, std::string_view body);
  void ackIfDue();
  void write(std::string_view bytes);
  void writeFrame(std::string_view stomp_frame);  // STOMP inside a masked WebSocket frame
  void flush();
  void fail(std::string why);

  struct WsSink;

  boost::asio::ip::tcp::socket socket_;
  ConnTarget target_;
  std::string token_;
  ConnEvents& events_;
  std::vector<char>& scratch_;
  std::uint32_t index_;
  bool ready_ = false;
  bool closed_ = false;
  bool reading_ = false;
  bool upgraded_ = false;  // WebSocket: the 101 has arrived
  std::string http_;       // WebSocket: the 101 response being read
  std::unique_ptr<protocol::NativeParser> native_;
  std::unique_ptr<protocol::WsParser> ws_;
  std::unique_ptr<protocol::StompParser> stomp_;
  std::string out_, writing_;
  std::uint64_t last_seq_ = 0, acked_ = 0;
  std::uint32_t mask_seed_;
};

}  // namespace pigeon::bench
