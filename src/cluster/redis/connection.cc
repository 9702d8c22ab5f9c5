#include "cluster/redis/connection.h"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <sys/time.h>

#include <cerrno>
#include <charconv>

namespace pigeon::cluster::redis {

Result<Endpoint> parseAddress(std::string_view address) {
  const auto colon = address.rfind(':');
  if (colon == std::string_view::npos) {
    return fail(Errc::BadRequest, "redis address '" + std::string(address) + "' is not host:port");
  }
  std::string_view host = address.substr(0, colon);
  const std::string_view port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  int number = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
  if (host.empty() || ec != std::errc() || end != port.data() + port.size() || number < 1 ||
      number > 65535) {
    return fail(Errc::BadRequest, "redis address '" + std::string(address) + "' is not host:port");
  }
  return Endpoint{std::string(host), number};
}

void ReplyDeleter::operator()(redisReply* reply) const {
  freeReplyObject(reply);
}

bool isError(const redisReply& reply) {
  return reply.type == REDIS_REPLY_ERROR;
}

std::string_view text(const redisReply& reply) {
  switch (reply.type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      return {reply.str, reply.len};
    default:
      return {};
  }
}

Result<std::unique_ptr<Connection>> Connection::open(const Endpoint& endpoint,
                                                     std::chrono::milliseconds timeout) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(timeout).count();
  const timeval tv{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
  redisContext* c = redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port, tv);
  if (c == nullptr) return fail(Errc::Unavailable, "redis: out of memory");
  std::unique_ptr<Connection> connection(new Connection(c));
  const std::string where = endpoint.host + ":" + std::to_string(endpoint.port);
  if (c->err != 0) return fail(Errc::Unavailable, "redis " + where + ": " + c->errstr);
  if (redisSetTimeout(c, tv) != REDIS_OK || redisEnableKeepAlive(c) != REDIS_OK) {
    return fail(Errc::Unavailable, "redis " + where + ": " + c->errstr);
  }
  return connection;
}

Connection::~Connection() {
  redisFree(context_);
}

bool Connection::broken() const {
  return context_->err != 0;
}

std::unexpected<Error> Connection::lost(std::string_view what) {
  return fail(Errc::Unavailable, "redis: " + std::string(what) + ": " +
                                     (context_->err != 0 ? context_->errstr : "connection lost"));
}

void Connection::append(const std::vector<std::string_view>& args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  argv.reserve(args.size());
  lengths.reserve(args.size());
  for (std::string_view a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  // Fails only when out of memory, which sets err: the next read() reports it.
  redisAppendCommandArgv(context_, int(argv.size()), argv.data(), lengths.data());
}

Result<Reply> Connection::read() {
  void* reply = nullptr;
  if (redisGetReply(context_, &reply) != REDIS_OK || reply == nullptr) return lost("read");
  return Reply(static_cast<redisReply*>(reply));
}

Result<Reply> Connection::command(const std::vector<std::string_view>& args) {
  append(args);
  return read();
}

Result<Reply> Connection::poll(std::chrono::milliseconds wait) {
  void* reply = nullptr;
  if (redisGetReplyFromReader(context_, &reply) != REDIS_OK) return lost("read");
  if (reply != nullptr) return Reply(static_cast<redisReply*>(reply));
  int done = 0;
  while (done == 0) {
    if (redisBufferWrite(context_, &done) != REDIS_OK) return lost("write");
  }
  pollfd p{context_->fd, POLLIN, 0};
  const int n = ::poll(&p, 1, int(wait.count()));
  if (n < 0 && errno != EINTR) return lost("poll");
  if (n <= 0) return Reply();
  if (redisBufferRead(context_) != REDIS_OK) return lost("read");
  if (redisGetReplyFromReader(context_, &reply) != REDIS_OK) return lost("read");
  return Reply(static_cast<redisReply*>(reply));
}

bool Connection::peerClosed() {
  if (broken()) return true;
  pollfd p{context_->fd, POLLIN, 0};
  return ::poll(&p, 1, 0) != 0;
}

}  // namespace pigeon::cluster::redis
