#include "console.h"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>

#include "emoji.h"

namespace pigeon::console {
namespace asio = boost::asio;
namespace json = boost::json;
using asio::awaitable;
using asio::use_awaitable;

namespace {

// The backlog block shows at most this many (the newest) of what came while away; the header
// counts them all, per conversation when some are left out.
constexpr std::size_t kMaxBacklogShown = 1000;
// If the SDK has not said "caught up" this long after the connection came up (e.g. the HTTP
// API cannot be reached), the backlog so far is shown anyway.
constexpr auto kBacklogWait = std::chrono::seconds(3);
constexpr std::size_t kSearchLimit = 20;
constexpr unsigned kUserListLimit = 50;
// After the client stopped, how long :q! waits for --on-message programs still queued.
constexpr auto kHookDrainTimeout = std::chrono::seconds(10);
// :q!: how long the SDK's stop() may take to get the messages sent so far answered (connecting
// first if the connection is down).
constexpr auto kStopTimeout = std::chrono::seconds(10);

std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string percentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// Characters, not bytes (UTF-8 continuation bytes do not count); enough for aligning columns.
std::size_t displayWidth(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string joinNames(const std::vector<client::UserRef>& users) {
  std::string out;
  for (const auto& u : users) {
    if (!out.empty()) out += ", ";
    out += u.username;
  }
  return out;
}

std::string transportName(client::Transport t) {
  return t == client::Transport::Tcp ? "tcp" : "ws";
}

std::string seconds(std::chrono::milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms.count()) / 1000.0);
  return buf;
}

}  // namespace

Console::Console(asio::io_context& io, ConsoleOptions options)
    : io_(io),
      options_(std::move(options)),
      terminal_(io.get_executor(), options_.interactive,
                Terminal::Handlers{[this](std::string line) { onLine(std::move(line)); },
                                   [this] {
                                     input_ended_ = true;
                                     if (!processing_) quit(kExitOk);
                                   }}),
      signals_(io, SIGINT, SIGTERM) {
  if (!options_.on_message.empty()) {
    MessageHook::Options hook;
    hook.program = options_.on_message;
    hook.max_running = options_.on_message_jobs;
    hook_ = std::make_unique<MessageHook>(io.get_executor(), std::move(hook),
                                          [this](std::string line) { status(line); });
  }
  client::ClientOptions co;
  co.server = options_.server;
  co.fallback_servers = options_.fallback_servers;
  co.username = options_.username;
  co.password = options_.password;
  co.device = options_.device;
  co.register_user = options_.register_user;
  co.transport = options_.transport;
  co.gateway = options_.gateway;
  co.tls = options_.tls;
  co.stop_timeout = kStopTimeout;
  client_ = std::make_unique<client::Client>(io.get_executor(), std::move(co), *this);
  current_.to = client::Destination::toGroup(client::kLobbyGroup);
  current_.conversation = "g:" + std::to_string(client::kLobbyGroup);
}

Console::~Console() = default;

int Console::run() {
  waitSignal();
  status("logging in to " + options_.server + " as " + options_.username +
         (options_.register_user ? " (registering first)" : "") + "…");
  client_->start([this](Result<client::Session> session) { onStarted(std::move(session)); });
  io_.run();
  return exit_code_;
}

void Console::waitSignal() {
  signals_.async_wait([this](const boost::system::error_code& ec, int) {
    if (ec) return;
    if (quitting_) {  // a second Ctrl-C: do not wait any longer
      exit_code_ = kExitInterrupted;
      return finish();
    }
    quit(kExitOk);
    waitSignal();
  });
}

// ---- output --------------------------------------------------------------------------------

void Console::print(std::string_view text) {
  terminal_.print(text);
}

void Console::status(std::string_view text) {
  print("· " + std::string(text));
}

void Console::printError(std::string_view what, const Error& error) {
  print("✗ " + std::string(what) + ": " + error.message + " (" + std::string(errcName(error.code)) +
        ")");
}

void Console::updatePrompt() {
  std::string prompt = names_.label(current_.conversation);
  if (const std::size_t n = unread_.total(); n > 0) prompt += " [" + std::to_string(n) + " unread]";
  terminal_.setPrompt(prompt + "> ");
}

void Console::printMessages(const std::vector<client::Message>& messages) {
  const std::int64_t now = nowMs();
  std::string text;
  for (const auto& m : messages) {
    if (!text.empty()) text += '\n';
    text += formatMessage(m, names_, now);
  }
  if (!text.empty()) print(text);
}

