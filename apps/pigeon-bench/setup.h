// pigeon-bench's set-up over the HTTP API: users, logins and groups, on plain blocking
// keep-alive connections run from several threads (set-up is not what is measured).
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace pigeon::bench {

struct HttpServer {
  std::string host;
  std::uint16_t port = 0;
};

// Parses "http://host:port"; false if it is not one.
bool parseHttpUrl(const std::string& url, HttpServer& out);

class SetupClient {
 public:
  explicit SetupClient(HttpServer server);
  ~SetupClient();
  // Returns the parsed JSON body (null when empty) and sets `status`; throws on a network error.
  boost::json::value request(const std::string& method, const std::string& target,
                             const boost::json::value& body, const std::string& token, int& status);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Runs fn(client, i) for every i in [0, n) on `threads` threads, each with its own keep-alive
// client. Throws the first error.
void parallel(const HttpServer& server, std::size_t n, std::size_t threads,
              const std::function<void(SetupClient&, std::size_t)>& fn);

}  // namespace pigeon::bench
