#include "fs/vfs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <map>
#include <thread>

#include "fs/log.h"
#include "fs/read_ahead.h"
#include "fs/snapshot_dir.h"
#include "store/paths.h"

namespace snapfs::fs {

using store::DirentRecord;
using store::InodeRecord;
using store::LogRecord;
using store::Mutation;
using store::Op;

struct Vfs::Inode {
  explicit Inode(Ino i, InodeRecord r) : ino(i), rec(std::move(r)) {}
  // Held shared only by Read (FileContent::Read changes nothing), so the
  // reads of one file run in parallel; everything else holds it exclusively.
  std::shared_mutex mu;
  const Ino ino;
  InodeRecord rec;                               // As last committed (or folded times).
  std::unique_ptr<store::FileContent> content;   // Regular files while open or dirty.
  int64_t dirty_since_ns = 0;                    // First write since the last commit.
  // A copy of `rec` for checks made before `mu` is held: every call that
  // replaces `rec` holds `mu`.
  InodeRecord Record() {
    std::shared_lock lock(mu);
    return rec;
  }
  // Guarded by Vfs::table_mu_.
  uint64_t lookups = 0;
  int opens = 0;
};

struct Vfs::OpenFile {
  InodePtr inode;
  int flags = 0;
  // Read-ahead (see Vfs::ReadAheadOf); updated by concurrent reads.
  std::atomic<uint64_t> next_read{0};  // The end of the last read.
  std::atomic<uint64_t> ahead_to{0};   // Chunks before this are queued already.
};

struct Vfs::OpenDirectory {
  Ino ino = 0;
  Generation listed_at = 0;  // The store's newest generation when listed.
  std::vector<DirEntry> entries;
};

namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool IsDir(const InodeRecord& r) { return S_ISDIR(r.mode); }
uint8_t TypeOf(uint32_t mode) { return static_cast<uint8_t>(mode >> 12); }

Status CheckName(std::string_view name) {
  if (name.empty() || name == "." || name == "..")
    return Status::Invalid("invalid name");
  if (name.size() > store::kMaxNameLength)
    return Status(Code::kNameTooLong, "name longer than 255 bytes");
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos)
    return Status::Invalid("name contains '/' or NUL");
  return Status::Ok();
}

Status NotADir(Ino ino) { return Status(Code::kNotDir, "inode " + std::to_string(ino)); }

// A view of an earlier generation is read-only whatever the caller asked: a
// change on top of it would commit records copied from the past as the newest.
VfsOptions Checked(VfsOptions options) {
  if (options.at != store::kLatest) options.read_only = true;
  return options;
}

}  // namespace

Vfs::Vfs(store::Store* store, VfsOptions options)
    : store_(store), options_(Checked(options)), path_hints_(store, options_.min_sibling_age) {
  if (options_.read_ahead_bytes > 0) {
    read_ahead_ = options_.read_ahead;
    if (read_ahead_ == nullptr) {
      own_read_ahead_ = std::make_unique<ReadAhead>(&store_->chunks(),
                                                    std::max(2u, std::thread::hardware_concurrency()));
      read_ahead_ = own_read_ahead_.get();
    }
  }
  if (options_.snapfs_dir && !options_.read_only)
    snap_ = std::make_unique<SnapshotDir>(store, read_ahead_);
}

bool Vfs::IsSnapfs(Ino ino) const { return snap_ && SnapshotDir::IsVirtual(ino); }
bool Vfs::IsSnapfsHandle(FileHandle fh) const { return snap_ && SnapshotDir::IsViewHandle(fh); }
bool Vfs::IsSnapfsName(Ino parent, std::string_view name) const {
  return snap_ && parent == store::kRootIno && name == SnapshotDir::kName;
}

namespace {
Status SnapfsReadOnly() { return Status::ReadOnly(".snapfs is read-only"); }
}  // namespace

Vfs::~Vfs() {
  Status st = Shutdown();
  if (!st.ok()) LogError("shutdown: %s", st.ToString().c_str());
}

Status Vfs::CheckWritable() const {
  if (options_.read_only) return Status::ReadOnly("this view of the store is read-only");
  return Status::Ok();
}

Result<Vfs::InodePtr> Vfs::GetInode(Ino ino) {
  {
    std::lock_guard lock(table_mu_);
    auto it = inodes_.find(ino);
    if (it != inodes_.end()) return it->second;
  }
  SNAPFS_ASSIGN_OR_RETURN(auto rec, store_->GetInode(ino, options_.at));
  if (!rec) return Status::NotFound("no inode " + std::to_string(ino));
  auto fresh = std::make_shared<Inode>(ino, std::move(*rec));
  std::lock_guard lock(table_mu_);
  return inodes_.emplace(ino, std::move(fresh)).first->second;
}

void Vfs::MaybeEvict(const InodePtr& inode) {
  std::lock_guard ilock(inode->mu);
  std::lock_guard lock(table_mu_);
  if (inode->ino == store::kRootIno || inode->lookups > 0 || inode->opens > 0) return;
  if (inode->content && inode->content->dirty()) return;  // Commit failed; keep for retry.
  inodes_.erase(inode->ino);
}

Attr Vfs::ToAttr(const Inode& inode) const {
  const InodeRecord& r = inode.rec;
  Attr a;
  a.ino = inode.ino;
  a.mode = r.mode;
  a.nlink = r.nlink;
  a.uid = r.uid;
  a.gid = r.gid;
  a.rdev = r.rdev;
  a.size = inode.content ? inode.content->size() : r.size;
  a.blocks = (a.size + 511) / 512;
  a.blksize = options_.blksize;
  a.atime_ns = r.atime_ns;
  a.mtime_ns = r.mtime_ns;
  a.ctime_ns = r.ctime_ns;
  return a;
}

