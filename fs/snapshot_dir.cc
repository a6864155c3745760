#include "fs/snapshot_dir.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>

#include "store/when.h"

namespace snapfs::fs {
namespace {

constexpr int kViewShift = 40;
constexpr Ino kRealMask = (Ino{1} << kViewShift) - 1;
constexpr int kHandleShift = 48;
constexpr FileHandle kListingTag = FileHandle{0xFFFF} << kHandleShift;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct SnapshotDir::View {
  View(store::Store* store, Generation g, uint32_t n, ReadAhead* read_ahead)
      : number(n),
        generation(g),
        vfs(store, VfsOptions{.at = g,
                              .read_only = true,
                              .read_ahead_bytes = read_ahead ? VfsOptions().read_ahead_bytes : 0,
                              .read_ahead = read_ahead}) {}
  bool Idle() const { return root_refs == 0 && vfs.Idle(); }
  const uint32_t number;
  const Generation generation;
  Vfs vfs;
  // Kernel references to the view's root, taken by lookups in at/ and
  // states/ (the view's Vfs does not count those).
  std::atomic<uint64_t> root_refs{0};
};

SnapshotDir::SnapshotDir(store::Store* store, ReadAhead* read_ahead)
    : store_(store), read_ahead_(read_ahead) {}
SnapshotDir::~SnapshotDir() = default;

Attr SnapshotDir::FolderAttr(Ino ino) const {
  Attr a;
  a.ino = ino;
  a.mode = S_IFDIR | 0555;
  a.nlink = 2;
  a.blksize = 4096;
  a.atime_ns = a.mtime_ns = a.ctime_ns = store_->latest_time_ns();
  return a;
}

Attr SnapshotDir::RootAttr() const { return FolderAttr(kRootDir); }

Attr SnapshotDir::Tag(const View& view, Attr attr) const {
  attr.ino = kVirtual | (Ino{view.number} << kViewShift) | attr.ino;
  return attr;
}

SnapshotDir::ViewPtr SnapshotDir::ViewOf(Ino ino, Ino* real) {
  const uint32_t n = static_cast<uint32_t>((ino & ~kVirtual) >> kViewShift);
  std::lock_guard lock(mu_);
  if (n == 0 || n > views_.size()) return nullptr;
  *real = ino & kRealMask;
  return views_[n - 1];
}

SnapshotDir::ViewPtr SnapshotDir::ViewOfHandle(FileHandle fh, FileHandle* real) {
  const uint32_t n = static_cast<uint32_t>(fh >> kHandleShift);
  std::lock_guard lock(mu_);
  if (n == 0 || n > views_.size()) return nullptr;
  *real = fh & ((FileHandle{1} << kHandleShift) - 1);
  return views_[n - 1];
}

Result<Attr> SnapshotDir::ViewRoot(Generation g) {
  ViewPtr view;
  {
    std::lock_guard lock(mu_);
    auto it = by_generation_.find(g);
    if (it != by_generation_.end()) {
      view = views_[it->second - 1];
    } else if (views_.size() < kMaxViews) {
      const uint32_t n = static_cast<uint32_t>(views_.size() + 1);
      views_.push_back(std::make_shared<View>(store_, g, n, read_ahead_));
      by_generation_.emplace(g, n);
      view = views_.back();
    } else {
      auto idle = std::find_if(views_.begin(), views_.end(),
                               [](const ViewPtr& v) { return v->Idle(); });
      if (idle == views_.end()) return Status::Busy("too many past states open at once");
      const uint32_t n = (*idle)->number;
      by_generation_.erase((*idle)->generation);
      *idle = std::make_shared<View>(store_, g, n, read_ahead_);  // In-flight users keep the old one alive.
      by_generation_.emplace(g, n);
      view = *idle;
    }
    view->root_refs++;
  }
  Result<Attr> root = view->vfs.GetAttr(store::kRootIno);
  if (!root.ok()) {
    view->root_refs--;
    return root.status();
  }
  return Tag(*view, *root);
}

Result<Attr> SnapshotDir::Lookup(Ino parent, std::string_view name) {
  if (parent == kRootDir) {
    if (name == "at") return FolderAttr(kAtDir);
    if (name == "states") return FolderAttr(kStatesDir);
    return Status::NotFound(std::string(name));
  }
  if (parent == kAtDir || parent == kStatesDir) {
    // A name that is no WHEN is simply not there (ENOENT), as on any folder.
    Result<store::WhenSpec> when = store::ParseWhen(name);
    if (!when.ok()) return Status::NotFound(std::string(name));
    if (parent == kStatesDir && when->kind != store::WhenSpec::Kind::kState)
      return Status::NotFound(std::string(name));
    SNAPFS_RETURN_IF_ERROR(store_->CatchUp());
    Result<Generation> g = store::ResolveWhen(*store_, *when, NowNs());
    if (!g.ok()) {
      if (g.status().code() == Code::kNotFound) return Status::NotFound(g.status().message());
      return g.status();
    }
    return ViewRoot(*g);
  }
  Ino real;
  ViewPtr view = ViewOf(parent, &real);
  if (!view) return Status::NotFound("no such view");
  SNAPFS_ASSIGN_OR_RETURN(Attr a, view->vfs.Lookup(real, name));
  return Tag(*view, a);
}

void SnapshotDir::Forget(Ino ino, uint64_t count) {
  Ino real;
  ViewPtr view = ViewOf(ino, &real);
  if (!view) return;
  if (real == store::kRootIno) {
    // References from at/ and states/ lookups first; any others came from a
    // ".." lookup inside the view, which its Vfs counted.
    std::lock_guard lock(mu_);
    const uint64_t ours = std::min<uint64_t>(view->root_refs, count);
    view->root_refs -= ours;
    count -= ours;
  }
  if (count > 0) view->vfs.Forget(real, count);
}

Result<Attr> SnapshotDir::GetAttr(Ino ino) {
  if (ino == kRootDir || ino == kAtDir || ino == kStatesDir) return FolderAttr(ino);
  Ino real;
  ViewPtr view = ViewOf(ino, &real);
  if (!view) return Status::NotFound("no such view");
  SNAPFS_ASSIGN_OR_RETURN(Attr a, view->vfs.GetAttr(real));
  return Tag(*view, a);
}

Result<std::string> SnapshotDir::Readlink(Ino ino) {
  Ino real;
  ViewPtr view = ViewOf(ino, &real);
  if (!view) return Status::Invalid("not a symlink");
  return view->vfs.Readlink(real);
}

Result<FileHandle> SnapshotDir::Open(Ino ino, int flags) {
  Ino real;
  ViewPtr view = ViewOf(ino, &real);
  if (!view) return Status(Code::kIsDir, "open of a directory");
  SNAPFS_ASSIGN_OR_RETURN(FileHandle fh, view->vfs.Open(real, flags));
  return (FileHandle{view->number} << kHandleShift) | fh;
}

Result<size_t> SnapshotDir::Read(FileHandle fh, uint64_t offset, size_t len, char* out) {
  FileHandle real;
  ViewPtr view = ViewOfHandle(fh, &real);
  if (!view) return Status::Invalid("bad file handle");
  return view->vfs.Read(real, offset, len, out);
}

Result<size_t> SnapshotDir::ReadSlices(FileHandle fh, uint64_t offset, size_t len,
                                       std::vector<store::FileContent::Slice>* out) {
  FileHandle real;
  ViewPtr view = ViewOfHandle(fh, &real);
  if (!view) return Status::Invalid("bad file handle");
  return view->vfs.ReadSlices(real, offset, len, out);
}

Status SnapshotDir::Release(FileHandle fh) {
  FileHandle real;
  ViewPtr view = ViewOfHandle(fh, &real);
  if (!view) return Status::Invalid("bad file handle");
  return view->vfs.Release(real);
}

Result<FileHandle> SnapshotDir::OpenDir(Ino ino) {
  std::vector<DirEntry> entries;
  if (ino == kRootDir) {
    entries = {{".", kRootDir, S_IFDIR >> 12}, {"..", store::kRootIno, S_IFDIR >> 12},
               {"at", kAtDir, S_IFDIR >> 12}, {"states", kStatesDir, S_IFDIR >> 12}};
  } else if (ino == kAtDir) {
    entries = {{".", kAtDir, S_IFDIR >> 12}, {"..", kRootDir, S_IFDIR >> 12}};
  } else if (ino == kStatesDir) {
    entries = {{".", kStatesDir, S_IFDIR >> 12}, {"..", kRootDir, S_IFDIR >> 12}};
    SNAPFS_RETURN_IF_ERROR(store_->CatchUp());
    SNAPFS_RETURN_IF_ERROR(store_->ListStates(0, [&](const store::State& s) {
      entries.push_back({"s" + std::to_string(s.first_gen), kStatesDir, S_IFDIR >> 12});
      return true;
    }));
    // A state's real inode number is only known after a lookup; readdir
    // users (ls, find) look each name up anyway. Give each a distinct
    // placeholder, since some programs skip entries whose inode is 0.
    for (size_t i = 2; i < entries.size(); ++i) entries[i].ino = kVirtual | (4 + i);
  } else {
    Ino real;
    ViewPtr view = ViewOf(ino, &real);
    if (!view) return Status(Code::kNotDir, "not a directory");
    SNAPFS_ASSIGN_OR_RETURN(FileHandle vfh, view->vfs.OpenDir(real));
    entries = view->vfs.DirEntries(vfh);
    view->vfs.ReleaseDir(vfh);
    for (auto& e : entries) e.ino = Tag(*view, Attr{.ino = e.ino}).ino;
  }
  std::lock_guard lock(mu_);
  FileHandle fh = kListingTag | next_listing_++;
  listings_.emplace(fh, std::move(entries));
  return fh;
}

const std::vector<DirEntry>& SnapshotDir::DirEntries(FileHandle fh) const {
  static const std::vector<DirEntry> kNone;
  std::lock_guard lock(mu_);
  auto it = listings_.find(fh);
  return it == listings_.end() ? kNone : it->second;
}

void SnapshotDir::ReleaseDir(FileHandle fh) {
  std::lock_guard lock(mu_);
  listings_.erase(fh);
}

}  // namespace snapfs::fs
