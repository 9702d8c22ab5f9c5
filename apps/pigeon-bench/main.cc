// pigeon-bench: Pigeon's load generator (bench/RESULTS.md has the figures it produced).
//
//   pigeon-bench idle   --connections N --hold S          N connections logged in and subscribed
//   pigeon-bench pairs  --pairs P --window W --duration S  P sender→receiver pairs, closed loop
//   pigeon-bench fanout --members M --publishers K …       a group of M online members
//   pigeon-bench storm  --devices N --messages K           N devices resync K messages at once
//
// Each run prints a table and one JSON line, counts lost, duplicated and out-of-order messages
// (every body carries its sender's sequence number and send time) and exits non-zero if any
// occurred or a connection failed. --processes P splits the connections over P processes (one
// process may open only ~20,000 files here) whose results are merged; --sources S spreads them
// over the source addresses 127.0.0.2 … 127.0.0.(S+1); several --server flags spread them over
// several nodes. The servers must run with --frame-rate 0 --rate-limit 0 (and, for quick
// set-up, --password-cost min): the generator sends far more than a person would.
#include <fcntl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <mutex>
#include <iostream>
#include <map>
#include <sstream>

#include "base/host_port.h"
#include "conn.h"
#include "histogram.h"
#include "setup.h"

namespace pigeon::bench {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;

std::uint64_t nowNs() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);  // one clock for every process on the machine
  return std::uint64_t(ts.tv_sec) * 1000000000ull + std::uint64_t(ts.tv_nsec);
}

struct Options {
  std::string scenario;
  std::vector<std::string> servers{"http://127.0.0.1:8080"};
  std::string transport = "tcp";
  std::vector<int> pids;
  std::size_t sources = 0;  // 0: connect from 127.0.0.1
  bool cluster = false;     // the servers are API nodes of one cluster (one store)
  std::size_t processes = 1;
  std::string prefix;
  std::size_t size = 100;
  std::size_t setup_threads = 8;
  // idle
  std::size_t connections = 1000;
  double hold = 10;
  std::size_t devices_per_user = 100;
  // pairs, fanout
  std::size_t pairs = 10;
  std::size_t window = 16;
  double duration = 10;
  std::size_t members = 100;
  std::size_t publishers = 1;
  // storm
  std::size_t devices = 100;
  std::size_t messages = 10;
  double timeout = 120;  // storm: give up after this many seconds
};

// ---- what the parent prepares before the workers start ------------------------------------

struct Endpoints {
  HttpServer http;
  asio::ip::tcp::endpoint tcp;  // native port (from the login's gateway.tcp)
};

struct Plan {
  std::vector<Endpoints> servers;
  std::vector<std::string> tokens;    // one per connection
  std::vector<std::string> names;     // the username of each connection
  std::vector<std::size_t> server_of;  // server index of each connection
  // Where each connection goes: the gateway its login named (in a cluster, the node the
  // balancer picked; on one node, the node itself).
  std::vector<asio::ip::tcp::endpoint> tcp_of, ws_of;
  std::uint64_t group = 0;             // fanout
  std::vector<std::uint64_t> group_of;  // storm: the group of each device
  std::size_t groups = 0;               // storm
};


// Registers `users` (password "bench-password"; an existing name is fine) on their servers.
void registerUsers(const Options& o, Plan& plan, const std::vector<std::string>& users,
                   const std::vector<std::size_t>& server_of_user) {
  for (std::size_t s = 0; s < plan.servers.size(); ++s) {
    std::vector<std::size_t> mine;
    for (std::size_t u = 0; u < users.size(); ++u) {
      if (server_of_user[u] == s) mine.push_back(u);
    }
    parallel(plan.servers[s].http, mine.size(), o.setup_threads, [&](SetupClient& c, std::size_t k) {
      int status = 0;
      c.request("POST", "/api/v1/users",
                json::object{{"username", users[mine[k]]}, {"password", "bench-password"}}, "", status);
      if (status != 201 && status != 409) {
        throw std::runtime_error("registering " + users[mine[k]] + ": HTTP " + std::to_string(status));
      }
    });
  }
}

// "tcp://host:port" or "ws://host:port/ws" → an endpoint; `fallback` if the field is null.
asio::ip::tcp::endpoint gatewayEndpoint(const json::value& url, asio::ip::tcp::endpoint fallback) {
  if (!url.is_string()) return fallback;
  auto address = hostPortOf(url.as_string());
  if (!address) throw std::runtime_error("login named a bad gateway: " + std::string(url.as_string()));
  return {asio::ip::make_address(address->host), address->port};
}