Result<Generation> Vfs::Commit(Mutation& m, LogRecord log, bool sync, int64_t activity_start_ns) {
  store::CommitOptions co;
  co.sync = sync;
  co.activity_start_ns = activity_start_ns;
  Result<Generation> g = store_->Commit(m, std::move(log), co);
  if (!g.ok()) LogError("commit failed: %s", g.status().ToString().c_str());
  return g;
}

Status Vfs::LoadContent(Inode& inode) {
  if (inode.content || !S_ISREG(inode.rec.mode)) return Status::Ok();
  SNAPFS_ASSIGN_OR_RETURN(auto extents, store_->GetExtents(inode.ino, inode.rec));
  inode.content = std::make_unique<store::FileContent>(
      &store_->chunks(), &store_->chunker(), std::move(extents), inode.rec.size);
  return Status::Ok();
}

Status Vfs::CommitContent(Inode& inode, Op op, bool sync) {
  if (!inode.content || !inode.content->dirty()) {
    if (sync) return store_->Sync();
    return Status::Ok();
  }
  uint64_t stored = 0;
  Status st = inode.content->Flush(&stored);
  if (!st.ok()) {
    LogError("inode %llu: storing content failed: %s",
             static_cast<unsigned long long>(inode.ino), st.ToString().c_str());
    return st;
  }
  InodeRecord rec = inode.rec;
  rec.op = op;
  rec.size = inode.content->size();
  Mutation m;
  m.PutInode(inode.ino, rec);
  m.PutContent(inode.ino, inode.content->extents(), inode.content->unindexed());
  LogRecord log;
  log.op = op;
  log.ino = inode.ino;
  log.size = rec.size;
  log.bytes_written = inode.content->bytes_written();
  log.bytes_stored = stored;
  SNAPFS_RETURN_IF_ERROR(Commit(m, std::move(log), sync, inode.dirty_since_ns).status());
  inode.rec = m.inode(inode.ino);
  inode.content->MarkCommitted();
  inode.dirty_since_ns = 0;
  return Status::Ok();
}

// --- Names -----------------------------------------------------------------

Result<Vfs::InodePtr> Vfs::LookupChild(Ino parent, std::string_view name) {
  SNAPFS_ASSIGN_OR_RETURN(auto d, store_->Lookup(parent, name, options_.at));
  if (!d) return InodePtr();
  return GetInode(d->child);
}

Result<Attr> Vfs::Lookup(Ino parent, std::string_view name) {
  if (IsSnapfs(parent)) return snap_->Lookup(parent, name);
  if (IsSnapfsName(parent, name)) return snap_->RootAttr();
  if (name.size() > store::kMaxNameLength)
    return Status(Code::kNameTooLong, "name longer than 255 bytes");
  SNAPFS_ASSIGN_OR_RETURN(InodePtr p, GetInode(parent));
  if (!IsDir(p->Record())) return NotADir(parent);
  SNAPFS_ASSIGN_OR_RETURN(InodePtr child, LookupChild(parent, name));
  if (!child) return Status::NotFound(std::string(name));
  std::lock_guard ilock(child->mu);
  {
    std::lock_guard lock(table_mu_);
    child->lookups++;
  }
  return ToAttr(*child);
}

void Vfs::Forget(Ino ino, uint64_t count) {
  if (IsSnapfs(ino)) return snap_->Forget(ino, count);
  InodePtr inode;
  {
    std::lock_guard lock(table_mu_);
    auto it = inodes_.find(ino);
    if (it == inodes_.end()) return;
    inode = it->second;
    inode->lookups -= std::min(inode->lookups, count);
  }
  MaybeEvict(inode);
}

Result<Attr> Vfs::GetAttr(Ino ino) {
  if (IsSnapfs(ino)) return snap_->GetAttr(ino);
  SNAPFS_ASSIGN_OR_RETURN(InodePtr inode, GetInode(ino));
  std::lock_guard ilock(inode->mu);
  return ToAttr(*inode);
}

Result<Attr> Vfs::SetAttr(Ino ino, const SetAttrRequest& req) {
  if (IsSnapfs(ino)) return SnapfsReadOnly();
  SNAPFS_RETURN_IF_ERROR(CheckWritable());
  SNAPFS_ASSIGN_OR_RETURN(InodePtr inode, GetInode(ino));
  std::lock_guard ilock(inode->mu);
  InodeRecord rec = inode->rec;
  const int64_t now = NowNs();
  if (req.mode) rec.mode = (rec.mode & S_IFMT) | (*req.mode & 07777);
  if (req.uid) rec.uid = *req.uid;
  if (req.gid) rec.gid = *req.gid;
  auto time_of = [&](int64_t t) { return t == SetAttrRequest::kNow ? now : t; };
  if (req.atime_ns) rec.atime_ns = time_of(*req.atime_ns);
  if (req.mtime_ns) rec.mtime_ns = time_of(*req.mtime_ns);
  rec.ctime_ns = now;
  const bool times_only = !req.mode && !req.uid && !req.gid && !req.size;
  if (times_only && inode->content && inode->content->dirty()) {
    // The kernel sends the file's times just before it flushes it: keep them
    // for the content's commit instead of making a version of their own.
    inode->rec = rec;
    return ToAttr(*inode);
  }
  if (times_only && rec.atime_ns == inode->rec.atime_ns && rec.mtime_ns == inode->rec.mtime_ns) {
    // With the writeback cache the kernel pushes a file's cached times after
    // every rename, link and unlink of it (fuse_update_ctime): the change was
    // recorded by that operation, so a request that changes nothing makes no
    // version of its own.
    return ToAttr(*inode);
  }
  if (req.size) {
    if (IsDir(rec)) return Status(Code::kIsDir, "truncate of a directory");
    if (!S_ISREG(rec.mode)) return Status::Invalid("truncate of a special file");
    SNAPFS_RETURN_IF_ERROR(LoadContent(*inode));
    SNAPFS_RETURN_IF_ERROR(inode->content->Truncate(*req.size));
    if (!req.mtime_ns) rec.mtime_ns = now;
    if (inode->dirty_since_ns == 0) inode->dirty_since_ns = now;
    inode->rec = rec;  // Committed with the content just below.
    Status st = CommitContent(*inode, Op::kTruncate, false);
    if (inode->opens == 0 && !inode->content->dirty()) inode->content.reset();
    SNAPFS_RETURN_IF_ERROR(st);
    return ToAttr(*inode);
  }
  rec.op = Op::kSetattr;
  Mutation m;
  m.PutInode(ino, rec);
  LogRecord log;
  log.op = Op::kSetattr;
  log.ino = ino;
  log.size = rec.size;
  SNAPFS_RETURN_IF_ERROR(Commit(m, std::move(log)).status());
  inode->rec = rec;
  return ToAttr(*inode);
}

