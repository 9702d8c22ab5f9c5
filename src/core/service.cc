#include "core/service.h"

#include <algorithm>
#include <functional>
#include <set>

#include "core/conversation.h"
#include "core/validation.h"

namespace pigeon::core {
namespace {

constexpr std::size_t kMaxCachedNames = 100000;

constexpr std::size_t kSearchChunk = 256;  // inbox items read per store call while searching

unsigned char foldAscii(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u >= 'A' && u <= 'Z') ? static_cast<unsigned char>(u + ('a' - 'A')) : u;
}

struct FoldedHash {
  std::size_t operator()(char c) const { return foldAscii(c); }
};
struct FoldedEqual {
  bool operator()(char a, char b) const { return foldAscii(a) == foldAscii(b); }
};

store::Group lobbyGroup() {
  return store::Group{kLobbyId, std::string(kLobbyName), 0, 0};
}

}  // namespace

Result<std::unique_ptr<Service>> Service::create(store::Store& store, const Clock& clock,
                                                 MetricsRegistry& metrics, ServiceOptions options) {
  if (auto ok = initCrypto(); !ok) return std::unexpected(ok.error());
  auto ids = Snowflake::create(options.worker_id, clock);
  if (!ids) return std::unexpected(ids.error());
  auto max_id = store.maxMessageId();
  if (!max_id) return std::unexpected(max_id.error());
  ids->observe(*max_id);
  return std::unique_ptr<Service>(
      new Service(store, clock, metrics, std::move(options), std::move(*ids)));
}

Service::Service(store::Store& store, const Clock& clock, MetricsRegistry& metrics,
                 ServiceOptions options, Snowflake ids)
    : store_(store),
      clock_(clock),
      options_(std::move(options)),
      ids_(std::move(ids)),
      messages_stored_(metrics.counter("pigeon_messages_stored_total", "Messages stored")),
      duplicates_(metrics.counter("pigeon_messages_duplicate_total",
                                  "Sends answered from the idempotency map")),
      logins_(metrics.counter("pigeon_logins_total", "Successful logins")),
      login_failures_(metrics.counter("pigeon_login_failures_total", "Failed logins")),
      failed_logins_(options_.failed_logins_per_minute / 60.0, options_.failed_logins_burst, clock) {}

void Service::setWorkerId(std::optional<std::uint32_t> worker) {
  if (!worker) {
    ids_leased_.store(false);
    return;
  }
  if (worker != ids_.worker()) (void)ids_.setWorker(*worker);  // checked by the caller's source
  ids_leased_.store(true);
}

Result<std::uint64_t> Service::nextId() {
  if (!ids_leased_.load()) {
    return fail(Errc::Unavailable, "this node has no id lease (it lost ZooKeeper); try again shortly");
  }
  return ids_.next();
}

// ---- accounts --------------------------------------------------------------------------------

Result<store::User> Service::registerUser(std::string_view username, std::string_view password) {
  if (auto ok = validateUsername(username); !ok) return std::unexpected(ok.error());
  if (auto ok = validatePassword(password); !ok) return std::unexpected(ok.error());
  // Cheap early answer for a taken name before spending argon2id's memory and time.
  if (auto existing = store_.findUserByName(username); existing) {
    return fail(Errc::Conflict, "username '" + std::string(username) + "' is taken");
  } else if (existing.error().code != Errc::NotFound) {
    return std::unexpected(existing.error());
  }
  auto hash = hashPassword(password, options_.password_cost);
  if (!hash) return std::unexpected(hash.error());
  auto user = store_.createUser(username, *hash, clock_.nowMs());
  if (!user && user.error().code == Errc::Conflict) {
    return fail(Errc::Conflict, "username '" + std::string(username) + "' is taken");
  }
  return user;
}

Result<LoginResult> Service::login(std::string_view username, std::string_view password,
                                   std::string_view device) {
  if (auto ok = validateDevice(device); !ok) return std::unexpected(ok.error());
  // Only failures are charged, so the owner of the account is never locked out by their own
  // successful logins; an unknown name is charged like a known one (no telling them apart).
  const std::string limit_key(username.substr(0, kMaxUsername + 1));
  if (!failed_logins_.hasToken(limit_key)) {
    login_failures_.inc();
    return fail(Errc::RateLimited, "too many failed logins for this user; try again in a minute");
  }
  auto user = store_.findUserByName(username);
  if (!user) {
    if (user.error().code != Errc::NotFound) return std::unexpected(user.error());
    login_failures_.inc();
    failed_logins_.allow(limit_key);
    return fail(Errc::Unauthenticated, "wrong username or password");
  }
  if (password.size() > kMaxPassword || !verifyPassword(password, user->password_hash)) {
    login_failures_.inc();
    failed_logins_.allow(limit_key);
    return fail(Errc::Unauthenticated, "wrong username or password");
  }
  const std::int64_t now = clock_.nowMs();
  if (auto ok = store_.touchDevice(user->id, device, now); !ok) return std::unexpected(ok.error());
  LoginResult result;
  result.token = newToken();
  store::Token token{tokenHash(result.token), user->id, std::string(device), now,
                     now + options_.token_ttl_ms};
  if (auto ok = store_.putToken(token); !ok) return std::unexpected(ok.error());
  result.principal = Principal{user->id, user->username, std::string(device), token.expires_at_ms};
  logins_.inc();
  return result;
}

