#include "tests/mount/mount_fixture.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>

#ifndef SNAPFS_BINARY
#error "SNAPFS_BINARY must name the snapfs executable under test"
#endif
// The time travel tools; a target that does not use them need not name them.
#ifndef SNAPFS_MOUNT_AT_BINARY
#define SNAPFS_MOUNT_AT_BINARY "snapfs-mount-at"
#endif
#ifndef SNAPFS_LS_BINARY
#define SNAPFS_LS_BINARY "snapfs-ls"
#endif

namespace snapfs::testing {
namespace {

constexpr int kReadyTimeoutMs = 20'000;
constexpr int kExitTimeoutMs = 20'000;

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// argv as execv wants it; built before fork, since the child may only make
// async-signal-safe calls.
std::vector<char*> ArgvOf(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  return argv;
}

int ExitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Waits up to timeout_ms for `pid` to exit, without polling: a pidfd becomes
// readable when the process ends. Returns its wait status, or nullopt on
// timeout (the process is left running).
std::optional<int> WaitForExit(pid_t pid, int timeout_ms) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    int n;
    do n = ::poll(&p, 1, timeout_ms);
    while (n < 0 && errno == EINTR);
    ::close(pidfd);
    if (n == 0) return std::nullopt;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return status;
}

// Whether anything is mounted at `dir`, or also below it.
bool HasMounts(const std::string& dir, bool below) {
  std::ifstream mounts("/proc/self/mounts");
  std::string source, target;
  while (mounts >> source >> target) {
    if (target == dir || (below && target.starts_with(dir + "/"))) return true;
    mounts.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return false;
}

}  // namespace

// --- TempDir ---------------------------------------------------------------

TempDir::TempDir() {
  std::string tmpl = ::testing::TempDir() + "snapfs-mount-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    ADD_FAILURE() << Errno("mkdtemp " + tmpl);
    return;
  }
  path_ = tmpl;
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  if (HasMounts(path_, /*below=*/true)) {
    ADD_FAILURE() << "not removing " << path_ << ": something is still mounted below it";
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

// --- Processes ---------------------------------------------------------------

ProcessResult RunProcess(const std::vector<std::string>& args, int timeout_ms) {
  ProcessResult result;
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    result.output = Errno("pipe");
    return result;
  }
  std::vector<char*> argv = ArgvOf(args);
  const pid_t pid = ::fork();
  if (pid < 0) {
    result.output = Errno("fork");
    ::close(out[0]);
    ::close(out[1]);
    return result;
  }
  if (pid == 0) {
    const int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(out[1], STDERR_FILENO);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buf[4096];
  bool timed_out = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{out[0], POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      timed_out = true;
      break;
    }
    const ssize_t got = ::read(out[0], buf, sizeof(buf));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // EOF: the process (and anything it started) closed it.
    result.output.append(buf, static_cast<size_t>(got));
  }
  ::close(out[0]);
  if (timed_out) {
    ::kill(pid, SIGKILL);
    result.output += "\n[killed after " + std::to_string(timeout_ms) + " ms]";
  }
  const std::optional<int> status = WaitForExit(pid, -1);
  result.exit_code = status ? ExitCodeOf(*status) : -1;
  return result;
}

namespace {
ProcessResult RunBinary(const char* binary, const std::vector<std::string>& args, int timeout_ms) {
  std::vector<std::string> argv{binary};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv, timeout_ms);
}
}  // namespace

ProcessResult RunSnapfs(const std::vector<std::string>& args, int timeout_ms) {
  return RunBinary(SNAPFS_BINARY, args, timeout_ms);
}

ProcessResult RunMountAt(const std::vector<std::string>& args, int timeout_ms) {
  return RunBinary(SNAPFS_MOUNT_AT_BINARY, args, timeout_ms);
}

ProcessResult RunLs(const std::vector<std::string>& args, int timeout_ms) {
  return RunBinary(SNAPFS_LS_BINARY, args, timeout_ms);
}

bool IsMountPoint(const std::string& path) { return HasMounts(path, /*below=*/false); }

pid_t FindProcessByLastArg(const std::string& last_arg) {
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = ReadFile(e.path() / "cmdline");
    if (cmdline.ends_with(std::string(1, '\0'))) cmdline.pop_back();
    const size_t last = cmdline.rfind('\0');
    if (last != std::string::npos && cmdline.substr(last + 1) == last_arg) return std::stoi(name);
  }
  return -1;
}

bool WaitForProcessEnd(pid_t pid, int timeout_ms) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return errno == ESRCH;  // Already gone.
  pollfd p{pidfd, POLLIN, 0};
  const int n = ::poll(&p, 1, timeout_ms);
  ::close(pidfd);
  return n > 0;
}

// --- ForegroundDaemon --------------------------------------------------------

ForegroundDaemon::~ForegroundDaemon() {
  if (!running()) return;
  ::testing::AssertionResult r = Unmount();
  if (!r) ADD_FAILURE() << r.message();
}

std::string ForegroundDaemon::Output() const { return ReadFile(log_); }

