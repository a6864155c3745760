// snapfs_crash_test — random operations through a real mount, SIGKILL of the
// daemon at random moments, and an oracle that says what must have survived
// (in the spirit of RocksDB's db_stress / crash test). See docs/testing.md,
// "Crash tests".
//
//   snapfs_crash_test [--kills N | --duration SECONDS] [--seed S] [--dir D]
//                     [--keep] [--replay OPS_LOG] [--full-check-every K] [-v]
//
// The oracle's rules (what a kill -9 of the daemon may and may not change):
//  - A file's content is *committed* when close() or fsync() of a descriptor
//    with unsynced writes returns, when ftruncate() of a descriptor without
//    unsynced writes returns, when truncate(2) returns, when open(O_TRUNC)
//    returns, and at create (the empty file). Every committed version must
//    survive the kill: the present tree shows the newest one byte for byte,
//    and the file's history in the store holds every committed version, in
//    order, and nothing else (consecutive equal contents count once).
//  - Writes not followed by close/fsync are *unsynced*: after the kill the
//    file shows exactly its last committed content (snapfs never commits
//    without one of the calls above), never a mix and never garbage.
//  - Every namespace change (create, rename, rename over a file, unlink,
//    mkdir, rmdir) that returned survives; the tree after the kill is exactly
//    the oracle's (names, types, inode numbers).
//  - The one operation in flight when the daemon died (its system call failed
//    with ENOTCONN/ECONNABORTED) may have happened or not, atomically: the
//    test looks which one is the case and fails on anything else.
//  - The daemon must mount the store again after every kill (no repair).
//
// Exit codes: 0 all checks passed, 1 a check failed (the seed, the work
// folder and the operations to reproduce are printed), 2 usage.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <xxhash.h>

#include "store/store.h"

#ifndef SNAPFS_BINARY
#error "SNAPFS_BINARY must name the snapfs executable under test"
#endif

namespace snapfs::crash {
namespace {

namespace fsys = std::filesystem;
using store::Generation;
using store::Ino;
using store::InodeRecord;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kMaxFileSize = 4u << 20;
constexpr size_t kMaxOpenFiles = 8;
constexpr size_t kMaxLiveFiles = 40;
constexpr size_t kMaxDirs = 8;
constexpr int kReadyTimeoutMs = 20'000;
constexpr int kExitTimeoutMs = 20'000;

std::string Errno(const std::string& what, int err = errno) {
  return what + ": " + std::strerror(err);
}

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// --- Failure reporting ---------------------------------------------------------

// A check that failed: thrown up to main, which prints how to reproduce.
struct CheckFailure {
  std::string what;
};

[[noreturn]] void Fail(const std::string& what) { throw CheckFailure{what}; }

// --- Emergency cleanup (async-signal-safe) --------------------------------------
// If the test dies by a signal, the daemon is killed and its mount detached,
// so nothing is left behind. Only async-signal-safe calls below.

std::atomic<pid_t> g_daemon_pid{-1};
char g_fusermount[256];
char g_mountpoint[4096];

void EmergencyCleanup(int sig) {
  const pid_t pid = g_daemon_pid.load();
  if (pid > 0) ::kill(pid, SIGKILL);
  if (g_mountpoint[0] != '\0' && g_fusermount[0] != '\0') {
    const pid_t child = ::fork();
    if (child == 0) {
      char u[] = "-u", z[] = "-z";
      char* argv[] = {g_fusermount, u, z, g_mountpoint, nullptr};
      ::execv(g_fusermount, argv);
      ::_exit(127);
    }
    if (child > 0) ::waitpid(child, nullptr, 0);
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void InstallEmergencyCleanup(const std::string& mountpoint) {
  std::snprintf(g_mountpoint, sizeof(g_mountpoint), "%s", mountpoint.c_str());
  for (const char* dir : {"/usr/bin/", "/bin/", "/usr/local/bin/"}) {
    const std::string p = std::string(dir) + "fusermount3";
    if (::access(p.c_str(), X_OK) == 0) {
      std::snprintf(g_fusermount, sizeof(g_fusermount), "%s", p.c_str());
      break;
    }
  }
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS, SIGFPE}) {
    struct sigaction sa {};
    sa.sa_handler = EmergencyCleanup;
    sigemptyset(&sa.sa_mask);
    ::sigaction(sig, &sa, nullptr);
  }
}

// --- Processes -------------------------------------------------------------------

// Waits up to timeout_ms (-1: forever) for child `pid`; its wait status, or
// nullopt on timeout. A pidfd becomes readable when the process ends.
std::optional<int> WaitChild(pid_t pid, int timeout_ms) {
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

// Runs argv to completion, output appended to `log`; its exit code.
int Run(const std::vector<std::string>& args, const std::string& log) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
    }
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  const std::optional<int> st = WaitChild(pid, -1);
  return st && WIFEXITED(*st) ? WEXITSTATUS(*st) : -1;
}

// The snapfs daemon in the foreground (-f) as our child, dying with us
// (PR_SET_PDEATHSIG); readiness from --ready-fd, never from polling.
class Daemon {
 public:
  Daemon(std::string store, std::string mountpoint, std::string log)
      : store_(std::move(store)), mountpoint_(std::move(mountpoint)), log_(std::move(log)) {}
  ~Daemon() {
    if (running()) (void)Unmount();
  }
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  // Mounts; "" or what went wrong (with the daemon's output).
  std::string Start() {
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) != 0) return Errno("pipe");
    std::vector<std::string> args{SNAPFS_BINARY, "-f", "--ready-fd", std::to_string(ready[1]),
                                  store_, mountpoint_};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) return Errno("fork");
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(126);
      const int null = ::open("/dev/null", O_RDONLY);
      const int log = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(null, STDIN_FILENO);
      ::dup2(log, STDOUT_FILENO);
      ::dup2(log, STDERR_FILENO);
      ::fcntl(ready[1], F_SETFD, 0);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(ready[1]);
    pid_ = pid;
    g_daemon_pid = pid;
    pollfd p{ready[0], POLLIN, 0};
    int n;
    do n = ::poll(&p, 1, kReadyTimeoutMs);
    while (n < 0 && errno == EINTR);
    char byte = 0;
    const ssize_t got = n > 0 ? ::read(ready[0], &byte, 1) : 0;
    ::close(ready[0]);
    if (got == 1) return "";
    ::kill(pid_, SIGKILL);
    const std::optional<int> st = WaitChild(pid_, kExitTimeoutMs);
    Forget();
    Run({"fusermount3", "-u", "-z", mountpoint_}, log_);
    return std::string("the daemon did not mount (") +
           (n == 0 ? "no readiness within 20 s" : "it closed --ready-fd") + ", wait status " +
           std::to_string(st ? *st : -1) + "); its log: " + log_ + "\n" + Tail(log_, 20);
  }

  // SIGKILL (a crash), reap, detach the dead mount.
  void Kill9() {
    if (!running()) return;
    ::kill(pid_, SIGKILL);
    Reap();
  }

  // After the daemon died: reap it and clear its dead mount.
  void Reap() {
    (void)WaitChild(pid_, -1);
    Forget();
    Run({"fusermount3", "-u", "-z", mountpoint_}, log_);
  }

  // Clean unmount; "" or what went wrong. The daemon must exit 0.
  std::string Unmount() {
    if (!running()) return "";
    if (Run({"fusermount3", "-u", mountpoint_}, log_) != 0) {
      Kill9();
      return "fusermount3 -u " + mountpoint_ + " failed (busy?); daemon killed";
    }
    std::optional<int> st = WaitChild(pid_, kExitTimeoutMs);
    if (!st) {
      Kill9();
      return "the daemon did not exit after unmount; killed";
    }
    Forget();
    if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0)
      return "the daemon exited with status " + std::to_string(*st) + " after unmount";
    return "";
  }

  static std::string Tail(const std::string& path, int lines) {
    std::ifstream in(path);
    std::vector<std::string> all;
    for (std::string l; std::getline(in, l);) all.push_back(l);
    std::string out;
    for (size_t i = all.size() > static_cast<size_t>(lines) ? all.size() - lines : 0;
         i < all.size(); ++i)
      out += "  | " + all[i] + "\n";
    return out;
  }

 private:
  void Forget() {
    pid_ = -1;
    g_daemon_pid = -1;
  }

  std::string store_, mountpoint_, log_;
  pid_t pid_ = -1;
};

