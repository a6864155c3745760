#include "tools/daemon.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>
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
#include <ranges>

#include "fs/fuse_bridge.h"
#include "fs/log.h"
#include "tools/exit_codes.h"

namespace snapfs::tools {
namespace {

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
      } else if (o.starts_with("defer_mb=")) {
        if (!ParseInt(std::string_view(o).substr(9), 0, 1 << 20, &n))
          return Status::Invalid("-o " + o + ": defer_mb must be 0..1048576 (0: never defer)");
        config->store.defer_above = n == 0 ? SIZE_MAX : size_t{static_cast<unsigned>(n)} << 20;
      } else if (o.starts_with("defer_rate_mb=")) {
        if (!ParseInt(std::string_view(o).substr(14), 0, 1 << 20, &n))
          return Status::Invalid("-o " + o + ": defer_rate_mb must be 0..1048576 (0: off)");
        config->store.defer_rate = uint64_t{static_cast<unsigned>(n)} << 20;
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

// Why the daemon forks by itself instead of calling fuse_daemonize():
// RocksDB starts background threads when a store is opened and fork() keeps
// only the calling thread, so the store must be opened in the process that
// serves the mount, after the fork. Yet a missing or busy store, a WHEN
// before the store's history and a failed mount must still be reported on
// the terminal with their exit code, and `snapfs STORE MNT` must exit 0 only
// once the mount is up. So the parent forks first and waits on a pipe; the
// child starts a new session, opens the store and mounts while its stderr is
// still the caller's, then detaches (Detach below) and writes one byte to the
// pipe. If the child fails it prints why and exits, and the parent exits with
// the child's code.
//
// Returns the write end of the pipe, in the child only.
int ForkDaemon() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    std::exit(LogFailure(kExitRuntime, "pipe", std::strerror(errno)));
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) std::exit(LogFailure(kExitRuntime, "fork", std::strerror(errno)));
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
    std::exit(LogFailure(kExitRuntime, "daemon", why));
  }
  std::exit(LogFailure(kExitRuntime, "daemon", "exited before the mount was up"));
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

}  // namespace

int LogFailure(int code, std::string_view what, std::string_view why) {
  while (!why.empty() && why.back() == '\n') why.remove_suffix(1);
  fs::LogError("%.*s: %.*s", static_cast<int>(what.size()), what.data(),
               static_cast<int>(why.size()), why.data());
  return code;
}

void AddDaemonOptions(CLI::App* app, DaemonArgs* args) {
  app->add_flag("-f,--foreground", args->foreground, "Stay in the foreground");
  app->add_flag("-d,--debug", args->debug, "Print every FUSE request (implies -f)");
  app->add_option("-o", args->options, "Mount options, see below")
      ->allow_extra_args(false)
      ->option_text("OPT[,OPT...]");
  app->add_option("--ready-fd", args->ready_fd, "Write one byte to fd N once mounted")
      ->check(CLI::NonNegativeNumber)
      ->option_text("N");
}

int RunDaemon(const DaemonArgs& args, const ViewOpener& open) {
  // glibc gives each busy thread (FUSE workers, compressors) its own arena
  // and keeps freed chunk buffers in it: 557 MiB peak RSS while ingesting a
  // dump, against 95-181 MiB with two arenas (docs/performance.md).
  ::mallopt(M_ARENA_MAX, 2);
  // A fixed mmap threshold: buffers above it (a streaming file's run, FUSE
  // request buffers) are mapped and returned to the system when freed.
  // glibc's default threshold rises to the largest buffer freed so far, after
  // which multi-MiB buffers stay in the arenas: 228 MiB peak RSS streaming a
  // 2 GiB dump, against 138 MiB with this (docs/performance.md, "Memory").
  ::mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  // Fixing the threshold also fixes the trim threshold at glibc's 128 KiB,
  // so every free at the top of an arena would give pages back, to be
  // faulted in again by the next chunk buffer. Keep up to 16 MiB per arena.
  ::mallopt(M_TRIM_THRESHOLD, 16 << 20);
  MountConfig config;
  // Deferred compression (docs/design.md): a dump written faster than zstd
  // keeps up goes to disk uncompressed and is compressed once the mount is
  // idle, so the dump is not slowed down by compression.
  config.store.defer_above = kDefaultDeferBytes;
  config.store.defer_rate = kDefaultDeferRate;
  config.store.settle_when_idle = true;
  config.store.background_nice = kBackgroundNice;
  Status st = ParseMountOptions(args.options, &config);
  if (!st.ok()) return LogFailure(kExitUsage, "bad option", st.message());
  if (config.store.defer_above == SIZE_MAX) config.store.defer_rate = 0;  // defer_mb=0: never.
  if (args.ready_fd >= 0 && ::fcntl(args.ready_fd, F_SETFD, FD_CLOEXEC) != 0)
    return LogFailure(kExitUsage, "--ready-fd " + std::to_string(args.ready_fd),
                      std::strerror(errno));

  // Absolute paths while the working directory is still the caller's: the
  // daemon moves to "/", and unmounting at exit needs the mount point.
  const std::string store_path = std::filesystem::absolute(args.store).lexically_normal();
  char* real = ::realpath(args.mountpoint.c_str(), nullptr);
  if (real == nullptr)
    return LogFailure(kExitMount, "mount point " + args.mountpoint, std::strerror(errno));
  const std::string mountpoint(real);
  std::free(real);
  // Checked before the store is opened read-write, which is not undone.
  struct stat mst {};
  if (::stat(mountpoint.c_str(), &mst) != 0)
    return LogFailure(kExitMount, "mount point " + args.mountpoint, std::strerror(errno));
  if (!S_ISDIR(mst.st_mode))
    return LogFailure(kExitMount, "mount point " + args.mountpoint, "not a directory");

  const bool foreground = args.foreground || args.debug;
  const int notify_fd = foreground ? -1 : ForkDaemon();

  // Declared in this order so they are destroyed in reverse: unmount, then
  // Vfs::Shutdown, then the store closes.
  View view;
  if (const int code = open(store_path, config, &view); code != kExitOk) return code;
  if (view.store->replayed() > 0)
    fs::LogInfo("%s: replayed %llu commits the store's log had lost (a crash)", store_path.c_str(),
                static_cast<unsigned long long>(view.store->replayed()));
  if (!view.store->replay_note().empty())
    fs::LogWarning("%s: %s", store_path.c_str(), view.store->replay_note().c_str());
  fs::Vfs vfs(view.store.get(), view.vfs);
  fs::MountOptions mount_options;
  mount_options.mountpoint = mountpoint;
  mount_options.fsname = "snapfs:" + store_path;
  mount_options.fuse_options = config.fuse_options;
  mount_options.debug = args.debug;
  Result<std::unique_ptr<fs::FuseMount>> mount = fs::FuseMount::Mount(&vfs, mount_options);
  if (!mount.ok()) {
    const int code = mount.status().code() == Code::kInvalid ? kExitUsage : kExitMount;
    return LogFailure(code, "cannot mount " + store_path + " on " + mountpoint,
                      mount.status().message());
  }

  if (notify_fd >= 0) Detach(notify_fd);
  SignalReady(args.ready_fd);
  fs::LogInfo("mounted %s on %s%s", store_path.c_str(), mountpoint.c_str(), view.label.c_str());
  st = (*mount)->Serve();
  mount->reset();  // Unmounts; commits what is still open.
  if (!st.ok()) return LogFailure(kExitRuntime, "serving " + mountpoint, st.message());
  fs::LogInfo("unmounted %s", mountpoint.c_str());
  return kExitOk;
}

}  // namespace snapfs::tools
