// snapfs::fs::PathHints — remembers, per path, the last regular file that
// left it, so that a file created at that path later can be stored as deltas
// against it.
//
// Why: a dump job that removes its folder first (`rm -rf dump/; dump2py
// dump/`) or writes to a temporary name and renames it into place creates
// new inodes each night. FileContent finds delta bases (docs/design.md,
// "Deltas") only in the file's own earlier content, so without this every
// such night stores whole new chunks, although the files hold yesterday's
// rows with about 1 % changed.
//
// A file leaves a path when it is unlinked or renamed away (its content then
// lives on under the new name, or only in history). The next file created
// at that path takes the hint: the extents of that content become its base
// hints (FileContent::SetPrevious). Hints live in memory only and are
// bounded (kMaxPaths, kMaxPathBytes; the oldest go first): a daemon restart
// loses them, which costs one night's deltas, never data.
//
// A dump written under a new name each night (`db-2026-12-02.sql`) has no
// path that anything left. It takes the hints of its *sibling*: the file
// created before it in the same directory whose name differs only in its
// digits (the same name with each run of digits as '#'), and of those the
// one with the most digit runs equal (`db1-...` goes with `db1-...`, not
// `db2-...`). Only a sibling created at least `min_sibling_age` before
// counts, so the files of one burst (restore_001.py, restore_002.py, ...)
// are not each other's bases: tonight's file goes with last night's.
//
// Paths are found through the directories' ".." entries (store::DirPath) and
// cached per directory; a renamed or removed directory drops the cache.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "store/key_format.h"
#include "store/store.h"

namespace snapfs::fs {

class PathHints {
 public:
  static constexpr size_t kMaxPaths = 16384;
  static constexpr size_t kMaxPathBytes = 4u << 20;
  static constexpr size_t kMaxCachedDirs = 4096;

  static constexpr size_t kMaxSiblings = 64;  // Remembered per name pattern.
  static constexpr std::chrono::seconds kDefaultSiblingAge{300};

  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // `now`: the time siblings are created at (tests pass their own).
  explicit PathHints(store::Store* store,
                     std::chrono::steady_clock::duration min_sibling_age = kDefaultSiblingAge,
                     Clock now = std::chrono::steady_clock::now)
      : store_(store), min_sibling_age_(min_sibling_age), now_(std::move(now)) {}

  // Regular file `ino`, whose content `rec` describes, left `name` in `dir`.
  void Left(store::Ino dir, std::string_view name, store::Ino ino, const store::InodeRecord& rec);
  // Regular file `ino` is being created as `name` in `dir`: the extents of
  // the content that last left that path, which the hint then no longer
  // offers; else those of its sibling as it is now; empty if none or
  // unreadable.
  std::vector<store::Extent> Take(store::Ino dir, std::string_view name, store::Ino ino);
  // Directory `dir` is removed (it alone changes path) or renamed (every
  // directory under it does).
  void DirRemoved(store::Ino dir);
  void DirRenamed();

  size_t size() const;

 private:
  struct Content {
    store::Ino ino;
    store::InodeRecord rec;
    uint64_t seq;  // Its place in order_.
  };
  struct Sibling {
    std::string name;
    store::Ino ino;
    std::chrono::steady_clock::time_point created;
  };
  // The path of `name` in `dir`, or "" if it cannot be found (mu_ held).
  std::string PathOf(store::Ino dir, std::string_view name);
  // Remembers file `ino` created at `path` and returns its sibling's inode
  // (0 if none) (mu_ held).
  store::Ino FindSibling(const std::string& path, store::Ino ino);

  store::Store* const store_;
  const std::chrono::steady_clock::duration min_sibling_age_;
  const Clock now_;
  mutable std::mutex mu_;
  std::unordered_map<store::Ino, std::string> dir_paths_;
  std::unordered_map<std::string, Content> left_;
  std::deque<std::pair<std::string, uint64_t>> order_;  // Oldest first; stale ones skipped.
  uint64_t next_seq_ = 0;
  size_t path_bytes_ = 0;  // Of the keys of left_.
  // Path with digit runs as '#' -> the files created there, oldest first.
  std::unordered_map<std::string, std::deque<Sibling>> siblings_;
  size_t sibling_bytes_ = 0;  // Of the keys and names in siblings_.
};

}  // namespace snapfs::fs
