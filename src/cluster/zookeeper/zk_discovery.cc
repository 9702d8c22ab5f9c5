#include "cluster/zookeeper/zk_discovery.h"

#include <fmt/format.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <zookeeper/zookeeper.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include "base/snowflake.h"

namespace pigeon::cluster {
namespace {

using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// How soon a round that failed while connected (a lost reply, a race with another node) is
// tried again; events and the periodic tick wake the thread otherwise.
constexpr auto kRetryDelay = 200ms;

// The C client's own log lines (mostly connection attempts) at debug level: the discovery logs
// the state changes that matter itself.
void logFromClient(const char* message) {
  spdlog::debug("zookeeper client: {}", message);
}

// "host:port[,host:port…]", each port 1–65535.
bool validHosts(std::string_view hosts) {
  if (hosts.empty()) return false;
  while (true) {
    const auto comma = hosts.find(',');
    const std::string_view entry = hosts.substr(0, comma);
    const auto colon = entry.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    const std::string_view port = entry.substr(colon + 1);
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
      return false;
    }
    if (comma == std::string_view::npos) return true;
    hosts.remove_prefix(comma + 1);
  }
}

Result<void> validateOptions(const ZkDiscoveryOptions& o) {
  if (!validHosts(o.hosts)) {
    return fail(Errc::BadRequest,
                "zookeeper hosts: expected host:port[,host:port…], got '" + o.hosts + "'");
  }
  if (o.root.size() < 2 || o.root.front() != '/' || o.root.back() == '/' ||
      o.root.find("//") != std::string::npos) {
    return fail(Errc::BadRequest,
                "zookeeper root: expected an absolute path like /pigeon, got '" + o.root + "'");
  }
  if (auto id = validateNodeId(o.self.id); !id) return id;
  if (o.session_timeout <= 0ms || o.update_interval <= 0ms || o.start_timeout <= 0ms) {
    return fail(Errc::BadRequest, "zookeeper discovery: timeouts and intervals must be positive");
  }
  return {};
}

// Owns what zoo_get_children fills in.
struct Children {
  String_vector v{};
  Children() = default;
  Children(const Children&) = delete;
  Children& operator=(const Children&) = delete;
  ~Children() { deallocate_String_vector(&v); }
};

// Errors the session state machine recovers from by itself: not worth a warning.
bool isConnectionError(int rc) {
  return rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT || rc == ZSESSIONEXPIRED ||
         rc == ZINVALIDSTATE || rc == ZCLOSING;
}

}  // namespace

// Threads: the discovery thread (run) owns the handle and every member marked "thread"; the C
// client's threads only call onEvent; API callers only read the members guarded by mu.
struct ZkDiscovery::Impl {
  explicit Impl(ZkDiscoveryOptions o);
  ~Impl();

  // The C client's watcher (its event thread): records what changed and wakes the thread.
  static void onEvent(zhandle_t* zh, int type, int state, const char* path, void* context);

  bool openSession();
  bool waitReady();
  void run();
  bool step(SteadyClock::time_point now, bool tick);
  bool registerSelf();
  bool claimWorker();
  bool refresh();
  int readRecord(const std::string& name);
  bool publishConnections();
  void leave();

  void grant(std::uint32_t worker_id);
  void revoke(std::string_view why);
  std::optional<std::uint32_t> currentWorker() const;
  void setConnected(bool now_connected);
  bool check(int rc, std::string_view what, const std::string& path);
  std::string workerPath(std::uint32_t n) const { return workers_path + "/" + std::to_string(n); }
  // How long the thread waits, disconnected, before giving up the worker id: see step().
  std::chrono::milliseconds revokeAfter() const { return negotiated_timeout / 3; }

  const ZkDiscoveryOptions options;
  const std::string nodes_path, nodes_prefix, workers_path, self_path;
  std::vector<std::string> persistent_paths;  // root's ancestors, root, nodes, workers
  Gauge* nodes_gauge = nullptr;
  Counter* sessions_total = nullptr;
  Gauge* connected_gauge = nullptr;

