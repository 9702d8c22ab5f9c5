// HttpApi: one short HTTP/1.1 connection per request (Beast), JSON in and out. Responses are
// parsed into the types of client.h; JSON access goes through helpers that fail softly, so a
// malformed answer is an Error, never an exception.
#include <openssl/ssl.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/json.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <charconv>

#include "client/client.h"
#include "client/http_internal.h"
#include "client/pipe.h"

namespace pigeon::client {

namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

struct HttpApi::Shared {
  std::string base_url;
  std::string token;
  std::string username;
  TlsOptions tls_options;
  std::shared_ptr<asio::ssl::context> tls;  // made on the first https request
  std::chrono::milliseconds timeout;
};

namespace {

constexpr auto kAwait = asio::as_tuple(asio::use_awaitable);

Errc errcOfStatus(unsigned status) {
  switch (status) {
    case 400:
      return Errc::BadRequest;
    case 401:
      return Errc::Unauthenticated;
    case 403:
      return Errc::Forbidden;
    case 404:
      return Errc::NotFound;
    case 409:
      return Errc::Conflict;
    case 413:
      return Errc::TooLarge;
    case 429:
      return Errc::RateLimited;
    case 503:
      return Errc::Unavailable;
    default:
      return status >= 500 ? Errc::Unavailable : Errc::BadRequest;
  }
}

std::string escapeSegment(std::string_view s) {
  return boost::urls::encode(s, boost::urls::unreserved_chars);
}

// ---- soft JSON access ------------------------------------------------------------------------

const json::value* field(const json::value& v, std::string_view key) {
  const auto* o = v.if_object();
  return o ? o->if_contains(key) : nullptr;
}
std::string getString(const json::value& v, std::string_view key) {
  const auto* f = field(v, key);
  return f && f->is_string() ? std::string(f->as_string()) : std::string();
}
std::uint64_t getU64(const json::value& v, std::string_view key) {
  const auto* f = field(v, key);
  if (!f) return 0;
  if (f->is_uint64()) return f->as_uint64();
  if (f->is_int64()) return f->as_int64() < 0 ? 0 : std::uint64_t(f->as_int64());
  if (f->is_double()) return f->as_double() < 0 ? 0 : std::uint64_t(f->as_double());
  if (f->is_string()) {
    std::uint64_t out = 0;
    const auto& s = f->as_string();
    std::from_chars(s.data(), s.data() + s.size(), out);
    return out;
  }
  return 0;
}
std::int64_t getI64(const json::value& v, std::string_view key) {
  const auto* f = field(v, key);
  if (!f) return 0;
  if (f->is_int64()) return f->as_int64();
  if (f->is_uint64()) return std::int64_t(f->as_uint64());
  if (f->is_double()) return std::int64_t(f->as_double());
  return 0;
}
bool getBool(const json::value& v, std::string_view key) {
  const auto* f = field(v, key);
  return f && f->is_bool() && f->as_bool();
}
const json::array* getArray(const json::value& v, std::string_view key) {
  const auto* f = field(v, key);
  return f ? f->if_array() : nullptr;
}

std::unexpected<Error> badAnswer(std::string_view what) {
  return fail(Errc::Internal, "unexpected answer from the server: " + std::string(what));
}

UserRef parseUser(const json::value& v) {
  return UserRef{getU64(v, "user_id"), getString(v, "username")};
}

Result<std::vector<UserRef>> parseUsers(Result<json::value> r) {
  if (!r) return std::unexpected(r.error());
  const auto* users = getArray(*r, "users");
  if (!users) return badAnswer("no users");
  std::vector<UserRef> out;
  out.reserve(users->size());
  for (const auto& u : *users) out.push_back(parseUser(u));
  return out;
}

Group parseGroup(const json::value& v) {
  Group g;
  g.group_id = getU64(v, "group_id");
  g.name = getString(v, "name");
  g.conversation = getString(v, "conversation");
  g.owner = getString(v, "owner");
  g.created_at_ms = getI64(v, "created_at");
  g.member_count = getU64(v, "member_count");
  if (const auto* members = getArray(v, "members")) {
    for (const auto& m : *members) g.members.push_back(parseUser(m));
  }
  return g;
}

Result<Group> parseOneGroup(Result<json::value> r) {
  if (!r) return std::unexpected(r.error());
  if (getU64(*r, "group_id") == 0) return badAnswer("no group_id");
  return parseGroup(*r);
}

Result<void> parseNothing(Result<json::value> r) {
  if (!r) return std::unexpected(r.error());
  return {};
}

}  // namespace

Message parseMessageJson(const json::value& v) {
  Message m;
  m.seq = getU64(v, "seq");
  m.msg_id = getU64(v, "msg_id");
  m.client_msg_id = getString(v, "client_msg_id");
  m.conversation = getString(v, "conversation");
  m.conv_seq = getU64(v, "conv_seq");
  m.from = getString(v, "from");
  m.sent_at_ms = getI64(v, "sent_at");
  m.content_type = getString(v, "content_type");
  if (m.content_type.empty()) m.content_type = "text/plain";
  m.body = getString(v, "body");
  return m;
}

Result<Session> parseSessionJson(const json::value& v) {
  Session s;
  s.token = getString(v, "token");
  if (s.token.empty()) return badAnswer("login without a token");
  s.user_id = getU64(v, "user_id");
  s.username = getString(v, "username");
  s.device = getString(v, "device");
  s.expires_at_ms = getI64(v, "expires_at");
  if (const auto* gw = field(v, "gateway")) {
    s.gateway_ws = getString(*gw, "ws");
    s.gateway_tcp = getString(*gw, "tcp");
  }
  return s;
}

Result<HistoryPage> parseHistoryJson(const json::value& v) {
  const auto* messages = getArray(v, "messages");
  if (!messages) return badAnswer("no messages");
  HistoryPage page;
  for (const auto& m : *messages) page.messages.push_back(parseMessageJson(m));
  page.has_more = getBool(v, "has_more");
  return page;
}

namespace {

template <typename Stream>
asio::awaitable<Result<json::value>> exchange(Stream& stream, http::request<http::string_body>& req,
                                              beast::tcp_stream& lowest,
                                              std::chrono::milliseconds timeout) {
  lowest.expires_after(timeout);
  auto [wec, written] = co_await http::async_write(stream, req, kAwait);
  if (wec)
    co_return fail(Errc::Unavailable, "HTTP " + std::string(req.method_string()) + " " +
                                          std::string(req.target()) + ": " + wec.message());
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  auto [rec, read] = co_await http::async_read(stream, buffer, parser, kAwait);
  if (rec)
    co_return fail(Errc::Unavailable, "HTTP " + std::string(req.method_string()) + " " +
                                          std::string(req.target()) + ": " + rec.message());
  auto& res = parser.get();
  const unsigned status = res.result_int();
  json::value body;
  if (!res.body().empty()) {
    boost::system::error_code jec;
    body = json::parse(res.body(), jec);
    if (jec) body = nullptr;
  }
  if (status >= 200 && status < 300) co_return body;
  std::string message =
      getString(field(body, "error") ? *field(body, "error") : json::value(), "message");
  if (message.empty()) message = "HTTP " + std::to_string(status);
  co_return fail(errcOfStatus(status), std::move(message));
}

asio::awaitable<Result<json::value>> perform(std::shared_ptr<HttpApi::Shared> shared,
                                             std::string method, std::string target,
                                             std::string body) {
  auto ep = parseEndpoint(shared->base_url);
  if (!ep) co_return std::unexpected(ep.error());
  if (ep->scheme != "http" && ep->scheme != "https") {
    co_return fail(Errc::BadRequest, "the server URL must be http:// or https://");
  }
  auto ex = co_await asio::this_coro::executor;
  tcp::resolver resolver(ex);
  auto [rec, results] = co_await resolver.async_resolve(ep->host, std::to_string(ep->port), kAwait);
  if (rec) co_return fail(Errc::Unavailable, "resolve " + ep->host + ": " + rec.message());

  std::string prefix = ep->target;
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  http::request<http::string_body> req{http::string_to_verb(method), prefix + target, 11};
  req.set(http::field::host, ep->host + ":" + std::to_string(ep->port));
  req.set(http::field::user_agent, "pigeon-client/0.1");
  req.set(http::field::accept, "application/json");
  if (!shared->token.empty()) req.set(http::field::authorization, "Bearer " + shared->token);
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = std::move(body);
  }
  req.prepare_payload();