// --- Content -------------------------------------------------------------------

struct Digest {
  uint64_t size = 0;
  XXH128_hash_t hash{};
  bool operator==(const Digest& o) const {
    return size == o.size && hash.low64 == o.hash.low64 && hash.high64 == o.hash.high64;
  }
  std::string ToString() const {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%" PRIu64 "B:%08" PRIx64, size, hash.low64 >> 32);
    return buf;
  }
};

Digest DigestOf(std::string_view bytes) { return {bytes.size(), XXH3_128bits(bytes.data(), bytes.size())}; }

// The bytes a write with `seed` puts down: mostly random (incompressible),
// sometimes a repeated text (compressible) or zeros.
std::string DataFor(uint64_t seed, size_t len) {
  std::string out(len, '\0');
  std::mt19937_64 rng(seed);
  switch (seed % 6) {
    case 0: {
      const std::string text = "snapfs crash test line " + std::to_string(seed % 1000) + "\n";
      for (size_t i = 0; i < len; ++i) out[i] = text[i % text.size()];
      break;
    }
    case 1:
      break;  // Zeros.
    default: {
      size_t i = 0;
      for (; i + 8 <= len; i += 8) {
        const uint64_t v = rng();
        std::memcpy(out.data() + i, &v, 8);
      }
      for (; i < len; ++i) out[i] = static_cast<char>(rng());
    }
  }
  return out;
}

// Reads `path` whole; nullopt and `*err` on failure.
std::optional<std::string> ReadWhole(const std::string& path, std::string* err) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = Errno("open " + path);
    return std::nullopt;
  }
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *err = Errno("read " + path);
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

std::string FirstDifference(std::string_view a, std::string_view b) {
  const size_t common = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < common && a[i] == b[i]) ++i;
  return std::to_string(a.size()) + " bytes, expected " + std::to_string(b.size()) +
         (i < common ? "; first difference at offset " + std::to_string(i) : "");
}

// --- Operations ------------------------------------------------------------------

enum class Kind {
  kCreate, kOpen, kOpenTrunc, kWrite, kRead, kFsync, kClose, kFtruncate, kTruncate,
  kRename, kUnlink, kMkdir, kRmdir, kKillAfter, kKillDuring, kRenameDir,
};

constexpr std::pair<Kind, const char*> kKindNames[] = {
    {Kind::kCreate, "create"},       {Kind::kOpen, "open"},         {Kind::kOpenTrunc, "open-trunc"},
    {Kind::kWrite, "write"},         {Kind::kRead, "read"},         {Kind::kFsync, "fsync"},
    {Kind::kClose, "close"},         {Kind::kFtruncate, "ftruncate"}, {Kind::kTruncate, "truncate"},
    {Kind::kRename, "rename"},       {Kind::kUnlink, "unlink"},     {Kind::kMkdir, "mkdir"},
    {Kind::kRmdir, "rmdir"},         {Kind::kKillAfter, "kill-after"},
    {Kind::kKillDuring, "kill-during"}, {Kind::kRenameDir, "rename-dir"},
};

// One step. `file` names an oracle file (handle operations); `a`, `b` are
// paths relative to the mount. A kill-during step arms a SIGKILL `off`
// microseconds into the step that follows it.
struct Op {
  Op() = default;
  explicit Op(Kind k) : kind(k) {}
  Kind kind = Kind::kWrite;
  int file = -1;
  std::string a, b;
  uint64_t off = 0, len = 0, seed = 0;

  std::string ToString() const {
    std::string s;
    for (const auto& [k, name] : kKindNames)
      if (k == kind) s = name;
    if (file >= 0) s += " f=" + std::to_string(file);
    if (!a.empty()) s += " a=" + a;
    if (!b.empty()) s += " b=" + b;
    if (off) s += " off=" + std::to_string(off);
    if (len) s += " len=" + std::to_string(len);
    if (seed) s += " seed=" + std::to_string(seed);
    return s;
  }

  static std::optional<Op> Parse(const std::string& line) {
    std::istringstream in(line);
    std::string word;
    if (!(in >> word)) return std::nullopt;
    Op op;
    bool known = false;
    for (const auto& [k, name] : kKindNames)
      if (word == name) op.kind = k, known = true;
    if (!known) return std::nullopt;
    while (in >> word) {
      const size_t eq = word.find('=');
      if (eq == std::string::npos) return std::nullopt;
      const std::string key = word.substr(0, eq), value = word.substr(eq + 1);
      if (key == "a") op.a = value;
      else if (key == "b") op.b = value;
      else if (key == "f") op.file = std::stoi(value);
      else if (key == "off") op.off = std::stoull(value);
      else if (key == "len") op.len = std::stoull(value);
      else if (key == "seed") op.seed = std::stoull(value);
      else return std::nullopt;
    }
    return op;
  }
};

// --- The oracle ------------------------------------------------------------------

struct FileModel {
  int id = 0;
  std::string path;                 // "" once unlinked or renamed over.
  Ino ino = 0;
  std::vector<Digest> committed;    // Every committed content, oldest first.
  std::string durable;              // The newest committed content.
  std::string current;              // What reads through the open descriptor show.
  int fd = -1;
  bool dirty = false;               // Writes since the last commit.