// ---- start and stop ------------------------------------------------------------------------

void Console::onStarted(Result<client::Session> session) {
  if (!session) {
    const Error& e = session.error();
    std::string why = e.message;
    int code = kExitUnreachable;
    if (e.code == Errc::Unauthenticated) {
      why = "wrong username or password";
      code = kExitLoginRefused;
    } else if (e.code == Errc::Conflict || e.code == Errc::BadRequest ||
               e.code == Errc::RateLimited || e.code == Errc::NotFound) {
      code = kExitLoginRefused;
    }
    std::fprintf(stderr, "pigeon: login failed: %s\n", why.c_str());
    exit_code_ = code;
    quitting_ = true;
    return finish();
  }
  started_ = true;
  names_.setSelf(session->user_id, session->username);
  status("logged in as " + session->username + " (device " + session->device +
         "); :all lists the commands");
  terminal_.start(names_.label(current_.conversation) + "> ");
  asio::co_spawn(io_, refreshGroups(), asio::detached);
}

void Console::quit(int code) {
  if (quitting_) return;
  quitting_ = true;
  exit_code_ = code;
  terminal_.stopInput();
  if (!delayed_.empty()) {
    status(std::to_string(delayed_.size()) + " delayed message(s) not sent");
    for (auto& t : delayed_) t.cancel();
  }
  // The SDK's stop() gets what was sent answered (connecting first if need be), within
  // kStopTimeout; what it cannot is reported through onSendResult.
  const std::size_t pending = client_->pendingSends();
  if (pending > 0 && client_->state() != client::State::Stopped) {
    status("sending " + std::to_string(pending) + " message(s) before quitting…");
  }
  stopClient();
}

void Console::stopClient() {
  if (client_stopping_) return;
  client_stopping_ = true;
  client_->stop([this] {
    if (hook_ && (hook_->running() > 0 || hook_->queued() > 0)) {
      hook_wait_.emplace(io_);
      hook_wait_->expires_after(kHookDrainTimeout);
      hook_wait_->async_wait([this](const boost::system::error_code& ec) {
        if (!ec) finish();
      });
      hook_->whenIdle([this] { finish(); });
      return;
    }
    finish();
  });
}

void Console::finish() {
  if (finished_) return;
  finished_ = true;
  terminal_.stopInput();
  std::fflush(stdout);
  io_.stop();
}

// ---- input ---------------------------------------------------------------------------------

void Console::onLine(std::string line) {
  if (quitting_) return;
  lines_.push_back(std::move(line));
  if (processing_) return;
  processing_ = true;
  asio::co_spawn(io_, processLines(), asio::detached);
}

awaitable<void> Console::processLines() {
  while (!lines_.empty() && !quitting_) {
    std::string line = std::move(lines_.front());
    lines_.pop_front();
    co_await execute(parseCommand(line));
  }
  lines_.clear();
  processing_ = false;
  if (input_ended_) quit(kExitOk);
}

awaitable<void> Console::execute(const Command& command) {
  co_await std::visit([this](const auto& c) { return run(c); }, command);
}

// ---- sending -------------------------------------------------------------------------------

void Console::sendText(const Target& target, const std::string& text) {
  std::string body = expandEmoji(text);
  const std::string id = client_->send(target.to, std::move(body));
  pending_[id] = target.to.isGroup() ? names_.label(target.conversation) : "@" + target.to.user;
}

void Console::onSendResult(const client::SendResult& result) {
  auto it = pending_.find(result.client_msg_id);
  std::string label = it != pending_.end()  ? it->second
                      : result.to.isGroup() ? names_.label("g:" + std::to_string(result.to.group))
                                            : "@" + result.to.user;
  if (it != pending_.end()) pending_.erase(it);
  if (!result.receipt) return printError("not sent to " + label, result.receipt.error());
  // A private conversation's id names the other user: remember whose it is.
  if (!result.to.isGroup()) {
    if (auto ref = client::parseConversation(result.receipt->conversation);
        ref && !ref->isGroup()) {
      const auto other = ref->user_lo == names_.selfId() ? ref->user_hi : ref->user_lo;
      names_.learnUser(other, result.to.user);
    }
  }
}

// ---- receiving -----------------------------------------------------------------------------

