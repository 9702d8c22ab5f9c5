// pigeon: the console client. Parses the flags, gets the password (a prompt with echo off,
// --password-file or PIGEON_PASSWORD), then runs the Console until :q!, end of input or a
// signal. Exit codes: console.h's ExitCode (0 ok, 1 usage, 2 login refused, 3 server
// unreachable, 4 kicked).
#include <fcntl.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <clocale>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>

#include "console.h"

namespace {

using pigeon::console::ConsoleOptions;

// "console-<hostname>", with what a device name may not hold replaced by '-'.
std::string defaultDevice() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') return "console";
  std::string device = std::string("console-") + host;
  for (char& c : device) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) c = '-';
  }
  if (device.size() > 64) device.resize(64);
  return device;
}

// Reads one line from the controlling terminal with echo off. nullopt if there is none.
std::optional<std::string> promptPassword(const std::string& prompt) {
  const int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  termios saved{};
  const bool is_tty = ::tcgetattr(fd, &saved) == 0;
  if (is_tty) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    quiet.c_lflag |= ECHONL;
    ::tcsetattr(fd, TCSAFLUSH, &quiet);
  }
  (void)!::write(fd, prompt.data(), prompt.size());
  std::string line;
  char c;
  bool got_any = false;
  while (::read(fd, &c, 1) == 1) {
    got_any = true;
    if (c == '\n' || c == '\r') break;
    line += c;
  }
  if (is_tty) ::tcsetattr(fd, TCSAFLUSH, &saved);
  ::close(fd);
  if (!got_any) return std::nullopt;
  return line;
}

std::optional<std::string> readPasswordFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

}  // namespace

int main(int argc, char** argv) {
  // The user's character set, so that readline edits UTF-8 text character by character.
  std::setlocale(LC_CTYPE, "");
  ConsoleOptions options;
  options.device = defaultDevice();
  std::string password_file;
  bool ws = false, tcp = false, plain = false, insecure = false;

  CLI::App app{"pigeon — the Pigeon console client. Type :all once logged in for the commands."};
  std::vector<std::string> servers{options.server};
  app.add_option("--server", servers,
                 "the server's HTTP address; give several (or a comma-separated list) for the API "
                 "nodes of a cluster, tried in turn")
      ->envname("PIGEON_SERVER")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("-u,--user", options.username, "your username")
      ->envname("PIGEON_USER")
      ->required();
  app.add_option("--password-file", password_file,
                 "read the password from the first line of this file (else PIGEON_PASSWORD, "
                 "else a prompt)");
  app.add_flag("--register", options.register_user,
               "create the account first (an existing "
               "one with this password is fine)");
  app.add_option("--device", options.device, "this device's name")->capture_default_str();
  auto* tcp_flag = app.add_flag("--tcp", tcp, "connect over the native TCP protocol (default)");
  app.add_flag("--ws", ws, "connect over STOMP on WebSocket")->excludes(tcp_flag);
  app.add_option("--gateway", options.gateway,
                 "the gateway URL to use instead of the one login returns (tcp://h:p, "
                 "ws://h:p/ws, tls://…, wss://…)");
  app.add_option("--ca-file", options.tls.ca_file, "trusted CAs (PEM) for https, wss and tls");
  app.add_flag("--insecure", insecure, "accept any TLS certificate (for tests)");
  app.add_option("--on-message", options.on_message,
                 "run this shell command for each incoming message, with the message as one "
                 "JSON line on its standard input");
  app.add_option("--on-message-jobs", options.on_message_jobs,
                 "how many --on-message programs may run at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_flag("--plain", plain,
               "read plain lines from stdin without line editing (the default when stdin is "
               "not a terminal)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);  // prints the help or the error
    return rc == 0 ? 0 : pigeon::console::kExitUsage;
  }

  if (servers.empty() || servers.front().empty()) {
    std::fprintf(stderr, "--server: give the server's HTTP address\n");
    return pigeon::console::kExitUsage;
  }
  options.server = servers.front();
  options.fallback_servers.assign(servers.begin() + 1, servers.end());
  options.transport = ws ? pigeon::client::Transport::WebSocket : pigeon::client::Transport::Tcp;
  options.tls.verify_peer = !insecure;
  options.interactive = !plain && ::isatty(STDIN_FILENO);

  if (!password_file.empty()) {
    auto p = readPasswordFile(password_file);
    if (!p) {
      std::fprintf(stderr, "pigeon: cannot read the password file '%s'\n", password_file.c_str());
      return pigeon::console::kExitUsage;
    }
    options.password = std::move(*p);
  } else if (const char* env = std::getenv("PIGEON_PASSWORD"); env && *env) {
    options.password = env;
  } else {
    auto p = promptPassword(options.register_user ? "new password for " + options.username + ": "
                                                  : "password for " + options.username + ": ");
    if (p && options.register_user) {
      auto again = promptPassword("the same again: ");
      if (!again || *again != *p) {
        std::fprintf(stderr, "pigeon: the two passwords differ\n");
        return pigeon::console::kExitUsage;
      }
    }
    if (!p) {
      std::fprintf(stderr,
                   "pigeon: no password: there is no terminal to ask on; use --password-file "
                   "or PIGEON_PASSWORD\n");
      return pigeon::console::kExitUsage;
    }
    options.password = std::move(*p);
  }

  // Writes to a closed socket or to an --on-message program that exited must not kill us.
  ::signal(SIGPIPE, SIG_IGN);

  boost::asio::io_context io;
  int code = 0;
  {
    pigeon::console::Console console(io, std::move(options));
    code = console.run();
  }
  std::fflush(stdout);
  return code;
}