  void CommitCurrent() {
    committed.push_back(DigestOf(current));
    durable = current;
    dirty = false;
  }
};

struct Stats {
  uint64_t ops = 0, kills = 0, kills_mid_op = 0, in_flight_applied = 0, commits = 0;
  uint64_t versions_verified = 0, bytes_verified = 0, files_verified = 0, remounts = 0;
  double verify_s = 0, mount_s = 0;
  std::map<std::string, int> mid_op_by_kind;  // Steps the daemon died in.
};

class CrashTest {
 public:
  struct Options {
    uint64_t seed = 1;
    int kills = 100;
    double duration_s = 0;           // > 0: run until then (long mode).
    std::string dir;                 // Work folder; "" = a fresh one under $TMPDIR.
    bool keep = false;
    std::string replay;              // An ops log to run instead of random steps.
    int full_check_every = 10;       // Re-read every version's bytes each K kills.
    bool verbose = false;
  };

  explicit CrashTest(Options o) : o_(std::move(o)), rng_(o_.seed) {}

  int Main() {
    const auto start = Clock::now();
    Setup();
    bool ok = true;
    try {
      Loop(start);
      Finish();
    } catch (const CheckFailure& f) {
      ok = false;
      Report(f.what);
    }
    // Whatever happened: the daemon is stopped and the mount gone.
    CloseAll();
    if (daemon_->running()) {
      const std::string u = daemon_->Unmount();
      if (!u.empty() && ok) {
        ok = false;
        Report("final unmount: " + u);
      }
    }
    std::printf(
        "snapfs_crash_test %s: seed %" PRIu64 ", %" PRIu64 " kill points (%" PRIu64
        " mid-operation, %" PRIu64 " in-flight operations found applied), %" PRIu64
        " operations, %" PRIu64 " committed versions, %" PRIu64 " versions verified in history (%.1f MiB), %" PRIu64
        " file checks in the tree, %.1f s (mounting %.1f s, verifying %.1f s)\n",
        ok ? "PASSED" : "FAILED", o_.seed, stats_.kills, stats_.kills_mid_op,
        stats_.in_flight_applied, stats_.ops, stats_.commits, stats_.versions_verified,
        static_cast<double>(stats_.bytes_verified) / (1 << 20), stats_.files_verified,
        SecondsSince(start), stats_.mount_s, stats_.verify_s);
    if (o_.verbose) {
      std::printf("typical step durations (us):");
      for (const auto& [key, us] : duration_us_)
        std::printf(" %s%s %.0f", kKindNames[key / 2].second, key % 2 ? "+" : "", us);
      std::printf("\n");
    }
    std::printf("killed in the middle of:");
    for (const auto& [name, n] : stats_.mid_op_by_kind) std::printf(" %s %d", name.c_str(), n);
    std::printf("\n");
    if (ok && !o_.keep && made_dir_) {
      std::error_code ec;
      fsys::remove_all(dir_, ec);
    } else {
      std::printf("work folder kept: %s (store, daemon.log, ops.log)\n", dir_.c_str());
    }
    std::fflush(stdout);
    return ok ? 0 : 1;
  }

 private:
  // --- Setup and the main loop ----------------------------------------------

  void Setup() {
    // A mount namespace of our own (root only; skipped if refused): the
    // mounts of this test are invisible elsewhere and vanish with the test,
    // even if it is SIGKILLed (its daemon then dies too: PR_SET_PDEATHSIG).
    if (::unshare(CLONE_NEWNS) == 0) {
      if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
        Fail(Errno("making / private in the test's mount namespace"));
    }
    if (o_.dir.empty()) {
      const char* tmp = std::getenv("TMPDIR");
      std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/snapfs-crash-XXXXXX";
      if (::mkdtemp(tmpl.data()) == nullptr) Fail(Errno("mkdtemp " + tmpl));
      dir_ = tmpl;
      made_dir_ = true;
    } else {
      dir_ = fsys::absolute(o_.dir).lexically_normal();
      fsys::create_directories(dir_);
      if (!fsys::is_empty(dir_)) Fail(dir_ + " is not empty");
    }
    store_ = dir_ + "/store";
    mnt_ = dir_ + "/mnt";
    log_ = dir_ + "/daemon.log";
    fsys::create_directories(mnt_);
    InstallEmergencyCleanup(mnt_);
    ops_log_.open(dir_ + "/ops.log");
    ops_log_ << "# snapfs_crash_test --seed " << o_.seed << "\n";
    if (Run({SNAPFS_BINARY, "--init", store_}, log_) != 0)
      Fail("snapfs --init failed; see " + log_);
    daemon_ = std::make_unique<Daemon>(store_, mnt_, log_);
    Mount();
    dirs_.insert("");
  }

  void Mount() {
    const auto t = Clock::now();
    const std::string err = daemon_->Start();
    stats_.mount_s += SecondsSince(t);
    ++stats_.remounts;
    if (!err.empty()) Fail("the store does not mount (after a crash?): " + err);
  }

  void Loop(Clock::time_point start) {
    if (!o_.replay.empty()) return Replay();
    int until_kill = NextKillDistance();
    bool kill_after_commit = false;
    for (;;) {
      const bool time_up = o_.duration_s > 0 && SecondsSince(start) >= o_.duration_s;
      if (o_.duration_s > 0 ? time_up : static_cast<int>(stats_.kills) >= o_.kills) break;
      if (until_kill-- > 0) {
        const Op op = Generate();
        Step(op, /*kill_after_us=*/-1);
        if (kill_after_commit && (op.kind == Kind::kClose || op.kind == Kind::kFsync)) {
          kill_after_commit = false;
          Op k(Kind::kKillAfter);
          Log(k);
          Crash(std::nullopt);
          until_kill = NextKillDistance();
        }
        continue;
      }
      // A kill point: during the next step (SIGKILL a random number of
      // microseconds into it), right now, or right after the next close/fsync.
      const uint32_t mode = rng_() % 10;
      if (mode < 6) {
        // Mostly one that makes the daemon work (a commit, a big write), so
        // the kill lands inside it; the delay is drawn between 0 and 0.8
        // times what such a step took so far on this machine (the log keeps
        // the delay, so --replay repeats it).
        Op op = Generate();
        for (int tries = 0; tries < 20 && !Heavy(op) && rng_() % 4 != 0; ++tries) {
          op = Generate();
        }
        Op k(Kind::kKillDuring);
        const double typical = Typical(op);
        k.off = static_cast<uint64_t>(typical * 0.8 * static_cast<double>(rng_() % 1000) / 1000.0);
        if (rng_() % 5 < 2) {
          k.len = 1;  // Frozen (see Step).
          k.off = 1000 + rng_() % 2000;
        }
        Log(k);
        Step(op, static_cast<int64_t>(k.off), k.len == 1);
        until_kill = NextKillDistance();
      } else if (mode < 8) {
        Op k(Kind::kKillAfter);
        Log(k);
        Crash(std::nullopt);
        until_kill = NextKillDistance();
      } else {
        kill_after_commit = true;
        until_kill = 1 << 30;
      }
    }
  }

