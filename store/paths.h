// Paths of inodes in the tree as of a generation, for listings, reports and
// log lines. The store keeps no inode -> name index: a directory finds its
// parent through its ".." entry and its own name by listing that parent; a
// file's names come from the log records of its versions (create, link and
// rename name a parent and a name), each checked against the tree at `at`.
//
// Thread-safety: DirPath is as thread-safe as the Store; a PathFinder is not
// (one per thread).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "store/key_format.h"
#include "store/status.h"
#include "store/store.h"

namespace snapfs::store {

// The path of directory `dir` as of `at` ("/" for the root), found through
// its ".." entries. Cost: one listing of each ancestor. kCorruption when an
// ancestor has no ".." or is not listed in its parent; kLoop on a cycle.
Result<std::string> DirPath(Store& store, Ino dir, Generation at);

// Paths of any inode, with what it learns cached (for a report that asks for
// the same inodes and directories at many generations).
class PathFinder {
 public:
  explicit PathFinder(Store& store) : store_(store) {}

  // Every path of `ino` in the tree as of `at`, sorted: several for a file
  // with hard links, none if it was not in the tree then (not yet created,
  // deleted). Cost: the inode's versions and their log records once, then a
  // lookup per name it ever had and the paths of those directories.
  Result<std::vector<std::string>> Paths(Ino ino, Generation at);
  // DirPath, cached per (dir, at).
  Result<std::string> DirPathAt(Ino dir, Generation at);

 private:
  Store& store_;
  std::map<Ino, std::vector<std::pair<Ino, std::string>>> names_;  // Every (parent, name) ever.
  std::map<std::pair<Ino, Generation>, std::string> dirs_;
};

}  // namespace snapfs::store
