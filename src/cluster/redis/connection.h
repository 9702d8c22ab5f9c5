// Internal to the Redis engine: one blocking client connection (hiredis), with a deadline on
// connecting and on every read and write, pipelining, and a poll for the subscriber's loop.
//
// Ownership and threads: a Connection is used by one thread at a time (a hiredis context is not
// thread-safe). Errors: Unavailable, naming what failed; once an I/O error or a timeout happened
// the connection is broken() for good (the reply stream is out of step) and must be dropped.
// Nothing here throws.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

struct redisContext;
struct redisReply;

namespace pigeon::cluster::redis {

// A "host:port" (or "[v6]:port") address. parseAddress: BadRequest for anything else.
struct Endpoint {
  std::string host;
  int port = 0;
};
Result<Endpoint> parseAddress(std::string_view address);

struct ReplyDeleter {
  void operator()(redisReply* reply) const;
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

class Connection {
 public:
  // Unavailable if the server does not accept the connection within `timeout`, which is then
  // the limit of every blocking read or write too.
  static Result<std::unique_ptr<Connection>> open(const Endpoint& endpoint,
                                                  std::chrono::milliseconds timeout);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Queues a command (arguments are binary-safe); read() sends what is queued.
  void append(const std::vector<std::string_view>& args);
  // The next reply, in the order of the commands. An error reply is a reply: see isError().
  Result<Reply> read();
  // append() then read().
  Result<Reply> command(const std::vector<std::string_view>& args);
  // Sends what is queued, then waits up to `wait` for a reply. Null on a quiet `wait` (or a
  // reply still incomplete); Unavailable if the link broke. For a subscribed connection.
  Result<Reply> poll(std::chrono::milliseconds wait);
  // The server closed the link (or sent what nobody asked for) while no reply was due: a stale
  // connection, e.g. to a server that restarted. Does not block.
  bool peerClosed();
  bool broken() const;

 private:
  explicit Connection(redisContext* context) : context_(context) {}
  std::unexpected<Error> lost(std::string_view what);
  redisContext* context_;
};

bool isError(const redisReply& reply);
// The text of a string, status or error reply; empty for other types.
std::string_view text(const redisReply& reply);

}  // namespace pigeon::cluster::redis