  void Replay() {
    std::ifstream in(o_.replay);
    if (!in) Fail("cannot read " + o_.replay);
    int64_t kill_us = -1;
    bool freeze = false;
    int line_no = 0;
    for (std::string line; std::getline(in, line);) {
      ++line_no;
      if (line.empty() || line[0] == '#') continue;
      const std::optional<Op> op = Op::Parse(line);
      if (!op) Fail(o_.replay + ":" + std::to_string(line_no) + ": cannot parse: " + line);
      if (op->kind == Kind::kKillAfter) {
        Log(*op);
        Crash(std::nullopt);
      } else if (op->kind == Kind::kKillDuring) {
        Log(*op);
        kill_us = static_cast<int64_t>(op->off);
        freeze = op->len == 1;
      } else {
        Step(*op, kill_us, freeze);
        kill_us = -1;
        freeze = false;
      }
    }
  }

  // Whether `op` keeps the daemon busy for a while.
  bool Heavy(const Op& op) {
    switch (op.kind) {
      case Kind::kFsync:
      case Kind::kClose:
        return File(op).dirty;
      case Kind::kWrite:
        return op.len >= (64u << 10);
      case Kind::kCreate:
      case Kind::kOpenTrunc:
      case Kind::kFtruncate:
      case Kind::kTruncate:
      case Kind::kRename:
      case Kind::kRenameDir:
        return true;
      default:
        return false;
    }
  }

  // The mean duration (microseconds) of steps like `op` so far.
  double Typical(const Op& op) {
    auto it = duration_us_.find(DurationKey(op));
    return it == duration_us_.end() ? 500.0 : it->second;
  }
  // Steps are timed by kind; commits apart from no-op closes and fsyncs.
  int DurationKey(const Op& op) {
    int key = static_cast<int>(op.kind) * 2;
    if ((op.kind == Kind::kClose || op.kind == Kind::kFsync) && File(op).dirty) ++key;
    if (op.kind == Kind::kWrite && op.len >= (64u << 10)) ++key;
    return key;
  }

  int NextKillDistance() { return 2 + static_cast<int>(rng_() % 30); }

  void Log(const Op& op) {
    ops_log_ << op.ToString() << "\n";
    ops_log_.flush();
    recent_.push_back(op.ToString());
    if (recent_.size() > 40) recent_.erase(recent_.begin());
    if (o_.verbose) std::printf("%s\n", op.ToString().c_str());
  }

  void Note(const std::string& note) {
    ops_log_ << "# " << note << "\n";
    recent_.push_back("# " + note);
    if (o_.verbose) std::printf("# %s\n", note.c_str());
  }

  // --- Generating steps -------------------------------------------------------

  template <typename T>
  const T& Pick(const std::vector<T>& v) { return v[rng_() % v.size()]; }

  std::vector<FileModel*> Files(bool want_open, bool want_closed, bool linked_only) {
    std::vector<FileModel*> out;
    for (auto& [id, f] : files_) {
      if (linked_only && f.path.empty()) continue;
      if (f.fd >= 0 ? want_open : want_closed) out.push_back(&f);
    }
    return out;
  }
  size_t OpenCount() { return Files(true, false, false).size(); }

  std::string RandomDir() {
    std::vector<std::string> d(dirs_.begin(), dirs_.end());
    return Pick(d);
  }
  static std::string Join(const std::string& dir, const std::string& name) {
    return dir.empty() ? name : dir + "/" + name;
  }
  bool DirEmpty(const std::string& dir) {
    for (const std::string& d : dirs_)
      if (d != dir && d.starts_with(dir + "/")) return false;
    for (const auto& [id, f] : files_)
      if (f.path.starts_with(dir + "/")) return false;
    return true;
  }

