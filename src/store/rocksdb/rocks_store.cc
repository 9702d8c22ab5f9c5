// RocksDB engine. Key layout (numbers are 8-byte big-endian, so bytewise order = numeric order):
//
//   column family   key                                   value
//   users           user_id                               User (name, password hash, created)
//   usernames       username bytes                        user_id
//   tokens          token_hash bytes                      Token (user, device, created, expires)
//   devices         user_id | device bytes                Device (first seen, last login)
//   groups          group_id                              Group (name, owner, created)
//   members         group_id | user_id                    (empty)
//   user_groups     user_id | group_id                    (empty)
//   messages        msg_id                                Message (the body, stored once)
//   inbox           user_id | inbox_seq                   msg_id
//   timeline        conversation | '\0' | conv_seq        msg_id
//   cursors         user_id | device bytes                seq
//   idempotency     sender_id | client_msg_id bytes       (msg_id, sender's inbox seq)
//   meta            "next_user_id"                        user_id
//
// Values are encoded by codec.h (version byte, varints, length-prefixed strings).
//
// Appends and cursor moves are sequenced under mu_: the caller's thread checks idempotency,
// allocates seqs from in-memory counters and adds its writes to the open Batch at the back of
// pending_, all under one lock hold. One committer thread writes batches FIFO, one WriteBatch
// each, so seq order on disk is allocation order and a reader never sees seq N+1 without N.
#include "store/rocksdb/rocks_store.h"

#include <fmt/format.h>
#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <variant>

#include "store/rocksdb/codec.h"

namespace pigeon::store {
namespace {

using Clock = std::chrono::steady_clock;

enum Cf : std::size_t {
  kUsers,
  kUsernames,
  kTokens,
  kDevices,
  kGroups,
  kMembers,
  kUserGroups,
  kMessages,
  kInbox,
  kTimeline,
  kCursors,
  kIdempotency,
  kMeta,
  kCfCount,
};

constexpr const char* kCfNames[kCfCount] = {
    "users",    "usernames", "tokens",   "devices", "groups",      "members", "user_groups",
    "messages", "inbox",     "timeline", "cursors", "idempotency", "meta",
};

// Column families read by exact key (bloom filters pay off); inbox and timeline are scanned.
constexpr bool kPointLookup[kCfCount] = {true, true,  true,  true, true, true, true,
                                         true, false, false, true, true, true};

constexpr std::string_view kNextUserIdKey = "next_user_id";
constexpr std::size_t kMaxFieldBytes = std::size_t{256} << 20;  // far above any sane body limit

rocksdb::Slice toSlice(std::string_view s) {
  return {s.data(), s.size()};
}
std::string_view toView(const rocksdb::Slice& s) {
  return {s.data(), s.size()};
}
bool startsWith(const rocksdb::Slice& key, std::string_view prefix) {
  return toView(key).starts_with(prefix);
}

std::unexpected<Error> storageError(std::string_view what, const rocksdb::Status& s) {
  return fail(Errc::Unavailable, fmt::format("storage: {}: {}", what, s.ToString()));
}

std::unexpected<Error> corrupt(std::string_view what) {
  return fail(Errc::Internal, fmt::format("storage: corrupt record in {}", what));
}

// The last key of a prefix whose suffix is an 8-byte big-endian number.
std::string lastKeyOf(std::string_view prefix) {
  std::string k(prefix);
  k.append(8, '\xff');
  return k;
}

bool validConversation(std::string_view conversation) {
  return !conversation.empty() && conversation.find('\0') == std::string_view::npos;
}

class RocksStore final : public Store {
 public:
  RocksStore(RocksOptions options, MetricsRegistry* metrics) : options_(std::move(options)) {
    write_options_.sync = options_.durability == Durability::Sync;
    if (options_.max_batch_messages == 0) options_.max_batch_messages = 1;
    if (metrics != nullptr) {
      appended_ = &metrics->counter("pigeon_store_messages_appended_total",
                                    "Messages appended to the store (duplicates excluded).");
      commits_ = &metrics->counter("pigeon_store_commits_total",
                                   "Group commits written by the store's committer.");
      commit_seconds_ = &metrics->histogram("pigeon_store_commit_seconds",
                                            "Time to write one group commit, sync included.");
      append_seconds_ =
          &metrics->histogram("pigeon_store_append_seconds", "Time from append() to its callback.");
    }
  }

  ~RocksStore() override {
    {
      std::lock_guard lock(mu_);
      closing_ = true;
    }
    cv_.notify_all();
    if (committer_.joinable()) committer_.join();
    if (db_) {
      for (auto* cf : handles_) {
        if (cf != nullptr) db_->DestroyColumnFamilyHandle(cf);
      }
      rocksdb::Status s = db_->Close();
      if (!s.ok()) spdlog::warn("store: closing {}: {}", options_.path, s.ToString());
    }
  }

