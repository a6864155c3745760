// A full disk under the store (docs/operations.md, "When the disk fills up").
// The store lives on a small tmpfs that a ballast file fills; the test frees
// space by deleting the ballast. What must hold:
//  - writes through the mount fail with ENOSPC, at fsync or close (never a
//    close that pretends), and namespace changes too once RocksDB's log is
//    full;
//  - the daemon stays up, and what was committed before reads back exactly,
//    in the live tree and in past states;
//  - once space is freed, writes work again without a remount (RocksDB
//    resumes by itself, polling free space every 5 s);
//  - unmounting on a full disk, mounting on a full disk and `snapfs --init`
//    on a full disk fail cleanly and harm nothing.
// Every tmpfs is unmounted (lazily, if busy) when its test ends, also on
// failure.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/mount/mount_fixture.h"

namespace snapfs::testing {
namespace {

constexpr uint64_t kMiB = 1u << 20;
constexpr int kRecoverySeconds = 30;  // RocksDB polls free space every 5 s.

std::string ErrnoText(int err) { return std::string(::strerrorname_np(err)) + " (" + std::strerror(err) + ")"; }

// A tmpfs of `size_mb` MiB mounted at `path` (created), unmounted when
// destroyed (lazily, so a daemon that still holds it cannot keep it).
class SmallFs {
 public:
  SmallFs(std::string path, int size_mb) : path_(std::move(path)) {
    if (::mkdir(path_.c_str(), 0700) != 0) {
      ADD_FAILURE() << "mkdir " << path_ << ": " << ErrnoText(errno);
      return;
    }
    const std::string opts = "size=" + std::to_string(size_mb) + "m,mode=0700";
    if (::mount("tmpfs", path_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0) {
      ADD_FAILURE() << "mount tmpfs on " << path_ << ": " << ErrnoText(errno);
      return;
    }
    mounted_ = true;
  }
  ~SmallFs() {
    if (mounted_ && ::umount2(path_.c_str(), MNT_DETACH) != 0)
      ADD_FAILURE() << "umount " << path_ << ": " << ErrnoText(errno);
  }
  SmallFs(const SmallFs&) = delete;
  SmallFs& operator=(const SmallFs&) = delete;

  bool ok() const { return mounted_; }
  const std::string& path() const { return path_; }
  uint64_t FreeBytes() const {
    struct statvfs sv {};
    if (::statvfs(path_.c_str(), &sv) != 0) return 0;
    return uint64_t{sv.f_bavail} * sv.f_frsize;
  }

  // Fills the file system with a ballast file, then gives back `leave` bytes.
  ::testing::AssertionResult Fill(uint64_t leave) {
    const std::string ballast = path_ + "/ballast";
    const int fd = ::open(ballast.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return ::testing::AssertionFailure() << "open " << ballast << ": " << ErrnoText(errno);
    const std::string zeros(kMiB, '\0');
    for (;;) {
      const ssize_t n = ::write(fd, zeros.data(), zeros.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno != ENOSPC) {
        const int err = errno;
        ::close(fd);
        return ::testing::AssertionFailure() << "write " << ballast << ": " << ErrnoText(err);
      }
      if (n < static_cast<ssize_t>(zeros.size())) break;
    }
    struct stat st {};
    ::fstat(fd, &st);
    const off_t keep = st.st_size > static_cast<off_t>(leave) ? st.st_size - static_cast<off_t>(leave) : 0;
    const int rc = ::ftruncate(fd, keep);
    ::close(fd);
    if (rc != 0) return ::testing::AssertionFailure() << "truncate ballast: " << ErrnoText(errno);
    return ::testing::AssertionSuccess();
  }
  void Free() { ::unlink((path_ + "/ballast").c_str()); }

 private:
  std::string path_;
  bool mounted_ = false;
};

// The outcome of writing a whole file through the mount: the errno of the
// first failing call (0 if none) and which call it was.
struct WriteOutcome {
  int err = 0;
  std::string call;
};

WriteOutcome WriteWhole(const std::string& path, const std::string& bytes, bool fsync) {
  WriteOutcome out;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return {errno, "open"};
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      out = {errno, "write"};
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (out.err == 0 && fsync && ::fsync(fd) != 0) out = {errno, "fsync"};
  if (::close(fd) != 0 && out.err == 0) out = {errno, "close"};
  return out;
}

// Wall-clock time as a WHEN (`@SECONDS.NANOS`).
std::string NowAsWhen() {
  timespec t{};
  ::clock_gettime(CLOCK_REALTIME, &t);
  char buf[48];
  std::snprintf(buf, sizeof(buf), "@%lld.%09ld", static_cast<long long>(t.tv_sec), t.tv_nsec);
  return buf;
}

class EnospcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs_.ok());
    ASSERT_EQ(::mkdir(mnt_.c_str(), 0755), 0) << ErrnoText(errno);
  }
  ::testing::AssertionResult Init() {
    const ProcessResult r = RunSnapfs({"--init", store_});
    if (r.exit_code != 0) return ::testing::AssertionFailure() << "snapfs --init: " << r.output;
    return ::testing::AssertionSuccess();
  }
  ::testing::AssertionResult Mount() { return daemon_.Start(SNAPFS_BINARY, {store_, mnt_}, mnt_); }
  std::string P(const std::string& rel) const { return mnt_ + "/" + rel; }
  bool DaemonAlive() const { return daemon_.running() && ::kill(daemon_.pid(), 0) == 0; }

