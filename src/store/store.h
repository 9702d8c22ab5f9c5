// The storage interface. Engine-neutral: the embedded RocksDB engine (store/rocksdb) and the
// cluster's MySQL engine implement it; `core` depends only on this header.
//
// Threads: every method is thread-safe. All methods except append() BLOCK on disk or network
// I/O: call them from a storage/worker thread, never from an I/O event loop.
//
// Errors: NotFound / Conflict / BadRequest as documented per method; Unavailable when the
// engine failed (disk error, lost connection) — the caller reports it and stores nothing else.
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "store/types.h"

namespace pigeon::store {

class Store {
 public:
  virtual ~Store() = default;

  // ---- users -------------------------------------------------------------------------------
  // Assigns the next user id (1, 2, …). Conflict if the username exists (case-sensitive).
  virtual Result<User> createUser(std::string_view username, std::string_view password_hash,
                                  std::int64_t created_at_ms) = 0;
  virtual Result<User> getUser(UserId id) = 0;                         // NotFound
  virtual Result<User> findUserByName(std::string_view username) = 0;  // NotFound
  // Users whose name starts with `prefix`, in name order, at most `limit`.
  virtual Result<std::vector<User>> listUsers(std::string_view prefix, std::size_t limit) = 0;
  // Every user id, ascending (for the built-in lobby group).
  virtual Result<std::vector<UserId>> allUserIds() = 0;
  // How many users exist (users are never deleted). Cheap: no scan.
  virtual Result<std::uint64_t> userCount() = 0;

  // ---- devices and tokens ------------------------------------------------------------------
  // Records a login from `device` (creates the device on first use).
  virtual Result<void> touchDevice(UserId user, std::string_view device, std::int64_t now_ms) = 0;
  virtual Result<std::vector<Device>> listDevices(UserId user) = 0;
  virtual Result<void> putToken(const Token& token) = 0;
  virtual Result<Token> getToken(std::string_view token_hash) = 0;    // NotFound
  virtual Result<void> deleteToken(std::string_view token_hash) = 0;  // idempotent
  // Deletes every token that expired at or before `now_ms`; returns how many.
  virtual Result<std::size_t> purgeExpiredTokens(std::int64_t now_ms) = 0;

  // ---- groups ------------------------------------------------------------------------------
  // Creates the group with `members` (the owner must be among them). Conflict if the id exists.
  virtual Result<void> createGroup(const Group& group, const std::vector<UserId>& members) = 0;
  virtual Result<Group> getGroup(GroupId id) = 0;  // NotFound
  // Adds a member; false if already a member. NotFound if the group does not exist.
  virtual Result<bool> addMember(GroupId group, UserId user) = 0;
  // Removes a member; false if not a member. NotFound if the group does not exist.
  virtual Result<bool> removeMember(GroupId group, UserId user) = 0;
  virtual Result<bool> isMember(GroupId group, UserId user) = 0;
  virtual Result<std::vector<UserId>> listMembers(GroupId group) = 0;  // ascending
  virtual Result<std::vector<GroupId>> groupsOf(UserId user) = 0;      // ascending

  // ---- messages ----------------------------------------------------------------------------
  using AppendCallback = std::function<void(Result<Appended>)>;

  // Stores a message and its inbox references atomically, then calls `done`:
  //  - if (sender, client_msg_id) was stored before (client_msg_id not empty), nothing is
  //    written and `done` gets the original message with duplicate = true; a duplicate of a
  //    message still being written waits for it and gets the same answer;
  //  - otherwise the store assigns the conversation's next conv_seq and each recipient's next
  //    inbox seq (no gaps, no repeats, strictly increasing, surviving restarts), writes the
  //    message, its timeline entry, the inbox references and the idempotency entry in one
  //    atomic write, and calls `done` only once that write is durable (per the engine's
  //    durability setting).
  // Concurrent appends are group-committed. Never blocks on I/O: `done` runs later on a store
  // thread, or inline for an immediate error. Within one conversation, conv_seq order is
  // commit order, and every inbox lists that conversation's messages in conv_seq order.
  virtual void append(NewMessage message, AppendCallback done) = 0;

  virtual Result<Message> getMessage(MsgId id) = 0;  // NotFound
  // The user's inbox after `after_seq`, ascending, at most `limit` items.
  virtual Result<std::vector<InboxItem>> readInbox(UserId user, Seq after_seq,
                                                   std::size_t limit) = 0;
  virtual Result<Seq> lastInboxSeq(UserId user) = 0;  // 0 for an empty inbox
  // Up to `limit` messages of `conversation` with conv_seq < before_conv_seq (0 means the
  // newest), returned in ascending conv_seq order.
  virtual Result<std::vector<Message>> readTimeline(std::string_view conversation,
                                                    Seq before_conv_seq, std::size_t limit) = 0;
  // The largest message id stored, 0 if none (seeds the id generator at start-up).
  virtual Result<MsgId> maxMessageId() = 0;

  // ---- cursors -----------------------------------------------------------------------------
  virtual Result<Seq> getCursor(UserId user, std::string_view device) = 0;  // 0 if none
  // Moves the cursor to max(current, seq) durably; returns the new value.
  virtual Result<Seq> advanceCursor(UserId user, std::string_view device, Seq seq) = 0;
  // advanceCursor() for many devices at once, in one write where the engine can: returns each
  // new value in order. On an error some of them may have moved (each move is still atomic).
  virtual Result<std::vector<Seq>> advanceCursors(std::span<const CursorUpdate> updates) {
    std::vector<Seq> out;
    out.reserve(updates.size());
    for (const CursorUpdate& u : updates) {
      auto moved = advanceCursor(u.user, u.device, u.seq);
      if (!moved) return std::unexpected(moved.error());
      out.push_back(*moved);
    }
    return out;
  }
};

}  // namespace pigeon::store
