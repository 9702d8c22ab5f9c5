// STOMP 1.2 frames: an incremental parser for the bytes a client sends and an encoder for the
// frames the server sends. Pure code: no I/O, no allocation while idle, fuzzed
// (fuzz/stomp_fuzz.cc).
//
// Wire format (STOMP 1.2): COMMAND EOL *(name ":" value EOL) EOL body NUL *(EOL), where EOL is
// LF or CR LF. Header names and values are escaped (\r \n \c \\) in every frame except
// CONNECT and CONNECTED. With content-length the body is exactly that many bytes (and may hold
// NULs); without it the body runs to the first NUL. EOLs between frames are heart-beats.
//
// Threads: a parser belongs to one connection; use it from one thread at a time.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/errc.h"

namespace pigeon::protocol {

struct StompFrame {
  std::string command;
  std::vector<std::pair<std::string, std::string>> headers;  // unescaped, in wire order
  std::string body;

  // The first header called `name` (STOMP 1.2: a repeated header's first value wins).
  const std::string* header(std::string_view name) const;
};

struct StompLimits {
  std::size_t max_frame_bytes = 64 * 1024;  // command + headers + body
  std::size_t max_headers = 64;
};

class StompParser {
 public:
  enum class Status {
    NeedMore,   // no complete frame yet: feed more bytes
    Frame,      // frame() holds a frame
    Heartbeat,  // only EOLs were consumed
    Error,      // error() says why; the connection must be closed (the parser stays failed)
  };

  explicit StompParser(StompLimits limits = {}) : limits_(limits) {}

  // Appends bytes received from the peer.
  void feed(std::string_view bytes);
  // Parses the next frame from what was fed. Call until it returns NeedMore or Error.
  Status next();

  const StompFrame& frame() const { return frame_; }
  StompFrame& frame() { return frame_; }
  const Error& error() const { return error_; }
  // Bytes fed and not yet consumed by a returned frame.
  std::size_t buffered() const { return buf_.size() - pos_; }

 private:
  Status failWith(Errc code, std::string message);
  void compact();

  StompLimits limits_;
  std::string buf_;
  std::size_t pos_ = 0;       // start of the unconsumed bytes in buf_
  std::size_t scanned_ = 0;     // bytes after pos_ already searched for the end of the headers
  std::size_t header_end_ = 0;  // once found: offset after pos_ where the body starts
  std::size_t body_scanned_ = 0;  // bytes after pos_ already searched for the body's NUL
  StompFrame frame_;
  Error error_{Errc::BadRequest, ""};
  bool failed_ = false;
};

// Escapes a header value (or name) for any frame other than CONNECT/CONNECTED.
void appendEscaped(std::string& out, std::string_view value);
// Unescapes; false on an undefined escape sequence (a fatal error per STOMP 1.2).
bool unescapeHeader(std::string_view in, std::string& out);

// Appends one whole frame to `out`. Header values are escaped unless `command` is CONNECTED.
// A content-length header is added when `body` is not empty.
void appendFrame(std::string& out, std::string_view command,
                 std::initializer_list<std::pair<std::string_view, std::string_view>> headers,
                 std::string_view body = {});

}  // namespace pigeon::protocol
