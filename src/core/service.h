// The domain of Pigeon: accounts, sessions, groups, sending, sync, acks and history.
//
// Knows nothing of HTTP, STOMP or sockets: protocols translate their requests into these calls
// and the returned Errors into their own error replies (one mapping per protocol).
//
// Threads: every method is thread-safe. Methods BLOCK on the store (and login/register on
// argon2id): call them from worker threads, never from an I/O event loop. send() blocks only
// for its checks; it returns before the message is durable and calls `done` later, on a store
// thread, once it is.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "base/metrics.h"
#include "base/rate_limiter.h"
#include "base/snowflake.h"
#include "core/credentials.h"
#include "store/store.h"

namespace pigeon::core {

using store::GroupId;
using store::MsgId;
using store::Seq;
using store::UserId;

// The built-in group every user belongs to (CIM's "group chat to everyone").
inline constexpr GroupId kLobbyId = 1;
inline constexpr std::string_view kLobbyName = "lobby";

struct ServiceOptions {
  std::uint32_t worker_id = 0;  // snowflake worker id of this node
  std::int64_t token_ttl_ms = 7LL * 24 * 3600 * 1000;
  PasswordCost password_cost = PasswordCost::interactive();
  std::size_t max_body_bytes = 64 * 1024;
  std::size_t max_page = 500;  // most items one sync/history/list returns
  std::size_t max_group_members = 1000;
  // Most inbox items one search() examines (newest first); bounds the work of one request.
  std::size_t max_search_scan = 5000;
  // Failed logins per username: a burst, refilled at a rate per minute (0: no limit). Guessing
  // a password costs an attacker these many tries per minute, whatever its addresses.
  double failed_logins_burst = 10;
  double failed_logins_per_minute = 5;
};

// Who is calling: resolved from a bearer token.
struct Principal {
  UserId user = 0;
  std::string username;
  std::string device;
  std::int64_t expires_at_ms = 0;
};

struct LoginResult {
  std::string token;  // shown once; only its hash is stored
  Principal principal;
};

struct SendRequest {
  std::optional<std::string> to_user;  // exactly one of to_user / to_group
  std::optional<GroupId> to_group;
  std::string body;
  std::string content_type = "text/plain";
  std::string client_msg_id;  // empty: no idempotency
};

struct SendResult {
  MsgId msg_id = 0;
  std::string conversation;
  Seq conv_seq = 0;
  Seq seq = 0;  // the sender's inbox seq
  std::int64_t sent_at_ms = 0;
  bool duplicate = false;
};

// A message as a reader sees it: with the sender's name.
struct MessageView {
  Seq seq = 0;  // inbox seq (0 in history, where it has no meaning)
  store::Message message;
  std::string from;  // sender's username
};

struct SyncResult {
  std::vector<MessageView> messages;
  Seq last_seq = 0;
  bool has_more = false;
};

struct SearchResult {
  std::vector<MessageView> messages;  // newest first, each with its inbox seq
  std::size_t scanned = 0;            // inbox items examined
  // true: every older item was examined, so no older match exists. false: the scan stopped
  // (at the limit of matches or of max_search_scan); pass `next_before` to go on.
  bool complete = false;
  Seq next_before = 0;  // the lowest seq examined (0 when complete)
};

// The longest search keyword, in bytes.
inline constexpr std::size_t kMaxSearchQuery = 256;

struct GroupView {
  store::Group group;
  std::string owner_name;            // empty for the lobby
  std::vector<store::User> members;  // filled by getGroup(); empty in listGroups()
  std::size_t member_count = 0;
};

// Receives every newly stored message (not duplicates), after it is durable: the gateway
// implements it to push to online devices. Called on a store thread; must not block.
class DeliverySink {
 public:
  virtual ~DeliverySink() = default;
  virtual void onStored(const store::Message& message, const std::string& from,
                        const std::vector<store::InboxRef>& refs) = 0;
};

class Service {
 public:
  // `store`, `clock` and `metrics` must outlive the service. Seeds the id generator from the
  // store. Errors: BadRequest for a bad worker id; the store's error if it cannot be read.
  static Result<std::unique_ptr<Service>> create(store::Store& store, const Clock& clock,
                                                 MetricsRegistry& metrics, ServiceOptions options);

  // Set once at start-up, before serving; may be null.
  void setDeliverySink(DeliverySink* sink) { sink_ = sink; }

  // Cluster mode: this node's snowflake worker id is leased (from ZooKeeper). nullopt: the
  // lease may be lost, so no id is issued — sends and group creation fail with Unavailable —
  // until a worker id is set again. Thread-safe.
  void setWorkerId(std::optional<std::uint32_t> worker);

  // ---- accounts ----------------------------------------------------------------------------
  // Errors: BadRequest (username or password rules), Conflict (username taken).
  Result<store::User> registerUser(std::string_view username, std::string_view password);
  // Errors: BadRequest (device rules), Unauthenticated (unknown user or wrong password: the
  // two are not told apart), RateLimited (too many failed logins for this username lately).
  Result<LoginResult> login(std::string_view username, std::string_view password,
                            std::string_view device);
  // Errors: Unauthenticated (unknown, forged or expired token).
  Result<Principal> authenticate(std::string_view token);
  Result<void> logout(std::string_view token);  // idempotent for a valid token
  // Deletes the tokens that have expired (expired tokens are refused anyway; this keeps the
  // table from growing with every login). Returns how many were removed.
  Result<std::size_t> purgeExpiredTokens();
  Result<std::vector<store::User>> findUsers(std::string_view prefix, std::size_t limit);
  Result<store::User> getUser(UserId id);
  // A user's name, from a cache (names never change). Errors: NotFound.
  Result<std::string> usernameOf(UserId id);

