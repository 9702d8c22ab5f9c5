#include "emoji.h"

#include <gtest/gtest.h>

#include <set>

namespace pigeon::console {
namespace {

TEST(Emoji, TableHasAboutAHundredUniqueAliases) {
  std::set<std::string_view> names;
  for (const auto& a : emojiAliases()) {
    EXPECT_TRUE(names.insert(a.name).second) << a.name;
    EXPECT_FALSE(a.emoji.empty());
    for (char c : a.name) EXPECT_NE(c, ':');
  }
  EXPECT_GE(names.size(), 100u);
  EXPECT_EQ(findEmoji("smile"), "😄");
  EXPECT_FALSE(findEmoji("no_such_thing"));
}

TEST(Emoji, ExpandsKnownAliasesOnly) {
  EXPECT_EQ(expandEmoji("hi :smile: and :+1:"), "hi 😄 and 👍");
  EXPECT_EQ(expandEmoji(":heart::heart:"), "❤️❤️");
  EXPECT_EQ(expandEmoji("at 12:30:45 sharp"), "at 12:30:45 sharp");
  EXPECT_EQ(expandEmoji(":unknown: stays"), ":unknown: stays");
  EXPECT_EQ(expandEmoji("x:unknown:smile:"), "x:unknown😄");
  EXPECT_EQ(expandEmoji("a : b :: c :"), "a : b :: c :");
  EXPECT_EQ(expandEmoji("café :coffee:"), "café ☕");
  EXPECT_EQ(expandEmoji(""), "");
}

TEST(Emoji, Pages) {
  const std::size_t pages = emojiPageCount();
  ASSERT_GE(pages, 5u);
  std::size_t total = 0;
  for (std::size_t p = 1; p <= pages; ++p) {
    auto page = emojiPage(p);
    EXPECT_FALSE(page.empty());
    EXPECT_LE(page.size(), kEmojiPerPage);
    total += page.size();
  }
  EXPECT_EQ(total, emojiAliases().size());
  EXPECT_TRUE(emojiPage(0).empty());
  EXPECT_TRUE(emojiPage(pages + 1).empty());
  EXPECT_EQ(emojiPage(1).front().name, "smile");
}

}  // namespace
}  // namespace pigeon::console
