#include "api/http_api.h"

#include <algorithm>
#include <boost/asio/this_coro.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <charconv>
#include <chrono>

#include "core/conversation.h"
#include "net/bearer.h"
#include "net/offload.h"

namespace pigeon::api {
namespace json = boost::json;
using boost::asio::awaitable;
using core::Principal;

namespace {

constexpr std::size_t kDefaultPage = 100;

Response jsonResponse(int status, const json::value& value) {
  Response r;
  r.status = status;
  r.body = json::serialize(value);
  return r;
}

Response noContent() {
  Response r;
  r.status = 204;
  r.content_type.clear();
  return r;
}

std::string idString(std::uint64_t id) {
  return std::to_string(id);
}

// ---- request parsing ---------------------------------------------------------------------

Result<json::object> parseObject(const std::string& body) {
  if (body.empty()) return fail(Errc::BadRequest, "request body must be a JSON object");
  boost::system::error_code ec;
  json::value value = json::parse(body, ec);
  if (ec) return fail(Errc::BadRequest, "malformed JSON: " + ec.message());
  if (!value.is_object()) return fail(Errc::BadRequest, "request body must be a JSON object");
  return std::move(value.as_object());
}

Result<std::optional<std::string>> optionalString(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v || v->is_null()) return std::optional<std::string>();
  if (!v->is_string()) return fail(Errc::BadRequest, "'" + std::string(key) + "' must be a string");
  return std::optional<std::string>(std::string(v->as_string()));
}

Result<std::string> requireString(const json::object& o, std::string_view key) {
  auto v = optionalString(o, key);
  if (!v) return std::unexpected(v.error());
  if (!*v) return fail(Errc::BadRequest, "'" + std::string(key) + "' is required");
  return std::move(**v);
}

Result<std::uint64_t> requireUint(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v || v->is_null()) return fail(Errc::BadRequest, "'" + std::string(key) + "' is required");
  if (v->is_uint64()) return v->as_uint64();
  if (v->is_int64() && v->as_int64() >= 0) return std::uint64_t(v->as_int64());
  return fail(Errc::BadRequest, "'" + std::string(key) + "' must be a non-negative integer");
}

bool parseDecimal(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

struct Query {
  std::vector<std::pair<std::string, std::string>> params;

  const std::string* find(std::string_view key) const {
    for (const auto& [k, v] : params) {
      if (k == key) return &v;
    }
    return nullptr;
  }
  Result<std::optional<std::uint64_t>> number(std::string_view key) const {
    const std::string* v = find(key);
    if (!v) return std::optional<std::uint64_t>();
    std::uint64_t n;
    if (!parseDecimal(*v, n)) {
      return fail(Errc::BadRequest,
                  "query parameter '" + std::string(key) + "' must be a non-negative integer");
    }
    return std::optional<std::uint64_t>(n);
  }
  Result<std::size_t> limit(std::size_t max) const {
    auto n = number("limit");
    if (!n) return std::unexpected(n.error());
    if (!*n) return std::min(kDefaultPage, max);
    if (**n < 1 || **n > max) {
      return fail(Errc::BadRequest, "limit must be between 1 and " + std::to_string(max));
    }
    return std::size_t(**n);
  }
};

Result<core::GroupId> parseGroupId(std::string_view s) {
  if (s == core::kLobbyName) return core::kLobbyId;
  std::uint64_t id;
  if (!parseDecimal(s, id) || id == 0) {
    return fail(Errc::BadRequest, "group id must be a positive integer or 'lobby'");
  }
  return id;
}

// ---- JSON views ---------------------------------------------------------------------------

json::object userJson(const store::User& u) {
  return json::object{{"user_id", idString(u.id)}, {"username", u.username}};
}

json::object messageJson(const core::MessageView& v, bool with_seq) {
  const store::Message& m = v.message;
  json::object o{{"msg_id", idString(m.id)},
                 {"conversation", m.conversation},
                 {"conv_seq", m.conv_seq},
                 {"from", v.from},
                 {"body", m.body},
                 {"content_type", m.content_type},
                 {"sent_at", m.created_at_ms}};
  if (!m.client_msg_id.empty()) o["client_msg_id"] = m.client_msg_id;
  if (with_seq) o["seq"] = v.seq;
  return o;
}

json::object groupJson(const core::GroupView& g, bool with_members) {
  json::object o{{"group_id", idString(g.group.id)},
                 {"name", g.group.name},
                 {"conversation", core::groupConversation(g.group.id)},
                 {"created_at", g.group.created_at_ms},
                 {"member_count", g.member_count}};
  if (g.owner_name.empty()) {
    o["owner"] = nullptr;
  } else {
    o["owner"] = g.owner_name;
  }
  if (with_members) {
    json::array members;
    for (const auto& u : g.members) members.push_back(userJson(u));
    o["members"] = std::move(members);
  }
  return o;
}

// Splits "/a/b/c" into {"a","b","c"}, percent-decoding each segment.
std::vector<std::string> pathSegments(const boost::urls::url_view& url) {
  std::vector<std::string> out;
  for (auto seg : url.segments()) out.emplace_back(seg);
  return out;
}

}  // namespace

