// The console's emoji aliases: `:smile:`-style names for common emoji, expanded in outgoing
// messages and listed by `:emoji [page]`. A fixed built-in table; pure functions, thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace pigeon::console {

struct EmojiAlias {
  std::string_view name;   // without the colons: "smile"
  std::string_view emoji;  // UTF-8
};

// Every alias, in the order `:emoji` lists them (no two with the same name).
std::span<const EmojiAlias> emojiAliases();

// The emoji for `name` (without colons), if there is one.
std::optional<std::string_view> findEmoji(std::string_view name);

// `text` with every `:name:` whose name is in the table replaced by its emoji; anything else
// (unknown names, lone colons, "12:30:45") stays as it is.
std::string expandEmoji(std::string_view text);

inline constexpr std::size_t kEmojiPerPage = 20;

// How many pages `:emoji` has, and the aliases of page `page` (1-based; empty if out of range).
std::size_t emojiPageCount();
std::span<const EmojiAlias> emojiPage(std::size_t page);

}  // namespace pigeon::console