Result<Principal> Service::authenticate(std::string_view token) {
  if (token.empty() || token.size() > 128) return fail(Errc::Unauthenticated, "invalid token");
  const std::string hash = tokenHash(token);
  auto record = store_.getToken(hash);
  if (!record) {
    if (record.error().code == Errc::NotFound) return fail(Errc::Unauthenticated, "invalid token");
    return std::unexpected(record.error());
  }
  if (record->expires_at_ms <= clock_.nowMs()) {
    (void)store_.deleteToken(hash);  // best effort: an expired token is useless anyway
    return fail(Errc::Unauthenticated, "token expired");
  }
  auto name = usernameOf(record->user);
  if (!name) {
    if (name.error().code == Errc::NotFound) return fail(Errc::Unauthenticated, "invalid token");
    return std::unexpected(name.error());
  }
  return Principal{record->user, std::move(*name), record->device, record->expires_at_ms};
}

Result<void> Service::logout(std::string_view token) {
  auto who = authenticate(token);
  if (!who) return std::unexpected(who.error());
  return store_.deleteToken(tokenHash(token));
}

Result<std::size_t> Service::purgeExpiredTokens() {
  return store_.purgeExpiredTokens(clock_.nowMs());
}

Result<std::vector<store::User>> Service::findUsers(std::string_view prefix, std::size_t limit) {
  if (auto ok = validateUsernamePrefix(prefix); !ok) return std::unexpected(ok.error());
  return store_.listUsers(prefix, std::clamp<std::size_t>(limit, 1, options_.max_page));
}

Result<store::User> Service::getUser(UserId id) {
  return store_.getUser(id);
}

Result<std::string> Service::usernameOf(UserId id) {
  {
    std::lock_guard lock(names_mu_);
    if (auto it = names_.find(id); it != names_.end()) return it->second;
  }
  auto user = store_.getUser(id);
  if (!user) return std::unexpected(user.error());
  std::lock_guard lock(names_mu_);
  if (names_.size() >= kMaxCachedNames) names_.clear();
  names_.emplace(id, user->username);
  return std::move(user->username);
}

// ---- groups ----------------------------------------------------------------------------------

Result<store::Group> Service::loadGroup(GroupId id) {
  if (id == kLobbyId) return lobbyGroup();
  auto group = store_.getGroup(id);
  if (!group && group.error().code == Errc::NotFound) {
    return fail(Errc::NotFound, "group " + std::to_string(id) + " does not exist");
  }
  return group;
}

Result<bool> Service::isMember(GroupId id, UserId user) {
  if (id == kLobbyId) return true;  // every user is in the lobby
  return store_.isMember(id, user);
}

Result<std::vector<UserId>> Service::membersOf(GroupId id) {
  if (id == kLobbyId) return store_.allUserIds();
  return store_.listMembers(id);
}

Result<GroupView> Service::createGroup(const Principal& who, std::string_view name,
                                       const std::vector<std::string>& member_names) {
  if (auto ok = validateGroupName(name); !ok) return std::unexpected(ok.error());
  std::set<UserId> members{who.user};
  std::vector<store::User> users;
  for (const auto& member : member_names) {
    auto user = store_.findUserByName(member);
    if (!user) {
      if (user.error().code == Errc::NotFound) {
        return fail(Errc::NotFound, "user '" + member + "' does not exist");
      }
      return std::unexpected(user.error());
    }
    if (members.insert(user->id).second) users.push_back(std::move(*user));
    if (members.size() > options_.max_group_members) {
      return fail(Errc::BadRequest,
                  "a group has at most " + std::to_string(options_.max_group_members) + " members");
    }
  }
  auto id = nextId();
  if (!id) return std::unexpected(id.error());
  store::Group group{*id, std::string(name), who.user, clock_.nowMs()};
  const std::vector<UserId> member_ids(members.begin(), members.end());
  if (auto ok = store_.createGroup(group, member_ids); !ok) return std::unexpected(ok.error());
  auto owner = store_.getUser(who.user);
  if (!owner) return std::unexpected(owner.error());
  users.push_back(std::move(*owner));
  std::sort(users.begin(), users.end(), [](auto& a, auto& b) { return a.id < b.id; });
  GroupView view{group, who.username, std::move(users), member_ids.size()};
  return view;
}

