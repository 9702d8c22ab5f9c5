// MySQL / MariaDB engine. Schema: schema.cc. How an append is written (store/mysql/README.md has
// the long version):
//
//   append()       validates, queues on the committer of hash(conversation); a second append
//                  with the (sender, client_msg_id) of one queued or being written on this node
//                  waits for that one's answer instead.
//   committer      takes up to max_batch_messages from its queue, FIFO, and in one READ
//                  COMMITTED transaction:
//                    1. reads which idempotency keys are already committed (duplicates: answered
//                       with the original, nothing written);
//                    2. inserts the other keys, ascending — a key another node is writing blocks
//                       here until it commits (duplicate key: run the transaction again, step 1
//                       then finds it) or rolls back;
//                    3. adds each conversation's message count to its counter row, ascending,
//                       and reads the counters back: the batch's conv_seqs;
//                    4. the same for each recipient's inbox head: the batch's inbox seqs;
//                    5. inserts the messages and the inbox references (multi-row statements);
//                    6. COMMIT, then the callbacks.
//                  Counter rows stay locked until COMMIT, so another transaction allocating from
//                  them waits and then continues after the last committed seq: no gap, no
//                  repeat, and seq N is visible before N+1. Locks are always taken in the order
//                  keys → conversations → users, each ascending, so transactions do not deadlock
//                  each other; when InnoDB still reports one (gap locks on duplicate-key checks)
//                  or a lock wait times out, the whole transaction runs again.
#include "store/mysql/mysql_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>
#include <utility>

#include "store/mysql/connection.h"
#include "store/mysql/schema.h"

namespace pigeon::store {
namespace {

using Clock = std::chrono::steady_clock;
using mysql::appendQuoted;
using mysql::Chunked;
using mysql::Connection;
using mysql::ConnectionPool;
using mysql::quoted;
using mysql::Row;
using mysql::SqlError;
using mysql::storageError;

constexpr std::size_t kMaxName = 255;       // the VARBINARY(255) columns
constexpr std::size_t kMaxLongName = 1024;  // group names, password hashes
constexpr int kMaxAttempts = 10;            // runs of a transaction losing lock conflicts
constexpr std::size_t kPurgeChunk = 10000;  // tokens deleted per statement
constexpr std::size_t kMaxStatementBytes = std::size_t{1} << 20;

std::unexpected<Error> corrupt(std::string_view what) {
  return fail(Errc::Internal, fmt::format("storage: malformed row in {}", what));
}

std::unexpected<Error> tooLong(std::string_view what, std::size_t max) {
  return fail(Errc::BadRequest, fmt::format("{} longer than {} bytes", what, max));
}

bool validConversation(std::string_view conversation) {
  return !conversation.empty() && conversation.size() <= kMaxName &&
         conversation.find('\0') == std::string_view::npos;
}

// The message columns, in the order readMessage() expects, each prefixed (e.g. "m.").
std::string messageColumns(std::string_view p) {
  return fmt::format(
      "{0}id, {0}conversation, {0}conv_seq, {0}sender, {0}sender_device, {0}client_msg_id, "
      "{0}created_at_ms, {0}content_type, {0}body",
      p);
}

bool readMessage(const Row& row, unsigned at, Message& m) {
  if (!row.u64(at, m.id) || !row.u64(at + 2, m.conv_seq) || !row.u64(at + 3, m.sender) ||
      !row.i64(at + 6, m.created_at_ms)) {
    return false;
  }
  m.conversation = row.bytes(at + 1);
  m.sender_device = row.bytes(at + 4);
  m.client_msg_id = row.bytes(at + 5);
  m.content_type = row.bytes(at + 7);
  m.body = row.bytes(at + 8);
  return true;
}

bool readUser(const Row& row, User& u) {
  if (!row.u64(0, u.id) || !row.i64(3, u.created_at_ms)) return false;
  u.username = row.bytes(1);
  u.password_hash = row.bytes(2);
  return true;
}

constexpr std::string_view kUserColumns = "id, username, password_hash, created_at_ms";

// The smallest string greater than every string starting with `prefix`; empty if none is.
std::string prefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff) end.pop_back();
  if (!end.empty()) end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
  return end;
}

// (sender, client_msg_id) as one string: the key of in-flight appends on this node.
std::string idempotencyKey(const Message& m) {
  std::string key(reinterpret_cast<const char*>(&m.sender), sizeof m.sender);
  key += m.client_msg_id;
  return key;
}

// Where a transaction failed, for deciding what a duplicate-key error means.
enum class Stage {
  Connect,
  Begin,
  Duplicates,
  Keys,
  Conversations,
  Inboxes,
  Messages,
  Refs,
  Commit
};

struct TxnFailure {
  Stage stage;
  SqlError error;
};

class MysqlStore final : public Store {
 public:
  MysqlStore(MysqlOptions options, MetricsRegistry* metrics) : options_(std::move(options)) {
    settings_.host = options_.host;
    settings_.port = options_.port;
    settings_.user = options_.user;
    settings_.password = options_.password;
    settings_.database = options_.database;
    settings_.connect_timeout = options_.connect_timeout;
    settings_.io_timeout = options_.io_timeout;
    if (metrics != nullptr) {
      appended_ = &metrics->counter("pigeon_store_messages_appended_total",
                                    "Messages appended to the store (duplicates excluded).");
      commits_ = &metrics->counter("pigeon_store_commits_total",
                                   "Group commits written by the store's committers.");
      commit_seconds_ = &metrics->histogram("pigeon_store_commit_seconds",
                                            "Time to write one group commit, retries included.");
      append_seconds_ =
          &metrics->histogram("pigeon_store_append_seconds", "Time from append() to its callback.");
      const std::string retries_help =
          "Transactions run again after a lock conflict or a concurrent idempotency key.";
      retry_deadlock_ = &metrics->counter("pigeon_store_commit_retries_total", retries_help,
                                          "reason=\"deadlock\"");
      retry_lock_wait_ = &metrics->counter("pigeon_store_commit_retries_total", retries_help,
                                           "reason=\"lock_wait_timeout\"");
      retry_duplicate_ = &metrics->counter("pigeon_store_commit_retries_total", retries_help,
                                           "reason=\"duplicate_key\"");
      failed_commits_ =
          &metrics->counter("pigeon_store_commit_failures_total",
                            "Group commits that failed (their appends got an error).");
    }
  }

  ~MysqlStore() override {
    {
      std::lock_guard lock(mu_);
      closing_ = true;
    }
    for (auto& w : committers_) w->cv.notify_all();
    for (auto& w : committers_) {
      if (w->thread.joinable()) w->thread.join();
    }
  }

