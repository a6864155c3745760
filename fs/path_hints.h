// snapfs::fs::PathHints — remembers the last regular file that left each
// name of a folder, so that a file created there later can be stored as
// deltas against it.
//
// Why: a dump job that removes its folder first (`rm -rf dump/; dump2py
// dump/`) or writes to a temporary name and renames it into place creates
// new inodes each night. FileContent finds delta bases (docs/design.md,
// "Deltas") only in the file's own earlier content, so without this every
// such night stores whole new chunks, although the files hold yesterday's
// rows with about 1 % changed.
//
// A file leaves a name when it is unlinked or renamed away (its content then
// lives on under the new name, or only in history). The next file created
// under that name takes the hint: the extents of that content become its
// base hints (FileContent::SetPrevious).
//
// Folders are told apart by *identity*, not by path, so that nothing here
// needs to find a path (one listing of each ancestor): a folder made where
// another folder left (removed, or renamed away) takes that folder's
// identity, so `dump/` written again after `rm -rf dump/` is the same folder
// here. If the folder that left still exists (`mv dump dump.old; mkdir dump`),
// a new file takes the content of the file of its name in it first.
//
// A dump written under a new name each night (`db-2026-12-02.sql`) has no
// name that anything left. It takes the hints of its *sibling*: the file
// created before it in the same folder whose name differs only in its digits
// (the name with each run of digits as '#'), and of those the one with the
// most digit runs equal (`db1-...` goes with `db1-...`, not `db2-...`). Only
// a sibling created at least `min_sibling_age` before counts, so the files
// of one burst (restore_001.py, restore_002.py, ...) are not each other's
// bases: tonight's file goes with last night's.
//
// Hints live in memory and are bounded (kMaxEntries per map, the oldest go
// first; kMaxSiblings per name pattern). What memory lacks (after a daemon
// restart, or once evicted) is looked up in the store's history, which keeps
// every name a folder held: the file that last left the name (in the folder,
// or in the folder it took the place of), and the folder that last left a
// folder's name. Siblings come from the folder's files as they are when the
// first name with digits is created there (one listing per folder), each
// counted as created at its mtime.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
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
  static constexpr size_t kMaxEntries = 16384;
  static constexpr size_t kMaxNameBytes = 4u << 20;  // Of the names kept, per map.
  static constexpr size_t kMaxSiblings = 64;          // Remembered per name pattern.
  static constexpr std::chrono::seconds kDefaultSiblingAge{300};
  // Versions of a name looked at in the store's history, newest first.
  static constexpr size_t kMaxHistoryVersions = 256;

  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // `now`: the time siblings are created at (tests pass their own).
  explicit PathHints(store::Store* store,
                     std::chrono::steady_clock::duration min_sibling_age = kDefaultSiblingAge,
                     Clock now = std::chrono::steady_clock::now);

  // Regular file `ino`, whose content `rec` describes, left `name` in `dir`.
  void Left(store::Ino dir, std::string_view name, store::Ino ino, const store::InodeRecord& rec);
  // Folder `ino` left `name` in `dir` (removed or renamed away).
  void DirLeft(store::Ino dir, std::string_view name, store::Ino ino);
  // Folder `ino` was made as `name` in `dir`.
  void DirMade(store::Ino dir, std::string_view name, store::Ino ino);
  // Regular file `ino` is being created as `name` in `dir`: the extents of
  // the file of that name in the folder `dir` took the place of, if that
  // folder still exists; else of the content that last left that name
  // (which the hint then no longer offers); else of its sibling as it is
  // now; empty if none or unreadable.
  std::vector<store::Extent> Take(store::Ino dir, std::string_view name, store::Ino ino);

  size_t size() const;  // Files remembered as having left.

 private:
  struct Content {
    store::Ino ino;
    store::InodeRecord rec;
  };
  // What the folder that left is to the one made next in its place.
  struct Lineage {
    store::Ino identity;     // Its identity.
    store::Ino predecessor;  // The folder itself, which may still exist elsewhere.
  };
  // A map of at most kMaxEntries keys and kMaxNameBytes of key bytes; the
  // oldest insertions go first.
  template <typename V>
  class Bounded {
   public:
    void Put(std::string key, V value);
    std::optional<V> Take(const std::string& key);
    const V* Find(const std::string& key) const;
    size_t size() const { return map_.size(); }

   private:
    std::unordered_map<std::string, std::pair<V, uint64_t>> map_;  // -> (value, seq)
    std::deque<std::pair<std::string, uint64_t>> order_;           // Stale ones skipped.
    uint64_t next_seq_ = 0;
    size_t bytes_ = 0;
  };
  struct Sibling {
    std::string name;
    store::Ino ino;
    std::chrono::steady_clock::time_point created;
  };

  // From the store's history: the inode of type `type` (mode >> 12) that last
  // left `name` in `dir`, or else in the folder `dir` took the place of
  // (`predecessor`), other than `self`, and the generation it left at.
  std::optional<std::pair<store::Ino, store::Generation>> LeftInHistory(
      store::Ino dir, store::Ino predecessor, std::string_view name, store::Ino self,
      uint8_t type);
  // The extents of regular file `ino` as of generation `at`; empty if none.
  std::vector<store::Extent> ExtentsAt(store::Ino ino, store::Generation at);
  // The files of `dir` now whose names have digits, as siblings created at
  // their mtime, oldest first (no lock held: reads the store).
  std::vector<Sibling> FilesWithDigits(store::Ino dir);

  // The identity of folder `dir`, and the key of `name` in it (mu_ held).
  Lineage LineageOf(store::Ino dir) const;
  std::string Key(store::Ino dir, std::string_view name) const;
  // Remembers file `ino` created as `name` in `dir` and returns its
  // sibling's inode (0 if none) (mu_ held).
  store::Ino FindSibling(store::Ino dir, std::string_view name, store::Ino ino);
  // Appends `s` to the siblings of its name's pattern in `dir`, within the
  // bounds (mu_ held).
  void AddSibling(store::Ino dir, Sibling s);

  store::Store* const store_;
  const std::chrono::steady_clock::duration min_sibling_age_;
  const Clock now_;
  mutable std::mutex mu_;
  Bounded<Content> left_;             // Key(dir, name) -> the file that left.
  Bounded<Lineage> dirs_left_;   // Key(dir, name) -> the folder that left.
  Bounded<Lineage> lineages_;    // Folder -> what it took (if it took anything).
  // Key(dir, pattern) -> the files created there, oldest first.
  std::unordered_map<std::string, std::deque<Sibling>> siblings_;
  Bounded<bool> seeded_;  // Folders whose files are in siblings_ (FilesWithDigits).
  size_t sibling_bytes_ = 0;  // Of the keys and names in siblings_.
};

}  // namespace snapfs::fs
