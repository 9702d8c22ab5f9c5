#include "protocol/stomp.h"

#include <charconv>

namespace pigeon::protocol {
namespace {

// STOMP is CONNECT by another name: neither it nor CONNECTED escapes its headers.
constexpr std::string_view kNoEscapeCommands[] = {"CONNECT", "STOMP", "CONNECTED"};

bool escapesHeaders(std::string_view command) {
  for (auto c : kNoEscapeCommands) {
    if (command == c) return false;
  }
  return true;
}

// Strips the CR of a CR LF line ending.
std::string_view chompCr(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

}  // namespace

const std::string* StompFrame::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return &v;
  }
  return nullptr;
}

void StompParser::feed(std::string_view bytes) {
  if (failed_) return;
  buf_.append(bytes);
}

StompParser::Status StompParser::failWith(Errc code, std::string message) {
  failed_ = true;
  error_ = Error{code, std::move(message)};
  buf_.clear();
  buf_.shrink_to_fit();
  pos_ = scanned_ = header_end_ = body_scanned_ = 0;
  return Status::Error;
}

void StompParser::compact() {
  if (pos_ == buf_.size()) {
    // Nothing pending: give the memory back so an idle connection holds no buffer.
    std::string().swap(buf_);
    pos_ = 0;
  } else if (pos_ > 4096 && pos_ * 2 > buf_.size()) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
}

