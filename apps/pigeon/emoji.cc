#include "emoji.h"

#include <algorithm>
#include <array>

namespace pigeon::console {
namespace {

// Two aliases a line.
// clang-format off
constexpr std::array kAliases = {
    EmojiAlias{"smile", "😄"},          EmojiAlias{"grin", "😁"},
    EmojiAlias{"joy", "😂"},            EmojiAlias{"rofl", "🤣"},
    EmojiAlias{"smiley", "😃"},         EmojiAlias{"laughing", "😆"},
    EmojiAlias{"sweat_smile", "😅"},    EmojiAlias{"wink", "😉"},
    EmojiAlias{"blush", "😊"},          EmojiAlias{"innocent", "😇"},
    EmojiAlias{"slight_smile", "🙂"},   EmojiAlias{"upside_down", "🙃"},
    EmojiAlias{"heart_eyes", "😍"},     EmojiAlias{"kissing_heart", "😘"},
    EmojiAlias{"yum", "😋"},            EmojiAlias{"stuck_out_tongue", "😛"},
    EmojiAlias{"zany", "🤪"},           EmojiAlias{"hug", "🤗"},
    EmojiAlias{"thinking", "🤔"},       EmojiAlias{"shush", "🤫"},
    EmojiAlias{"neutral", "😐"},        EmojiAlias{"expressionless", "😑"},
    EmojiAlias{"no_mouth", "😶"},       EmojiAlias{"smirk", "😏"},
    EmojiAlias{"unamused", "😒"},       EmojiAlias{"roll_eyes", "🙄"},
    EmojiAlias{"grimace", "😬"},        EmojiAlias{"relieved", "😌"},
    EmojiAlias{"pensive", "😔"},        EmojiAlias{"sleepy", "😪"},
    EmojiAlias{"sleeping", "😴"},       EmojiAlias{"mask", "😷"},
    EmojiAlias{"nerd", "🤓"},           EmojiAlias{"sunglasses", "😎"},
    EmojiAlias{"confused", "😕"},       EmojiAlias{"worried", "😟"},
    EmojiAlias{"frown", "🙁"},          EmojiAlias{"open_mouth", "😮"},
    EmojiAlias{"astonished", "😲"},     EmojiAlias{"flushed", "😳"},
    EmojiAlias{"pleading", "🥺"},       EmojiAlias{"fearful", "😨"},
    EmojiAlias{"cold_sweat", "😰"},     EmojiAlias{"cry", "😢"},
    EmojiAlias{"sob", "😭"},            EmojiAlias{"scream", "😱"},
    EmojiAlias{"confounded", "😖"},     EmojiAlias{"disappointed", "😞"},
    EmojiAlias{"tired", "😫"},          EmojiAlias{"yawn", "🥱"},
    EmojiAlias{"angry", "😠"},          EmojiAlias{"rage", "😡"},
    EmojiAlias{"skull", "💀"},          EmojiAlias{"poop", "💩"},
    EmojiAlias{"clown", "🤡"},          EmojiAlias{"ghost", "👻"},
    EmojiAlias{"alien", "👽"},          EmojiAlias{"robot", "🤖"},
    EmojiAlias{"see_no_evil", "🙈"},    EmojiAlias{"heart", "❤️"},
    EmojiAlias{"broken_heart", "💔"},   EmojiAlias{"sparkling_heart", "💖"},
    EmojiAlias{"100", "💯"},            EmojiAlias{"boom", "💥"},
    EmojiAlias{"zzz", "💤"},            EmojiAlias{"wave", "👋"},
    EmojiAlias{"ok_hand", "👌"},        EmojiAlias{"v", "✌️"},
    EmojiAlias{"crossed_fingers", "🤞"}, EmojiAlias{"point_up", "☝️"},
    EmojiAlias{"point_right", "👉"},    EmojiAlias{"thumbsup", "👍"},
    EmojiAlias{"+1", "👍"},             EmojiAlias{"thumbsdown", "👎"},
    EmojiAlias{"-1", "👎"},             EmojiAlias{"fist", "✊"},
    EmojiAlias{"clap", "👏"},           EmojiAlias{"raised_hands", "🙌"},
    EmojiAlias{"pray", "🙏"},           EmojiAlias{"muscle", "💪"},
    EmojiAlias{"eyes", "👀"},           EmojiAlias{"brain", "🧠"},
    EmojiAlias{"facepalm", "🤦"},       EmojiAlias{"shrug", "🤷"},
    EmojiAlias{"dog", "🐶"},            EmojiAlias{"cat", "🐱"},
    EmojiAlias{"bird", "🐦"},           EmojiAlias{"pigeon", "🕊️"},
    EmojiAlias{"unicorn", "🦄"},        EmojiAlias{"bug", "🐛"},
    EmojiAlias{"rose", "🌹"},           EmojiAlias{"sunflower", "🌻"},
    EmojiAlias{"sunny", "☀️"},          EmojiAlias{"rainbow", "🌈"},
    EmojiAlias{"snowflake", "❄️"},      EmojiAlias{"fire", "🔥"},
    EmojiAlias{"zap", "⚡"},            EmojiAlias{"star", "⭐"},
    EmojiAlias{"sparkles", "✨"},       EmojiAlias{"moon", "🌙"},
    EmojiAlias{"coffee", "☕"},         EmojiAlias{"tea", "🍵"},
    EmojiAlias{"beer", "🍺"},           EmojiAlias{"wine", "🍷"},
    EmojiAlias{"pizza", "🍕"},          EmojiAlias{"hamburger", "🍔"},
    EmojiAlias{"cake", "🍰"},           EmojiAlias{"apple", "🍎"},
    EmojiAlias{"tada", "🎉"},           EmojiAlias{"gift", "🎁"},
    EmojiAlias{"balloon", "🎈"},        EmojiAlias{"trophy", "🏆"},
    EmojiAlias{"soccer", "⚽"},         EmojiAlias{"rocket", "🚀"},
    EmojiAlias{"car", "🚗"},            EmojiAlias{"airplane", "✈️"},
    EmojiAlias{"house", "🏠"},          EmojiAlias{"phone", "📱"},
    EmojiAlias{"computer", "💻"},       EmojiAlias{"email", "📧"},
    EmojiAlias{"bulb", "💡"},           EmojiAlias{"lock", "🔒"},
    EmojiAlias{"key", "🔑"},            EmojiAlias{"bell", "🔔"},
    EmojiAlias{"memo", "📝"},           EmojiAlias{"calendar", "📅"},
    EmojiAlias{"hourglass", "⌛"},      EmojiAlias{"money", "💰"},
    EmojiAlias{"check", "✅"},          EmojiAlias{"x", "❌"},
    EmojiAlias{"warning", "⚠️"},        EmojiAlias{"question", "❓"},
    EmojiAlias{"exclamation", "❗"},    EmojiAlias{"ok", "🆗"},
};
// clang-format on

// A name is what may stand between the colons: letters, digits, '_', '+' and '-'.
bool isNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '+' || c == '-';
}

}  // namespace

