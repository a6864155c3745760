// Retention requests (hold, release, minimum retention, prune, gc) and the
// daemon's control channel that carries them (docs/retention.md).
//
// The daemon is the only writer of a mounted store, so the retention tools
// (snapfs-prune, snapfs-hold) cannot open it themselves while it runs. The
// daemon serves a Unix socket STORE/daemon.sock (mode 0600, inside the 0700
// store folder) and answers only the store folder's owner or root (checked
// with SO_PEERCRED). Nothing of it is reachable through the mount: a process
// that can only write into the mount cannot shorten history.
//
// Protocol: one request per connection, one JSON object on one line each way:
//   -> {"op": "hold", "when": "s12", "until_ns": 0, "reason": "..."}
//   <- {"ok": true, "hold": {...}}   or   {"ok": false, "code": N, "error": "..."}
// ops: holds, hold, release {id}, set-min-retention {ns}, prune {rules:
// {keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly,
// keep_within_ns}, dry_run}, gc, settle (Store::SettleAll, then GC if anything
// was settled). `code` is a store::Code.
//
// On an unmounted store the tools open it read-write and run the same
// ExecuteRequest() in their own process, so both paths do exactly the same.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "store/retention.h"
#include "store/status.h"
#include "store/store.h"

namespace snapfs::tools {

// STORE/daemon.sock.
std::string ControlSocketPath(const std::string& store_path);

// Carries out one request on `store` (opened read-write) at `now_ns` and
// returns the response object (never throws for bad input: a malformed
// request is {"ok": false, "code": kInvalid, ...}).
nlohmann::json ExecuteRequest(store::Store& store, const nlohmann::json& request, int64_t now_ns);

// The rules of a prune request, and back.
nlohmann::json RulesToJson(const store::RetentionRules& rules);
Result<store::RetentionRules> RulesFromJson(const nlohmann::json& j);

// How SendRequest went.
struct RequestRoute {
  bool via_daemon = false;   // The daemon's socket answered.
  bool open_failed = false;  // No daemon, and opening the store here failed.
};

// Sends `request` to the daemon serving `store_path` if one runs (its socket
// answers), else opens the store read-write and executes it here. Errors:
// the response's error as a Status (e.g. kInvalid, kNotFound for a refused
// request; kPermission when the daemon refuses the caller or the socket is
// not ours), or, with route->open_failed, Store::Open's (kBusy: in use and
// no daemon socket; kNotFound, kInvalid: no store).
Result<nlohmann::json> SendRequest(const std::string& store_path, const nlohmann::json& request,
                                   RequestRoute* route);

// The exit code (tools/exit_codes.h) of a failed SendRequest: the store's
// codes when opening it failed or it is damaged, else 1 (runtime: refused,
// no such hold or state, a lower minimum retention, I/O).
int ExitCodeForRequest(const Status& st, const RequestRoute& route);

// The daemon side: serves the socket on a thread, and prunes automatically
// every `auto_prune_interval_ns` if `auto_prune` has rules (mount options
// keep_daily=N, ...; logged). Destroying it stops the thread, removes the
// socket and runs the guard once more (Store::CheckGuard), so call it after
// the Vfs committed everything and before the store closes.
class ControlServer {
 public:
  struct Options {
    store::RetentionRules auto_prune;            // Empty: no automatic pruning.
    int64_t auto_prune_interval_ns = 3'600'000'000'000;  // 1 h.
  };
  // Errors: kIo (socket, bind, listen), kInvalid (the path is too long for a
  // Unix socket).
  static Result<std::unique_ptr<ControlServer>> Start(store::Store* store,
                                                      const std::string& store_path,
                                                      const Options& options);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

 private:
  struct Impl;
  explicit ControlServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace snapfs::tools
