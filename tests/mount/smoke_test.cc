// Smoke tests of the snapfs binary: mount, data round trip, remount, crash,
// and the command line's exit codes and messages.
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <string>

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

}  // namespace
}  // namespace snapfs::testing
