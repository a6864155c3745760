// snapfs: create a store, or mount one.
//
//   snapfs --init STORE [--zstd-level N]
//   snapfs [-f] [-d] [-o OPT[,OPT...]]... [--ready-fd N] STORE MOUNTPOINT
//
// Also the mount helper behind an fstab line such as
//   /var/lib/snapfs/site /var/backup/site fuse.snapfs defaults,allow_other 0 0
// which mount(8) runs through mount.fuse3 as
//   snapfs /var/lib/snapfs/site /var/backup/site -o rw,allow_other,dev,suid
// Generic mount(8)/fstab options that libfuse does not take are dropped.
//
// Exit codes: tools/exit_codes.h.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

// GCC 12 reports a false -Wnull-dereference inside CLI11's inlined string
// code (a middle-end warning that escapes the system-header exemption).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <ranges>
#include <string>
#include <string_view>
#include <vector>

#include "fs/fuse_bridge.h"
#include "fs/log.h"
#include "fs/vfs.h"
#include "store/store.h"
#include "tools/exit_codes.h"

namespace snapfs::tools {
namespace {

struct MountArgs {
  std::string store;
  std::string mountpoint;
  std::vector<std::string> options;  // The -o values, each possibly comma-separated.
  bool foreground = false;
  bool debug = false;
  int ready_fd = -1;
};

// What the -o options ask for.
struct MountConfig {
  store::OpenOptions store;
  bool read_only = false;
  std::vector<std::string> fuse_options;  // Passed on to libfuse.
};

int Fail(int code, const std::string& what, const std::string& why) {
  fs::LogError("%s: %s", what.c_str(), why.c_str());
  return code;
}

bool ParseInt(std::string_view text, int min, int max, int* out) {
  int v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < min || v > max) return false;
  *out = v;
  return true;
}

// Options of mount(8) and fstab that libfuse 3.14 rejects although they are
// harmless here: fstab-only ones (mount.fuse3 drops some of them itself, but
// snapfs may be run directly) and the atime variants, which a FUSE mount
// leaves to the kernel (relatime by default).
bool IsIgnoredMountOption(std::string_view o) {
  static constexpr std::string_view kIgnored[] = {
      "defaults", "auto",       "noauto",      "user",          "nouser",   "users",
      "owner",    "group",      "_netdev",     "nofail",        "silent",   "loud",
      "relatime", "norelatime", "strictatime", "nostrictatime", "lazytime", "nolazytime",
      "diratime", "nodiratime", "iversion",    "noiversion"};
  for (std::string_view i : kIgnored)
    if (o == i) return true;
  return o.starts_with("x-") || o.starts_with("comment=");
}

// Sorts the -o options: snapfs's own (zstd=N, cache_mb=N, ro, rw) are
// consumed, the generic ones above dropped, the rest passed to libfuse (which
// rejects what it does not know).
Status ParseMountOptions(const std::vector<std::string>& raw, MountConfig* config) {
  for (const std::string& group : raw) {
    for (const auto& part : std::views::split(group, ',')) {
      const std::string o(part.begin(), part.end());
      int n = 0;
      if (o.empty() || IsIgnoredMountOption(o)) continue;
      if (o == "ro" || o == "rw") {
        config->read_only = o == "ro";  // The last one wins, as with mount(8).
      } else if (o.starts_with("zstd=")) {
        if (!ParseInt(std::string_view(o).substr(5), 1, 19, &n))
          return Status::Invalid("-o " + o + ": the zstd level must be 1..19");
        config->store.zstd_level = n;
      } else if (o.starts_with("cache_mb=")) {
        if (!ParseInt(std::string_view(o).substr(9), 1, 1 << 20, &n))
          return Status::Invalid("-o " + o + ": the cache size must be 1..1048576 MiB");
        config->store.chunk_cache_bytes = size_t{static_cast<unsigned>(n)} << 20;
      } else if (o.starts_with("max_read=")) {
        // libfuse 3.14 fails the session at INIT unless init() repeats it.
        return Status::Invalid("-o " + o + ": not supported");
      } else {
        config->fuse_options.push_back(o);
      }
    }
  }
  return Status::Ok();
}

// Writes the readiness byte to `fd` (if >= 0) and closes it.
void SignalReady(int fd) {
  if (fd < 0) return;
  ssize_t n;
  do n = ::write(fd, "1", 1);
  while (n < 0 && errno == EINTR);
  ::close(fd);
}

// Why snapfs forks by itself instead of calling fuse_daemonize(): RocksDB
// starts background threads when a store is opened and fork() keeps only the
// calling thread, so the store must be opened in the process that serves the
// mount, after the fork. Yet a missing or busy store and a failed mount must
// still be reported on the terminal with their exit code, and `snapfs STORE
// MNT` must exit 0 only once the mount is up. So the parent forks first and
// waits on a pipe; the child starts a new session, opens the store and mounts
// while its stderr is still the caller's, then detaches (Detach below) and
// writes one byte to the pipe. If the child fails it prints why and exits,
// and the parent exits with the child's code.
//
// Returns the write end of the pipe, in the child only.
int ForkDaemon() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) std::exit(Fail(kExitRuntime, "pipe", std::strerror(errno)));
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) std::exit(Fail(kExitRuntime, "fork", std::strerror(errno)));
  if (pid == 0) {
    ::close(fds[0]);
    ::setsid();
    return fds[1];
  }
  ::close(fds[1]);
  char byte;
  ssize_t n;
  do n = ::read(fds[0], &byte, 1);
  while (n < 0 && errno == EINTR);
  if (n == 1) std::exit(kExitOk);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) != kExitOk) std::exit(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const std::string why = std::string("killed by ") + ::strsignal(WTERMSIG(status));
    std::exit(Fail(kExitRuntime, "daemon", why));
  }
  std::exit(Fail(kExitRuntime, "daemon", "exited before the mount was up"));
}