  // What the watches said changed since the last refresh.
  struct Pending {
    bool children = false;        // the list of <root>/nodes
    bool all = false;             // every record (after a reconnection or a failed refresh)
    std::set<std::string> names;  // these records' data
  };

  mutable std::mutex mu;
  std::condition_variable wake_cv;      // the thread waits on it
  std::condition_variable ready_cv;     // start() waits on it
  bool stopping = false;                // guarded by mu
  bool woken = false;                   // guarded by mu
  bool ready = false;                   // guarded by mu: registered, with a worker id, listed
  std::string last_error;               // guarded by mu: for start()'s message
  Pending pending;                      // guarded by mu
  std::vector<NodeInfo> snapshot;       // guarded by mu
  std::uint64_t connections = 0;        // guarded by mu: as set by the application
  std::optional<std::uint32_t> worker;  // guarded by mu (written by the thread only)

  struct Record {
    std::int64_t mzxid = 0;
    std::optional<NodeInfo> node;  // nullopt: malformed (warned about once per version)
  };
  zhandle_t* zh = nullptr;   // thread
  std::int64_t session = 0;  // thread: the session the state below belongs to
  std::chrono::milliseconds negotiated_timeout{0};            // thread
  bool connected = false;                                     // thread
  std::optional<SteadyClock::time_point> disconnected_since;  // thread
  bool registered = false;      // thread: <root>/nodes/<id> exists in this session
  std::uint64_t published = 0;  // thread: the connection count in that znode
  // thread: the worker znode created in this session, or perhaps created (a create whose reply
  // was lost): checked before it is granted again or deleted.
  std::optional<std::uint32_t> claimed;
  std::map<std::string, Record> records;  // thread: child name (= node id) → its record
  std::thread thread;
};

ZkDiscovery::Impl::Impl(ZkDiscoveryOptions o)
    : options(std::move(o)),
      nodes_path(options.root + "/nodes"),
      nodes_prefix(nodes_path + "/"),
      workers_path(options.root + "/workers"),
      self_path(nodes_prefix + options.self.id),
      negotiated_timeout(options.session_timeout) {
  for (std::size_t slash = options.root.find('/', 1); slash != std::string::npos;
       slash = options.root.find('/', slash + 1)) {
    persistent_paths.push_back(options.root.substr(0, slash));
  }
  persistent_paths.insert(persistent_paths.end(), {options.root, nodes_path, workers_path});
  connections = options.self.connections;
  if (options.metrics) {
    nodes_gauge = &options.metrics->gauge("pigeon_cluster_nodes",
                                          "Live nodes of the cluster, as discovery sees them.");
    sessions_total = &options.metrics->counter("pigeon_zookeeper_sessions_total",
                                               "ZooKeeper sessions established.");
    connected_gauge = &options.metrics->gauge(
        "pigeon_zookeeper_connected", "Whether the ZooKeeper session is connected (1) or not (0).");
  }
}

ZkDiscovery::Impl::~Impl() {
  {
    std::lock_guard lock(mu);
    stopping = true;
  }
  wake_cv.notify_all();
  if (thread.joinable()) thread.join();  // the thread leaves and closes the session
  if (zh) zookeeper_close(zh);           // never started
}

void ZkDiscovery::Impl::onEvent(zhandle_t*, int type, int, const char* path, void* context) {
  auto* self = static_cast<Impl*>(context);
  const std::string_view p = path ? path : "";
  {
    std::lock_guard lock(self->mu);
    if (type == ZOO_CHILD_EVENT && p == self->nodes_path) {
      self->pending.children = true;
    } else if ((type == ZOO_CHANGED_EVENT || type == ZOO_DELETED_EVENT) &&
               p.starts_with(self->nodes_prefix)) {
      self->pending.names.emplace(p.substr(self->nodes_prefix.size()));
    } else if (type == ZOO_NOTWATCHING_EVENT) {
      self->pending.children = self->pending.all = true;
    }
    // Session events (connected, connecting, expired) only wake the thread: it reads the state.
    self->woken = true;
  }
  self->wake_cv.notify_one();
}

