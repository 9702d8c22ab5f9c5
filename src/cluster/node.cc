#include "cluster/node.h"

#include <algorithm>
#include <boost/json.hpp>
#include <random>

namespace pigeon::cluster {
namespace json = boost::json;

bool NodeInfo::hasRole(std::string_view role) const {
  return std::find(roles.begin(), roles.end(), role) != roles.end();
}

NodeId newNodeId() {
  std::random_device entropy;
  const std::uint64_t n = (std::uint64_t(entropy()) << 32) | entropy();
  static constexpr char kHex[] = "0123456789abcdef";
  NodeId id(16, '0');
  for (int i = 0; i < 16; ++i) id[std::size_t(i)] = kHex[(n >> (4 * i)) & 0xf];
  return id;
}

Result<void> validateNodeId(std::string_view id) {
  if (id.empty() || id.size() > 64) return fail(Errc::BadRequest, "a node id has 1 to 64 characters");
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return fail(Errc::BadRequest, "a node id has only letters, digits, '.', '_' and '-'");
  }
  return {};
}

std::string toJson(const NodeInfo& node) {
  json::array roles;
  for (const auto& r : node.roles) roles.emplace_back(r);
  json::object o;
  o["id"] = node.id;
  o["roles"] = std::move(roles);
  o["ws"] = node.ws;
  o["tcp"] = node.tcp;
  o["http"] = node.http;
  o["connections"] = node.connections;
  o["started_at_ms"] = node.started_at_ms;
  return json::serialize(o);
}

Result<NodeInfo> nodeFromJson(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return fail(Errc::BadRequest, "node record: not a JSON object");
  const json::object& o = v.get_object();
  auto str = [&](std::string_view key, std::string& out) -> bool {
    const json::value* f = o.if_contains(key);
    if (!f || !f->is_string()) return false;
    out = std::string(f->get_string());
    return true;
  };
  NodeInfo node;
  if (!str("id", node.id) || !validateNodeId(node.id)) return fail(Errc::BadRequest, "node record: bad id");
  if (!str("ws", node.ws) || !str("tcp", node.tcp) || !str("http", node.http)) {
    return fail(Errc::BadRequest, "node record: missing addresses");
  }
  const json::value* roles = o.if_contains("roles");
  if (!roles || !roles->is_array()) return fail(Errc::BadRequest, "node record: missing roles");
  for (const auto& r : roles->get_array()) {
    if (!r.is_string()) return fail(Errc::BadRequest, "node record: a role is not a string");
    node.roles.emplace_back(r.get_string());
  }
  const json::value* conns = o.if_contains("connections");
  if (!conns || !(conns->is_uint64() || conns->is_int64()) || (conns->is_int64() && conns->get_int64() < 0)) {
    return fail(Errc::BadRequest, "node record: bad connections");
  }
  node.connections = conns->is_uint64() ? conns->get_uint64() : std::uint64_t(conns->get_int64());
  if (const json::value* s = o.if_contains("started_at_ms"); s && s->is_int64()) {
    node.started_at_ms = s->get_int64();
  } else if (s && s->is_uint64()) {
    node.started_at_ms = std::int64_t(s->get_uint64());
  }
  return node;
}

}  // namespace pigeon::cluster
