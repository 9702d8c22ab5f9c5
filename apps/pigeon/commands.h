// The console's command language: one input line → one Command. Pure parsing, no I/O;
// thread-safe. CIM-compatible first (`:q!`, `:olu`, `user;;text`, plain text to the group).
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace pigeon::console {

namespace cmd {
struct Empty {};  // a blank line: nothing to do
struct Text {
  std::string body;
};  // to the current conversation (aliases unexpanded)
struct Private {
  std::string user, body;
};                      // `bob;;hello`
struct OnlineUsers {};  // :olu
struct UsersByPrefix {
  std::string prefix;
};               // :pu <prefix>
struct Info {};  // :info
struct Help {};  // :all (also :help, :?)
struct Quit {};  // :q!
struct Search {
  std::string keyword;
};  // :q <keyword>
struct Emoji {
  std::size_t page = 1;
};  // :emoji [page]
struct Delay {
  double seconds = 0;
  std::string body;
};  // :delay <seconds> <text>
struct To {
  std::string target;
};  // :to <user|#group>: "bob" or "#lobby" / "#<id|name>"
struct History {
  std::size_t count = 20;
};                 // :history [n]
struct Groups {};  // :groups
struct Create {
  std::string name;
  std::vector<std::string> members;
};  // :create <name> <user…>
struct Add {
  std::string group, user;
};  // :add <group> <user>
struct Leave {
  std::string group;
};                 // :leave <group>
struct Unread {};  // :unread
// A known command used wrongly: `usage` says how to use it.
struct Usage {
  std::string usage;
};
// A line that looks like a command but is none: the console prints the help.
struct Unknown {
  std::string name;
};
}  // namespace cmd

using Command =
    std::variant<cmd::Empty, cmd::Text, cmd::Private, cmd::OnlineUsers, cmd::UsersByPrefix,
                 cmd::Info, cmd::Help, cmd::Quit, cmd::Search, cmd::Emoji, cmd::Delay, cmd::To,
                 cmd::History, cmd::Groups, cmd::Create, cmd::Add, cmd::Leave, cmd::Unread,
                 cmd::Usage, cmd::Unknown>;

// Limits the parser enforces.
inline constexpr double kMaxDelaySeconds = 24 * 3600;
inline constexpr std::size_t kMaxHistory = 500;

// Parses one line (without its newline). Rules:
//  - a line starting with ':' is a command when its first word is one (`:q!`, `:olu`, …);
//    a first word that is an emoji alias (`:smile: hi`) or a line starting with "::" is text
//    ("::" sends the rest starting with one ':'); any other ":word" is Unknown;
//  - `name;;text` with a valid username before the first ";;" is a private message;
//  - anything else is text for the current conversation; surrounding spaces are trimmed.
Command parseCommand(std::string_view line);

struct CommandHelp {
  std::string_view syntax;
  std::string_view what;
};
// Every command with one line of help, in the order `:all` prints them.
std::span<const CommandHelp> commandHelp();

// Whether `name` can be a username (3–32 of A-Z a-z 0-9 _ . -), as the server's rule.
bool looksLikeUsername(std::string_view name);

}  // namespace pigeon::console