void Console::onMessages(std::span<const client::Message> messages) {
  const std::int64_t now = nowMs();
  const bool hold = catching_up_ && !backlog_shown_;
  bool unknown_group = false;
  std::string text;  // printed at once: one redraw of the prompt, whatever the number
  for (const client::Message& m : messages) {
    names_.learnFrom(m);
    if (auto ref = client::parseConversation(m.conversation);
        ref && ref->isGroup() && !names_.groupName(ref->group)) {
      unknown_group = true;
    }
    const bool mine = m.from == names_.selfName();
    if (!mine) unread_.onIncoming(m.conversation, current_.conversation);
    if (catching_up_) ++backlog_count_;  // counted even once shown (after kBacklogWait)
    if (hold) {
      ++backlog_by_conversation_[m.conversation];
      backlog_.push_back(m);
      if (backlog_.size() > kMaxBacklogShown) backlog_.pop_front();
    } else {
      if (!text.empty()) text += '\n';
      text += formatMessage(m, names_, now);
    }
    if (hook_ && !mine) hook_->run(messageJsonLine(m, names_));
  }
  updatePrompt();
  if (!text.empty()) print(text);
  if (unknown_group && !refreshing_groups_) asio::co_spawn(io_, refreshGroups(), asio::detached);
}

void Console::showBacklog(bool caught_up, bool first) {
  if (backlog_wait_) backlog_wait_->cancel();
  if (!backlog_shown_ && backlog_count_ > 0) {
    std::string header = "— " + std::to_string(backlog_count_) +
                         (backlog_count_ == 1 ? " message" : " messages") + " while you were away";
    if (backlog_.size() < backlog_count_) {
      std::string per;
      for (const auto& [conversation, n] : backlog_by_conversation_) {
        per += (per.empty() ? ": " : ", ") + names_.label(conversation) + " " + std::to_string(n);
      }
      header += per + "; the newest " + std::to_string(backlog_.size()) +
                " below (:history shows a conversation)";
    }
    print(header + " —");
    printMessages(std::vector<client::Message>(backlog_.begin(), backlog_.end()));
  }
  if (caught_up && backlog_count_ > 0) {
    print("— up to date —");
  } else if (caught_up && first) {
    print("— no new messages —");
  }
  backlog_shown_ = true;
  backlog_.clear();
  backlog_by_conversation_.clear();
  if (caught_up) catching_up_ = false;
}

void Console::onCaughtUp(const client::CaughtUp& info) {
  if (!catching_up_) return;
  showBacklog(true, info.first);
}

void Console::onStateChange(const client::StateChange& change) {
  using client::State;
  switch (change.state) {
    case State::Online:
      if (!quiet_reconnect_) {
        status(std::string(was_online_ ? "back online" : "online") + " over " +
               transportName(options_.transport) +
               (client_->session() ? " (" +
                                         (options_.transport == client::Transport::Tcp
                                              ? client_->session()->gateway_tcp
                                              : client_->session()->gateway_ws) +
                                         ")"
                                   : ""));
      }
      // Until the SDK says it caught up, what arrives is the backlog: held, shown as a block.
      // Not after the quick reconnect that follows a refused send: nobody was away.
      catching_up_ = !quiet_reconnect_;
      backlog_shown_ = false;
      backlog_count_ = 0;
      backlog_.clear();
      backlog_by_conversation_.clear();
      if (catching_up_) {
        backlog_wait_.emplace(io_);
        backlog_wait_->expires_after(kBacklogWait);
        backlog_wait_->async_wait([this](const boost::system::error_code& ec) {
          if (!ec && catching_up_) showBacklog(false);
        });
      }
      was_online_ = true;
      quiet_reconnect_ = false;
      last_wait_reason_.clear();
      break;
    case State::Waiting: {
      if (catching_up_) {
        showBacklog(false);
        catching_up_ = false;
      }
      if (change.reason == client::Reason::SendRefused) {
        // Over STOMP the server ends the connection after refusing a send (the refusal was
        // printed with ✗); the SDK reconnects at once. Not worth a "connection lost" banner.
        status("reconnecting (a STOMP connection ends after a refused send)");
        quiet_reconnect_ = true;
        break;
      }
      quiet_reconnect_ = false;
      // The first failure says what happened; while the server stays away, only a change of
      // cause and attempts 2, 4, 8 … are shown, so the screen does not fill with retries.
      std::string why = std::string(client::reasonName(change.reason)) +
                        (change.detail.empty() ? "" : ": " + change.detail);
      const unsigned n = change.attempt;
      if (n <= 1 || why != last_wait_reason_ || (n & (n - 1)) == 0) {
        status(std::string(n <= 1 ? "connection lost" : "still offline") + " (" + why +
               "); next attempt in " + seconds(change.retry_in) +
               (n <= 1 ? "" : " (attempt " + std::to_string(n) + ")"));
      }
      last_wait_reason_ = std::move(why);
      break;
    }
    case State::Stopping:
    case State::Stopped:
      if (catching_up_) {
        showBacklog(false);
        catching_up_ = false;
      }
      if (change.state == State::Stopping) break;
      if (change.reason == client::Reason::Unauthenticated && started_) {
        status("the server refused the credentials: " + change.detail);
        quit(kExitLoginRefused);
      } else if (change.reason == client::Reason::Kicked) {
        quit(kExitKicked);
      } else if (change.reason != client::Reason::StoppedByApp && started_ && !quitting_) {
        status("stopped (" + std::string(client::reasonName(change.reason)) + ")");
        quit(kExitUnreachable);
      }
      break;
    default:
      break;
  }
}