std::span<const EmojiAlias> emojiAliases() {
  return kAliases;
}

std::optional<std::string_view> findEmoji(std::string_view name) {
  for (const auto& alias : kAliases) {
    if (alias.name == name) return alias.emoji;
  }
  return std::nullopt;
}

std::string expandEmoji(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ':') {
      std::size_t j = i + 1;
      while (j < text.size() && isNameChar(text[j])) ++j;
      if (j < text.size() && text[j] == ':' && j > i + 1) {
        if (auto emoji = findEmoji(text.substr(i + 1, j - i - 1))) {
          out += *emoji;
          i = j + 1;
          continue;
        }
        // Not an alias: keep the first colon and look again from the closing one, which may
        // open an alias ("12:30:smile:").
        out += text.substr(i, j - i);
        i = j;
        continue;
      }
    }
    out += text[i];
    ++i;
  }
  return out;
}

std::size_t emojiPageCount() {
  return (kAliases.size() + kEmojiPerPage - 1) / kEmojiPerPage;
}

std::span<const EmojiAlias> emojiPage(std::size_t page) {
  if (page == 0 || page > emojiPageCount()) return {};
  const std::size_t first = (page - 1) * kEmojiPerPage;
  const std::size_t count = std::min(kEmojiPerPage, kAliases.size() - first);
  return std::span<const EmojiAlias>(kAliases).subspan(first, count);
}

}  // namespace pigeon::console