// The daemon's last step before serving: leave the caller's terminal and
// directory, log to syslog, and let the waiting parent exit 0.
void Detach(int notify_fd) {
  fs::LogToSyslog();
  if (::chdir("/") != 0) fs::LogWarning("chdir /: %s", std::strerror(errno));
  const int null = ::open("/dev/null", O_RDWR);
  if (null >= 0) {
    ::dup2(null, STDIN_FILENO);
    ::dup2(null, STDOUT_FILENO);
    ::dup2(null, STDERR_FILENO);
    if (null > STDERR_FILENO) ::close(null);
  }
  SignalReady(notify_fd);
}

int RunInit(const std::string& path, int zstd_level) {
  store::InitOptions options;
  options.zstd_level = zstd_level;
  options.root_uid = ::getuid();
  options.root_gid = ::getgid();
  Status st = store::Store::Init(path, options);
  if (!st.ok()) return Fail(kExitRuntime, "cannot create store", st.message());
  return kExitOk;
}

int RunMount(const MountArgs& args) {
  MountConfig config;
  Status st = ParseMountOptions(args.options, &config);
  if (!st.ok()) return Fail(kExitUsage, "bad option", st.message());
  if (args.ready_fd >= 0 && ::fcntl(args.ready_fd, F_SETFD, FD_CLOEXEC) != 0)
    return Fail(kExitUsage, "--ready-fd " + std::to_string(args.ready_fd), std::strerror(errno));

  // Absolute paths while the working directory is still the caller's: the
  // daemon moves to "/", and unmounting at exit needs the mount point.
  const std::string store_path = std::filesystem::absolute(args.store).lexically_normal();
  char* real = ::realpath(args.mountpoint.c_str(), nullptr);
  if (real == nullptr)
    return Fail(kExitMount, "mount point " + args.mountpoint, std::strerror(errno));
  const std::string mountpoint(real);
  std::free(real);

  const int notify_fd = args.foreground ? -1 : ForkDaemon();

  // Declared in this order so they are destroyed in reverse: unmount, then
  // Vfs::Shutdown, then the store closes.
  Result<std::unique_ptr<store::Store>> store = store::Store::Open(store_path, config.store);
  if (!store.ok())
    return Fail(ExitCodeForStoreError(store.status()), "cannot open store",
                store.status().message());
  fs::Vfs vfs(store->get(), fs::VfsOptions{.at = store::kLatest,
                                           .read_only = config.read_only,
                                           .snapfs_dir = true});
  fs::MountOptions mount_options;
  mount_options.mountpoint = mountpoint;
  mount_options.fsname = "snapfs:" + store_path;
  mount_options.fuse_options = config.fuse_options;
  mount_options.debug = args.debug;
  Result<std::unique_ptr<fs::FuseMount>> mount = fs::FuseMount::Mount(&vfs, mount_options);
  if (!mount.ok()) {
    const int code = mount.status().code() == Code::kInvalid ? kExitUsage : kExitMount;
    return Fail(code, "cannot mount " + store_path + " on " + mountpoint, mount.status().message());
  }

  if (notify_fd >= 0) Detach(notify_fd);
  SignalReady(args.ready_fd);
  fs::LogInfo("mounted %s on %s%s", store_path.c_str(), mountpoint.c_str(),
              config.read_only ? " (read-only)" : "");
  st = (*mount)->Serve();
  mount->reset();  // Unmounts; commits what is still open.
  if (!st.ok()) return Fail(kExitRuntime, "serving " + mountpoint, st.message());
  fs::LogInfo("unmounted %s", mountpoint.c_str());
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
  MountArgs args;
  CLI::Option* init = app.add_option("--init", init_store, "Create a new, empty store and exit")
                          ->option_text("STORE");
  app.add_option("--zstd-level", zstd_level, "With --init: default compression level")
      ->check(CLI::Range(1, 19))
      ->needs(init)
      ->option_text("N (1..19, default 3)");
  app.add_flag("-f,--foreground", args.foreground, "Stay in the foreground");
  app.add_flag("-d,--debug", args.debug, "Print every FUSE request (implies -f)");
  app.add_option("-o", args.options, "Mount options, see below")
      ->allow_extra_args(false)
      ->option_text("OPT[,OPT...]");
  app.add_option("--ready-fd", args.ready_fd, "Write one byte to fd N once mounted")
      ->check(CLI::NonNegativeNumber)
      ->option_text("N");
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
      return Fail(kExitUsage, "--init", "takes only the store; run without --init to mount");
    return RunInit(init_store, zstd_level);
  }
  if (args.store.empty() || args.mountpoint.empty())
    return Fail(kExitUsage, "usage", "snapfs [options] STORE MOUNTPOINT (see --help)");
  if (args.debug) args.foreground = true;
  return RunMount(args);
}

}  // namespace
}  // namespace snapfs::tools

int main(int argc, char** argv) {
  try {
    return snapfs::tools::Main(argc, argv);
  } catch (const std::exception& e) {
    return snapfs::tools::Fail(snapfs::tools::kExitRuntime, "internal error", e.what());
  }
}
