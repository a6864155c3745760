#include "tools/control.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "fs/log.h"
#include "tools/exit_codes.h"
#include "store/when.h"

namespace snapfs::tools {
namespace {

using nlohmann::json;

constexpr size_t kMaxMessage = 1 << 20;

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json Error(const Status& st) {
  return {{"ok", false}, {"code", static_cast<int>(st.code())}, {"error", st.message()}};
}

void PutTimeField(json& j, const std::string& key, int64_t ns) {
  j[key + "_ns"] = ns;
  j[key] = store::FormatIsoTime(ns);
}

json HoldJson(const store::HoldRecord& h, int64_t now_ns) {
  json j = {{"id", h.id},
            {"state", "s" + std::to_string(h.state)},
            {"state_id", h.state},
            {"kind", h.kind == store::HoldKind::kGuard ? "guard" : "user"},
            {"reason", h.reason},
            {"active", store::HoldActive(h, now_ns)}};
  PutTimeField(j, "created", h.created_ns);
  if (h.until_ns != 0) PutTimeField(j, "until", h.until_ns);
  if (h.released_ns != 0) PutTimeField(j, "released", h.released_ns);
  return j;
}

json PolicyJson(const store::RetentionPolicy& p) {
  return {{"min_retention_ns", p.min_retention_ns},
          {"min_retention", store::FormatDuration(p.min_retention_ns)},
          {"guard_share_percent", p.guard_share_percent}};
}

Result<std::vector<store::State>> AllStates(store::Store& store) {
  std::vector<store::State> states;
  SNAPFS_RETURN_IF_ERROR(store.ListStates(1, [&](const store::State& s) {
    states.push_back(s);
    return true;
  }));
  return states;
}

// The state (its id) that holds the generation WHEN names.
Result<store::Generation> StateOf(store::Store& store, const std::string& when, int64_t now_ns) {
  SNAPFS_ASSIGN_OR_RETURN(store::WhenSpec spec, store::ParseWhen(when));
  SNAPFS_ASSIGN_OR_RETURN(store::Generation g, store::ResolveWhen(store, spec, now_ns));
  SNAPFS_ASSIGN_OR_RETURN(std::vector<store::State> states, AllStates(store));
  for (const store::State& s : states)
    if (s.first_gen <= g && g <= s.last_gen) return s.first_gen;
  return Status::NotFound(when + " (g" + std::to_string(g) + ") lies in no state");
}

json GcJson(const store::GcStats& g) {
  return {{"chunks_live", g.chunks_live},         {"chunks_deleted", g.chunks_deleted},
          {"chunks_rescued", g.chunks_rescued},   {"packs_deleted", g.packs_deleted},
          {"packs_rewritten", g.packs_rewritten}, {"bytes_copied", g.bytes_copied},
          {"pack_bytes_before", g.pack_bytes_before}, {"pack_bytes_after", g.pack_bytes_after}};
}

Result<json> Prune(store::Store& store, const json& req, int64_t now_ns) {
  SNAPFS_ASSIGN_OR_RETURN(store::RetentionRules rules, RulesFromJson(req.value("rules", json::object())));
  const bool dry_run = req.value("dry_run", true);
  SNAPFS_ASSIGN_OR_RETURN(std::vector<store::State> states, AllStates(store));
  SNAPFS_ASSIGN_OR_RETURN(std::vector<store::HoldRecord> holds, store.ListHolds());
  SNAPFS_ASSIGN_OR_RETURN(store::RetentionPolicy policy, store.GetRetentionPolicy());
  SNAPFS_ASSIGN_OR_RETURN(std::vector<store::StateDecision> plan,
                          store::PlanRetention(states, holds, policy, rules, now_ns));
  json rows = json::array();
  std::vector<store::Generation> drop;
  uint64_t estimate = 0;
  for (const store::StateDecision& d : plan) {
    json row = {{"id", "s" + std::to_string(d.state.first_gen)}, {"first_gen", d.state.first_gen},
                {"last_gen", d.state.last_gen},  {"keep", d.keep},
                {"reasons", d.reasons},          {"held", d.held},
                {"guarded", d.guarded},          {"bytes_stored", d.state.bytes_stored}};
    PutTimeField(row, "start", d.state.start_ns);
    PutTimeField(row, "end", d.state.end_ns);
    rows.push_back(std::move(row));
    if (!d.keep) {
      drop.push_back(d.state.first_gen);
      estimate += d.state.bytes_stored;
    }
  }
  json out = {{"ok", true},           {"dry_run", dry_run},
              {"states", rows},       {"dropped", drop.size()},
              {"kept", plan.size() - drop.size()},
              {"dropped_bytes_stored", estimate},
              {"policy", PolicyJson(policy)}};
  if (dry_run) return out;
  if (!drop.empty()) {
    SNAPFS_ASSIGN_OR_RETURN(store::DropStats ds, store.DropStates(drop));
    out["drop"] = {{"states", ds.states},
                   {"inode_versions", ds.inode_versions},
                   {"dirent_versions", ds.dirent_versions},
                   {"extent_pages", ds.extent_pages}};
  }
  SNAPFS_ASSIGN_OR_RETURN(store::GcStats gc, store.CollectGarbage(store::GcOptions{}));
  out["gc"] = GcJson(gc);
  return out;
}

Result<json> Execute(store::Store& store, const json& req, int64_t now_ns) {
  if (!req.is_object() || !req.contains("op") || !req["op"].is_string())
    return Status::Invalid("a request is a JSON object with an \"op\"");
  const std::string op = req["op"];
  if (op == "holds") {
    SNAPFS_ASSIGN_OR_RETURN(std::vector<store::HoldRecord> holds, store.ListHolds());
    SNAPFS_ASSIGN_OR_RETURN(store::RetentionPolicy policy, store.GetRetentionPolicy());
    json list = json::array();
    for (const store::HoldRecord& h : holds) list.push_back(HoldJson(h, now_ns));
    return json{{"ok", true}, {"holds", list}, {"policy", PolicyJson(policy)}};
  }
  if (op == "hold") {
    SNAPFS_ASSIGN_OR_RETURN(store::Generation state,
                            StateOf(store, req.value("when", std::string()), now_ns));
    const int64_t until = req.value("until_ns", int64_t{0});
    if (until != 0 && until <= now_ns) return Status::Invalid("--until is in the past");
    SNAPFS_ASSIGN_OR_RETURN(store::HoldRecord h,
                            store.AddHold(state, until, req.value("reason", std::string())));
    return json{{"ok", true}, {"hold", HoldJson(h, now_ns)}};
  }
  if (op == "release") {
    SNAPFS_ASSIGN_OR_RETURN(store::HoldRecord h, store.ReleaseHold(req.value("id", uint64_t{0})));
    return json{{"ok", true}, {"hold", HoldJson(h, now_ns)}};
  }
  if (op == "set-min-retention") {
    SNAPFS_RETURN_IF_ERROR(store.RaiseMinRetention(req.value("ns", int64_t{-1})));
    SNAPFS_ASSIGN_OR_RETURN(store::RetentionPolicy policy, store.GetRetentionPolicy());
    return json{{"ok", true}, {"policy", PolicyJson(policy)}};
  }
  if (op == "prune") return Prune(store, req, now_ns);
  if (op == "settle") {
    SNAPFS_ASSIGN_OR_RETURN(auto result, store.SettleAll(store::GcOptions{}));
    const store::SettleStats& s = result.first;
    json out = {{"ok", true},
                {"settle", {{"chunks", s.chunks},
                            {"raw_bytes", s.raw_bytes},
                            {"stored_bytes", s.stored_bytes},
                            {"deltas", s.deltas},
                            {"unchanged", s.unchanged},
                            {"damaged", s.damaged},
                            {"done", s.done}}}};
    if (result.second) out["gc"] = GcJson(*result.second);
    return out;
  }
  if (op == "gc") {
    SNAPFS_ASSIGN_OR_RETURN(store::GcStats gc, store.CollectGarbage(store::GcOptions{}));
    return json{{"ok", true}, {"gc", GcJson(gc)}};
  }
  return Status::Invalid("unknown request \"" + op + "\"");
}

Status FromResponse(const json& resp) {
  if (resp.is_object() && resp.value("ok", false)) return Status::Ok();
  if (!resp.is_object() || !resp.contains("code"))
    return Status::Io("the daemon sent a malformed response");
  return Status(static_cast<Code>(resp.value("code", static_cast<int>(Code::kIo))),
                resp.value("error", std::string("(no message)")));
}

// Reads up to '\n' or EOF (at most kMaxMessage bytes).
Result<std::string> ReadLine(int fd) {
  std::string data;
  char buf[4096];
  while (data.size() < kMaxMessage) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno(errno, "control socket");
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
    if (data.find('\n') != std::string::npos) break;
  }
  if (const size_t nl = data.find('\n'); nl != std::string::npos) data.resize(nl);
  return data;
}

Status WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno(errno, "control socket");
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Result<sockaddr_un> SocketAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    return Status::Invalid(path + ": the path is too long for a Unix socket");
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

}  // namespace

