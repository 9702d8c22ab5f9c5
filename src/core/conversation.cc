#include "core/conversation.h"

#include <algorithm>
#include <charconv>

namespace pigeon::core {
namespace {

// Parses a decimal id > 0 with no sign, no leading zero and nothing after it.
bool parseId(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 20 || s[0] == '0') return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

std::string directConversation(store::UserId a, store::UserId b) {
  return "p:" + std::to_string(std::min(a, b)) + ":" + std::to_string(std::max(a, b));
}

std::string groupConversation(store::GroupId group) {
  return "g:" + std::to_string(group);
}

Result<ConversationRef> parseConversation(std::string_view id) {
  ConversationRef ref;
  if (id.starts_with("g:")) {
    ref.kind = ConversationRef::Kind::Group;
    if (parseId(id.substr(2), ref.group)) return ref;
  } else if (id.starts_with("p:")) {
    const auto rest = id.substr(2);
    const auto colon = rest.find(':');
    if (colon != std::string_view::npos && parseId(rest.substr(0, colon), ref.lo) &&
        parseId(rest.substr(colon + 1), ref.hi) && ref.lo <= ref.hi) {
      return ref;
    }
  }
  return fail(Errc::BadRequest, "conversation must be 'p:<user_id>:<user_id>' or 'g:<group_id>'");
}

}  // namespace pigeon::core
