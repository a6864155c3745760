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

// After a restart (a new store and Vfs, a fresh PathHints), what memory lost
// comes from the store's history: the content a name had when it was unlinked
// or renamed away, even when its file was rewritten since.
TEST_F(PathHintsTest, AfterARestartWhatLeftAPathComesFromHistory) {
  ASSERT_OK_AND_ASSIGN(Attr dir, vfs_->Mkdir(kRootIno, "d", 0755, kUser));
  ASSERT_OK_AND_ASSIGN(Ino gone, WriteFile(*vfs_, dir.ino, "db.sql", std::string(200000, 'a')));
  const std::vector<store::Extent> gone_extents = ContentOf(gone).second;
  ASSERT_OK(vfs_->Unlink(dir.ino, "db.sql"));
  ASSERT_OK_AND_ASSIGN(Ino moved, WriteFile(*vfs_, dir.ino, "tmp", std::string(200000, 'b')));
  const std::vector<store::Extent> moved_extents = ContentOf(moved).second;
  ASSERT_OK(vfs_->Rename(dir.ino, "tmp", dir.ino, "live", 0));
  // Rewritten under its new name: the content it left "tmp" with still counts.
  ASSERT_OK_AND_ASSIGN(FileHandle fh, vfs_->Open(moved, O_WRONLY | O_TRUNC));
  const std::string rewritten(300000, 'c');
  ASSERT_OK_AND_ASSIGN(size_t n, vfs_->Write(fh, 0, rewritten.data(), rewritten.size()));
  EXPECT_EQ(n, rewritten.size());
  ASSERT_OK(vfs_->Release(fh));
  ASSERT_NE(ContentOf(moved).second, moved_extents);
  ASSERT_NO_FATAL_FAILURE(ReopenAll());

  ASSERT_OK_AND_ASSIGN(Ino db2, WriteFile(*vfs_, dir.ino, "db.sql", "x"));
  ASSERT_OK_AND_ASSIGN(Ino tmp2, WriteFile(*vfs_, dir.ino, "tmp", "y"));
  PathHints hints(store_.get());
  ASSERT_FALSE(gone_extents.empty());
  EXPECT_EQ(hints.Take(dir.ino, "db.sql", db2), gone_extents);
  EXPECT_EQ(hints.Take(dir.ino, "tmp", tmp2), moved_extents);
  EXPECT_TRUE(hints.Take(dir.ino, "never", 99).empty());
  EXPECT_TRUE(hints.Take(kRootIno, "db.sql", 99).empty());  // Another folder.
}

// A name may have a long history (a lock file made and removed every
// minute): the lookup reads it newest first, and no further back than
// kMaxHistoryVersions versions.
TEST_F(PathHintsTest, AfterARestartOnlyTheNewestVersionsOfANameAreRead) {
  ASSERT_OK_AND_ASSIGN(Ino old_file, WriteFile(*vfs_, kRootIno, "f", std::string(100000, 'o')));
  const std::vector<store::Extent> old_extents = ContentOf(old_file).second;
  ASSERT_OK(vfs_->Unlink(kRootIno, "f"));
  // Folders of that name since, two versions each (made, removed).
  auto folders = [&](size_t n) {
    for (size_t i = 0; i < n; ++i) {
      ASSERT_OK_AND_ASSIGN(Attr made, vfs_->Mkdir(kRootIno, "f", 0755, kUser));
      ASSERT_NE(made.ino, old_file);
      ASSERT_OK(vfs_->Rmdir(kRootIno, "f"));
    }
  };
  const size_t within = PathHints::kMaxHistoryVersions / 2 - 2;
  ASSERT_NO_FATAL_FAILURE(folders(within));
  ASSERT_NO_FATAL_FAILURE(ReopenAll());
  ASSERT_FALSE(old_extents.empty());
  EXPECT_EQ(PathHints(store_.get()).Take(kRootIno, "f", 99), old_extents);
  ASSERT_NO_FATAL_FAILURE(folders(4));  // Now past the bound.
  ASSERT_NO_FATAL_FAILURE(ReopenAll());
  EXPECT_TRUE(PathHints(store_.get()).Take(kRootIno, "f", 99).empty());
}

