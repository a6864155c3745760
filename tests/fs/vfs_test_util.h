// Helpers for the Vfs tests: a fixture with a fresh store and a live Vfs over
// it, and small POSIX-like operations (write a whole file, read it back, list
// or describe a tree) built only from the Vfs's public calls. Test-only.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fs/vfs.h"
#include "tests/store/test_util.h"

namespace snapfs::fs::testing {

using store::kRootIno;
using store::testing::SeededBytes;

// The user every test acts as.
inline constexpr Caller kUser{1000, 1000, 022};

// Creates `name` in `parent` holding `data`, and closes it. Returns its inode.
inline Result<Ino> WriteFile(Vfs& vfs, Ino parent, std::string_view name, std::string_view data,
                             uint32_t mode = 0644) {
  SNAPFS_ASSIGN_OR_RETURN(Vfs::Created c, vfs.Create(parent, name, mode, O_WRONLY, kUser));
  Status st;
  if (!data.empty()) st = vfs.Write(c.fh, 0, data.data(), data.size()).status();
  Status released = vfs.Release(c.fh);
  vfs.Forget(c.attr.ino, 1);
  SNAPFS_RETURN_IF_ERROR(st);
  SNAPFS_RETURN_IF_ERROR(released);
  return c.attr.ino;
}

// Every byte of open file `fh`, read in pieces until a short read.
inline Result<std::string> ReadHandle(Vfs& vfs, FileHandle fh) {
  std::string out;
  constexpr size_t kPiece = 1 << 20;
  for (;;) {
    const size_t at = out.size();
    out.resize(at + kPiece);
    SNAPFS_ASSIGN_OR_RETURN(size_t n, vfs.Read(fh, at, kPiece, out.data() + at));
    out.resize(at + n);
    if (n < kPiece) return out;
  }
}

// Opens `ino` read-only, reads all of it, closes it.
inline Result<std::string> ReadFile(Vfs& vfs, Ino ino) {
  SNAPFS_ASSIGN_OR_RETURN(FileHandle fh, vfs.Open(ino, O_RDONLY));
  Result<std::string> bytes = ReadHandle(vfs, fh);
  Status released = vfs.Release(fh);
  if (bytes.ok() && !released.ok()) return released;
  return bytes;
}

// The inode `name` in `parent` names, looked up and forgotten as the kernel would.
inline Result<Attr> Stat(Vfs& vfs, Ino parent, std::string_view name) {
  SNAPFS_ASSIGN_OR_RETURN(Attr a, vfs.Lookup(parent, name));
  vfs.Forget(a.ino, 1);
  return a;
}

// The listing of `dir`, "." and ".." included, as OpenDir gives it.
inline Result<std::vector<DirEntry>> List(Vfs& vfs, Ino dir) {
  SNAPFS_ASSIGN_OR_RETURN(FileHandle fh, vfs.OpenDir(dir));
  std::vector<DirEntry> entries = vfs.DirEntries(fh);
  vfs.ReleaseDir(fh);
  return entries;
}

// The names in `dir`, without "." and "..".
inline Result<std::vector<std::string>> Names(Vfs& vfs, Ino dir) {
  SNAPFS_ASSIGN_OR_RETURN(std::vector<DirEntry> entries, List(vfs, dir));
  std::vector<std::string> names;
  for (const DirEntry& e : entries)
    if (e.name != "." && e.name != "..") names.push_back(e.name);
  return names;
}

// Every path below `dir` (prefixed with `prefix`) with all its attributes and
// its content or target: two equal descriptions are two equal trees.
inline Status Describe(Vfs& vfs, Ino dir, const std::string& prefix,
                       std::map<std::string, std::string>* out) {
  SNAPFS_ASSIGN_OR_RETURN(std::vector<DirEntry> entries, List(vfs, dir));
  for (const DirEntry& e : entries) {
    const std::string path = prefix + "/" + e.name;
    if (e.name == "." || e.name == "..") {
      (*out)[path] = "ino " + std::to_string(e.ino);
      continue;
    }
    SNAPFS_ASSIGN_OR_RETURN(Attr a, Stat(vfs, dir, e.name));
    std::string d = "ino " + std::to_string(a.ino) + " type " + std::to_string(e.type) +
                    " mode " + std::to_string(a.mode) + " nlink " + std::to_string(a.nlink) +
                    " uid " + std::to_string(a.uid) + " gid " + std::to_string(a.gid) +
                    " size " + std::to_string(a.size) + " rdev " + std::to_string(a.rdev) +
                    " times " + std::to_string(a.atime_ns) + " " + std::to_string(a.mtime_ns) +
                    " " + std::to_string(a.ctime_ns);
    if (S_ISREG(a.mode)) {
      SNAPFS_ASSIGN_OR_RETURN(std::string bytes, ReadFile(vfs, a.ino));
      d += " content " + bytes;
    } else if (S_ISLNK(a.mode)) {
      SNAPFS_ASSIGN_OR_RETURN(std::string target, vfs.Readlink(a.ino));
      d += " target " + target;
    }
    (*out)[path] = d;
    if (S_ISDIR(a.mode)) SNAPFS_RETURN_IF_ERROR(Describe(vfs, a.ino, path, out));
  }
  return Status::Ok();
}

inline Result<std::map<std::string, std::string>> DescribeTree(Vfs& vfs) {
  std::map<std::string, std::string> out;
  SNAPFS_RETURN_IF_ERROR(Describe(vfs, kRootIno, "", &out));
  return out;
}

// `rm -rf parent/name`: children first, each by Unlink or Rmdir.
inline Status RemoveTree(Vfs& vfs, Ino parent, std::string_view name) {
  SNAPFS_ASSIGN_OR_RETURN(Attr a, Stat(vfs, parent, name));
  if (!S_ISDIR(a.mode)) return vfs.Unlink(parent, name);
  SNAPFS_ASSIGN_OR_RETURN(std::vector<std::string> names, Names(vfs, a.ino));
  for (const std::string& n : names) SNAPFS_RETURN_IF_ERROR(RemoveTree(vfs, a.ino, n));
  return vfs.Rmdir(parent, name);
}

// A fresh store (see StoreTestBase) with a live, writable Vfs over it.
class VfsTestBase : public store::testing::StoreTestBase {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(StoreTestBase::SetUp());
    vfs_ = std::make_unique<Vfs>(store_.get(), LiveOptions());
  }
  void TearDown() override { vfs_.reset(); }
  // The options of the live Vfs.
  virtual VfsOptions LiveOptions() const { return {}; }

  // A read-only view of the tree as it stood at generation `g`.
  std::unique_ptr<Vfs> PastAt(Generation g) {
    return std::make_unique<Vfs>(store_.get(), VfsOptions{.at = g, .read_only = true});
  }
  // Closes the Vfs and the store, opens both again.
  void ReopenAll() {
    vfs_.reset();
    ASSERT_NO_FATAL_FAILURE(Reopen());
    vfs_ = std::make_unique<Vfs>(store_.get(), LiveOptions());
  }
  Generation latest() const { return store_->latest(); }

  std::unique_ptr<Vfs> vfs_;
};

}  // namespace snapfs::fs::testing
