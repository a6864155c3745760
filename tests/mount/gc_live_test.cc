// Garbage collection on a live mount: snapfs-prune (drop + GC through the
// daemon's control socket) runs again and again while a process writes,
// through the mount, the very content whose only state was just pruned (the
// dedup-GC race end to end). Every file written reads back exactly, from the
// running daemon and after a remount, and the store's packs shrink.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "tests/mount/mount_fixture.h"

namespace snapfs::testing {
namespace {

using store::testing::ReadWholeFile;
using store::testing::SeededBytes;

bool WriteWhole(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  return ::close(fd) == 0 && done == data.size();
}

uint64_t PacksSize(const std::string& store) {
  uint64_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(store + "/packs")) n += e.file_size();
  return n;
}

TEST(GcLiveTest, PruneAndGcWhileTheDaemonWritesTheSameContent) {
  SnapfsMount live({"--state-gap", "1s"});
  ASSERT_TRUE(live.ok());
  ASSERT_TRUE(live.Mount());
  const std::string mnt = live.mountpoint();
  const std::string x = SeededBytes(1u << 20, 4242);
  // Old states full of garbage, then x alone in one state, then x replaced.
  for (int day = 0; day < 4; ++day) {
    ASSERT_TRUE(WriteWhole(mnt + "/dump", SeededBytes(2u << 20, 100 + day)));
    std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  }
  ASSERT_TRUE(WriteWhole(mnt + "/dump", x));
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  ASSERT_TRUE(WriteWhole(mnt + "/dump", "replaced\n"));
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  // Restart the daemon so the packs written so far are not the current one.
  ASSERT_TRUE(live.Remount());
  const uint64_t before = PacksSize(live.store());

  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::atomic<bool> failed{false};
  std::thread writer([&] {
    for (int k = 0; (!stop.load() && k < 80) || k < 5; ++k) {
      if (!WriteWhole(mnt + "/copy-" + std::to_string(k), x)) {
        failed = true;
        return;
      }
      written++;
    }
  });
  for (int round = 0; round < 4; ++round) {
    const ProcessResult pruned =
        RunProcess({SNAPFS_PRUNE_BINARY, live.store(), "--keep-last", "1"});
    EXPECT_EQ(pruned.exit_code, 0) << pruned.output << live.DaemonOutput();
  }
  stop = true;
  writer.join();
  ASSERT_FALSE(failed.load());
  const ProcessResult last = RunProcess({SNAPFS_PRUNE_BINARY, live.store(), "--keep-last", "1"});
  EXPECT_EQ(last.exit_code, 0) << last.output;

  for (int k = 0; k < written.load(); ++k)
    ASSERT_TRUE(ReadWholeFile(mnt + "/copy-" + std::to_string(k)) == x) << "copy-" << k;
  ASSERT_TRUE(live.Remount());  // A fresh daemon: no cached chunk.
  for (int k = 0; k < written.load(); ++k)
    ASSERT_TRUE(ReadWholeFile(mnt + "/copy-" + std::to_string(k)) == x) << "copy-" << k;
  EXPECT_EQ(ReadWholeFile(mnt + "/dump"), "replaced\n");
  const uint64_t after = PacksSize(live.store());
  std::printf("packs/ %llu -> %llu bytes with %d copies of x written during GC\n",
              static_cast<unsigned long long>(before), static_cast<unsigned long long>(after),
              written.load());
  EXPECT_LT(after + (6u << 20), before);  // At least 6 of the 8 MiB of old dumps are gone.
  ASSERT_TRUE(live.Unmount());
}

}  // namespace
}  // namespace snapfs::testing