  beast::tcp_stream plain(ex);
  plain.expires_after(shared->timeout);
  auto [cec, endpoint] = co_await plain.async_connect(results, kAwait);
  if (cec) {
    co_return fail(Errc::Unavailable, "connect to " + ep->host + ":" + std::to_string(ep->port) +
                                          ": " + cec.message());
  }
  if (!ep->tls) {
    auto r = co_await exchange(plain, req, plain, shared->timeout);
    boost::system::error_code ignored;
    plain.socket().shutdown(tcp::socket::shutdown_both, ignored);
    co_return r;
  }
  if (!shared->tls) {
    auto ctx = makeTlsContext(shared->tls_options);
    if (!ctx) co_return std::unexpected(ctx.error());
    shared->tls = *ctx;
  }
  beast::ssl_stream<beast::tcp_stream> secure(std::move(plain), *shared->tls);
  if (!SSL_set_tlsext_host_name(secure.native_handle(), ep->host.c_str())) {
    co_return fail(Errc::Unavailable, "TLS: cannot set the server name");
  }
  if (SSL_CTX_get_verify_mode(shared->tls->native_handle()) != SSL_VERIFY_NONE) {
    secure.set_verify_callback(asio::ssl::host_name_verification(ep->host));
  }
  auto [hec] = co_await secure.async_handshake(asio::ssl::stream_base::client, kAwait);
  if (hec)
    co_return fail(Errc::Unavailable, "TLS handshake with " + ep->host + ": " + hec.message());
  auto r = co_await exchange(secure, req, beast::get_lowest_layer(secure), shared->timeout);
  beast::get_lowest_layer(secure).expires_after(std::chrono::seconds(1));
  co_await secure.async_shutdown(kAwait);
  co_return r;
}

// Runs a request and hands the parsed result to `done`.
template <typename R, typename Parse>
void run(const asio::any_io_executor& ex, const std::shared_ptr<HttpApi::Shared>& shared,
         std::string method, std::string target, std::string body, detail::Done<R> done,
         Parse parse) {
  asio::co_spawn(
      ex,
      [shared, method = std::move(method), target = std::move(target), body = std::move(body),
       done = std::move(done), parse = std::move(parse)]() mutable -> asio::awaitable<void> {
        Result<json::value> r;
        try {
          r = co_await perform(shared, std::move(method), std::move(target), std::move(body));
        } catch (const std::exception& e) {  // allocation failures and the like, from Beast
          r = fail(Errc::Internal, e.what());
        }
        done(parse(std::move(r)));
      },
      asio::detached);
}

}  // namespace

