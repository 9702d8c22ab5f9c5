// The small pure helpers of client.h: URLs, conversation ids, names of states and reasons.
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <charconv>

#include "client/client.h"

namespace pigeon::client {
namespace {

bool parseU64(std::string_view s, std::uint64_t& out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

Result<Endpoint> parseEndpoint(std::string_view url) {
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed) return fail(Errc::BadRequest, "not a URL: '" + std::string(url) + "'");
  const boost::urls::url_view& u = *parsed;
  Endpoint e;
  e.scheme = std::string(u.scheme());
  for (char& c : e.scheme) c = char(std::tolower(static_cast<unsigned char>(c)));
  std::uint16_t default_port = 0;
  if (e.scheme == "http" || e.scheme == "ws") {
    default_port = 80;
  } else if (e.scheme == "https" || e.scheme == "wss") {
    default_port = 443;
    e.tls = true;
  } else if (e.scheme == "tls") {
    e.tls = true;
  } else if (e.scheme != "tcp") {
    return fail(Errc::BadRequest,
                "unsupported URL scheme '" + e.scheme + "' in '" + std::string(url) + "'");
  }
  if (!u.has_authority() || u.host_address().empty()) {
    return fail(Errc::BadRequest, "no host in '" + std::string(url) + "'");
  }
  e.host = std::string(u.host_address());
  if (u.has_port()) {
    std::uint64_t port = 0;
    if (!parseU64(u.port(), port) || port == 0 || port > 65535) {
      return fail(Errc::BadRequest, "bad port in '" + std::string(url) + "'");
    }
    e.port = std::uint16_t(port);
  } else if (default_port != 0) {
    e.port = default_port;
  } else {
    return fail(Errc::BadRequest, "'" + std::string(url) + "' needs a port");
  }
  e.target = std::string(u.encoded_path());
  if (u.has_query()) e.target += "?" + std::string(u.encoded_query());
  if (e.target.empty()) e.target = "/";
  return e;
}

Result<ConversationRef> parseConversation(std::string_view conversation) {
  ConversationRef ref;
  if (conversation.starts_with("g:")) {
    if (!parseU64(conversation.substr(2), ref.group) || ref.group == 0) {
      return fail(Errc::BadRequest, "bad conversation id '" + std::string(conversation) + "'");
    }
    return ref;
  }
  if (conversation.starts_with("p:")) {
    const std::string_view rest = conversation.substr(2);
    const auto colon = rest.find(':');
    if (colon != std::string_view::npos && parseU64(rest.substr(0, colon), ref.user_lo) &&
        parseU64(rest.substr(colon + 1), ref.user_hi) && ref.user_lo != 0 &&
        ref.user_lo <= ref.user_hi) {
      return ref;
    }
  }
  return fail(Errc::BadRequest, "bad conversation id '" + std::string(conversation) + "'");
}

std::string_view stateName(State state) noexcept {
  switch (state) {
    case State::Idle:
      return "idle";
    case State::LoggingIn:
      return "logging in";
    case State::Connecting:
      return "connecting";
    case State::Online:
      return "online";
    case State::Waiting:
      return "waiting";
    case State::Stopping:
      return "stopping";
    case State::Stopped:
      return "stopped";
  }
  return "?";
}

std::string_view reasonName(Reason reason) noexcept {
  switch (reason) {
    case Reason::None:
      return "none";
    case Reason::HeartbeatTimeout:
      return "heartbeat timeout";
    case Reason::ConnectionLost:
      return "connection lost";
    case Reason::ConnectFailed:
      return "connect failed";
    case Reason::ServerError:
      return "server error";
    case Reason::SendRefused:
      return "send refused";
    case Reason::SequenceGap:
      return "sequence gap";
    case Reason::Kicked:
      return "kicked";
    case Reason::Unauthenticated:
      return "unauthenticated";
    case Reason::StoppedByApp:
      return "stopped";
    case Reason::DroppedByApp:
      return "dropped";
  }
  return "?";
}

}  // namespace pigeon::client