// Logs in connection i as names[i] with device `devices[i]`.
void loginAll(const Options& o, Plan& plan, const std::vector<std::string>& devices) {
  plan.tokens.resize(plan.names.size());
  plan.tcp_of.resize(plan.names.size());
  plan.ws_of.resize(plan.names.size());
  for (std::size_t s = 0; s < plan.servers.size(); ++s) {
    std::vector<std::size_t> mine;
    for (std::size_t i = 0; i < plan.names.size(); ++i) {
      if (plan.server_of[i] == s) mine.push_back(i);
    }
    std::mutex mu;
    parallel(plan.servers[s].http, mine.size(), o.setup_threads, [&](SetupClient& c, std::size_t k) {
      const std::size_t i = mine[k];
      int status = 0;
      auto res = c.request("POST", "/api/v1/sessions",
                           json::object{{"username", plan.names[i]}, {"password", "bench-password"},
                                        {"device", devices[i]}},
                           "", status);
      if (status != 200) throw std::runtime_error("login " + plan.names[i] + ": HTTP " + std::to_string(status));
      plan.tokens[i] = std::string(res.at("token").as_string());
      const Endpoints& server = plan.servers[s];
      const asio::ip::tcp::endpoint http(asio::ip::make_address(server.http.host), server.http.port);
      plan.tcp_of[i] = gatewayEndpoint(res.at("gateway").at("tcp"), server.tcp);
      plan.ws_of[i] = gatewayEndpoint(res.at("gateway").at("ws"), http);
      if (k == 0) {
        std::lock_guard lock(mu);
        plan.servers[s].tcp = plan.tcp_of[i];
      }
    });
  }
}

// ---- a worker: the connections of one process ----------------------------------------------

// Parent ↔ worker hand-shake: the worker says "ready" when set up, the parent says "go" when
// every worker is.
struct Barrier {
  int to_parent = -1, from_parent = -1;
  std::function<void()> on_ready;  // one process: what the parent would do
  void ready() {
    if (on_ready) on_ready();
    if (to_parent < 0) return;
    const char r = 'R';
    (void)!::write(to_parent, &r, 1);
  }
  void waitGo() {
    if (from_parent < 0) return;
    char g;
    (void)!::read(from_parent, &g, 1);
  }
};

struct Parsed {
  std::uint64_t source = 0, n = 0, t = 0;
};
// A body is "<source> <n> <send time ns> " and padding.
bool parseBody(std::string_view body, Parsed& p) {
  const char* s = body.data();
  const char* end = s + body.size();
  for (std::uint64_t* field : {&p.source, &p.n, &p.t}) {
    auto [next, ec] = std::from_chars(s, end, *field);
    if (ec != std::errc() || next == end || *next != ' ') return false;
    s = next + 1;
  }
  return true;
}
std::string makeBody(std::uint64_t source, std::uint64_t n, std::size_t size) {
  std::string b = std::to_string(source) + ' ' + std::to_string(n) + ' ' + std::to_string(nowNs()) + ' ';
  if (b.size() < size) b.append(size - b.size(), 'x');
  return b;
}

// Tracks one stream of numbered messages (one sender as seen by one receiver).
struct Stream {
  std::uint64_t next = 1, unique = 0, dups = 0, reordered = 0;
  void see(std::uint64_t n) {
    if (n == next) {
      ++unique;
      ++next;
    } else if (n < next) {
      ++dups;
    } else {
      ++reordered;  // a gap: the missing ones are counted as lost at the end
      ++unique;
      next = n + 1;
    }
  }
};

class Worker final : public ConnEvents {
 public:
  Worker(const Options& o, const Plan& plan, std::size_t begin, std::size_t end, Barrier barrier)
      : o_(o), plan_(plan), begin_(begin), end_(end), barrier_(barrier) {}

  json::object run();

  // ConnEvents
  void onReady(Conn& c) override;
  void onDeliver(Conn& c, std::uint64_t seq, std::string_view body) override;
  void onSendAck(Conn& c, std::string_view client_msg_id) override;
  void onSendError(Conn& c, std::string_view client_msg_id, std::string_view error) override;
  void onClosed(Conn& c, std::string_view why) override;

 private:
  struct Pub {  // a sender: a pair's sender, or a fanout publisher
    std::uint64_t sent = 0, acked = 0;
    std::vector<std::uint64_t> sent_at;  // by n % window
  };

  void connectMore();
  void runFor(double seconds);
  void drain();
  void trySend(std::size_t global);
  bool pairsOrFanout() const { return o_.scenario == "pairs" || o_.scenario == "fanout"; }