HttpApi::HttpApi(Executor executor, std::string base_url, TlsOptions tls,
                 std::chrono::milliseconds timeout)
    : executor_(std::move(executor)),
      shared_(std::make_shared<Shared>(
          Shared{std::move(base_url), {}, {}, std::move(tls), nullptr, timeout})) {}

HttpApi::~HttpApi() = default;

const std::string& HttpApi::baseUrl() const {
  return shared_->base_url;
}
void HttpApi::setBaseUrl(std::string base_url) {
  shared_->base_url = std::move(base_url);
}
const std::string& HttpApi::token() const {
  return shared_->token;
}
void HttpApi::setToken(std::string token) {
  shared_->token = std::move(token);
}
const std::string& HttpApi::username() const {
  return shared_->username;
}
void HttpApi::setUsername(std::string username) {
  shared_->username = std::move(username);
}

void HttpApi::registerImpl(std::string u, std::string p, detail::Done<Result<UserRef>> done) {
  const std::string body = json::serialize(json::object{{"username", u}, {"password", p}});
  run<Result<UserRef>>(executor_, shared_, "POST", "/api/v1/users", body, std::move(done),
                       [](Result<json::value> r) -> Result<UserRef> {
                         if (!r) return std::unexpected(r.error());
                         return parseUser(*r);
                       });
}

