// How the console shows things: message lines, conversation labels, the unread counts and the
// JSON line given to --on-message programs. Pure code, no I/O; not thread-safe (one per
// console, used on its executor).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/client.h"

namespace pigeon::console {

// Names the console knows for user and group ids, to label conversations: "#lobby",
// "#family", "@bob". Learns them from what the server says (logins, lists, messages).
class ConversationNames {
 public:
  void setSelf(std::uint64_t user_id, std::string username);
  std::uint64_t selfId() const { return self_id_; }
  const std::string& selfName() const { return self_name_; }

  void learnUser(std::uint64_t id, std::string username);
  void learnGroup(std::uint64_t id, std::string name);
  // From a message: the sender of a private message names the other side.
  void learnFrom(const client::Message& message);
  std::optional<std::string> userName(std::uint64_t id) const;
  std::optional<std::string> groupName(std::uint64_t id) const;

  // "#lobby", "#<name>" (or "#<id>" while the name is unknown), "@<other user>" (or "@#<id>"),
  // "@<self>" for notes to self; the conversation id itself when it cannot be parsed.
  std::string label(std::string_view conversation) const;
  // The private conversation with `other` ("p:<lo>:<hi>").
  std::string directConversation(std::uint64_t other) const;

 private:
  std::uint64_t self_id_ = 0;
  std::string self_name_;
  std::map<std::uint64_t, std::string> users_, groups_;
};

// Client-side unread counts: messages from others that arrived in a conversation other than
// the current one since it was last viewed (made current). Kept only for this run.
class UnreadCounts {
 public:
  // A message from someone else arrived in `conversation` while `current` was shown.
  void onIncoming(const std::string& conversation, const std::string& current);
  void viewed(const std::string& conversation);
  // Conversations with a non-zero count, by conversation id.
  const std::map<std::string, std::size_t>& counts() const { return counts_; }
  std::size_t total() const;

 private:
  std::map<std::string, std::size_t> counts_;
};

// "HH:MM:SS" in local time when `ms` is today (relative to `now_ms`), else "YYYY-MM-DD HH:MM".
std::string formatTime(std::int64_t ms, std::int64_t now_ms);

// A body made safe to print on a terminal: control characters other than newline and tab
// (ESC, C1 controls…) become '?', invalid UTF-8 bytes become U+FFFD, continuation lines are
// indented by `indent` spaces. Non-text content types are shown as "[<type>, N bytes]".
std::string printableBody(std::string_view content_type, std::string_view body,
                          std::size_t indent = 0);

// One message as a line: "[12:34:56] #lobby bob: hello".
std::string formatMessage(const client::Message& message, const ConversationNames& names,
                          std::int64_t now_ms);

// A message as one JSON line (no newline), the shape of a sync item of the HTTP API plus
// "label": {"seq","msg_id","conversation","label","conv_seq","from","sent_at","content_type",
// "body"[,"client_msg_id"]}.
std::string messageJsonLine(const client::Message& message, const ConversationNames& names);

// A sync/history/search item of the HTTP API (docs/api.md) as a client::Message; nullopt if
// a required field is missing or has the wrong type.
std::optional<client::Message> messageFromJson(const boost::json::value& item);

}  // namespace pigeon::console
