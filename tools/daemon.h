// What the two mounting programs share, `snapfs` (the live tree) and
// `snapfs-mount-at` (a past state): the mount options on the command line,
// daemonizing with a readiness pipe, opening the store in the serving
// process, mounting, serving until unmounted, and the exit codes
// (tools/exit_codes.h).
//
//   int Main(int argc, char** argv) {
//     fs::SetLogName("snapfs-x");
//     CLI::App app(...);
//     DaemonArgs args;
//     AddDaemonOptions(&app, &args);            // -f, -d, -o, --ready-fd
//     app.add_option("STORE", args.store); ...  // the program's positionals
//     ... parse ...
//     return RunDaemon(args, [&](const std::string& store, const MountConfig& config, View* view) {
//       ... open the store, fill *view ...
//       return kExitOk;
//     });
//   }
//
// Messages go through fs/log.h: "<program>: <what>: <why>" on stderr until
// the daemon detaches, syslog after.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fs/vfs.h"
#include "store/store.h"

namespace CLI {
class App;
}  // namespace CLI

namespace snapfs::tools {

// The command line of a mount.
struct DaemonArgs {
  std::string store;                 // As given; made absolute by RunDaemon.
  std::string mountpoint;            // As given; must exist.
  std::vector<std::string> options;  // The -o values, each possibly comma-separated.
  bool foreground = false;           // -f: do not fork; serve in this process.
  bool debug = false;                // -d: libfuse prints every request; implies -f.
  int ready_fd = -1;                 // --ready-fd: write one byte there once mounted.
};

// Adds -f/--foreground, -d/--debug, -o and --ready-fd to `app`, bound to
// `args` (both must outlive parsing).
void AddDaemonOptions(CLI::App* app, DaemonArgs* args);

// What the -o options ask for. snapfs's own options are consumed (zstd=N,
// cache_mb=N, ro, rw); generic mount(8)/fstab options that libfuse rejects
// although they are harmless here (defaults, _netdev, nofail, x-*, relatime,
// ...) are dropped; everything else is passed on to libfuse, which rejects
// what it does not know (exit 2).
// New chunks are stored uncompressed while more than this many raw bytes
// wait for compression (-o defer_mb=N; store::OpenOptions::defer_above).
inline constexpr size_t kDefaultDeferBytes = 4u << 20;
// And while new data arrives faster than this (-o defer_rate_mb=N, MiB/s;
// store::OpenOptions::defer_rate): a copy of a dump file, not a dump tool.
inline constexpr uint64_t kDefaultDeferRate = 100u << 20;
// Nice value of the daemon's compression and settle threads: compression
// takes only the CPU that serving the mount leaves (store::OpenOptions).
inline constexpr int kBackgroundNice = 10;

struct MountConfig {
  store::OpenOptions store;               // zstd_level, chunk_cache_bytes.
  std::optional<bool> read_only;          // The last of ro / rw; nullopt: neither.
  std::vector<std::string> fuse_options;  // For libfuse, one option each.
};

// What a mount serves.
struct View {
  std::unique_ptr<store::Store> store;
  fs::VfsOptions vfs;
  // Appended to the log line "mounted <store> on <mountpoint>", e.g.
  // " (read-only)" or " at g12 (2026-05-25 06:16:03)".
  std::string label;  // Anything else the serving process keeps for the life of the mount (the
  // live daemon's control socket): destroyed after the Vfs shut down and
  // before the store closes.
  std::shared_ptr<void> service;
};

// Opens the store at `store_path` (absolute) as `config` asks and fills
// *view. Called once, in the process that will serve the mount (after the
// fork), with stderr still the caller's. On failure it reports why (with
// LogFailure) and returns the exit code; kExitOk on success.
using ViewOpener =
    std::function<int(const std::string& store_path, const MountConfig& config, View* view)>;

// The whole life of a mount, returning the program's exit code:
//  1. parses args.options (a bad one: exit 2) and checks --ready-fd;
//  2. unless -f or -d, forks: the parent waits on a pipe and exits 0 once the
//     child has mounted, or with the child's exit code if it fails first;
//  3. calls `open` (its exit code if it fails);
//  4. mounts the Vfs of the view at args.mountpoint (exit 4: the mount point
//     is missing, not a folder, or mount(2) failed; exit 2: an option libfuse
//     does not know);
//  5. detaches (syslog, chdir /, stdio to /dev/null), signals readiness on
//     the pipe and on --ready-fd;
//  6. serves until unmounted (fusermount3 -u, umount) or SIGINT, SIGTERM,
//     SIGHUP; unmounts, commits what is still open, closes the store: exit 0
//     (1 if reading /dev/fuse failed).
int RunDaemon(const DaemonArgs& args, const ViewOpener& open);

// Logs "<what>: <why>" as an error (fs/log.h) and returns `code`.
int LogFailure(int code, std::string_view what, std::string_view why);

}  // namespace snapfs::tools