  Result<void> open() {
    if (options_.pool_size == 0 || options_.writers == 0 || options_.max_batch_messages == 0) {
      return fail(Errc::BadRequest, "mysql: pool_size, writers and max_batch_messages must be > 0");
    }
    if (options_.database.empty()) return fail(Errc::BadRequest, "mysql: no database named");
    if (options_.connect_timeout.count() <= 0 || options_.io_timeout.count() <= 0) {
      return fail(Errc::BadRequest, "mysql: timeouts must be positive");
    }
    const std::string where =
        fmt::format("{}@{}:{}/{}", options_.user, options_.host, options_.port, options_.database);
    Connection c(settings_);
    if (auto r = c.open(); !r)
      return storageError(fmt::format("connecting to {}", where), r.error());
    auto version =
        options_.migrate
            ? mysql::migrateSchema(c, options_.database, mysql::migrations(), options_.schema_wait)
            : mysql::waitForSchema(c, mysql::requiredSchemaVersion(), options_.schema_wait);
    if (!version) return std::unexpected(version.error());

    // Size statements so that every one fits in a packet the server accepts.
    auto rs = c.query("SELECT @@max_allowed_packet");
    if (!rs) return storageError("reading max_allowed_packet", rs.error());
    std::uint64_t packet = 0;
    auto row = rs->next();
    if (!row || !row->u64(0, packet) || packet < (std::uint64_t{256} << 10)) {
      return fail(Errc::Unavailable, "storage: max_allowed_packet is below 256 KiB");
    }
    statement_budget_ = std::min<std::size_t>(kMaxStatementBytes, packet / 4);
    // A row's body, escaped, may double; it may follow a statement just under the budget.
    max_body_ = (packet - statement_budget_ - (std::size_t{64} << 10)) / 2;

    pool_ = std::make_unique<ConnectionPool>(settings_, options_.pool_size);
    for (std::size_t i = 0; i < options_.writers; ++i) {
      auto w = std::make_unique<Committer>();
      w->conn = std::make_unique<Connection>(settings_);
      committers_.push_back(std::move(w));
    }
    for (auto& w : committers_) {
      Committer* raw = w.get();
      raw->thread = std::thread([this, raw] { commitLoop(*raw); });
    }
    spdlog::info("store: MySQL {} at schema version {}, {} committers, {} pooled connections",
                 where, *version, options_.writers, options_.pool_size);
    return {};
  }

  // ---- users -------------------------------------------------------------------------------

  Result<User> createUser(std::string_view username, std::string_view password_hash,
                          std::int64_t created_at_ms) override {
    if (username.size() > kMaxName) return tooLong("username", kMaxName);
    if (password_hash.size() > kMaxLongName) return tooLong("password hash", kMaxLongName);
    const std::string name = quoted(username);
    // The id comes from a counter row updated in the same transaction: a refused or failed
    // creation rolls it back, so ids have no gaps; concurrent creations (any node) take turns.
    return transaction<User>("creating a user", [&](Connection& c) -> Result<User> {
      auto existing = c.query(fmt::format("SELECT 1 FROM users WHERE username = {}", name));
      if (!existing) return storageError("creating a user", existing.error());
      if (existing->size() != 0) return fail(Errc::Conflict, "username already taken");
      auto counted =
          c.exec("UPDATE counters SET value = LAST_INSERT_ID(value + 1) WHERE name = 'users'");
      if (!counted) return storageError("creating a user", counted.error());
      if (c.affectedRows() != 1) return corrupt("counters");
      User user{c.insertId(), std::string(username), std::string(password_hash), created_at_ms};
      auto inserted = c.exec(fmt::format(
          "INSERT INTO users (id, username, password_hash, created_at_ms) VALUES ({}, {}, {}, {})",
          user.id, name, quoted(password_hash), created_at_ms));
      if (!inserted) {
        if (inserted.error().code == mysql::kErDupEntry) {
          return fail(Errc::Conflict, "username already taken");
        }
        return storageError("creating a user", inserted.error());
      }
      return user;
    });
  }

  Result<std::uint64_t> userCount() override {
    return withConnection([&](Connection& c) -> Result<std::uint64_t> {
      auto rs = c.query("SELECT value FROM counters WHERE name = 'users'");
      if (!rs) return storageError("counting users", rs.error());
      std::uint64_t n = 0;
      auto row = rs->next();
      if (!row || !row->u64(0, n)) return corrupt("counters");
      return n;  // ids are 1, 2, 3 … without gaps and users are never deleted
    });
  }

  Result<User> getUser(UserId id) override {
    return oneUser(fmt::format("SELECT {} FROM users WHERE id = {}", kUserColumns, id));
  }

  Result<User> findUserByName(std::string_view username) override {
    if (username.size() > kMaxName) return fail(Errc::NotFound, "no such user");
    return oneUser(
        fmt::format("SELECT {} FROM users WHERE username = {}", kUserColumns, quoted(username)));
  }

  Result<std::vector<User>> listUsers(std::string_view prefix, std::size_t limit) override {
    if (limit == 0 || prefix.size() > kMaxName) return std::vector<User>{};
    std::string sql =
        fmt::format("SELECT {} FROM users WHERE username >= {}", kUserColumns, quoted(prefix));
    if (const std::string end = prefixEnd(prefix); !end.empty()) {
      sql += " AND username < ";
      appendQuoted(sql, end);
    }
    sql += fmt::format(" ORDER BY username LIMIT {}", limit);
    return withConnection([&](Connection& c) -> Result<std::vector<User>> {
      auto rs = c.query(sql);
      if (!rs) return storageError("listing users", rs.error());
      std::vector<User> users;
      while (auto row = rs->next()) {
        User u;
        if (!readUser(*row, u)) return corrupt("users");
        users.push_back(std::move(u));
      }
      return users;
    });
  }

  Result<std::vector<UserId>> allUserIds() override {
    return ids("SELECT id FROM users ORDER BY id", "listing user ids");
  }

  // ---- devices and tokens ------------------------------------------------------------------

  Result<void> touchDevice(UserId user, std::string_view device, std::int64_t now_ms) override {
    if (device.size() > kMaxName) return tooLong("device name", kMaxName);
    return execute(
        fmt::format("INSERT INTO devices (user_id, name, first_seen_ms, last_login_ms) VALUES "
                    "({}, {}, {}, {}) ON DUPLICATE KEY UPDATE last_login_ms = "
                    "VALUES(last_login_ms)",
                    user, quoted(device), now_ms, now_ms),
        "recording a device");
  }

