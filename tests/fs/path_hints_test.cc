// PathHints (fs/path_hints.h): what left a path is offered once to the next
// file created there, under that path only, and the memory stays bounded.
#include "fs/path_hints.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

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
  EXPECT_TRUE(hints.Take(dir.ino, "g").empty());
  EXPECT_TRUE(hints.Take(kRootIno, "f").empty());
  EXPECT_EQ(hints.Take(dir.ino, "f"), extents);
  EXPECT_TRUE(hints.Take(dir.ino, "f").empty());  // Taken.
  // Not a regular file, or empty: nothing to offer.
  store::InodeRecord empty = rec;
  empty.size = 0;
  hints.Left(dir.ino, "f", ino, empty);
  store::InodeRecord fifo = rec;
  fifo.mode = S_IFIFO | 0644;
  hints.Left(dir.ino, "f", ino, fifo);
  EXPECT_EQ(hints.size(), 0u);
}

TEST_F(PathHintsTest, TheOldestPathsGoFirstPastTheBound) {
  ASSERT_OK_AND_ASSIGN(Ino ino, WriteFile(*vfs_, kRootIno, "f", "some bytes"));
  auto [rec, extents] = ContentOf(ino);
  PathHints hints(store_.get());
  for (size_t i = 0; i < PathHints::kMaxPaths + 10; ++i)
    hints.Left(kRootIno, "n" + std::to_string(i), ino, rec);
  EXPECT_EQ(hints.size(), PathHints::kMaxPaths);
  EXPECT_TRUE(hints.Take(kRootIno, "n9").empty());
  EXPECT_EQ(hints.Take(kRootIno, "n10"), extents);
  // The same path again replaces its hint and keeps it the newest.
  for (int round = 0; round < 3; ++round) hints.Left(kRootIno, "n11", ino, rec);
  for (size_t i = 0; i < PathHints::kMaxPaths; ++i)
    hints.Left(kRootIno, "m" + std::to_string(i % 100), ino, rec);
  EXPECT_EQ(hints.Take(kRootIno, "n11"), extents);
  EXPECT_LE(hints.size(), PathHints::kMaxPaths);
}

}  // namespace
}  // namespace snapfs::fs