  Result<void> open() {
    std::error_code ec;
    std::filesystem::create_directories(options_.path, ec);
    if (ec) {
      return fail(Errc::Unavailable,
                  fmt::format("storage: cannot create {}: {}", options_.path, ec.message()));
    }
    rocksdb::DBOptions db_options;
    db_options.create_if_missing = true;
    db_options.create_missing_column_families = true;
    db_options.max_background_jobs = 2;
    db_options.db_write_buffer_size = std::size_t{128} << 20;  // all memtables together

    auto cache = rocksdb::NewLRUCache(std::size_t{64} << 20);
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions());
    for (std::size_t i = 0; i < kCfCount; ++i) {
      rocksdb::BlockBasedTableOptions table;
      table.block_cache = cache;
      if (kPointLookup[i]) table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
      rocksdb::ColumnFamilyOptions cf_options;
      cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
      if (i == kInbox) {
        // A group message adds one reference to each member's inbox: keys spread over the
        // whole memtable, each insert a full skip-list search. Per user (the 8-byte prefix)
        // the next key always follows the last one, so the memtable keeps the last insert
        // position per user and starts there (measured: the fan-out's committer spent most of
        // its time searching).
        cf_options.memtable_insert_with_hint_prefix_extractor.reset(
            rocksdb::NewFixedPrefixTransform(8));
      }
      descriptors.emplace_back(kCfNames[i], cf_options);
    }
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(db_options, options_.path, descriptors, &handles, &raw);
    if (!s.ok()) return storageError(fmt::format("opening {}", options_.path), s);
    db_.reset(raw);
    handles_ = std::move(handles);  // [0] is "default", then kCfNames in order
    committer_ = std::thread([this] { commitLoop(); });
    return {};
  }

  // ---- users -------------------------------------------------------------------------------

  Result<User> createUser(std::string_view username, std::string_view password_hash,
                          std::int64_t created_at_ms) override {
    std::lock_guard lock(users_mu_);
    std::string value;
    auto found = get(kUsernames, username, value);
    if (!found) return std::unexpected(found.error());
    if (*found) return fail(Errc::Conflict, "username already taken");
    if (auto loaded = loadNextUserIdLocked(); !loaded) return std::unexpected(loaded.error());
    User user{next_user_id_, std::string(username), std::string(password_hash), created_at_ms};
    rocksdb::WriteBatch batch;
    batch.Put(cf(kUsers), codec::u64Key(user.id), codec::encodeUser(user));
    batch.Put(cf(kUsernames), toSlice(username), codec::u64Key(user.id));
    batch.Put(cf(kMeta), toSlice(kNextUserIdKey), codec::u64Key(user.id + 1));
    if (auto r = write(batch, "creating a user"); !r) return std::unexpected(r.error());
    ++next_user_id_;
    return user;
  }

  Result<std::uint64_t> userCount() override {
    std::lock_guard lock(users_mu_);
    if (auto loaded = loadNextUserIdLocked(); !loaded) return std::unexpected(loaded.error());
    return next_user_id_ - 1;  // ids are 1, 2, 3 … and users are never deleted
  }

  Result<User> getUser(UserId id) override {
    std::string value;
    auto found = get(kUsers, codec::u64Key(id), value);
    if (!found) return std::unexpected(found.error());
    if (!*found) return fail(Errc::NotFound, "no such user");
    User user;
    if (!codec::decodeUser(value, user)) return corrupt("users");
    user.id = id;
    return user;
  }

  Result<User> findUserByName(std::string_view username) override {
    std::string value;
    auto found = get(kUsernames, username, value);
    if (!found) return std::unexpected(found.error());
    if (!*found) return fail(Errc::NotFound, "no such user");
    if (value.size() != 8) return corrupt("usernames");
    return getUser(codec::getBigEndian64(value));
  }

  Result<std::vector<User>> listUsers(std::string_view prefix, std::size_t limit) override {
    std::vector<std::string> ids;
    auto scanned = scan(kUsernames, prefix, prefix, [&](auto&, auto& value) {
      if (ids.size() >= limit) return false;
      ids.emplace_back(toView(value));
      return true;
    });
    if (!scanned) return std::unexpected(scanned.error());
    std::vector<User> users;
    std::vector<std::string> values;
    if (auto r = multiGet(kUsers, ids, values); !r) return std::unexpected(r.error());
    for (std::size_t i = 0; i < ids.size(); ++i) {
      User user;
      if (ids[i].size() != 8 || !codec::decodeUser(values[i], user)) return corrupt("users");
      user.id = codec::getBigEndian64(ids[i]);
      users.push_back(std::move(user));
    }
    return users;
  }

