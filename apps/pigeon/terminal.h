// The console's terminal: input lines in, output lines out, on the console's executor.
//
// Interactive (stdin is a TTY): GNU readline's callback interface, driven from the Asio loop by
// waiting for stdin to become readable, gives line editing and history. print() puts text
// ABOVE the prompt and redraws the prompt with whatever was being typed, so incoming messages
// never corrupt the line being edited. SIGWINCH resizes readline's idea of the screen.
// Non-interactive (a pipe or a file): lines are read from stdin and output is plain.
//
// Threads: one Terminal per process (readline is global state); construct, call and destroy it
// on the executor's thread. Errors: none reported; end of input (Ctrl-D, EOF, a read error)
// calls on_eof once.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <functional>
#include <string>
#include <string_view>

namespace pigeon::console {

class Terminal {
 public:
  struct Handlers {
    std::function<void(std::string line)> on_line;  // one input line, without its newline
    std::function<void()> on_eof;
  };

  Terminal(boost::asio::any_io_executor executor, bool interactive, Handlers handlers);
  ~Terminal();  // stops input and restores the terminal's settings
  Terminal(const Terminal&) = delete;
  Terminal& operator=(const Terminal&) = delete;

  bool interactive() const { return interactive_; }

  // Starts reading input; `prompt` is shown in interactive mode.
  void start(std::string prompt);
  void setPrompt(std::string prompt);
  // Writes `text` (a newline is added) above the prompt.
  void print(std::string_view text);
  // No more input: removes the prompt and restores the terminal. Idempotent. Output still works.
  void stopInput();

 private:
  static void onReadlineLine(char* line);
  void waitReadable();
  void readPlain();
  void deliverPlainLines(bool eof);

  boost::asio::any_io_executor executor_;
  bool interactive_;
  Handlers handlers_;
  boost::asio::posix::stream_descriptor input_;
  boost::asio::signal_set winch_;
  bool reading_ = false;        // start() called and stopInput() not yet
  bool input_is_file_ = false;  // plain mode on a regular file (cannot be waited for)
  bool eof_sent_ = false;
  std::string prompt_;
  std::string pending_;  // plain mode: bytes read, not yet a whole line
  std::string last_history_;
};

}  // namespace pigeon::console
