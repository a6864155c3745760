#include "store/file_content.h"

#include <algorithm>
#include <cstring>
#include <mutex>

namespace snapfs::store {
namespace {
constexpr uint64_t kMaxFileSize = 1ull << 62;
// Room reserved past the stream threshold in a streaming run: one more large
// write (the kernel sends up to 1 MiB) plus the unchunked tail it keeps.
constexpr size_t kStreamSlack = 2u << 20;
uint64_t RunEnd(const std::map<uint64_t, std::string>::const_iterator& it) {
  return it->first + it->second.size();
}

// Run buffers of streams, kept for the next run instead of being freed. A
// stream's writes arrive out of order, so it keeps opening runs ahead of the
// one being chunked and merging them later; a fresh multi-MiB buffer each
// time cost a page fault per 4 KiB and a copy per doubling (about a third of
// the daemon's CPU while ingesting a dump, docs/performance.md).
class RunBufferPool {
 public:
  static constexpr size_t kMinCapacity = 1u << 20;   // Smaller ones are not kept.
  static constexpr size_t kMaxBytes = 32u << 20;     // Capacity kept in all.

  // An empty buffer, with the capacity of a recycled one if there is one.
  std::string Take() {
    std::lock_guard lock(mu_);
    if (free_.empty()) return std::string();
    std::string s = std::move(free_.back());
    free_.pop_back();
    bytes_ -= s.capacity();
    return s;
  }
  void Give(std::string&& s) {
    if (s.capacity() < kMinCapacity) return;
    std::lock_guard lock(mu_);
    if (bytes_ + s.capacity() > kMaxBytes) return;
    s.clear();
    bytes_ += s.capacity();
    free_.push_back(std::move(s));
  }