  const Options& o_;
  const Plan& plan_;
  std::size_t begin_, end_;
  Barrier barrier_;
  asio::io_context io_;
  std::vector<char> scratch_ = std::vector<char>(256 * 1024);
  std::vector<std::shared_ptr<Conn>> conns_;  // by global index - begin_
  std::size_t next_connect_ = 0, connecting_ = 0, ready_ = 0, failed_ = 0;
  std::uint64_t first_connect_ns_ = 0, last_ready_ns_ = 0;
  std::map<std::string, std::size_t> failures_;
  bool sending_ = false, measuring_ = false;
  std::uint64_t go_ns_ = 0, last_delivery_ns_ = 0;
  std::uint64_t delivered_ = 0, delivered_in_window_ = 0, foreign_ = 0, send_errors_ = 0;
  Histogram receipt_us_, delivery_us_, resync_ms_;
  std::map<std::size_t, Pub> pubs_;                  // by global index of the sender
  std::map<std::pair<std::size_t, std::uint64_t>, Stream> streams_;  // (receiver, source)
  std::vector<std::uint64_t> storm_got_;             // storm: messages per device
  std::size_t storm_done_ = 0;
};

void Worker::connectMore() {
  // At most 512 connects in flight, so the server's accept queue is not overrun.
  while (next_connect_ < end_ - begin_ && connecting_ < 512) {
    const std::size_t i = begin_ + next_connect_;
    ConnTarget t;
    t.proto = o_.transport == "ws" ? Proto::Ws : Proto::Tcp;
    t.server = t.proto == Proto::Tcp ? plan_.tcp_of[i] : plan_.ws_of[i];
    t.source = o_.sources == 0 ? asio::ip::address()
                               : asio::ip::make_address("127.0.0." + std::to_string(2 + i % o_.sources));
    auto c = std::make_shared<Conn>(io_, t, plan_.tokens[i], *this, scratch_, std::uint32_t(i));
    conns_[next_connect_] = c;
    ++next_connect_;
    ++connecting_;
    if (!first_connect_ns_) first_connect_ns_ = nowNs();
    c->start();
  }
}

void Worker::onReady(Conn&) {
  --connecting_;
  ++ready_;
  last_ready_ns_ = nowNs();
  connectMore();
}

void Worker::onClosed(Conn& c, std::string_view why) {
  if (!c.ready()) --connecting_;
  ++failed_;
  ++failures_[std::string(why.substr(0, 80))];
  connectMore();
}

void Worker::onDeliver(Conn& c, std::uint64_t, std::string_view body) {
  const std::uint64_t now = nowNs();
  Parsed p;
  if (!parseBody(body, p)) {
    ++foreign_;
    return;
  }
  const std::size_t me = c.index();
  if (o_.scenario == "pairs") {
    if (me % 2 == 0) return;  // a sender's own copy (its inbox holds what it sent)
    if (p.source != me - 1) {
      ++foreign_;
      return;
    }
  }
  ++delivered_;
  last_delivery_ns_ = now;
  if (measuring_) ++delivered_in_window_;
  streams_[{me, p.source}].see(p.n);
  if (o_.scenario == "storm") return;  // completion is checked in run()
  delivery_us_.record((now - p.t) / 1000);
  if (o_.scenario == "pairs") trySend(me - 1);
}

void Worker::onSendAck(Conn& c, std::string_view client_msg_id) {
  const auto dash = client_msg_id.find('-');
  std::uint64_t n = 0;
  std::from_chars(client_msg_id.data() + dash + 1, client_msg_id.data() + client_msg_id.size(), n);
  Pub& pub = pubs_[c.index()];
  ++pub.acked;
  receipt_us_.record((nowNs() - pub.sent_at[n % o_.window]) / 1000);
  trySend(c.index());
}

void Worker::onSendError(Conn&, std::string_view, std::string_view error) {
  ++send_errors_;
  ++failures_["send refused: " + std::string(error)];
}

void Worker::trySend(std::size_t global) {
  if (!sending_) return;
  auto& conn = conns_[global - begin_];
  if (!conn || !conn->ready()) return;
  Pub& pub = pubs_[global];
  if (pub.sent_at.empty()) pub.sent_at.resize(o_.window);
  for (;;) {
    if (pub.sent - pub.acked >= o_.window) return;
    if (o_.scenario == "pairs") {
      const Stream& s = streams_[{global + 1, global}];
      if (pub.sent - s.unique >= o_.window) return;  // end to end: delivered frees the window
    }
    if (conn->queuedBytes() > (1 << 20)) return;
    const std::uint64_t n = ++pub.sent;
    pub.sent_at[n % o_.window] = nowNs();
    const std::string id = std::to_string(global) + "-" + std::to_string(n);
    const std::string body = makeBody(global, n, o_.size);
    if (o_.scenario == "pairs") {
      conn->send(id, plan_.names[global + 1], 0, body);
    } else {
      conn->send(id, {}, plan_.group, body);
    }
  }
}

void Worker::runFor(double seconds) {
  io_.restart();
  io_.run_for(std::chrono::microseconds(std::int64_t(seconds * 1e6)));
}

