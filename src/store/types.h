// Records kept by a Store. Plain values, no I/O types; shared by every engine.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pigeon::store {

using UserId = std::uint64_t;
using GroupId = std::uint64_t;
using MsgId = std::uint64_t;
using Seq = std::uint64_t;

struct User {
  UserId id = 0;
  std::string username;
  std::string password_hash;  // libsodium crypto_pwhash_str output (argon2id)
  std::int64_t created_at_ms = 0;

  friend bool operator==(const User&, const User&) = default;
};

// A logged-in device's bearer token. Only a hash of the token is stored, never the token.
struct Token {
  std::string token_hash;  // raw bytes of a 32-byte BLAKE2b hash
  UserId user = 0;
  std::string device;
  std::int64_t created_at_ms = 0;
  std::int64_t expires_at_ms = 0;

  friend bool operator==(const Token&, const Token&) = default;
};

struct Device {
  std::string name;
  std::int64_t first_seen_ms = 0;
  std::int64_t last_login_ms = 0;

  friend bool operator==(const Device&, const Device&) = default;
};

struct Group {
  GroupId id = 0;
  std::string name;
  UserId owner = 0;
  std::int64_t created_at_ms = 0;

  friend bool operator==(const Group&, const Group&) = default;
};

// A message as stored: the body is kept once, whatever the number of recipients.
struct Message {
  MsgId id = 0;
  std::string conversation;  // "p:<lo>:<hi>" or "g:<group_id>"
  Seq conv_seq = 0;          // 1, 2, 3 … within the conversation
  UserId sender = 0;
  std::string sender_device;
  std::string client_msg_id;  // may be empty (then no idempotency)
  std::int64_t created_at_ms = 0;
  std::string content_type;
  std::string body;

  friend bool operator==(const Message&, const Message&) = default;
};

// One entry of a user's inbox, joined with the message it references.
struct InboxItem {
  Seq seq = 0;
  Message message;

  friend bool operator==(const InboxItem&, const InboxItem&) = default;
};

// What a sender asks to store. The store assigns conv_seq and each recipient's inbox seq.
struct NewMessage {
  Message message;                 // conv_seq is ignored (assigned by the store)
  std::vector<UserId> recipients;  // every inbox that gets a reference, sender included, no repeats
};

struct InboxRef {
  UserId user = 0;
  Seq seq = 0;

  friend bool operator==(const InboxRef&, const InboxRef&) = default;
};

// One device's cursor to move forward (Store::advanceCursors).
struct CursorUpdate {
  UserId user = 0;
  std::string device;
  Seq seq = 0;
};

struct Appended {
  Message message;             // as stored; for a duplicate, the original message
  Seq sender_seq = 0;          // the sender's inbox seq of this message (0 if not a recipient)
  std::vector<InboxRef> refs;  // inbox references written now; empty for a duplicate
  bool duplicate = false;      // (sender, client_msg_id) was seen before: nothing was written
};

}  // namespace pigeon::store
