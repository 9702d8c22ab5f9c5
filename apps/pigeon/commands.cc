#include "commands.h"

#include <array>
#include <charconv>
#include <cmath>

#include "emoji.h"

namespace pigeon::console {
namespace {

constexpr std::array kHelp = {
    CommandHelp{"<text>", "send to the current conversation (the lobby at start)"},
    CommandHelp{"<user>;;<text>", "send a private message to <user>"},
    CommandHelp{":to <user>|#<group>", "switch the current conversation (#lobby, #<id>, #<name>)"},
    CommandHelp{":olu", "list the users online"},
    CommandHelp{":pu <prefix>", "list the users whose name starts with <prefix>"},
    CommandHelp{":info", "who am I: user, device, server, transport, connection"},
    CommandHelp{":history [n]", "the last n (20) messages of the current conversation"},
    CommandHelp{":q <keyword>", "search my messages for <keyword>"},
    CommandHelp{":unread", "conversations with messages I have not viewed"},
    CommandHelp{":groups", "my groups"},
    CommandHelp{":create <name> <user…>", "create a group with these members"},
    CommandHelp{":add <group> <user>", "add <user> to a group I own"},
    CommandHelp{":leave <group>", "leave a group"},
    CommandHelp{":emoji [page]", "list the :alias: emoji (expanded in what I send)"},
    CommandHelp{":delay <seconds> <text>", "send <text> to the current conversation later"},
    CommandHelp{":all", "this list"},
    CommandHelp{":q!", "quit (after pending sends finish)"},
};

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

// Splits off the first word; `rest` is what follows it, trimmed.
std::string_view firstWord(std::string_view s, std::string_view& rest) {
  const auto end = s.find_first_of(" \t");
  if (end == std::string_view::npos) {
    rest = {};
    return s;
  }
  rest = trim(s.substr(end));
  return s.substr(0, end);
}

std::vector<std::string> words(std::string_view s) {
  std::vector<std::string> out;
  while (!s.empty()) {
    std::string_view rest;
    std::string_view word = firstWord(s, rest);
    if (!word.empty()) out.emplace_back(word);
    s = rest;
  }
  return out;
}

std::optional<std::size_t> parseCount(std::string_view s) {
  std::size_t n = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return n;
}

std::optional<double> parseSeconds(std::string_view s) {
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

Command parseColon(std::string_view line) {
  std::string_view rest;
  const std::string_view name = firstWord(line, rest);
  const auto args = words(rest);

  if (name == ":q!") return cmd::Quit{};
  if (name == ":q") {
    if (rest.empty()) return cmd::Usage{":q <keyword>   (to quit: :q!)"};
    return cmd::Search{std::string(rest)};
  }
  if (name == ":olu") return cmd::OnlineUsers{};
  if (name == ":pu") {
    if (args.size() != 1) return cmd::Usage{":pu <prefix>"};
    return cmd::UsersByPrefix{args[0]};
  }
  if (name == ":info") return cmd::Info{};
  if (name == ":all" || name == ":help" || name == ":?") return cmd::Help{};
  if (name == ":emoji") {
    if (args.empty()) return cmd::Emoji{1};
    auto page = parseCount(args[0]);
    if (args.size() != 1 || !page || *page == 0) return cmd::Usage{":emoji [page]"};
    return cmd::Emoji{*page};
  }
  if (name == ":delay") {
    std::string_view text;
    const std::string_view secs = firstWord(rest, text);
    auto seconds = parseSeconds(secs);
    if (!seconds || *seconds < 0 || *seconds > kMaxDelaySeconds || text.empty()) {
      return cmd::Usage{":delay <seconds> <text>   (seconds: 0 to 86400)"};
    }
    return cmd::Delay{*seconds, std::string(text)};
  }
  if (name == ":to") {
    if (args.size() != 1 || args[0] == "#" || (args[0][0] != '#' && !looksLikeUsername(args[0]))) {
      return cmd::Usage{":to <user>|#lobby|#<group id>|#<group name>"};
    }
    return cmd::To{args[0]};
  }
  if (name == ":history") {
    if (args.empty()) return cmd::History{};
    auto n = parseCount(args[0]);
    if (args.size() != 1 || !n || *n == 0 || *n > kMaxHistory) {
      return cmd::Usage{":history [n]   (n: 1 to 500)"};
    }
    return cmd::History{*n};
  }
  if (name == ":groups") return cmd::Groups{};
  if (name == ":create") {
    if (args.size() < 2) return cmd::Usage{":create <name> <user…>"};
    return cmd::Create{args[0], std::vector<std::string>(args.begin() + 1, args.end())};
  }
  if (name == ":add") {
    if (args.size() != 2) return cmd::Usage{":add <group> <user>"};
    return cmd::Add{args[0], args[1]};
  }
  if (name == ":leave") {
    if (args.size() != 1) return cmd::Usage{":leave <group>"};
    return cmd::Leave{args[0]};
  }
  if (name == ":unread") return cmd::Unread{};
  return cmd::Unknown{std::string(name)};
}

}  // namespace

bool looksLikeUsername(std::string_view name) {
  if (name.size() < 3 || name.size() > 32) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Command parseCommand(std::string_view raw) {
  const std::string_view line = trim(raw);
  if (line.empty()) return cmd::Empty{};
  if (line.starts_with("::")) return cmd::Text{std::string(line.substr(1))};
  if (line[0] == ':') {
    // ":smile: hi" is text that starts with an alias, not a command.
    const auto close = line.find(':', 1);
    const auto space = line.find_first_of(" \t");
    if (close != std::string_view::npos && close < space && findEmoji(line.substr(1, close - 1))) {
      return cmd::Text{std::string(line)};
    }
    return parseColon(line);
  }
  if (const auto sep = line.find(";;"); sep != std::string_view::npos) {
    const std::string_view user = line.substr(0, sep);
    const std::string_view body = trim(line.substr(sep + 2));
    if (looksLikeUsername(user)) {
      if (body.empty()) return cmd::Usage{"<user>;;<text>"};
      return cmd::Private{std::string(user), std::string(body)};
    }
  }
  return cmd::Text{std::string(line)};
}

std::span<const CommandHelp> commandHelp() {
  return kHelp;
}

}  // namespace pigeon::console
