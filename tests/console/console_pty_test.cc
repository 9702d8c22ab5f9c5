// The real `pigeon` console client driven through pseudo-terminals against the real pigeond
// (port 0, temporary data): two users chat both ways over TCP and WebSocket, :olu lists both, an
// incoming message does not disturb a half-typed line, offline messages show at login as one
// block ending in "— up to date —", groups, history and search work, bad input gets help or the
// server's error (over STOMP with one quiet line for the reconnect that follows), a wrong
// password exits non-zero, scripts can pipe commands in, a server restart is reported and
// survived, and quitting while the server is away still sends what was typed once it is back.
// Every wait polls the terminal's output with a deadline. PIGEON_TEST_SHOW_SCREENS=1 prints some
// screens of passing tests too.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "console/pty.h"
#include "support/http_client.h"
#include "support/pigeond_process.h"

namespace pigeon::test {
namespace {

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class ConsolePtyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    server_ = new PigeondProcess(dir_->path() + "/data");
    server_->start();
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
  }

  std::string serverUrl() const {
    return "http://127.0.0.1:" + std::to_string(server_->httpPort());
  }

  // `pigeon --server … --user <user> <args…>` on a pty; the password comes from
  // PIGEON_PASSWORD unless `password` is empty (then the test types it at the prompt).
  std::unique_ptr<PtyProcess> console(const std::string& user, std::vector<std::string> args,
                                      const std::string& password = "password123") {
    std::vector<std::string> argv{PIGEON_CONSOLE_PATH, "--server", serverUrl(), "--user", user,
                                  "--device",          "pty"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::map<std::string, std::string> env{
        {"TERM", "xterm"},   {"HOME", dir_->path()}, {"INPUTRC", "/dev/null"},
        {"LANG", "C.UTF-8"}, {"TZ", "UTC"},          {"PATH", "/usr/bin:/bin"}};
    if (!password.empty()) env["PIGEON_PASSWORD"] = password;
    return std::make_unique<PtyProcess>(argv, env);
  }

  // Fails the test with what the terminal showed.
  static void expectOn(PtyProcess& p, std::string_view text, const char* who) {
    ASSERT_TRUE(p.expect(text)) << who << " never showed '" << text << "'; it showed:\n"
                                << p.screen() << "\n--- pigeond log:\n"
                                << server_->log();
  }

  static TempDir* dir_;
  static PigeondProcess* server_;
};
TempDir* ConsolePtyTest::dir_ = nullptr;
PigeondProcess* ConsolePtyTest::server_ = nullptr;

TEST_F(ConsolePtyTest, TwoUsersChatBothWaysAndSeeEachOtherOnline) {
  // alice types her password at the prompt (echo off) and uses the native TCP protocol; bob
  // takes his from the environment and uses STOMP over WebSocket.
  auto alice = console("alice", {"--register", "--tcp"}, "");
  expectOn(*alice, "new password for alice: ", "alice");
  alice->typeLine("password123");
  expectOn(*alice, "the same again: ", "alice");
  alice->typeLine("password123");
  expectOn(*alice, "logged in as alice", "alice");
  expectOn(*alice, "online over tcp", "alice");
  EXPECT_EQ(alice->screen().find("password123"), std::string::npos) << "the password was echoed";

  const std::string hook_file = dir_->path() + "/bob-hook.jsonl";
  auto bob = console("bob", {"--register", "--ws", "--on-message", "cat >> " + hook_file});
  expectOn(*bob, "logged in as bob", "bob");
  expectOn(*bob, "online over ws", "bob");
  expectOn(*bob, "#lobby> ", "bob");

  // Plain text goes to the lobby; both see it (alice through the server's echo).
  alice->typeLine("hello bob :wave:");
  expectOn(*bob, "#lobby alice: hello bob 👋", "bob");
  expectOn(*alice, "#lobby alice: hello bob 👋", "alice");

  // bob's --on-message program got the message as one JSON line.
  EXPECT_TRUE(waitFor([&] {
    return readFile(hook_file).find("\"body\":\"hello bob 👋\"") != std::string::npos;
  })) << readFile(hook_file);

  // CIM's private message, the other way.
  bob->typeLine("alice;;hi alice, only for you");
  expectOn(*alice, "@bob bob: hi alice, only for you", "alice");

  // A message arriving while alice is typing is printed above her prompt and the half-typed
  // line is drawn again, then sent whole.
  alice->type("half of a li");
  bob->typeLine("interrupting!");
  expectOn(*alice, "#lobby bob: interrupting!", "alice");
  expectOn(*alice, "> half of a li", "alice");
  alice->typeLine("ne");
  expectOn(*bob, "#lobby alice: half of a line", "bob");

  alice->typeLine(":olu");
  expectOn(*alice, "online (2): alice, bob", "alice");

  // Unknown commands print the help; a send to a missing user prints the server's error.
  bob->typeLine(":frobnicate");
  expectOn(*bob, "unknown command ':frobnicate'", "bob");
  expectOn(*bob, ":q <keyword>", "bob");
  bob->typeLine("nobody;;are you there?");
  expectOn(*bob, "not sent to @nobody:", "bob");
  expectOn(*bob, "user 'nobody' does not exist", "bob");
  // Over STOMP the server closes the connection after an ERROR; the client reconnects at once,
  // and the console says so in one quiet line — no "connection lost", no "back online".
  const std::string quiet = "· reconnecting (a STOMP connection ends after a refused send)";
  expectOn(*bob, quiet, "bob");
  alice->typeLine("after the refusal");
  expectOn(*bob, "#lobby alice: after the refusal", "bob");  // over the new connection
  const std::string screen = bob->screen();
  const std::string since_refusal = screen.substr(screen.find(quiet));
  EXPECT_EQ(screen.find("connection lost"), std::string::npos) << screen;
  EXPECT_EQ(screen.find("back online"), std::string::npos) << screen;
  // (At bob's first login alice's greeting may have been in his backlog block; not now.)
  EXPECT_EQ(since_refusal.find("while you were away"), std::string::npos) << screen;

  bob->typeLine(":info");
  expectOn(*bob, "transport  ws", "bob");
  alice->typeLine(":info");
  expectOn(*alice, "user       alice", "alice");
  expectOn(*alice, "transport  tcp", "alice");
  expectOn(*alice, "state      online", "alice");

  alice->typeLine(":q!");
  bob->typeLine(":q!");
  EXPECT_EQ(alice->waitExit(), 0) << alice->screen();
  EXPECT_EQ(bob->waitExit(), 0) << bob->screen();
}

TEST_F(ConsolePtyTest, OfflineMessagesGroupsHistoryAndSearch) {
  auto carol = console("carol", {"--register"});
  expectOn(*carol, "online over tcp", "carol");
  carol->typeLine(":q!");
  ASSERT_EQ(carol->waitExit(), 0) << carol->screen();

  // dave writes to carol while she is away, in private and in a new group.
  auto dave = console("dave", {"--register"});
  expectOn(*dave, "online over tcp", "dave");
  dave->typeLine("carol;;the kumquats are ripe");
  expectOn(*dave, "@carol dave: the kumquats are ripe", "dave");
  dave->typeLine(":create orchard carol");
  expectOn(*dave, "created #orchard", "dave");
  dave->typeLine(":to #orchard");
  expectOn(*dave, "now talking to #orchard", "dave");
  dave->typeLine("picking at noon");
  expectOn(*dave, "#orchard dave: picking at noon", "dave");

  // carol comes back: what was sent while she was away is shown at login, as one block.
  carol = console("carol", {});
  expectOn(*carol, "— 2 messages while you were away —", "carol");
  expectOn(*carol, "@dave dave: the kumquats are ripe", "carol");
  expectOn(*carol, "#orchard dave: picking at noon", "carol");
  expectOn(*carol, "— up to date —", "carol");
  carol->typeLine(":unread");
  expectOn(*carol, "@dave  1", "carol");
  carol->typeLine(":groups");
  expectOn(*carol, "#orchard  id", "carol");
  carol->typeLine(":to #orchard");
  expectOn(*carol, "now talking to #orchard", "carol");
  carol->typeLine(":history 5");
  expectOn(*carol, "#orchard: the last 1 message(s)", "carol");
  expectOn(*carol, "#orchard dave: picking at noon", "carol");
  carol->typeLine(":q KUMQUAT");
  expectOn(*carol, "search 'KUMQUAT': 1 message(s)", "carol");
  expectOn(*carol, "@dave dave: the kumquats are ripe", "carol");
  carol->typeLine(":leave #lobby");
  expectOn(*carol, "cannot leave #lobby: nobody can leave the lobby", "carol");

  // End of input (Ctrl-D) quits like :q!.
  dave->type("\x04");
  EXPECT_EQ(dave->waitExit(), 0) << dave->screen();
  carol->typeLine(":q!");
  EXPECT_EQ(carol->waitExit(), 0) << carol->screen();
  if (std::getenv("PIGEON_TEST_SHOW_SCREENS")) std::cerr << carol->screen() << dave->screen();
}

TEST_F(ConsolePtyTest, ScriptsPipeCommandsWithoutATerminal) {
  // stdin is a pipe (not a terminal): plain lines, no readline; the end of input quits once
  // the pending send is stored.
  const std::string script = dir_->path() + "/frank.sh";
  {
    std::ofstream out(script);
    out << "printf 'hello from a script\\n:olu\\n:nonsense\\n' | " << PIGEON_CONSOLE_PATH
        << " --server " << serverUrl() << " --user frank --register\n";
  }
  PtyProcess frank(
      {"/bin/sh", script},
      {{"PIGEON_PASSWORD", "password123"}, {"PATH", "/usr/bin:/bin"}, {"TERM", "xterm"}});
  expectOn(frank, "logged in as frank", "frank");
  expectOn(frank, "online (", "frank");
  expectOn(frank, "unknown command ':nonsense'", "frank");
  ASSERT_EQ(frank.waitExit(), 0) << frank.screen();
  if (std::getenv("PIGEON_TEST_SHOW_SCREENS")) std::cerr << frank.screen();
  EXPECT_EQ(frank.screen().find("#lobby> "), std::string::npos) << "no prompt without a terminal";

  // The message is stored: found by the search endpoint.
  HttpClient http(server_->httpPort());
  auto login = http.post("/api/v1/sessions",
                         boost::json::object{{"username", "frank"}, {"password", "password123"}});
  ASSERT_EQ(login.status, 200) << login.body;
  http.setToken(std::string(login.json().at("token").as_string()));
  auto found = http.get("/api/v1/messages/search?q=from+a+script");
  ASSERT_EQ(found.status, 200) << found.body;
  EXPECT_EQ(found.json().at("messages").as_array().size(), 1u) << found.body;
}

TEST_F(ConsolePtyTest, AServerThatGoesAwayIsReportedAndReconnectedTo) {
  // A server of its own, restarted on the same ports with the same data.
  TempDir dir;
  auto first = std::make_unique<PigeondProcess>(dir.path() + "/data");
  first->start();
  const std::string http_port = std::to_string(first->httpPort());
  const std::string tcp_port = std::to_string(first->tcpPort());
  std::vector<std::string> argv{
      PIGEON_CONSOLE_PATH, "--server", "http://127.0.0.1:" + http_port, "--user", "gina",
      "--register"};
  PtyProcess gina(argv, {{"TERM", "xterm"},
                         {"HOME", dir.path()},
                         {"INPUTRC", "/dev/null"},
                         {"LANG", "C.UTF-8"},
                         {"PIGEON_PASSWORD", "password123"}});
  expectOn(gina, "online over tcp", "gina");

  ASSERT_EQ(first->terminate(), 0);
  expectOn(gina, "connection lost (", "gina");
  gina.typeLine("sent while the server is away");
  PigeondProcess second(dir.path() + "/data", {"--http-port", http_port, "--tcp-port", tcp_port});
  second.start();
  expectOn(gina, "back online over tcp", "gina");
  // What was typed while offline was sent once the connection came back.
  expectOn(gina, "#lobby gina: sent while the server is away", "gina");
  gina.typeLine(":q!");
  EXPECT_EQ(gina.waitExit(), 0) << gina.screen();
}

TEST_F(ConsolePtyTest, QuittingWhileTheServerIsAwaySendsWhatWasTypedOnceItIsBack) {
  TempDir dir;
  auto first = std::make_unique<PigeondProcess>(dir.path() + "/data");
  first->start();
  const std::string http_port = std::to_string(first->httpPort());
  const std::string tcp_port = std::to_string(first->tcpPort());
  PtyProcess hal({PIGEON_CONSOLE_PATH, "--server", "http://127.0.0.1:" + http_port, "--user", "hal",
                  "--register"},
                 {{"TERM", "xterm"},
                  {"HOME", dir.path()},
                  {"INPUTRC", "/dev/null"},
                  {"LANG", "C.UTF-8"},
                  {"PIGEON_PASSWORD", "password123"}});
  expectOn(hal, "online over tcp", "hal");
  expectOn(hal, "— no new messages —", "hal");

  ASSERT_EQ(first->terminate(), 0);
  expectOn(hal, "connection lost (", "hal");
  hal.typeLine("typed while the server is away");
  hal.typeLine(":q!");
  expectOn(hal, "sending 1 message(s) before quitting", "hal");
  // The console waits (up to 10 s) for the server to come back rather than giving up.
  PigeondProcess second(dir.path() + "/data", {"--http-port", http_port, "--tcp-port", tcp_port});
  second.start();
  EXPECT_EQ(hal.waitExit(std::chrono::seconds(20)), 0) << hal.screen();
  EXPECT_FALSE(hal.seen("✗")) << hal.screen();

  HttpClient http(second.httpPort());
  auto login = http.post("/api/v1/sessions",
                         boost::json::object{{"username", "hal"}, {"password", "password123"}});
  ASSERT_EQ(login.status, 200) << login.body;
  http.setToken(std::string(login.json().at("token").as_string()));
  auto found = http.get("/api/v1/messages/search?q=typed+while+the+server");
  ASSERT_EQ(found.status, 200) << found.body;
  EXPECT_EQ(found.json().at("messages").as_array().size(), 1u) << found.body;
}

TEST_F(ConsolePtyTest, AWrongPasswordExitsWithAClearMessage) {
  auto erin = console("erin", {"--register"});
  expectOn(*erin, "online over tcp", "erin");
  erin->typeLine(":q!");
  ASSERT_EQ(erin->waitExit(), 0);

  auto wrong = console("erin", {}, "not the password");
  expectOn(*wrong, "pigeon: login failed: wrong username or password", "erin");
  EXPECT_EQ(wrong->waitExit(), 2) << wrong->screen();
}

}  // namespace
}  // namespace pigeon::test
