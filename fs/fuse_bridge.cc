#define FUSE_USE_VERSION 314

#include "fs/fuse_bridge.h"

#include <fuse3/fuse_lowlevel.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <exception>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>
#include <string>

#include "fs/log.h"

namespace snapfs::fs {
namespace {

// A read-only view never changes, so the kernel may keep what it learned; on
// the live view every change goes through the mount too, but a short timeout
// bounds how stale a cached entry can be if that ever stops being true.
constexpr double kLiveTimeoutS = 1.0;
constexpr double kReadOnlyTimeoutS = 3600.0;
constexpr unsigned kMaxWrite = 1u << 20;
constexpr unsigned kMaxBackground = 64;

Vfs& VfsOf(fuse_req_t req) { return *static_cast<Vfs*>(fuse_req_userdata(req)); }

double TimeoutOf(const Vfs& vfs) { return vfs.read_only() ? kReadOnlyTimeoutS : kLiveTimeoutS; }

Caller CallerOf(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  return Caller{ctx->uid, ctx->gid, ctx->umask};
}

timespec ToTimespec(int64_t ns) {
  // Floor division, so times before 1970 keep 0 <= tv_nsec < 1e9.
  int64_t sec = ns / 1'000'000'000;
  int64_t rem = ns % 1'000'000'000;
  if (rem < 0) {
    rem += 1'000'000'000;
    sec -= 1;
  }
  return timespec{static_cast<time_t>(sec), static_cast<long>(rem)};
}

int64_t ToNs(const timespec& t) { return int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec; }

struct stat ToStat(const Attr& a) {
  struct stat st {};
  st.st_ino = a.ino;
  st.st_mode = a.mode;
  st.st_nlink = a.nlink;
  st.st_uid = a.uid;
  st.st_gid = a.gid;
  st.st_rdev = a.rdev;
  st.st_size = static_cast<off_t>(a.size);
  st.st_blocks = static_cast<blkcnt_t>(a.blocks);
  st.st_blksize = a.blksize;
  st.st_atim = ToTimespec(a.atime_ns);
  st.st_mtim = ToTimespec(a.mtime_ns);
  st.st_ctim = ToTimespec(a.ctime_ns);
  return st;
}

fuse_entry_param ToEntry(const Vfs& vfs, const Attr& attr) {
  fuse_entry_param e{};
  e.ino = attr.ino;
  e.generation = 0;  // Inode numbers are never reused.
  e.attr = ToStat(attr);
  e.attr_timeout = TimeoutOf(vfs);
  e.entry_timeout = TimeoutOf(vfs);
  return e;
}

void ReplyStatus(fuse_req_t req, const Status& st) { fuse_reply_err(req, st.ToErrno()); }

// Replies to a request that created a kernel reference (lookup, mknod, ...).
// If the request was interrupted the kernel never sees the entry, so the
// reference taken by the Vfs is dropped again.
void ReplyEntry(fuse_req_t req, const Result<Attr>& attr) {
  if (!attr.ok()) return ReplyStatus(req, attr.status());
  Vfs& vfs = VfsOf(req);
  const fuse_entry_param e = ToEntry(vfs, *attr);
  if (fuse_reply_entry(req, &e) == -ENOENT) vfs.Forget(attr->ino, 1);
}

void ReplyAttr(fuse_req_t req, const Result<Attr>& attr) {
  if (!attr.ok()) return ReplyStatus(req, attr.status());
  const struct stat st = ToStat(*attr);
  fuse_reply_attr(req, &st, TimeoutOf(VfsOf(req)));
}

void ReplyEio(fuse_req_t req) { fuse_reply_err(req, EIO); }
void ReplyNone(fuse_req_t req) { fuse_reply_none(req); }

// Runs one callback body. The body replies exactly once; if it throws before
// replying (a Vfs call ran out of memory, say) the request is answered by
// `on_error` instead, and nothing crosses into libfuse's C code.
template <typename Body>
void Handle(fuse_req_t req, const char* op, Body&& body, void (*on_error)(fuse_req_t) = ReplyEio) {
  try {
    body();
  } catch (const std::exception& e) {
    LogError("%s: %s", op, e.what());
    on_error(req);
  } catch (...) {
    LogError("%s: unknown exception", op);
    on_error(req);
  }
}

// --- Session ---------------------------------------------------------------

void OnInit(void* userdata, fuse_conn_info* conn) {
  const Vfs& vfs = *static_cast<const Vfs*>(userdata);
  auto want = [conn](unsigned cap) {
    if (conn->capable & cap) conn->want |= cap;
  };
  // With writeback caching the kernel gathers small writes into large ones
  // and serves reads from the pages it caches.
  if (!vfs.read_only()) want(FUSE_CAP_WRITEBACK_CACHE);
  want(FUSE_CAP_ASYNC_READ);
  want(FUSE_CAP_PARALLEL_DIROPS);
  // libfuse asks for this by default; it would leave clearing the setuid and
  // setgid bits on write, truncate and chown to the Vfs, which does not. The
  // kernel does it instead, through setattr, as on any disk.
  conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
  conn->max_write = kMaxWrite;
  // The kernel's readahead window becomes the smaller of this and the
  // mount's read_ahead_kb, which FuseMount::Mount raises (it offers 128 KiB,
  // the read_ahead_kb it found when mounting).
  conn->max_readahead = std::numeric_limits<unsigned>::max();
  conn->max_background = kMaxBackground;
}

void OnDestroy(void* userdata) {
  try {
    Status st = static_cast<Vfs*>(userdata)->Shutdown();
    if (!st.ok()) LogError("unmount: %s", st.ToString().c_str());
  } catch (const std::exception& e) {
    LogError("unmount: %s", e.what());
  }
}

// --- Names -----------------------------------------------------------------

void OnLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Handle(req, "lookup", [&] {
    Vfs& vfs = VfsOf(req);
    Result<Attr> attr = vfs.Lookup(parent, name);
    if (!attr.ok() && attr.status().code() == Code::kNotFound) {
      // A negative entry (ino 0): the kernel remembers the name is absent.
      fuse_entry_param e{};
      e.entry_timeout = TimeoutOf(vfs);
      fuse_reply_entry(req, &e);
      return;
    }
    ReplyEntry(req, attr);
  });
}

void OnForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  Handle(req, "forget", [&] {
    VfsOf(req).Forget(ino, nlookup);
    fuse_reply_none(req);
  }, ReplyNone);
}

void OnForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  Handle(req, "forget", [&] {
    Vfs& vfs = VfsOf(req);
    for (size_t i = 0; i < count; ++i) vfs.Forget(forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
  }, ReplyNone);
}

void OnGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* /*fi*/) {
  Handle(req, "getattr", [&] { ReplyAttr(req, VfsOf(req).GetAttr(ino)); });
}

void OnSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
               fuse_file_info* /*fi*/) {
  Handle(req, "setattr", [&] {
    SetAttrRequest r;
    if (to_set & FUSE_SET_ATTR_MODE) r.mode = attr->st_mode & 07777;
    if (to_set & FUSE_SET_ATTR_UID) r.uid = attr->st_uid;
    if (to_set & FUSE_SET_ATTR_GID) r.gid = attr->st_gid;
    if (to_set & FUSE_SET_ATTR_SIZE) r.size = static_cast<uint64_t>(attr->st_size);
    // The kernel sets ATIME together with ATIME_NOW: test _NOW first.
    if (to_set & FUSE_SET_ATTR_ATIME_NOW) r.atime_ns = SetAttrRequest::kNow;
    else if (to_set & FUSE_SET_ATTR_ATIME) r.atime_ns = ToNs(attr->st_atim);
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) r.mtime_ns = SetAttrRequest::kNow;
    else if (to_set & FUSE_SET_ATTR_MTIME) r.mtime_ns = ToNs(attr->st_mtim);
    ReplyAttr(req, VfsOf(req).SetAttr(ino, r));
  });
}

