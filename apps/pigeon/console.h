// The `pigeon` console client: CIM-compatible commands over the client SDK (src/client).
//
// Owns the SDK Client, the Terminal (readline or plain lines) and the --on-message hook, and
// ties them together: input lines become commands (commands.h), which run one after another
// (sends are queued in the SDK and do not wait for their receipt; queries wait for their
// answer); incoming messages, send failures and connection changes are printed above the
// prompt as they happen.
//
// Threads: everything runs on the one io_context given to the constructor, run by the thread
// that calls run(). Errors are printed for the user; the process's exit code says how it ended
// (see ExitCode).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "client/client.h"
#include "commands.h"
#include "format.h"
#include "hook.h"
#include "terminal.h"

namespace pigeon::console {

enum ExitCode : int {
  kExitOk = 0,
  kExitUsage = 1,          // bad flags, no password
  kExitLoginRefused = 2,   // wrong username or password, or the account could not be created
  kExitUnreachable = 3,    // the server could not be reached at start
  kExitKicked = 4,         // this device logged in elsewhere
  kExitInterrupted = 130,  // a second Ctrl-C while quitting
};

struct ConsoleOptions {
  std::string server = "http://127.0.0.1:8080";
  // More API nodes of the same cluster, tried in turn when the one in use cannot be reached.
  std::vector<std::string> fallback_servers;
  std::string username;
  std::string password;
  std::string device;
  bool register_user = false;
  client::Transport transport = client::Transport::Tcp;
  std::string gateway;  // optional: instead of the one login returns
  client::TlsOptions tls;
  bool interactive = true;  // readline on a TTY; false: plain lines from stdin
  std::string on_message;   // program for --on-message; empty: none
  std::size_t on_message_jobs = 4;
};

class Console final : public client::Listener {
 public:
  Console(boost::asio::io_context& io, ConsoleOptions options);
  ~Console() override;

  // Logs in, then reads and runs commands until :q!, end of input, a signal, or a fatal
  // event; returns the exit code.
  int run();

  // ---- client::Listener ----
  void onMessages(std::span<const client::Message> messages) override;
  void onSendResult(const client::SendResult& result) override;
  void onStateChange(const client::StateChange& change) override;
  void onCaughtUp(const client::CaughtUp& info) override;
  void onKicked(const std::string& reason) override;
  void onError(const Error& error) override;

 private:
  // Where plain text goes: a user or a group, and its conversation id.
  struct Target {
    client::Destination to;
    std::string conversation;
  };

  void print(std::string_view text);
  void status(std::string_view text);  // "· text"
  void updatePrompt();
  void onStarted(Result<client::Session> session);
  void onLine(std::string line);
  boost::asio::awaitable<void> processLines();
  void quit(int code);
  void stopClient();
  void finish();
  void waitSignal();

  void sendText(const Target& target, const std::string& text);
  boost::asio::awaitable<Result<std::uint64_t>> resolveGroup(std::string spec);
  boost::asio::awaitable<Result<client::UserRef>> findUser(const std::string& name);
  boost::asio::awaitable<void> refreshGroups();
  void printMessages(const std::vector<client::Message>& messages);
  // Prints the backlog held back while catching up as one block (if not yet); `caught_up`:
  // the SDK said so (`first`: of this run), then "— up to date —" follows.
  void showBacklog(bool caught_up, bool first = false);
  void printError(std::string_view what, const Error& error);

  boost::asio::awaitable<void> execute(const Command& command);
  boost::asio::awaitable<void> run(const cmd::Empty&);
  boost::asio::awaitable<void> run(const cmd::Text&);
  boost::asio::awaitable<void> run(const cmd::Private&);
  boost::asio::awaitable<void> run(const cmd::OnlineUsers&);
  boost::asio::awaitable<void> run(const cmd::UsersByPrefix&);
  boost::asio::awaitable<void> run(const cmd::Info&);
  boost::asio::awaitable<void> run(const cmd::Help&);
  boost::asio::awaitable<void> run(const cmd::Quit&);
  boost::asio::awaitable<void> run(const cmd::Search&);
  boost::asio::awaitable<void> run(const cmd::Emoji&);
  boost::asio::awaitable<void> run(const cmd::Delay&);
  boost::asio::awaitable<void> run(const cmd::To&);
  boost::asio::awaitable<void> run(const cmd::History&);
  boost::asio::awaitable<void> run(const cmd::Groups&);
  boost::asio::awaitable<void> run(const cmd::Create&);
  boost::asio::awaitable<void> run(const cmd::Add&);
  boost::asio::awaitable<void> run(const cmd::Leave&);
  boost::asio::awaitable<void> run(const cmd::Unread&);
  boost::asio::awaitable<void> run(const cmd::Usage&);
  boost::asio::awaitable<void> run(const cmd::Unknown&);

  boost::asio::io_context& io_;
  ConsoleOptions options_;
  Terminal terminal_;
  std::unique_ptr<MessageHook> hook_;
  std::unique_ptr<client::Client> client_;
  boost::asio::signal_set signals_;

  ConversationNames names_;
  UnreadCounts unread_;
  Target current_;
  std::map<std::string, std::string> pending_;  // client_msg_id → label of its conversation
  std::list<boost::asio::steady_timer> delayed_;
  std::deque<std::string> lines_;
  bool processing_ = false;
  bool input_ended_ = false;
  bool started_ = false;
  bool quitting_ = false;
  bool finished_ = false;
  bool refreshing_groups_ = false;
  bool was_online_ = false;
  int exit_code_ = kExitOk;
  std::string last_wait_reason_;
  bool quiet_reconnect_ = false;  // after a send refused over STOMP: no "back online" line
  bool client_stopping_ = false;
  std::optional<boost::asio::steady_timer> hook_wait_;
  // The backlog of a connection (what came while this device was away), held back until the
  // SDK says it is caught up and printed as one block; newest kept, counted per conversation.
  bool catching_up_ = false;    // from Online until onCaughtUp (or the backlog_wait_ timeout)
  bool backlog_shown_ = false;  // the block was printed: later messages are printed as they come
  std::deque<client::Message> backlog_;
  std::size_t backlog_count_ = 0;
  std::map<std::string, std::size_t> backlog_by_conversation_;
  std::optional<boost::asio::steady_timer> backlog_wait_;
};

}  // namespace pigeon::console