std::string ControlSocketPath(const std::string& store_path) { return store_path + "/daemon.sock"; }

json RulesToJson(const store::RetentionRules& r) {
  return {{"keep_last", r.keep_last},       {"keep_hourly", r.keep_hourly},
          {"keep_daily", r.keep_daily},     {"keep_weekly", r.keep_weekly},
          {"keep_monthly", r.keep_monthly}, {"keep_within_ns", r.keep_within_ns}};
}

Result<store::RetentionRules> RulesFromJson(const json& j) {
  if (!j.is_object()) return Status::Invalid("rules must be an object");
  try {
    store::RetentionRules r;
    r.keep_last = j.value("keep_last", 0);
    r.keep_hourly = j.value("keep_hourly", 0);
    r.keep_daily = j.value("keep_daily", 0);
    r.keep_weekly = j.value("keep_weekly", 0);
    r.keep_monthly = j.value("keep_monthly", 0);
    r.keep_within_ns = j.value("keep_within_ns", int64_t{0});
    return r;
  } catch (const json::exception& e) {
    return Status::Invalid(std::string("bad rules: ") + e.what());
  }
}

json ExecuteRequest(store::Store& store, const json& request, int64_t now_ns) {
  try {
    Result<json> r = Execute(store, request, now_ns);
    return r.ok() ? *r : Error(r.status());
  } catch (const json::exception& e) {
    return Error(Status::Invalid(std::string("malformed request: ") + e.what()));
  }
}