void OnReadlink(fuse_req_t req, fuse_ino_t ino) {
  Handle(req, "readlink", [&] {
    Result<std::string> target = VfsOf(req).Readlink(ino);
    if (!target.ok()) return ReplyStatus(req, target.status());
    fuse_reply_readlink(req, target->c_str());
  });
}

void OnMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  Handle(req, "mknod", [&] {
    ReplyEntry(req, VfsOf(req).Mknod(parent, name, mode, rdev, CallerOf(req)));
  });
}

void OnMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  Handle(req, "mkdir", [&] {
    ReplyEntry(req, VfsOf(req).Mkdir(parent, name, mode, CallerOf(req)));
  });
}

void OnSymlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  Handle(req, "symlink", [&] {
    ReplyEntry(req, VfsOf(req).Symlink(parent, name, target, CallerOf(req)));
  });
}

void OnUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Handle(req, "unlink", [&] { ReplyStatus(req, VfsOf(req).Unlink(parent, name)); });
}

void OnRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Handle(req, "rmdir", [&] { ReplyStatus(req, VfsOf(req).Rmdir(parent, name)); });
}

void OnRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t new_parent,
              const char* new_name, unsigned int flags) {
  Handle(req, "rename", [&] {
    ReplyStatus(req, VfsOf(req).Rename(parent, name, new_parent, new_name, flags));
  });
}

void OnLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t new_parent, const char* new_name) {
  Handle(req, "link", [&] { ReplyEntry(req, VfsOf(req).Link(ino, new_parent, new_name)); });
}

// --- Files -----------------------------------------------------------------

void OnOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Handle(req, "open", [&] {
    Vfs& vfs = VfsOf(req);
    Result<FileHandle> fh = vfs.Open(ino, fi->flags);
    if (!fh.ok()) return ReplyStatus(req, fh.status());
    fi->fh = *fh;
    fi->keep_cache = 1;  // Content changes only through this mount.
    // An interrupted open gets no release from the kernel: release here.
    if (fuse_reply_open(req, fi) == -ENOENT) (void)vfs.Release(*fh);
  });
}

void OnCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
              fuse_file_info* fi) {
  Handle(req, "create", [&] {
    Vfs& vfs = VfsOf(req);
    Result<Vfs::Created> c = vfs.Create(parent, name, mode, fi->flags, CallerOf(req));
    if (!c.ok()) return ReplyStatus(req, c.status());
    fi->fh = c->fh;
    fi->keep_cache = 1;
    const fuse_entry_param e = ToEntry(vfs, c->attr);
    if (fuse_reply_create(req, &e, fi) == -ENOENT) {
      (void)vfs.Release(c->fh);
      vfs.Forget(c->attr.ino, 1);
    }
  });
}

void OnRead(fuse_req_t req, fuse_ino_t /*ino*/, size_t size, off_t off, fuse_file_info* fi) {
  Handle(req, "read", [&] {
    // The reply gathers the bytes from the decoded chunks (writev): they are
    // copied once, by the kernel, into the reader's pages. Kept per worker
    // thread to save allocations; emptied after each reply so no chunk is
    // held longer than its reply.
    thread_local std::vector<store::FileContent::Slice> slices;
    thread_local std::vector<iovec> iov;
    Result<size_t> n = VfsOf(req).ReadSlices(fi->fh, static_cast<uint64_t>(off), size, &slices);
    if (!n.ok()) {
      slices.clear();
      return ReplyStatus(req, n.status());
    }
    iov.clear();
    for (const store::FileContent::Slice& s : slices)
      iov.push_back(iovec{const_cast<char*>(s.chunk->data() + s.offset), s.length});
    fuse_reply_iov(req, iov.data(), static_cast<int>(iov.size()));
    slices.clear();
  });
}

void OnWrite(fuse_req_t req, fuse_ino_t /*ino*/, const char* buf, size_t size, off_t off,
             fuse_file_info* fi) {
  Handle(req, "write", [&] {
    Result<size_t> n = VfsOf(req).Write(fi->fh, static_cast<uint64_t>(off), buf, size);
    if (!n.ok()) return ReplyStatus(req, n.status());
    fuse_reply_write(req, *n);
  });
}