 private:
  std::mutex mu_;
  std::vector<std::string> free_;
  size_t bytes_ = 0;
};

RunBufferPool& Pool() {
  static RunBufferPool pool;
  return pool;
}
}  // namespace

void FileContent::EraseRuns(std::map<uint64_t, std::string>::iterator first,
                            std::map<uint64_t, std::string>::iterator last) {
  for (auto it = first; it != last; ++it) {
    overlay_bytes_ -= it->second.size();
    Pool().Give(std::move(it->second));
  }
  overlay_.erase(first, last);
}

FileContent::FileContent(ChunkStore* chunks, const Chunker* chunker, std::vector<Extent> extents,
                         uint64_t size, FileContentOptions options)
    : chunks_(chunks),
      chunker_(chunker),
      options_(options),
      extents_(std::move(extents)),
      size_(size) {}

FileContent::~FileContent() {
  std::vector<ChunkId> held(held_.begin(), held_.end());
  chunks_->Release(held);
}

size_t FileContent::FirstExtentEndingAfter(uint64_t offset) const {
  auto it = std::upper_bound(extents_.begin(), extents_.end(), offset,
                             [](uint64_t off, const Extent& e) { return off < e.end(); });
  return static_cast<size_t>(it - extents_.begin());
}

std::optional<ChunkId> FileContent::BaseHint(uint64_t offset) const {
  for (const std::vector<Extent>* list : {&extents_, &truncated_}) {
    auto it = std::upper_bound(list->begin(), list->end(), offset,
                               [](uint64_t off, const Extent& e) { return off < e.end(); });
    if (it != list->end() && it->offset <= offset) return it->id;
  }
  return std::nullopt;
}

Status FileContent::ReadBase(uint64_t from, uint64_t to, char* out) {
  std::memset(out, 0, to - from);
  for (size_t i = FirstExtentEndingAfter(from); i < extents_.size() && extents_[i].offset < to;
       ++i) {
    const Extent& e = extents_[i];
    SNAPFS_ASSIGN_OR_RETURN(ChunkBytes chunk, chunks_->Get(e.id));
    if (chunk->size() < static_cast<size_t>(e.chunk_offset) + e.length)
      return Status::Corruption("chunk " + e.id.Hex() + " is shorter than its extent");
    const uint64_t lo = std::max(from, e.offset);
    const uint64_t hi = std::min(to, e.end());
    std::memcpy(out + (lo - from), chunk->data() + e.chunk_offset + (lo - e.offset), hi - lo);
  }
  return Status::Ok();
}

Result<size_t> FileContent::Read(uint64_t offset, size_t len, char* out) {
  if (offset >= size_) return size_t{0};
  const size_t n = static_cast<size_t>(std::min<uint64_t>(len, size_ - offset));
  const uint64_t end = offset + n;
  SNAPFS_RETURN_IF_ERROR(ReadBase(offset, end, out));
  auto it = overlay_.upper_bound(offset);
  if (it != overlay_.begin() && RunEnd(std::prev(it)) > offset) --it;
  for (; it != overlay_.end() && it->first < end; ++it) {
    const uint64_t lo = std::max(offset, it->first);
    const uint64_t hi = std::min(end, RunEnd(it));
    std::memcpy(out + (lo - offset), it->second.data() + (lo - it->first), hi - lo);
  }
  return n;
}

Result<bool> FileContent::ReadSlices(uint64_t offset, size_t len, std::vector<Slice>* out) {
  if (!overlay_.empty()) return false;
  const uint64_t end = offset + std::min<uint64_t>(len, offset < size_ ? size_ - offset : 0);
  const size_t before = out->size();
  uint64_t at = offset;
  for (size_t i = FirstExtentEndingAfter(offset); at < end; ++i) {
    if (i == extents_.size() || extents_[i].offset > at) {  // A hole.
      out->resize(before);
      return false;
    }
    const Extent& e = extents_[i];
    SNAPFS_ASSIGN_OR_RETURN(ChunkBytes chunk, chunks_->Get(e.id));
    if (chunk->size() < static_cast<size_t>(e.chunk_offset) + e.length)
      return Status::Corruption("chunk " + e.id.Hex() + " is shorter than its extent");
    const uint64_t hi = std::min(end, e.end());
    out->push_back(Slice{std::move(chunk), e.chunk_offset + (at - e.offset), hi - at});
    at = hi;
  }
  return true;
}

Status FileContent::Write(uint64_t offset, const char* data, size_t len) {
  if (len == 0) return Status::Ok();
  if (offset > kMaxFileSize || len > kMaxFileSize - offset)
    return Status(Code::kTooBig, "write past the largest file size");
  const uint64_t end = offset + len;
  // Runs that overlap or touch [offset, end] merge into one.
  auto first = overlay_.upper_bound(offset);
  if (first != overlay_.begin() && RunEnd(std::prev(first)) >= offset) --first;
  auto last = first;
  uint64_t new_end = end;
  while (last != overlay_.end() && last->first <= end) {
    new_end = std::max(new_end, RunEnd(last));
    ++last;
  }
  // A run past 1 MiB is most likely where a dump streams in (the kernel's
  // writes of a stream may arrive out of order, so it also absorbs runs
  // written just ahead of it). Its buffer gets room for a whole stream
  // threshold: it is not reallocated, nor its pages faulted in again, while
  // it grows to the size that gets it chunked (ChunkRun keeps the buffer for
  // the unchunked tail). Smaller runs and small files get what they need; a
  // buffer that must grow at least doubles. (Buffers this large are mapped,
  // see tools/daemon.cc: room never written costs no memory.)
  uint64_t run_start;
  std::string* run;
  if (first != last && first->first <= offset) {
    run_start = first->first;  // Grow the first run in place.
    run = &first->second;
    ++first;
  } else {
    run_start = offset;
    run = &overlay_.emplace_hint(first, offset, len >= kStreamSlack / 16 ? Pool().Take()
                                                                         : std::string())
               ->second;
  }
  std::string& s = *run;
  const size_t need = new_end - run_start;
  if (s.capacity() < need) {
    const bool streaming = need > kStreamSlack / 2;
    s.reserve(std::max({need, 2 * s.capacity(),
                        streaming ? options_.stream_threshold + kStreamSlack : 0}));
  }
  overlay_bytes_ -= s.size();
  if (s.size() >= need) {
    std::memcpy(s.data() + (offset - run_start), data, len);  // Inside the run.
  } else {
    // The run's bytes before `offset`, the write, then the bytes of the
    // merged runs past it (each starts at or before the end so far): no
    // byte is zero-filled or copied twice.
    s.resize(offset - run_start);
    s.append(data, len);
    for (auto it = first; it != last; ++it) {
      const uint64_t so_far = run_start + s.size();
      if (RunEnd(it) > so_far) s.append(it->second, so_far - it->first, RunEnd(it) - so_far);
    }
  }
  overlay_bytes_ += s.size();
  EraseRuns(first, last);
  size_ = std::max(size_, end);
  dirty_ = true;
  bytes_written_ += len;

  // Stream a run only when nothing is missing before it. The FUSE session is
  // multi-threaded, so the kernel's writes of a stream can arrive out of
  // order; a run that starts after a gap still to be filled would be cut from
  // an arbitrary offset instead of the boundary the same bytes were cut at
  // before, and lose their dedup. For the same reason its end is not cut
  // while bytes may still arrive after it (Cut::kStream). A gap that stays (a
  // sparse file) is chunked by the max_dirty bound below.
  const uint64_t chunked_end = extents_.empty() ? 0 : extents_.back().end();
  if (new_end - run_start >= options_.stream_threshold && run_start <= chunked_end)
    return ChunkRun(run_start, Cut::kStream);
  if (overlay_bytes_ > options_.max_dirty) {
    // First only the runs that start within chunked content (their chunks
    // line up with what the same bytes were cut into before); runs after a
    // gap still to be filled wait, unless the overlay keeps growing.
    std::vector<uint64_t> starts;
    const uint64_t end_of_chunked = extents_.empty() ? 0 : extents_.back().end();
    for (const auto& [start, bytes] : overlay_)
      if (start <= end_of_chunked) starts.push_back(start);
    for (uint64_t start : starts) SNAPFS_RETURN_IF_ERROR(ChunkRun(start, Cut::kBound));
    if (overlay_bytes_ > 2 * options_.max_dirty) return ChunkAll(Cut::kBound);
  }
  return Status::Ok();
}

Status FileContent::ChunkRun(uint64_t run_start, Cut cut_mode) {
  auto run = overlay_.find(run_start);
  if (run == overlay_.end()) return Status::Ok();
  // Widen [s, t) until it starts and ends on chunk boundaries of the committed
  // extents and contains every dirty run it touches.
  uint64_t s = run_start, t = RunEnd(run);
  for (bool changed = true; changed;) {
    changed = false;
    size_t i = FirstExtentEndingAfter(s);
    if (i < extents_.size() && extents_[i].offset < s) { s = extents_[i].offset; changed = true; }
    size_t j = FirstExtentEndingAfter(t);
    if (j < extents_.size() && extents_[j].offset < t) { t = extents_[j].end(); changed = true; }
    auto it = overlay_.upper_bound(s);
    if (it != overlay_.begin() && RunEnd(std::prev(it)) > s) --it;
    for (; it != overlay_.end() && it->first < t; ++it) {
      if (it->first < s) { s = it->first; changed = true; }
      if (RunEnd(it) > t) { t = RunEnd(it); changed = true; }
    }
  }
  auto first_run = overlay_.lower_bound(s);
  auto end_run = overlay_.lower_bound(t);
  const bool single = std::next(first_run) == end_run && first_run->first == s &&
                      RunEnd(first_run) == t;
  std::string region;
  const char* buf;
  if (single) {
    buf = first_run->second.data();  // A pure dirty run: no copy needed.
  } else {
    region.resize(t - s);
    SNAPFS_RETURN_IF_ERROR(ReadBase(s, t, region.data()));
    for (auto it = first_run; it != end_run; ++it)
      std::memcpy(region.data() + (it->first - s), it->second.data(), it->second.size());
    buf = region.data();
  }

  // Whether the chunker must cut at the end of the run: bytes after the last
  // cut stay in the overlay otherwise, for the run to grow.
  bool at_end = true;
  if (cut_mode == Cut::kBound) {
    at_end = t < size_;
  } else if (cut_mode == Cut::kStream) {
    const size_t j = FirstExtentEndingAfter(t);
    at_end = j < extents_.size() && extents_[j].offset == t;
  }
  const size_t len = t - s;
  std::vector<Extent> fresh;
  size_t pos = 0;
  while (pos < len) {
    size_t cut = chunker_->FindCut(reinterpret_cast<const uint8_t*>(buf + pos), len - pos, at_end);
    if (cut == 0) break;
    auto raw = std::make_shared<const std::string>(buf + pos, cut);
    ChunkId id = chunks_->Id(reinterpret_cast<const uint8_t*>(raw->data()), raw->size());
    const bool hold = !held_.count(id);
    // extents_ still holds the chunks [s, t) replaces. The middle of the
    // chunk finds the old chunk with the same rows even when the rows before
    // got shorter (the start would find the chunk before it).
    SNAPFS_ASSIGN_OR_RETURN(ChunkStore::PutResult put,
                            chunks_->Put(id, raw, hold, BaseHint(s + pos + cut / 2)));
    if (hold) held_.insert(id);
    if (put != ChunkStore::PutResult::kStored) unindexed_.insert(id);
    fresh.push_back(Extent{s + pos, static_cast<uint32_t>(cut), 0, id});
    pos += cut;
  }
  if (pos == 0) return Status::Ok();  // Not one full chunk yet.

  std::string tail;
  if (pos < len && single) {
    // The unchunked tail moves to the front of the run's own buffer, which
    // keeps its capacity for the bytes still streaming in.
    overlay_bytes_ -= first_run->second.size();
    tail = std::move(first_run->second);
    first_run->second.clear();
    tail.erase(0, pos);
  } else if (pos < len) {
    tail = Pool().Take();
    tail.assign(buf + pos, len - pos);
  }
  EraseRuns(first_run, end_run);
  if (!tail.empty()) {
    overlay_bytes_ += tail.size();
    overlay_.emplace(s + pos, std::move(tail));
  }
  auto lo = extents_.begin() + static_cast<ptrdiff_t>(FirstExtentEndingAfter(s));
  auto hi = lo;
  while (hi != extents_.end() && hi->offset < t) ++hi;
  lo = extents_.erase(lo, hi);
  extents_.insert(lo, fresh.begin(), fresh.end());
  return Status::Ok();
}

Status FileContent::ChunkAll(Cut cut) {
  std::vector<uint64_t> starts;
  for (const auto& [start, bytes] : overlay_) starts.push_back(start);
  for (uint64_t start : starts) SNAPFS_RETURN_IF_ERROR(ChunkRun(start, cut));
  return Status::Ok();
}

Status FileContent::Truncate(uint64_t size) {
  if (size > kMaxFileSize) return Status(Code::kTooBig, "truncate past the largest file size");
  dirty_ = true;
  if (size >= size_) {
    size_ = size;  // Growing adds a hole.
    return Status::Ok();
  }
  // An extent that straddles the new end becomes dirty bytes, so every
  // extent stays a whole chunk.
  size_t i = FirstExtentEndingAfter(size);
  std::string kept;
  uint64_t kept_at = size;
  if (i < extents_.size() && extents_[i].offset < size) {
    kept_at = extents_[i].offset;
    kept.resize(size - kept_at);
    SNAPFS_ASSIGN_OR_RETURN(size_t n, Read(kept_at, kept.size(), kept.data()));
    (void)n;
  }
  if (i < extents_.size())
    truncated_.assign(extents_.begin() + static_cast<ptrdiff_t>(i), extents_.end());
  extents_.erase(extents_.begin() + static_cast<ptrdiff_t>(i), extents_.end());
  // Drop dirty bytes past the new end.
  auto it = overlay_.lower_bound(kept_at);
  if (it != overlay_.begin() && RunEnd(std::prev(it)) > kept_at) {
    --it;
    overlay_bytes_ -= it->second.size() - (kept_at - it->first);
    it->second.resize(kept_at - it->first);
    ++it;
  }
  EraseRuns(it, overlay_.end());
  size_ = kept_at;
  const uint64_t written = bytes_written_;
  SNAPFS_RETURN_IF_ERROR(Write(kept_at, kept.data(), kept.size()));
  bytes_written_ = written;  // Moving bytes is not writing them.
  size_ = size;
  return Status::Ok();
}

Status FileContent::Flush(uint64_t* stored_bytes) {
  SNAPFS_RETURN_IF_ERROR(ChunkAll(Cut::kFinal));
  std::vector<ChunkId> ids = unindexed();
  return chunks_->WaitStored(ids, stored_bytes);
}

std::vector<ChunkId> FileContent::unindexed() const {
  return std::vector<ChunkId>(unindexed_.begin(), unindexed_.end());
}

void FileContent::MarkCommitted() {
  std::vector<ChunkId> held(held_.begin(), held_.end());
  chunks_->Release(held);
  held_.clear();
  unindexed_.clear();
  dirty_ = false;
  bytes_written_ = 0;
}

}  // namespace snapfs::store