Result<std::vector<GroupView>> Service::listGroups(const Principal& who) {
  auto ids = store_.groupsOf(who.user);
  if (!ids) return std::unexpected(ids.error());
  auto user_count = store_.userCount();
  if (!user_count) return std::unexpected(user_count.error());
  std::vector<GroupView> out;
  out.push_back(GroupView{lobbyGroup(), "", {}, std::size_t(*user_count)});
  for (GroupId id : *ids) {
    auto group = store_.getGroup(id);
    if (!group) {
      if (group.error().code == Errc::NotFound) continue;  // removed meanwhile
      return std::unexpected(group.error());
    }
    auto members = store_.listMembers(id);
    if (!members) return std::unexpected(members.error());
    auto owner = usernameOf(group->owner);
    out.push_back(GroupView{std::move(*group), owner ? *owner : "", {}, members->size()});
  }
  return out;
}

Result<GroupView> Service::getGroup(const Principal& who, GroupId id) {
  auto group = loadGroup(id);
  if (!group) return std::unexpected(group.error());
  auto member = isMember(id, who.user);
  if (!member) return std::unexpected(member.error());
  if (!*member) return fail(Errc::Forbidden, "you are not a member of group " + std::to_string(id));
  GroupView view{std::move(*group), "", {}, 0};
  if (id == kLobbyId) {
    // The lobby's member list is every user: report the count, not the list.
    auto count = store_.userCount();
    if (!count) return std::unexpected(count.error());
    view.member_count = std::size_t(*count);
    return view;
  }
  auto members = store_.listMembers(id);
  if (!members) return std::unexpected(members.error());
  for (UserId uid : *members) {
    auto user = store_.getUser(uid);
    if (!user) return std::unexpected(user.error());
    if (uid == view.group.owner) view.owner_name = user->username;
    view.members.push_back(std::move(*user));
  }
  view.member_count = view.members.size();
  return view;
}

Result<void> Service::addMember(const Principal& who, GroupId id, std::string_view username) {
  if (id == kLobbyId) return fail(Errc::BadRequest, "every user is in the lobby already");
  auto group = loadGroup(id);
  if (!group) return std::unexpected(group.error());
  if (group->owner != who.user) {
    return fail(Errc::Forbidden, "only the owner of group " + std::to_string(id) + " adds members");
  }
  auto user = store_.findUserByName(username);
  if (!user) {
    if (user.error().code == Errc::NotFound) {
      return fail(Errc::NotFound, "user '" + std::string(username) + "' does not exist");
    }
    return std::unexpected(user.error());
  }
  auto members = store_.listMembers(id);
  if (!members) return std::unexpected(members.error());
  if (members->size() >= options_.max_group_members) {
    return fail(Errc::BadRequest,
                "a group has at most " + std::to_string(options_.max_group_members) + " members");
  }
  auto added = store_.addMember(id, user->id);
  if (!added) return std::unexpected(added.error());
  if (!*added) return fail(Errc::Conflict, "'" + std::string(username) + "' is a member already");
  return {};
}

Result<void> Service::removeMember(const Principal& who, GroupId id, std::string_view username) {
  if (id == kLobbyId) return fail(Errc::BadRequest, "nobody can leave the lobby");
  auto group = loadGroup(id);
  if (!group) return std::unexpected(group.error());
  auto user = store_.findUserByName(username);
  if (!user) {
    if (user.error().code == Errc::NotFound) {
      return fail(Errc::NotFound, "user '" + std::string(username) + "' does not exist");
    }
    return std::unexpected(user.error());
  }
  if (group->owner != who.user && user->id != who.user) {
    return fail(Errc::Forbidden,
                "only the owner of group " + std::to_string(id) + " removes other members");
  }
  if (user->id == group->owner) {
    return fail(Errc::Conflict, "the owner cannot leave their group");
  }
  auto removed = store_.removeMember(id, user->id);
  if (!removed) return std::unexpected(removed.error());
  if (!*removed) {
    return fail(Errc::NotFound,
                "'" + std::string(username) + "' is not a member of group " + std::to_string(id));
  }
  return {};
}

