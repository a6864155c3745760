// snapfs: create a store, or mount one.
//
//   snapfs --init STORE [--zstd-level N] [--state-gap DURATION]
//   snapfs [-f] [-d] [-o OPT[,OPT...]]... [--ready-fd N] STORE MOUNTPOINT
//
// Also the mount helper behind an fstab line such as
//   /var/lib/snapfs/site /var/backup/site fuse.snapfs defaults,allow_other 0 0
// which mount(8) runs through mount.fuse3 as
//   snapfs /var/lib/snapfs/site /var/backup/site -o rw,allow_other,dev,suid
// Generic mount(8)/fstab options that libfuse does not take are dropped.
//
// Exit codes: tools/exit_codes.h.
#include <unistd.h>

// GCC 12 reports a false -Wnull-dereference inside CLI11's inlined string
// code (a middle-end warning that escapes the system-header exemption).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop
#include <cstdint>
#include <memory>
#include <string>

#include "fs/vfs.h"
#include "store/store.h"
#include "store/when.h"
#include "tools/daemon.h"
#include "tools/exit_codes.h"

namespace snapfs::tools {
namespace {

int RunInit(const std::string& path, int zstd_level, int64_t state_gap_ns) {
  store::InitOptions options;
  options.zstd_level = zstd_level;
  options.state_gap_ns = state_gap_ns;
  options.root_uid = ::getuid();
  options.root_gid = ::getgid();
  Status st = store::Store::Init(path, options);
  if (!st.ok()) return LogFailure(kExitRuntime, "cannot create store", st.message());
  return kExitOk;
}

// The live tree, read-write unless -o ro.
int OpenLive(const std::string& store_path, const MountConfig& config, View* view) {
  Result<std::unique_ptr<store::Store>> store = store::Store::Open(store_path, config.store);
  if (!store.ok())
    return LogFailure(ExitCodeForStoreError(store.status()), "cannot open store",
                      store.status().message());
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
  DaemonArgs args;
  CLI::Option* init = app.add_option("--init", init_store, "Create a new, empty store and exit")
                          ->option_text("STORE");
  app.add_option("--zstd-level", zstd_level, "With --init: default compression level")
      ->check(CLI::Range(1, 19))
      ->needs(init)
      ->option_text("N (1..19, default 3)");
  CLI::Option* gap_option =
      app.add_option("--state-gap", state_gap,
                     "With --init: quiet time that ends a state (a dump run), e.g. 90s, 15m")
          ->needs(init)
          ->option_text("DURATION (default 5m)");
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
    return RunInit(init_store, zstd_level, gap_ns);
  }
  if (args.store.empty() || args.mountpoint.empty())
    return LogFailure(kExitUsage, "usage", "snapfs [options] STORE MOUNTPOINT (see --help)");
  return RunDaemon(args, OpenLive);
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
