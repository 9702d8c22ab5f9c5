#include "support/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <stdexcept>

namespace pigeon::test {
namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

bool sendAll(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += std::size_t(n);
  }
  return true;
}

// Reads one response. The server always sends Content-Length (or no body).
HttpResponse readResponse(int fd) {
  HttpResponse res;
  std::string buf;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::size_t header_end = std::string::npos;
  std::size_t body_len = 0;
  for (;;) {
    if (header_end == std::string::npos) {
      header_end = buf.find("\r\n\r\n");
      if (header_end != std::string::npos) {
        const std::string head = buf.substr(0, header_end);
        std::size_t pos = head.find("\r\n");
        const std::string status_line = head.substr(0, pos);
        res.status = std::stoi(status_line.substr(9, 3));
        while (pos != std::string::npos) {
          const std::size_t next = head.find("\r\n", pos + 2);
          const std::string line =
              head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
          const auto colon = line.find(':');
          if (colon != std::string::npos) {
            std::string name = line.substr(0, colon);
            for (auto& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
            std::string value = line.substr(colon + 1);
            while (!value.empty() && value.front() == ' ') value.erase(0, 1);
            res.headers[name] = value;
          }
          pos = next;
        }
        if (auto it = res.headers.find("content-length"); it != res.headers.end()) {
          body_len = std::stoul(it->second);
        }
      }
    }
    if (header_end != std::string::npos && buf.size() >= header_end + 4 + body_len) {
      res.body = buf.substr(header_end + 4, body_len);
      return res;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return HttpResponse{};
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, int(left.count())) <= 0) return HttpResponse{};
    char chunk[16384];
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return header_end == std::string::npos ? HttpResponse{} : res;
    buf.append(chunk, std::size_t(n));
  }
}

}  // namespace

boost::json::value HttpResponse::json() const {
  boost::system::error_code ec;
  auto v = boost::json::parse(body, ec);
  return ec ? boost::json::value(nullptr) : v;
}

std::string HttpResponse::errorCode() const {
  auto v = json();
  if (!v.is_object()) return "";
  const auto* e = v.as_object().if_contains("error");
  if (!e || !e->is_object()) return "";
  const auto* c = e->as_object().if_contains("code");
  return c && c->is_string() ? std::string(c->as_string()) : "";
}

HttpResponse HttpClient::sendRaw(const std::string& raw) const {
  Fd fd(::socket(AF_INET, SOCK_STREAM, 0));
  if (fd.get() < 0) throw std::runtime_error("socket() failed");
  sockaddr_in src{};
  src.sin_family = AF_INET;
  ::inet_pton(AF_INET, source_ip_.c_str(), &src.sin_addr);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
    throw std::runtime_error("bind to " + source_ip_ + " failed");
  }
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(port_);
  ::inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0)
    return HttpResponse{};
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  // The server may answer (413) and stop reading before the whole request is sent: read its
  // answer even if sending failed.
  (void)sendAll(fd.get(), raw);
  return readResponse(fd.get());
}

HttpResponse HttpClient::request(const std::string& method, const std::string& target,
                                 const std::string& body, const std::string& content_type) const {
  std::string raw = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (!token_.empty()) raw += "Authorization: Bearer " + token_ + "\r\n";
  if (!content_type.empty()) raw += "Content-Type: " + content_type + "\r\n";
  if (!body.empty() || method == "POST")
    raw += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  raw += "\r\n" + body;
  return sendRaw(raw);
}

HttpResponse HttpClient::get(const std::string& target) const {
  return request("GET", target, "");
}

HttpResponse HttpClient::del(const std::string& target) const {
  return request("DELETE", target, "");
}

HttpResponse HttpClient::post(const std::string& target, const boost::json::value& body) const {
  return request("POST", target, boost::json::serialize(body), "application/json");
}

HttpResponse HttpClient::postRaw(const std::string& target, const std::string& body,
                                 const std::string& content_type) const {
  return request("POST", target, body, content_type);
}

}  // namespace pigeon::test