void Console::onKicked(const std::string& reason) {
  status("this device (" + options_.device + ") connected elsewhere" +
         (reason.empty() ? "" : ": " + reason) + "; quitting");
}

void Console::onError(const Error& error) {
  printError("server", error);
}

// ---- lookups -------------------------------------------------------------------------------

awaitable<void> Console::refreshGroups() {
  refreshing_groups_ = true;
  auto groups = co_await client_->api().groups(use_awaitable);
  refreshing_groups_ = false;
  if (!groups) co_return;
  for (const auto& g : *groups) names_.learnGroup(g.group_id, g.name);
  updatePrompt();
}

awaitable<Result<client::UserRef>> Console::findUser(const std::string& name) {
  auto users = co_await client_->api().findUsers(name, 1, use_awaitable);
  if (!users) co_return std::unexpected(users.error());
  if (users->empty() || users->front().username != name) {
    co_return fail(Errc::NotFound, "user '" + name + "' does not exist");
  }
  names_.learnUser(users->front().user_id, users->front().username);
  co_return users->front();
}

awaitable<Result<std::uint64_t>> Console::resolveGroup(std::string spec) {
  if (spec.starts_with('#')) spec.erase(0, 1);
  if (spec.empty()) co_return fail(Errc::BadRequest, "no group named");
  if (spec == "lobby") co_return client::kLobbyGroup;
  auto groups = co_await client_->api().groups(use_awaitable);
  if (!groups) co_return std::unexpected(groups.error());
  for (const auto& g : *groups) names_.learnGroup(g.group_id, g.name);
  const bool numeric = spec.find_first_not_of("0123456789") == std::string::npos;
  std::vector<std::uint64_t> matches;
  for (const auto& g : *groups) {
    if (g.name == spec || (numeric && std::to_string(g.group_id) == spec)) {
      matches.push_back(g.group_id);
    }
  }
  if (matches.size() == 1) co_return matches.front();
  if (matches.empty()) {
    if (numeric) co_return std::stoull(spec);  // not among mine: the server will say why
    co_return fail(Errc::NotFound,
                   "you are in no group named '" + spec + "' (:groups lists yours)");
  }
  std::string ids;
  for (auto id : matches) ids += " #" + std::to_string(id);
  co_return fail(Errc::Conflict, "'" + spec + "' names " + std::to_string(matches.size()) +
                                     " of your groups; use the id:" + ids);
}

// ---- commands ------------------------------------------------------------------------------

awaitable<void> Console::run(const cmd::Empty&) {
  co_return;
}

awaitable<void> Console::run(const cmd::Text& c) {
  sendText(current_, c.body);
  co_return;
}

awaitable<void> Console::run(const cmd::Private& c) {
  sendText(Target{client::Destination::toUser(c.user), {}}, c.body);
  co_return;
}

awaitable<void> Console::run(const cmd::OnlineUsers&) {
  auto users = co_await client_->api().onlineUsers(use_awaitable);
  if (!users) co_return printError("online users", users.error());
  for (const auto& u : *users) names_.learnUser(u.user_id, u.username);
  print("online (" + std::to_string(users->size()) + "): " + joinNames(*users));
}

awaitable<void> Console::run(const cmd::UsersByPrefix& c) {
  auto users = co_await client_->api().findUsers(c.prefix, kUserListLimit, use_awaitable);
  if (!users) co_return printError("users", users.error());
  for (const auto& u : *users) names_.learnUser(u.user_id, u.username);
  print("users starting with '" + c.prefix + "' (" + std::to_string(users->size()) +
        (users->size() == kUserListLimit ? "+" : "") + "): " + joinNames(*users));
}