Result<json> SendRequest(const std::string& store_path, const json& request,
                         RequestRoute* route) {
  *route = RequestRoute{};
  SNAPFS_ASSIGN_OR_RETURN(sockaddr_un addr, SocketAddress(ControlSocketPath(store_path)));
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno(errno, "socket");
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
    route->via_daemon = true;
    Status st = WriteAll(fd, request.dump() + "\n");
    Result<std::string> line = st.ok() ? ReadLine(fd) : Result<std::string>(st);
    ::close(fd);
    if (!line.ok()) return line.status();
    json resp = json::parse(*line, nullptr, /*allow_exceptions=*/false);
    SNAPFS_RETURN_IF_ERROR(FromResponse(resp));
    return resp;
  }
  const int err = errno;
  ::close(fd);
  if (err == EACCES || err == EPERM)
    return Status(Code::kPermission, ControlSocketPath(store_path) +
                                         ": permission denied (only the store's owner or root "
                                         "may change its retention)");
  // ENOENT: no daemon; ECONNREFUSED: a socket left by a daemon that died;
  // ENOTDIR: the store path is a file. Either way the store is opened here,
  // which says what is wrong (kBusy if something else has it).
  if (err != ENOENT && err != ECONNREFUSED && err != ENOTDIR)
    return Status::FromErrno(err, "connect " + ControlSocketPath(store_path));
  Result<std::unique_ptr<store::Store>> store = store::Store::Open(store_path, store::OpenOptions{});
  if (!store.ok()) {
    route->open_failed = true;
    return store.status();
  }
  json resp = ExecuteRequest(**store, request, Now());
  SNAPFS_RETURN_IF_ERROR(FromResponse(resp));
  return resp;
}

int ExitCodeForRequest(const Status& st, const RequestRoute& route) {
  if (route.open_failed) return ExitCodeForStoreError(st);
  if (st.code() == Code::kCorruption || st.code() == Code::kVersion) return kExitStore;
  return kExitRuntime;
}

// --- The daemon's server --------------------------------------------------

struct ControlServer::Impl {
  store::Store* store = nullptr;
  std::string socket_path;
  uid_t owner = 0;
  Options options;
  int listen_fd = -1;
  int wake[2] = {-1, -1};
  std::thread thread;

  ~Impl() {
    if (thread.joinable()) {
      const char c = 'x';
      while (::write(wake[1], &c, 1) < 0 && errno == EINTR) {
      }
      thread.join();
    }
    if (listen_fd >= 0) {
      ::close(listen_fd);
      ::unlink(socket_path.c_str());
    }
    for (int fd : wake)
      if (fd >= 0) ::close(fd);
  }

  void Run() {
    const bool auto_prune = !options.auto_prune.empty();
    int64_t next_prune = Now();  // The first check right after the mount.
    for (;;) {
      int timeout = -1;
      if (auto_prune) {
        const int64_t wait_ms = std::max<int64_t>(0, (next_prune - Now()) / 1'000'000);
        timeout = static_cast<int>(std::min<int64_t>(wait_ms, 3'600'000));
      }
      pollfd fds[2] = {{listen_fd, POLLIN, 0}, {wake[0], POLLIN, 0}};
      const int n = ::poll(fds, 2, timeout);
      if (n < 0 && errno != EINTR) {
        fs::LogError("control socket: poll: %s", std::strerror(errno));
        return;
      }
      if (fds[1].revents != 0) return;
      if (n > 0 && (fds[0].revents & POLLIN) != 0) Accept();
      if (auto_prune && Now() >= next_prune) {
        AutoPrune();
        next_prune = Now() + options.auto_prune_interval_ns;
      }
    }
  }

