// The hidden `.snapfs` folder of the live mount: read-only views of past
// states, opened by name.
//
//   .snapfs/              not listed by readdir of the root (ls, find, rm -rf *,
//                         tar and rsync never see it), but found by name
//   .snapfs/at/<WHEN>/    the tree as it stood at WHEN (store/when.h)
//   .snapfs/states/<id>/  one folder per state, as snapfs-ls lists them
//
// Each past generation that is looked up gets a read-only Vfs of its own (a
// "view"). Inode numbers and file handles of views are tagged so they never
// meet the live tree's: bit 63 marks a virtual inode, bits 40..62 carry the
// view number (0 for the three folders above), bits 0..39 the store inode;
// a view's file handle carries the view number in bits 48..63.
//
// At most kMaxViews views exist at once; an idle one is recycled for a new
// generation, so polling `.snapfs/at/now` cannot exhaust them.
//
// Everything here is read-only: mutating calls fail with kReadOnly.
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "fs/vfs.h"

namespace snapfs::fs {

class SnapshotDir {
 public:
  static constexpr std::string_view kName = ".snapfs";
  static constexpr Ino kVirtual = Ino{1} << 63;
  static constexpr Ino kRootDir = kVirtual | 1;
  static constexpr Ino kAtDir = kVirtual | 2;
  static constexpr Ino kStatesDir = kVirtual | 3;
  static bool IsVirtual(Ino ino) { return (ino & kVirtual) != 0; }
  static bool IsViewHandle(FileHandle fh) { return (fh >> 48) != 0; }
  static constexpr size_t kMaxViews = 256;

  // Views share `read_ahead` (may be null: no read-ahead; not owned).
  SnapshotDir(store::Store* store, ReadAhead* read_ahead);
  ~SnapshotDir();

  // The attributes of `.snapfs` itself (for a lookup in the live root).
  Attr RootAttr() const;

  Result<Attr> Lookup(Ino parent, std::string_view name);
  void Forget(Ino ino, uint64_t count);
  Result<Attr> GetAttr(Ino ino);
  Result<std::string> Readlink(Ino ino);
  Result<FileHandle> Open(Ino ino, int flags);
  Result<size_t> Read(FileHandle fh, uint64_t offset, size_t len, char* out);
  Result<size_t> ReadSlices(FileHandle fh, uint64_t offset, size_t len,
                            std::vector<store::FileContent::Slice>* out);
  Status Release(FileHandle fh);
  Result<FileHandle> OpenDir(Ino ino);
  const std::vector<DirEntry>& DirEntries(FileHandle fh) const;
  void ReleaseDir(FileHandle fh);

 private:
  struct View;
  using ViewPtr = std::shared_ptr<View>;
  Result<Attr> ViewRoot(Generation g);
  ViewPtr ViewOf(Ino ino, Ino* real);
  ViewPtr ViewOfHandle(FileHandle fh, FileHandle* real);
  Attr Tag(const View& view, Attr attr) const;
  Attr FolderAttr(Ino ino) const;

  store::Store* const store_;
  ReadAhead* const read_ahead_;
  mutable std::mutex mu_;
  std::map<Generation, uint32_t> by_generation_;
  // views_[i] has number i + 1. Past kMaxViews, a new view takes the number
  // of one nobody refers to any more (the kernel forgot all its inodes).
  std::vector<ViewPtr> views_;
  // Listings of the three folders and of views (with tagged inode numbers).
  std::map<FileHandle, std::vector<DirEntry>> listings_;
  FileHandle next_listing_ = 1;
};

}  // namespace snapfs::fs
