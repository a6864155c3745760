// snapfs: create a store, or mount one.
//
//   snapfs --init STORE [--zstd-level N] [--state-gap DURATION]
//   snapfs --settle STORE
//   snapfs [-f] [-d] [-o OPT[,OPT...]]... [--ready-fd N] STORE MOUNTPOINT
//
// Also the mount helper behind an fstab line such as
//   /var/lib/snapfs/site /var/backup/site fuse.snapfs defaults,allow_other 0 0
// which mount(8) runs through mount.fuse3 as
//   snapfs /var/lib/snapfs/site /var/backup/site -o rw,allow_other,dev,suid
// Generic mount(8)/fstab options that libfuse does not take are dropped.
// The live daemon serves STORE/daemon.sock for snapfs-prune and snapfs-hold
// (tools/control.h) and prunes by itself if -o keep_*=... asks.
//
// Exit codes: tools/exit_codes.h.
#include <unistd.h>

// GCC 12 reports a false -Wnull-dereference inside CLI11's inlined string
// code (a middle-end warning that escapes the system-header exemption).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop
#include <charconv>
#include <cstdio>
#include <cstring>
#include <cstdint>
#include <memory>
#include <ranges>
#include <string>

#include "fs/log.h"
#include "fs/vfs.h"
#include "store/store.h"
#include "store/when.h"
#include "tools/control.h"
#include "tools/daemon.h"
#include "tools/exit_codes.h"

