// Test helpers for real mounts: the snapfs binary (SNAPFS_BINARY) serving a
// fresh store through /dev/fuse, and snapfs-mount-at (SNAPFS_MOUNT_AT_BINARY)
// serving a past state of it. Tests talk to them only through system calls.
//
//   class MyTest : public snapfs::testing::MountTest {};
//   TEST_F(MyTest, Something) {
//     WriteFile(Path("a"), "x");
//     ASSERT_TRUE(mount().Remount());
//     EXPECT_TRUE(FileHasBytes(Path("a"), "x"));
//   }
//
// The daemon runs in the foreground (-f) as a child of the test, so its exit
// code is checked at unmount; readiness comes from --ready-fd, never from
// polling the mount table. Whatever happens in a test, the mount is gone and
// the temporary folder removed afterwards.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "tests/store/test_util.h"

namespace snapfs::testing {

// A fresh folder under the test temp dir, removed (recursively) when
// destroyed, unless something is still mounted below it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct ProcessResult {
  int exit_code = -1;  // 128 + signal if killed by one; -1 if it could not run.
  std::string output;  // stdout and stderr, interleaved.
};

// Runs `argv` (argv[0] is the program, looked up in PATH) to completion, or
// kills it after `timeout_ms`.
ProcessResult RunProcess(const std::vector<std::string>& argv, int timeout_ms = 60'000);
// Runs the snapfs binary under test with `args`.
ProcessResult RunSnapfs(const std::vector<std::string>& args, int timeout_ms = 60'000);
// Runs snapfs-mount-at (SNAPFS_MOUNT_AT_BINARY) or snapfs-ls (SNAPFS_LS_BINARY)
// under test with `args`.
ProcessResult RunMountAt(const std::vector<std::string>& args, int timeout_ms = 60'000);
ProcessResult RunLs(const std::vector<std::string>& args, int timeout_ms = 60'000);

// Whether something is mounted exactly at `path` (per /proc/self/mounts).
bool IsMountPoint(const std::string& path);
// The process whose command line ends with `last_arg` (a daemonized snapfs
// or snapfs-mount-at, which is no child of the test), or -1.
pid_t FindProcessByLastArg(const std::string& last_arg);
// Waits (without polling) up to `timeout_ms` for a process that is not a
// child of the test to end; whether it did.
bool WaitForProcessEnd(pid_t pid, int timeout_ms);

// One of our FUSE daemons running in the foreground (-f) as a child of the
// test, its stdout and stderr appended to a log file; readiness comes from
// --ready-fd. Stopped (see Unmount) when destroyed.
class ForegroundDaemon {
 public:
  explicit ForegroundDaemon(std::string log_path) : log_(std::move(log_path)) {}
  ~ForegroundDaemon();
  ForegroundDaemon(const ForegroundDaemon&) = delete;
  ForegroundDaemon& operator=(const ForegroundDaemon&) = delete;

  // Runs `binary -f --ready-fd N args...`, which must mount `mountpoint`, and
  // waits up to 20 s for it to report the mount. On failure the daemon is
  // killed, anything it mounted cleared, and its output is in the message.
  ::testing::AssertionResult Start(const std::string& binary, const std::vector<std::string>& args,
                                   const std::string& mountpoint);
  // fusermount3 -u; if that fails (busy), umount -l and SIGKILL. Then waits
  // for the daemon, which must exit 0 after a clean unmount.
  ::testing::AssertionResult Unmount();
  // SIGKILLs the daemon, clears the dead mount (fusermount3 -u -z), reaps it.
  ::testing::AssertionResult Kill9();
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  // What the daemon printed so far.
  std::string Output() const;

 private:
  ::testing::AssertionResult Reap(int timeout_ms, bool expect_clean_exit);

  std::string log_;
  std::string binary_;
  std::string mountpoint_;
  pid_t pid_ = -1;
};

// Unmounts `mountpoint` when destroyed, if something is mounted there: for
// daemons that detached and are no children of the test. fusermount3 -u, and
// fusermount3 -u -z if that fails (the daemon then exits by itself).
class ScopedUnmount {
 public:
  explicit ScopedUnmount(std::string mountpoint) : mountpoint_(std::move(mountpoint)) {}
  ~ScopedUnmount();
  ScopedUnmount(const ScopedUnmount&) = delete;
  ScopedUnmount& operator=(const ScopedUnmount&) = delete;

 private:
  std::string mountpoint_;
};

// A store (made by `snapfs --init`) in a fresh temp dir, and a mount point.
class SnapfsMount {
 public:
  // Creates the store; check ok() (a failure is also reported to gtest).
  SnapfsMount() : SnapfsMount(std::vector<std::string>{}) {}
  // The same, passing `init_args` to snapfs --init (e.g. {"--state-gap", "1s"}).
  explicit SnapfsMount(std::vector<std::string> init_args);
  // Unmounts (see Unmount; failures are reported to gtest) and removes the
  // temp dir.
  ~SnapfsMount();
  SnapfsMount(const SnapfsMount&) = delete;
  SnapfsMount& operator=(const SnapfsMount&) = delete;

  bool ok() const { return ok_; }
  const std::string& store() const { return store_; }
  const std::string& mountpoint() const { return mountpoint_; }
  // A path under the temp dir that is neither the store nor the mount.
  std::string Scratch(std::string_view name) const;
  bool mounted() const { return daemon_.running(); }
  pid_t daemon_pid() const { return daemon_.pid(); }

  // Starts `snapfs -f --ready-fd N [extra_args] STORE MOUNTPOINT` and waits
  // up to 20 s for it to report the mount. On failure the daemon's output is
  // in the message.
  ::testing::AssertionResult Mount(std::vector<std::string> extra_args = {});
  // fusermount3 -u; if that fails (busy), umount -l and SIGKILL. Then waits
  // for the daemon, which must exit 0 after a clean unmount.
  ::testing::AssertionResult Unmount();
  // SIGKILLs the daemon (a crash), clears the dead mount (fusermount3 -u -z)
  // and reaps it. The store is then as a crash left it.
  ::testing::AssertionResult Kill9();
  // Unmount() if mounted, then Mount() with the same extra arguments.
  ::testing::AssertionResult Remount();
  // What the daemon printed so far (it runs in the foreground).
  std::string DaemonOutput() const { return daemon_.Output(); }

 private:
  TempDir dir_;
  std::string store_;
  std::string mountpoint_;
  std::vector<std::string> extra_args_;
  ForegroundDaemon daemon_;  // Declared after dir_: stopped before dir_ is removed.
  bool ok_ = false;
};

// snapfs-mount-at serving the tree of `store` as it stood at `when`, at
// `mountpoint` (created if missing), in the foreground as a child of the
// test, like SnapfsMount. Its log is `mountpoint` + ".log". Unmounted when
// destroyed; destroy it before the SnapfsMount whose temp dir holds it.
class PastMount {
 public:
  PastMount(std::string store, std::string when, std::string mountpoint);
  ~PastMount();  // Unmount(); a failure is reported to gtest.
  PastMount(const PastMount&) = delete;
  PastMount& operator=(const PastMount&) = delete;

  const std::string& mountpoint() const { return mountpoint_; }
  bool mounted() const { return daemon_.running(); }
  pid_t daemon_pid() const { return daemon_.pid(); }
  // Starts `snapfs-mount-at -f --ready-fd N [extra_args] STORE WHEN MOUNTPOINT`
  // and waits for the mount, as SnapfsMount::Mount.
  ::testing::AssertionResult Mount(std::vector<std::string> extra_args = {});
  ::testing::AssertionResult Unmount() { return daemon_.Unmount(); }
  std::string DaemonOutput() const { return daemon_.Output(); }

 private:
  std::string store_;
  std::string when_;
  std::string mountpoint_;
  ForegroundDaemon daemon_;
};

// A fixture with a store mounted before each test and unmounted after it.
class MountTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  SnapfsMount& mount() { return mount_; }
  // `relative` under the mount point.
  std::string Path(std::string_view relative) const;

 private:
  SnapfsMount mount_;
};

// `size` pseudo-random bytes, the same for the same seed (shared with the
// store tests).
using ::snapfs::store::testing::SeededBytes;
// Creates or replaces `path` with `bytes` (open, write, close; fsync if asked).
::testing::AssertionResult WriteFile(const std::string& path, std::string_view bytes,
                                     bool fsync = false);
// The bytes of `path`, or an error in `*error`.
std::string ReadFile(const std::string& path, std::string* error = nullptr);
// Whether `path` holds exactly `expected`; if not, says where they differ.
::testing::AssertionResult FileHasBytes(const std::string& path, std::string_view expected);

}  // namespace snapfs::testing