  Result<std::vector<Device>> listDevices(UserId user) override {
    return withConnection([&](Connection& c) -> Result<std::vector<Device>> {
      auto rs = c.query(fmt::format(
          "SELECT name, first_seen_ms, last_login_ms FROM devices WHERE user_id = {} ORDER BY name",
          user));
      if (!rs) return storageError("listing devices", rs.error());
      std::vector<Device> devices;
      while (auto row = rs->next()) {
        Device d;
        d.name = row->bytes(0);
        if (!row->i64(1, d.first_seen_ms) || !row->i64(2, d.last_login_ms)) {
          return corrupt("devices");
        }
        devices.push_back(std::move(d));
      }
      return devices;
    });
  }

  Result<void> putToken(const Token& token) override {
    if (token.token_hash.size() > kMaxName) return tooLong("token hash", kMaxName);
    if (token.device.size() > kMaxName) return tooLong("device name", kMaxName);
    return execute(
        fmt::format("INSERT INTO tokens (token_hash, user_id, device, created_at_ms, "
                    "expires_at_ms) VALUES ({}, {}, {}, {}, {}) ON DUPLICATE KEY UPDATE "
                    "user_id = VALUES(user_id), device = VALUES(device), "
                    "created_at_ms = VALUES(created_at_ms), expires_at_ms = VALUES(expires_at_ms)",
                    quoted(token.token_hash), token.user, quoted(token.device), token.created_at_ms,
                    token.expires_at_ms),
        "storing a token");
  }

  Result<Token> getToken(std::string_view token_hash) override {
    if (token_hash.size() > kMaxName) return fail(Errc::NotFound, "no such token");
    return withConnection([&](Connection& c) -> Result<Token> {
      auto rs = c.query(fmt::format(
          "SELECT user_id, device, created_at_ms, expires_at_ms FROM tokens WHERE token_hash = {}",
          quoted(token_hash)));
      if (!rs) return storageError("reading a token", rs.error());
      auto row = rs->next();
      if (!row) return fail(Errc::NotFound, "no such token");
      Token t;
      t.token_hash = std::string(token_hash);
      t.device = row->bytes(1);
      if (!row->u64(0, t.user) || !row->i64(2, t.created_at_ms) || !row->i64(3, t.expires_at_ms)) {
        return corrupt("tokens");
      }
      return t;
    });
  }

  Result<void> deleteToken(std::string_view token_hash) override {
    if (token_hash.size() > kMaxName) return {};
    return execute(fmt::format("DELETE FROM tokens WHERE token_hash = {}", quoted(token_hash)),
                   "deleting a token");
  }

  Result<std::size_t> purgeExpiredTokens(std::int64_t now_ms) override {
    // In chunks, so that no statement holds many row locks or runs for long.
    return withConnection([&](Connection& c) -> Result<std::size_t> {
      std::size_t purged = 0;
      for (;;) {
        auto r = c.exec(fmt::format("DELETE FROM tokens WHERE expires_at_ms <= {} LIMIT {}", now_ms,
                                    kPurgeChunk));
        if (!r) return storageError("purging expired tokens", r.error());
        const std::uint64_t n = c.affectedRows();
        purged += n;
        if (n < kPurgeChunk) return purged;
      }
    });
  }

  // ---- groups ------------------------------------------------------------------------------

  Result<void> createGroup(const Group& group, const std::vector<UserId>& members) override {
    if (std::find(members.begin(), members.end(), group.owner) == members.end()) {
      return fail(Errc::BadRequest, "the group's owner must be a member");
    }
    if (group.name.size() > kMaxLongName) return tooLong("group name", kMaxLongName);
    std::vector<UserId> sorted = members;
    std::sort(sorted.begin(), sorted.end());
    sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
    Chunked rows("INSERT INTO group_members (group_id, user_id) VALUES ", ", ", "",
                 statement_budget_);
    for (UserId u : sorted)
      fmt::format_to(std::back_inserter(rows.item()), "({}, {})", group.id, u);
    const std::vector<std::string> member_sql = rows.finish();
    return transaction<void>("creating a group", [&](Connection& c) -> Result<void> {
      auto inserted = c.exec(fmt::format(
          "INSERT INTO chat_groups (id, name, owner, created_at_ms) VALUES ({}, {}, {}, {})",
          group.id, quoted(group.name), group.owner, group.created_at_ms));
      if (!inserted) {
        if (inserted.error().code == mysql::kErDupEntry) {
          return fail(Errc::Conflict, "group id already exists");
        }
        return storageError("creating a group", inserted.error());
      }
      for (const auto& sql : member_sql) {
        if (auto r = c.exec(sql); !r) return storageError("creating a group", r.error());
      }
      return {};
    });
  }

  Result<Group> getGroup(GroupId id) override {
    return withConnection([&](Connection& c) -> Result<Group> {
      auto rs = c.query(
          fmt::format("SELECT name, owner, created_at_ms FROM chat_groups WHERE id = {}", id));
      if (!rs) return storageError("reading a group", rs.error());
      auto row = rs->next();
      if (!row) return fail(Errc::NotFound, "no such group");
      Group g;
      g.id = id;
      g.name = row->bytes(0);
      if (!row->u64(1, g.owner) || !row->i64(2, g.created_at_ms)) return corrupt("chat_groups");
      return g;
    });
  }

  Result<bool> addMember(GroupId group, UserId user) override {
    // Groups are never deleted, so checking first and inserting after needs no lock.
    return withConnection([&](Connection& c) -> Result<bool> {
      if (auto exists = groupExists(c, group); !exists) return exists;
      auto r =
          c.exec(fmt::format("INSERT INTO group_members (group_id, user_id) VALUES ({}, {}) "
                             "ON DUPLICATE KEY UPDATE group_id = group_id",
                             group, user));
      if (!r) return storageError("adding a member", r.error());
      return c.affectedRows() == 1;  // 0: the row was there, and the update changed nothing
    });
  }

  Result<bool> removeMember(GroupId group, UserId user) override {
    return withConnection([&](Connection& c) -> Result<bool> {
      if (auto exists = groupExists(c, group); !exists) return exists;
      auto r = c.exec(fmt::format("DELETE FROM group_members WHERE group_id = {} AND user_id = {}",
                                  group, user));
      if (!r) return storageError("removing a member", r.error());
      return c.affectedRows() == 1;
    });
  }

