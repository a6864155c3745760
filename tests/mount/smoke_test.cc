// Smoke tests of the snapfs binary: mount, data round trip, remount, crash,
// and the command line's exit codes and messages.
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "tests/mount/mount_fixture.h"

namespace snapfs::testing {
namespace {

constexpr long kFuseSuperMagic = 0x65735546;

bool IsFuseMount(const std::string& path) {
  struct statfs s {};
  return ::statfs(path.c_str(), &s) == 0 && s.f_type == kFuseSuperMagic;
}

using SmokeTest = MountTest;

TEST_F(SmokeTest, TenMegabytesReadBackByteForByteAndAfterRemount) {
  const std::string data = SeededBytes(10 << 20, 42);
  ASSERT_TRUE(WriteFile(Path("random.bin"), data));
  EXPECT_TRUE(FileHasBytes(Path("random.bin"), data));
  ASSERT_TRUE(mount().Remount());
  EXPECT_TRUE(FileHasBytes(Path("random.bin"), data));
}

TEST_F(SmokeTest, FsyncedFileSurvivesKill9) {
  const std::string data = SeededBytes(300'000, 7);
  ASSERT_TRUE(WriteFile(Path("synced.bin"), data, /*fsync=*/true));
  ASSERT_TRUE(mount().Kill9());
  EXPECT_FALSE(IsFuseMount(mount().mountpoint()));
  ASSERT_TRUE(mount().Mount());
  EXPECT_TRUE(FileHasBytes(Path("synced.bin"), data));
}

TEST_F(SmokeTest, SecondMountOfTheSameStoreExits3InUse) {
  const std::string other = mount().Scratch("mnt2");
  ASSERT_EQ(::mkdir(other.c_str(), 0755), 0);
  const ProcessResult r = RunSnapfs({mount().store(), other});
  if (r.exit_code == 0) RunProcess({"fusermount3", "-u", other});
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("in use"), std::string::npos) << r.output;
  EXPECT_FALSE(IsFuseMount(other));
}

TEST(SnapfsCommandTest, MountFstabStyleOptions) {
  SnapfsMount m;
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(m.Mount({"-o", "rw,defaults,_netdev,nofail,noatime,relatime,x-systemd.automount",
                       "-o", "dev,suid,comment=x,zstd=5,cache_mb=16"}));
  ASSERT_TRUE(WriteFile(m.mountpoint() + "/f", "hello"));
  EXPECT_TRUE(FileHasBytes(m.mountpoint() + "/f", "hello"));
}

TEST(SnapfsCommandTest, DaemonModeExitsZeroOnlyOnceMounted) {
  SnapfsMount m;
  ASSERT_TRUE(m.ok());
  const ProcessResult r = RunSnapfs({m.store(), m.mountpoint()});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // No waiting: exit 0 means the mount is up.
  EXPECT_TRUE(IsFuseMount(m.mountpoint()));
  EXPECT_TRUE(WriteFile(m.mountpoint() + "/f", "daemon"));
  EXPECT_TRUE(FileHasBytes(m.mountpoint() + "/f", "daemon"));
  const pid_t daemon = FindProcessByLastArg(m.mountpoint());
  EXPECT_GT(daemon, 0);
  const ProcessResult u = RunProcess({"fusermount3", "-u", m.mountpoint()});
  EXPECT_EQ(u.exit_code, 0) << u.output;
  if (daemon > 0) {
    EXPECT_TRUE(WaitForProcessEnd(daemon, 20'000)) << "the daemon did not exit after unmount";
  }
}

TEST(SnapfsCommandTest, MissingStoreExits3AndShowsInitCommand) {
  SnapfsMount m;
  const std::string missing = m.Scratch("no-such-store");
  const ProcessResult r = RunSnapfs({missing, m.mountpoint()});
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("snapfs --init " + missing), std::string::npos) << r.output;
  EXPECT_FALSE(IsFuseMount(m.mountpoint()));
}

TEST(SnapfsCommandTest, MissingMountPointExits4) {
  SnapfsMount m;
  ASSERT_TRUE(m.ok());
  const ProcessResult r = RunSnapfs({m.store(), m.Scratch("no-such-dir")});
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_NE(r.output.find("snapfs: mount point"), std::string::npos) << r.output;
}

TEST(SnapfsCommandTest, UnknownFuseOptionExits2) {
  SnapfsMount m;
  ASSERT_TRUE(m.ok());
  const ProcessResult r = RunSnapfs({"-o", "no_such_option", m.store(), m.mountpoint()});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("no_such_option"), std::string::npos) << r.output;
  EXPECT_FALSE(IsFuseMount(m.mountpoint()));
}

TEST(SnapfsCommandTest, InitOnAnExistingStoreFailsAndChangesNothing) {
  SnapfsMount m;
  ASSERT_TRUE(m.ok());
  const auto before = store::testing::Snapshot(m.store());
  const ProcessResult r = RunSnapfs({"--init", m.store()});
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("snapfs: "), std::string::npos) << r.output;
  EXPECT_EQ(store::testing::Snapshot(m.store()), before);
}

TEST(SnapfsCommandTest, VersionAndUsageErrors) {
  ProcessResult r = RunSnapfs({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output, "snapfs " SNAPFS_VERSION "\n");
  r = RunSnapfs({"--no-such-flag"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = RunSnapfs({"only-a-store"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

// --- Reads ---------------------------------------------------------------------

// Drops the kernel's cached pages (dirty ones are written to the daemon
// first), so the next reads reach the daemon. Root only; a no-op otherwise.
void DropKernelCaches() {
  if (::geteuid() != 0) return;
  ::sync();
  if (FILE* f = std::fopen("/proc/sys/vm/drop_caches", "w")) {
    std::fputs("3", f);
    std::fclose(f);
  }
}

// pread()s of `fd` in the kernel's request sizes and across chunk boundaries
// give the bytes of `want`.
::testing::AssertionResult PreadsMatch(int fd, const std::string& want) {
  std::vector<std::pair<uint64_t, size_t>> reads;
  for (uint64_t at = 0; at < want.size(); at += 1 << 20) reads.push_back({at, 1 << 20});
  for (uint64_t at = 3; at < want.size() + 1000; at += 333'333) reads.push_back({at, 100'000});
  std::string buf;
  for (const auto& [offset, len] : reads) {
    buf.assign(len, 'x');
    const ssize_t n = ::pread(fd, buf.data(), len, static_cast<off_t>(offset));
    const std::string expected = want.substr(std::min<uint64_t>(offset, want.size()), len);
    if (n != static_cast<ssize_t>(expected.size()) || buf.compare(0, n, expected) != 0)
      return ::testing::AssertionFailure() << "pread of " << len << " at " << offset << " gave "
                                           << n << " bytes, not the " << expected.size() << " written";
  }
  return ::testing::AssertionSuccess();
}

// The read replies gather their bytes from the decoded chunks; dirty bytes
// and holes are copied. Either way the bytes are the file's, now and in the past.
TEST_F(SmokeTest, ReadsOfChunksHolesAndDirtyBytesGiveTheFilesBytesNowAndInThePast) {
  std::string first = SeededBytes(3 << 20, 43);
  first.resize(5 << 20, '\0');  // A hole ...
  first += SeededBytes(1 << 20, 44);  // ... then more data.
  {
    const int fd = ::open(Path("f").c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, first.data(), 3 << 20, 0), 3 << 20);
    ASSERT_EQ(::pwrite(fd, first.data() + (5 << 20), 1 << 20, 5 << 20), 1 << 20);
    ASSERT_EQ(::close(fd), 0);
  }
  timespec t{};
  ::clock_gettime(CLOCK_REALTIME, &t);
  char when[64];
  std::snprintf(when, sizeof(when), "@%lld.%09ld", static_cast<long long>(t.tv_sec), t.tv_nsec);
  DropKernelCaches();
  const int fd = ::open(Path("f").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(PreadsMatch(fd, first));
  std::string now = first;
  const std::string fresh = SeededBytes(300'000, 45);
  ASSERT_EQ(::pwrite(fd, fresh.data(), fresh.size(), 1'000'007), static_cast<ssize_t>(fresh.size()));
  now.replace(1'000'007, fresh.size(), fresh);
  DropKernelCaches();  // The daemon holds the write as dirty bytes, not yet chunks.
  EXPECT_TRUE(PreadsMatch(fd, now));
  ASSERT_EQ(::close(fd), 0);
  ASSERT_TRUE(mount().Remount());
  EXPECT_TRUE(FileHasBytes(Path("f"), now));
  {
    PastMount past(mount().store(), when, mount().Scratch("past"));
    ASSERT_TRUE(past.Mount());
    const int pfd = ::open((past.mountpoint() + "/f").c_str(), O_RDONLY);
    ASSERT_GE(pfd, 0);
    EXPECT_TRUE(PreadsMatch(pfd, first));
    ::close(pfd);
  }
}

// The kernel reads a FUSE file ahead by the mount's read_ahead_kb, 128 KiB
// unless raised; the daemon raises it for its own mount (fs/fuse_bridge.h).
TEST_F(SmokeTest, TheMountsReadAheadIsRaisedTo4MiB) {
  if (::geteuid() != 0) GTEST_SKIP() << "only root may raise read_ahead_kb";
  struct stat st {};
  ASSERT_EQ(::stat(mount().mountpoint().c_str(), &st), 0);
  const std::string knob = "/sys/class/bdi/" + std::to_string(major(st.st_dev)) + ":" +
                           std::to_string(minor(st.st_dev)) + "/read_ahead_kb";
  std::string error;
  EXPECT_EQ(ReadFile(knob, &error), "4096\n") << knob << ": " << error;
}

}  // namespace
}  // namespace snapfs::testing