bool ZkDiscovery::Impl::openSession() {
  zh = zookeeper_init2(options.hosts.c_str(), &Impl::onEvent, int(options.session_timeout.count()),
                       nullptr, this, 0, &logFromClient);
  if (zh) return true;
  const std::string message = fmt::format("cannot create a ZooKeeper handle for {}: {}",
                                          options.hosts, std::strerror(errno));
  spdlog::warn("zookeeper discovery: {}", message);
  std::lock_guard lock(mu);
  last_error = message;
  return false;
}

bool ZkDiscovery::Impl::waitReady() {
  std::unique_lock lock(mu);
  return ready_cv.wait_for(lock, options.start_timeout, [&] { return ready; });
}

void ZkDiscovery::Impl::run() {
  pthread_setname_np(pthread_self(), "zk-discovery");
  auto next_tick = SteadyClock::now();
  while (true) {
    auto wake_at = next_tick;
    if (disconnected_since && currentWorker()) {
      wake_at = std::min(wake_at, *disconnected_since + revokeAfter());
    }
    {
      std::unique_lock lock(mu);
      wake_cv.wait_until(lock, wake_at, [&] { return stopping || woken; });
      if (stopping) break;
      woken = false;
    }
    const auto now = SteadyClock::now();
    const bool tick = now >= next_tick;
    if (tick) next_tick = now + options.update_interval;
    if (step(now, tick)) {
      std::lock_guard lock(mu);
      if (!ready) {
        ready = true;
        ready_cv.notify_all();
      }
    } else if (connected) {
      next_tick = std::min(next_tick, now + kRetryDelay);
    }
  }
  leave();
}

// One round: recover the session, then register, claim, refresh and publish what is due.
// True when all of it is done (registered, holding a worker id, the list read).
bool ZkDiscovery::Impl::step(SteadyClock::time_point now, bool tick) {
  if (!zh && !openSession()) return false;
  const int state = zoo_state(zh);
  if (state == ZOO_EXPIRED_SESSION_STATE || state == ZOO_AUTH_FAILED_STATE) {
    // The server dropped the session, and with it our znodes: another node may hold our worker
    // id already. Start over in a new session; its connection event wakes the thread.
    spdlog::warn("zookeeper discovery: session {:#x} {}, starting a new one", session,
                 state == ZOO_EXPIRED_SESSION_STATE ? "expired" : "failed authentication");
    revoke("the ZooKeeper session expired");
    zookeeper_close(zh);
    zh = nullptr;
    setConnected(false);
    if (!disconnected_since) disconnected_since = now;
    registered = false;
    claimed.reset();
    openSession();
    return false;
  }
  if (state != ZOO_CONNECTED_STATE) {
    setConnected(false);
    if (!disconnected_since) disconnected_since = now;
    // The server expires a session `timeout` after it last heard from the client, and the C
    // client notices a silent server only 2/3 of the timeout after it last heard from it. So
    // once we have seen the connection down for timeout/3, the session may be gone and our
    // worker id given to another node: stop using it until we know (see claimWorker).
    if (now - *disconnected_since >= revokeAfter()) {
      revoke("disconnected from ZooKeeper for too long");
    }
    return false;
  }
  disconnected_since.reset();
  if (const std::int64_t id = zoo_client_id(zh)->client_id; id != session) {
    revoke("a new ZooKeeper session");  // no-op unless the old session had one
    session = id;
    negotiated_timeout = std::chrono::milliseconds(zoo_recv_timeout(zh));
    registered = false;
    claimed.reset();
    if (sessions_total) sessions_total->inc();
    spdlog::info("zookeeper discovery: session {:#x} established (timeout {} ms)", id,
                 negotiated_timeout.count());
  }
  if (!connected) {
    setConnected(true);
    // Watches fired while we were away may have been missed: read everything again.
    std::lock_guard lock(mu);
    pending.children = pending.all = true;
  }
  if (!registered && !registerSelf()) return false;
  if (!currentWorker() && !claimWorker()) return false;
  if (!refresh()) return false;
  if (tick && !publishConnections()) return false;
  return true;
}