  Result<bool> isMember(GroupId group, UserId user) override {
    return withConnection([&](Connection& c) -> Result<bool> {
      auto rs = c.query(fmt::format(
          "SELECT 1 FROM group_members WHERE group_id = {} AND user_id = {}", group, user));
      if (!rs) return storageError("reading a membership", rs.error());
      return rs->size() != 0;
    });
  }

  Result<std::vector<UserId>> listMembers(GroupId group) override {
    return ids(fmt::format("SELECT user_id FROM group_members WHERE group_id = {} ORDER BY user_id",
                           group),
               "listing members");
  }

  Result<std::vector<GroupId>> groupsOf(UserId user) override {
    return ids(fmt::format(
                   "SELECT group_id FROM group_members WHERE user_id = {} ORDER BY group_id", user),
               "listing a user's groups");
  }

  // ---- messages ----------------------------------------------------------------------------

  void append(NewMessage message, AppendCallback done) override {
    const auto started = Clock::now();
    if (auto bad = checkAppend(message)) {
      done(std::unexpected(*bad));
      return;
    }
    std::optional<Error> refused;
    {
      std::lock_guard lock(mu_);
      if (closing_) {
        refused = Error{Errc::Unavailable, "storage is shutting down"};
      } else {
        if (!message.message.client_msg_id.empty()) {
          auto [it, fresh] = in_flight_.try_emplace(idempotencyKey(message.message),
                                                    std::vector<AppendCallback>{});
          if (!fresh) {
            it->second.push_back(std::move(done));  // answered when the original is
            return;
          }
        }
        Committer& w = *committers_[std::hash<std::string>{}(message.message.conversation) %
                                    committers_.size()];
        w.queue.push_back(PendingAppend{std::move(message), std::move(done), started});
        w.cv.notify_one();
      }
    }
    if (refused) done(std::unexpected(*refused));
  }

  Result<Message> getMessage(MsgId id) override {
    return withConnection([&](Connection& c) -> Result<Message> {
      auto rs =
          c.query(fmt::format("SELECT {} FROM messages WHERE id = {}", messageColumns(""), id));
      if (!rs) return storageError("reading a message", rs.error());
      auto row = rs->next();
      if (!row) return fail(Errc::NotFound, "no such message");
      Message m;
      if (!readMessage(*row, 0, m)) return corrupt("messages");
      return m;
    });
  }

  Result<std::vector<InboxItem>> readInbox(UserId user, Seq after_seq, std::size_t limit) override {
    if (limit == 0 || after_seq == UINT64_MAX) return std::vector<InboxItem>{};
    // One statement, one snapshot: a reference and its message were committed together, and
    // seq N committed before N+1 was allocated, so what this reads has no holes.
    return withConnection([&](Connection& c) -> Result<std::vector<InboxItem>> {
      auto rs = c.query(
          fmt::format("SELECT i.seq, {} FROM inbox i LEFT JOIN messages m ON m.id = i.msg_id "
                      "WHERE i.user_id = {} AND i.seq > {} ORDER BY i.seq LIMIT {}",
                      messageColumns("m."), user, after_seq, limit));
      if (!rs) return storageError("reading an inbox", rs.error());
      std::vector<InboxItem> items;
      items.reserve(rs->size());
      while (auto row = rs->next()) {
        InboxItem item;
        if (row->isNull(1)) return fail(Errc::Internal, "storage: dangling reference to messages");
        if (!row->u64(0, item.seq) || !readMessage(*row, 1, item.message)) return corrupt("inbox");
        items.push_back(std::move(item));
      }
      return items;
    });
  }

  Result<Seq> lastInboxSeq(UserId user) override {
    // The head moves in the transaction that writes the references, so it is never ahead.
    return withConnection([&](Connection& c) -> Result<Seq> {
      auto rs = c.query(fmt::format("SELECT last_seq FROM inbox_heads WHERE user_id = {}", user));
      if (!rs) return storageError("reading an inbox head", rs.error());
      auto row = rs->next();
      Seq seq = 0;
      if (row && !row->u64(0, seq)) return corrupt("inbox_heads");
      return seq;
    });
  }

  Result<std::vector<Message>> readTimeline(std::string_view conversation, Seq before_conv_seq,
                                            std::size_t limit) override {
    if (conversation.empty() || conversation.find('\0') != std::string_view::npos) {
      return fail(Errc::BadRequest, "bad conversation id");
    }
    if (limit == 0 || before_conv_seq == 1 || conversation.size() > kMaxName) {
      return std::vector<Message>{};
    }
    std::string sql = fmt::format("SELECT {} FROM messages WHERE conversation = {}",
                                  messageColumns(""), quoted(conversation));
    if (before_conv_seq != 0) sql += fmt::format(" AND conv_seq < {}", before_conv_seq);
    sql += fmt::format(" ORDER BY conv_seq DESC LIMIT {}", limit);
    return withConnection([&](Connection& c) -> Result<std::vector<Message>> {
      auto rs = c.query(sql);
      if (!rs) return storageError("reading a timeline", rs.error());
      std::vector<Message> messages(rs->size());
      std::size_t i = messages.size();
      while (auto row = rs->next()) {
        if (i == 0 || !readMessage(*row, 0, messages[--i])) return corrupt("messages");
      }
      return messages;  // filled from the back: ascending
    });
  }

  Result<MsgId> maxMessageId() override {
    return withConnection([&](Connection& c) -> Result<MsgId> {
      auto rs = c.query("SELECT MAX(id) FROM messages");
      if (!rs) return storageError("finding the last message", rs.error());
      auto row = rs->next();
      MsgId id = 0;
      if (!row || (!row->isNull(0) && !row->u64(0, id))) return corrupt("messages");
      return id;
    });
  }

  // ---- cursors -----------------------------------------------------------------------------

  Result<Seq> getCursor(UserId user, std::string_view device) override {
    if (device.size() > kMaxName) return Seq{0};
    return withConnection([&](Connection& c) -> Result<Seq> {
      auto rs = c.query(fmt::format("SELECT seq FROM cursors WHERE user_id = {} AND device = {}",
                                    user, quoted(device)));
      if (!rs) return storageError("reading a cursor", rs.error());
      auto row = rs->next();
      Seq seq = 0;
      if (row && !row->u64(0, seq)) return corrupt("cursors");
      return seq;
    });
  }

