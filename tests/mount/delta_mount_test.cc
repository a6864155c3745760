// Codec 2 through a real mount: a dump rewritten in place (O_TRUNC, then the
// kernel's writeback of 1 MiB writes) with ~1 % of its rows changed costs a
// small fraction of the first day, and both days read back exactly, live
// and through snapfs-mount-at; snapfs-check passes. With deferred compression
// (the default) the same holds once `snapfs --settle` has run.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "bench/dump_data.h"
#include "store/store.h"
#include "tests/mount/mount_fixture.h"
#include "tests/store/test_util.h"

namespace snapfs::testing {
namespace {

std::string DumpText(size_t bytes, int day) { return bench::SqlDumpPrefix(bytes, day, 5); }

uint64_t PacksBytes(const std::string& store) {
  uint64_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(store + "/packs")) n += e.file_size();
  return n;
}

TEST(DeltaMountTest, ADumpRewrittenInPlaceCostsAFractionOfDayOneAndBothDaysReadBack) {
  SnapfsMount m({"--state-gap", "1s"});
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(m.Mount({"-o", "defer_mb=0"}));  // Compressed at once: packs/ tells.
  const std::string path = m.mountpoint() + "/dump.sql";
  const std::string day1 = DumpText(8u << 20, 1), day2 = DumpText(8u << 20, 2);
  const uint64_t empty = PacksBytes(m.store());
  ASSERT_TRUE(WriteFile(path, day1));
  const uint64_t after1 = PacksBytes(m.store());
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // The state gap is 1 s.
  ASSERT_TRUE(WriteFile(path, day2));
  const uint64_t after2 = PacksBytes(m.store());
  // Without deltas day 2 costs as much as day 1 (~2.8 MB here).
  EXPECT_LT((after2 - after1) * 5, after1 - empty) << after1 - empty << " then " << after2 - after1;
  EXPECT_TRUE(FileHasBytes(path, day2));
  ASSERT_TRUE(m.Remount());  // No cache: day 2 is read from its deltas and their bases.
  EXPECT_TRUE(FileHasBytes(path, day2));

  std::vector<store::State> states;
  {
    store::OpenOptions options;
    options.read_only = true;
    options.compress_threads = 1;
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<store::Store> s, store::Store::Open(m.store(), options));
    ASSERT_OK(s->ListStates(1, [&](const store::State& st) {
      states.push_back(st);
      return true;
    }));
  }
  ASSERT_GE(states.size(), 2u);
  {
    PastMount past(m.store(), "s" + std::to_string(states[states.size() - 2].first_gen),
                   m.Scratch("day1"));
    ASSERT_TRUE(past.Mount());
    EXPECT_TRUE(FileHasBytes(past.mountpoint() + "/dump.sql", day1));
  }
  ASSERT_TRUE(m.Unmount());
  const ProcessResult check = RunProcess({SNAPFS_CHECK_BINARY, m.store()});
  EXPECT_EQ(check.exit_code, 0) << check.output;
}

std::vector<store::State> States(const std::string& store_path) {
  std::vector<store::State> states;
  store::OpenOptions options;
  options.read_only = true;
  options.compress_threads = 1;
  Result<std::unique_ptr<store::Store>> s = store::Store::Open(store_path, options);
  EXPECT_OK(s);
  if (!s.ok()) return states;
  EXPECT_OK((*s)->ListStates(1, [&](const store::State& st) {
    states.push_back(st);
    return true;
  }));
  return states;
}

