// PathHints (fs/path_hints.h): what left a path is offered once to the next
// file created there, under that path only, and the memory stays bounded.
#include "fs/path_hints.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <chrono>
#include <map>

#include "tests/fs/vfs_test_util.h"

namespace snapfs::fs {
namespace {

using testing::kRootIno;
using testing::kUser;
using testing::WriteFile;

class PathHintsTest : public testing::VfsTestBase {
 protected:
  // The current record and extents of `ino`.
  std::pair<store::InodeRecord, std::vector<store::Extent>> ContentOf(Ino ino) {
    Result<std::optional<store::InodeRecord>> rec = store_->GetInode(ino, store::kLatest);
    EXPECT_OK(rec);
    if (!rec.ok() || !*rec) return {};
    Result<std::vector<store::Extent>> extents = store_->GetExtents(ino, **rec);
    EXPECT_OK(extents);
    return {**rec, extents.ok() ? *extents : std::vector<store::Extent>{}};
  }
};

TEST_F(PathHintsTest, WhatLeftAPathIsOfferedOnceToThatPathOnly) {
  ASSERT_OK_AND_ASSIGN(Attr dir, vfs_->Mkdir(kRootIno, "d", 0755, kUser));
  ASSERT_OK_AND_ASSIGN(Ino ino, WriteFile(*vfs_, dir.ino, "f", std::string(200000, 'x')));
  auto [rec, extents] = ContentOf(ino);
  ASSERT_FALSE(extents.empty());
  PathHints hints(store_.get());
  hints.Left(dir.ino, "f", ino, rec);
  EXPECT_TRUE(hints.Take(dir.ino, "g", 99).empty());
  EXPECT_TRUE(hints.Take(kRootIno, "f", 99).empty());
  EXPECT_EQ(hints.Take(dir.ino, "f", 99), extents);
  EXPECT_TRUE(hints.Take(dir.ino, "f", 99).empty());  // Taken.
  // Not a regular file, or empty: nothing to offer.
  store::InodeRecord empty = rec;
  empty.size = 0;
  hints.Left(dir.ino, "f", ino, empty);
  store::InodeRecord fifo = rec;
  fifo.mode = S_IFIFO | 0644;
  hints.Left(dir.ino, "f", ino, fifo);
  EXPECT_EQ(hints.size(), 0u);
}

TEST_F(PathHintsTest, ANewNameTakesTheSiblingWhoseDigitsMatchMost) {
  ASSERT_OK_AND_ASSIGN(Attr dir, vfs_->Mkdir(kRootIno, "backups", 0755, kUser));
  std::map<std::string, Ino> inos;
  for (const char* name : {"db1-2026-12-01.sql", "db2-2026-12-01.sql", "db1-2026-12-02.sql",
                           "db2-2026-12-02.sql", "other-2026-12-02.txt", "notes"}) {
    std::string bytes;
    while (bytes.size() < 100000) bytes += name;
    ASSERT_OK_AND_ASSIGN(inos[name], WriteFile(*vfs_, dir.ino, name, bytes));
  }
  // Nights a day of the test's clock apart, the files of a night a second.
  auto now = std::chrono::steady_clock::time_point{};
  PathHints hints(store_.get(), std::chrono::minutes(5), [&] { return now; });
  auto take = [&](const std::string& name) {
    now += std::chrono::seconds(1);
    return hints.Take(dir.ino, name, inos[name]);
  };
  EXPECT_TRUE(take("db1-2026-12-01.sql").empty());
  EXPECT_TRUE(take("db2-2026-12-01.sql").empty());  // Not db1's: one burst.
  now += std::chrono::hours(24);
  // The next night, each goes with its own of the night before.
  EXPECT_EQ(take("db1-2026-12-02.sql"), ContentOf(inos["db1-2026-12-01.sql"]).second);
  EXPECT_EQ(take("db2-2026-12-02.sql"), ContentOf(inos["db2-2026-12-01.sql"]).second);
  EXPECT_TRUE(take("other-2026-12-02.txt").empty());
  EXPECT_TRUE(take("notes").empty());
  EXPECT_TRUE(hints.Take(kRootIno, "db1-2026-12-03.sql", 99).empty());  // Another folder.
}

TEST_F(PathHintsTest, TheOldestPathsGoFirstPastTheBound) {
  ASSERT_OK_AND_ASSIGN(Ino ino, WriteFile(*vfs_, kRootIno, "f", "some bytes"));
  auto [rec, extents] = ContentOf(ino);
  PathHints hints(store_.get());
  for (size_t i = 0; i < PathHints::kMaxEntries + 10; ++i)
    hints.Left(kRootIno, "n" + std::to_string(i), ino, rec);
  EXPECT_EQ(hints.size(), PathHints::kMaxEntries);
  EXPECT_TRUE(hints.Take(kRootIno, "n9", 99).empty());
  EXPECT_EQ(hints.Take(kRootIno, "n10", 99), extents);
  // The same path again replaces its hint and keeps it the newest.
  for (int round = 0; round < 3; ++round) hints.Left(kRootIno, "n11", ino, rec);
  for (size_t i = 0; i < PathHints::kMaxEntries; ++i)
    hints.Left(kRootIno, "m" + std::to_string(i % 100), ino, rec);
  EXPECT_EQ(hints.Take(kRootIno, "n11", 99), extents);
  EXPECT_LE(hints.size(), PathHints::kMaxEntries);
}

}  // namespace
}  // namespace snapfs::fs