Result<Attr> Vfs::MakeNode(Ino parent, std::string_view name, uint32_t mode, uint64_t rdev,
                           std::string_view target, const Caller& caller, Op op) {
  if (IsSnapfs(parent)) return SnapfsReadOnly();
  if (IsSnapfsName(parent, name)) return Status::Exists(".snapfs is reserved");
  SNAPFS_RETURN_IF_ERROR(CheckWritable());
  SNAPFS_RETURN_IF_ERROR(CheckName(name));
  std::lock_guard ns(ns_mu_);
  SNAPFS_ASSIGN_OR_RETURN(InodePtr p, GetInode(parent));
  std::lock_guard plock(p->mu);
  if (!IsDir(p->rec)) return NotADir(parent);
  if (p->rec.nlink == 0) return Status::NotFound("directory was removed");
  SNAPFS_ASSIGN_OR_RETURN(auto existing, store_->Lookup(parent, name, store::kLatest));
  if (existing) return Status::Exists(std::string(name));

  const int64_t now = NowNs();
  const bool dir = S_ISDIR(mode);
  InodeRecord rec;
  rec.op = op;
  rec.mode = mode;
  rec.uid = caller.uid;
  rec.gid = caller.gid;
  if (p->rec.mode & S_ISGID) {  // BSD group semantics of a setgid directory.
    rec.gid = p->rec.gid;
    if (dir) rec.mode |= S_ISGID;
  }
  rec.nlink = dir ? 2 : 1;
  rec.rdev = rdev;
  rec.symlink = std::string(target);
  rec.size = target.size();
  rec.atime_ns = rec.mtime_ns = rec.ctime_ns = now;
  InodeRecord prec = p->rec;
  prec.op = op;
  prec.mtime_ns = prec.ctime_ns = now;
  if (dir) prec.nlink++;

  const Ino ino = store_->AllocateIno();
  Mutation m;
  m.PutInode(ino, rec);
  m.PutInode(parent, prec);
  m.PutDirent(parent, std::string(name), DirentRecord{ino, TypeOf(mode)});
  if (dir) m.PutDirent(ino, "..", DirentRecord{parent, TypeOf(S_IFDIR)});
  LogRecord log;
  log.op = op;
  log.ino = ino;
  log.parent = parent;
  log.name = std::string(name);
  log.size = rec.size;
  SNAPFS_RETURN_IF_ERROR(Commit(m, std::move(log)).status());
  p->rec = prec;
  if (dir) path_hints_.DirMade(parent, name, ino);
  auto inode = std::make_shared<Inode>(ino, rec);
  inode->lookups = 1;
  {
    std::lock_guard lock(table_mu_);
    inodes_[ino] = inode;
  }
  return ToAttr(*inode);
}

Result<Attr> Vfs::Mknod(Ino parent, std::string_view name, uint32_t mode, uint64_t rdev,
                        const Caller& caller) {
  const uint32_t type = mode & S_IFMT;
  if (type == 0) mode |= S_IFREG;
  else if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK && type != S_IFCHR &&
           type != S_IFBLK)
    return Status::Invalid("mknod of an unknown file type");
  const bool device = type == S_IFCHR || type == S_IFBLK;
  return MakeNode(parent, name, mode, device ? rdev : 0, {}, caller, Op::kMknod);
}

Result<Attr> Vfs::Mkdir(Ino parent, std::string_view name, uint32_t mode, const Caller& caller) {
  return MakeNode(parent, name, S_IFDIR | (mode & 07777), 0, {}, caller, Op::kMkdir);
}

Result<Attr> Vfs::Symlink(Ino parent, std::string_view name, std::string_view target,
                          const Caller& caller) {
  if (target.empty()) return Status::NotFound("empty symlink target");
  if (target.size() >= 4096) return Status(Code::kNameTooLong, "symlink target too long");
  if (target.find('\0') != std::string_view::npos) return Status::Invalid("NUL in target");
  return MakeNode(parent, name, S_IFLNK | 0777, 0, target, caller, Op::kSymlink);
}

Result<std::string> Vfs::Readlink(Ino ino) {
  if (IsSnapfs(ino)) return snap_->Readlink(ino);
  SNAPFS_ASSIGN_OR_RETURN(InodePtr inode, GetInode(ino));
  std::lock_guard ilock(inode->mu);
  if (!S_ISLNK(inode->rec.mode)) return Status::Invalid("not a symlink");
  return inode->rec.symlink;
}

