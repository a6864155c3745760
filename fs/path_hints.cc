#include "fs/path_hints.h"

#include <sys/stat.h>

#include <algorithm>

namespace snapfs::fs {

namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// `name` with each run of digits as one '#'.
std::string Pattern(std::string_view name) {
  std::string out;
  for (size_t i = 0; i < name.size(); ++i) {
    if (!IsDigit(name[i])) out += name[i];
    else if (i == 0 || !IsDigit(name[i - 1])) out += '#';
  }
  return out;
}

// The runs of digits in `s`, in order.
std::vector<std::string_view> DigitRuns(std::string_view s) {
  std::vector<std::string_view> runs;
  for (size_t i = 0; i < s.size();) {
    if (!IsDigit(s[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < s.size() && IsDigit(s[j])) ++j;
    runs.push_back(s.substr(i, j - i));
    i = j;
  }
  return runs;
}

}  // namespace

template <typename V>
void PathHints::Bounded<V>::Put(std::string key, V value) {
  const uint64_t seq = next_seq_++;
  auto [it, added] = map_.insert_or_assign(key, std::make_pair(std::move(value), seq));
  if (added) bytes_ += key.size();
  order_.emplace_back(std::move(key), seq);
  while (map_.size() > kMaxEntries || bytes_ > kMaxNameBytes || order_.size() > 2 * kMaxEntries) {
    const auto& [oldest, oldest_seq] = order_.front();
    auto o = map_.find(oldest);
    if (o != map_.end() && o->second.second == oldest_seq) {
      bytes_ -= oldest.size();
      map_.erase(o);
    }
    order_.pop_front();
  }
}

template <typename V>
std::optional<V> PathHints::Bounded<V>::Take(const std::string& key) {
  auto it = map_.find(key);
  if (it == map_.end()) return std::nullopt;
  V value = std::move(it->second.first);
  bytes_ -= it->first.size();
  map_.erase(it);
  return value;
}

template <typename V>
const V* PathHints::Bounded<V>::Find(const std::string& key) const {
  auto it = map_.find(key);
  return it == map_.end() ? nullptr : &it->second.first;
}

PathHints::PathHints(store::Store* store, std::chrono::steady_clock::duration min_sibling_age,
                     Clock now)
    : store_(store), min_sibling_age_(min_sibling_age), now_(std::move(now)) {}

PathHints::Lineage PathHints::LineageOf(store::Ino dir) const {
  const Lineage* l = lineages_.Find(std::to_string(dir));
  return l ? *l : Lineage{dir, 0};
}

std::string PathHints::Key(store::Ino dir, std::string_view name) const {
  return std::to_string(LineageOf(dir).identity) + "/" + std::string(name);
}

void PathHints::Left(store::Ino dir, std::string_view name, store::Ino ino,
                     const store::InodeRecord& rec) {
  if (!S_ISREG(rec.mode) || rec.size == 0) return;
  std::lock_guard lock(mu_);
  left_.Put(Key(dir, name), Content{ino, rec});
}

void PathHints::DirLeft(store::Ino dir, std::string_view name, store::Ino ino) {
  std::lock_guard lock(mu_);
  dirs_left_.Put(Key(dir, name), Lineage{LineageOf(ino).identity, ino});
}

void PathHints::DirMade(store::Ino dir, std::string_view name, store::Ino ino) {
  std::unique_lock lock(mu_);
  std::optional<Lineage> l = dirs_left_.Take(Key(dir, name));
  const store::Ino predecessor = LineageOf(dir).predecessor;
  if (!l) {
    lock.unlock();
    auto left = LeftInHistory(dir, predecessor, name, ino, S_IFDIR >> 12);
    lock.lock();
    if (left) l = Lineage{LineageOf(left->first).identity, left->first};
  }
  if (l && l->predecessor != ino) lineages_.Put(std::to_string(ino), *l);
}

void PathHints::AddSibling(store::Ino dir, Sibling s) {
  const std::string key = Key(dir, Pattern(s.name));
  std::deque<Sibling>& list = siblings_[key];
  if (list.empty()) sibling_bytes_ += key.size();
  sibling_bytes_ += s.name.size();
  list.push_back(std::move(s));
  if (list.size() > kMaxSiblings) {
    sibling_bytes_ -= list.front().name.size();
    list.pop_front();
  }
  if (sibling_bytes_ > kMaxNameBytes) {  // Rare (many patterns): start again.
    siblings_.clear();
    sibling_bytes_ = 0;
  }
}

store::Ino PathHints::FindSibling(store::Ino dir, std::string_view name, store::Ino ino) {
  const std::string pattern = Pattern(name);
  if (pattern == name) return 0;  // No digits: no siblings.
  const auto now = now_();
  store::Ino best = 0;
  size_t best_equal = 0;
  const std::vector<std::string_view> runs = DigitRuns(name);
  auto it = siblings_.find(Key(dir, pattern));
  if (it != siblings_.end()) {
    for (const Sibling& s : it->second) {  // Oldest first: the newest wins a tie.
      if (s.name == name || s.ino == ino || now - s.created < min_sibling_age_) continue;
      const std::vector<std::string_view> other = DigitRuns(s.name);
      size_t equal = 0;
      for (size_t i = 0; i < runs.size() && i < other.size(); ++i) equal += runs[i] == other[i];
      if (best == 0 || equal >= best_equal) {
        best = s.ino;
        best_equal = equal;
      }
    }
  }
  AddSibling(dir, Sibling{std::string(name), ino, now});
  return best;
}

std::optional<std::pair<store::Ino, store::Generation>> PathHints::LeftInHistory(
    store::Ino dir, store::Ino predecessor, std::string_view name, store::Ino self,
    uint8_t type) {
  for (store::Ino folder : {dir, predecessor}) {
    if (folder == 0) continue;
    std::optional<std::pair<store::Ino, store::Generation>> left;
    std::optional<store::Generation> replaced_at;  // When the newer version came.
    store::Ino newer = 0;                          // Its child.
    size_t seen = 0;
    Status st = store_->DirentVersionsNewestFirst(
        folder, name, [&](store::Generation g, const store::DirentRecord& d) {
          if (replaced_at && d.child != 0 && d.child != newer && d.child != self &&
              d.type == type) {
            left = {d.child, *replaced_at};
            return false;
          }
          replaced_at = g;
          newer = d.child;
          return ++seen < kMaxHistoryVersions;
        });
    if (st.ok() && left) return left;
  }
  return std::nullopt;
}

std::vector<store::Extent> PathHints::ExtentsAt(store::Ino ino, store::Generation at) {
  Result<std::optional<store::InodeRecord>> rec = store_->GetInode(ino, at);
  if (!rec.ok() || !*rec || !S_ISREG((*rec)->mode) || (*rec)->size == 0) return {};
  Result<std::vector<store::Extent>> extents = store_->GetExtents(ino, **rec);
  return extents.ok() ? std::move(*extents) : std::vector<store::Extent>{};
}

std::vector<PathHints::Sibling> PathHints::FilesWithDigits(store::Ino dir) {
  std::vector<std::pair<std::string, store::Ino>> names;
  Status st = store_->ListDir(dir, store::kLatest, [&](std::string_view name,
                                                       const store::DirentRecord& d) {
    if (d.type == S_IFREG >> 12 && Pattern(name) != name) names.emplace_back(name, d.child);
    return names.size() < kMaxEntries;
  });
  if (!st.ok()) return {};
  const auto steady_now = now_();
  const int64_t wall_now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  std::vector<std::pair<int64_t, Sibling>> found;  // (mtime, sibling)
  for (auto& [name, ino] : names) {
    Result<std::optional<store::InodeRecord>> rec = store_->GetInode(ino, store::kLatest);
    if (!rec.ok() || !*rec) continue;
    // Any mtime a caller may set: a future one is age 0, an ancient one a century.
    constexpr int64_t kCentury = int64_t{100} * 365 * 86400 * 1'000'000'000;
    const int64_t mtime = (*rec)->mtime_ns;
    const int64_t age = mtime >= wall_now               ? 0
                        : mtime < wall_now - kCentury ? kCentury
                                                      : wall_now - mtime;
    found.push_back({mtime,
                     Sibling{std::move(name), ino, steady_now - std::chrono::nanoseconds(age)}});
  }
  std::stable_sort(found.begin(), found.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Sibling> out;
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}

std::vector<store::Extent> PathHints::Take(store::Ino dir, std::string_view name, store::Ino ino) {
  const std::string dir_key = std::to_string(dir);
  bool seeded = Pattern(name) == name;  // No digits: no siblings to look for.
  if (!seeded) {
    std::lock_guard lock(mu_);
    seeded = seeded_.Find(dir_key) != nullptr;
  }
  std::vector<Sibling> existing;
  if (!seeded) existing = FilesWithDigits(dir);
  std::optional<Content> left;
  store::Ino predecessor = 0;
  store::Ino sibling = 0;
  {
    std::lock_guard lock(mu_);
    if (!seeded && seeded_.Find(dir_key) == nullptr) {
      seeded_.Put(dir_key, true);
      for (Sibling& s : existing) AddSibling(dir, std::move(s));
    }
    left = left_.Take(Key(dir, name));
    predecessor = LineageOf(dir).predecessor;
    sibling = FindSibling(dir, name, ino);
  }
  // Hints only: a content that cannot be read now offers none.
  if (predecessor != 0) {
    Result<std::optional<store::DirentRecord>> d = store_->Lookup(predecessor, name, store::kLatest);
    if (d.ok() && *d && (*d)->child != ino) {
      std::vector<store::Extent> extents = ExtentsAt((*d)->child, store::kLatest);
      if (!extents.empty()) return extents;
    }
  }
  if (left) {
    Result<std::vector<store::Extent>> extents = store_->GetExtents(left->ino, left->rec);
    return extents.ok() ? std::move(*extents) : std::vector<store::Extent>{};
  }
  if (auto h = LeftInHistory(dir, predecessor, name, ino, S_IFREG >> 12)) {
    std::vector<store::Extent> extents = ExtentsAt(h->first, h->second);
    if (!extents.empty()) return extents;
  }
  return sibling != 0 ? ExtentsAt(sibling, store::kLatest) : std::vector<store::Extent>{};
}

size_t PathHints::size() const {
  std::lock_guard lock(mu_);
  return left_.size();
}

}  // namespace snapfs::fs
