// Test helpers for real mounts: the snapfs binary (SNAPFS_BINARY) serving a
// fresh store through /dev/fuse. Tests talk to it only through system calls.
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

// A store (made by `snapfs --init`) in a fresh temp dir, and a mount point.
class SnapfsMount {
 public:
  // Creates the store; check ok() (a failure is also reported to gtest).
  SnapfsMount();
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
  bool mounted() const { return pid_ > 0; }
  pid_t daemon_pid() const { return pid_; }

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
  std::string DaemonOutput() const;

 private:
  ::testing::AssertionResult Reap(int timeout_ms, bool expect_clean_exit);

  TempDir dir_;
  std::string store_;
  std::string mountpoint_;
  std::string log_;  // The daemon's stdout and stderr.
  std::vector<std::string> extra_args_;
  pid_t pid_ = -1;
  bool ok_ = false;
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