void Worker::drain() {
  // Until nothing has arrived for a second (every acknowledged message delivered), or 30 s.
  const std::uint64_t limit = nowNs() + 30'000'000'000ull;
  last_delivery_ns_ = nowNs();
  while (nowNs() < limit && nowNs() - last_delivery_ns_ < 1'000'000'000ull) runFor(0.1);
}

json::object Worker::run() {
  conns_.resize(end_ - begin_);
  json::object r;
  if (o_.scenario == "storm") {
    storm_got_.assign(end_ - begin_, 0);
    barrier_.ready();
    barrier_.waitGo();
    go_ns_ = nowNs();
    connectMore();
    const std::uint64_t limit = go_ns_ + std::uint64_t(o_.timeout * 1e9);
    // Done when every device has its K messages from its group (or failed, or the timeout).
    std::uint64_t slowest = 0;
    std::vector<bool> done(end_ - begin_, false);
    while (nowNs() < limit) {
      runFor(0.01);
      std::size_t finished = 0;
      for (std::size_t k = 0; k < conns_.size(); ++k) {
        if (done[k]) {
          ++finished;
          continue;
        }
        const std::size_t i = begin_ + k;
        auto it = streams_.find({i, plan_.group_of[i]});
        if (it != streams_.end() && it->second.unique >= o_.messages) {
          done[k] = true;
          const std::uint64_t t = nowNs() - go_ns_;
          slowest = std::max(slowest, t);
          resync_ms_.record(t / 1000000);
          ++finished;
        }
      }
      // A failed connection never finishes: stop waiting once the others have.
      if (finished + failed_ >= conns_.size()) break;
    }
    r["slowest_ms"] = double(slowest) / 1e6;
    r["devices_done"] = std::size_t(std::count(done.begin(), done.end(), true));
  } else {
    connectMore();
    // Connect everything (or fail), then report ready and wait for the others.
    while (ready_ + failed_ < end_ - begin_) runFor(0.05);
    barrier_.ready();
    barrier_.waitGo();
    go_ns_ = nowNs();
    if (o_.scenario == "idle") {
      const std::size_t failed_before = failed_;
      runFor(o_.hold);
      r["dropped_during_hold"] = failed_ - failed_before;
    } else {
      sending_ = measuring_ = true;
      if (o_.scenario == "pairs") {
        for (std::size_t i = begin_; i < end_; i += 2) trySend(i);
      } else {
        for (std::size_t i = begin_; i < std::min(end_, o_.publishers); ++i) trySend(i);
      }
      runFor(o_.duration);
      measuring_ = false;
      sending_ = false;
      drain();
    }
  }
  // Results: counters, histograms, and per-stream accounting for the loss check.
  std::uint64_t dups = 0, reordered = 0, unique = 0;
  for (const auto& [key, s] : streams_) {
    dups += s.dups;
    reordered += s.reordered;
    unique += s.unique;
  }
  std::uint64_t sent = 0, acked = 0;
  json::object acked_by;  // sender → acknowledged sends
  for (const auto& [who, pub] : pubs_) {
    sent += pub.sent;
    acked += pub.acked;
    acked_by[std::to_string(who)] = pub.acked;
  }
  json::object unique_by;  // sender → unique messages received (summed over receivers)
  for (const auto& [key, s] : streams_) {
    auto& v = unique_by[std::to_string(key.second)];
    v = (v.is_null() ? 0 : v.to_number<std::uint64_t>()) + s.unique;
  }
  json::object failures;
  for (const auto& [why, n] : failures_) failures[why] = n;
  r["connections"] = end_ - begin_;
  r["ready"] = ready_;
  r["failed"] = failed_;
  r["connect_ns"] = last_ready_ns_ > first_connect_ns_ ? last_ready_ns_ - first_connect_ns_ : 0;
  r["sent"] = sent;
  r["acked"] = acked;
  r["send_errors"] = send_errors_;
  r["delivered"] = delivered_;
  r["delivered_in_window"] = delivered_in_window_;
  r["unique"] = unique;
  r["duplicates"] = dups;
  r["reordered"] = reordered;
  r["foreign"] = foreign_;
  r["acked_by"] = std::move(acked_by);
  r["unique_by"] = std::move(unique_by);
  r["failures"] = std::move(failures);
  r["receipt_us"] = receipt_us_.toJson();
  r["delivery_us"] = delivery_us_.toJson();
  r["resync_ms"] = resync_ms_.toJson();
  for (auto& c : conns_) {
    if (c) c->close();
  }
  return r;
}

// ---- the parent ---------------------------------------------------------------------------

std::uint64_t rssKiB(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("VmRSS:")) return std::stoull(line.substr(6));
  }
  return 0;
}
std::uint64_t totalRssKiB(const Options& o) {
  std::uint64_t sum = 0;
  for (int pid : o.pids) sum += rssKiB(pid);
  return sum;
}

