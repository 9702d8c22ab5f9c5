#include "format.h"

#include <boost/json.hpp>
#include <charconv>
#include <ctime>

namespace pigeon::console {
namespace json = boost::json;

// ---- names -----------------------------------------------------------------------------------

void ConversationNames::setSelf(std::uint64_t user_id, std::string username) {
  self_id_ = user_id;
  self_name_ = username;
  users_[user_id] = std::move(username);
}

void ConversationNames::learnUser(std::uint64_t id, std::string username) {
  if (id != 0 && !username.empty()) users_[id] = std::move(username);
}

void ConversationNames::learnGroup(std::uint64_t id, std::string name) {
  // Group names are free text: made printable, as they end up in the prompt.
  if (id != 0) groups_[id] = printableBody("text/plain", name);
}

void ConversationNames::learnFrom(const client::Message& message) {
  auto ref = client::parseConversation(message.conversation);
  if (!ref || ref->isGroup() || message.from.empty()) return;
  if (message.from == self_name_) return;  // our own: says nothing about the other side
  const std::uint64_t other = ref->user_lo == self_id_ ? ref->user_hi : ref->user_lo;
  learnUser(other, message.from);
}

std::optional<std::string> ConversationNames::userName(std::uint64_t id) const {
  if (auto it = users_.find(id); it != users_.end()) return it->second;
  return std::nullopt;
}

std::optional<std::string> ConversationNames::groupName(std::uint64_t id) const {
  if (id == client::kLobbyGroup) return std::string("lobby");
  if (auto it = groups_.find(id); it != groups_.end()) return it->second;
  return std::nullopt;
}

std::string ConversationNames::label(std::string_view conversation) const {
  auto ref = client::parseConversation(conversation);
  if (!ref) return std::string(conversation);
  if (ref->isGroup()) {
    auto name = groupName(ref->group);
    return "#" + (name ? *name : std::to_string(ref->group));
  }
  const std::uint64_t other = ref->user_lo == self_id_ ? ref->user_hi : ref->user_lo;
  auto name = userName(other);
  return "@" + (name ? *name : "#" + std::to_string(other));
}

std::string ConversationNames::directConversation(std::uint64_t other) const {
  const auto lo = std::min(self_id_, other), hi = std::max(self_id_, other);
  return "p:" + std::to_string(lo) + ":" + std::to_string(hi);
}

// ---- unread ----------------------------------------------------------------------------------

void UnreadCounts::onIncoming(const std::string& conversation, const std::string& current) {
  if (conversation != current) ++counts_[conversation];
}

void UnreadCounts::viewed(const std::string& conversation) {
  counts_.erase(conversation);
}

std::size_t UnreadCounts::total() const {
  std::size_t n = 0;
  for (const auto& [conversation, count] : counts_) n += count;
  return n;
}

// ---- text ------------------------------------------------------------------------------------

std::string formatTime(std::int64_t ms, std::int64_t now_ms) {
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  const std::time_t now = static_cast<std::time_t>(now_ms / 1000);
  std::tm tm{}, now_tm{};
  localtime_r(&t, &tm);
  localtime_r(&now, &now_tm);
  char buf[32];
  const bool today = tm.tm_year == now_tm.tm_year && tm.tm_yday == now_tm.tm_yday;
  std::strftime(buf, sizeof buf, today ? "%H:%M:%S" : "%Y-%m-%d %H:%M", &tm);
  return buf;
}

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 if it is not one.
std::size_t utf8Length(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  std::size_t n = 0;
  std::uint32_t min = 0, cp = 0;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0)
    n = 2, min = 0x80, cp = c & 0x1F;
  else if ((c & 0xF0) == 0xE0)
    n = 3, min = 0x800, cp = c & 0x0F;
  else if ((c & 0xF8) == 0xF0)
    n = 4, min = 0x10000, cp = c & 0x07;
  else
    return 0;
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

}  // namespace

std::string printableBody(std::string_view content_type, std::string_view body,
                          std::size_t indent) {
  if (!content_type.empty() && !content_type.starts_with("text/")) {
    return "[" + std::string(content_type) + ", " + std::to_string(body.size()) + " bytes]";
  }
  std::string out;
  out.reserve(body.size());
  std::size_t i = 0;
  while (i < body.size()) {
    const unsigned char c = static_cast<unsigned char>(body[i]);
    if (c == '\n') {
      out += '\n';
      out.append(indent, ' ');
      ++i;
      continue;
    }
    if (c == '\t') {
      out += c;
      ++i;
      continue;
    }
    if (c < 0x20 || c == 0x7F) {
      out += '?';
      ++i;
      continue;
    }
    const std::size_t n = utf8Length(body, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
      continue;
    }
    // C1 controls (U+0080–U+009F) act as escape sequences on some terminals.
    if (n == 2 && c == 0xC2 && static_cast<unsigned char>(body[i + 1]) < 0xA0) {
      out += '?';
    } else {
      out.append(body.substr(i, n));
    }
    i += n;
  }
  return out;
}

std::string formatMessage(const client::Message& message, const ConversationNames& names,
                          std::int64_t now_ms) {
  std::string head = "[" + formatTime(message.sent_at_ms, now_ms) + "] " +
                     names.label(message.conversation) + " " +
                     printableBody("text/plain", message.from) + ": ";
  return head + printableBody(message.content_type, message.body, 4);
}

std::string messageJsonLine(const client::Message& message, const ConversationNames& names) {
  json::object o{{"seq", message.seq},
                 {"msg_id", std::to_string(message.msg_id)},
                 {"conversation", message.conversation},
                 {"label", names.label(message.conversation)},
                 {"conv_seq", message.conv_seq},
                 {"from", message.from},
                 {"sent_at", message.sent_at_ms},
                 {"content_type", message.content_type},
                 {"body", message.body}};
  if (!message.client_msg_id.empty()) o["client_msg_id"] = message.client_msg_id;
  return json::serialize(o);
}

std::optional<client::Message> messageFromJson(const json::value& item) {
  const json::object* o = item.if_object();
  if (!o) return std::nullopt;
  auto str = [&](std::string_view key) -> const json::string* {
    const json::value* v = o->if_contains(key);
    return v ? v->if_string() : nullptr;
  };
  auto num = [&](std::string_view key) -> std::optional<std::int64_t> {
    const json::value* v = o->if_contains(key);
    if (!v) return std::nullopt;
    if (v->is_int64()) return v->as_int64();
    if (v->is_uint64()) return static_cast<std::int64_t>(v->as_uint64());
    return std::nullopt;
  };
  client::Message m;
  const json::string* msg_id = str("msg_id");
  const json::string* conversation = str("conversation");
  const json::string* from = str("from");
  const json::string* body = str("body");
  auto conv_seq = num("conv_seq");
  auto sent_at = num("sent_at");
  if (!msg_id || !conversation || !from || !body || !conv_seq || !sent_at) return std::nullopt;
  std::from_chars(msg_id->data(), msg_id->data() + msg_id->size(), m.msg_id);
  m.conversation = std::string(*conversation);
  m.from = std::string(*from);
  m.body = std::string(*body);
  m.conv_seq = static_cast<std::uint64_t>(*conv_seq);
  m.sent_at_ms = *sent_at;
  m.seq = static_cast<std::uint64_t>(num("seq").value_or(0));
  if (const json::string* t = str("content_type")) m.content_type = std::string(*t);
  if (const json::string* c = str("client_msg_id")) m.client_msg_id = std::string(*c);
  return m;
}

}  // namespace pigeon::console
