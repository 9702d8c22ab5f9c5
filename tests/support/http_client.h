// A small blocking HTTP/1.1 client for tests, over plain sockets so that tests can also send
// malformed, truncated or oversized requests, and choose the source address.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace pigeon::test {

struct HttpResponse {
  int status = 0;                              // 0: no response (connection closed or timed out)
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  boost::json::value json() const;  // parses body; null if it is not JSON
  // The "error.code" of an error body, or "".
  std::string errorCode() const;
};

class HttpClient {
 public:
  explicit HttpClient(std::uint16_t port, std::string source_ip = "127.0.0.1")
      : port_(port), source_ip_(std::move(source_ip)) {}

  void setToken(std::string token) { token_ = std::move(token); }

  HttpResponse get(const std::string& target) const;
  HttpResponse post(const std::string& target, const boost::json::value& body) const;
  HttpResponse postRaw(const std::string& target, const std::string& body,
                       const std::string& content_type = "application/json") const;
  HttpResponse del(const std::string& target) const;
  HttpResponse request(const std::string& method, const std::string& target,
                       const std::string& body, const std::string& content_type = "") const;
  // Sends `raw` bytes as they are, then reads one response (5 s deadline).
  HttpResponse sendRaw(const std::string& raw) const;

 private:
  std::uint16_t port_;
  std::string source_ip_;
  std::string token_;
};

}  // namespace pigeon::test