  Result<std::vector<UserId>> allUserIds() override {
    std::vector<UserId> ids;
    auto scanned = scan(kUsers, "", "", [&](auto& key, auto&) {
      if (key.size() == 8) ids.push_back(codec::getBigEndian64(toView(key)));
      return true;
    });
    if (!scanned) return std::unexpected(scanned.error());
    return ids;
  }

  // ---- devices and tokens ------------------------------------------------------------------

  Result<void> touchDevice(UserId user, std::string_view device, std::int64_t now_ms) override {
    std::lock_guard lock(devices_mu_);  // read-modify-write of one record
    const std::string key = codec::userStringKey(user, device);
    std::string value;
    auto found = get(kDevices, key, value);
    if (!found) return std::unexpected(found.error());
    Device d{std::string(device), now_ms, now_ms};
    if (*found && !codec::decodeDevice(value, d)) return corrupt("devices");
    d.last_login_ms = now_ms;
    rocksdb::WriteBatch batch;
    batch.Put(cf(kDevices), key, codec::encodeDevice(d));
    return write(batch, "recording a device");
  }

  Result<std::vector<Device>> listDevices(UserId user) override {
    std::vector<Device> devices;
    bool bad = false;
    const std::string prefix = codec::u64Key(user);
    auto scanned = scan(kDevices, prefix, prefix, [&](auto& key, auto& value) {
      Device d;
      if (!codec::decodeDevice(toView(value), d)) {
        bad = true;
        return false;
      }
      d.name.assign(key.data() + 8, key.size() - 8);
      devices.push_back(std::move(d));
      return true;
    });
    if (!scanned) return std::unexpected(scanned.error());
    if (bad) return corrupt("devices");
    return devices;
  }

  Result<void> putToken(const Token& token) override {
    rocksdb::WriteBatch batch;
    batch.Put(cf(kTokens), toSlice(token.token_hash), codec::encodeToken(token));
    return write(batch, "storing a token");
  }

  Result<Token> getToken(std::string_view token_hash) override {
    std::string value;
    auto found = get(kTokens, token_hash, value);
    if (!found) return std::unexpected(found.error());
    if (!*found) return fail(Errc::NotFound, "no such token");
    Token token;
    if (!codec::decodeToken(value, token)) return corrupt("tokens");
    token.token_hash = std::string(token_hash);
    return token;
  }

  Result<void> deleteToken(std::string_view token_hash) override {
    rocksdb::WriteBatch batch;
    batch.Delete(cf(kTokens), toSlice(token_hash));
    return write(batch, "deleting a token");
  }

  Result<std::size_t> purgeExpiredTokens(std::int64_t now_ms) override {
    rocksdb::WriteBatch batch;
    std::size_t purged = 0;
    bool bad = false;
    auto scanned = scan(kTokens, "", "", [&](const rocksdb::Slice& key, const rocksdb::Slice& value) {
      Token token;
      if (!codec::decodeToken(toView(value), token)) {
        bad = true;
        return false;
      }
      if (token.expires_at_ms <= now_ms) {
        batch.Delete(cf(kTokens), key);
        ++purged;
      }
      return true;
    });
    if (!scanned) return std::unexpected(scanned.error());
    if (bad) return corrupt("tokens");
    if (purged == 0) return purged;
    if (auto r = write(batch, "purging expired tokens"); !r) return std::unexpected(r.error());
    return purged;
  }

  // ---- groups ------------------------------------------------------------------------------

  Result<void> createGroup(const Group& group, const std::vector<UserId>& members) override {
    if (std::find(members.begin(), members.end(), group.owner) == members.end()) {
      return fail(Errc::BadRequest, "the group's owner must be a member");
    }
    std::lock_guard lock(groups_mu_);
    std::string value;
    const std::string key = codec::u64Key(group.id);
    auto found = get(kGroups, key, value);
    if (!found) return std::unexpected(found.error());
    if (*found) return fail(Errc::Conflict, "group id already exists");
    rocksdb::WriteBatch batch;
    batch.Put(cf(kGroups), key, codec::encodeGroup(group));
    for (UserId member : members) {
      batch.Put(cf(kMembers), codec::pairKey(group.id, member), rocksdb::Slice());
      batch.Put(cf(kUserGroups), codec::pairKey(member, group.id), rocksdb::Slice());
    }
    return write(batch, "creating a group");
  }

  Result<Group> getGroup(GroupId id) override {
    std::string value;
    auto found = get(kGroups, codec::u64Key(id), value);
    if (!found) return std::unexpected(found.error());
    if (!*found) return fail(Errc::NotFound, "no such group");
    Group group;
    if (!codec::decodeGroup(value, group)) return corrupt("groups");
    group.id = id;
    return group;
  }