bool ZkDiscovery::Impl::registerSelf() {
  for (const auto& path : persistent_paths) {
    // Every node creates the parents it misses; another node may create one first.
    const int rc =
        zoo_create(zh, path.c_str(), nullptr, -1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, nullptr, 0);
    if (rc != ZNODEEXISTS && !check(rc, "create", path)) return false;
  }
  NodeInfo me = options.self;
  {
    std::lock_guard lock(mu);
    me.connections = connections;
  }
  const std::string json = toJson(me);
  int rc = zoo_create(zh, self_path.c_str(), json.data(), int(json.size()), &ZOO_OPEN_ACL_UNSAFE,
                      ZOO_EPHEMERAL, nullptr, 0);
  if (rc == ZNODEEXISTS) {
    // Ours when an earlier create's reply was lost. Node ids are unique per process, so a
    // znode of another session means a second process runs with our id: leave it alone and
    // try again later (it goes when that session ends).
    Stat stat{};
    rc = zoo_exists(zh, self_path.c_str(), 0, &stat);
    if (rc == ZOK && stat.ephemeralOwner != session) {
      return check(ZNODEEXISTS, "register (the id is in use by another session)", self_path);
    }
    if (rc == ZOK) rc = zoo_set(zh, self_path.c_str(), json.data(), int(json.size()), -1);
  }
  if (!check(rc, "register", self_path)) return false;
  registered = true;
  published = me.connections;
  spdlog::info("zookeeper discovery: registered {}", self_path);
  std::lock_guard lock(mu);
  pending.children = true;
  return true;
}

// Worker ids are the names of ephemeral znodes <root>/workers/<n>, n in 0..kMaxWorker, holding
// the owner's node id. ZooKeeper creates a path at most once, so the create that succeeds is the
// exclusive claim on that id, and the end of the owner's session frees it: no two live sessions
// hold one id. We list the taken ids and create the lowest free one (ZNODEEXISTS: another node
// was faster, take the next). Ephemeral *sequential* tickets were considered: the sequence only
// grows (past 1023 after as many claims), so an id would still need a uniquely named znode and
// the ticket would add a round trip and nothing else.
bool ZkDiscovery::Impl::claimWorker() {
  if (claimed) {
    // Held since before a disconnection that the session survived, or perhaps created by a
    // create whose reply was lost: ours only if this session owns it.
    const std::string path = workerPath(*claimed);
    Stat stat{};
    const int rc = zoo_exists(zh, path.c_str(), 0, &stat);
    if (rc == ZOK && stat.ephemeralOwner == session) {
      grant(*claimed);
      return true;
    }
    if (rc != ZOK && rc != ZNONODE) return check(rc, "check worker id", path);
    claimed.reset();
  }
  Children children;
  if (!check(zoo_get_children(zh, workers_path.c_str(), 0, &children.v), "list", workers_path)) {
    return false;
  }
  std::vector<bool> taken(Snowflake::kMaxWorker + 1);
  for (std::int32_t i = 0; i < children.v.count; ++i) {
    const std::string_view name = children.v.data[i];
    std::uint32_t n = 0;
    const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), n);
    if (ec == std::errc() && end == name.data() + name.size() && n <= Snowflake::kMaxWorker) {
      taken[n] = true;
    }
  }
  for (std::uint32_t n = 0; n <= Snowflake::kMaxWorker; ++n) {
    if (taken[n]) continue;
    const std::string path = workerPath(n);
    const int rc = zoo_create(zh, path.c_str(), options.self.id.data(), int(options.self.id.size()),
                              &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, nullptr, 0);
    if (rc == ZOK) {
      claimed = n;
      grant(n);
      return true;
    }
    if (rc == ZNODEEXISTS) continue;
    if (rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT) claimed = n;  // it may exist: see above
    return check(rc, "claim worker id", path);
  }
  spdlog::warn("zookeeper discovery: all {} worker ids are taken", Snowflake::kMaxWorker + 1);
  std::lock_guard lock(mu);
  last_error = "all worker ids are taken";
  return false;
}