  Op Generate() {
    for (;;) {
      const uint32_t r = rng_() % 100;
      auto open = Files(true, false, false);
      auto closed = Files(false, true, true);
      auto linked = Files(true, true, true);
      Op op;
      if (r < 8) {
        if (linked.size() >= kMaxLiveFiles || OpenCount() >= kMaxOpenFiles) continue;
        op.kind = Kind::kCreate;
        op.file = next_file_id_;
        op.a = Join(RandomDir(), "f" + std::to_string(next_file_id_));
      } else if (r < 15) {
        if (closed.empty() || OpenCount() >= kMaxOpenFiles) continue;
        const FileModel* f = Pick(closed);
        op.kind = rng_() % 4 == 0 ? Kind::kOpenTrunc : Kind::kOpen;
        op.file = f->id;
        op.a = f->path;
      } else if (r < 45) {
        if (open.empty()) continue;
        const FileModel* f = Pick(open);
        op.kind = Kind::kWrite;
        op.file = f->id;
        const uint64_t size = f->current.size();
        const uint32_t where = rng_() % 10;
        if (where < 4) op.off = size;                                      // Append.
        else if (where < 7) op.off = size ? rng_() % size : 0;             // Overwrite.
        else if (where < 9) op.off = size + rng_() % (256u << 10);          // Hole, extend.
        else op.off = 0;
        const uint32_t big = rng_() % 20;
        op.len = 1 + (big < 14 ? rng_() % (16u << 10)
                               : big < 19 ? rng_() % (256u << 10) : rng_() % (1536u << 10));
        if (op.off >= kMaxFileSize) op.off = rng_() % kMaxFileSize;
        op.len = std::min<uint64_t>(op.len, kMaxFileSize - op.off);
        if (op.len == 0) op.len = 1;
        op.seed = rng_() | 1;
      } else if (r < 50) {
        if (open.empty()) continue;
        const FileModel* f = Pick(open);
        op.kind = Kind::kRead;
        op.file = f->id;
        op.off = f->current.empty() ? 0 : rng_() % f->current.size();
        op.len = 1 + rng_() % (128u << 10);
      } else if (r < 58) {
        if (open.empty()) continue;
        op.kind = Kind::kFsync;
        op.file = Pick(open)->id;
      } else if (r < 70) {
        if (open.empty()) continue;
        op.kind = Kind::kClose;
        op.file = Pick(open)->id;
      } else if (r < 74) {
        // ftruncate only of a descriptor without unsynced writes: with the
        // kernel's writeback cache, a truncate of a dirty file commits
        // whatever part of the dirty pages reached the daemon, a version no
        // oracle can predict (see docs/testing.md).
        std::vector<FileModel*> clean;
        for (FileModel* f : open)
          if (!f->dirty) clean.push_back(f);
        if (clean.empty()) continue;
        const FileModel* f = Pick(clean);
        op.kind = Kind::kFtruncate;
        op.file = f->id;
        op.len = NewSize(f->current.size());
      } else if (r < 78) {
        std::vector<FileModel*> clean;  // Closed, or open without unsynced writes.
        for (FileModel* f : linked)
          if (!f->dirty) clean.push_back(f);
        if (clean.empty()) continue;
        const FileModel* f = Pick(clean);
        op.kind = Kind::kTruncate;
        op.a = f->path;
        op.len = NewSize(f->current.size());
      } else if (r < 87) {
        if (linked.empty()) continue;
        const FileModel* f = Pick(linked);
        op.kind = Kind::kRename;
        op.a = f->path;
        if (rng_() % 2 == 0 && linked.size() > 1) {
          const FileModel* t = Pick(linked);
          if (t == f) continue;
          op.b = t->path;  // Rename over an existing file.
        } else {
          op.b = Join(RandomDir(), "r" + std::to_string(next_name_++));
        }
      } else if (r < 92) {
        if (linked.empty() || (linked.size() < 6 && rng_() % 2)) continue;
        op.kind = Kind::kUnlink;
        op.a = Pick(linked)->path;
      } else if (r < 96) {
        if (dirs_.size() >= kMaxDirs) continue;
        const std::string parent = RandomDir();
        if (std::count(parent.begin(), parent.end(), '/') >= 2) continue;
        op.kind = Kind::kMkdir;
        op.a = Join(parent, "d" + std::to_string(next_name_++));
      } else if (r < 98) {
        // A folder moves (with everything below it) to a new name or over
        // an empty folder; never into itself.
        std::vector<std::string> movable(dirs_.begin(), dirs_.end());
        movable.erase(movable.begin());  // The root ("").
        if (movable.empty()) continue;
        op.kind = Kind::kRenameDir;
        op.a = Pick(movable);
        const std::string parent = RandomDir();
        if (parent == op.a || parent.starts_with(op.a + "/")) continue;
        std::vector<std::string> targets;
        for (const std::string& d : dirs_)
          if (!d.empty() && d != op.a && !d.starts_with(op.a + "/") && !op.a.starts_with(d + "/") &&
              DirEmpty(d))
            targets.push_back(d);
        op.b = !targets.empty() && rng_() % 3 == 0 ? Pick(targets)
                                                   : Join(parent, "d" + std::to_string(next_name_++));
      } else {
        std::vector<std::string> empty;
        for (const std::string& d : dirs_)
          if (!d.empty() && DirEmpty(d)) empty.push_back(d);
        if (empty.empty()) continue;
        op.kind = Kind::kRmdir;
        op.a = Pick(empty);
      }
      return op;
    }
  }

  uint64_t NewSize(uint64_t size) {
    switch (rng_() % 4) {
      case 0: return 0;
      case 1: return size ? rng_() % size : 0;
      case 2: return std::min<uint64_t>(kMaxFileSize, size + rng_() % (300u << 10));
      default: return size / 2;
    }
  }

  // --- Executing steps ---------------------------------------------------------

  FileModel& File(const Op& op) {
    auto it = files_.find(op.file);
    if (it == files_.end()) Fail("step names unknown file f=" + std::to_string(op.file));
    return it->second;
  }
  FileModel* ByPath(const std::string& path) {
    for (auto& [id, f] : files_)
      if (f.path == path) return &f;
    return nullptr;
  }
  std::string M(const std::string& rel) const { return mnt_ + "/" + rel; }

  // Runs one step; with kill_us >= 0 the daemon is SIGKILLed that many
  // microseconds into it, and the crash is then recovered and verified.
  void Step(const Op& op, int64_t kill_us, bool freeze = false) {
    Log(op);
    ++stats_.ops;
    pending_fd_ = -1;
    int err = 0;
    if (kill_us < 0) {
      const int key = op.file >= 0 && files_.count(op.file) ? DurationKey(op) : -1;
      const auto t0 = Clock::now();
      err = Execute(op);
      if (key >= 0 && err == 0) {
        double& d = duration_us_.try_emplace(key, 500.0).first->second;
        d = 0.8 * d + 0.2 * SecondsSince(t0) * 1e6;
      }
    } else {
      // The step runs on a thread of its own; this one SIGKILLs the daemon
      // kill_us after the step's system call begins. Frozen: the daemon is
      // SIGSTOPped first, so the step's requests wait in the kernel's queue
      // and the kill surely lands in the middle of them.
      const pid_t pid = daemon_->pid();
      if (freeze) ::kill(pid, SIGSTOP);
      std::atomic<bool> started{false};
      std::optional<std::string> failure;
      std::thread worker([&] {
        started = true;
        try {
          err = Execute(op);
        } catch (const CheckFailure& f) {
          failure = f.what;
        }
      });
      while (!started) std::this_thread::yield();
      std::this_thread::sleep_for(std::chrono::microseconds(kill_us));
      ::kill(pid, SIGKILL);
      worker.join();
      if (failure) Fail(*failure);
    }
    const bool fired = kill_us >= 0;
    if (err == 0) {
      Apply(op);
      if (kill_us >= 0) Crash(std::nullopt);
      return;
    }
    const bool daemon_gone = err == ENOTCONN || err == ECONNABORTED || err == EIO;
    if (kill_us >= 0 && fired && daemon_gone) {
      ++stats_.kills_mid_op;
      for (const auto& [k, name] : kKindNames)
        if (k == op.kind) ++stats_.mid_op_by_kind[name];
      Crash(op);
      return;
    }
    Fail("step `" + op.ToString() + "` failed with the daemon up: " + std::strerror(err));
  }