// Adds `b` into `a`: numbers are summed, objects merged key by key, histograms merged.
void mergeInto(json::object& a, const json::object& b) {
  for (const auto& [k, v] : b) {
    auto it = a.find(k);
    if (it == a.end()) {
      a[k] = v;
    } else if ((k.ends_with("_us") || k.ends_with("_ms")) && v.is_array()) {
      Histogram h = Histogram::fromJson(it->value());
      h.merge(Histogram::fromJson(v));
      it->value() = h.toJson();
    } else if (v.is_object()) {
      mergeInto(it->value().as_object(), v.as_object());
    } else if (k == "slowest_ms") {
      it->value() = std::max(it->value().to_number<double>(), v.to_number<double>());
    } else if (k == "connect_ns") {
      it->value() = std::max(it->value().to_number<std::uint64_t>(), v.to_number<std::uint64_t>());
    } else if (v.is_number()) {
      it->value() = it->value().to_number<double>() + v.to_number<double>();
    }
  }
}

std::uint64_t num(const json::object& r, const char* k) {
  auto it = r.find(k);
  return it == r.end() ? 0 : std::uint64_t(it->value().to_number<double>());
}

Plan prepare(const Options& o) {
  Plan plan;
  for (const auto& url : o.servers) {
    Endpoints e;
    if (!parseHttpUrl(url, e.http)) throw std::runtime_error("--server must be http://host:port, not " + url);
    plan.servers.push_back(e);
  }
  const std::size_t S = plan.servers.size();
  std::vector<std::string> users, devices;
  std::vector<std::size_t> server_of_user;
  const std::string& p = o.prefix;
  if (o.scenario == "idle") {
    const std::size_t per = std::max<std::size_t>(1, o.devices_per_user);
    const std::size_t nusers = (o.connections + per - 1) / per;
    for (std::size_t u = 0; u < nusers; ++u) {
      users.push_back(p + "i" + std::to_string(u));
      server_of_user.push_back(u % S);
    }
    for (std::size_t i = 0; i < o.connections; ++i) {
      plan.names.push_back(users[i / per]);
      plan.server_of.push_back((i / per) % S);
      devices.push_back("d" + std::to_string(i % per));
    }
  } else if (o.scenario == "pairs") {
    for (std::size_t i = 0; i < 2 * o.pairs; ++i) {
      users.push_back(p + "p" + std::to_string(i));
      server_of_user.push_back((i / 2) % S);  // a pair shares a node
      plan.names.push_back(users.back());
      plan.server_of.push_back((i / 2) % S);
      devices.push_back("bench");
    }
  } else if (o.scenario == "fanout" || o.scenario == "storm") {
    const std::size_t n = o.scenario == "fanout" ? o.members : o.devices;
    if (S > 1 && !o.cluster) {
      throw std::runtime_error(o.scenario + " needs one server (a group lives on one node), or --cluster");
    }
    for (std::size_t i = 0; i < n; ++i) {
      users.push_back(p + (o.scenario == "fanout" ? "f" : "s") + std::to_string(i));
      server_of_user.push_back(i % S);
      plan.names.push_back(users.back());
      plan.server_of.push_back(i % S);
      devices.push_back("bench");
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  registerUsers(o, plan, users, server_of_user);
  loginAll(o, plan, devices);
  SetupClient admin(plan.servers[0].http);
  if (o.scenario == "fanout") {
    if (o.members > 1000) throw std::runtime_error("a group has at most 1000 members");
    if (o.publishers > o.members) throw std::runtime_error("--publishers must be <= --members");
    int status = 0;
    json::array members;
    for (std::size_t i = 1; i < o.members; ++i) members.push_back(json::value(plan.names[i]));
    auto g = admin.request("POST", "/api/v1/groups", json::object{{"name", "bench"}, {"members", members}},
                           plan.tokens[0], status);
    if (status != 201) throw std::runtime_error("creating the group: HTTP " + std::to_string(status));
    plan.group = std::stoull(std::string(g.at("group_id").as_string()));
  } else if (o.scenario == "storm") {
    // A publisher owns groups of up to 999 devices and piles K messages into each.
    int status = 0;
    const std::string pub = p + "pub";
    admin.request("POST", "/api/v1/users", json::object{{"username", pub}, {"password", "bench-password"}}, "", status);
    auto login = admin.request("POST", "/api/v1/sessions",
                               json::object{{"username", pub}, {"password", "bench-password"}, {"device", "bench"}},
                               "", status);
    if (status != 200) throw std::runtime_error("publisher login: HTTP " + std::to_string(status));
    const std::string token(login.at("token").as_string());
    std::vector<std::uint64_t> groups;
    for (std::size_t start = 0; start < o.devices; start += 999) {
      json::array members;
      for (std::size_t i = start; i < std::min(o.devices, start + 999); ++i) members.push_back(json::value(plan.names[i]));
      auto g = admin.request("POST", "/api/v1/groups", json::object{{"name", "storm"}, {"members", members}}, token, status);
      if (status != 201) throw std::runtime_error("creating a group: HTTP " + std::to_string(status));
      groups.push_back(std::stoull(std::string(g.at("group_id").as_string())));
    }
    for (std::size_t i = 0; i < o.devices; ++i) plan.group_of.push_back(groups[i / 999]);
    plan.groups = groups.size();
    // K messages per group, in order within a group, groups in parallel. The body's source is
    // the group id, so each device checks the order of its group's stream.
    parallel(plan.servers[0].http, groups.size(), o.setup_threads, [&](SetupClient& c, std::size_t g) {
      for (std::size_t n = 1; n <= o.messages; ++n) {
        int st = 0;
        c.request("POST", "/api/v1/messages",
                  json::object{{"to_group", std::to_string(groups[g])}, {"body", makeBody(groups[g], n, o.size)},
                               {"client_msg_id", "s" + std::to_string(g) + "-" + std::to_string(n)}},
                  token, st);
        if (st != 200) throw std::runtime_error("piling up: HTTP " + std::to_string(st));
      }
    });
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "pigeon-bench: set-up (%zu users, %zu logins) took %.1f s\n", users.size(),
               plan.names.size(), secs);
  return plan;
}

int report(const Options& o, const json::object& r, std::uint64_t rss_before, std::uint64_t rss_ready,
           std::uint64_t rss_end) {
  json::object out;
  out["scenario"] = o.scenario;
  out["transport"] = o.transport;
  out["processes"] = o.processes;
  out["servers"] = o.servers.size();
  const std::uint64_t conns = num(r, "connections"), ready = num(r, "ready"), failed = num(r, "failed");
  const double connect_s = double(num(r, "connect_ns")) / 1e9;
  // Loss: every acknowledged send must reach every receiver that was meant to get it.
  std::uint64_t expected = 0, got = 0;
  const auto& acked_by = r.at("acked_by").as_object();
  const auto& unique_by = r.at("unique_by").as_object();
  const std::uint64_t receivers = o.scenario == "fanout" ? o.members : 1;
  if (o.scenario == "pairs" || o.scenario == "fanout") {
    for (const auto& [who, n] : acked_by) expected += std::uint64_t(n.to_number<double>()) * receivers;
    for (const auto& [who, n] : unique_by) got += std::uint64_t(n.to_number<double>());
  } else if (o.scenario == "storm") {
    expected = std::uint64_t(o.devices) * o.messages;
    got = num(r, "unique");
  }
  const std::uint64_t lost = expected > got ? expected - got : 0;
  const std::uint64_t dups = num(r, "duplicates"), reordered = num(r, "reordered");
  out["connections"] = conns;
  out["ready"] = ready;
  out["failed"] = failed;
  out["connect_rate_per_s"] = connect_s > 0 ? double(ready) / connect_s : 0.0;
  out["lost"] = lost;
  out["duplicated"] = dups;
  out["out_of_order"] = reordered;
  out["send_errors"] = num(r, "send_errors");
  out["failures"] = r.at("failures");

  std::printf("%-28s %s\n", "scenario", (o.scenario + " over " + o.transport).c_str());
  std::printf("%-28s %llu (%llu ready, %llu failed) in %zu process(es)\n", "connections",
              (unsigned long long)conns, (unsigned long long)ready, (unsigned long long)failed, o.processes);
  if (connect_s > 0) std::printf("%-28s %.0f /s\n", "connect rate", double(ready) / connect_s);
  if (o.scenario == "idle") {
    out["held"] = ready - num(r, "dropped_during_hold");
    out["hold_s"] = o.hold;
    std::printf("%-28s %llu for %.0f s\n", "held", (unsigned long long)(ready - num(r, "dropped_during_hold")), o.hold);
    if (!o.pids.empty() && ready > 0) {
      const double per = double(rss_ready - rss_before) * 1024.0 / double(ready);
      out["server_rss_kib_before"] = rss_before;
      out["server_rss_kib_ready"] = rss_ready;
      out["server_rss_kib_end"] = rss_end;
      out["server_bytes_per_connection"] = per;
      std::printf("%-28s %.0f B (RSS %llu KiB → %llu KiB)\n", "server memory/connection", per,
                  (unsigned long long)rss_before, (unsigned long long)rss_ready);
    }
  }
  // `key`: the worker's histogram (µs); `out_key`: the figure in `unit` (µs ÷ scale).
  auto pct = [&](const char* name, const char* key, const char* out_key, double scale, const char* unit) {
    Histogram h = Histogram::fromJson(r.at(key));
    json::object q{{"count", h.count()}, {"p50", double(h.quantile(0.5)) / scale}, {"p90", double(h.quantile(0.9)) / scale},
                   {"p99", double(h.quantile(0.99)) / scale}, {"p999", double(h.quantile(0.999)) / scale}};
    if (h.count()) {
      std::printf("%-28s p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f %s\n", name, double(h.quantile(0.5)) / scale,
                  double(h.quantile(0.9)) / scale, double(h.quantile(0.99)) / scale, double(h.quantile(0.999)) / scale, unit);
    }
    out[out_key] = std::move(q);
  };
  if (o.scenario == "pairs" || o.scenario == "fanout") {
    const double rate = double(num(r, "delivered_in_window")) / o.duration;
    out["duration_s"] = o.duration;
    out["sent"] = num(r, "sent");
    out["acked"] = num(r, "acked");
    out["delivered"] = num(r, "delivered");
    out[o.scenario == "pairs" ? "delivered_per_s" : "deliveries_per_s"] = rate;
    std::printf("%-28s %llu sent, %llu acknowledged, %llu delivered\n", "messages",
                (unsigned long long)num(r, "sent"), (unsigned long long)num(r, "acked"),
                (unsigned long long)num(r, "delivered"));
    std::printf("%-28s %.0f /s over %.0f s\n", o.scenario == "pairs" ? "delivered" : "deliveries", rate, o.duration);
    pct("send → receipt", "receipt_us", "receipt_ms", 1000.0, "ms");
    pct("send → delivery", "delivery_us", "delivery_ms", 1000.0, "ms");
  }
  if (o.scenario == "storm") {
    out["devices"] = o.devices;
    out["messages_each"] = o.messages;
    out["devices_done"] = num(r, "devices_done");
    out["all_resynced_s"] = r.at("slowest_ms").to_number<double>() / 1000.0;
    std::printf("%-28s %llu of %zu devices, %zu messages each\n", "resynced", (unsigned long long)num(r, "devices_done"),
                o.devices, o.messages);
    std::printf("%-28s %.2f s\n", "all resynced after", r.at("slowest_ms").to_number<double>() / 1000.0);
    pct("per device", "resync_ms", "resync_s", 1000.0, "s");
  }
  std::printf("%-28s %llu lost, %llu duplicated, %llu out of order\n", "integrity", (unsigned long long)lost,
              (unsigned long long)dups, (unsigned long long)reordered);
  for (const auto& [why, n] : r.at("failures").as_object()) {
    std::printf("%-28s %s × %s\n", "failure", std::string(why).c_str(), json::serialize(n).c_str());
  }
  std::printf("%s\n", json::serialize(out).c_str());
  std::fflush(stdout);
  const bool ok = lost == 0 && dups == 0 && reordered == 0 && failed == 0 && num(r, "send_errors") == 0 &&
                  (o.scenario != "storm" || num(r, "devices_done") == o.devices);
  return ok ? 0 : 1;
}

int run(Options o) {
  if (o.prefix.empty()) {
    o.prefix = "b" + std::to_string(::time(nullptr) % 100000000) + "x" + std::to_string(::getpid() % 1000) + "x";
  }
  if (o.scenario == "pairs") o.connections = 2 * o.pairs;
  if (o.scenario == "fanout") o.connections = o.members;
  if (o.scenario == "storm") o.connections = o.devices;
  if (o.window == 0) throw std::runtime_error("--window must be at least 1");
  Plan plan = prepare(o);
  if (o.transport == "tcp") {
    for (const auto& s : plan.servers) {
      if (s.tcp.port() == 0) throw std::runtime_error("the server offers no native TCP gateway");
    }
  }
  const std::size_t P = std::max<std::size_t>(1, std::min(o.processes, o.connections));
  o.processes = P;
  // Slices: pairs stay in one process.
  std::vector<std::size_t> bounds;
  const std::size_t unit = o.scenario == "pairs" ? 2 : 1;
  const std::size_t units = o.connections / unit;
  for (std::size_t k = 0; k <= P; ++k) bounds.push_back(units * k / P * unit);

  const std::uint64_t rss_before = totalRssKiB(o);
  json::object merged;
  std::uint64_t rss_ready = 0;
  if (P == 1) {
    // One process: the barrier is a no-op; memory is read when the worker is ready.
    Barrier inline_barrier;
    inline_barrier.on_ready = [&] { rss_ready = totalRssKiB(o); };
    Worker w(o, plan, 0, o.connections, inline_barrier);
    merged = w.run();
  } else {
    struct Child {
      pid_t pid;
      int ready_fd, go_fd, result_fd;
    };
    std::vector<Child> children;
    std::fflush(stdout);
    std::fflush(stderr);
    for (std::size_t k = 0; k < P; ++k) {
      int ready[2], go[2], result[2];
      if (::pipe(ready) || ::pipe(go) || ::pipe(result)) throw std::runtime_error("pipe failed");
      const pid_t pid = ::fork();
      if (pid < 0) throw std::runtime_error("fork failed");
      if (pid == 0) {
        ::close(ready[0]);
        ::close(go[1]);
        ::close(result[0]);
        int code = 0;
        try {
          Worker w(o, plan, bounds[k], bounds[k + 1], Barrier{ready[1], go[0]});
          const std::string line = json::serialize(w.run()) + "\n";
          for (std::size_t off = 0; off < line.size();) {
            const auto n = ::write(result[1], line.data() + off, line.size() - off);
            if (n <= 0) break;
            off += std::size_t(n);
          }
        } catch (const std::exception& e) {
          std::fprintf(stderr, "pigeon-bench: worker %zu: %s\n", k, e.what());
          code = 2;
        }
        ::_exit(code);
      }
      ::close(ready[1]);
      ::close(go[0]);
      ::close(result[1]);
      children.push_back({pid, ready[0], go[1], result[0]});
    }
    for (auto& c : children) {
      char r;
      if (::read(c.ready_fd, &r, 1) != 1) throw std::runtime_error("a worker died during set-up");
    }
    rss_ready = totalRssKiB(o);
    for (auto& c : children) (void)!::write(c.go_fd, "G", 1);
    if (o.scenario == "idle") {
      // Memory at the end of the hold, while the workers still hold their connections.
      struct timespec ts{std::time_t(o.hold * 0.9), 0};
      ::nanosleep(&ts, nullptr);
    }
    for (auto& c : children) {
      std::string line;
      char buf[65536];
      for (;;) {
        const auto n = ::read(c.result_fd, buf, sizeof buf);
        if (n <= 0) break;
        line.append(buf, std::size_t(n));
      }
      int status = 0;
      ::waitpid(c.pid, &status, 0);
      if (line.empty()) throw std::runtime_error("a worker died without a result");
      mergeInto(merged, json::parse(line).as_object());
    }
  }
  const std::uint64_t rss_end = o.pids.empty() ? 0 : totalRssKiB(o);
  return report(o, merged, rss_before, rss_ready, rss_end);
}

}  // namespace
}  // namespace pigeon::bench