void OnFlush(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) {
  Handle(req, "flush", [&] { ReplyStatus(req, VfsOf(req).Flush(fi->fh)); });
}

void OnRelease(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) {
  Handle(req, "release", [&] { ReplyStatus(req, VfsOf(req).Release(fi->fh)); });
}

void OnFsync(fuse_req_t req, fuse_ino_t /*ino*/, int datasync, fuse_file_info* fi) {
  Handle(req, "fsync", [&] { ReplyStatus(req, VfsOf(req).Fsync(fi->fh, datasync != 0)); });
}

void OnFallocate(fuse_req_t req, fuse_ino_t /*ino*/, int mode, off_t offset, off_t length,
                 fuse_file_info* fi) {
  Handle(req, "fallocate", [&] {
    ReplyStatus(req, VfsOf(req).Fallocate(fi->fh, mode, static_cast<uint64_t>(offset),
                                          static_cast<uint64_t>(length)));
  });
}

// --- Directories -----------------------------------------------------------

void OnOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Handle(req, "opendir", [&] {
    Vfs& vfs = VfsOf(req);
    Result<FileHandle> fh = vfs.OpenDir(ino);
    if (!fh.ok()) return ReplyStatus(req, fh.status());
    fi->fh = *fh;
    if (vfs.read_only()) {  // The listing can never change: let the kernel keep it.
      fi->cache_readdir = 1;
      fi->keep_cache = 1;
    }
    if (fuse_reply_open(req, fi) == -ENOENT) vfs.ReleaseDir(*fh);
  });
}

// Entry i of the snapshot taken by OpenDir has cookie i + 1: the offset at
// which the next ReadDir resumes.
void OnReaddir(fuse_req_t req, fuse_ino_t /*ino*/, size_t size, off_t off, fuse_file_info* fi) {
  Handle(req, "readdir", [&] {
    if (off == 0) {  // A first pass, or rewinddir(3): list the folder as it is now.
      Status st = VfsOf(req).RewindDir(fi->fh);
      if (!st.ok()) return ReplyStatus(req, st);
    }
    const std::vector<DirEntry>& entries = VfsOf(req).DirEntries(fi->fh);
    auto buf = std::make_unique_for_overwrite<char[]>(size);
    size_t used = 0;
    for (size_t i = static_cast<size_t>(std::max<off_t>(off, 0)); i < entries.size(); ++i) {
      struct stat st {};
      st.st_ino = entries[i].ino;
      st.st_mode = entries[i].type << 12;
      const size_t need = fuse_add_direntry(req, buf.get() + used, size - used,
                                            entries[i].name.c_str(), &st,
                                            static_cast<off_t>(i + 1));
      if (need > size - used) break;  // Did not fit; the next call resumes here.
      used += need;
    }
    fuse_reply_buf(req, buf.get(), used);
  });
}

void OnReleasedir(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) {
  Handle(req, "releasedir", [&] {
    VfsOf(req).ReleaseDir(fi->fh);
    fuse_reply_err(req, 0);
  });
}

void OnFsyncdir(fuse_req_t req, fuse_ino_t /*ino*/, int /*datasync*/, fuse_file_info* /*fi*/) {
  Handle(req, "fsyncdir", [&] { ReplyStatus(req, VfsOf(req).FsyncDir()); });
}

void OnStatfs(fuse_req_t req, fuse_ino_t /*ino*/) {
  Handle(req, "statfs", [&] {
    Result<FsStats> s = VfsOf(req).StatFs();
    if (!s.ok()) return ReplyStatus(req, s.status());
    struct statvfs sv {};
    sv.f_bsize = s->block_size;
    sv.f_frsize = s->block_size;
    sv.f_blocks = s->blocks;
    sv.f_bfree = s->blocks_free;
    sv.f_bavail = s->blocks_avail;
    sv.f_files = s->files;
    sv.f_ffree = s->files_free;
    sv.f_favail = s->files_free;
    sv.f_namemax = s->name_max;
    fuse_reply_statfs(req, &sv);
  });
}