awaitable<void> Console::run(const cmd::Info&) {
  const client::Session* s = client_->session();
  std::string gateway =
      s ? (options_.transport == client::Transport::Tcp ? s->gateway_tcp : s->gateway_ws) : "";
  if (!options_.gateway.empty()) gateway = options_.gateway;
  print("user       " + names_.selfName() + " (id " + std::to_string(names_.selfId()) + ")" +
        "\ndevice     " + options_.device +  //
        "\nserver     " + options_.server +  //
        "\ntransport  " + transportName(options_.transport) +
        (gateway.empty() ? "" : " (" + gateway + ")") +  //
        "\nstate      " + std::string(client::stateName(client_->state())) + "\ntalking to " +
        names_.label(current_.conversation) +  //
        "\ninbox      last seq " + std::to_string(client_->lastSeq()) + ", " +
        std::to_string(client_->pendingSends()) + " message(s) being sent");
  co_return;
}

awaitable<void> Console::run(const cmd::Help&) {
  std::string text = "commands:";
  for (const auto& h : commandHelp()) {
    std::string syntax(h.syntax);
    const std::size_t width = displayWidth(syntax);
    if (width < 26) syntax.append(26 - width, ' ');
    text += "\n  " + syntax + " " + std::string(h.what);
  }
  print(text);
  co_return;
}

awaitable<void> Console::run(const cmd::Quit&) {
  quit(kExitOk);
  co_return;
}

awaitable<void> Console::run(const cmd::Search& c) {
  const std::string target = "/api/v1/messages/search?q=" + percentEncode(c.keyword) +
                             "&limit=" + std::to_string(kSearchLimit);
  auto found = co_await client_->api().request("GET", target, nullptr, use_awaitable);
  if (!found) co_return printError("search", found.error());
  const json::object* o = found->if_object();
  const json::array* items = nullptr;
  if (o) {
    if (const json::value* v = o->if_contains("messages")) items = v->if_array();
  }
  if (!items) co_return print("✗ search: unexpected answer from the server");
  std::vector<client::Message> messages;
  for (const auto& item : *items) {
    if (auto m = messageFromJson(item)) messages.push_back(std::move(*m));
  }
  std::reverse(messages.begin(), messages.end());  // oldest first, the newest by the prompt
  const std::int64_t scanned =
      o->contains("scanned") ? o->at("scanned").to_number<std::int64_t>() : 0;
  const bool complete =
      o->contains("complete") && o->at("complete").is_bool() && o->at("complete").as_bool();
  print("search '" + c.keyword + "': " + std::to_string(messages.size()) + " message(s)" +
        (messages.size() == kSearchLimit ? " (the newest " + std::to_string(kSearchLimit) + ")"
                                         : "") +
        (complete ? "" : ", among the newest " + std::to_string(scanned) + " examined"));
  printMessages(messages);
}

awaitable<void> Console::run(const cmd::Emoji& c) {
  const std::size_t pages = emojiPageCount();
  auto page = emojiPage(c.page);
  if (page.empty()) co_return print("there are " + std::to_string(pages) + " pages of emoji");
  print("emoji, page " + std::to_string(c.page) + " of " + std::to_string(pages) +
        " (type the alias in a message):");
  std::string text, line;
  int column = 0;
  for (const auto& alias : page) {
    // Column width counts bytes of the alias only; the emoji is about two cells wide.
    std::string padded = ":" + std::string(alias.name) + ":";
    if (padded.size() < 18) padded.resize(18, ' ');
    line += "  " + padded + std::string(alias.emoji) + "  ";
    if (++column == 3) {
      text += (text.empty() ? "" : "\n") + line;
      line.clear();
      column = 0;
    }
  }
  if (!line.empty()) text += (text.empty() ? "" : "\n") + line;
  print(text);
}

awaitable<void> Console::run(const cmd::Delay& c) {
  auto& timer = delayed_.emplace_back(io_);
  auto it = std::prev(delayed_.end());
  timer.expires_after(std::chrono::milliseconds(static_cast<std::int64_t>(c.seconds * 1000)));
  Target target = current_;
  std::string body = c.body;
  timer.async_wait([this, it, target, body](const boost::system::error_code& ec) {
    if (ec) return;
    delayed_.erase(it);
    if (!quitting_) sendText(target, body);
  });
  print("will send to " + names_.label(current_.conversation) + " in " +
        seconds(std::chrono::milliseconds(static_cast<std::int64_t>(c.seconds * 1000))));
  co_return;
}