Result<void> Service::leaveGroup(const Principal& who, GroupId id) {
  return removeMember(who, id, who.username);
}

Result<std::vector<UserId>> Service::contactsOf(UserId user) {
  auto groups = store_.groupsOf(user);
  if (!groups) return std::unexpected(groups.error());
  std::set<UserId> contacts;
  for (GroupId id : *groups) {
    auto members = store_.listMembers(id);
    if (!members) return std::unexpected(members.error());
    contacts.insert(members->begin(), members->end());
  }
  contacts.erase(user);
  return std::vector<UserId>(contacts.begin(), contacts.end());
}

// ---- messages --------------------------------------------------------------------------------

Result<bool> Service::canAccess(UserId user, std::string_view conversation) {
  auto ref = parseConversation(conversation);
  if (!ref) return std::unexpected(ref.error());
  if (ref->kind == ConversationRef::Kind::Direct) return ref->lo == user || ref->hi == user;
  if (auto group = loadGroup(ref->group); !group) return std::unexpected(group.error());
  return isMember(ref->group, user);
}

void Service::send(const Principal& who, SendRequest request, SendCallback done) {
  auto draft = check(who, std::move(request));
  if (!draft) return done(std::unexpected(draft.error()));
  commit(who, std::move(*draft), std::move(done));
}

Result<store::NewMessage> Service::check(const Principal& who, SendRequest request) {
  if (request.to_user.has_value() == request.to_group.has_value()) {
    return fail(Errc::BadRequest, "give exactly one of to_user and to_group");
  }
  if (request.body.size() > options_.max_body_bytes) {
    return fail(Errc::TooLarge, "body is over the limit of " +
                                    std::to_string(options_.max_body_bytes) + " bytes");
  }
  if (auto ok = validateContentType(request.content_type); !ok)
    return std::unexpected(ok.error());
  if (auto ok = validateClientMsgId(request.client_msg_id); !ok)
    return std::unexpected(ok.error());

  store::NewMessage draft;
  if (request.to_user) {
    auto target = store_.findUserByName(*request.to_user);
    if (!target) {
      if (target.error().code == Errc::NotFound) {
        return fail(Errc::NotFound, "user '" + *request.to_user + "' does not exist");
      }
      return std::unexpected(target.error());
    }
    draft.message.conversation = directConversation(who.user, target->id);
    draft.recipients.push_back(who.user);
    if (target->id != who.user) draft.recipients.push_back(target->id);
  } else {
    const GroupId gid = *request.to_group;
    auto group = loadGroup(gid);
    if (!group) return std::unexpected(group.error());
    auto member = isMember(gid, who.user);
    if (!member) return std::unexpected(member.error());
    if (!*member) {
      return fail(Errc::Forbidden, "you are not a member of group " + std::to_string(gid));
    }
    auto members = membersOf(gid);
    if (!members) return std::unexpected(members.error());
    draft.message.conversation = groupConversation(gid);
    draft.recipients = std::move(*members);
  }

  store::Message& m = draft.message;
  auto id = nextId();
  if (!id) return std::unexpected(id.error());
  m.id = *id;
  m.sender = who.user;
  m.sender_device = who.device;
  m.client_msg_id = std::move(request.client_msg_id);
  m.created_at_ms = clock_.nowMs();
  m.content_type = std::move(request.content_type);
  m.body = std::move(request.body);

  return draft;
}

void Service::commit(const Principal& who, store::NewMessage draft, SendCallback done) {
  store_.append(std::move(draft), [this, from = who.username,
                                   done = std::move(done)](Result<store::Appended> appended) {
    if (!appended) return done(std::unexpected(appended.error()));
    const store::Message& msg = appended->message;
    // The sender hears first (its RECEIPT is queued before the echo to its own devices), then
    // the message fans out.
    done(SendResult{msg.id, msg.conversation, msg.conv_seq, appended->sender_seq, msg.created_at_ms,
                    appended->duplicate});
    if (appended->duplicate) {
      duplicates_.inc();
    } else {
      messages_stored_.inc();
      if (sink_) sink_->onStored(msg, from, appended->refs);
    }
  });
}

Result<SyncResult> Service::sync(const Principal& who, std::optional<Seq> after,
                                 std::size_t limit) {
  Seq from = 0;
  if (after) {
    from = *after;
  } else {
    auto cursor = store_.getCursor(who.user, who.device);
    if (!cursor) return std::unexpected(cursor.error());
    from = *cursor;
  }
  limit = std::clamp<std::size_t>(limit, 1, options_.max_page);
  auto items = store_.readInbox(who.user, from, limit + 1);
  if (!items) return std::unexpected(items.error());
  SyncResult result;
  result.has_more = items->size() > limit;
  if (result.has_more) items->resize(limit);
  result.last_seq = items->empty() ? from : items->back().seq;
  result.messages.reserve(items->size());
  for (auto& item : *items) {
    auto name = usernameOf(item.message.sender);
    if (!name) return std::unexpected(name.error());
    result.messages.push_back(MessageView{item.seq, std::move(item.message), std::move(*name)});
  }
  return result;
}