// Applies what the watches reported: the list of <root>/nodes and the records that changed
// (each read sets its data watch again), then publishes the snapshot.
bool ZkDiscovery::Impl::refresh() {
  Pending todo;
  {
    std::lock_guard lock(mu);
    todo = std::exchange(pending, {});
  }
  if (!todo.children && !todo.all && todo.names.empty()) return true;
  auto retryAll = [&] {
    std::lock_guard lock(mu);
    pending.children = pending.all = true;
  };

  std::vector<std::string> to_read;
  if (todo.children || todo.all) {
    Children children;
    if (!check(zoo_get_children(zh, nodes_path.c_str(), 1, &children.v), "list", nodes_path)) {
      retryAll();
      return false;
    }
    std::map<std::string, Record> kept;
    for (std::int32_t i = 0; i < children.v.count; ++i) {
      std::string name = children.v.data[i];
      auto old = records.find(name);
      const bool known = old != records.end();
      if (!known || todo.all || todo.names.contains(name)) to_read.push_back(name);
      // A record read again keeps its old version for now, so a malformed one is warned once.
      if (known) kept.emplace(std::move(name), std::move(old->second));
    }
    records = std::move(kept);  // the nodes that left are dropped
  } else {
    to_read.assign(todo.names.begin(), todo.names.end());
  }
  for (const auto& name : to_read) {
    const int rc = readRecord(name);
    if (rc == ZNONODE) {
      records.erase(name);  // it left meanwhile
    } else if (!check(rc, "read", nodes_prefix + name)) {
      retryAll();
      return false;
    }
  }

  std::vector<NodeInfo> live;
  for (const auto& [name, record] : records) {
    if (record.node) live.push_back(*record.node);
  }
  if (nodes_gauge) nodes_gauge->set(std::int64_t(live.size()));
  {
    std::lock_guard lock(mu);
    snapshot = std::move(live);
  }
  if (registered && !records.contains(options.self.id)) {
    // Someone deleted our znode: register again (the next round, now).
    spdlog::warn("zookeeper discovery: {} was deleted, registering again", self_path);
    registered = false;
    return false;
  }
  return true;
}

// Reads one record and sets its data watch. Returns the ZooKeeper code.
int ZkDiscovery::Impl::readRecord(const std::string& name) {
  const std::string path = nodes_prefix + name;
  std::string data(1024, '\0');
  Stat stat{};
  while (true) {
    int len = int(data.size());
    const int rc = zoo_get(zh, path.c_str(), 1, data.data(), &len, &stat);
    if (rc != ZOK) return rc;
    if (stat.dataLength > len) {  // truncated: read again with room for all of it
      data.resize(std::size_t(stat.dataLength));
      continue;
    }
    data.resize(std::size_t(std::max(len, 0)));
    break;
  }
  Record& record = records[name];
  const bool seen = record.mzxid == stat.mzxid;
  record.mzxid = stat.mzxid;
  auto node = nodeFromJson(data);
  if (node && node->id == name) {
    record.node = std::move(*node);
  } else {
    record.node.reset();
    if (!seen) {
      spdlog::warn("zookeeper discovery: skipping {}: {}", path,
                   node ? "its id differs from the znode's name" : node.error().message);
    }
  }
  return ZOK;
}

bool ZkDiscovery::Impl::publishConnections() {
  NodeInfo me = options.self;
  {
    std::lock_guard lock(mu);
    me.connections = connections;
  }
  if (me.connections == published) return true;
  const std::string json = toJson(me);
  const int rc = zoo_set(zh, self_path.c_str(), json.data(), int(json.size()), -1);
  if (rc == ZNONODE) registered = false;  // deleted by someone: registered again next round
  if (!check(rc, "update", self_path)) return false;
  published = me.connections;
  return true;
}

