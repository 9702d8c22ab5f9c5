// The two wire protocols the client speaks, behind one interface: what to write for each step
// of the conversation, and the server's frames decoded into WireEvents. NativeWire speaks
// varint32 + pigeon.v1.Envelope (proto/pigeon.proto), StompWire STOMP 1.2 (docs/protocol.md);
// both reuse the parsers and encoders of src/protocol. Pure code: no I/O.
//
// Threads: one connection owns a Wire; not synchronised.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "client/client.h"

namespace pigeon::client {

struct Hello {
  std::string token;
  std::string device;                      // may be empty (the token's device)
  std::string host;                        // STOMP's host header
  std::chrono::milliseconds heartbeat{0};  // how often we beat, and want the server to
  bool presence = false;
};

struct WireEvent {
  enum class Kind : std::uint8_t {
    Connected,    // LoginResult / CONNECTED: user_id, username, beat_every, expect_every
    AuthFailed,   // the token was refused (error); the server closes
    SyncStarted,  // the server fixed where the sync starts: after `seq`, or after the device's
                  // stored cursor when from_cursor (native: SyncStarted; STOMP: the RECEIPT of
                  // the SUBSCRIBE, which names no seq)
    Message,      // message
    SendOk,       // ref (the client_msg_id), receipt
    SendRefused,  // ref, error, transient (retry later), fatal (the server closes after it)
    Presence,     // presence
    Pong,         // liveness only
    PingRequest,  // the server pinged: answer with pong(nonce)
    Kicked,       // error.message: the reason; the server closes
    Fatal,        // error; the server closes (or its bytes are not the protocol)
    Warning,      // error; not fatal and not about a send
    Goodbye,      // the answer to bye()
    Other,        // nothing to do (an unknown frame, a receipt nobody waits for)
  };
  Kind kind = Kind::Other;
  Message message;
  PresenceChange presence;
  std::string ref;
  SendReceipt receipt;
  Error error{Errc::Internal, ""};
  bool transient = false;
  bool fatal = false;
  bool from_cursor = false;  // SyncStarted: `seq` is unknown (STOMP, subscribed without since)
  std::uint64_t seq = 0;
  std::uint64_t nonce = 0;
  std::uint64_t user_id = 0;
  std::string username;
  std::chrono::milliseconds beat_every{0};    // Connected: write something at least this often
  std::chrono::milliseconds expect_every{0};  // Connected: the server writes at least this often
};

class Wire {
 public:
  virtual ~Wire() = default;

  // Encoders: append what to write to `out`.
  virtual void hello(std::string& out, const Hello& hello) = 0;
  // Start receiving after `since` (0: after the device's stored cursor), acks by the client.
  // The server's answer is a SyncStarted event.
  virtual void subscribe(std::string& out, std::uint64_t since, bool presence) = 0;
  virtual void send(std::string& out, const OutgoingMessage& message) = 0;
  virtual void ack(std::string& out, std::uint64_t seq) = 0;  // cumulative
  virtual void ping(std::string& out, std::uint64_t nonce) = 0;
  virtual void pong(std::string& out, std::uint64_t nonce) = 0;
  virtual void bye(std::string& out) = 0;

  // Decoder: bytes from the server, then next() until it returns false (needs more bytes).
  // A malformed stream yields one Fatal event, then nothing.
  virtual void feed(std::string_view bytes) = 0;
  virtual bool next(WireEvent& event) = 0;
};

std::unique_ptr<Wire> makeNativeWire(std::size_t max_frame_bytes);
std::unique_ptr<Wire> makeStompWire(std::size_t max_frame_bytes);

// Maps the error code names of the native protocol ("no_such_recipient", "forbidden", …) and
// the `message` header of a STOMP ERROR ("no such recipient", …) to Errc.
Errc errcOfNativeCode(std::string_view code);
Errc errcOfStompMessage(std::string_view message);

}  // namespace pigeon::client