awaitable<void> Console::run(const cmd::To& c) {
  Target next;
  if (c.target.starts_with('#')) {
    auto id = co_await resolveGroup(c.target);
    if (!id) co_return printError("cannot switch to " + c.target, id.error());
    next.to = client::Destination::toGroup(*id);
    next.conversation = "g:" + std::to_string(*id);
  } else {
    auto user = co_await findUser(c.target);
    if (!user) co_return printError("cannot switch to " + c.target, user.error());
    next.to = client::Destination::toUser(user->username);
    next.conversation = names_.directConversation(user->user_id);
  }
  current_ = std::move(next);
  const auto unread = unread_.counts().count(current_.conversation)
                          ? unread_.counts().at(current_.conversation)
                          : 0;
  unread_.viewed(current_.conversation);
  print("now talking to " + names_.label(current_.conversation) +
        (unread ? " (" + std::to_string(unread) + " unread: :history shows them)" : ""));
  updatePrompt();
}

awaitable<void> Console::run(const cmd::History& c) {
  const std::string conversation = current_.conversation;
  auto page = co_await client_->api().history(conversation, 0, static_cast<unsigned>(c.count),
                                              use_awaitable);
  if (!page) co_return printError("history", page.error());
  for (const auto& m : page->messages) names_.learnFrom(m);
  print("── " + names_.label(conversation) + ": the last " + std::to_string(page->messages.size()) +
        " message(s)" + (page->has_more ? "" : " (the whole conversation)") + " ──");
  printMessages(page->messages);
  unread_.viewed(conversation);
  updatePrompt();
}

awaitable<void> Console::run(const cmd::Groups&) {
  auto groups = co_await client_->api().groups(use_awaitable);
  if (!groups) co_return printError("groups", groups.error());
  print("your groups (" + std::to_string(groups->size()) + "):");
  for (const auto& g : *groups) {
    names_.learnGroup(g.group_id, g.name);
    const bool here = current_.to.isGroup() && current_.to.group == g.group_id;
    print(std::string(here ? "* " : "  ") + "#" + printableBody("text/plain", g.name) + "  id " +
          std::to_string(g.group_id) + ", " + std::to_string(g.member_count) + " member(s)" +
          (g.owner.empty() ? "" : ", owner " + g.owner));
  }
}

awaitable<void> Console::run(const cmd::Create& c) {
  auto group = co_await client_->api().createGroup(c.name, c.members, use_awaitable);
  if (!group) co_return printError("cannot create " + c.name, group.error());
  names_.learnGroup(group->group_id, group->name);
  for (const auto& u : group->members) names_.learnUser(u.user_id, u.username);
  print("created #" + group->name + " (id " + std::to_string(group->group_id) + ") with " +
        joinNames(group->members) + "; :to #" + group->name + " to write there");
}

awaitable<void> Console::run(const cmd::Add& c) {
  auto id = co_await resolveGroup(c.group);
  if (!id) co_return printError("cannot add to " + c.group, id.error());
  auto added = co_await client_->api().addMember(*id, c.user, use_awaitable);
  if (!added) co_return printError("cannot add " + c.user, added.error());
  print("added " + c.user + " to " + names_.label("g:" + std::to_string(*id)));
}

awaitable<void> Console::run(const cmd::Leave& c) {
  auto id = co_await resolveGroup(c.group);
  if (!id) co_return printError("cannot leave " + c.group, id.error());
  auto left = co_await client_->api().leaveGroup(*id, use_awaitable);
  const std::string label = names_.label("g:" + std::to_string(*id));
  if (!left) co_return printError("cannot leave " + label, left.error());
  print("left " + label);
  if (current_.to.isGroup() && current_.to.group == *id) {
    current_.to = client::Destination::toGroup(client::kLobbyGroup);
    current_.conversation = "g:" + std::to_string(client::kLobbyGroup);
    print("now talking to #lobby");
    updatePrompt();
  }
}

awaitable<void> Console::run(const cmd::Unread&) {
  if (unread_.counts().empty()) co_return print("no unread messages");
  print("unread (since you last viewed each conversation in this session):");
  for (const auto& [conversation, count] : unread_.counts()) {
    print("  " + names_.label(conversation) + "  " + std::to_string(count));
  }
}

awaitable<void> Console::run(const cmd::Usage& c) {
  print("usage: " + c.usage);
  co_return;
}

awaitable<void> Console::run(const cmd::Unknown& c) {
  print("unknown command '" + printableBody("text/plain", c.name) + "'");
  co_await run(cmd::Help{});
}

}  // namespace pigeon::console