::testing::AssertionResult ForegroundDaemon::Start(const std::string& binary,
                                                   const std::vector<std::string>& args,
                                                   const std::string& mountpoint) {
  if (running()) return ::testing::AssertionFailure() << "already mounted";
  binary_ = binary;
  mountpoint_ = mountpoint;
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) return ::testing::AssertionFailure() << Errno("pipe");
  std::vector<std::string> full{binary, "-f", "--ready-fd", std::to_string(ready[1])};
  full.insert(full.end(), args.begin(), args.end());
  std::vector<char*> argv = ArgvOf(full);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(ready[0]);
    ::close(ready[1]);
    return ::testing::AssertionFailure() << Errno("fork");
  }
  if (pid == 0) {
    const int null = ::open("/dev/null", O_RDONLY);
    const int log = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(null, STDIN_FILENO);
    ::dup2(log, STDOUT_FILENO);
    ::dup2(log, STDERR_FILENO);
    ::fcntl(ready[1], F_SETFD, 0);  // The daemon inherits this one.
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(ready[1]);
  pid_ = pid;
  pollfd p{ready[0], POLLIN, 0};
  int n;
  do n = ::poll(&p, 1, kReadyTimeoutMs);
  while (n < 0 && errno == EINTR);
  char byte = 0;
  const ssize_t got = n > 0 ? ::read(ready[0], &byte, 1) : 0;
  ::close(ready[0]);
  if (got == 1) return ::testing::AssertionSuccess();

  // No readiness: the daemon failed (EOF) or hangs (timeout).
  std::string why = n == 0 ? "no readiness after " + std::to_string(kReadyTimeoutMs) + " ms"
                           : "the daemon closed --ready-fd without writing";
  ::kill(pid_, SIGKILL);
  const std::optional<int> status = WaitForExit(pid_, kExitTimeoutMs);
  pid_ = -1;
  RunProcess({"fusermount3", "-u", "-z", mountpoint_});  // In case it got that far.
  return ::testing::AssertionFailure()
         << std::filesystem::path(binary_).filename().string() << " did not mount: " << why
         << "; exit code " << (status ? ExitCodeOf(*status) : -1) << "; output:\n" << Output();
}