namespace snapfs::tools {
namespace {

int RunInit(const std::string& path, int zstd_level, int64_t state_gap_ns,
            int64_t min_retention_ns, uint32_t guard_share) {
  store::InitOptions options;
  options.zstd_level = zstd_level;
  options.state_gap_ns = state_gap_ns;
  options.min_retention_ns = min_retention_ns;
  options.guard_share_percent = guard_share;
  options.root_uid = ::getuid();
  options.root_gid = ::getgid();
  Status st = store::Store::Init(path, options);
  if (!st.ok()) return LogFailure(kExitRuntime, "cannot create store", st.message());
  return kExitOk;
}

// Compresses what was stored uncompressed to keep up with fast writes and
// frees its space, through the daemon if the store is mounted (Store::SettleAll).
int RunSettle(const std::string& path) {
  RequestRoute route;
  Result<nlohmann::json> resp = SendRequest(path, {{"op", "settle"}}, &route);
  if (!resp.ok())
    return LogFailure(ExitCodeForRequest(resp.status(), route),
                      route.open_failed ? "cannot open store" : "settle", resp.status().message());
  const nlohmann::json& s = (*resp)["settle"];
  std::printf("settled %llu chunks: %llu bytes stored uncompressed now take %llu (%llu deltas)",
              static_cast<unsigned long long>(s.value("chunks", uint64_t{0})),
              static_cast<unsigned long long>(s.value("raw_bytes", uint64_t{0})),
              static_cast<unsigned long long>(s.value("stored_bytes", uint64_t{0})),
              static_cast<unsigned long long>(s.value("deltas", uint64_t{0})));
  if (resp->contains("gc")) {
    const nlohmann::json& gc = (*resp)["gc"];
    std::printf("; packs %llu -> %llu bytes",
                static_cast<unsigned long long>(gc.value("pack_bytes_before", uint64_t{0})),
                static_cast<unsigned long long>(gc.value("pack_bytes_after", uint64_t{0})));
  }
  if (s.value("damaged", uint64_t{0}) > 0)
    std::printf("; %llu damaged records left as they are (run snapfs-check)",
                static_cast<unsigned long long>(s.value("damaged", uint64_t{0})));
  std::printf("\n");
  return kExitOk;
}

// The retention options of a live mount (-o keep_daily=60,guard=30,...),
// taken out of the -o list before the rest goes to RunDaemon.
struct RetentionMountOptions {
  ControlServer::Options server;
  int guard_share = -1;  // -1: the store's.
};

bool ParseCount(std::string_view text, int max, int* out) {
  int v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < 0 || v > max) return false;
  *out = v;
  return true;
}

Status TakeRetentionOptions(std::vector<std::string>* options, RetentionMountOptions* out) {
  std::vector<std::string> rest;
  store::RetentionRules& r = out->server.auto_prune;
  const std::pair<const char*, int*> counts[] = {
      {"keep_last=", &r.keep_last},     {"keep_hourly=", &r.keep_hourly},
      {"keep_daily=", &r.keep_daily},   {"keep_weekly=", &r.keep_weekly},
      {"keep_monthly=", &r.keep_monthly}};
  for (const std::string& group : *options) {
    std::string kept;
    for (const auto& part : std::views::split(group, ',')) {
      const std::string o(part.begin(), part.end());
      bool taken = false;
      for (const auto& [name, field] : counts) {
        if (!o.starts_with(name)) continue;
        if (!ParseCount(std::string_view(o).substr(std::strlen(name)), 1'000'000, field))
          return Status::Invalid("-o " + o + ": a count 0..1000000");
        taken = true;
      }
      for (const char* name : {"keep_within=", "prune_interval="}) {
        if (!o.starts_with(name)) continue;
        Result<int64_t> d = store::ParseDuration(std::string_view(o).substr(std::strlen(name)));
        if (!d.ok() || *d <= 0) return Status::Invalid("-o " + o + ": a DURATION such as 90s, 1h, 30d");
        (std::string_view(name) == "keep_within=" ? r.keep_within_ns
                                                  : out->server.auto_prune_interval_ns) = *d;
        taken = true;
      }
      if (o.starts_with("guard=")) {
        if (!ParseCount(std::string_view(o).substr(6), 100, &out->guard_share))
          return Status::Invalid("-o " + o + ": the guard's share is 0..100 (percent; 0: off)");
        taken = true;
      }
      if (!taken) kept += (kept.empty() ? "" : ",") + o;
    }
    if (!kept.empty()) rest.push_back(kept);
  }
  *options = std::move(rest);
  return Status::Ok();
}

// The live tree, read-write unless -o ro.
int OpenLive(const std::string& store_path, const MountConfig& config,
             const RetentionMountOptions& retention, View* view) {
  Result<std::unique_ptr<store::Store>> store = store::Store::Open(store_path, config.store);
  if (!store.ok())
    return LogFailure(ExitCodeForStoreError(store.status()), "cannot open store",
                      store.status().message());
  (*store)->SetGuardShareOverride(retention.guard_share);
  (*store)->SetGuardListener([](const store::HoldRecord& h) {
    fs::LogWarning("guard: holding state s%llu (hold %llu): %s; release it with snapfs-hold "
                   "STORE --release %llu",
                   static_cast<unsigned long long>(h.state), static_cast<unsigned long long>(h.id),
                   h.reason.c_str(), static_cast<unsigned long long>(h.id));
  });
  Result<std::unique_ptr<ControlServer>> server =
      ControlServer::Start(store->get(), store_path, retention.server);
  // Without the socket the mount still works; only the retention tools
  // cannot reach the store while it is mounted.
  if (server.ok())
    view->service = std::shared_ptr<ControlServer>(std::move(*server));
  else
    fs::LogWarning("control socket: %s; snapfs-prune and snapfs-hold will not work while mounted",
                   server.status().message().c_str());
  view->store = std::move(*store);
  view->vfs = fs::VfsOptions{.at = store::kLatest,
                             .read_only = config.read_only.value_or(false),
                             .snapfs_dir = true};
  if (view->vfs.read_only) view->label = " (read-only)";
  return kExitOk;
}

constexpr char kFooter[] = R"(
-o takes FUSE and kernel options (allow_other, noexec, ...; default_permissions
is always on), ro for a read-only mount, and snapfs's own:
  zstd=N       compression level of new chunks (1..19; default: the store's)
  cache_mb=N   size of the decoded-chunk cache in MiB (default 64)
  defer_mb=N   while more than N MiB of new data wait for compression, store
               new chunks uncompressed and compress them once the mount is
               idle (default 4; 0: always compress at once, whatever
               defer_rate_mb says)
  defer_rate_mb=N
               the same while new data arrives faster than N MiB/s (default
               100: a dump tool's pace is compressed at once, a copy's is
               deferred; 0: off)
  keep_last=N, keep_hourly=N, keep_daily=N, keep_weekly=N, keep_monthly=N,
  keep_within=DURATION
               prune automatically with these rules (as snapfs-prune), right
               after the mount and every prune_interval=DURATION (default 1h);
               the minimum retention, holds and the guard still apply
  guard=PCT    the bad-dump guard's share for this mount (0..100; 0: off;
               default: the store's, set by --guard-share at --init)
Generic mount(8) options (defaults, _netdev, nofail, x-*, relatime, ...) are
accepted and ignored, so an fstab line works:
  /var/lib/snapfs/site  /var/backup/site  fuse.snapfs  defaults,allow_other  0 0
Unmount with: fusermount3 -u MOUNTPOINT (or umount MOUNTPOINT as root).

Exit codes: 0 ok, 1 runtime error, 2 usage error, 3 store missing, corrupt,
incompatible or in use, 4 mount failed.)";

int Main(int argc, char** argv) {
  CLI::App app("snapfs: a file system that keeps every version of every file.", "snapfs");
  app.set_version_flag("--version", "snapfs " SNAPFS_VERSION);
  app.footer(kFooter);
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return "snapfs: " + std::string(e.what()) + "\nRun with --help for more information.\n";
  });

  std::string init_store;
  int zstd_level = store::InitOptions().zstd_level;
  std::string state_gap;
  std::string min_retention;
  int guard_share = static_cast<int>(store::kDefaultGuardSharePercent);
  DaemonArgs args;
  CLI::Option* init = app.add_option("--init", init_store, "Create a new, empty store and exit")
                          ->option_text("STORE");
  std::string settle_store;
  CLI::Option* settle =
      app.add_option("--settle", settle_store,
                     "Compress now what was stored uncompressed to keep up with fast writes, "
                     "free its space, and exit (through the daemon if STORE is mounted)")
          ->option_text("STORE")
          ->excludes(init);
  app.add_option("--zstd-level", zstd_level, "With --init: default compression level")
      ->check(CLI::Range(1, 19))
      ->needs(init)
      ->option_text("N (1..19, default 1)");
  CLI::Option* gap_option =
      app.add_option("--state-gap", state_gap,
                     "With --init: quiet time that ends a state (a dump run), e.g. 90s, 15m")
          ->needs(init)
          ->option_text("DURATION (default 5m)");
  CLI::Option* min_option =
      app.add_option("--min-retention", min_retention,
                     "With --init: no state younger than this is ever pruned (never lowered)")
          ->needs(init)
          ->option_text("DURATION (default 0)");
  app.add_option("--guard-share", guard_share,
                 "With --init: a state that removes more than PCT % of the files or bytes holds "
                 "the state before it (0: off)")
      ->check(CLI::Range(0, 100))
      ->needs(init)
      ->option_text("PCT (default 50)");
  AddDaemonOptions(&app, &args);
  app.add_option("STORE", args.store, "The store (a folder made by --init)");
  app.add_option("MOUNTPOINT", args.mountpoint, "Where to mount it (an empty folder)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  if (!init_store.empty()) {
    if (!args.store.empty())
      return LogFailure(kExitUsage, "--init", "takes only the store; run without --init to mount");
    int64_t gap_ns = store::InitOptions().state_gap_ns;
    if (gap_option->count() > 0) {
      Result<int64_t> gap = store::ParseDuration(state_gap);
      if (!gap.ok()) return LogFailure(kExitUsage, "--state-gap", gap.status().message());
      if (*gap == 0) return LogFailure(kExitUsage, "--state-gap", "must be at least 1s");
      gap_ns = *gap;
    }
    int64_t min_ns = 0;
    if (min_option->count() > 0) {
      Result<int64_t> d = store::ParseDuration(min_retention);
      if (!d.ok()) return LogFailure(kExitUsage, "--min-retention", d.status().message());
      min_ns = *d;
    }
    return RunInit(init_store, zstd_level, gap_ns, min_ns, static_cast<uint32_t>(guard_share));
  }
  if (settle->count() > 0) {
    if (!args.store.empty())
      return LogFailure(kExitUsage, "--settle", "takes only the store");
    return RunSettle(settle_store);
  }
  if (args.store.empty() || args.mountpoint.empty())
    return LogFailure(kExitUsage, "usage", "snapfs [options] STORE MOUNTPOINT (see --help)");
  RetentionMountOptions retention;
  if (Status st = TakeRetentionOptions(&args.options, &retention); !st.ok())
    return LogFailure(kExitUsage, "bad option", st.message());
  return RunDaemon(args, [&](const std::string& store_path, const MountConfig& config, View* view) {
    return OpenLive(store_path, config, retention, view);
  });
}

}  // namespace
}  // namespace snapfs::tools

int main(int argc, char** argv) {
  try {
    return snapfs::tools::Main(argc, argv);
  } catch (const std::exception& e) {
    return snapfs::tools::LogFailure(snapfs::tools::kExitRuntime, "internal error", e.what());
  }
}