StompParser::Status StompParser::next() {
  if (failed_) return Status::Error;

  // Heart-beats: EOLs before a frame.
  bool heartbeat = false;
  while (pos_ < buf_.size()) {
    if (buf_[pos_] == '\n') {
      ++pos_;
      heartbeat = true;
    } else if (buf_[pos_] == '\r') {
      if (pos_ + 1 >= buf_.size()) break;  // wait for the LF
      if (buf_[pos_ + 1] != '\n') return failWith(Errc::BadRequest, "CR not followed by LF");
      pos_ += 2;
      heartbeat = true;
    } else {
      break;
    }
  }
  if (heartbeat) {
    scanned_ = header_end_ = body_scanned_ = 0;
    compact();
    return Status::Heartbeat;
  }

  const std::string_view pending(buf_.data() + pos_, buf_.size() - pos_);
  if (pending.empty()) {
    compact();
    return Status::NeedMore;
  }

  // Find the blank line that ends the headers: "\n\n" or "\n\r\n".
  std::size_t header_end = header_end_;  // index of the body's first byte, 0 if unknown
  for (std::size_t i = scanned_ < 2 ? 0 : scanned_ - 2; header_end == 0 && i < pending.size(); ++i) {
    if (pending[i] != '\n') continue;
    if (i + 1 < pending.size() && pending[i + 1] == '\n') {
      header_end = i + 2;
    }
    if (i + 2 < pending.size() && pending[i + 1] == '\r' && pending[i + 2] == '\n') {
      header_end = i + 3;
    }
  }
  if (header_end == 0) {
    if (pending.size() > limits_.max_frame_bytes) {
      return failWith(Errc::TooLarge, "frame headers are over the limit of " +
                                          std::to_string(limits_.max_frame_bytes) + " bytes");
    }
    scanned_ = pending.size();
    return Status::NeedMore;
  }

  // Command and headers.
  StompFrame frame;
  std::string_view head = pending.substr(0, header_end);
  std::size_t line_start = 0;
  bool first = true;
  bool escaped = true;
  std::size_t content_length = std::string_view::npos;
  while (line_start < head.size()) {
    const std::size_t nl = head.find('\n', line_start);
    const std::string_view line = chompCr(head.substr(line_start, nl - line_start));
    line_start = nl + 1;
    if (line.empty()) break;  // the blank line
    if (line.find('\r') != std::string_view::npos) {
      return failWith(Errc::BadRequest, "CR inside a header line");
    }
    if (line.find('\0') != std::string_view::npos) {
      return failWith(Errc::BadRequest, "NUL inside a header line");
    }
    if (first) {
      first = false;
      for (char c : line) {
        if (c < 'A' || c > 'Z') return failWith(Errc::BadRequest, "malformed command");
      }
      frame.command = std::string(line);
      escaped = escapesHeaders(frame.command);
      continue;
    }
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return failWith(Errc::BadRequest, "malformed header line");
    }
    if (frame.headers.size() >= limits_.max_headers) {
      return failWith(Errc::TooLarge,
                      "more than " + std::to_string(limits_.max_headers) + " headers in a frame");
    }
    std::string name, value;
    if (escaped) {
      if (!unescapeHeader(line.substr(0, colon), name) ||
          !unescapeHeader(line.substr(colon + 1), value)) {
        return failWith(Errc::BadRequest, "undefined escape sequence in a header");
      }
    } else {
      name = std::string(line.substr(0, colon));
      value = std::string(line.substr(colon + 1));
    }
    if (name == "content-length" && content_length == std::string_view::npos) {
      std::size_t n = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || end != value.data() + value.size() || value.empty()) {
        return failWith(Errc::BadRequest, "content-length is not a non-negative integer");
      }
      content_length = n;
    }
    frame.headers.emplace_back(std::move(name), std::move(value));
  }
  if (frame.command.empty()) return failWith(Errc::BadRequest, "frame without a command");

  // Body.
  std::size_t body_len, frame_len;
  if (content_length != std::string_view::npos) {
    // The first test keeps the sum below from wrapping around.
    if (content_length > limits_.max_frame_bytes ||
        header_end + content_length + 1 > limits_.max_frame_bytes) {
      return failWith(Errc::TooLarge, "frame is over the limit of " +
                                          std::to_string(limits_.max_frame_bytes) + " bytes");
    }
    if (pending.size() < header_end + content_length + 1) {
      header_end_ = header_end;
      return Status::NeedMore;
    }
    if (pending[header_end + content_length] != '\0') {
      return failWith(Errc::BadRequest, "frame body is longer than its content-length");
    }
    body_len = content_length;
  } else {
    // Resume the search for the NUL where the last call stopped (body_scanned_).
    const std::size_t nul = pending.find('\0', std::max(header_end, body_scanned_));
    if (nul == std::string_view::npos) {
      if (pending.size() + 1 > limits_.max_frame_bytes) {
        return failWith(Errc::TooLarge, "frame is over the limit of " +
                                            std::to_string(limits_.max_frame_bytes) + " bytes");
      }
      header_end_ = header_end;
      body_scanned_ = pending.size();
      return Status::NeedMore;
    }
    body_len = nul - header_end;
    if (header_end + body_len + 1 > limits_.max_frame_bytes) {
      return failWith(Errc::TooLarge, "frame is over the limit of " +
                                          std::to_string(limits_.max_frame_bytes) + " bytes");
    }
  }
  frame_len = header_end + body_len + 1;
  frame.body = std::string(pending.substr(header_end, body_len));
  frame_ = std::move(frame);
  pos_ += frame_len;
  scanned_ = header_end_ = body_scanned_ = 0;
  compact();
  return Status::Frame;
}

void appendEscaped(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\r': out += "\\r"; break;
      case '\n': out += "\\n"; break;
      case ':': out += "\\c"; break;
      case '\\': out += "\\\\"; break;
      default: out += c;
    }
  }
}

bool unescapeHeader(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '\\') {
      out += in[i];
      continue;
    }
    if (++i == in.size()) return false;
    switch (in[i]) {
      case 'r': out += '\r'; break;
      case 'n': out += '\n'; break;
      case 'c': out += ':'; break;
      case '\\': out += '\\'; break;
      default: return false;
    }
  }
  return true;
}

void appendFrame(std::string& out, std::string_view command,
                 std::initializer_list<std::pair<std::string_view, std::string_view>> headers,
                 std::string_view body) {
  const bool escaped = escapesHeaders(command);
  out += command;
  out += '\n';
  for (const auto& [name, value] : headers) {
    if (escaped) {
      appendEscaped(out, name);
      out += ':';
      appendEscaped(out, value);
    } else {
      out += name;
      out += ':';
      out += value;
    }
    out += '\n';
  }
  if (!body.empty()) {
    out += "content-length:";
    out += std::to_string(body.size());
    out += '\n';
  }
  out += '\n';
  out += body;
  out += '\0';
}

}  // namespace pigeon::protocol