// Locks distinct inodes in inode-number order; ns_mu_ is held by the caller.
namespace {
class MultiLock {
 public:
  template <typename Ptr>
  explicit MultiLock(std::vector<Ptr> inodes) {
    std::sort(inodes.begin(), inodes.end(), [](auto& a, auto& b) { return a->ino < b->ino; });
    inodes.erase(std::unique(inodes.begin(), inodes.end()), inodes.end());
    for (auto& i : inodes) locks_.emplace_back(i->mu);
  }

 private:
  std::vector<std::unique_lock<std::shared_mutex>> locks_;
};
}  // namespace

Status Vfs::CheckEmpty(Ino dir, std::string_view name) {
  bool empty = true;
  SNAPFS_RETURN_IF_ERROR(store_->ListDir(dir, store::kLatest,
                                         [&](std::string_view n, const DirentRecord&) {
                                           if (n == "..") return true;  // Not a child.
                                           empty = false;
                                           return false;
                                         }));
  if (!empty) return Status(Code::kNotEmpty, std::string(name));
  return Status::Ok();
}

Status Vfs::RemoveEntry(Ino parent, std::string_view name, bool dir) {
  if (IsSnapfs(parent) || IsSnapfsName(parent, name)) return SnapfsReadOnly();
  SNAPFS_RETURN_IF_ERROR(CheckWritable());
  SNAPFS_RETURN_IF_ERROR(CheckName(name));
  std::lock_guard ns(ns_mu_);
  SNAPFS_ASSIGN_OR_RETURN(InodePtr p, GetInode(parent));
  if (!IsDir(p->Record())) return NotADir(parent);
  SNAPFS_ASSIGN_OR_RETURN(InodePtr c, LookupChild(parent, name));
  if (!c) return Status::NotFound(std::string(name));
  MultiLock locks(std::vector<InodePtr>{p, c});
  if (dir) {
    if (!IsDir(c->rec)) return NotADir(c->ino);
    SNAPFS_RETURN_IF_ERROR(CheckEmpty(c->ino, name));
  } else if (IsDir(c->rec)) {
    return Status(Code::kIsDir, std::string(name));
  }
  const int64_t now = NowNs();
  const Op op = dir ? Op::kRmdir : Op::kUnlink;
  InodeRecord crec = c->rec;
  crec.op = op;
  crec.nlink = dir ? 0 : crec.nlink - 1;
  crec.ctime_ns = now;
  InodeRecord prec = p->rec;
  prec.op = op;
  prec.mtime_ns = prec.ctime_ns = now;
  if (dir) prec.nlink--;
  Mutation m;
  m.PutDirent(parent, std::string(name), DirentRecord{});
  m.PutInode(c->ino, crec);
  m.PutInode(parent, prec);
  LogRecord log;
  log.op = op;
  log.ino = c->ino;
  log.parent = parent;
  log.name = std::string(name);
  log.size = crec.size;
  SNAPFS_RETURN_IF_ERROR(Commit(m, std::move(log)).status());
  c->rec = crec;
  p->rec = prec;
  if (dir) path_hints_.DirLeft(parent, name, c->ino);
  else path_hints_.Left(parent, name, c->ino, crec);
  return Status::Ok();
}

Status Vfs::Unlink(Ino parent, std::string_view name) { return RemoveEntry(parent, name, false); }
Status Vfs::Rmdir(Ino parent, std::string_view name) { return RemoveEntry(parent, name, true); }

Result<bool> Vfs::IsAncestor(Ino ancestor, Ino dir) {
  Ino cur = dir;
  for (int depth = 0; depth < 100000; ++depth) {
    if (cur == ancestor) return true;
    if (cur == store::kRootIno) return false;
    SNAPFS_ASSIGN_OR_RETURN(auto up, store_->Lookup(cur, "..", store::kLatest));
    if (!up) return Status::Corruption("directory " + std::to_string(cur) + " has no '..'");
    cur = up->child;
  }
  return Status(Code::kLoop, "directory tree too deep");
}

