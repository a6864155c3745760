// snapfs-mount-at: mount the tree of a store as it stood at WHEN, read-only.
//
//   snapfs-mount-at [-f] [-d] [-o OPT[,OPT...]]... [--ready-fd N] STORE WHEN MOUNTPOINT
//
// Works while the live daemon has the store mounted and writes to it (the
// store is opened as a read-only RocksDB secondary, which takes no lock), and
// on an unmounted store. Daemonizes like snapfs (tools/daemon.h); unmount
// with fusermount3 -u MOUNTPOINT. Reference: docs/cli.md; exit codes:
// tools/exit_codes.h.

// GCC 12 reports a false -Wnull-dereference inside CLI11's inlined string
// code (a middle-end warning that escapes the system-header exemption).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop
#include <cstdint>
#include <memory>
#include <string>

#include "fs/log.h"
#include "fs/vfs.h"
#include "store/store.h"
#include "store/when.h"
#include "tools/daemon.h"
#include "tools/exit_codes.h"
#include "tools/time_travel.h"

namespace snapfs::tools {
namespace {

constexpr char kProgram[] = "snapfs-mount-at";

constexpr char kFooter[] = R"(
The mount is read-only: every write, create, unlink, rename, chmod, ... fails
with EROFS. It can be made while snapfs has the store mounted and writes to
it, and does not disturb it.

-o takes FUSE and kernel options (allow_other, noexec, ...; default_permissions
is always on; ro is implied, rw refused) and snapfs's own:
  cache_mb=N   size of the decoded-chunk cache in MiB (default 64)
Generic mount(8) options (defaults, _netdev, nofail, x-*, relatime, ...) are
accepted and ignored.
Unmount with: fusermount3 -u MOUNTPOINT (or umount MOUNTPOINT as root).
)";

constexpr char kExitCodes[] = R"(
Exit codes: 0 mounted; 1 runtime error (WHEN before the store's history, no
such state or generation); 2 usage error (bad option or WHEN); 3 store
missing, not a store, damaged or of an incompatible version; 4 mount failed.)";

// Resolves `when` (`now_ns`: when the command was given, for relative WHENs)
// in the newest data of the store and makes the read-only view of it.
int OpenPast(const std::string& store_path, const MountConfig& config, const std::string& when_text,
             const store::WhenSpec& when, int64_t now_ns, View* view) {
  if (config.read_only == false)
    return LogFailure(kExitUsage, "-o rw", "a past state is always mounted read-only");
  store::OpenOptions options = config.store;
  options.read_only = true;      // A secondary: no lock, safe while the daemon writes.
  options.compress_threads = 1;  // Reading never compresses.
  Result<std::unique_ptr<store::Store>> store = store::Store::Open(store_path, options);
  if (!store.ok())
    return LogFailure(ExitCodeForStoreError(store.status()), "cannot open store",
                      store.status().message());
  // The view is of a fixed generation, so one catch-up suffices: the
  // secondary never needs the daemon's later commits.
  Status st = (*store)->CatchUp();
  if (!st.ok()) return FailRead(kProgram, "cannot read store " + store_path, st);
  Result<store::Generation> g = store::ResolveWhen(**store, when, now_ns);
  if (!g.ok()) return FailRead(kProgram, "WHEN " + when_text, g.status());
  Result<store::LogRecord> log = (*store)->GetLog(*g);
  if (!log.ok())
    return FailRead(kProgram, "reading the log of g" + std::to_string(*g), log.status());

  view->store = std::move(*store);
  view->vfs = fs::VfsOptions{.at = *g, .read_only = true, .snapfs_dir = false};
  view->label = " as of g" + std::to_string(*g) + " (" + store::FormatLocalTime(log->time_ns) +
                "), read-only";
  return kExitOk;
}

int Main(int argc, char** argv) {
  fs::SetLogName(kProgram);
  CLI::App app("snapfs-mount-at: mount the tree of a snapfs store as it stood at WHEN, read-only.",
               kProgram);
  app.set_version_flag("--version", std::string(kProgram) + " " SNAPFS_VERSION);
  app.footer(std::string(kFooter) + WhenHelp() + kExitCodes);
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string(kProgram) + ": " + e.what() + "\nRun with --help for more information.\n";
  });
  DaemonArgs args;
  std::string when_text;
  AddDaemonOptions(&app, &args);
  app.add_option("STORE", args.store, "The store (a folder made by snapfs --init)")->required();
  app.add_option("WHEN", when_text, "The moment to show (see WHEN below)")->required();
  app.add_option("MOUNTPOINT", args.mountpoint, "Where to mount it (an empty folder)")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }

  // A malformed WHEN is a usage error, reported before anything is opened;
  // the message lists the accepted forms.
  Result<store::WhenSpec> when = store::ParseWhen(when_text);
  if (!when.ok()) return LogFailure(kExitUsage, "WHEN", when.status().message());
  const int64_t now_ns = NowNs();
  return RunDaemon(args, [&](const std::string& store_path, const MountConfig& config, View* view) {
    return OpenPast(store_path, config, when_text, *when, now_ns, view);
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
