#include "gateway/websocket_handshake.h"

#include <openssl/evp.h>
#include <sodium.h>

#include <algorithm>
#include <cctype>

namespace pigeon::gateway {
namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

bool headerListHas(std::string_view list, std::string_view token) {
  const std::string l = lower(list);
  const std::string want = lower(token);
  std::size_t start = 0;
  while (start <= l.size()) {
    std::size_t end = l.find(',', start);
    if (end == std::string::npos) end = l.size();
    std::string_view item = std::string_view(l).substr(start, end - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item == want) return true;
    start = end + 1;
  }
  return false;
}

std::string webSocketAccept(std::string_view key) {
  std::string input(key);
  input += kGuid;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(input.data(), input.size(), digest, &len, EVP_sha1(), nullptr);
  char out[sodium_base64_ENCODED_LEN(20, sodium_base64_VARIANT_ORIGINAL)];
  sodium_bin2base64(out, sizeof out, digest, len, sodium_base64_VARIANT_ORIGINAL);
  return out;
}

Result<std::string> webSocketHandshakeResponse(const HandshakeInput& in) {
  if (lower(in.upgrade) != "websocket") return fail(Errc::BadRequest, "expected 'Upgrade: websocket'");
  if (!headerListHas(in.connection, "upgrade")) {
    return fail(Errc::BadRequest, "expected 'Connection: Upgrade'");
  }
  if (in.ws_version != "13") return fail(Errc::BadRequest, "Sec-WebSocket-Version must be 13");
  unsigned char raw[32];
  std::size_t raw_len = 0;
  if (in.ws_key.empty() ||
      sodium_base642bin(raw, sizeof raw, in.ws_key.data(), in.ws_key.size(), nullptr, &raw_len,
                        nullptr, sodium_base64_VARIANT_ORIGINAL) != 0 ||
      raw_len != 16) {
    return fail(Errc::BadRequest, "Sec-WebSocket-Key must be 16 bytes in base64");
  }
  std::string response =
      "HTTP/1.1 101 Switching Protocols\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Server: pigeond\r\n"
      "Sec-WebSocket-Accept: " +
      webSocketAccept(in.ws_key) + "\r\n";
  for (std::string_view proto : {"v12.stomp", "v11.stomp", "v10.stomp"}) {
    if (headerListHas(in.ws_protocol, proto)) {
      response += "Sec-WebSocket-Protocol: " + std::string(proto) + "\r\n";
      break;
    }
  }
  response += "\r\n";
  return response;
}

std::string httpErrorResponse(int status, std::string_view reason, std::string_view message) {
  std::string body = "{\"error\":{\"code\":\"";
  body += status == 503 ? "unavailable" : "bad_request";
  body += "\",\"message\":\"";
  for (char c : message) {
    if (c == '"' || c == '\\') body += '\\';
    body += c;
  }
  body += "\"}}";
  return "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
         "\r\nContent-Type: application/json\r\nSec-WebSocket-Version: 13\r\nConnection: close\r\n"
         "Content-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace pigeon::gateway