  // ---- groups ------------------------------------------------------------------------------
  // Errors: BadRequest (name, too many members), NotFound (a member does not exist).
  Result<GroupView> createGroup(const Principal& who, std::string_view name,
                                const std::vector<std::string>& member_names);
  Result<std::vector<GroupView>> listGroups(const Principal& who);
  // Errors: NotFound (no such group), Forbidden (not a member).
  Result<GroupView> getGroup(const Principal& who, GroupId id);
  // Owner only. Errors: NotFound, Forbidden, Conflict (already a member), BadRequest (lobby).
  Result<void> addMember(const Principal& who, GroupId id, std::string_view username);
  // Owner, or a member removing themself. Errors: NotFound (group, user or membership),
  // Forbidden, Conflict (the owner cannot leave), BadRequest (lobby).
  Result<void> removeMember(const Principal& who, GroupId id, std::string_view username);
  Result<void> leaveGroup(const Principal& who, GroupId id);

  // ---- messages ----------------------------------------------------------------------------
  using SendCallback = std::function<void(Result<SendResult>)>;
  // Checks synchronously, then stores asynchronously. Errors (through `done`): BadRequest
  // (no or two targets, bad content type or client_msg_id), TooLarge (body), NotFound (user
  // or group), Forbidden (not a member), Unavailable (store failed). `done` may run inline.
  void send(const Principal& who, SendRequest request, SendCallback done);
  // send() in two steps, for callers that check a batch of sends before storing any (the
  // gateway): check() validates and resolves the recipients (the errors above but
  // Unavailable-on-append), commit() appends what check() returned and calls `done` once durable.
  Result<store::NewMessage> check(const Principal& who, SendRequest request);
  void commit(const Principal& who, store::NewMessage draft, SendCallback done);
  // The caller's inbox after `after` (nullopt: after this device's cursor), at most `limit`.
  Result<SyncResult> sync(const Principal& who, std::optional<Seq> after, std::size_t limit);
  // The highest seq this device acknowledged (0 if none).
  Result<Seq> cursorOf(const Principal& who);
  // The seq of the newest message in the caller's inbox (0 if empty).
  Result<Seq> inboxEnd(const Principal& who);
  // Cumulative ack for the caller's device. Errors: BadRequest (seq past the inbox's end).
  Result<Seq> ack(const Principal& who, Seq seq);
  // ack() for callers that acknowledge only seqs they delivered themselves (the gateway's
  // sessions refuse acks past what they sent), so no inbox end is read: many devices' cursors
  // in one store write. Returns the cursors in order.
  Result<std::vector<Seq>> storeCursors(std::span<const store::CursorUpdate> updates);
  // A conversation's messages with conv_seq < before (0: newest), ascending. Errors:
  // BadRequest (conversation id), NotFound (group), Forbidden (not a participant).
  Result<std::vector<MessageView>> history(const Principal& who, std::string_view conversation,
                                           Seq before, std::size_t limit);

  // The caller's inbox messages (sent and received, private and group) whose text body
  // (content type text/*) contains `keyword` — ASCII letters case-insensitively, other bytes
  // exactly, so UTF-8 keywords match whole characters only — newest first, at most `limit`.
  // Examines the inbox backwards from seq `before` - 1 (0: from the newest), at most
  // options().max_search_scan items. Errors: BadRequest (keyword empty, over kMaxSearchQuery
  // bytes or not UTF-8).
  Result<SearchResult> search(const Principal& who, std::string_view keyword, Seq before,
                              std::size_t limit);

  // The users who share a group other than the lobby with `user` (its presence audience),
  // ascending, without `user` itself.
  Result<std::vector<UserId>> contactsOf(UserId user);

  // Whether `user` may read and write `conversation`. Errors: BadRequest, NotFound (group).
  Result<bool> canAccess(UserId user, std::string_view conversation);

  const ServiceOptions& options() const { return options_; }

 private:
  Service(store::Store& store, const Clock& clock, MetricsRegistry& metrics, ServiceOptions options,
          Snowflake ids);
  Result<store::Group> loadGroup(GroupId id);
  Result<bool> isMember(GroupId id, UserId user);
  Result<std::vector<UserId>> membersOf(GroupId id);
  Result<std::uint64_t> nextId();

  store::Store& store_;
  const Clock& clock_;
  ServiceOptions options_;
  Snowflake ids_;
  std::atomic<bool> ids_leased_{true};  // setWorkerId()
  DeliverySink* sink_ = nullptr;
  Counter& messages_stored_;
  Counter& duplicates_;
  Counter& logins_;
  Counter& login_failures_;
  RateLimiter failed_logins_;

  // Usernames never change: sender names are cached (bounded; cleared when full).
  std::mutex names_mu_;
  std::unordered_map<UserId, std::string> names_;
};

}  // namespace pigeon::core