const fuse_lowlevel_ops kOps = [] {
  fuse_lowlevel_ops ops{};
  ops.init = OnInit;
  ops.destroy = OnDestroy;
  ops.lookup = OnLookup;
  ops.forget = OnForget;
  ops.forget_multi = OnForgetMulti;
  ops.getattr = OnGetattr;
  ops.setattr = OnSetattr;
  ops.readlink = OnReadlink;
  ops.mknod = OnMknod;
  ops.mkdir = OnMkdir;
  ops.unlink = OnUnlink;
  ops.rmdir = OnRmdir;
  ops.symlink = OnSymlink;
  ops.rename = OnRename;
  ops.link = OnLink;
  ops.open = OnOpen;
  ops.read = OnRead;
  ops.write = OnWrite;
  ops.flush = OnFlush;
  ops.release = OnRelease;
  ops.fsync = OnFsync;
  ops.opendir = OnOpendir;
  ops.readdir = OnReaddir;
  ops.releasedir = OnReleasedir;
  ops.fsyncdir = OnFsyncdir;
  ops.statfs = OnStatfs;
  ops.create = OnCreate;
  ops.fallocate = OnFallocate;
  return ops;
}();

// --- Mounting --------------------------------------------------------------

// libfuse's messages ("fuse: mount failed: ...") go where ours go. libfuse
// writes some lines in pieces, so they are gathered up to the newline.
void LogFromLibfuse(fuse_log_level level, const char* format, va_list args) {
  thread_local std::string pending;
  char piece[1024];
  vsnprintf(piece, sizeof(piece), format, args);
  pending += piece;
  if (pending.empty() || pending.back() != '\n') return;
  pending.pop_back();
  if (level <= FUSE_LOG_ERR) LogError("%s", pending.c_str());
  else if (level <= FUSE_LOG_WARNING) LogWarning("%s", pending.c_str());
  else LogInfo("%s", pending.c_str());
  pending.clear();
}

// One -o option value: libfuse splits on commas unless escaped.
std::string EscapeOption(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == ',' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// fuse_args owns copies of the strings it is given.
class FuseArgs {
 public:
  FuseArgs() = default;
  ~FuseArgs() { fuse_opt_free_args(&args_); }
  FuseArgs(const FuseArgs&) = delete;
  FuseArgs& operator=(const FuseArgs&) = delete;
  Status Add(const std::string& arg) {
    if (fuse_opt_add_arg(&args_, arg.c_str()) != 0) return Status::Io("out of memory");
    return Status::Ok();
  }
  fuse_args* get() { return &args_; }

 private:
  fuse_args args_ = FUSE_ARGS_INIT(0, nullptr);
};

// The backing device of the mount at `mountpoint` (a canonical path) as
// "major:minor", from the mount table: a stat() of the mount point would be
// a request to this daemon, which does not serve yet. The last match is the
// mount on top. Empty if none.
std::string MountDevice(const std::string& mountpoint) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line, device;
  while (std::getline(in, line)) {
    // ID PARENT MAJOR:MINOR ROOT MOUNTPOINT ...; the mount point has space,
    // tab, newline and backslash escaped as \ooo.
    std::istringstream fields(line);
    std::string id, parent, dev, root, escaped;
    if (!(fields >> id >> parent >> dev >> root >> escaped)) continue;
    std::string path;
    auto octal = [](char c) { return c >= '0' && c <= '7'; };
    for (size_t i = 0; i < escaped.size(); ++i) {
      const char* e = escaped.c_str() + i;
      if (e[0] == '\\' && i + 3 < escaped.size() && octal(e[1]) && octal(e[2]) && octal(e[3])) {
        path += static_cast<char>((e[1] - '0') * 64 + (e[2] - '0') * 8 + (e[3] - '0'));
        i += 3;
      } else {
        path += e[0];
      }
    }
    if (path == mountpoint) device = dev;
  }
  return device;
}