HttpApi::HttpApi(core::Service& service, boost::asio::any_io_executor workers, RateLimiter& limiter,
                 MetricsRegistry& metrics, ApiOptions options)
    : service_(service),
      workers_(std::move(workers)),
      limiter_(limiter),
      metrics_(metrics),
      options_(std::move(options)),
      rate_limited_(
          metrics.counter("pigeon_http_rate_limited_total", "HTTP requests refused with 429")) {}

int HttpApi::httpStatus(Errc code) {
  switch (code) {
    case Errc::BadRequest:
      return 400;
    case Errc::Unauthenticated:
      return 401;
    case Errc::Forbidden:
      return 403;
    case Errc::NotFound:
      return 404;
    case Errc::Conflict:
      return 409;
    case Errc::TooLarge:
      return 413;
    case Errc::RateLimited:
      return 429;
    case Errc::Unavailable:
      return 503;
    case Errc::Internal:
      return 500;
  }
  return 500;
}

Response HttpApi::errorResponse(int status, std::string_view code, std::string_view message) {
  Response r = jsonResponse(
      status, json::object{{"error", json::object{{"code", code}, {"message", message}}}});
  if (status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer");
  return r;
}

Response HttpApi::errorResponse(const Error& error) {
  return errorResponse(httpStatus(error.code), errcName(error.code), error.message);
}

awaitable<Response> HttpApi::handle(Request request) {
  const auto start = std::chrono::steady_clock::now();
  std::string route = "unmatched";
  Response response;
  if (!limiter_.allow(request.remote_ip)) {
    rate_limited_.inc();
    response = errorResponse(Error{Errc::RateLimited, "too many requests; slow down"});
    response.headers.emplace_back("Retry-After", "1");
    route = "rate_limited";
  } else {
    response = co_await dispatch(request, route);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string labels = "route=\"" + route + "\"";
  metrics_
      .counter("pigeon_http_requests_total", "HTTP requests by route and status",
               labels + ",code=\"" + std::to_string(response.status) + "\"")
      .inc();
  metrics_.histogram("pigeon_http_request_seconds", "HTTP request latency by route", labels)
      .observe(seconds);
  co_return response;
}

awaitable<Response> HttpApi::dispatch(Request& req, std::string& route) {
  auto parsed = boost::urls::parse_origin_form(req.target);
  if (!parsed) co_return errorResponse(Error{Errc::BadRequest, "malformed request target"});
  const boost::urls::url_view url = *parsed;
  const std::vector<std::string> seg = pathSegments(url);
  Query query;
  for (auto p : url.params()) query.params.emplace_back(p.key, p.has_value ? p.value : "");
  const std::string& method = req.method;

  auto fromError = [](const Error& e) { return errorResponse(e); };
  auto methodNotAllowed = [&] {
    return errorResponse(405, "method_not_allowed", "method " + method + " is not allowed here");
  };

  const std::optional<std::string_view> bearer = net::bearerToken(req.authorization);
  const Error no_bearer{Errc::Unauthenticated, "missing 'Authorization: Bearer <token>' header"};

  // Resolves the bearer token on a worker thread.
  auto authenticate = [&]() -> awaitable<Result<Principal>> {
    if (!bearer) co_return std::unexpected(no_bearer);
    auto work = [this, token = std::string(*bearer)] { return service_.authenticate(token); };
    co_return co_await net::offload(workers_, std::move(work));
  };

  // ---- unauthenticated -----------------------------------------------------------------------
  if (seg.size() == 1 && seg[0] == "healthz") {
    route = "healthz";
    if (method != "GET") co_return methodNotAllowed();
    co_return jsonResponse(200, json::object{{"status", "ok"}});
  }
  if (seg.size() == 1 && seg[0] == "metrics") {
    route = "metrics";
    if (method != "GET") co_return methodNotAllowed();
    Response r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics_.render();
    co_return r;
  }
  if (seg.empty() || seg[0] != "api") {
    route = "static";
    if (options_.static_files && (method == "GET" || method == "HEAD")) {
      if (auto file = options_.static_files->find(url.path())) {
        Response r;
        r.content_type = std::string(file->content_type);
        if (method == "GET") {
          r.body = std::string(file->body);
        } else {
          r.head_length = file->body.size();
        }
        r.headers.emplace_back("Cache-Control", file->immutable ? "public, max-age=31536000, immutable"
                                                                : "no-cache");
        r.headers.emplace_back("X-Content-Type-Options", "nosniff");
        if (r.content_type.starts_with("text/html")) {
          // The client renders messages as text; this forbids anything but its own scripts.
          r.headers.emplace_back("Content-Security-Policy",
                                 "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
                                 "style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; "
                                 "frame-ancestors 'none'");
        }
        co_return r;
      }
    }
    co_return errorResponse(Error{Errc::NotFound, "no such endpoint: " + std::string(url.path())});
  }
  if (!options_.serve_api) {
    co_return errorResponse(Error{Errc::NotFound, "this node does not serve the API (it has no api role)"});
  }
  if (seg.size() < 3 || seg[1] != "v1") {
    co_return errorResponse(Error{Errc::NotFound, "no such endpoint: " + std::string(url.path())});
  }
  const std::string& resource = seg[2];
  static constexpr std::string_view kResources[] = {"users", "sessions", "messages", "sync",
                                                    "ack", "conversations", "groups"};
  if (std::find(std::begin(kResources), std::end(kResources), resource) == std::end(kResources)) {
    co_return errorResponse(Error{Errc::NotFound, "no such endpoint: " + std::string(url.path())});
  }

  if (resource == "users" && seg.size() == 3 && method == "POST") {
    route = "register";
    auto body = parseObject(req.body);
    if (!body) co_return fromError(body.error());
    auto username = requireString(*body, "username");
    if (!username) co_return fromError(username.error());
    auto password = requireString(*body, "password");
    if (!password) co_return fromError(password.error());
    auto work = [this, u = *username, p = *password] { return service_.registerUser(u, p); };
    auto user = co_await net::offload(workers_, std::move(work));
    if (!user) co_return fromError(user.error());
    co_return jsonResponse(201, userJson(*user));
  }

  if (resource == "sessions" && seg.size() == 3) {
    route = "sessions";
    if (method == "POST") {
      auto body = parseObject(req.body);
      if (!body) co_return fromError(body.error());
      auto username = requireString(*body, "username");
      if (!username) co_return fromError(username.error());
      auto password = requireString(*body, "password");
      if (!password) co_return fromError(password.error());
      auto device = optionalString(*body, "device");
      if (!device) co_return fromError(device.error());
      auto work = [this, u = *username, p = *password,
                   d = device->value_or("default")]() -> Result<std::pair<core::LoginResult, GatewayChoice>> {
        auto login = service_.login(u, p, d);
        if (!login) return std::unexpected(login.error());
        GatewayChoice choice{options_.gateway_ws, options_.gateway_tcp};
        if (options_.pick_gateway) {
          auto picked = options_.pick_gateway(login->principal.user);
          if (!picked) return fail(Errc::Unavailable, "no gateway node is alive; try again shortly");
          choice = std::move(*picked);
        }
        return std::make_pair(std::move(*login), std::move(choice));
      };
      auto result = co_await net::offload(workers_, std::move(work));
      if (!result) co_return fromError(result.error());
      const core::LoginResult* login = &result->first;
      const GatewayChoice& choice = result->second;
      json::object gateway;
      gateway["ws"] = choice.ws.empty() ? json::value(nullptr) : json::value(choice.ws);
      gateway["tcp"] = choice.tcp.empty() ? json::value(nullptr) : json::value(choice.tcp);
      co_return jsonResponse(200, json::object{{"token", login->token},
                                               {"user_id", idString(login->principal.user)},
                                               {"username", login->principal.username},
                                               {"device", login->principal.device},
                                               {"expires_at", login->principal.expires_at_ms},
                                               {"gateway", std::move(gateway)}});
    }
    if (method == "DELETE") {
      if (!bearer) co_return fromError(no_bearer);
      auto work = [this, t = std::string(*bearer)] { return service_.logout(t); };
      auto done = co_await net::offload(workers_, std::move(work));
      if (!done) co_return fromError(done.error());
      co_return noContent();
    }
    co_return methodNotAllowed();
  }

  // ---- everything below needs a valid token ----------------------------------------------------
  auto who_result = co_await authenticate();
  if (!who_result) co_return fromError(who_result.error());
  const Principal who = std::move(*who_result);

  if (resource == "users" && seg.size() == 4 && seg[3] == "online") {
    route = "online";
    if (method != "GET") co_return methodNotAllowed();
    json::array list;
    if (options_.presence) {
      // A cluster asks its directory: off the loop.
      auto work = [this] { return options_.presence->onlineUsers(); };
      for (const auto& [id, name] : co_await net::offload(workers_, std::move(work))) {
        list.push_back(json::object{{"user_id", idString(id)}, {"username", name}});
      }
    }
    co_return jsonResponse(200, json::object{{"users", std::move(list)}});
  }

  if (resource == "users" && seg.size() == 3) {
    route = "users";
    if (method != "GET") co_return methodNotAllowed();
    const std::string* prefix = query.find("prefix");
    auto limit = query.limit(service_.options().max_page);
    if (!limit) co_return fromError(limit.error());
    auto work = [this, p = prefix ? *prefix : "", l = *limit] { return service_.findUsers(p, l); };
    auto users = co_await net::offload(workers_, std::move(work));
    if (!users) co_return fromError(users.error());
    json::array list;
    for (const auto& u : *users) list.push_back(userJson(u));
    co_return jsonResponse(200, json::object{{"users", std::move(list)}});
  }

  if (resource == "messages" && seg.size() == 3) {
    route = "send";
    if (method != "POST") co_return methodNotAllowed();
    auto body = parseObject(req.body);
    if (!body) co_return fromError(body.error());
    core::SendRequest send;
    auto to_user = optionalString(*body, "to_user");
    if (!to_user) co_return fromError(to_user.error());
    send.to_user = std::move(*to_user);
    if (const json::value* g = body->if_contains("to_group"); g && !g->is_null()) {
      if (!g->is_string())
        co_return fromError(Error{Errc::BadRequest, "'to_group' must be a string"});
      auto gid = parseGroupId(g->as_string());
      if (!gid) co_return fromError(gid.error());
      send.to_group = *gid;
    }
    auto text = requireString(*body, "body");
    if (!text) co_return fromError(text.error());
    send.body = std::move(*text);
    auto content_type = optionalString(*body, "content_type");
    if (!content_type) co_return fromError(content_type.error());
    if (*content_type) send.content_type = std::move(**content_type);
    auto client_msg_id = optionalString(*body, "client_msg_id");
    if (!client_msg_id) co_return fromError(client_msg_id.error());
    send.client_msg_id = client_msg_id->value_or("");

    using SendOutcome = Result<core::SendResult>;
    auto work = [this, who, send = std::move(send)](std::function<void(SendOutcome)> done) mutable {
      service_.send(who, std::move(send), std::move(done));
    };
    auto sent = co_await net::offloadAsync<SendOutcome>(workers_, std::move(work));
    if (!sent) co_return fromError(sent.error());
    co_return jsonResponse(200, json::object{{"msg_id", idString(sent->msg_id)},
                                             {"conversation", sent->conversation},
                                             {"conv_seq", sent->conv_seq},
                                             {"seq", sent->seq},
                                             {"sent_at", sent->sent_at_ms},
                                             {"duplicate", sent->duplicate}});
  }

  if (resource == "messages" && seg.size() == 4 && seg[3] == "search") {
    route = "search";
    if (method != "GET") co_return methodNotAllowed();
    const std::string* q = query.find("q");
    if (!q || q->empty()) {
      co_return fromError(Error{Errc::BadRequest, "query parameter 'q' is required"});
    }
    auto before = query.number("before");
    if (!before) co_return fromError(before.error());
    auto limit = query.limit(service_.options().max_page);
    if (!limit) co_return fromError(limit.error());
    auto work = [this, who, k = *q, b = before->value_or(0), l = *limit] {
      return service_.search(who, k, b, l);
    };
    auto found = co_await net::offload(workers_, std::move(work));
    if (!found) co_return fromError(found.error());
    json::array messages;
    for (const auto& m : found->messages) messages.push_back(messageJson(m, true));
    co_return jsonResponse(
        200, json::object{{"messages", std::move(messages)},
                          {"scanned", found->scanned},
                          {"complete", found->complete},
                          {"next_before", found->complete ? json::value(nullptr)
                                                          : json::value(found->next_before)}});
  }

  if (resource == "sync" && seg.size() == 3) {
    route = "sync";
    if (method != "GET") co_return methodNotAllowed();
    auto after = query.number("after");
    if (!after) co_return fromError(after.error());
    auto limit = query.limit(service_.options().max_page);
    if (!limit) co_return fromError(limit.error());
    auto work = [this, who, a = *after, l = *limit] { return service_.sync(who, a, l); };
    auto synced = co_await net::offload(workers_, std::move(work));
    if (!synced) co_return fromError(synced.error());
    json::array messages;
    for (const auto& m : synced->messages) messages.push_back(messageJson(m, true));
    co_return jsonResponse(200, json::object{{"messages", std::move(messages)},
                                             {"last_seq", synced->last_seq},
                                             {"has_more", synced->has_more}});
  }

  if (resource == "ack" && seg.size() == 3) {
    route = "ack";
    if (method != "POST") co_return methodNotAllowed();
    auto body = parseObject(req.body);
    if (!body) co_return fromError(body.error());
    auto seq = requireUint(*body, "seq");
    if (!seq) co_return fromError(seq.error());
    auto work = [this, who, s = *seq] { return service_.ack(who, s); };
    auto acked = co_await net::offload(workers_, std::move(work));
    if (!acked) co_return fromError(acked.error());
    co_return noContent();
  }

  if (resource == "conversations" && seg.size() == 5 && seg[4] == "messages") {
    route = "history";
    if (method != "GET") co_return methodNotAllowed();
    auto before = query.number("before");
    if (!before) co_return fromError(before.error());
    auto limit = query.limit(service_.options().max_page);
    if (!limit) co_return fromError(limit.error());
    auto work = [this, who, c = seg[3], b = before->value_or(0), l = *limit] {
      return service_.history(who, c, b, l);
    };
    auto messages = co_await net::offload(workers_, std::move(work));
    if (!messages) co_return fromError(messages.error());
    json::array list;
    for (const auto& m : *messages) list.push_back(messageJson(m, false));
    const bool has_more = !messages->empty() && messages->front().message.conv_seq > 1;
    co_return jsonResponse(200,
                           json::object{{"messages", std::move(list)}, {"has_more", has_more}});
  }

  if (resource == "groups") {
    if (seg.size() == 3) {
      route = "groups";
      if (method == "GET") {
        auto work = [this, who] { return service_.listGroups(who); };
        auto groups = co_await net::offload(workers_, std::move(work));
        if (!groups) co_return fromError(groups.error());
        json::array list;
        for (const auto& g : *groups) list.push_back(groupJson(g, false));
        co_return jsonResponse(200, json::object{{"groups", std::move(list)}});
      }
      if (method == "POST") {
        auto body = parseObject(req.body);
        if (!body) co_return fromError(body.error());
        auto name = requireString(*body, "name");
        if (!name) co_return fromError(name.error());
        std::vector<std::string> members;
        if (const json::value* m = body->if_contains("members"); m && !m->is_null()) {
          if (!m->is_array())
            co_return fromError(Error{Errc::BadRequest, "'members' must be an array of usernames"});
          for (const auto& item : m->as_array()) {
            if (!item.is_string()) {
              co_return fromError(
                  Error{Errc::BadRequest, "'members' must be an array of usernames"});
            }
            members.emplace_back(item.as_string());
          }
        }
        auto work = [this, who, n = *name, m = std::move(members)] {
          return service_.createGroup(who, n, m);
        };
        auto group = co_await net::offload(workers_, std::move(work));
        if (!group) co_return fromError(group.error());
        co_return jsonResponse(201, groupJson(*group, true));
      }
      co_return methodNotAllowed();
    }
    auto gid = parseGroupId(seg[3]);
    if (!gid) co_return fromError(gid.error());
    if (seg.size() == 4) {
      route = "group";
      if (method != "GET") co_return methodNotAllowed();
      auto work = [this, who, id = *gid] { return service_.getGroup(who, id); };
      auto group = co_await net::offload(workers_, std::move(work));
      if (!group) co_return fromError(group.error());
      co_return jsonResponse(200, groupJson(*group, true));
    }
    if (seg.size() == 5 && seg[4] == "members") {
      route = "group_members";
      if (method != "POST") co_return methodNotAllowed();
      auto body = parseObject(req.body);
      if (!body) co_return fromError(body.error());
      auto username = requireString(*body, "username");
      if (!username) co_return fromError(username.error());
      auto work = [this, who, id = *gid, u = *username] { return service_.addMember(who, id, u); };
      auto added = co_await net::offload(workers_, std::move(work));
      if (!added) co_return fromError(added.error());
      co_return noContent();
    }
    if (seg.size() == 6 && seg[4] == "members") {
      route = "group_member";
      if (method != "DELETE") co_return methodNotAllowed();
      auto work = [this, who, id = *gid, u = seg[5]] { return service_.removeMember(who, id, u); };
      auto removed = co_await net::offload(workers_, std::move(work));
      if (!removed) co_return fromError(removed.error());
      co_return noContent();
    }
  }

  co_return errorResponse(Error{Errc::NotFound, "no such endpoint: " + std::string(url.path())});
}

}  // namespace pigeon::api