// `rm -rf dump; mkdir dump` after a restart: the new folder takes the place
// of the one that left its name, and each file in it finds the file of its
// name in the folder that left.
TEST_F(PathHintsTest, AfterARestartAFolderMadeAgainFindsTheFilesOfTheOneThatLeft) {
  ASSERT_OK_AND_ASSIGN(Attr old_dir, vfs_->Mkdir(kRootIno, "dump", 0755, kUser));
  ASSERT_OK_AND_ASSIGN(Ino a, WriteFile(*vfs_, old_dir.ino, "a.py", std::string(150000, 'a')));
  const std::vector<store::Extent> a_extents = ContentOf(a).second;
  ASSERT_OK(vfs_->Unlink(old_dir.ino, "a.py"));
  ASSERT_OK(vfs_->Rmdir(kRootIno, "dump"));
  ASSERT_NO_FATAL_FAILURE(ReopenAll());

  PathHints hints(store_.get());
  ASSERT_OK_AND_ASSIGN(Attr new_dir, vfs_->Mkdir(kRootIno, "dump", 0755, kUser));
  hints.DirMade(kRootIno, "dump", new_dir.ino);
  ASSERT_OK_AND_ASSIGN(Ino a2, WriteFile(*vfs_, new_dir.ino, "a.py", "x"));
  ASSERT_FALSE(a_extents.empty());
  EXPECT_EQ(hints.Take(new_dir.ino, "a.py", a2), a_extents);
  EXPECT_TRUE(hints.Take(new_dir.ino, "b.py", 99).empty());
  // A folder made under a name no folder left takes nothing.
  ASSERT_OK_AND_ASSIGN(Attr other, vfs_->Mkdir(kRootIno, "other", 0755, kUser));
  hints.DirMade(kRootIno, "other", other.ino);
  EXPECT_TRUE(hints.Take(other.ino, "a.py", 99).empty());
}

// Dated names after a restart: the siblings are the folder's files, each
// counted as made at its mtime (so one written just now is not a base yet).
TEST_F(PathHintsTest, AfterARestartSiblingsAreTheFolderFilesByMtime) {
  ASSERT_OK_AND_ASSIGN(Attr dir, vfs_->Mkdir(kRootIno, "backups", 0755, kUser));
  ASSERT_OK_AND_ASSIGN(Ino old_one,
                       WriteFile(*vfs_, dir.ino, "db-2026-11-30.sql", std::string(120000, 'o')));
  const int64_t a_day_ago = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::system_clock::now().time_since_epoch() -
                                std::chrono::hours(24))
                                .count();
  SetAttrRequest age;
  age.mtime_ns = a_day_ago;
  ASSERT_OK_AND_ASSIGN(Attr aged, vfs_->SetAttr(old_one, age));
  EXPECT_EQ(aged.mtime_ns, a_day_ago);
  // Its digits match better, but it was written a moment ago.
  ASSERT_OK_AND_ASSIGN(Ino fresh,
                       WriteFile(*vfs_, dir.ino, "db-2026-12-01.sql", std::string(120000, 'n')));
  ASSERT_NE(fresh, old_one);
  const std::vector<store::Extent> old_extents = ContentOf(old_one).second;
  ASSERT_NO_FATAL_FAILURE(ReopenAll());

  PathHints hints(store_.get());
  ASSERT_OK_AND_ASSIGN(Ino today, WriteFile(*vfs_, dir.ino, "db-2026-12-02.sql", "x"));
  ASSERT_FALSE(old_extents.empty());
  EXPECT_EQ(hints.Take(dir.ino, "db-2026-12-02.sql", today), old_extents);
  EXPECT_TRUE(hints.Take(dir.ino, "notes.txt", 99).empty());
}

}  // namespace
}  // namespace snapfs::fs