// Raises the kernel's readahead for the new mount (MountOptions::read_ahead_kb).
// FUSE_INIT can only lower the window the kernel offers (the bdi's, 128 KiB by
// default), so the bdi's read_ahead_kb is the one knob that raises it: the
// kernel then reads a sequential file ahead in requests of up to max_write
// bytes, several at a time, and the worker threads serve them in parallel.
void RaiseReadAhead(const std::string& mountpoint, unsigned kb) {
  const std::string device = MountDevice(mountpoint);
  if (device.empty()) {
    LogInfo("read-ahead: %s is not in the mount table", mountpoint.c_str());
    return;
  }
  const std::string knob = "/sys/class/bdi/" + device + "/read_ahead_kb";
  std::ofstream out(knob);
  out << kb << std::flush;
  if (!out) LogInfo("read-ahead stays the kernel's: cannot write %s", knob.c_str());
}

}  // namespace

Result<std::unique_ptr<FuseMount>> FuseMount::Mount(Vfs* vfs, const MountOptions& options) {
  struct stat st;
  if (::stat(options.mountpoint.c_str(), &st) != 0) {
    if (errno == ENOTCONN)
      return Status::Io("mount point " + options.mountpoint +
                        " is a crashed mount; clear it with: fusermount3 -u " + options.mountpoint);
    return Status::FromErrno(errno, "mount point " + options.mountpoint);
  }
  if (!S_ISDIR(st.st_mode))
    return Status::Io("mount point " + options.mountpoint + " is not a directory");
  // Canonical before mounting: resolving the mount point afterwards would ask
  // this daemon about its root.
  std::unique_ptr<char, decltype(&::free)> canonical(::realpath(options.mountpoint.c_str(), nullptr),
                                                    &::free);

  std::string opts = "default_permissions,subtype=snapfs,fsname=" +
                     EscapeOption(options.fsname.empty() ? "snapfs" : options.fsname);
  if (vfs->read_only()) opts += ",ro";
  for (const std::string& o : options.fuse_options) opts += "," + o;
  FuseArgs args;
  SNAPFS_RETURN_IF_ERROR(args.Add("snapfs"));
  if (options.debug) SNAPFS_RETURN_IF_ERROR(args.Add("-d"));
  SNAPFS_RETURN_IF_ERROR(args.Add("-o"));
  SNAPFS_RETURN_IF_ERROR(args.Add(opts));

  fuse_set_log_func(LogFromLibfuse);
  fuse_session* se = fuse_session_new(args.get(), &kOps, sizeof(kOps), vfs);
  if (se == nullptr) return Status::Invalid("bad FUSE options: " + opts);
  if (fuse_set_signal_handlers(se) != 0) {
    fuse_session_destroy(se);
    return Status::Io("cannot install signal handlers");
  }
  if (fuse_session_mount(se, options.mountpoint.c_str()) != 0) {
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    return Status::Io("mount on " + options.mountpoint + " failed (see the message above)");
  }
  if (options.read_ahead_kb > 0 && canonical) RaiseReadAhead(canonical.get(), options.read_ahead_kb);
  return std::unique_ptr<FuseMount>(new FuseMount(se, options.max_idle_threads));
}

FuseMount::~FuseMount() {
  fuse_session_unmount(session_);
  fuse_remove_signal_handlers(session_);
  fuse_session_destroy(session_);  // Calls OnDestroy if the kernel sent INIT.
}

Status FuseMount::Serve() {
  fuse_loop_config* config = fuse_loop_cfg_create();
  if (config == nullptr) return Status::Io("out of memory");
  fuse_loop_cfg_set_clone_fd(config, 0);
  fuse_loop_cfg_set_idle_threads(config, max_idle_threads_);
  const int rc = fuse_session_loop_mt(session_, config);
  fuse_loop_cfg_destroy(config);
  // 0: unmounted; > 0: the signal that ended the loop; < 0: -errno.
  if (rc < 0) return Status::FromErrno(-rc, "reading /dev/fuse");
  return Status::Ok();
}

}  // namespace snapfs::fs