  Result<Seq> advanceCursor(UserId user, std::string_view device, Seq seq) override {
    if (device.size() > kMaxName) return tooLong("device name", kMaxName);
    const std::string key = fmt::format("user_id = {} AND device = {}", user, quoted(device));
    // One statement, committed (autocommit) before it returns. When the row existed,
    // LAST_INSERT_ID(expr) hands back the value it ends up with in the OK packet; when it did
    // not (1 row affected), the value is ours. A server that leaves the id at 0 gets a SELECT.
    return withConnection([&](Connection& c) -> Result<Seq> {
      auto r = c.exec(fmt::format(
          "INSERT INTO cursors (user_id, device, seq) VALUES ({}, {}, {}) ON DUPLICATE KEY "
          "UPDATE seq = LAST_INSERT_ID(GREATEST(seq, VALUES(seq)))",
          user, quoted(device), seq));
      if (!r) return storageError("moving a cursor", r.error());
      if (c.affectedRows() == 1) return seq;
      if (c.insertId() != 0) return Seq{c.insertId()};
      auto rs = c.query(fmt::format("SELECT seq FROM cursors WHERE {}", key));
      if (!rs) return storageError("moving a cursor", rs.error());
      auto row = rs->next();
      Seq now = 0;
      if (!row || !row->u64(0, now)) return corrupt("cursors");
      return now;
    });
  }

