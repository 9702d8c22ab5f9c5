#include "commands.h"

#include <gtest/gtest.h>

#include <set>

namespace pigeon::console {
namespace {

template <typename T>
const T& as(const Command& c) {
  EXPECT_TRUE(std::holds_alternative<T>(c)) << "variant index " << c.index();
  static const T empty{};
  return std::holds_alternative<T>(c) ? std::get<T>(c) : empty;
}

TEST(ParseCommand, PlainTextGoesToTheCurrentConversation) {
  EXPECT_EQ(as<cmd::Text>(parseCommand("  hello world  ")).body, "hello world");
  EXPECT_TRUE(std::holds_alternative<cmd::Empty>(parseCommand("   ")));
  EXPECT_TRUE(std::holds_alternative<cmd::Empty>(parseCommand("")));
}

TEST(ParseCommand, CimPrivateMessage) {
  auto p = as<cmd::Private>(parseCommand("bob;;hello there"));
  EXPECT_EQ(p.user, "bob");
  EXPECT_EQ(p.body, "hello there");
  EXPECT_EQ(as<cmd::Private>(parseCommand("bob;; a;;b")).body, "a;;b");
  // Not a username before ";;": text.
  EXPECT_EQ(as<cmd::Text>(parseCommand("hi bob;;x")).body, "hi bob;;x");
  EXPECT_EQ(as<cmd::Text>(parseCommand(";;x")).body, ";;x");
  EXPECT_TRUE(std::holds_alternative<cmd::Usage>(parseCommand("bob;;   ")));
}

TEST(ParseCommand, CimCommands) {
  EXPECT_TRUE(std::holds_alternative<cmd::Quit>(parseCommand(":q!")));
  EXPECT_TRUE(std::holds_alternative<cmd::OnlineUsers>(parseCommand(":olu")));
  EXPECT_TRUE(std::holds_alternative<cmd::Info>(parseCommand(":info")));
  EXPECT_TRUE(std::holds_alternative<cmd::Help>(parseCommand(":all")));
  EXPECT_EQ(as<cmd::UsersByPrefix>(parseCommand(":pu al")).prefix, "al");
  EXPECT_TRUE(std::holds_alternative<cmd::Usage>(parseCommand(":pu")));
  EXPECT_EQ(as<cmd::Search>(parseCommand(":q  lunch at noon ")).keyword, "lunch at noon");
  EXPECT_TRUE(std::holds_alternative<cmd::Usage>(parseCommand(":q")));
}

TEST(ParseCommand, ConversationsAndGroups) {
  EXPECT_EQ(as<cmd::To>(parseCommand(":to bob")).target, "bob");
  EXPECT_EQ(as<cmd::To>(parseCommand(":to #lobby")).target, "#lobby");
  EXPECT_EQ(as<cmd::To>(parseCommand(":to #123")).target, "#123");
  EXPECT_TRUE(std::holds_alternative<cmd::Usage>(parseCommand(":to")));
  EXPECT_TRUE(std::holds_alternative<cmd::Usage>(parseCommand(":to #")));
  EXPECT_TRUE(std::holds_alternative<cmd::Usage>(parseCommand(":to b")));  // not a username
  EXPECT_EQ(as<cmd::History>(parseCommand(":history")).count, 20u);
  EXPECT_EQ(as<cmd::History>(parseCommand(":history 5")).count, 5u);
  EXPECT_TRUE(std::holds_alternative<cmd::Usage>(parseCommand(":history 0")));
  EXPECT_TRUE(std::holds_alternative<cmd::Usage>(parseCommand(":history x")));
  EXPECT_TRUE(std::holds_alternative<cmd::Usage>(parseCommand(":history 501")));
  EXPECT_TRUE(std::holds_alternative<cmd::Groups>(parseCommand(":groups")));
  auto create = as<cmd::Create>(parseCommand(":create family bob  carol"));
  EXPECT_EQ(create.name, "family");
  EXPECT_EQ(create.members, (std::vector<std::string>{"bob", "carol"}));
  EXPECT_TRUE(std::holds_alternative<cmd::Usage>(parseCommand(":create family")));
  auto add = as<cmd::Add>(parseCommand(":add #family dave"));
  EXPECT_EQ(add.group, "#family");
  EXPECT_EQ(add.user, "dave");
  EXPECT_EQ(as<cmd::Leave>(parseCommand(":leave family")).group, "family");
  EXPECT_TRUE(std::holds_alternative<cmd::Unread>(parseCommand(":unread")));
}

TEST(ParseCommand, EmojiAndDelay) {
  EXPECT_EQ(as<cmd::Emoji>(parseCommand(":emoji")).page, 1u);
  EXPECT_EQ(as<cmd::Emoji>(parseCommand(":emoji 3")).page, 3u);
  EXPECT_TRUE(std::holds_alternative<cmd::Usage>(parseCommand(":emoji 0")));
  auto d = as<cmd::Delay>(parseCommand(":delay 2.5 see you :wave:"));
  EXPECT_DOUBLE_EQ(d.seconds, 2.5);
  EXPECT_EQ(d.body, "see you :wave:");
  EXPECT_TRUE(std::holds_alternative<cmd::Usage>(parseCommand(":delay 5")));
  EXPECT_TRUE(std::holds_alternative<cmd::Usage>(parseCommand(":delay -1 x")));
  EXPECT_TRUE(std::holds_alternative<cmd::Usage>(parseCommand(":delay nan x")));
  EXPECT_TRUE(std::holds_alternative<cmd::Usage>(parseCommand(":delay 100000 x")));
}

TEST(ParseCommand, ColonLinesThatAreNotCommands) {
  EXPECT_EQ(as<cmd::Unknown>(parseCommand(":frobnicate now")).name, ":frobnicate");
  EXPECT_EQ(as<cmd::Unknown>(parseCommand(":")).name, ":");
  // An emoji alias at the start is text; "::" escapes a leading colon.
  EXPECT_EQ(as<cmd::Text>(parseCommand(":smile: morning")).body, ":smile: morning");
  EXPECT_EQ(as<cmd::Text>(parseCommand("::olu is a command")).body, ":olu is a command");
  EXPECT_EQ(as<cmd::Unknown>(parseCommand(":nosuchalias: x")).name, ":nosuchalias:");
}

TEST(CommandHelp, ListsEveryCommandOnce) {
  std::set<std::string_view> seen;
  for (const auto& h : commandHelp()) EXPECT_TRUE(seen.insert(h.syntax).second) << h.syntax;
  for (std::string_view c :
       {":olu", ":pu <prefix>", ":info", ":all", ":q!", ":q <keyword>", ":emoji [page]",
        ":delay <seconds> <text>", ":to <user>|#<group>", ":history [n]", ":groups",
        ":create <name> <user…>", ":add <group> <user>", ":leave <group>", ":unread"}) {
    EXPECT_TRUE(seen.count(c)) << c;
  }
}

}  // namespace
}  // namespace pigeon::console