Status Vfs::Rename(Ino parent, std::string_view name, Ino new_parent, std::string_view new_name,
                   unsigned flags) {
  if (IsSnapfs(parent) || IsSnapfs(new_parent) || IsSnapfsName(parent, name) ||
      IsSnapfsName(new_parent, new_name))
    return SnapfsReadOnly();
  SNAPFS_RETURN_IF_ERROR(CheckWritable());
  SNAPFS_RETURN_IF_ERROR(CheckName(name));
  SNAPFS_RETURN_IF_ERROR(CheckName(new_name));
  if ((flags & ~(kRenameNoReplace | kRenameExchange)) != 0 ||
      flags == (kRenameNoReplace | kRenameExchange))
    return Status::Invalid("unsupported rename flags");
  const bool exchange = flags & kRenameExchange;
  std::lock_guard ns(ns_mu_);
  SNAPFS_ASSIGN_OR_RETURN(InodePtr p1, GetInode(parent));
  SNAPFS_ASSIGN_OR_RETURN(InodePtr p2, GetInode(new_parent));
  if (!IsDir(p1->Record())) return NotADir(parent);
  const InodeRecord p2rec = p2->Record();
  if (!IsDir(p2rec)) return NotADir(new_parent);
  if (p2rec.nlink == 0) return Status::NotFound("target directory was removed");
  SNAPFS_ASSIGN_OR_RETURN(InodePtr s, LookupChild(parent, name));
  if (!s) return Status::NotFound(std::string(name));
  SNAPFS_ASSIGN_OR_RETURN(InodePtr t, LookupChild(new_parent, new_name));
  if (t && (flags & kRenameNoReplace)) return Status::Exists(std::string(new_name));
  if (!t && exchange) return Status::NotFound(std::string(new_name));
  if (t == s) return Status::Ok();  // Two names of one inode: POSIX says do nothing.
  const bool sdir = IsDir(s->Record());
  const bool tdir = t && IsDir(t->Record());
  if (sdir && parent != new_parent) {
    SNAPFS_ASSIGN_OR_RETURN(bool loop, IsAncestor(s->ino, new_parent));
    if (loop) return Status::Invalid("cannot move a directory into itself");
  }
  if (exchange && tdir && parent != new_parent) {
    SNAPFS_ASSIGN_OR_RETURN(bool loop, IsAncestor(t->ino, parent));
    if (loop) return Status::Invalid("cannot move a directory into itself");
  }
  if (t && !exchange) {
    if (sdir && !tdir) return NotADir(t->ino);
    if (!sdir && tdir) return Status(Code::kIsDir, std::string(new_name));
    if (tdir) {
      SNAPFS_RETURN_IF_ERROR(CheckEmpty(t->ino, new_name));
    }
  }
  std::vector<InodePtr> touched{p1, p2, s};
  if (t) touched.push_back(t);
  MultiLock locks(touched);

  // New records by inode: p1 and p2 may be one directory.
  const int64_t now = NowNs();
  std::map<Ino, InodeRecord> recs;
  for (auto& i : touched) recs.emplace(i->ino, i->rec);
  for (auto& [ino, r] : recs) r.op = Op::kRename;
  recs[parent].mtime_ns = recs[parent].ctime_ns = now;
  recs[new_parent].mtime_ns = recs[new_parent].ctime_ns = now;
  recs[s->ino].ctime_ns = now;
  Mutation m;
  auto move_dir = [&](Ino child, Ino from, Ino to) {
    m.PutDirent(child, "..", DirentRecord{to, TypeOf(S_IFDIR)});
    recs[from].nlink--;
    recs[to].nlink++;
  };
  if (exchange) {
    recs[t->ino].ctime_ns = now;
    m.PutDirent(parent, std::string(name), DirentRecord{t->ino, TypeOf(t->rec.mode)});
    m.PutDirent(new_parent, std::string(new_name), DirentRecord{s->ino, TypeOf(s->rec.mode)});
    if (parent != new_parent && sdir) move_dir(s->ino, parent, new_parent);
    if (parent != new_parent && tdir) move_dir(t->ino, new_parent, parent);
  } else {
    m.PutDirent(parent, std::string(name), DirentRecord{});
    m.PutDirent(new_parent, std::string(new_name), DirentRecord{s->ino, TypeOf(s->rec.mode)});
    if (parent != new_parent && sdir) move_dir(s->ino, parent, new_parent);
    if (t) {
      InodeRecord& tr = recs[t->ino];
      tr.ctime_ns = now;
      tr.nlink = tdir ? 0 : tr.nlink - 1;
      if (tdir) recs[new_parent].nlink--;
    }
  }
  for (auto& [ino, r] : recs) m.PutInode(ino, r);
  LogRecord log;
  log.op = Op::kRename;
  log.ino = s->ino;
  log.parent = parent;
  log.name = std::string(name);
  log.parent2 = new_parent;
  log.name2 = std::string(new_name);
  log.size = s->rec.size;
  SNAPFS_RETURN_IF_ERROR(Commit(m, std::move(log)).status());
  for (auto& i : touched) i->rec = recs[i->ino];
  if (!exchange && sdir) path_hints_.DirLeft(parent, name, s->ino);
  if (!exchange && !sdir) path_hints_.Left(parent, name, s->ino, s->rec);  // A temporary?
  return Status::Ok();
}

Result<Attr> Vfs::Link(Ino ino, Ino new_parent, std::string_view new_name) {
  if (IsSnapfs(ino) || IsSnapfs(new_parent)) return SnapfsReadOnly();
  if (IsSnapfsName(new_parent, new_name)) return Status::Exists(".snapfs is reserved");
  SNAPFS_RETURN_IF_ERROR(CheckWritable());
  SNAPFS_RETURN_IF_ERROR(CheckName(new_name));
  std::lock_guard ns(ns_mu_);
  SNAPFS_ASSIGN_OR_RETURN(InodePtr s, GetInode(ino));
  SNAPFS_ASSIGN_OR_RETURN(InodePtr p, GetInode(new_parent));
  if (!IsDir(p->Record())) return NotADir(new_parent);
  if (IsDir(s->Record())) return Status(Code::kPermission, "hard link to a directory");
  SNAPFS_ASSIGN_OR_RETURN(auto existing, store_->Lookup(new_parent, new_name, store::kLatest));
  if (existing) return Status::Exists(std::string(new_name));
  MultiLock locks(std::vector<InodePtr>{s, p});
  if (s->rec.nlink == 0) return Status::NotFound("inode was removed");
  if (p->rec.nlink == 0) return Status::NotFound("target directory was removed");
  const int64_t now = NowNs();
  InodeRecord srec = s->rec;
  srec.op = Op::kLink;
  srec.nlink++;
  srec.ctime_ns = now;
  InodeRecord prec = p->rec;
  prec.op = Op::kLink;
  prec.mtime_ns = prec.ctime_ns = now;
  Mutation m;
  m.PutInode(ino, srec);
  m.PutInode(new_parent, prec);
  m.PutDirent(new_parent, std::string(new_name), DirentRecord{ino, TypeOf(srec.mode)});
  LogRecord log;
  log.op = Op::kLink;
  log.ino = ino;
  log.parent = new_parent;
  log.name = std::string(new_name);
  log.size = srec.size;
  SNAPFS_RETURN_IF_ERROR(Commit(m, std::move(log)).status());
  s->rec = srec;
  p->rec = prec;
  {
    std::lock_guard lock(table_mu_);
    s->lookups++;
  }
  return ToAttr(*s);
}