  Result<bool> addMember(GroupId group, UserId user) override {
    return changeMember(group, user, /*add=*/true);
  }

  Result<bool> removeMember(GroupId group, UserId user) override {
    return changeMember(group, user, /*add=*/false);
  }

  Result<bool> isMember(GroupId group, UserId user) override {
    std::string value;
    return get(kMembers, codec::pairKey(group, user), value);
  }

  Result<std::vector<UserId>> listMembers(GroupId group) override {
    return secondIds(kMembers, group);
  }

  Result<std::vector<GroupId>> groupsOf(UserId user) override {
    return secondIds(kUserGroups, user);
  }

  // ---- messages ----------------------------------------------------------------------------

  void append(NewMessage message, AppendCallback done) override {
    const auto started = Clock::now();
    std::optional<Result<Appended>> immediate = checkAppend(message);
    if (!immediate) {
      std::lock_guard lock(mu_);
      immediate = appendLocked(message, done, started);
    }
    // Errors and already-committed duplicates are answered inline, outside the lock.
    if (immediate) done(std::move(*immediate));
  }

  Result<Message> getMessage(MsgId id) override {
    std::string value;
    auto found = get(kMessages, codec::u64Key(id), value);
    if (!found) return std::unexpected(found.error());
    if (!*found) return fail(Errc::NotFound, "no such message");
    Message m;
    if (!codec::decodeMessage(value, m)) return corrupt("messages");
    m.id = id;
    return m;
  }

  Result<std::vector<InboxItem>> readInbox(UserId user, Seq after_seq, std::size_t limit) override {
    if (limit == 0 || after_seq == UINT64_MAX) return std::vector<InboxItem>{};
    const std::string prefix = codec::u64Key(user);
    std::vector<Seq> seqs;
    std::vector<std::string> ids;
    auto scanned =
        scan(kInbox, prefix, codec::pairKey(user, after_seq + 1), [&](auto& key, auto& value) {
          if (seqs.size() >= limit) return false;
          seqs.push_back(codec::getBigEndian64(toView(key).substr(8)));
          ids.emplace_back(toView(value));
          return true;
        });
    if (!scanned) return std::unexpected(scanned.error());
    auto messages = loadMessages(ids);
    if (!messages) return std::unexpected(messages.error());
    std::vector<InboxItem> items;
    items.reserve(seqs.size());
    for (std::size_t i = 0; i < seqs.size(); ++i) {
      items.push_back(InboxItem{seqs[i], std::move((*messages)[i])});
    }
    return items;
  }

  Result<Seq> lastInboxSeq(UserId user) override { return lastSeq(kInbox, codec::u64Key(user)); }

