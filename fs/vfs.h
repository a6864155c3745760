// snapfs::fs::Vfs — POSIX file system semantics over a store::Store, with no
// FUSE in sight. The FUSE bridge (fs/fuse_bridge.h) is a thin adapter: one
// Vfs call per request. Tests drive a Vfs directly (tests/fs/).
//
// A Vfs shows one view of the store:
//  - the live tree (Options::at == store::kLatest, read_only false): every
//    change is committed to the store as a generation; file content when a
//    written file is flushed (close) or fsynced;
//  - a past tree (Options::at == some generation, read_only true): every
//    mutating call fails with kReadOnly (EROFS).
//
// Inode numbers are the store's (the root is 1). Lookup() and Create() take a
// kernel reference on the inode that Forget() drops (FUSE's lookup count).
// Permission checks are the kernel's job (default_permissions); the Vfs
// enforces the rules the kernel leaves to the file system: names, types,
// empty directories, link counts, rename rules.
//
// Errors are Status codes; Status::ToErrno() gives the errno to reply with.
// Thread-safety: every method may be called from any thread concurrently.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fs/path_hints.h"
#include "store/file_content.h"
#include "store/key_format.h"
#include "store/status.h"
#include "store/store.h"

namespace snapfs::fs {

using store::Generation;
using store::Ino;

// What the bridge turns into a struct stat.
struct Attr {
  Ino ino = 0;
  uint32_t mode = 0;
  uint32_t nlink = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t rdev = 0;
  uint64_t size = 0;
  uint64_t blocks = 0;  // 512-byte blocks.
  uint32_t blksize = 0;
  int64_t atime_ns = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
};

// Who is asking (from the FUSE request context).
struct Caller {
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t umask = 0;  // Already applied by the kernel unless it says otherwise.
};

// A setattr request; only the fields that are set change.
struct SetAttrRequest {
  std::optional<uint32_t> mode;  // Permission bits (07777).
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
  std::optional<uint64_t> size;
  std::optional<int64_t> atime_ns;  // kNow: the current time.
  std::optional<int64_t> mtime_ns;
  static constexpr int64_t kNow = INT64_MIN;
};

struct DirEntry {
  std::string name;
  Ino ino = 0;
  uint32_t type = 0;  // mode >> 12 (DT_* values).
};

struct FsStats {
  uint64_t block_size = 4096;
  uint64_t blocks = 0;
  uint64_t blocks_free = 0;
  uint64_t blocks_avail = 0;
  uint64_t files = 0;
  uint64_t files_free = 0;
  uint32_t name_max = 255;
};

// Rename flags (values of RENAME_NOREPLACE and RENAME_EXCHANGE).
inline constexpr unsigned kRenameNoReplace = 1;
inline constexpr unsigned kRenameExchange = 2;

using FileHandle = uint64_t;

class ReadAhead;

struct VfsOptions {
  Generation at = store::kLatest;  // Which tree to show.
  bool read_only = false;          // Forced to true when `at` is not kLatest.
  uint32_t blksize = 65536;        // st_blksize reported for files.
  // Serve the hidden .snapfs folder in the root (fs/snapshot_dir.h): only
  // for the live view.
  bool snapfs_dir = false;
  // Decode the chunks ahead of a sequential reader on background threads
  // (fs/read_ahead.h): this many bytes past each read. 0: off.
  uint64_t read_ahead_bytes = 4u << 20;
  // The prefetch threads to use (not owned; must outlive the Vfs), e.g. the
  // live view's for the views of its .snapfs folder. Null: the Vfs starts its
  // own (two threads, or one per core), when a sequential read first needs them.
  ReadAhead* read_ahead = nullptr;
  // A new file takes delta bases from a sibling (fs/path_hints.h) created at
  // least this long before it.
  std::chrono::steady_clock::duration min_sibling_age = PathHints::kDefaultSiblingAge;
};

class SnapshotDir;

class Vfs {
 public:
  Vfs(store::Store* store, VfsOptions options);
  ~Vfs();  // Commits what is still dirty (see Shutdown).
  Vfs(const Vfs&) = delete;
  Vfs& operator=(const Vfs&) = delete;

  bool read_only() const { return options_.read_only; }
  Generation generation() const { return options_.at; }

  // --- Names -------------------------------------------------------------
  Result<Attr> Lookup(Ino parent, std::string_view name);
  void Forget(Ino ino, uint64_t count);
  Result<Attr> GetAttr(Ino ino);
  Result<Attr> SetAttr(Ino ino, const SetAttrRequest& req);
  // mode carries the type: S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK.
  Result<Attr> Mknod(Ino parent, std::string_view name, uint32_t mode, uint64_t rdev,
                     const Caller& caller);
  Result<Attr> Mkdir(Ino parent, std::string_view name, uint32_t mode, const Caller& caller);
  Result<Attr> Symlink(Ino parent, std::string_view name, std::string_view target,
                       const Caller& caller);
  Result<std::string> Readlink(Ino ino);
  Status Unlink(Ino parent, std::string_view name);
  Status Rmdir(Ino parent, std::string_view name);
  Status Rename(Ino parent, std::string_view name, Ino new_parent, std::string_view new_name,
                unsigned flags);
  Result<Attr> Link(Ino ino, Ino new_parent, std::string_view new_name);