// --- Files -----------------------------------------------------------------

Result<FileHandle> Vfs::Open(Ino ino, int flags) {
  if (IsSnapfs(ino)) return snap_->Open(ino, flags);
  const bool writing = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
  if (writing) SNAPFS_RETURN_IF_ERROR(CheckWritable());
  SNAPFS_ASSIGN_OR_RETURN(InodePtr inode, GetInode(ino));
  {
    std::lock_guard ilock(inode->mu);
    if (IsDir(inode->rec)) return Status(Code::kIsDir, "open of a directory");
    SNAPFS_RETURN_IF_ERROR(LoadContent(*inode));
    // Linux truncates on O_TRUNC whatever the access mode (O_RDONLY too), and
    // with atomic_o_trunc the kernel leaves that truncation to this open.
    if ((flags & O_TRUNC) && S_ISREG(inode->rec.mode)) {
      SNAPFS_RETURN_IF_ERROR(inode->content->Truncate(0));
      const int64_t now = NowNs();
      inode->rec.mtime_ns = inode->rec.ctime_ns = now;
      if (inode->dirty_since_ns == 0) inode->dirty_since_ns = now;
      SNAPFS_RETURN_IF_ERROR(CommitContent(*inode, Op::kTruncate, false));
    }
    std::lock_guard lock(table_mu_);
    inode->opens++;
  }
  auto of = std::make_unique<OpenFile>();
  of->inode = inode;
  of->flags = flags;
  std::lock_guard lock(handles_mu_);
  FileHandle fh = next_handle_++;
  files_.emplace(fh, std::move(of));
  return fh;
}

Result<Vfs::Created> Vfs::Create(Ino parent, std::string_view name, uint32_t mode, int flags,
                                 const Caller& caller) {
  SNAPFS_ASSIGN_OR_RETURN(Attr attr, MakeNode(parent, name, S_IFREG | (mode & 07777), 0, {},
                                              caller, Op::kCreate));
  Result<FileHandle> fh = Open(attr.ino, flags & ~O_TRUNC);
  if (!fh.ok()) {
    Forget(attr.ino, 1);
    return fh.status();
  }
  std::vector<store::Extent> previous = path_hints_.Take(parent, name, attr.ino);
  if (!previous.empty()) {
    Result<InodePtr> inode = GetInode(attr.ino);
    if (inode.ok()) {
      std::lock_guard ilock((*inode)->mu);
      if ((*inode)->content) (*inode)->content->SetPrevious(std::move(previous));
    }
  }
  return Created{attr, *fh};
}

namespace {
template <typename Map>
auto* FindHandle(std::mutex& mu, Map& map, FileHandle fh) {
  std::lock_guard lock(mu);
  auto it = map.find(fh);
  return it == map.end() ? nullptr : it->second.get();
}
}  // namespace

std::string Vfs::PathForLog(Ino ino) {
  store::PathFinder finder(*store_);
  Result<std::vector<std::string>> paths = finder.Paths(ino, options_.at);
  if (!paths.ok() || paths->empty()) return "<no path>";
  std::string out;
  for (const std::string& p : *paths) out += (out.empty() ? "" : " and ") + p;
  return out;
}

Result<size_t> Vfs::ReadLocked(FileHandle fh, uint64_t offset, size_t len,
                               const std::function<Result<size_t>(Inode&)>& read) {
  OpenFile* of = FindHandle(handles_mu_, files_, fh);
  if (of == nullptr) return Status::Invalid("bad file handle");
  Inode& inode = *of->inode;
  std::shared_lock ilock(inode.mu);
  if (!inode.content) return Status::Invalid("not a regular file");
  std::vector<store::ChunkId> consumed;
  if (read_ahead_ != nullptr) ReadAheadOf(*of, offset, offset + len, &consumed);
  Result<size_t> n = read(inode);
  // The reply holds what it needs (slices keep their chunks).
  if (n.ok() && !consumed.empty()) store_->chunks().ReadThrough(consumed);
  return n;
}

Result<size_t> Vfs::Read(FileHandle fh, uint64_t offset, size_t len, char* out) {
  if (IsSnapfsHandle(fh)) return snap_->Read(fh, offset, len, out);
  return ReadLocked(fh, offset, len, [&](Inode& inode) -> Result<size_t> {
    Result<size_t> n = inode.content->Read(offset, len, out);
    if (n.ok()) return n;
    return ReadFailed(inode, offset, n.status());
  });
}

Result<size_t> Vfs::ReadSlices(FileHandle fh, uint64_t offset, size_t len,
                               std::vector<store::FileContent::Slice>* out) {
  out->clear();
  if (IsSnapfsHandle(fh)) return snap_->ReadSlices(fh, offset, len, out);
  return ReadLocked(fh, offset, len, [&](Inode& inode) -> Result<size_t> {
    Result<bool> sliced = inode.content->ReadSlices(offset, len, out);
    if (!sliced.ok()) {
      out->clear();
      return ReadFailed(inode, offset, sliced.status());
    }
    if (!*sliced) {
      // Dirty bytes or a hole: the slower copy, into bytes this read owns.
      const uint64_t size = inode.content->size();
      auto copy = std::make_shared<std::string>(
          static_cast<size_t>(std::min<uint64_t>(len, offset < size ? size - offset : 0)), '\0');
      Result<size_t> n = inode.content->Read(offset, copy->size(), copy->data());
      if (!n.ok()) return ReadFailed(inode, offset, n.status());
      copy->resize(*n);
      out->push_back(store::FileContent::Slice{std::move(copy), 0, *n});
    }
    size_t n = 0;
    for (const store::FileContent::Slice& s : *out) n += s.length;
    return n;
  });
}

