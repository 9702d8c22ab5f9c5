// Transport-neutral HTTP request and response: the handlers see these, not Beast's types, so
// Beast stays inside http_server.cc (it is slow to compile).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pigeon::api {

struct Request {
  std::string method;  // "GET", "POST", …
  std::string target;  // origin-form, e.g. "/api/v1/sync?after=3"
  std::string authorization;
  std::string body;
  std::string remote_ip;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // For HEAD: the length the body would have (the body itself is empty).
  std::optional<std::size_t> head_length;
};

}  // namespace pigeon::api