// A clean leave: the others see this node go at once rather than when the session ends. Only
// znodes this session owns are deleted (a worker id whose create failed may be another's now).
void ZkDiscovery::Impl::leave() {
  if (!zh) return;
  if (zoo_state(zh) == ZOO_CONNECTED_STATE && zoo_client_id(zh)->client_id == session) {
    std::vector<std::string> ours;
    if (registered) ours.push_back(self_path);
    if (claimed) ours.push_back(workerPath(*claimed));
    for (const auto& path : ours) {
      Stat stat{};
      if (zoo_exists(zh, path.c_str(), 0, &stat) == ZOK && stat.ephemeralOwner == session) {
        zoo_delete(zh, path.c_str(), stat.version);
      }
    }
  }
  zookeeper_close(zh);  // ends the session, which would remove the ephemeral znodes anyway
  zh = nullptr;
  setConnected(false);
}

void ZkDiscovery::Impl::grant(std::uint32_t worker_id) {
  {
    std::lock_guard lock(mu);
    if (worker == worker_id) return;
    worker = worker_id;
  }
  spdlog::info("zookeeper discovery: node {} holds worker id {}", options.self.id, worker_id);
  if (options.on_worker_id) options.on_worker_id(worker_id);
}

void ZkDiscovery::Impl::revoke(std::string_view why) {
  {
    std::lock_guard lock(mu);
    if (!worker) return;
    worker.reset();
  }
  spdlog::warn("zookeeper discovery: node {} gives up its worker id: {}", options.self.id, why);
  if (options.on_worker_id) options.on_worker_id(std::nullopt);
}

std::optional<std::uint32_t> ZkDiscovery::Impl::currentWorker() const {
  std::lock_guard lock(mu);
  return worker;
}

void ZkDiscovery::Impl::setConnected(bool now_connected) {
  connected = now_connected;
  if (connected_gauge) connected_gauge->set(now_connected ? 1 : 0);
}

bool ZkDiscovery::Impl::check(int rc, std::string_view what, const std::string& path) {
  if (rc == ZOK) return true;
  std::string message = fmt::format("{} {}: {}", what, path, zerror(rc));
  if (isConnectionError(rc)) {
    spdlog::debug("zookeeper discovery: {}", message);
  } else {
    spdlog::warn("zookeeper discovery: {}", message);
  }
  std::lock_guard lock(mu);
  last_error = std::move(message);
  return false;
}

Result<std::unique_ptr<ZkDiscovery>> ZkDiscovery::start(ZkDiscoveryOptions options) {
  if (auto valid = validateOptions(options); !valid) return std::unexpected(valid.error());
  auto impl = std::make_unique<Impl>(std::move(options));
  if (!impl->openSession()) {
    return fail(Errc::Unavailable, "zookeeper discovery: " + impl->last_error);
  }
  impl->thread = std::thread([p = impl.get()] { p->run(); });
  if (!impl->waitReady()) {
    std::string why;
    {
      std::lock_guard lock(impl->mu);
      why = impl->last_error.empty() ? "no connection" : impl->last_error;
    }
    return fail(Errc::Unavailable,
                fmt::format("zookeeper discovery: not registered at {} within {} ms ({})",
                            impl->options.hosts, impl->options.start_timeout.count(), why));
  }
  return std::unique_ptr<ZkDiscovery>(new ZkDiscovery(std::move(impl)));
}

ZkDiscovery::ZkDiscovery(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ZkDiscovery::~ZkDiscovery() = default;

std::vector<NodeInfo> ZkDiscovery::nodes() const {
  std::lock_guard lock(impl_->mu);
  return impl_->snapshot;
}

void ZkDiscovery::setConnections(std::uint64_t connections) {
  std::lock_guard lock(impl_->mu);
  impl_->connections = connections;
}

std::optional<std::uint32_t> ZkDiscovery::workerId() const {
  return impl_->currentWorker();
}

}  // namespace pigeon::cluster