  Result<std::vector<Message>> readTimeline(std::string_view conversation, Seq before_conv_seq,
                                            std::size_t limit) override {
    if (!validConversation(conversation)) return fail(Errc::BadRequest, "bad conversation id");
    if (limit == 0 || before_conv_seq == 1) return std::vector<Message>{};
    const std::string prefix = codec::timelinePrefix(conversation);
    const std::string from = before_conv_seq == 0
                                 ? lastKeyOf(prefix)
                                 : codec::timelineKey(conversation, before_conv_seq - 1);
    std::vector<std::string> ids;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf(kTimeline)));
    for (it->SeekForPrev(from); it->Valid() && ids.size() < limit; it->Prev()) {
      if (!startsWith(it->key(), prefix) || it->key().size() != prefix.size() + 8) break;
      ids.emplace_back(toView(it->value()));
    }
    if (!it->status().ok()) return storageError("reading a timeline", it->status());
    std::reverse(ids.begin(), ids.end());
    return loadMessages(ids);
  }

  Result<MsgId> maxMessageId() override {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf(kMessages)));
    it->SeekToLast();
    if (!it->status().ok()) return storageError("finding the last message", it->status());
    if (!it->Valid()) return MsgId{0};
    if (it->key().size() != 8) return corrupt("messages");
    return codec::getBigEndian64(toView(it->key()));
  }

  // ---- cursors -----------------------------------------------------------------------------

  Result<Seq> getCursor(UserId user, std::string_view device) override {
    std::string value;
    auto found = get(kCursors, codec::userStringKey(user, device), value);
    if (!found) return std::unexpected(found.error());
    if (!*found) return Seq{0};
    if (value.size() != 8) return corrupt("cursors");
    return codec::getBigEndian64(value);
  }

  Result<Seq> advanceCursor(UserId user, std::string_view device, Seq seq) override {
    std::variant<Seq, std::future<Result<Seq>>> moved;
    {
      std::lock_guard lock(mu_);
      if (auto down = refusalLocked()) return std::unexpected(*down);
      auto queued = queueCursorLocked(user, device, seq);
      if (!queued) return std::unexpected(queued.error());
      moved = std::move(*queued);
    }
    if (auto* now = std::get_if<Seq>(&moved)) return *now;
    return std::get<1>(moved).get();
  }

  Result<std::vector<Seq>> advanceCursors(std::span<const CursorUpdate> updates) override {
    // One lock hold and, usually, one group commit for all of them.
    std::vector<std::variant<Seq, std::future<Result<Seq>>>> moved;
    moved.reserve(updates.size());
    {
      std::lock_guard lock(mu_);
      if (auto down = refusalLocked()) return std::unexpected(*down);
      for (const CursorUpdate& u : updates) {
        auto queued = queueCursorLocked(u.user, u.device, u.seq);
        if (!queued) return std::unexpected(queued.error());  // the queued ones still commit
        moved.push_back(std::move(*queued));
      }
    }
    std::vector<Seq> out;
    out.reserve(moved.size());
    Result<std::vector<Seq>> result = std::vector<Seq>{};
    for (auto& m : moved) {
      if (auto* now = std::get_if<Seq>(&m)) {
        out.push_back(*now);
        continue;
      }
      auto value = std::get<1>(m).get();  // wait for every one, even after a failure
      if (!value) {
        if (result) result = std::unexpected(value.error());
      } else {
        out.push_back(*value);
      }
    }
    if (!result) return result;
    return out;
  }

 private:
  // Queues a cursor move into the open batch (its value now if nothing needs writing). Under mu_.
  Result<std::variant<Seq, std::future<Result<Seq>>>> queueCursorLocked(UserId user,
                                                                        std::string_view device,
                                                                        Seq seq) {
    std::string key = codec::userStringKey(user, device);
    Seq current = 0;
    bool pending = false;
    if (auto it = pending_cursors_.find(key); it != pending_cursors_.end()) {
      current = it->second.value;
      pending = true;
    } else {
      // Read under mu_: a cursor cannot move between this read and our enqueue.
      auto stored = getCursor(user, device);
      if (!stored) return std::unexpected(stored.error());
      current = *stored;
    }
    if (seq <= current && !pending) return current;  // already durable
    Batch& batch = openBatchLocked();
    const Seq next = std::max(current, seq);
    if (next > current) {
      batch.writes.Put(cf(kCursors), key, codec::u64Key(next));
      pending_cursors_[key] = PendingCursor{next, batch.id};
    }
    // Even with nothing to write, waiting for this batch waits for the earlier one that
    // holds the pending value (batches commit in order).
    std::promise<Result<Seq>> promise;
    std::future<Result<Seq>> moved = promise.get_future();
    batch.cursors.push_back(CursorMove{std::move(key), next, std::move(promise)});
    cv_.notify_one();
    return moved;
  }

 private:
  struct PendingAppend {
    AppendCallback done;
    Appended appended;
    std::string idempotency_key;  // empty: no client_msg_id
    Clock::time_point started;
  };

  struct CursorMove {
    std::string key;
    Seq value = 0;
    std::promise<Result<Seq>> done;
  };

  // The writes of many appends and cursor moves, committed as one WriteBatch.
  struct Batch {
    std::uint64_t id = 0;
    rocksdb::WriteBatch writes;
    std::vector<PendingAppend> appends;
    std::vector<CursorMove> cursors;
  };

  struct PendingCursor {
    Seq value = 0;
    std::uint64_t batch = 0;  // the batch that writes `value`
  };

  rocksdb::ColumnFamilyHandle* cf(Cf which) const { return handles_[which + 1]; }

  // true if found, false if missing.
  // Loads the next user id from the meta CF once. Call with users_mu_ held.
  Result<void> loadNextUserIdLocked() {
    if (next_user_id_ != 0) return {};
    std::string value;
    auto has = get(kMeta, kNextUserIdKey, value);
    if (!has) return std::unexpected(has.error());
    if (*has && value.size() != 8) return corrupt("meta");
    next_user_id_ = *has ? codec::getBigEndian64(value) : 1;
    return {};
  }

  Result<bool> get(Cf which, std::string_view key, std::string& value) {
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cf(which), toSlice(key), &value);
    if (s.IsNotFound()) return false;
    if (!s.ok()) return storageError(fmt::format("reading {}", kCfNames[which]), s);
    return true;
  }

  // Values of `keys` in order; any missing key is a dangling reference (Internal).
  Result<void> multiGet(Cf which, const std::vector<std::string>& keys,
                        std::vector<std::string>& values) {
    values.clear();
    if (keys.empty()) return {};
    std::vector<rocksdb::ColumnFamilyHandle*> cfs(keys.size(), cf(which));
    std::vector<rocksdb::Slice> slices;
    slices.reserve(keys.size());
    for (const auto& k : keys) slices.emplace_back(k);
    std::vector<rocksdb::Status> statuses =
        db_->MultiGet(rocksdb::ReadOptions(), cfs, slices, &values);
    for (const auto& s : statuses) {
      if (s.IsNotFound()) {
        return fail(Errc::Internal,
                    fmt::format("storage: dangling reference to {}", kCfNames[which]));
      }
      if (!s.ok()) return storageError(fmt::format("reading {}", kCfNames[which]), s);
    }
    return {};
  }

  Result<std::vector<Message>> loadMessages(const std::vector<std::string>& ids) {
    std::vector<std::string> values;
    if (auto r = multiGet(kMessages, ids, values); !r) return std::unexpected(r.error());
    std::vector<Message> messages(ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (ids[i].size() != 8 || !codec::decodeMessage(values[i], messages[i])) {
        return corrupt("messages");
      }
      messages[i].id = codec::getBigEndian64(ids[i]);
    }
    return messages;
  }

  // Calls visit(key, value) for keys starting with `prefix`, from `start` on, until it
  // returns false.
  template <typename Visit>
  Result<void> scan(Cf which, std::string_view prefix, std::string_view start, Visit&& visit) {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf(which)));
    for (it->Seek(toSlice(start)); it->Valid(); it->Next()) {
      const rocksdb::Slice key = it->key();
      const rocksdb::Slice value = it->value();
      if (!startsWith(key, prefix) || !visit(key, value)) break;
    }
    if (!it->status().ok())
      return storageError(fmt::format("scanning {}", kCfNames[which]), it->status());
    return {};
  }

  // The last seq under `prefix` (keys are prefix + 8-byte seq), 0 if none.
  Result<Seq> lastSeq(Cf which, std::string_view prefix) {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf(which)));
    it->SeekForPrev(lastKeyOf(prefix));
    if (!it->status().ok())
      return storageError(fmt::format("seeking {}", kCfNames[which]), it->status());
    if (!it->Valid() || !startsWith(it->key(), prefix) || it->key().size() != prefix.size() + 8) {
      return Seq{0};
    }
    return codec::getBigEndian64(toView(it->key()).substr(prefix.size()));
  }

  Result<void> write(rocksdb::WriteBatch& batch, std::string_view what) {
    rocksdb::Status s = db_->Write(write_options_, &batch);
    if (!s.ok()) return storageError(what, s);
    return {};
  }

  Result<bool> changeMember(GroupId group, UserId user, bool add) {
    std::lock_guard lock(groups_mu_);
    std::string value;
    auto exists = get(kGroups, codec::u64Key(group), value);
    if (!exists) return std::unexpected(exists.error());
    if (!*exists) return fail(Errc::NotFound, "no such group");
    const std::string member_key = codec::pairKey(group, user);
    auto member = get(kMembers, member_key, value);
    if (!member) return std::unexpected(member.error());
    if (*member == add) return false;
    rocksdb::WriteBatch batch;
    if (add) {
      batch.Put(cf(kMembers), member_key, rocksdb::Slice());
      batch.Put(cf(kUserGroups), codec::pairKey(user, group), rocksdb::Slice());
    } else {
      batch.Delete(cf(kMembers), member_key);
      batch.Delete(cf(kUserGroups), codec::pairKey(user, group));
    }
    if (auto r = write(batch, "changing a membership"); !r) return std::unexpected(r.error());
    return true;
  }

  // The second halves of pair keys whose first half is `first`, ascending.
  Result<std::vector<std::uint64_t>> secondIds(Cf which, std::uint64_t first) {
    std::vector<std::uint64_t> ids;
    const std::string prefix = codec::u64Key(first);
    auto scanned = scan(which, prefix, prefix, [&](auto& key, auto&) {
      if (key.size() == 16) ids.push_back(codec::getBigEndian64(toView(key).substr(8)));
      return true;
    });
    if (!scanned) return std::unexpected(scanned.error());
    return ids;
  }

  // ---- the append path ---------------------------------------------------------------------

  // Validation that needs no lock; nullopt if the message is acceptable.
  static std::optional<Result<Appended>> checkAppend(const NewMessage& nm) {
    const Message& m = nm.message;
    if (m.id == 0) return fail(Errc::BadRequest, "message id must be set");
    if (!validConversation(m.conversation)) return fail(Errc::BadRequest, "bad conversation id");
    if (m.body.size() > kMaxFieldBytes || m.client_msg_id.size() > kMaxFieldBytes) {
      return fail(Errc::TooLarge, "message too large for the store");
    }
    std::vector<UserId> recipients = nm.recipients;
    std::sort(recipients.begin(), recipients.end());
    if (std::adjacent_find(recipients.begin(), recipients.end()) != recipients.end()) {
      return fail(Errc::BadRequest, "repeated recipient");
    }
    return std::nullopt;
  }

  std::optional<Error> refusalLocked() const {
    if (failed_) return Error{Errc::Unavailable, "storage failed; restart the server"};
    if (closing_) return Error{Errc::Unavailable, "storage is shutting down"};
    return std::nullopt;
  }

  // Under mu_. Returns the answer to give inline, or nullopt once `done` has been queued
  // (moved from) to be called by the committer.
  std::optional<Result<Appended>> appendLocked(NewMessage& nm, AppendCallback& done,
                                               Clock::time_point started) {
    if (auto down = refusalLocked()) return std::unexpected(*down);
    Message& m = nm.message;
    std::string idem_key;
    if (!m.client_msg_id.empty()) {
      idem_key = codec::userStringKey(m.sender, m.client_msg_id);
      if (auto it = in_flight_.find(idem_key); it != in_flight_.end()) {
        it->second.push_back(std::move(done));  // answered when the original commits
        return std::nullopt;
      }
      std::string value;
      auto found = get(kIdempotency, idem_key, value);
      if (!found) return std::unexpected(found.error());
      if (*found) return committedDuplicate(value);
    }

    // Load every counter first so that a read error leaves no counter advanced.
    auto conv_seq =
        counterLocked(conv_seqs_, m.conversation, kTimeline, codec::timelinePrefix(m.conversation));
    if (!conv_seq) return std::unexpected(conv_seq.error());
    std::vector<Seq*> inbox_seqs;
    inbox_seqs.reserve(nm.recipients.size());
    for (UserId user : nm.recipients) {
      auto seq = counterLocked(inbox_seqs_, user, kInbox, codec::u64Key(user));
      if (!seq) return std::unexpected(seq.error());
      inbox_seqs.push_back(*seq);
    }

    Batch& batch = openBatchLocked();
    m.conv_seq = ++**conv_seq;
    const std::string id_key = codec::u64Key(m.id);
    batch.writes.Put(cf(kMessages), id_key, codec::encodeMessage(m));
    batch.writes.Put(cf(kTimeline), codec::timelineKey(m.conversation, m.conv_seq), id_key);
    Appended appended;
    appended.refs.reserve(nm.recipients.size());
    for (std::size_t i = 0; i < nm.recipients.size(); ++i) {
      const UserId user = nm.recipients[i];
      const Seq seq = ++*inbox_seqs[i];
      batch.writes.Put(cf(kInbox), codec::pairKey(user, seq), id_key);
      appended.refs.push_back(InboxRef{user, seq});
      if (user == m.sender) appended.sender_seq = seq;
    }
    if (!idem_key.empty()) {
      batch.writes.Put(cf(kIdempotency), idem_key,
                       codec::encodeIdempotency(m.id, appended.sender_seq));
      in_flight_.emplace(idem_key, std::vector<AppendCallback>{});
    }
    appended.message = std::move(m);
    batch.appends.push_back(
        PendingAppend{std::move(done), std::move(appended), std::move(idem_key), started});
    cv_.notify_one();
    return std::nullopt;
  }

  Result<Appended> committedDuplicate(std::string_view idempotency_value) {
    Appended dup;
    dup.duplicate = true;
    MsgId id = 0;
    if (!codec::decodeIdempotency(idempotency_value, id, dup.sender_seq)) {
      return corrupt("idempotency");
    }
    auto original = getMessage(id);
    if (!original) {
      if (original.error().code == Errc::NotFound) {
        return fail(Errc::Internal, "storage: idempotency entry without its message");
      }
      return std::unexpected(original.error());
    }
    dup.message = std::move(*original);
    return dup;
  }

  // The in-memory counter for `key`, loaded from the last key under `prefix` on first use.
  template <typename Map>
  Result<Seq*> counterLocked(Map& counters, const typename Map::key_type& key, Cf which,
                             std::string_view prefix) {
    if (auto it = counters.find(key); it != counters.end()) return &it->second;
    auto last = lastSeq(which, prefix);
    if (!last) return std::unexpected(last.error());
    return &counters.emplace(key, *last).first->second;
  }

  Batch& openBatchLocked() {
    if (pending_.empty() || pending_.back().appends.size() + pending_.back().cursors.size() >=
                                options_.max_batch_messages) {
      pending_.emplace_back();
      pending_.back().id = next_batch_id_++;
    }
    return pending_.back();
  }

  void commitLoop() {
    for (;;) {
      Batch batch;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return !pending_.empty() || closing_; });
        if (pending_.empty()) return;  // closing, and everything queued is committed
        batch = std::move(pending_.front());
        pending_.pop_front();
      }
      commit(batch);
    }
  }

  void commit(Batch& batch) {
    const auto t0 = Clock::now();
    rocksdb::Status s = options_.inject_commit_failure && options_.inject_commit_failure()
                            ? rocksdb::Status::IOError("injected commit failure")
                            : db_->Write(write_options_, &batch.writes);
    const auto t1 = Clock::now();
    if (commits_ != nullptr) {
      commits_->inc();
      commit_seconds_->observe(std::chrono::duration<double>(t1 - t0).count());
    }
    if (!s.ok()) {
      failEverything(batch, s);
      return;
    }

    // Duplicates that arrived while their original was in flight get its answer.
    std::vector<std::pair<std::vector<AppendCallback>, Appended>> waiting;
    {
      std::lock_guard lock(mu_);
      for (auto& a : batch.appends) {
        if (a.idempotency_key.empty()) continue;
        auto node = in_flight_.extract(a.idempotency_key);
        if (node.empty() || node.mapped().empty()) continue;
        Appended dup{a.appended.message, a.appended.sender_seq, {}, true};
        waiting.emplace_back(std::move(node.mapped()), std::move(dup));
      }
      for (const auto& c : batch.cursors) {
        auto it = pending_cursors_.find(c.key);
        if (it != pending_cursors_.end() && it->second.batch == batch.id)
          pending_cursors_.erase(it);
      }
      // With nothing queued every counter equals what is on disk, so the cache may be dropped.
      if (pending_.empty() &&
          conv_seqs_.size() + inbox_seqs_.size() > options_.max_cached_counters) {
        conv_seqs_.clear();
        inbox_seqs_.clear();
      }
    }

    if (appended_ != nullptr) appended_->inc(batch.appends.size());
    for (auto& a : batch.appends) {
      if (append_seconds_ != nullptr) {
        append_seconds_->observe(std::chrono::duration<double>(Clock::now() - a.started).count());
      }
      a.done(std::move(a.appended));
    }
    for (auto& c : batch.cursors) c.done.set_value(c.value);
    for (auto& [callbacks, dup] : waiting) {
      for (auto& callback : callbacks) callback(dup);
    }
  }

  // A group failed to write: the counters are now ahead of the disk, so continuing would leave
  // gaps. Fail this batch, everything queued behind it, and every later write.
  void failEverything(Batch& first, const rocksdb::Status& s) {
    spdlog::error("store: group commit of {} appends failed, refusing further writes: {}",
                  first.appends.size(), s.ToString());
    std::deque<Batch> rest;
    std::vector<AppendCallback> waiting;
    {
      std::lock_guard lock(mu_);
      failed_ = true;
      rest.swap(pending_);
      for (auto& [key, callbacks] : in_flight_) {
        for (auto& callback : callbacks) waiting.push_back(std::move(callback));
      }
      in_flight_.clear();
      pending_cursors_.clear();
      conv_seqs_.clear();
      inbox_seqs_.clear();
    }
    const Error error{Errc::Unavailable, fmt::format("storage write failed: {}", s.ToString())};
    auto failBatch = [&](Batch& batch) {
      for (auto& a : batch.appends) a.done(std::unexpected(error));
      for (auto& c : batch.cursors) c.done.set_value(std::unexpected(error));
    };
    failBatch(first);
    for (auto& batch : rest) failBatch(batch);
    for (auto& callback : waiting) callback(std::unexpected(error));
  }

  RocksOptions options_;
  rocksdb::WriteOptions write_options_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;

  Counter* appended_ = nullptr;
  Counter* commits_ = nullptr;
  Histogram* commit_seconds_ = nullptr;
  Histogram* append_seconds_ = nullptr;

  std::mutex users_mu_;      // username uniqueness and the user id counter
  UserId next_user_id_ = 0;  // 0 until loaded from the meta CF
  std::mutex groups_mu_;     // group existence and membership read-modify-write
  std::mutex devices_mu_;    // device read-modify-write

  // Sequencing state for appends and cursor moves.
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> pending_;  // FIFO; only the back batch takes new writes
  std::uint64_t next_batch_id_ = 1;
  bool closing_ = false;
  bool failed_ = false;
  // (sender | client_msg_id) of appends queued but not committed → duplicates waiting on them.
  std::unordered_map<std::string, std::vector<AppendCallback>> in_flight_;
  std::unordered_map<std::string, Seq> conv_seqs_;  // conversation → last allocated conv_seq
  std::unordered_map<UserId, Seq> inbox_seqs_;      // user → last allocated inbox seq
  std::unordered_map<std::string, PendingCursor> pending_cursors_;  // cursor key → queued value

  std::thread committer_;  // last: started after everything above exists
};

}  // namespace

Result<std::unique_ptr<Store>> openRocksStore(const RocksOptions& options,
                                              MetricsRegistry* metrics) {
  auto store = std::make_unique<RocksStore>(options, metrics);
  if (auto opened = store->open(); !opened) return std::unexpected(opened.error());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace pigeon::store