void HttpApi::loginImpl(std::string u, std::string p, std::string d,
                        detail::Done<Result<Session>> done) {
  const std::string body =
      json::serialize(json::object{{"username", u}, {"password", p}, {"device", d}});
  // On success the new token replaces the old one for every later request.
  auto shared = shared_;
  run<Result<Session>>(
      executor_, shared_, "POST", "/api/v1/sessions", body,
      [shared, done = std::move(done)](Result<Session> s) mutable {
        if (s) {
          shared->token = s->token;
          shared->username = s->username;
        }
        done(std::move(s));
      },
      [](Result<json::value> r) -> Result<Session> {
        if (!r) return std::unexpected(r.error());
        return parseSessionJson(*r);
      });
}

void HttpApi::logoutImpl(detail::Done<Result<void>> done) {
  run<Result<void>>(executor_, shared_, "DELETE", "/api/v1/sessions", "", std::move(done),
                    parseNothing);
}

void HttpApi::onlineImpl(detail::Done<Result<std::vector<UserRef>>> done) {
  run<Result<std::vector<UserRef>>>(executor_, shared_, "GET", "/api/v1/users/online", "",
                                    std::move(done), parseUsers);
}

void HttpApi::findUsersImpl(std::string prefix, unsigned limit,
                            detail::Done<Result<std::vector<UserRef>>> done) {
  std::string target = "/api/v1/users?prefix=" + escapeSegment(prefix);
  if (limit > 0) target += "&limit=" + std::to_string(limit);
  run<Result<std::vector<UserRef>>>(executor_, shared_, "GET", std::move(target), "",
                                    std::move(done), parseUsers);
}

void HttpApi::groupsImpl(detail::Done<Result<std::vector<Group>>> done) {
  run<Result<std::vector<Group>>>(executor_, shared_, "GET", "/api/v1/groups", "", std::move(done),
                                  [](Result<json::value> r) -> Result<std::vector<Group>> {
                                    if (!r) return std::unexpected(r.error());
                                    const auto* groups = getArray(*r, "groups");
                                    if (!groups) return badAnswer("no groups");
                                    std::vector<Group> out;
                                    for (const auto& g : *groups) out.push_back(parseGroup(g));
                                    return out;
                                  });
}

void HttpApi::groupImpl(std::uint64_t id, detail::Done<Result<Group>> done) {
  run<Result<Group>>(executor_, shared_, "GET", "/api/v1/groups/" + std::to_string(id), "",
                     std::move(done), parseOneGroup);
}

void HttpApi::createGroupImpl(std::string name, std::vector<std::string> members,
                              detail::Done<Result<Group>> done) {
  json::array list;
  for (auto& m : members) list.emplace_back(m);
  const std::string body =
      json::serialize(json::object{{"name", name}, {"members", std::move(list)}});
  run<Result<Group>>(executor_, shared_, "POST", "/api/v1/groups", body, std::move(done),
                     parseOneGroup);
}

void HttpApi::memberImpl(const char* method, std::uint64_t id, std::string username,
                         detail::Done<Result<void>> done) {
  std::string target = "/api/v1/groups/" + std::to_string(id) + "/members";
  std::string body;
  if (std::string_view(method) == "POST") {
    body = json::serialize(json::object{{"username", username}});
  } else {
    target += "/" + escapeSegment(username);
  }
  run<Result<void>>(executor_, shared_, method, std::move(target), std::move(body), std::move(done),
                    parseNothing);
}

void HttpApi::historyImpl(std::string conversation, std::uint64_t before, unsigned limit,
                          detail::Done<Result<HistoryPage>> done) {
  std::string target = "/api/v1/conversations/" + escapeSegment(conversation) + "/messages";
  char sep = '?';
  if (before > 0) {
    target += sep + std::string("before=") + std::to_string(before);
    sep = '&';
  }
  if (limit > 0) target += sep + std::string("limit=") + std::to_string(limit);
  run<Result<HistoryPage>>(executor_, shared_, "GET", std::move(target), "", std::move(done),
                           [](Result<json::value> r) -> Result<HistoryPage> {
                             if (!r) return std::unexpected(r.error());
                             return parseHistoryJson(*r);
                           });
}

void HttpApi::requestImpl(std::string method, std::string target, json::value body,
                          detail::Done<Result<json::value>> done) {
  std::string text = body.is_null() ? std::string() : json::serialize(body);
  run<Result<json::value>>(executor_, shared_, std::move(method), std::move(target),
                           std::move(text), std::move(done),
                           [](Result<json::value> r) { return r; });
}

}  // namespace pigeon::client
