// The client SDK (src/client) driven from a test thread: an io_context on a thread of its own,
// a Listener that records everything for the test to poll, and a Client wrapper whose calls run
// on that thread. Used by the SDK's integration tests and the cluster tests.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "client/client.h"

namespace pigeon::test {

namespace asio = boost::asio;
using client::Client;
using client::ClientOptions;
using client::Destination;
using client::Message;
using client::SendResult;
using client::State;
using client::StateChange;

// One io_context on one thread for everything a test does with the SDK.
class Io {
 public:
  Io() : guard_(asio::make_work_guard(ctx_)), thread_([this] { ctx_.run(); }) {}
  ~Io() {
    guard_.reset();
    ctx_.stop();
    thread_.join();
  }
  asio::io_context& ctx() { return ctx_; }

  // Runs `f` on the io thread and returns its result.
  template <typename F>
  auto run(F f) -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    asio::post(ctx_, [&task] { task(); });
    return result.get();
  }

  // Starts an async SDK call with a callback on the io thread and waits for its result.
  template <typename R, typename F>
  R call(F start) {
    std::promise<R> p;
    auto result = p.get_future();
    asio::post(ctx_, [&] { start([&p](R r) { p.set_value(std::move(r)); }); });
    return result.get();
  }

 private:
  asio::io_context ctx_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::thread thread_;
};

// Records everything the listener hears, for the test thread to poll.
// A test user's client: registers first (password "password-<user>"), reconnects quickly and
// acknowledges soon, so tests wait milliseconds, not seconds. The server is the caller's.
inline ClientOptions testUserOptions(const std::string& user, const std::string& device) {
  using namespace std::chrono_literals;
  ClientOptions o;
  o.username = user;
  o.password = "password-" + user;
  o.device = device;
  o.register_user = true;
  o.backoff_min = 20ms;
  o.backoff_max = 300ms;
  o.connect_timeout = 2s;
  o.http_timeout = 5s;
  o.ack_delay = 20ms;
  return o;
}

class Recorder : public client::Listener {
 public:
  void onMessages(std::span<const Message> messages) override {
    std::lock_guard lock(mu_);
    messages_.insert(messages_.end(), messages.begin(), messages.end());
  }
  void onSendResult(const SendResult& r) override {
    std::lock_guard lock(mu_);
    results_.push_back(r);
  }
  void onStateChange(const StateChange& s) override {
    {
      std::lock_guard lock(mu_);
      states_.push_back(s);
      state_times_.push_back(std::chrono::steady_clock::now());
    }
    if (on_state) on_state(s);  // outside the lock: it may call the client, which calls back
  }
  void onCaughtUp(const client::CaughtUp& c) override {
    std::lock_guard lock(mu_);
    caught_up_.push_back(c);
    messages_at_caught_up_.push_back(messages_.size());
  }
  void onKicked(const std::string&) override {
    std::lock_guard lock(mu_);
    ++kicked_;
  }
  void onError(const Error& e) override {
    std::lock_guard lock(mu_);
    errors_.push_back(e);
  }
  void onPresence(const client::PresenceChange& p) override {
    std::lock_guard lock(mu_);
    presence_.push_back(p);
  }

  std::vector<Message> messages() const {
    std::lock_guard lock(mu_);
    return messages_;
  }
  std::size_t messageCount() const {
    std::lock_guard lock(mu_);
    return messages_.size();
  }
  std::vector<std::string> bodies() const {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const auto& m : messages_) out.push_back(m.body);
    return out;
  }
  std::vector<SendResult> results() const {
    std::lock_guard lock(mu_);
    return results_;
  }
  std::size_t okResults() const {
    std::lock_guard lock(mu_);
    std::size_t n = 0;
    for (const auto& r : results_) n += r.receipt.has_value();
    return n;
  }
  std::vector<StateChange> states() const {
    std::lock_guard lock(mu_);
    return states_;
  }
  // When the first state change matching `pred` at or after index `from` happened.
  std::optional<std::chrono::steady_clock::time_point> when(
      std::size_t from, const std::function<bool(const StateChange&)>& pred) const {
    std::lock_guard lock(mu_);
    for (std::size_t i = from; i < states_.size(); ++i) {
      if (pred(states_[i])) return state_times_[i];
    }
    return std::nullopt;
  }
  std::size_t stateCount() const {
    std::lock_guard lock(mu_);
    return states_.size();
  }
  int kicked() const {
    std::lock_guard lock(mu_);
    return kicked_;
  }
  std::vector<Error> errors() const {
    std::lock_guard lock(mu_);
    return errors_;
  }
  std::vector<client::PresenceChange> presence() const {
    std::lock_guard lock(mu_);
    return presence_;
  }
  std::vector<client::CaughtUp> caughtUp() const {
    std::lock_guard lock(mu_);
    return caught_up_;
  }
  // How many messages had been handed over when each onCaughtUp came.
  std::vector<std::size_t> messagesAtCaughtUp() const {
    std::lock_guard lock(mu_);
    return messages_at_caught_up_;
  }

  // Called (on the io thread) after each state change is recorded. Set before start().
  std::function<void(const StateChange&)> on_state;

 private:
  mutable std::mutex mu_;
  std::vector<Message> messages_;
  std::vector<SendResult> results_;
  std::vector<StateChange> states_;
  std::vector<std::chrono::steady_clock::time_point> state_times_;
  std::vector<Error> errors_;
  std::vector<client::PresenceChange> presence_;
  std::vector<client::CaughtUp> caught_up_;
  std::vector<std::size_t> messages_at_caught_up_;
  int kicked_ = 0;
};

// A Client on the test's io thread with its recorder.
class TestClient {
 public:
  TestClient(Io& io, ClientOptions options) : io_(io) {
    io_.run([&] {
      client_ = std::make_unique<Client>(io_.ctx().get_executor(), std::move(options), rec_);
      return 0;
    });
  }
  ~TestClient() {
    io_.run([&] {
      client_.reset();
      return 0;
    });
  }

  Result<client::Session> start() {
    return io_.call<Result<client::Session>>([&](auto done) { client_->start(std::move(done)); });
  }
  // Graceful stop; waits until the client is Stopped.
  void stop() { stopLater().get(); }
  // Starts a graceful stop; the future is ready once it completed.
  std::future<void> stopLater() {
    auto p = std::make_shared<std::promise<void>>();
    auto done = p->get_future();
    io_.run([&] {
      client_->stop([p] { p->set_value(); });
      return 0;
    });
    return done;
  }
  std::string send(Destination to, std::string body) {
    return io_.run([&] { return client_->send(std::move(to), std::move(body)); });
  }
  State state() {
    return io_.run([&] { return client_->state(); });
  }
  client::ClientStats stats() {
    return io_.run([&] { return client_->stats(); });
  }
  std::size_t pending() {
    return io_.run([&] { return client_->pendingSends(); });
  }
  std::uint64_t userId() {
    return io_.run([&] { return client_->session() ? client_->session()->user_id : 0; });
  }
  void drop() {
    io_.run([&] {
      client_->dropConnection();
      return 0;
    });
  }
  bool online() { return state() == State::Online; }
  Client& raw() { return *client_; }
  Recorder& rec() { return rec_; }

 private:
  Io& io_;
  Recorder rec_;
  std::unique_ptr<Client> client_;
};

}  // namespace pigeon::test