Status Vfs::ReadFailed(const Inode& inode, uint64_t offset, const Status& failed) {
  Status st = failed;
  // A chunk the file's extents name but the index lacks is damage too: EIO,
  // never ENOENT on a file that exists.
  if (st.code() == Code::kNotFound) st = Status::Corruption(st.message());
  if (st.code() == Code::kCorruption || st.code() == Code::kIo)
    LogError("read of %s (inode %llu%s) at offset %llu failed: %s", PathForLog(inode.ino).c_str(),
             static_cast<unsigned long long>(inode.ino),
             options_.at == store::kLatest ? "" : (", at g" + std::to_string(options_.at)).c_str(),
             static_cast<unsigned long long>(offset), st.ToString().c_str());
  return st;
}

void Vfs::ReadAheadOf(OpenFile& of, uint64_t offset, uint64_t end,
                      std::vector<store::ChunkId>* consumed) {
  const store::FileContent& content = *of.inode->content;
  const std::vector<store::Extent>& extents = content.extents();
  auto first_after = [&](uint64_t off) {
    return std::upper_bound(extents.begin(), extents.end(), off,
                            [](uint64_t o, const store::Extent& e) { return o < e.end(); });
  };
  end = std::min(end, content.size());
  if (offset >= end) return;
  // A read near where the last one ended continues a sequential pass: queue
  // the chunks of the next read_ahead_bytes that are not queued yet. (The
  // kernel may send a pass's reads slightly out of order.)
  const uint64_t window = options_.read_ahead_bytes;
  const uint64_t prev = of.next_read.exchange(end, std::memory_order_relaxed);
  const bool sequential = offset <= prev + window && prev <= offset + window;
  if (sequential) {
    uint64_t from = of.ahead_to.load(std::memory_order_relaxed);
    const uint64_t to = end + window;
    if (from < end || from > to) from = end;  // Behind the reader, or it went back.
    std::vector<store::ChunkId> ahead;
    uint64_t last = from;
    for (auto it = first_after(from); it != extents.end() && it->offset < to; ++it) {
      ahead.push_back(it->id);
      last = it->end();
    }
    if (!ahead.empty()) {
      uint64_t cur = of.ahead_to.load(std::memory_order_relaxed);
      while (cur < last && !of.ahead_to.compare_exchange_weak(cur, last)) {
      }
      read_ahead_->Prefetch(ahead);
    }
  }
  // The chunks this read needs: fetched here unless a prefetch already is.
  std::vector<store::ChunkId> needed;
  for (auto it = first_after(offset); it != extents.end() && it->offset < end; ++it) {
    needed.push_back(it->id);
    // A pass does not come back for a chunk whose end it has read: the
    // kernel's page cache has its bytes (ChunkStore::ReadThrough).
    if (sequential && it->end() <= end) consumed->push_back(it->id);
  }
  read_ahead_->Claim(needed);
}

Result<size_t> Vfs::Write(FileHandle fh, uint64_t offset, const char* data, size_t len) {
  if (IsSnapfsHandle(fh)) return SnapfsReadOnly();
  SNAPFS_RETURN_IF_ERROR(CheckWritable());
  OpenFile* of = FindHandle(handles_mu_, files_, fh);
  if (of == nullptr) return Status::Invalid("bad file handle");
  Inode& inode = *of->inode;
  std::lock_guard ilock(inode.mu);
  if (!inode.content) return Status::Invalid("not a regular file");
  const int64_t now = NowNs();
  if (inode.dirty_since_ns == 0) inode.dirty_since_ns = now;
  SNAPFS_RETURN_IF_ERROR(inode.content->Write(offset, data, len));
  inode.rec.mtime_ns = inode.rec.ctime_ns = now;
  return len;
}

Status Vfs::Flush(FileHandle fh) {
  if (IsSnapfsHandle(fh)) return Status::Ok();
  OpenFile* of = FindHandle(handles_mu_, files_, fh);
  if (of == nullptr) return Status::Invalid("bad file handle");
  std::lock_guard ilock(of->inode->mu);
  return CommitContent(*of->inode, Op::kWrite, false);
}

Status Vfs::Fsync(FileHandle fh, bool /*datasync*/) {
  if (IsSnapfsHandle(fh)) return Status::Ok();
  OpenFile* of = FindHandle(handles_mu_, files_, fh);
  if (of == nullptr) return Status::Invalid("bad file handle");
  std::lock_guard ilock(of->inode->mu);
  return CommitContent(*of->inode, Op::kWrite, true);
}

Status Vfs::Release(FileHandle fh) {
  if (IsSnapfsHandle(fh)) return snap_->Release(fh);
  std::unique_ptr<OpenFile> of;
  {
    std::lock_guard lock(handles_mu_);
    auto it = files_.find(fh);
    if (it == files_.end()) return Status::Invalid("bad file handle");
    of = std::move(it->second);
    files_.erase(it);
  }
  Status st;
  {
    std::lock_guard ilock(of->inode->mu);
    st = CommitContent(*of->inode, Op::kWrite, false);
    std::lock_guard lock(table_mu_);
    of->inode->opens--;
    if (of->inode->opens == 0 && of->inode->content && !of->inode->content->dirty())
      of->inode->content.reset();  // Free the extent list until the next open.
  }
  MaybeEvict(of->inode);
  return st;
}

