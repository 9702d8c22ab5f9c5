// Conversation ids: "p:<lo>:<hi>" for the 1:1 conversation of users lo < hi (or lo == hi for
// notes to self), "g:<group_id>" for a group. Pure functions, no I/O.
#pragma once

#include <string>
#include <string_view>

#include "base/error.h"
#include "store/types.h"

namespace pigeon::core {

struct ConversationRef {
  enum class Kind { Direct, Group } kind = Kind::Direct;
  store::UserId lo = 0, hi = 0;  // Direct
  store::GroupId group = 0;      // Group
};

std::string directConversation(store::UserId a, store::UserId b);
std::string groupConversation(store::GroupId group);
// Errors: BadRequest for anything that is not exactly one of the two forms with ids > 0.
Result<ConversationRef> parseConversation(std::string_view id);

}  // namespace pigeon::core
