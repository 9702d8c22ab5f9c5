#include "terminal.h"

#include <readline/history.h>
#include <readline/readline.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cstdio>
#include <cstdlib>

namespace pigeon::console {
namespace asio = boost::asio;

namespace {
Terminal* g_terminal = nullptr;            // readline's callback has no user pointer
constexpr std::size_t kMaxLine = 1 << 20;  // plain mode: a longer "line" is cut here
}  // namespace

Terminal::Terminal(asio::any_io_executor executor, bool interactive, Handlers handlers)
    : executor_(executor),
      interactive_(interactive),
      handlers_(std::move(handlers)),
      input_(executor),
      winch_(executor) {}

Terminal::~Terminal() {
  stopInput();
  if (g_terminal == this) g_terminal = nullptr;
}

void Terminal::start(std::string prompt) {
  if (reading_) return;
  reading_ = true;
  prompt_ = std::move(prompt);
  boost::system::error_code ec;
  const int fd = ::dup(STDIN_FILENO);
  if (fd >= 0) input_.assign(fd, ec);
  if (fd < 0 || ec) {
    // A regular file cannot be waited for (epoll refuses it): read it in steps instead.
    if (fd >= 0 && !input_.is_open()) ::close(fd);
    input_is_file_ = true;
  }
  if (!interactive_) {
    readPlain();
    return;
  }
  g_terminal = this;
  rl_catch_signals = 0;  // SIGINT and SIGTERM are the console's (asio::signal_set)
  rl_catch_sigwinch = 0;
  rl_instream = stdin;
  rl_outstream = stdout;
  rl_readline_name = "pigeon";
  stifle_history(1000);
  rl_callback_handler_install(prompt_.c_str(), &Terminal::onReadlineLine);
  winch_.add(SIGWINCH);
  // Re-arms itself after every SIGWINCH.
  struct Rearm {
    Terminal* self;
    void operator()(const boost::system::error_code& e, int) const {
      if (e || !self->reading_) return;
      rl_resize_terminal();
      self->winch_.async_wait(*this);
    }
  };
  winch_.async_wait(Rearm{this});
  waitReadable();
}

void Terminal::setPrompt(std::string prompt) {
  if (prompt == prompt_) return;
  prompt_ = std::move(prompt);
  if (interactive_ && reading_) {
    rl_set_prompt(prompt_.c_str());
    rl_clear_visible_line();
    rl_forced_update_display();
  }
}

void Terminal::print(std::string_view text) {
  if (interactive_ && reading_) {
    // Clear what readline shows, print, then draw the prompt and the edited line again.
    rl_clear_visible_line();
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
    rl_forced_update_display();
    return;
  }
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

void Terminal::stopInput() {
  if (!reading_) return;
  reading_ = false;
  boost::system::error_code ec;
  input_.cancel(ec);
  input_.close(ec);
  winch_.cancel(ec);
  if (interactive_) {
    // Leave the cursor on a fresh line below whatever was being typed.
    if (rl_end > 0 || RL_ISSTATE(RL_STATE_READCMD)) {
      rl_clear_visible_line();
    }
    rl_callback_handler_remove();
    std::fflush(stdout);
  }
}

void Terminal::onReadlineLine(char* line) {
  Terminal* self = g_terminal;
  if (!self) {
    std::free(line);
    return;
  }
  // The line is handled after readline has finished with it (cleared its buffer, drawn the
  // next prompt): whatever the handler prints then goes above a clean prompt.
  if (!line) {  // Ctrl-D on an empty line
    if (!self->eof_sent_) {
      self->eof_sent_ = true;
      asio::post(self->executor_, [self] {
        self->stopInput();
        if (self->handlers_.on_eof) self->handlers_.on_eof();
      });
    }
    return;
  }
  std::string text(line);
  std::free(line);
  if (!text.empty() && text != self->last_history_) {
    add_history(text.c_str());
    self->last_history_ = text;
  }
  asio::post(self->executor_, [self, text = std::move(text)]() mutable {
    if (self->reading_ && self->handlers_.on_line) self->handlers_.on_line(std::move(text));
  });
}

void Terminal::waitReadable() {
  if (input_is_file_) {
    // Interactive mode needs a TTY, which can always be waited for; nothing to do here.
    return;
  }
  input_.async_wait(asio::posix::stream_descriptor::wait_read,
                    [this](const boost::system::error_code& ec) {
                      if (ec || !reading_) return;
                      rl_callback_read_char();  // may call onReadlineLine, even stopInput()
                      if (reading_) waitReadable();
                    });
}

void Terminal::readPlain() {
  if (!reading_) return;
  if (input_is_file_) {
    // A regular file never blocks: read a chunk now, then yield to the loop before the next.
    char buf[16 * 1024];
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n > 0) {
      pending_.append(buf, static_cast<std::size_t>(n));
      deliverPlainLines(false);
      asio::post(executor_, [this] { readPlain(); });
    } else {
      deliverPlainLines(true);
    }
    return;
  }
  input_.async_wait(asio::posix::stream_descriptor::wait_read,
                    [this](const boost::system::error_code& ec) {
                      if (!reading_) return;
                      if (ec) return deliverPlainLines(true);
                      char buf[16 * 1024];
                      const ssize_t n = ::read(input_.native_handle(), buf, sizeof buf);
                      if (n < 0 && (errno == EAGAIN || errno == EINTR)) return readPlain();
                      if (n <= 0) return deliverPlainLines(true);
                      pending_.append(buf, static_cast<std::size_t>(n));
                      deliverPlainLines(false);
                      readPlain();
                    });
}

void Terminal::deliverPlainLines(bool eof) {
  std::size_t start = 0;
  for (;;) {
    const auto nl = pending_.find('\n', start);
    if (nl == std::string::npos) break;
    std::string line = pending_.substr(start, nl - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    start = nl + 1;
    if (handlers_.on_line && reading_) handlers_.on_line(std::move(line));
  }
  pending_.erase(0, start);
  if (pending_.size() > kMaxLine) {
    if (handlers_.on_line && reading_) handlers_.on_line(std::move(pending_));
    pending_.clear();
  }
  if (eof) {
    if (!pending_.empty() && handlers_.on_line && reading_) handlers_.on_line(std::move(pending_));
    pending_.clear();
    if (!eof_sent_) {
      eof_sent_ = true;
      stopInput();
      if (handlers_.on_eof) handlers_.on_eof();
    }
  }
}

}  // namespace pigeon::console
