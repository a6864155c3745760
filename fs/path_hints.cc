#include "fs/path_hints.h"

#include <sys/stat.h>

#include <optional>

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

namespace {

// `path` with each run of digits as one '#'.
std::string Pattern(std::string_view path) {
  auto digit = [&](size_t i) { return path[i] >= '0' && path[i] <= '9'; };
  std::string out;
  for (size_t i = 0; i < path.size(); ++i) {
    if (!digit(i)) out += path[i];
    else if (i == 0 || !digit(i - 1)) out += '#';
  }
  return out;
}

// The runs of digits in `s`, in order.
std::vector<std::string_view> DigitRuns(std::string_view s) {
  std::vector<std::string_view> runs;
  for (size_t i = 0; i < s.size();) {
    if (s[i] < '0' || s[i] > '9') {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
    runs.push_back(s.substr(i, j - i));
    i = j;
  }
  return runs;
}

}  // namespace

store::Ino PathHints::FindSibling(const std::string& path, store::Ino ino) {
  const std::string pattern = Pattern(path);
  if (pattern == path) return 0;  // No digits: no siblings.
  const auto now = now_();
  std::deque<Sibling>& list = siblings_[pattern];
  if (list.empty()) sibling_bytes_ += pattern.size();
  store::Ino best = 0;
  size_t best_equal = 0;
  const std::vector<std::string_view> runs = DigitRuns(path);
  for (const Sibling& s : list) {  // Oldest first: the newest wins a tie.
    if (s.name == path || now - s.created < min_sibling_age_) continue;
    const std::vector<std::string_view> other = DigitRuns(s.name);
    size_t equal = 0;
    for (size_t i = 0; i < runs.size() && i < other.size(); ++i) equal += runs[i] == other[i];
    if (best == 0 || equal >= best_equal) {
      best = s.ino;
      best_equal = equal;
    }
  }
  list.push_back(Sibling{path, ino, now});
  sibling_bytes_ += path.size();
  if (list.size() > kMaxSiblings) {
    sibling_bytes_ -= list.front().name.size();
    list.pop_front();
  }
  if (sibling_bytes_ > kMaxPathBytes) {  // Rare (many patterns): start again.
    siblings_.clear();
    sibling_bytes_ = 0;
  }
  return best;
}

std::vector<store::Extent> PathHints::Take(store::Ino dir, std::string_view name, store::Ino ino) {
  std::optional<Content> c;
  store::Ino sibling = 0;
  {
    std::lock_guard lock(mu_);
    const std::string path = PathOf(dir, name);
    if (path.empty()) return {};
    auto it = left_.find(path);
    if (it != left_.end()) {
      c = it->second;
      path_bytes_ -= it->first.size();
      left_.erase(it);
    }
    sibling = FindSibling(path, ino);
  }
  // Hints only: a content that cannot be read now offers none.
  if (!c && sibling != 0) {
    Result<std::optional<store::InodeRecord>> rec = store_->GetInode(sibling, store::kLatest);
    if (!rec.ok() || !*rec || !S_ISREG((*rec)->mode)) return {};
    c = Content{sibling, **rec, 0};
  }
  if (!c) return {};
  Result<std::vector<store::Extent>> extents = store_->GetExtents(c->ino, c->rec);
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