TEST(DeltaMountTest, WithDeferredCompressionSettleGivesTheSameSizesThroughTheDaemon) {
  SnapfsMount m({"--state-gap", "1s"});
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(m.Mount({"-o", "defer_mb=1"}));  // Deferred as soon as 1 MiB waits.
  const std::string path = m.mountpoint() + "/dump.sql";
  const std::string day1 = DumpText(16u << 20, 1), day2 = DumpText(16u << 20, 2);
  ASSERT_TRUE(WriteFile(path, day1));
  // Day 1 settled first (a raw chunk is never a base), as the idle daemon
  // does between two nightly dumps.
  const ProcessResult first = RunProcess({SNAPFS_BINARY, "--settle", m.store()});
  ASSERT_EQ(first.exit_code, 0) << first.output << m.DaemonOutput();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_TRUE(WriteFile(path, day2));
  const ProcessResult settled = RunProcess({SNAPFS_BINARY, "--settle", m.store()});
  ASSERT_EQ(settled.exit_code, 0) << settled.output << m.DaemonOutput();
  EXPECT_NE(settled.output.find("settled "), std::string::npos) << settled.output;
  std::printf("[ figures  ] day 1: %s[ figures  ] day 2: %s", first.output.c_str(),
              settled.output.c_str());
  EXPECT_TRUE(FileHasBytes(path, day2));
  ASSERT_TRUE(m.Remount());
  EXPECT_TRUE(FileHasBytes(path, day2));
  ASSERT_TRUE(m.Unmount());
  // Whatever was deferred is settled now: each state counts its chunks as
  // stored compressed, and day 2 as deltas against day 1.
  const std::vector<store::State> states = States(m.store());
  ASSERT_GE(states.size(), 2u);
  const uint64_t s1 = states[states.size() - 2].bytes_stored, s2 = states.back().bytes_stored;
  EXPECT_LT(s1 * 2, day1.size()) << s1;
  EXPECT_LT(s2 * 5, s1) << s1 << " then " << s2;
  const ProcessResult again = RunProcess({SNAPFS_BINARY, "--settle", m.store()});  // Unmounted.
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("settled 0 chunks"), std::string::npos) << again.output;
  const ProcessResult check = RunProcess({SNAPFS_CHECK_BINARY, m.store()});
  EXPECT_EQ(check.exit_code, 0) << check.output;
}

// The nightly jobs whose file is new each night, with the daemon restarted
// (a reboot) between two nights: the path hints it had in memory are gone,
// and the store's history stands in (fs/path_hints.h). Night 2 still costs a
// fraction of night 1.
TEST(DeltaMountTest, NewFilesAfterADaemonRestartAreStillStoredAsDeltas) {
  SnapfsMount m({"--state-gap", "1s"});
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(m.Mount({"-o", "defer_mb=0"}));  // Compressed at once: packs/ tells.
  const std::string dir = m.mountpoint();
  const std::string day1 = DumpText(8u << 20, 1), day2 = DumpText(8u << 20, 2);
  const std::string dated1 = DumpText(8u << 20, 11), dated2 = DumpText(8u << 20, 12);
  // Each night one job writes a temporary name and renames it into place,
  // one writes a dated name. Returns what each added to the packs.
  auto night = [&](const std::string& dump, const std::string& dated_name,
                   const std::string& dated) -> std::pair<uint64_t, uint64_t> {
    uint64_t before = PacksBytes(m.store());
    EXPECT_TRUE(WriteFile(dir + "/db.sql.tmp", dump));
    std::filesystem::rename(dir + "/db.sql.tmp", dir + "/db.sql");
    const uint64_t renamed = PacksBytes(m.store()) - before;
    before = PacksBytes(m.store());
    EXPECT_TRUE(WriteFile(dir + "/" + dated_name, dated));
    return {renamed, PacksBytes(m.store()) - before};
  };
  const auto [renamed1, dated_night1] = night(day1, "app-2026-12-01.sql", dated1);
  // Made a day ago: siblings count from 5 minutes old.
  std::filesystem::last_write_time(dir + "/app-2026-12-01.sql",
                                   std::filesystem::file_time_type::clock::now() -
                                       std::chrono::hours(24));
  ASSERT_TRUE(m.Remount());
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // The state gap is 1 s.
  const auto [renamed2, dated_night2] = night(day2, "app-2026-12-02.sql", dated2);
  std::printf("[ figures  ] renamed into place: %llu then %llu bytes; dated: %llu then %llu\n",
              static_cast<unsigned long long>(renamed1), static_cast<unsigned long long>(renamed2),
              static_cast<unsigned long long>(dated_night1),
              static_cast<unsigned long long>(dated_night2));
  // Without a base night 2 costs as much as night 1 (~2.9 MB each here).
  EXPECT_LT(renamed2 * 5, renamed1) << renamed1 << " then " << renamed2;
  EXPECT_LT(dated_night2 * 5, dated_night1) << dated_night1 << " then " << dated_night2;
  EXPECT_TRUE(FileHasBytes(dir + "/db.sql", day2));
  EXPECT_TRUE(FileHasBytes(dir + "/app-2026-12-01.sql", dated1));
  EXPECT_TRUE(FileHasBytes(dir + "/app-2026-12-02.sql", dated2));
  ASSERT_TRUE(m.Unmount());
  const ProcessResult check = RunProcess({SNAPFS_CHECK_BINARY, m.store()});
  EXPECT_EQ(check.exit_code, 0) << check.output;
}

}  // namespace
}  // namespace snapfs::testing