int main(int argc, char** argv) {
  using pigeon::bench::Options;
  Options o;
  CLI::App app{"pigeon-bench: Pigeon's load generator (see bench/RESULTS.md)", "pigeon-bench"};
  app.require_subcommand(1);
  auto common = [&](CLI::App* s) {
    s->add_option("--server", o.servers, "HTTP base URL of a node (repeat for several)")->capture_default_str();
    s->add_option("--transport", o.transport, "tcp (native protocol) or ws (STOMP over WebSocket)")
        ->check(CLI::IsMember({"tcp", "ws"}))
        ->capture_default_str();
    s->add_option("--pid", o.pids, "server pid(s) whose resident memory to report");
    s->add_flag("--cluster", o.cluster,
                "the --server URLs are API nodes of one cluster: fanout and storm spread their "
                "members over them (each login goes to the gateway its node's balancer picks)");
    s->add_option("--sources", o.sources, "connect from 127.0.0.2 … 127.0.0.(N+1) (0: 127.0.0.1)")->capture_default_str();
    s->add_option("--processes", o.processes, "worker processes sharing the connections")
        ->check(CLI::Range(1, 64))
        ->capture_default_str();
    s->add_option("--prefix", o.prefix, "user name prefix (default: unique per run)");
    s->add_option("--size", o.size, "message body bytes (at least the ~40-byte header)")->capture_default_str();
    s->add_option("--setup-threads", o.setup_threads, "HTTP connections for set-up")->capture_default_str();
  };
  auto* idle = app.add_subcommand("idle", "N connections logged in and subscribed, held for T seconds");
  common(idle);
  idle->add_option("--connections", o.connections)->capture_default_str();
  idle->add_option("--hold", o.hold, "seconds")->capture_default_str();
  idle->add_option("--devices-per-user", o.devices_per_user)->capture_default_str();
  auto* pairs = app.add_subcommand("pairs", "P sender/receiver pairs, at most W messages in flight each");
  common(pairs);
  pairs->add_option("--pairs", o.pairs)->capture_default_str();
  pairs->add_option("--window", o.window)->capture_default_str();
  pairs->add_option("--duration", o.duration, "seconds")->capture_default_str();
  auto* fanout = app.add_subcommand("fanout", "a group of M online members and K publishers");
  common(fanout);
  fanout->add_option("--members", o.members)->check(CLI::Range(1, 1000))->capture_default_str();
  fanout->add_option("--publishers", o.publishers)->capture_default_str();
  fanout->add_option("--window", o.window, "messages in flight per publisher")->capture_default_str();
  fanout->add_option("--duration", o.duration, "seconds")->capture_default_str();
  auto* storm = app.add_subcommand("storm", "N offline devices with K messages each reconnect at once");
  common(storm);
  storm->add_option("--devices", o.devices)->capture_default_str();
  storm->add_option("--messages", o.messages)->capture_default_str();
  storm->add_option("--timeout", o.timeout, "seconds to wait for the resync")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  o.scenario = app.get_subcommands().front()->get_name();
  try {
    return pigeon::bench::run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pigeon-bench: %s\n", e.what());
    return 2;
  }
}