  void Accept() {
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    timeval tv{5, 0};  // A client that sends nothing cannot block the daemon's channel.
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ucred cred{};
    socklen_t len = sizeof cred;
    json resp;
    // The request is read before the caller is checked: closing a Unix
    // socket with unread data resets the connection, and the refusal would
    // never reach the caller.
    Result<std::string> line = ReadLine(fd);
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      resp = Error(Status::FromErrno(errno, "SO_PEERCRED"));
    } else if (cred.uid != 0 && cred.uid != owner) {
      fs::LogWarning("control socket: refused uid %u (pid %d): not the store's owner",
                     static_cast<unsigned>(cred.uid), static_cast<int>(cred.pid));
      resp = Error(Status(Code::kPermission, "only the store's owner (uid " +
                                                 std::to_string(owner) +
                                                 ") or root may use the control socket"));
    } else {
      if (!line.ok()) {
        resp = Error(line.status());
      } else {
        json req = json::parse(*line, nullptr, /*allow_exceptions=*/false);
        resp = ExecuteRequest(*store, req, Now());
        const std::string op = req.is_object() ? req.value("op", std::string("?")) : "?";
        if (op != "holds" && !(op == "prune" && req.value("dry_run", true)))
          fs::LogInfo("control: uid %u: %s: %s", static_cast<unsigned>(cred.uid), op.c_str(),
                      resp.value("ok", false) ? "done"
                                              : resp.value("error", std::string()).c_str());
      }
    }
    if (Status st = WriteAll(fd, resp.dump() + "\n"); !st.ok())
      fs::LogWarning("control socket: %s", st.message().c_str());
    ::close(fd);
  }

  void AutoPrune() {
    json req = {{"op", "prune"}, {"rules", RulesToJson(options.auto_prune)}, {"dry_run", false}};
    json resp = ExecuteRequest(*store, req, Now());
    if (!resp.value("ok", false)) {
      fs::LogError("automatic prune: %s", resp.value("error", std::string()).c_str());
      return;
    }
    if (resp.value("dropped", 0) == 0) return;
    std::string ids;
    for (const json& s : resp["states"])
      if (!s.value("keep", true)) ids += (ids.empty() ? "" : " ") + s.value("id", std::string());
    const json gc = resp.value("gc", json::object());
    fs::LogInfo("automatic prune: dropped %d states (%s); packs %llu -> %llu bytes",
                resp.value("dropped", 0), ids.c_str(),
                static_cast<unsigned long long>(gc.value("pack_bytes_before", uint64_t{0})),
                static_cast<unsigned long long>(gc.value("pack_bytes_after", uint64_t{0})));
  }
};

ControlServer::ControlServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ControlServer::~ControlServer() {
  store::Store* store = impl_->store;
  impl_.reset();  // Stops the thread and removes the socket first.
  // The newest state may have shrunk the tree and not be closed by a commit
  // before the next mount: run the guard now (it logs through the listener).
  Result<std::optional<store::HoldRecord>> guard = store->CheckGuard();
  if (!guard.ok()) fs::LogError("guard: %s", guard.status().message().c_str());
}

Result<std::unique_ptr<ControlServer>> ControlServer::Start(store::Store* store,
                                                            const std::string& store_path,
                                                            const Options& options) {
  auto impl = std::make_unique<Impl>();
  impl->store = store;
  impl->options = options;
  impl->socket_path = ControlSocketPath(store_path);
  struct stat st {};
  if (::stat(store_path.c_str(), &st) != 0) return Status::FromErrno(errno, store_path);
  impl->owner = st.st_uid;
  SNAPFS_ASSIGN_OR_RETURN(sockaddr_un addr, SocketAddress(impl->socket_path));
  if (::pipe2(impl->wake, O_CLOEXEC) != 0) return Status::FromErrno(errno, "pipe");
  impl->listen_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (impl->listen_fd < 0) return Status::FromErrno(errno, "socket");
  // We hold the store's lock, so a socket left here is a dead daemon's.
  ::unlink(impl->socket_path.c_str());
  if (::bind(impl->listen_fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    ::close(impl->listen_fd);
    impl->listen_fd = -1;
    return Status::FromErrno(err, "bind " + impl->socket_path);
  }
  if (::chmod(impl->socket_path.c_str(), 0600) != 0 || ::listen(impl->listen_fd, 16) != 0)
    return Status::FromErrno(errno, impl->socket_path);
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->Run(); });
  return std::unique_ptr<ControlServer>(new ControlServer(std::move(impl)));
}

}  // namespace snapfs::tools