Result<Seq> Service::cursorOf(const Principal& who) {
  return store_.getCursor(who.user, who.device);
}

Result<Seq> Service::inboxEnd(const Principal& who) { return store_.lastInboxSeq(who.user); }

Result<Seq> Service::ack(const Principal& who, Seq seq) {
  auto last = store_.lastInboxSeq(who.user);
  if (!last) return std::unexpected(last.error());
  if (seq > *last) {
    return fail(Errc::BadRequest, "seq " + std::to_string(seq) + " is past the end of the inbox (" +
                                      std::to_string(*last) + ")");
  }
  return store_.advanceCursor(who.user, who.device, seq);
}

Result<std::vector<Seq>> Service::storeCursors(std::span<const store::CursorUpdate> updates) {
  return store_.advanceCursors(updates);
}

Result<SearchResult> Service::search(const Principal& who, std::string_view keyword, Seq before,
                                     std::size_t limit) {
  if (keyword.empty()) return fail(Errc::BadRequest, "the search keyword is empty");
  if (keyword.size() > kMaxSearchQuery) {
    return fail(Errc::BadRequest,
                "the search keyword is over " + std::to_string(kMaxSearchQuery) + " bytes");
  }
  if (!isValidUtf8(keyword)) return fail(Errc::BadRequest, "the search keyword is not UTF-8");
  limit = std::clamp<std::size_t>(limit, 1, options_.max_page);

  auto last = store_.lastInboxSeq(who.user);
  if (!last) return std::unexpected(last.error());
  // `lowest` is the lowest seq examined so far: everything below it is still to be searched.
  Seq lowest = (before == 0 || before > *last) ? *last + 1 : before;

  // Boyer-Moore keeps a long body with a long keyword linear; folding only ASCII letters makes
  // the byte-wise match UTF-8 safe (a UTF-8 keyword cannot start inside another character).
  const std::boyer_moore_searcher searcher(keyword.begin(), keyword.end(), FoldedHash{},
                                           FoldedEqual{});
  SearchResult result;
  while (lowest > 1 && result.scanned < options_.max_search_scan &&
         result.messages.size() < limit) {
    const std::size_t chunk =
        std::min<std::size_t>({kSearchChunk, options_.max_search_scan - result.scanned, lowest - 1});
    const Seq after = lowest - 1 - chunk;
    auto items = store_.readInbox(who.user, after, chunk);
    if (!items) return std::unexpected(items.error());
    bool stopped = false;
    for (auto it = items->rbegin(); it != items->rend(); ++it) {
      ++result.scanned;
      lowest = it->seq;
      const store::Message& m = it->message;
      if (m.content_type.starts_with("text/") &&
          std::search(m.body.begin(), m.body.end(), searcher) != m.body.end()) {
        auto name = usernameOf(m.sender);
        if (!name) return std::unexpected(name.error());
        result.messages.push_back(MessageView{it->seq, std::move(it->message), std::move(*name)});
        if (result.messages.size() >= limit) {
          stopped = true;
          break;
        }
      }
    }
    if (!stopped) lowest = after + 1;  // the store returned everything in (after, lowest)
  }
  result.complete = lowest <= 1;
  result.next_before = result.complete ? 0 : lowest;
  return result;
}

Result<std::vector<MessageView>> Service::history(const Principal& who,
                                                  std::string_view conversation, Seq before,
                                                  std::size_t limit) {
  auto allowed = canAccess(who.user, conversation);
  if (!allowed) return std::unexpected(allowed.error());
  if (!*allowed)
    return fail(Errc::Forbidden, "you are not a participant of " + std::string(conversation));
  auto messages = store_.readTimeline(conversation, before,
                                      std::clamp<std::size_t>(limit, 1, options_.max_page));
  if (!messages) return std::unexpected(messages.error());
  std::vector<MessageView> out;
  out.reserve(messages->size());
  for (auto& m : *messages) {
    auto name = usernameOf(m.sender);
    if (!name) return std::unexpected(name.error());
    out.push_back(MessageView{0, std::move(m), std::move(*name)});
  }
  return out;
}

}  // namespace pigeon::core