  // The system call(s) of one step; 0 or the errno.
  int Execute(const Op& op) {
    switch (op.kind) {
      case Kind::kCreate: {
        const int fd = ::open(M(op.a).c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0) return errno;
        pending_fd_ = fd;
        return 0;
      }
      case Kind::kOpen:
      case Kind::kOpenTrunc: {
        const int flags = O_RDWR | O_CLOEXEC | (op.kind == Kind::kOpenTrunc ? O_TRUNC : 0);
        const int fd = ::open(M(op.a).c_str(), flags);
        if (fd < 0) return errno;
        pending_fd_ = fd;
        return 0;
      }
      case Kind::kWrite: {
        const std::string data = DataFor(op.seed, op.len);
        size_t done = 0;
        while (done < data.size()) {
          const ssize_t n = ::pwrite(File(op).fd, data.data() + done, data.size() - done,
                                     static_cast<off_t>(op.off + done));
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) return n < 0 ? errno : EIO;
          done += static_cast<size_t>(n);
        }
        return 0;
      }
      case Kind::kRead: {
        FileModel& f = File(op);
        std::string buf(op.len, '\0');
        const ssize_t n = ::pread(f.fd, buf.data(), buf.size(), static_cast<off_t>(op.off));
        if (n < 0) return errno;
        buf.resize(static_cast<size_t>(n));
        const std::string want =
            op.off < f.current.size() ? f.current.substr(op.off, op.len) : std::string();
        if (buf != want)
          Fail("read-your-writes: " + op.ToString() + ": " + FirstDifference(buf, want));
        return 0;
      }
      case Kind::kFsync:
        return ::fsync(File(op).fd) == 0 ? 0 : errno;
      case Kind::kClose: {
        FileModel& f = File(op);
        const int fd = f.fd;
        f.fd = -1;  // Gone whatever close() says.
        return ::close(fd) == 0 ? 0 : errno;
      }
      case Kind::kFtruncate:
        return ::ftruncate(File(op).fd, static_cast<off_t>(op.len)) == 0 ? 0 : errno;
      case Kind::kTruncate:
        return ::truncate(M(op.a).c_str(), static_cast<off_t>(op.len)) == 0 ? 0 : errno;
      case Kind::kRename:
      case Kind::kRenameDir:
        return ::rename(M(op.a).c_str(), M(op.b).c_str()) == 0 ? 0 : errno;
      case Kind::kUnlink:
        return ::unlink(M(op.a).c_str()) == 0 ? 0 : errno;
      case Kind::kMkdir:
        return ::mkdir(M(op.a).c_str(), 0755) == 0 ? 0 : errno;
      case Kind::kRmdir:
        return ::rmdir(M(op.a).c_str()) == 0 ? 0 : errno;
      case Kind::kKillAfter:
      case Kind::kKillDuring:
        break;
    }
    return 0;
  }

  // What a step that returned does to the oracle.
  void Apply(const Op& op) {
    switch (op.kind) {
      case Kind::kCreate: {
        FileModel f;
        f.id = op.file;
        next_file_id_ = std::max(next_file_id_, op.file + 1);
        f.path = op.a;
        f.fd = pending_fd_;
        struct stat st {};
        if (::fstat(f.fd, &st) != 0) Fail(Errno("fstat " + op.a));
        f.ino = st.st_ino;
        f.CommitCurrent();
        ++stats_.commits;
        files_[f.id] = std::move(f);
        break;
      }
      case Kind::kOpen:
      case Kind::kOpenTrunc: {
        FileModel& f = File(op);
        f.fd = pending_fd_;
        if (op.kind == Kind::kOpenTrunc) {
          f.current.clear();
          f.CommitCurrent();
          ++stats_.commits;
        }
        break;
      }
      case Kind::kWrite: {
        FileModel& f = File(op);
        if (f.current.size() < op.off + op.len) f.current.resize(op.off + op.len, '\0');
        const std::string data = DataFor(op.seed, op.len);
        f.current.replace(op.off, op.len, data);
        f.dirty = true;
        break;
      }
      case Kind::kFsync:
      case Kind::kClose: {
        FileModel& f = File(op);
        if (f.dirty) {
          f.CommitCurrent();
          ++stats_.commits;
        }
        break;
      }
      case Kind::kFtruncate: {
        FileModel& f = File(op);
        f.current.resize(op.len, '\0');
        f.CommitCurrent();
        ++stats_.commits;
        break;
      }
      case Kind::kTruncate: {
        FileModel* f = ByPath(op.a);
        if (!f) Fail("truncate of unknown " + op.a);
        f->current.resize(op.len, '\0');
        f->CommitCurrent();
        ++stats_.commits;
        break;
      }
      case Kind::kRename: {
        FileModel* f = ByPath(op.a);
        if (!f) Fail("rename of unknown " + op.a);
        if (FileModel* t = ByPath(op.b)) t->path.clear();
        f->path = op.b;
        break;
      }
      case Kind::kUnlink:
        if (FileModel* f = ByPath(op.a)) f->path.clear();
        break;
      case Kind::kMkdir:
        dirs_.insert(op.a);
        break;
      case Kind::kRenameDir: {
        auto moved = [&](const std::string& p) {
          return p == op.a ? op.b : p.starts_with(op.a + "/") ? op.b + p.substr(op.a.size()) : p;
        };
        std::set<std::string> dirs;
        for (const std::string& d : dirs_)
          if (d != op.b) dirs.insert(moved(d));  // An empty target is replaced.
        dirs_ = std::move(dirs);
        for (auto& [id, f] : files_)
          if (!f.path.empty()) f.path = moved(f.path);
        break;
      }
      case Kind::kRmdir:
        dirs_.erase(op.a);
        break;
      case Kind::kRead:
      case Kind::kKillAfter:
      case Kind::kKillDuring:
        break;
    }
  }

  void CloseAll() {
    for (auto& [id, f] : files_) {
      if (f.fd >= 0) ::close(f.fd);
      f.fd = -1;
    }
  }

  // --- Crash, recovery and verification --------------------------------------

  // The daemon is killed (or already dead): forget unsynced writes, remount,
  // settle the operation that was in flight, verify the tree and the history.
  void Crash(const std::optional<Op>& in_flight) {
    ++stats_.kills;
    daemon_->Kill9();
    // What a close/fsync in flight would have committed.
    std::string pending;
    if (in_flight && (in_flight->kind == Kind::kClose || in_flight->kind == Kind::kFsync))
      pending = File(*in_flight).current;
    // Every descriptor died with the daemon; unsynced writes are allowed to be
    // lost, so what the oracle expects is the newest committed content.
    for (auto& [id, f] : files_) {
      if (f.fd >= 0) ::close(f.fd);
      f.fd = -1;
      f.current = f.durable;
      f.dirty = false;
    }
    Mount();
    const auto t = Clock::now();
    std::unique_ptr<store::Store> s = OpenStore();
    if (in_flight) Settle(*in_flight, pending, *s);
    VerifyTree();
    const bool full = o_.full_check_every > 0 && stats_.kills % o_.full_check_every == 0;
    VerifyHistory(*s, full);
    stats_.verify_s += SecondsSince(t);
  }

  std::unique_ptr<store::Store> OpenStore(bool read_only = true) {
    store::OpenOptions options;
    options.read_only = read_only;
    options.compress_threads = 1;
    Result<std::unique_ptr<store::Store>> s = store::Store::Open(store_, options);
    if (!s.ok()) Fail("the store does not open (read-only=" + std::to_string(read_only) +
                      "): " + s.status().ToString());
    if (Status st = (*s)->CatchUp(); !st.ok()) Fail("catch up: " + st.ToString());
    return std::move(*s);
  }

  std::optional<struct stat> Lstat(const std::string& rel) {
    struct stat st {};
    if (::lstat(M(rel).c_str(), &st) == 0) return st;
    if (errno != ENOENT) Fail(Errno("lstat " + rel));
    return std::nullopt;
  }

  // The newest content of `ino` in the store.
  std::string LatestContent(store::Store& s, Ino ino) {
    Result<std::optional<InodeRecord>> rec = s.GetInode(ino, store::kLatest);
    if (!rec.ok() || !*rec) Fail("inode " + std::to_string(ino) + " missing from the store");
    Result<std::string> bytes = StoredBytes(s, ino, **rec);
    if (!bytes.ok()) Fail("inode " + std::to_string(ino) + ": " + bytes.status().ToString());
    return *bytes;
  }

  // Decides whether the step in flight at the kill happened, from what the
  // store and the mount show; anything but "not at all" or "completely"
  // fails.
  void Settle(const Op& op, const std::string& pending_write, store::Store& s) {
    bool applied = false;
    auto content_settle = [&](FileModel& f, const std::string& pending) {
      const std::string now = LatestContent(s, f.ino);
      if (now == pending) {
        applied = true;
        f.current = pending;
        f.CommitCurrent();
        ++stats_.commits;
      } else if (now != f.durable) {
        Fail("after a kill during `" + op.ToString() + "` " + (f.path.empty() ? "#" + std::to_string(f.id) : f.path) +
             " holds neither its last committed content nor the new one: " +
             FirstDifference(now, f.durable));
      }
    };
    switch (op.kind) {
      case Kind::kWrite:
      case Kind::kRead:
      case Kind::kOpen:
        break;  // Nothing committed by these.
      case Kind::kFsync:
      case Kind::kClose: {
        FileModel& f = File(op);
        if (pending_write != f.durable) content_settle(f, pending_write);
        break;
      }
      case Kind::kFtruncate:
      case Kind::kTruncate: {
        FileModel* f = op.kind == Kind::kFtruncate ? &File(op) : ByPath(op.a);
        if (!f) Fail("in-flight truncate of unknown " + op.a);
        std::string pending = f->durable;
        pending.resize(op.len, '\0');
        content_settle(*f, pending);
        break;
      }
      case Kind::kOpenTrunc:
        content_settle(File(op), "");
        break;
      case Kind::kCreate: {
        if (std::optional<struct stat> st = Lstat(op.a)) {
          applied = true;
          FileModel f;
          f.id = op.file;
          next_file_id_ = std::max(next_file_id_, op.file + 1);
          f.path = op.a;
          f.ino = st->st_ino;
          f.CommitCurrent();
          ++stats_.commits;
          files_[f.id] = std::move(f);
        }
        break;
      }
      case Kind::kRename: {
        FileModel* f = ByPath(op.a);
        FileModel* t = ByPath(op.b);
        const std::optional<struct stat> a = Lstat(op.a), b = Lstat(op.b);
        if (!f) Fail("in-flight rename of unknown " + op.a);
        const bool before = a && a->st_ino == f->ino && (t ? b && b->st_ino == t->ino : !b);
        const bool after = !a && b && b->st_ino == f->ino;
        if (after) {
          applied = true;
          Apply(op);
        } else if (!before) {
          Fail("after a kill during `" + op.ToString() + "` the names are neither as before nor as after");
        }
        break;
      }
      case Kind::kUnlink:
        if (!Lstat(op.a)) {
          applied = true;
          Apply(op);
        }
        break;
      case Kind::kMkdir:
        if (Lstat(op.a)) {
          applied = true;
          Apply(op);
        }
        break;
      case Kind::kRmdir:
        if (!Lstat(op.a)) {
          applied = true;
          Apply(op);
        }
        break;
      case Kind::kRenameDir:
        if (!Lstat(op.a)) {
          if (!Lstat(op.b)) Fail("after a kill during `" + op.ToString() + "` both names are gone");
          applied = true;
          Apply(op);
        }
        break;
      case Kind::kKillAfter:
      case Kind::kKillDuring:
        break;
    }
    if (applied) ++stats_.in_flight_applied;
    Note(std::string("in flight at the kill: ") + op.ToString() + (applied ? ": applied" : ": not applied"));
  }

  // (a) The tree through the fresh mount is exactly the oracle's: the same
  // directories, the same files (by inode number), each with its newest
  // committed content.
  void VerifyTree() {
    std::set<std::string> seen_dirs{""};
    std::map<std::string, Ino> seen_files;
    std::error_code ec;
    for (auto it = fsys::recursive_directory_iterator(mnt_, ec);
         !ec && it != fsys::recursive_directory_iterator(); it.increment(ec)) {
      const std::string rel = it->path().lexically_relative(mnt_);
      struct stat st {};
      if (::lstat(it->path().c_str(), &st) != 0) Fail(Errno("lstat " + rel));
      if (S_ISDIR(st.st_mode)) seen_dirs.insert(rel);
      else if (S_ISREG(st.st_mode)) seen_files[rel] = st.st_ino;
      else Fail(rel + ": unexpected file type");
    }
    if (ec) Fail("walking the mount: " + ec.message());
    if (seen_dirs != dirs_) {
      std::string msg = "directories differ; mount:";
      for (const auto& d : seen_dirs) msg += " '" + d + "'";
      msg += "; oracle:";
      for (const auto& d : dirs_) msg += " '" + d + "'";
      Fail(msg);
    }
    size_t linked = 0;
    for (auto& [id, f] : files_) {
      if (f.path.empty()) continue;
      ++linked;
      auto it = seen_files.find(f.path);
      if (it == seen_files.end()) Fail(f.path + " (f=" + std::to_string(id) + ") is missing after the kill");
      if (it->second != f.ino)
        Fail(f.path + " has inode " + std::to_string(it->second) + ", expected " + std::to_string(f.ino));
      std::string err;
      const std::optional<std::string> bytes = ReadWhole(M(f.path), &err);
      if (!bytes) Fail(err);
      if (*bytes != f.durable)
        Fail(f.path + " (f=" + std::to_string(id) + ") lost committed data: " + FirstDifference(*bytes, f.durable));
      ++stats_.files_verified;
    }
    if (linked != seen_files.size()) {
      std::string msg = "unexpected files in the mount:";
      for (const auto& [p, ino] : seen_files)
        if (!ByPath(p)) msg += " " + p;
      Fail(msg);
    }
  }

  static Result<std::string> StoredBytes(store::Store& s, Ino ino, const InodeRecord& rec) {
    SNAPFS_ASSIGN_OR_RETURN(std::vector<store::Extent> extents, s.GetExtents(ino, rec));
    std::string bytes(rec.size, '\0');
    for (const store::Extent& e : extents) {
      SNAPFS_ASSIGN_OR_RETURN(store::ChunkBytes chunk, s.chunks().Get(e.id));
      if (e.end() > rec.size || size_t{e.chunk_offset} + e.length > chunk->size())
        return Status::Corruption("inode " + std::to_string(ino) + ": extent out of bounds");
      std::memcpy(bytes.data() + e.offset, chunk->data() + e.chunk_offset, e.length);
    }
    return bytes;
  }

  static std::vector<Digest> Collapse(const std::vector<Digest>& v) {
    std::vector<Digest> out;
    for (const Digest& d : v)
      if (out.empty() || !(out.back() == d)) out.push_back(d);
    return out;
  }

  // (b) Every file's history in the store is exactly its committed versions,
  // in order. Versions already read back at an earlier kill are re-read only
  // on a full check (their digest is remembered per content generation).
  void VerifyHistory(store::Store& s, bool full) {
    if (full) digest_cache_.clear();
    for (auto& [id, f] : files_) {
      std::vector<Digest> history;
      Generation last_content = UINT64_MAX;
      std::string error;
      Status st = s.InodeVersions(f.ino, [&](Generation g, const InodeRecord& rec) {
        if (!S_ISREG(rec.mode)) {
          error = "version at generation " + std::to_string(g) + " is not a regular file";
          return false;
        }
        const Generation content = rec.content_gen;
        if (content == last_content && !history.empty() && history.back().size == rec.size)
          return true;
        last_content = content;
        const auto key = std::make_pair(f.ino, std::make_pair(content, rec.size));
        auto cached = digest_cache_.find(key);
        if (cached != digest_cache_.end()) {
          history.push_back(cached->second);
          return true;
        }
        Result<std::string> bytes = StoredBytes(s, f.ino, rec);
        if (!bytes.ok()) {
          error = "version at generation " + std::to_string(g) + " is unreadable: " +
                  bytes.status().ToString();
          return false;
        }
        ++stats_.versions_verified;
        stats_.bytes_verified += bytes->size();
        const Digest d = DigestOf(*bytes);
        digest_cache_[key] = d;
        history.push_back(d);
        return true;
      });
      if (!st.ok()) error = st.ToString();
      const std::string who = (f.path.empty() ? "unlinked file" : f.path) + " (f=" +
                              std::to_string(id) + ", inode " + std::to_string(f.ino) + ")";
      if (!error.empty()) Fail(who + ": " + error);
      const std::vector<Digest> got = Collapse(history), want = Collapse(f.committed);
      if (got != want) {
        std::string msg = who + ": history differs from the committed versions\n  store: ";
        for (const Digest& d : got) msg += d.ToString() + " ";
        msg += "\n  oracle:";
        for (const Digest& d : want) msg += " " + d.ToString();
        Fail(msg);
      }
    }
  }

  // After the run: a clean unmount, then the store opened read-write by the
  // library (no repair) and every version of every file read back in full.
  void Finish() {
    for (FileModel* f : Files(true, false, false)) {
      Op close(Kind::kClose);
      close.file = f->id;
      Step(close, -1);
    }
    const std::string u = daemon_->Unmount();
    if (!u.empty()) Fail("clean unmount: " + u);
    const auto t = Clock::now();
    std::unique_ptr<store::Store> s = OpenStore(/*read_only=*/false);
    VerifyHistory(*s, /*full=*/true);
    s.reset();
    stats_.verify_s += SecondsSince(t);
    Mount();
    VerifyTree();
  }

  // The command line that runs the same steps again.
  std::string Reproduce() const {
    if (!o_.replay.empty()) return "--replay " + o_.replay;
    std::string cmd = "--seed " + std::to_string(o_.seed);
    if (o_.duration_s > 0) return cmd + " --kills " + std::to_string(stats_.kills);
    return cmd + " --kills " + std::to_string(o_.kills);
  }

  void Report(const std::string& what) {
    std::fprintf(stderr,
                 "\nsnapfs_crash_test: CHECK FAILED: %s\n"
                 "  seed %" PRIu64 "; after %" PRIu64 " kill points and %" PRIu64 " operations\n"
                 "  reproduce: snapfs_crash_test %s\n"
                 "  or replay the exact steps: snapfs_crash_test --replay %s/ops.log\n"
                 "  daemon log: %s\n  the last steps:\n",
                 what.c_str(), o_.seed, stats_.kills, stats_.ops, Reproduce().c_str(), dir_.c_str(),
                 log_.c_str());
    for (const std::string& r : recent_) std::fprintf(stderr, "    %s\n", r.c_str());
    std::fprintf(stderr, "  daemon log tail:\n%s", Daemon::Tail(log_, 15).c_str());
  }

  Options o_;
  std::mt19937_64 rng_;
  std::string dir_, store_, mnt_, log_;
  bool made_dir_ = false;
  std::unique_ptr<Daemon> daemon_;
  std::ofstream ops_log_;
  std::vector<std::string> recent_;
  std::map<int, FileModel> files_;
  std::set<std::string> dirs_;
  std::map<std::pair<Ino, std::pair<Generation, uint64_t>>, Digest> digest_cache_;
  std::map<int, double> duration_us_;
  int next_file_id_ = 1;
  int next_name_ = 1;
  int pending_fd_ = -1;
  Stats stats_;
};