::testing::AssertionResult ForegroundDaemon::Reap(int timeout_ms, bool expect_clean_exit) {
  std::optional<int> status = WaitForExit(pid_, timeout_ms);
  std::string note;
  if (!status) {
    ::kill(pid_, SIGKILL);
    status = WaitForExit(pid_, -1);
    note = "the daemon did not exit within " + std::to_string(timeout_ms) + " ms; killed. ";
  }
  pid_ = -1;
  const int code = status ? ExitCodeOf(*status) : -1;
  if (note.empty() && (!expect_clean_exit || code == 0)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << note << "daemon exit code " << code << "; output:\n"
                                       << Output();
}

::testing::AssertionResult ForegroundDaemon::Unmount() {
  if (!running()) return ::testing::AssertionSuccess();
  const ProcessResult u = RunProcess({"fusermount3", "-u", mountpoint_});
  if (u.exit_code == 0) return Reap(kExitTimeoutMs, /*expect_clean_exit=*/true);
  // Busy or stuck: detach it and stop the daemon hard, so nothing is left.
  const ProcessResult lazy = RunProcess({"umount", "-l", mountpoint_});
  ::kill(pid_, SIGKILL);
  ::testing::AssertionResult reaped = Reap(kExitTimeoutMs, /*expect_clean_exit=*/false);
  return ::testing::AssertionFailure()
         << "fusermount3 -u " << mountpoint_ << " failed (" << u.output
         << "); umount -l: exit " << lazy.exit_code << " " << lazy.output
         << (reaped ? "" : reaped.message());
}

::testing::AssertionResult ForegroundDaemon::Kill9() {
  if (!running()) return ::testing::AssertionFailure() << "not mounted";
  ::kill(pid_, SIGKILL);
  ::testing::AssertionResult reaped = Reap(kExitTimeoutMs, /*expect_clean_exit=*/false);
  const ProcessResult u = RunProcess({"fusermount3", "-u", "-z", mountpoint_});
  if (!reaped) return reaped;
  if (u.exit_code != 0)
    return ::testing::AssertionFailure() << "fusermount3 -u -z after kill -9: " << u.output;
  return ::testing::AssertionSuccess();
}

// --- ScopedUnmount -----------------------------------------------------------

ScopedUnmount::~ScopedUnmount() {
  if (!IsMountPoint(mountpoint_)) return;
  if (RunProcess({"fusermount3", "-u", mountpoint_}).exit_code == 0) return;
  const ProcessResult lazy = RunProcess({"fusermount3", "-u", "-z", mountpoint_});
  if (lazy.exit_code != 0)
    ADD_FAILURE() << "cannot unmount " << mountpoint_ << ": " << lazy.output;
}

// --- SnapfsMount -----------------------------------------------------------

SnapfsMount::SnapfsMount(std::vector<std::string> init_args)
    : daemon_(dir_.path().empty() ? std::string() : dir_.path() + "/daemon.log") {
  if (dir_.path().empty()) return;
  store_ = dir_.path() + "/store";
  mountpoint_ = dir_.path() + "/mnt";
  if (::mkdir(mountpoint_.c_str(), 0755) != 0) {
    ADD_FAILURE() << Errno("mkdir " + mountpoint_);
    return;
  }
  init_args.insert(init_args.begin(), {"--init", store_});
  const ProcessResult init = RunSnapfs(init_args);
  if (init.exit_code != 0) {
    ADD_FAILURE() << "snapfs --init " << store_ << " exited " << init.exit_code << ": "
                  << init.output;
    return;
  }
  ok_ = true;
}

SnapfsMount::~SnapfsMount() {
  if (!mounted()) return;
  ::testing::AssertionResult r = Unmount();
  if (!r) ADD_FAILURE() << r.message();
}

std::string SnapfsMount::Scratch(std::string_view name) const {
  return dir_.path() + "/" + std::string(name);
}

::testing::AssertionResult SnapfsMount::Mount(std::vector<std::string> extra_args) {
  if (!ok_) return ::testing::AssertionFailure() << "no store to mount";
  if (mounted()) return ::testing::AssertionFailure() << "already mounted";
  extra_args_ = std::move(extra_args);
  std::vector<std::string> args = extra_args_;
  args.push_back(store_);
  args.push_back(mountpoint_);
  return daemon_.Start(SNAPFS_BINARY, args, mountpoint_);
}

::testing::AssertionResult SnapfsMount::Unmount() { return daemon_.Unmount(); }

::testing::AssertionResult SnapfsMount::Kill9() { return daemon_.Kill9(); }

::testing::AssertionResult SnapfsMount::Remount() {
  ::testing::AssertionResult u = Unmount();
  if (!u) return u;
  return Mount(extra_args_);
}

// --- PastMount ---------------------------------------------------------------

PastMount::PastMount(std::string store, std::string when, std::string mountpoint)
    : store_(std::move(store)),
      when_(std::move(when)),
      mountpoint_(std::move(mountpoint)),
      daemon_(mountpoint_ + ".log") {
  if (::mkdir(mountpoint_.c_str(), 0755) != 0 && errno != EEXIST)
    ADD_FAILURE() << Errno("mkdir " + mountpoint_);
}

PastMount::~PastMount() {
  if (!mounted()) return;
  ::testing::AssertionResult r = Unmount();
  if (!r) ADD_FAILURE() << r.message();
}

::testing::AssertionResult PastMount::Mount(std::vector<std::string> extra_args) {
  extra_args.insert(extra_args.end(), {store_, when_, mountpoint_});
  return daemon_.Start(SNAPFS_MOUNT_AT_BINARY, extra_args, mountpoint_);
}

// --- MountTest ---------------------------------------------------------------

void MountTest::SetUp() {
  ASSERT_TRUE(mount_.ok());
  ASSERT_TRUE(mount_.Mount());
}

void MountTest::TearDown() { EXPECT_TRUE(mount_.Unmount()); }

std::string MountTest::Path(std::string_view relative) const {
  return mount_.mountpoint() + "/" + std::string(relative);
}

// --- Files -------------------------------------------------------------------

::testing::AssertionResult WriteFile(const std::string& path, std::string_view bytes,
                                     bool fsync) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ::testing::AssertionFailure() << Errno("open " + path);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string err = Errno("write " + path);
      ::close(fd);
      return ::testing::AssertionFailure() << err;
    }
    done += static_cast<size_t>(n);
  }
  if (fsync && ::fsync(fd) != 0) {
    const std::string err = Errno("fsync " + path);
    ::close(fd);
    return ::testing::AssertionFailure() << err;
  }
  // close() reports what the file system's flush returned.
  if (::close(fd) != 0) return ::testing::AssertionFailure() << Errno("close " + path);
  return ::testing::AssertionSuccess();
}

std::string ReadFile(const std::string& path, std::string* error) {
  std::string bytes;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (error) *error = Errno("open " + path);
    return bytes;
  }
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && error) *error = Errno("read " + path);
    if (n <= 0) break;
    bytes.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return bytes;
}

::testing::AssertionResult FileHasBytes(const std::string& path, std::string_view expected) {
  std::string error;
  const std::string actual = ReadFile(path, &error);
  if (!error.empty()) return ::testing::AssertionFailure() << error;
  const size_t common = std::min(actual.size(), expected.size());
  const auto [a, e] = std::mismatch(actual.begin(), actual.begin() + common, expected.begin());
  if (a == actual.begin() + common && actual.size() == expected.size())
    return ::testing::AssertionSuccess();
  const size_t at = static_cast<size_t>(a - actual.begin());
  ::testing::AssertionResult r = ::testing::AssertionFailure();
  r << path << ": " << actual.size() << " bytes, expected " << expected.size();
  if (at < common)
    r << "; first difference at offset " << at << " (0x" << std::hex
      << static_cast<unsigned>(static_cast<unsigned char>(*a)) << " instead of 0x"
      << static_cast<unsigned>(static_cast<unsigned char>(*e)) << std::dec << ")";
  return r;
}

}  // namespace snapfs::testing