Status Vfs::Fallocate(FileHandle fh, int mode, uint64_t offset, uint64_t len) {
  if (IsSnapfsHandle(fh)) return SnapfsReadOnly();
  SNAPFS_RETURN_IF_ERROR(CheckWritable());
  if (mode != 0) return Status::Unsupported("fallocate mode");
  OpenFile* of = FindHandle(handles_mu_, files_, fh);
  if (of == nullptr) return Status::Invalid("bad file handle");
  Inode& inode = *of->inode;
  std::lock_guard ilock(inode.mu);
  if (!inode.content) return Status::Invalid("not a regular file");
  if (offset + len > inode.content->size()) {
    if (inode.dirty_since_ns == 0) inode.dirty_since_ns = NowNs();
    SNAPFS_RETURN_IF_ERROR(inode.content->Truncate(offset + len));
  }
  return Status::Ok();
}

// --- Directories -----------------------------------------------------------

Result<FileHandle> Vfs::OpenDir(Ino ino) {
  if (IsSnapfs(ino)) return snap_->OpenDir(ino);
  SNAPFS_ASSIGN_OR_RETURN(InodePtr inode, GetInode(ino));
  if (!IsDir(inode->Record())) return NotADir(ino);
  auto od = std::make_unique<OpenDirectory>();
  od->ino = ino;
  od->listed_at = store_->latest();  // Before listing: a change meanwhile lists again.
  Ino up = ino;
  if (ino != store::kRootIno) {
    SNAPFS_ASSIGN_OR_RETURN(auto d, store_->Lookup(ino, "..", options_.at));
    if (d) up = d->child;
  }
  od->entries.push_back({".", ino, TypeOf(S_IFDIR)});
  od->entries.push_back({"..", up, TypeOf(S_IFDIR)});
  SNAPFS_RETURN_IF_ERROR(store_->ListDir(ino, options_.at,
                                         [&](std::string_view name, const DirentRecord& d) {
                                           if (name != "..")
                                             od->entries.push_back({std::string(name), d.child, d.type});
                                           return true;
                                         }));
  std::lock_guard lock(handles_mu_);
  FileHandle fh = next_handle_++;
  dirs_.emplace(fh, std::move(od));
  return fh;
}

const std::vector<DirEntry>& Vfs::DirEntries(FileHandle fh) const {
  if (IsSnapfsHandle(fh)) return snap_->DirEntries(fh);
  static const std::vector<DirEntry> kNone;
  std::lock_guard lock(handles_mu_);
  auto it = dirs_.find(fh);
  return it == dirs_.end() ? kNone : it->second->entries;
}

Status Vfs::RewindDir(FileHandle fh) {
  // Past views never change; .snapfs listings are taken per open.
  if (IsSnapfsHandle(fh) || options_.read_only) return Status::Ok();
  Ino ino = 0;
  {
    std::lock_guard lock(handles_mu_);
    auto it = dirs_.find(fh);
    if (it == dirs_.end()) return Status::Invalid("bad directory handle");
    // Nothing committed since the listing (the usual opendir + readdir).
    if (it->second->listed_at == store_->latest()) return Status::Ok();
    ino = it->second->ino;
  }
  SNAPFS_ASSIGN_OR_RETURN(FileHandle fresh, OpenDir(ino));
  std::lock_guard lock(handles_mu_);
  auto old_it = dirs_.find(fh);
  auto new_it = dirs_.find(fresh);
  if (old_it != dirs_.end()) old_it->second->entries.swap(new_it->second->entries);
  dirs_.erase(new_it);
  return Status::Ok();
}

void Vfs::ReleaseDir(FileHandle fh) {
  if (IsSnapfsHandle(fh)) return snap_->ReleaseDir(fh);
  std::lock_guard lock(handles_mu_);
  dirs_.erase(fh);
}

Status Vfs::FsyncDir() { return options_.read_only ? Status::Ok() : store_->Sync(); }

Result<FsStats> Vfs::StatFs() {
  struct statvfs sv;
  if (::statvfs(store_->path().c_str(), &sv) != 0)
    return Status::FromErrno(errno, "statfs " + store_->path());
  FsStats s;
  s.block_size = sv.f_frsize;
  s.blocks = sv.f_blocks;
  s.blocks_free = sv.f_bfree;
  s.blocks_avail = options_.read_only ? 0 : sv.f_bavail;
  const uint64_t used = store_->next_ino() - 1;
  s.files_free = options_.read_only ? 0 : (1ull << 32);
  s.files = used + s.files_free;
  return s;
}

bool Vfs::Idle() const {
  {
    std::lock_guard lock(handles_mu_);
    if (!files_.empty() || !dirs_.empty()) return false;
  }
  std::lock_guard lock(table_mu_);
  for (const auto& [ino, inode] : inodes_)
    if (inode->lookups > 0 || inode->opens > 0) return false;
  return true;
}

Status Vfs::Shutdown() {
  std::vector<InodePtr> all;
  {
    std::lock_guard lock(table_mu_);
    for (auto& [ino, inode] : inodes_) all.push_back(inode);
  }
  Status result;
  for (auto& inode : all) {
    std::lock_guard ilock(inode->mu);
    Status st = CommitContent(*inode, Op::kWrite, false);
    if (!st.ok() && result.ok()) result = st;
  }
  if (!options_.read_only) {
    Status st = store_->Sync();
    if (!st.ok() && result.ok()) result = st;
  }
  return result;
}

}  // namespace snapfs::fs