int Usage(const char* why) {
  std::fprintf(stderr,
               "snapfs_crash_test: %s\n"
               "usage: snapfs_crash_test [--kills N | --duration SECONDS] [--seed S] [--dir D]\n"
               "                         [--keep] [--replay OPS_LOG] [--full-check-every K] [-v]\n",
               why);
  return 2;
}

}  // namespace
}  // namespace snapfs::crash

int main(int argc, char** argv) {
  using snapfs::crash::CrashTest;
  using snapfs::crash::Usage;
  CrashTest::Options o;
  o.seed = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
        return argv[++i];
      };
      if (a == "--kills") o.kills = std::stoi(value());
      else if (a == "--duration") o.duration_s = std::stod(value());
      else if (a == "--seed") o.seed = std::stoull(value());
      else if (a == "--dir") o.dir = value();
      else if (a == "--keep") o.keep = true;
      else if (a == "--replay") o.replay = value();
      else if (a == "--full-check-every") o.full_check_every = std::stoi(value());
      else if (a == "-v" || a == "--verbose") o.verbose = true;
      else if (a == "-h" || a == "--help") return Usage("help"), 0;
      else return Usage(("unknown argument " + a).c_str());
    }
  } catch (const std::exception& e) {
    return Usage(e.what());
  }
  if (o.kills < 0 || o.duration_s < 0) return Usage("--kills and --duration must be >= 0");
  try {
    return CrashTest(o).Main();
  } catch (const snapfs::crash::CheckFailure& f) {
    std::fprintf(stderr, "snapfs_crash_test: %s\n", f.what.c_str());
    return 1;
  }
}