  // --- Files -------------------------------------------------------------
  // flags: open(2) flags; O_TRUNC truncates (and records a version).
  Result<FileHandle> Open(Ino ino, int flags);
  struct Created {
    Attr attr;
    FileHandle fh;
  };
  Result<Created> Create(Ino parent, std::string_view name, uint32_t mode, int flags,
                         const Caller& caller);
  // Reads of one file run concurrently with each other (not with its writes).
  Result<size_t> Read(FileHandle fh, uint64_t offset, size_t len, char* out);
  // Read() for a reply that gathers the bytes (writev) instead of copying
  // them: replaces *out with the bytes read, in order, mostly slices of the
  // decoded chunks themselves (store::FileContent::ReadSlices). Dirty bytes
  // and holes are copied into a slice of their own. The slices hold their
  // bytes: they stay valid whatever happens to the file after.
  Result<size_t> ReadSlices(FileHandle fh, uint64_t offset, size_t len,
                            std::vector<store::FileContent::Slice>* out);
  Result<size_t> Write(FileHandle fh, uint64_t offset, const char* data, size_t len);
  // close(2) of one descriptor: commits the file's new content, if any.
  Status Flush(FileHandle fh);
  // The last close: commits anything left and frees the handle.
  Status Release(FileHandle fh);
  // Commits and makes the content and its version durable.
  Status Fsync(FileHandle fh, bool datasync);
  // Grows the file to offset+len if shorter (mode 0 of fallocate(2) only).
  Status Fallocate(FileHandle fh, int mode, uint64_t offset, uint64_t len);

  // --- Directories -------------------------------------------------------
  // Snapshots the listing ("." and ".." first); ReadDir pages through it.
  Result<FileHandle> OpenDir(Ino ino);
  // Entries from index `offset` on; an entry's cookie is its index + 1.
  const std::vector<DirEntry>& DirEntries(FileHandle fh) const;
  // Takes the listing anew, for a readdir from offset 0 (rewinddir(3) must
  // show the directory as it is now, as opendir(3) would).
  Status RewindDir(FileHandle fh);
  void ReleaseDir(FileHandle fh);
  Status FsyncDir();

  Result<FsStats> StatFs();
  // True when nothing refers to this Vfs: no open handles and no inode the
  // kernel still holds a reference to.
  bool Idle() const;
  // Commits every dirty file; called at unmount.
  Status Shutdown();

 private:
  struct Inode;
  struct OpenFile;
  struct OpenDirectory;
  using InodePtr = std::shared_ptr<Inode>;

  Result<InodePtr> GetInode(Ino ino);  // Loads into the table if needed.
  void MaybeEvict(const InodePtr& inode);
  Attr ToAttr(const Inode& inode) const;
  Status CheckWritable() const;
  Result<InodePtr> LookupChild(Ino parent, std::string_view name);  // nullptr if absent.
  Result<Attr> MakeNode(Ino parent, std::string_view name, uint32_t mode, uint64_t rdev,
                        std::string_view target, const Caller& caller, store::Op op);
  Status RemoveEntry(Ino parent, std::string_view name, bool dir);
  // kNotEmpty (naming `name`) unless directory `dir` has no entries now.
  Status CheckEmpty(Ino dir, std::string_view name);
  Status LoadContent(Inode& inode);  // inode.mu held.
  // Commits the inode's dirty content (inode.mu held).
  Status CommitContent(Inode& inode, store::Op op, bool sync);
  Result<Generation> Commit(store::Mutation& m, store::LogRecord log, bool sync = false,
                            int64_t activity_start_ns = 0);
  Result<bool> IsAncestor(Ino ancestor, Ino dir);
  // The paths of `ino` in this view, for an error message ("<no path>").
  std::string PathForLog(Ino ino);

  // The .snapfs folder: any inode or handle it tags goes there.
  bool IsSnapfs(Ino ino) const;
  bool IsSnapfsHandle(FileHandle fh) const;
  bool IsSnapfsName(Ino parent, std::string_view name) const;

  // The common part of Read and ReadSlices on a file of the tree: finds the
  // handle, takes the inode lock shared, checks it is a regular file, queues
  // read-ahead for [offset, offset + len), then runs `read` on the inode and
  // drops from the chunk cache the chunks a sequential pass has read to their
  // end.
  Result<size_t> ReadLocked(FileHandle fh, uint64_t offset, size_t len,
                            const std::function<Result<size_t>(Inode&)>& read);
  // Logs a failed read of `inode` and returns the status to reply with.
  Status ReadFailed(const Inode& inode, uint64_t offset, const Status& st);
  // Queues the chunks past [offset, end) that a sequential reader of `of`
  // will want next (inode.mu held, shared or not). Appends to *consumed the
  // chunks of a sequential pass that end within [offset, end).
  void ReadAheadOf(OpenFile& of, uint64_t offset, uint64_t end,
                   std::vector<store::ChunkId>* consumed);

  store::Store* const store_;
  const VfsOptions options_;
  // Before snap_: its views use it, so it must outlive them.
  std::unique_ptr<ReadAhead> own_read_ahead_;
  ReadAhead* read_ahead_ = nullptr;  // options_.read_ahead or own_read_ahead_.
  std::unique_ptr<SnapshotDir> snap_;
  PathHints path_hints_;  // Delta bases for files created where others left.
  std::mutex ns_mu_;  // Serializes namespace changes (create, unlink, rename, ...).
  mutable std::mutex table_mu_;
  std::unordered_map<Ino, InodePtr> inodes_;
  mutable std::mutex handles_mu_;
  std::unordered_map<FileHandle, std::unique_ptr<OpenFile>> files_;
  std::unordered_map<FileHandle, std::unique_ptr<OpenDirectory>> dirs_;
  FileHandle next_handle_ = 1;
};

}  // namespace snapfs::fs