  Result<std::vector<Seq>> advanceCursors(std::span<const CursorUpdate> updates) override {
    if (updates.empty()) return std::vector<Seq>{};
    for (const CursorUpdate& u : updates) {
      if (u.device.size() > kMaxName) return tooLong("device name", kMaxName);
    }
    // One transaction: the rows in key order (so two batches never wait for each other in a
    // cycle), one upsert that keeps the larger seq, one read of the results.
    std::vector<const CursorUpdate*> sorted;
    for (const CursorUpdate& u : updates) sorted.push_back(&u);
    std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) {
      return std::tie(a->user, a->device) < std::tie(b->user, b->device);
    });
    Chunked rows("INSERT INTO cursors (user_id, device, seq) VALUES ", ", ",
                 " ON DUPLICATE KEY UPDATE seq = GREATEST(seq, VALUES(seq))", statement_budget_);
    Chunked keys("SELECT user_id, device, seq FROM cursors WHERE (user_id, device) IN (", ", ", ")",
                 statement_budget_);
    for (const CursorUpdate* u : sorted) {
      fmt::format_to(std::back_inserter(rows.item()), "({}, {}, {})", u->user, quoted(u->device), u->seq);
      fmt::format_to(std::back_inserter(keys.item()), "({}, {})", u->user, quoted(u->device));
    }
    const std::vector<std::string> upserts = rows.finish();
    const std::vector<std::string> reads = keys.finish();
    using Key = std::pair<UserId, std::string>;
    auto moved = transaction<std::map<Key, Seq>>("moving cursors", [&](Connection& c) -> Result<std::map<Key, Seq>> {
      for (const auto& sql : upserts) {
        if (auto r = c.exec(sql); !r) return storageError("moving cursors", r.error());
      }
      std::map<Key, Seq> now;
      for (const auto& sql : reads) {
        auto rs = c.query(sql);
        if (!rs) return storageError("moving cursors", rs.error());
        while (auto row = rs->next()) {
          UserId user = 0;
          Seq seq = 0;
          if (!row->u64(0, user) || !row->u64(2, seq)) return corrupt("cursors");
          now[Key{user, std::string(row->bytes(1))}] = seq;
        }
      }
      return now;
    });
    if (!moved) return std::unexpected(moved.error());
    std::vector<Seq> out;
    out.reserve(updates.size());
    for (const CursorUpdate& u : updates) {
      auto it = moved->find(Key{u.user, u.device});
      if (it == moved->end()) return corrupt("cursors");
      out.push_back(it->second);
    }
    return out;
  }

 private:
  struct PendingAppend {
    NewMessage nm;
    AppendCallback done;
    Clock::time_point started;
  };

  struct Committer {
    std::deque<PendingAppend> queue;  // guarded by MysqlStore::mu_
    std::condition_variable cv;
    std::unique_ptr<Connection> conn;  // used by `thread` only
    std::thread thread;
    bool failing = false;  // the last commit failed (log the first failure and the recovery)
  };

  // What one attempt at a batch's transaction decided, per append (index in the batch).
  struct Attempt {
    explicit Attempt(std::size_t n) : duplicate(n), conv_seq(n, 0), sender_seq(n, 0), refs(n) {}
    std::vector<std::optional<Result<Appended>>> duplicate;  // committed before (or broken)
    std::vector<Seq> conv_seq;                               // 0: not written
    std::vector<Seq> sender_seq;
    std::vector<std::vector<InboxRef>> refs;
  };

  // Validation before queueing; nullopt if the message is acceptable.
  std::optional<Error> checkAppend(const NewMessage& nm) const {
    const Message& m = nm.message;
    if (m.id == 0) return Error{Errc::BadRequest, "message id must be set"};
    if (!validConversation(m.conversation)) return Error{Errc::BadRequest, "bad conversation id"};
    if (m.body.size() > max_body_) return Error{Errc::TooLarge, "message too large for the store"};
    if (m.client_msg_id.size() > kMaxName || m.sender_device.size() > kMaxName ||
        m.content_type.size() > kMaxName) {
      return Error{Errc::BadRequest, fmt::format("client_msg_id, sender device or content type "
                                                 "longer than {} bytes",
                                                 kMaxName)};
    }
    std::vector<UserId> recipients = nm.recipients;
    std::sort(recipients.begin(), recipients.end());
    if (std::adjacent_find(recipients.begin(), recipients.end()) != recipients.end()) {
      return Error{Errc::BadRequest, "repeated recipient"};
    }
    return std::nullopt;
  }

  void commitLoop(Committer& w) {
    for (;;) {
      std::vector<PendingAppend> batch;
      {
        std::unique_lock lock(mu_);
        w.cv.wait(lock, [&] { return !w.queue.empty() || closing_; });
        if (w.queue.empty()) return;  // closing, and everything queued is committed
        const std::size_t n = std::min(w.queue.size(), options_.max_batch_messages);
        batch.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
          batch.push_back(std::move(w.queue.front()));
          w.queue.pop_front();
        }
      }
      commitBatch(w, batch);
    }
  }

  void commitBatch(Committer& w, std::vector<PendingAppend>& batch) {
    const auto t0 = Clock::now();
    // Appends refused for good (a message id already used); the others are retried.
    std::vector<std::optional<Error>> rejected(batch.size());
    rejectRepeatedIds(batch, rejected);
    std::optional<Attempt> done;
    std::optional<Error> failure;
    int conflicts = 0;  // lock conflicts lost so far
    for (;;) {
      Attempt a(batch.size());
      auto r = tryCommit(*w.conn, batch, rejected, a);
      if (r) {
        done = std::move(a);
        break;
      }
      w.conn->rollbackQuietly();
      const TxnFailure& f = r.error();
      // Run again after a lost lock conflict (a few times), or after a key that another node
      // committed meanwhile (each time, that node made progress: no livelock); both only while
      // the io timeout has not passed since the batch began.
      Counter* retries = nullptr;
      bool again = Clock::now() - t0 < options_.io_timeout;
      if (f.error.lockConflict()) {
        retries = f.error.code == mysql::kErLockDeadlock ? retry_deadlock_ : retry_lock_wait_;
        again = again && ++conflicts < kMaxAttempts;
      } else if (f.error.code == mysql::kErDupEntry && f.stage == Stage::Keys) {
        retries = retry_duplicate_;
      } else if (f.error.code == mysql::kErDupEntry && f.stage == Stage::Messages &&
                 f.error.message.find("PRIMARY") != std::string::npos) {
        // An id already used (a bug, or two nodes sharing a snowflake node id): refuse the
        // appends reusing one, go on with the others. Each pass refuses at least one.
        again = again && rejectUsedIds(*w.conn, batch, rejected);
      } else {
        again = false;
      }
      if (again) {
        if (retries != nullptr) retries->inc();
        if (f.error.code == mysql::kErLockDeadlock) backoff(conflicts);
        continue;
      }
      failure =
          Error{Errc::Unavailable, fmt::format("storage: group commit failed{}: {} ({})",
                                               f.stage == Stage::Commit ? ", outcome unknown" : "",
                                               f.error.message, f.error.code)};
      if (!w.failing) {
        spdlog::error("store: a group commit of {} appends failed: {}", batch.size(),
                      failure->message);
      }
      w.failing = true;
      break;
    }
    if (done) {
      if (w.failing) spdlog::info("store: group commits succeed again");
      w.failing = false;
      if (commits_ != nullptr) {
        commits_->inc();
        commit_seconds_->observe(std::chrono::duration<double>(Clock::now() - t0).count());
      }
    } else if (failed_commits_ != nullptr) {
      failed_commits_->inc();
    }

    // Every append's answer, in batch order; and the in-flight entries to release.
    std::vector<Result<Appended>> results;
    std::vector<std::string> keys(batch.size());
    results.reserve(batch.size());
    std::size_t written = 0;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (!batch[i].nm.message.client_msg_id.empty()) {
        keys[i] = idempotencyKey(batch[i].nm.message);
      }
      if (rejected[i]) {
        results.emplace_back(std::unexpected(*rejected[i]));
      } else if (!done) {
        results.emplace_back(std::unexpected(*failure));
      } else if (done->duplicate[i]) {
        results.push_back(std::move(*done->duplicate[i]));
      } else {
        Appended appended;
        appended.message = std::move(batch[i].nm.message);
        appended.message.conv_seq = done->conv_seq[i];
        appended.sender_seq = done->sender_seq[i];
        appended.refs = std::move(done->refs[i]);
        results.emplace_back(std::move(appended));
        ++written;
      }
    }

    // Duplicates that arrived while their original was in flight get its answer.
    std::vector<std::pair<std::vector<AppendCallback>, Result<Appended>>> waiting;
    {
      std::lock_guard lock(mu_);
      for (std::size_t i = 0; i < batch.size(); ++i) {
        if (keys[i].empty()) continue;
        auto node = in_flight_.extract(keys[i]);
        if (node.empty() || node.mapped().empty()) continue;
        if (results[i]) {
          waiting.emplace_back(std::move(node.mapped()),
                               Appended{results[i]->message, results[i]->sender_seq, {}, true});
        } else {
          waiting.emplace_back(std::move(node.mapped()), std::unexpected(results[i].error()));
        }
      }
    }

    if (appended_ != nullptr) appended_->inc(written);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (append_seconds_ != nullptr) {
        append_seconds_->observe(
            std::chrono::duration<double>(Clock::now() - batch[i].started).count());
      }
      batch[i].done(std::move(results[i]));
    }
    for (auto& [callbacks, answer] : waiting) {
      for (auto& callback : callbacks) callback(answer);
    }
  }

  // One transaction for the whole batch (see the top of this file). Fills `a`.
  std::expected<void, TxnFailure> tryCommit(Connection& c, std::vector<PendingAppend>& batch,
                                            const std::vector<std::optional<Error>>& rejected,
                                            Attempt& a) {
    auto failAt = [](Stage stage, SqlError e) {
      return std::unexpected(TxnFailure{stage, std::move(e)});
    };
    if (auto r = c.ensureOpen(ConnectionPool::kPingAfterIdle); !r) {
      return failAt(Stage::Connect, r.error());
    }
    if (auto r = c.exec("START TRANSACTION"); !r) return failAt(Stage::Begin, r.error());

    // 1. Idempotency keys committed before: those appends are answered with the original.
    std::map<std::pair<UserId, std::string_view>, std::size_t> keyed;  // ascending = lock order
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const Message& m = batch[i].nm.message;
      if (!rejected[i] && !m.client_msg_id.empty())
        keyed.emplace(std::pair{m.sender, std::string_view(m.client_msg_id)}, i);
    }
    if (!keyed.empty()) {
      Chunked select(fmt::format("SELECT i.sender, i.client_msg_id, m.sender_seq, {} FROM "
                                 "idempotency i LEFT JOIN messages m ON m.id = i.msg_id WHERE ",
                                 messageColumns("m.")),
                     " OR ", "", statement_budget_);
      for (const auto& [key, i] : keyed) {
        std::string& sql = select.item();
        fmt::format_to(std::back_inserter(sql), "(i.sender = {} AND i.client_msg_id = ", key.first);
        appendQuoted(sql, key.second);
        sql += ')';
      }
      for (const std::string& sql : select.finish()) {
        auto rs = c.query(sql);
        if (!rs) return failAt(Stage::Duplicates, rs.error());
        while (auto row = rs->next()) {
          UserId sender = 0;
          row->u64(0, sender);
          auto it = keyed.find(std::pair{sender, row->bytes(1)});
          if (it == keyed.end()) continue;
          Appended dup;
          dup.duplicate = true;
          if (row->isNull(3)) {
            a.duplicate[it->second] =
                fail(Errc::Internal, "storage: idempotency entry without its message");
          } else if (!row->u64(2, dup.sender_seq) || !readMessage(*row, 3, dup.message)) {
            a.duplicate[it->second] = corrupt("messages");
          } else {
            a.duplicate[it->second] = std::move(dup);
          }
          keyed.erase(it);
        }
      }
    }

    // What this transaction writes: appends neither rejected nor duplicates, in batch order.
    std::vector<std::size_t> writes;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (!rejected[i] && !a.duplicate[i]) writes.push_back(i);
    }

    // 2. Claim the new keys, ascending.
    if (!keyed.empty()) {
      Chunked insert("INSERT INTO idempotency (sender, client_msg_id, msg_id) VALUES ", ", ", "",
                     statement_budget_);
      for (const auto& [key, i] : keyed) {
        std::string& sql = insert.item();
        fmt::format_to(std::back_inserter(sql), "({}, ", key.first);
        appendQuoted(sql, key.second);
        fmt::format_to(std::back_inserter(sql), ", {})", batch[i].nm.message.id);
      }
      for (const std::string& sql : insert.finish()) {
        if (auto r = c.exec(sql); !r) return failAt(Stage::Keys, r.error());
      }
    }
    if (writes.empty()) {
      if (auto r = c.exec("COMMIT"); !r) return failAt(Stage::Commit, r.error());
      return {};
    }

    // 3. Conversation counters, ascending: add this batch's count, read the new last seq.
    struct Range {
      Seq count = 0;
      Seq next = 0;  // the first seq of this batch, once read back
    };
    std::map<std::string_view, Range> convs;
    std::map<UserId, Range> users;
    for (std::size_t i : writes) {
      ++convs[batch[i].nm.message.conversation].count;
      for (UserId u : batch[i].nm.recipients) ++users[u].count;
    }
    {
      Chunked upsert("INSERT INTO conversations (conversation, last_seq) VALUES ", ", ",
                     " ON DUPLICATE KEY UPDATE last_seq = last_seq + VALUES(last_seq)",
                     statement_budget_);
      Chunked select("SELECT conversation, last_seq FROM conversations WHERE conversation IN (",
                     ", ", ")", statement_budget_);
      for (const auto& [conv, range] : convs) {
        std::string& row = upsert.item();
        row += '(';
        appendQuoted(row, conv);
        fmt::format_to(std::back_inserter(row), ", {})", range.count);
        appendQuoted(select.item(), conv);
      }
      for (const std::string& sql : upsert.finish()) {
        if (auto r = c.exec(sql); !r) return failAt(Stage::Conversations, r.error());
      }
      for (const std::string& sql : select.finish()) {
        auto rs = c.query(sql);
        if (!rs) return failAt(Stage::Conversations, rs.error());
        while (auto row = rs->next()) {
          Seq last = 0;
          auto it = convs.find(row->bytes(0));
          if (it == convs.end() || !row->u64(1, last) || last < it->second.count) continue;
          it->second.next = last - it->second.count + 1;
        }
      }
      for (const auto& [conv, range] : convs) {
        if (range.next == 0) {
          return failAt(Stage::Conversations,
                        SqlError{0, "a conversation counter did not read back"});
        }
      }
    }

    // 4. Inbox heads, ascending, the same way.
    if (!users.empty()) {
      Chunked upsert("INSERT INTO inbox_heads (user_id, last_seq) VALUES ", ", ",
                     " ON DUPLICATE KEY UPDATE last_seq = last_seq + VALUES(last_seq)",
                     statement_budget_);
      Chunked select("SELECT user_id, last_seq FROM inbox_heads WHERE user_id IN (", ", ", ")",
                     statement_budget_);
      for (const auto& [user, range] : users) {
        fmt::format_to(std::back_inserter(upsert.item()), "({}, {})", user, range.count);
        fmt::format_to(std::back_inserter(select.item()), "{}", user);
      }
      for (const std::string& sql : upsert.finish()) {
        if (auto r = c.exec(sql); !r) return failAt(Stage::Inboxes, r.error());
      }
      for (const std::string& sql : select.finish()) {
        auto rs = c.query(sql);
        if (!rs) return failAt(Stage::Inboxes, rs.error());
        while (auto row = rs->next()) {
          UserId user = 0;
          Seq last = 0;
          if (!row->u64(0, user) || !row->u64(1, last)) continue;
          auto it = users.find(user);
          if (it == users.end() || last < it->second.count) continue;
          it->second.next = last - it->second.count + 1;
        }
      }
      for (const auto& [user, range] : users) {
        if (range.next == 0) {
          return failAt(Stage::Inboxes, SqlError{0, "an inbox head did not read back"});
        }
      }
    }

    // 5. Seqs in batch (= submission) order, then the rows.
    Chunked messages(
        "INSERT INTO messages (id, conversation, conv_seq, sender, sender_device, client_msg_id, "
        "sender_seq, created_at_ms, content_type, body) VALUES ",
        ", ", "", statement_budget_);
    std::vector<std::tuple<UserId, Seq, MsgId>> refs;
    for (std::size_t i : writes) {
      const Message& m = batch[i].nm.message;
      a.conv_seq[i] = convs[m.conversation].next++;
      for (UserId u : batch[i].nm.recipients) {
        const Seq seq = users[u].next++;
        a.refs[i].push_back(InboxRef{u, seq});
        refs.emplace_back(u, seq, m.id);
        if (u == m.sender) a.sender_seq[i] = seq;
      }
      std::string& row = messages.item();
      fmt::format_to(std::back_inserter(row), "({}, ", m.id);
      appendQuoted(row, m.conversation);
      fmt::format_to(std::back_inserter(row), ", {}, {}, ", a.conv_seq[i], m.sender);
      appendQuoted(row, m.sender_device);
      row += ", ";
      appendQuoted(row, m.client_msg_id);
      fmt::format_to(std::back_inserter(row), ", {}, {}, ", a.sender_seq[i], m.created_at_ms);
      appendQuoted(row, m.content_type);
      row += ", ";
      appendQuoted(row, m.body);
      row += ')';
    }
    for (const std::string& sql : messages.finish()) {
      if (auto r = c.exec(sql); !r) return failAt(Stage::Messages, r.error());
    }
    std::sort(refs.begin(), refs.end());  // primary key order: cheaper to insert
    Chunked inbox("INSERT INTO inbox (user_id, seq, msg_id) VALUES ", ", ", "", statement_budget_);
    for (const auto& [user, seq, id] : refs) {
      fmt::format_to(std::back_inserter(inbox.item()), "({}, {}, {})", user, seq, id);
    }
    for (const std::string& sql : inbox.finish()) {
      if (auto r = c.exec(sql); !r) return failAt(Stage::Refs, r.error());
    }

    // 6. If the connection drops now, the outcome is unknown: reported as a failure.
    if (auto r = c.exec("COMMIT"); !r) return failAt(Stage::Commit, r.error());
    return {};
  }

  // Two appends of one batch with the same message id: the later ones are refused.
  static void rejectRepeatedIds(const std::vector<PendingAppend>& batch,
                                std::vector<std::optional<Error>>& rejected) {
    std::unordered_map<MsgId, std::size_t> seen;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (!seen.emplace(batch[i].nm.message.id, i).second) rejected[i] = usedId(batch[i]);
    }
  }

  static Error usedId(const PendingAppend& p) {
    return Error{Errc::Internal,
                 fmt::format("storage: message id {} is already used", p.nm.message.id)};
  }

  // After a duplicate primary key on messages: refuses the appends whose id is taken (a bug,
  // or two nodes sharing a snowflake node id). False if none is (then the batch fails).
  bool rejectUsedIds(Connection& c, const std::vector<PendingAppend>& batch,
                     std::vector<std::optional<Error>>& rejected) {
    Chunked select("SELECT id FROM messages WHERE id IN (", ", ", ")", statement_budget_);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (!rejected[i])
        fmt::format_to(std::back_inserter(select.item()), "{}", batch[i].nm.message.id);
    }
    std::unordered_map<MsgId, bool> used;
    for (const std::string& sql : select.finish()) {
      auto rs = c.query(sql);
      if (!rs) return false;
      while (auto row = rs->next()) {
        MsgId id = 0;
        if (row->u64(0, id)) used[id] = true;
      }
    }
    bool any = false;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (!rejected[i] && used.contains(batch[i].nm.message.id)) {
        rejected[i] = usedId(batch[i]);
        spdlog::error("store: {}", rejected[i]->message);
        any = true;
      }
    }
    return any;
  }

  // A short random pause before running a deadlocked transaction again, so that the two
  // transactions involved do not collide the same way.
  static void backoff(int attempt) {
    thread_local std::minstd_rand random(
        static_cast<unsigned>(std::hash<std::thread::id>{}(std::this_thread::get_id())));
    std::uniform_int_distribution<int> micros(0, 500 * attempt);
    std::this_thread::sleep_for(std::chrono::microseconds(micros(random)));
  }

  // ---- helpers of the blocking calls -------------------------------------------------------

  template <typename F>
  auto withConnection(F&& f) -> decltype(f(std::declval<Connection&>())) {
    auto lease = pool_->acquire();
    if (!lease) return std::unexpected(lease.error());
    return f(**lease);
  }

  // Runs `body` between START TRANSACTION and COMMIT, again (at most kMaxAttempts times) if it
  // lost a lock conflict. A body error rolls back and is returned.
  template <typename T, typename Body>
  Result<T> transaction(std::string_view what, Body&& body) {
    auto lease = pool_->acquire();
    if (!lease) return std::unexpected(lease.error());
    Connection& c = **lease;
    for (int attempt = 1;; ++attempt) {
      if (auto r = c.exec("START TRANSACTION"); !r) return storageError(what, r.error());
      Result<T> result = body(c);
      if (result) {
        if (auto r = c.exec("COMMIT"); !r) {
          c.rollbackQuietly();
          return storageError(fmt::format("{} (commit, outcome unknown)", what), r.error());
        }
        return result;
      }
      const bool conflict = c.lastError() && c.lastError()->lockConflict();
      c.rollbackQuietly();
      if (!conflict || attempt >= kMaxAttempts) return result;
      if (retry_deadlock_ != nullptr) {
        (c.lastError()->code == mysql::kErLockDeadlock ? retry_deadlock_ : retry_lock_wait_)->inc();
      }
    }
  }

  Result<void> execute(const std::string& sql, std::string_view what) {
    return withConnection([&](Connection& c) -> Result<void> {
      if (auto r = c.exec(sql); !r) return storageError(what, r.error());
      return {};
    });
  }

  Result<User> oneUser(const std::string& sql) {
    return withConnection([&](Connection& c) -> Result<User> {
      auto rs = c.query(sql);
      if (!rs) return storageError("reading a user", rs.error());
      auto row = rs->next();
      if (!row) return fail(Errc::NotFound, "no such user");
      User u;
      if (!readUser(*row, u)) return corrupt("users");
      return u;
    });
  }

  Result<std::vector<std::uint64_t>> ids(const std::string& sql, std::string_view what) {
    return withConnection([&](Connection& c) -> Result<std::vector<std::uint64_t>> {
      auto rs = c.query(sql);
      if (!rs) return storageError(what, rs.error());
      std::vector<std::uint64_t> out;
      out.reserve(rs->size());
      while (auto row = rs->next()) {
        std::uint64_t id = 0;
        if (!row->u64(0, id)) return corrupt(what);
        out.push_back(id);
      }
      return out;
    });
  }

  static Result<bool> groupExists(Connection& c, GroupId group) {
    auto rs = c.query(fmt::format("SELECT 1 FROM chat_groups WHERE id = {}", group));
    if (!rs) return storageError("reading a group", rs.error());
    if (rs->size() == 0) return fail(Errc::NotFound, "no such group");
    return true;
  }

  MysqlOptions options_;
  mysql::ConnectionSettings settings_;
  std::size_t statement_budget_ = kMaxStatementBytes;
  std::size_t max_body_ = 0;
  std::unique_ptr<ConnectionPool> pool_;

  Counter* appended_ = nullptr;
  Counter* commits_ = nullptr;
  Histogram* commit_seconds_ = nullptr;
  Histogram* append_seconds_ = nullptr;
  Counter* retry_deadlock_ = nullptr;
  Counter* retry_lock_wait_ = nullptr;
  Counter* retry_duplicate_ = nullptr;
  Counter* failed_commits_ = nullptr;

  std::mutex mu_;  // the queues, in_flight_, closing_
  bool closing_ = false;
  // (sender, client_msg_id) of appends queued or being written → duplicates waiting on them.
  std::unordered_map<std::string, std::vector<AppendCallback>> in_flight_;
  std::vector<std::unique_ptr<Committer>> committers_;  // threads started last, in open()
};

}  // namespace

Result<std::unique_ptr<Store>> openMysqlStore(const MysqlOptions& options,
                                              MetricsRegistry* metrics) {
  auto store = std::make_unique<MysqlStore>(options, metrics);
  if (auto opened = store->open(); !opened) return std::unexpected(opened.error());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace pigeon::store