  // Files written before the disk fills: a.bin in two versions (the first
  // one's moment is `v1_when_`), b.txt.
  void WriteHistory() {
    ASSERT_TRUE(WriteFile(P("a.bin"), a1_));
    v1_when_ = NowAsWhen();
    ASSERT_TRUE(WriteFile(P("b.txt"), b_));
    ASSERT_TRUE(WriteFile(P("a.bin"), a2_, /*fsync=*/true));
  }
  void ExpectHistoryIntact() {
    EXPECT_TRUE(FileHasBytes(P("a.bin"), a2_));
    EXPECT_TRUE(FileHasBytes(P("b.txt"), b_));
    EXPECT_TRUE(FileHasBytes(P(".snapfs/at/" + v1_when_ + "/a.bin"), a1_));
    struct stat st {};
    EXPECT_NE(::stat(P(".snapfs/at/" + v1_when_ + "/b.txt").c_str(), &st), 0)
        << "b.txt did not exist yet at " << v1_when_;
  }

  TempDir dir_;
  SmallFs fs_{dir_.path() + "/fs", 48};
  std::string store_ = dir_.path() + "/fs/store";
  std::string mnt_ = dir_.path() + "/mnt";
  ForegroundDaemon daemon_{dir_.path() + "/daemon.log"};  // Stopped before fs_ goes.
  const std::string a1_ = SeededBytes(3 * kMiB, 1);
  const std::string a2_ = SeededBytes(3 * kMiB, 2);
  const std::string b_ = "bytes written before the disk filled\n";
  std::string v1_when_;
};

// The main scenario: the store's disk fills up while mounted (RocksDB's log
// had no room reserved, so both pack and log writes fail), then space is
// freed and writing resumes on the same mount.
TEST_F(EnospcTest, FullDiskFailsWithEnospcAndWritesResumeWithoutRemount) {
  ASSERT_TRUE(Init());
  ASSERT_TRUE(Mount());
  ASSERT_NO_FATAL_FAILURE(WriteHistory());
  ASSERT_TRUE(daemon_.Unmount());
  // Mounted with 2 MiB left: RocksDB cannot reserve room for its log.
  ASSERT_TRUE(fs_.Fill(2 * kMiB));
  ASSERT_TRUE(Mount());

  // A big file: its chunks cannot be stored. The error must surface at
  // write, fsync or close, and be ENOSPC.
  const std::string big = SeededBytes(8 * kMiB, 3);
  const WriteOutcome w = WriteWhole(P("big.bin"), big, /*fsync=*/true);
  EXPECT_EQ(w.err, ENOSPC) << "writing 8 MiB on a full disk: " << w.call << " gave "
                           << (w.err ? ErrnoText(w.err) : "no error");
  // Namespace changes fill RocksDB's log until it fails too.
  int made = 0, err = 0;
  for (; made < 200'000; ++made) {
    if (::mkdir(P("d" + std::to_string(made)).c_str(), 0755) != 0) {
      err = errno;
      break;
    }
  }
  EXPECT_EQ(err, ENOSPC) << "after " << made << " mkdirs: " << ErrnoText(err);
  // Also a write of a file that fits nowhere now, and a small one.
  EXPECT_EQ(WriteWhole(P("small.txt"), "x", false).err, ENOSPC);
  EXPECT_GT(made, 0) << "no mkdir worked: the log's room went unused";
  // fsync of a clean file and of a folder: never a dead daemon (a sync of
  // RocksDB's failed log used to abort it). It syncs the packs, which hold
  // the record of every commit that succeeded (the others were synced to the
  // log): success, or ENOSPC.
  {
    const int fd = ::open(P("b.txt").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    if (::fsync(fd) != 0) {
      EXPECT_EQ(errno, ENOSPC);
    }
    ::close(fd);
    const int dfd = ::open(mnt_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(dfd, 0);
    if (::fsync(dfd) != 0) {
      EXPECT_EQ(errno, ENOSPC);
    }
    ::close(dfd);
  }
  // Give RocksDB's recovery thread a round while still full: it must keep
  // failing cleanly (its log lines cannot be written either).
  std::this_thread::sleep_for(std::chrono::milliseconds(5500));
  EXPECT_TRUE(DaemonAlive()) << daemon_.Output();
  EXPECT_EQ(::mkdir(P("still-full").c_str(), 0755), -1);
  EXPECT_EQ(errno, ENOSPC);
  ExpectHistoryIntact();

  // Free space: writing resumes on this mount.
  fs_.Free();
  const std::string after = SeededBytes(2 * kMiB, 4);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kRecoverySeconds);
  WriteOutcome last;
  int attempts = 0;
  do {
    ++attempts;
    last = WriteWhole(P("after.bin"), after, /*fsync=*/true);
    if (last.err == 0) break;
    EXPECT_EQ(last.err, ENOSPC) << last.call;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  } while (std::chrono::steady_clock::now() < deadline);
  ASSERT_EQ(last.err, 0) << "still failing " << kRecoverySeconds << " s after space was freed: "
                         << last.call << ": " << ErrnoText(last.err) << "\n" << daemon_.Output();
  std::printf("writes resumed after %d attempt(s)\n", attempts);
  EXPECT_TRUE(FileHasBytes(P("after.bin"), after));
  EXPECT_EQ(::mkdir(P("after-dir").c_str(), 0755), 0) << ErrnoText(errno);
  EXPECT_TRUE(WriteFile(P("big.bin"), big));  // The write that failed, again.
  ExpectHistoryIntact();
  ASSERT_TRUE(DaemonAlive());

  // Everything is in the store: a fresh mount shows it.
  ASSERT_TRUE(daemon_.Unmount());
  ASSERT_TRUE(Mount());
  ExpectHistoryIntact();
  EXPECT_TRUE(FileHasBytes(P("after.bin"), after));
  EXPECT_TRUE(FileHasBytes(P("big.bin"), big));
  struct stat st {};
  EXPECT_EQ(::stat(P("after-dir").c_str(), &st), 0);
  EXPECT_EQ(::stat(P("d0").c_str(), &st), 0) << "a mkdir that succeeded before the disk filled";
  ASSERT_TRUE(daemon_.Unmount());
}

// The disk fills while the mount has room reserved for RocksDB's log: pack
// writes fail (ENOSPC at close), metadata-only changes still work, and after
// freeing space the file that failed can be written again.
TEST_F(EnospcTest, PackWritesFailWhileLogHasRoomAndResume) {
  ASSERT_TRUE(Init());
  ASSERT_TRUE(Mount());
  ASSERT_NO_FATAL_FAILURE(WriteHistory());
  ASSERT_TRUE(fs_.Fill(0));
  const std::string big = SeededBytes(4 * kMiB, 5);
  const WriteOutcome w = WriteWhole(P("big.bin"), big, /*fsync=*/false);
  EXPECT_EQ(w.err, ENOSPC) << w.call << " gave " << (w.err ? ErrnoText(w.err) : "no error");
  EXPECT_EQ(w.call, "close") << "with the writeback cache, the data reaches the daemon at close";
  ExpectHistoryIntact();
  EXPECT_TRUE(DaemonAlive());
  fs_.Free();
  EXPECT_TRUE(WriteFile(P("big.bin"), big, /*fsync=*/true));
  EXPECT_TRUE(FileHasBytes(P("big.bin"), big));
  ASSERT_TRUE(daemon_.Unmount());
  ASSERT_TRUE(Mount());
  ExpectHistoryIntact();
  EXPECT_TRUE(FileHasBytes(P("big.bin"), big));
  ASSERT_TRUE(daemon_.Unmount());
}

// Unmounting while the disk is full and RocksDB has stopped: the daemon
// exits by itself (no abort), and the store opens with everything committed.
TEST_F(EnospcTest, UnmountOnFullDiskLeavesStoreIntact) {
  ASSERT_TRUE(Init());
  ASSERT_TRUE(Mount());
  ASSERT_NO_FATAL_FAILURE(WriteHistory());
  ASSERT_TRUE(daemon_.Unmount());
  ASSERT_TRUE(fs_.Fill(2 * kMiB));
  ASSERT_TRUE(Mount());
  int err = 0;
  for (int i = 0; i < 200'000 && err == 0; ++i)
    if (::mkdir(P("d" + std::to_string(i)).c_str(), 0755) != 0) err = errno;
  ASSERT_EQ(err, ENOSPC);
  EXPECT_TRUE(daemon_.Unmount()) << "the daemon must exit cleanly on a full disk";
  EXPECT_EQ(daemon_.Output().find("Assertion"), std::string::npos) << daemon_.Output();
  fs_.Free();
  ASSERT_TRUE(Mount());
  ExpectHistoryIntact();
  struct stat st {};
  EXPECT_EQ(::stat(P("d0").c_str(), &st), 0);
  EXPECT_TRUE(WriteFile(P("c.txt"), "after"));
  ASSERT_TRUE(daemon_.Unmount());
}

// Mounting on a disk with no room at all fails with a message that says so,
// and changes nothing: after freeing space the store mounts with its files.
TEST_F(EnospcTest, MountOnFullDiskFailsClearly) {
  ASSERT_TRUE(Init());
  ASSERT_TRUE(Mount());
  ASSERT_NO_FATAL_FAILURE(WriteHistory());
  ASSERT_TRUE(daemon_.Unmount());
  ASSERT_TRUE(fs_.Fill(0));
  const ::testing::AssertionResult m = Mount();
  ASSERT_FALSE(m) << "mounted with no free space";
  EXPECT_NE(std::string(m.message()).find("No space left on device"), std::string::npos)
      << m.message();
  fs_.Free();
  ASSERT_TRUE(Mount());
  ExpectHistoryIntact();
  ASSERT_TRUE(daemon_.Unmount());
}

// snapfs --init on a full disk: a clear error, a non-zero exit code, and no
// half-made store left behind (so --init can simply be run again).
TEST_F(EnospcTest, InitOnFullDiskFailsAndLeavesNothing) {
  ASSERT_TRUE(fs_.Fill(0));
  const ProcessResult r = RunSnapfs({"--init", store_});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("No space left on device"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(store_)) << r.output;
  // Room for a store, but not for everything --init writes (a few 100 KiB).
  fs_.Free();
  ASSERT_TRUE(fs_.Fill(40 << 10));
  const ProcessResult r2 = RunSnapfs({"--init", store_});
  if (r2.exit_code != 0) {
    EXPECT_NE(r2.output.find("No space left on device"), std::string::npos) << r2.output;
    EXPECT_FALSE(std::filesystem::exists(store_)) << r2.output;
  }
  fs_.Free();
  if (std::filesystem::exists(store_)) std::filesystem::remove_all(store_);
  ASSERT_TRUE(Init());
  ASSERT_TRUE(Mount());
  EXPECT_TRUE(WriteFile(P("x"), "y"));
  ASSERT_TRUE(daemon_.Unmount());
}

}  // namespace
}  // namespace snapfs::testing
