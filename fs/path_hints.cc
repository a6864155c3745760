#include "fs/path_hints.h"

#include <sys/stat.h>

#include "store/paths.h"

namespace snapfs::fs {

std::string PathHints::PathOf(store::Ino dir, std::string_view name) {
  auto it = dir_paths_.find(dir);
  if (it == dir_paths_.end()) {
    Result<std::string> path = store::DirPath(*store_, dir, store::kLatest);
    if (!path.ok()) return "";
    if (dir_paths_.size() >= kMaxCachedDirs) dir_paths_.clear();
    it = dir_paths_.emplace(dir, std::move(*path)).first;
  }
  return (it->second == "/" ? "" : it->second) + "/" + std::string(name);
}

void PathHints::Left(store::Ino dir, std::string_view name, store::Ino ino,
                     const store::InodeRecord& rec) {
  if (!S_ISREG(rec.mode) || rec.size == 0) return;
  std::lock_guard lock(mu_);
  std::string path = PathOf(dir, name);
  if (path.empty()) return;
  const uint64_t seq = next_seq_++;
  auto [it, added] = left_.insert_or_assign(path, Content{ino, rec, seq});
  if (added) path_bytes_ += path.size();
  order_.emplace_back(std::move(path), seq);
  while (left_.size() > kMaxPaths || path_bytes_ > kMaxPathBytes || order_.size() > 2 * kMaxPaths) {
    auto& [oldest, oldest_seq] = order_.front();
    auto o = left_.find(oldest);
    if (o != left_.end() && o->second.seq == oldest_seq) {
      path_bytes_ -= oldest.size();
      left_.erase(o);
    }
    order_.pop_front();
  }
}

std::vector<store::Extent> PathHints::Take(store::Ino dir, std::string_view name) {
  Content c;
  {
    std::lock_guard lock(mu_);
    if (left_.empty()) return {};
    auto it = left_.find(PathOf(dir, name));
    if (it == left_.end()) return {};
    c = it->second;
    path_bytes_ -= it->first.size();
    left_.erase(it);
  }
  // A hint only: a content that cannot be read now offers none.
  Result<std::vector<store::Extent>> extents = store_->GetExtents(c.ino, c.rec);
  return extents.ok() ? std::move(*extents) : std::vector<store::Extent>{};
}

void PathHints::DirRemoved(store::Ino dir) {
  std::lock_guard lock(mu_);
  dir_paths_.erase(dir);
}

void PathHints::DirRenamed() {
  std::lock_guard lock(mu_);
  dir_paths_.clear();
}

size_t PathHints::size() const {
  std::lock_guard lock(mu_);
  return left_.size();
}

}  // namespace snapfs::fs
