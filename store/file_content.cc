#include "store/file_content.h"

#include <algorithm>
#include <cstring>

namespace snapfs::store {
namespace {
constexpr uint64_t kMaxFileSize = 1ull << 62;
}  // namespace

FileContent::FileContent(ChunkStore* chunks, const Chunker* chunker, std::vector<Extent> extents,
                         uint64_t size, FileContentOptions options)
    : chunks_(chunks),
      chunker_(chunker),
      options_(options),
      extents_(std::move(extents)),
      overlay_(options.block_size, options.block_size == BlockPool::Shared().block_size()
                                       ? &BlockPool::Shared()
                                       : nullptr),
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

void FileContent::SetPrevious(std::vector<Extent> previous) {
  if (extents_.empty() && truncated_.empty()) truncated_ = std::move(previous);
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
  overlay_.Read(offset, n, out);
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
  overlay_.Write(offset, data, len);
  size_ = std::max(size_, end);
  dirty_ = true;
  bytes_written_ += len;
  const DirtyBytes::Range run = *overlay_.RunContaining(offset);

  // Stream a run only when nothing is missing before it. The FUSE session is
  // multi-threaded, so the kernel's writes of a stream can arrive out of
  // order; a run that starts after a gap still to be filled would be cut from
  // an arbitrary offset instead of the boundary the same bytes were cut at
  // before, and lose their dedup. For the same reason its end is not cut
  // while bytes may still arrive after it (Cut::kStream). A gap that stays (a
  // sparse file) is chunked by the max_dirty bound below.
  const uint64_t chunked_end = extents_.empty() ? 0 : extents_.back().end();
  if (run.end - run.start >= options_.stream_threshold && run.start <= chunked_end)
    return ChunkRun(run.start, Cut::kStream);
  if (overlay_.memory() > options_.max_dirty) {
    // First only the runs that start within chunked content (their chunks
    // line up with what the same bytes were cut into before); runs after a
    // gap still to be filled wait, unless the overlay keeps growing.
    std::vector<uint64_t> starts;
    const uint64_t end_of_chunked = extents_.empty() ? 0 : extents_.back().end();
    for (auto r = overlay_.NextRun(0); r && r->start <= end_of_chunked;
         r = overlay_.NextRun(r->end))
      starts.push_back(r->start);
    for (uint64_t start : starts) SNAPFS_RETURN_IF_ERROR(ChunkRun(start, Cut::kBound));
    if (overlay_.memory() > 2 * options_.max_dirty) return ChunkAll(Cut::kBound);
  }
  return Status::Ok();
}

Status FileContent::ChunkRun(uint64_t run_start, Cut cut_mode) {
  const std::optional<DirtyBytes::Range> run = overlay_.RunContaining(run_start);
  if (!run || run->start != run_start) return Status::Ok();
  // Widen [s, t) until it starts and ends on chunk boundaries of the committed
  // extents and contains every dirty run it touches.
  uint64_t s = run->start, t = run->end;
  for (bool changed = true; changed;) {
    changed = false;
    size_t i = FirstExtentEndingAfter(s);
    if (i < extents_.size() && extents_[i].offset < s) { s = extents_[i].offset; changed = true; }
    size_t j = FirstExtentEndingAfter(t);
    if (j < extents_.size() && extents_[j].offset < t) { t = extents_[j].end(); changed = true; }
    const std::optional<DirtyBytes::Range> first = overlay_.RunContaining(s);
    if (first && first->start < s) { s = first->start; changed = true; }
    const std::optional<DirtyBytes::Range> last = overlay_.RunContaining(t - 1);
    if (last && last->end > t) { t = last->end; changed = true; }
  }
  // A region made only of dirty bytes (a stream) is chunked where it lies in
  // the overlay's blocks. One that mixes in committed bytes (an edit in
  // place) is assembled in a buffer first.
  const std::optional<DirtyBytes::Range> head = overlay_.RunContaining(s);
  const bool pure = head && head->end >= t;
  std::string region;
  if (!pure) {
    region.resize(t - s);
    SNAPFS_RETURN_IF_ERROR(ReadBase(s, t, region.data()));
    overlay_.Read(s, t - s, region.data());
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
  const size_t max_chunk = chunker_->params().max_size;
  // A chunker window across a block boundary is copied here: a pooled block
  // (faulted in once) when the window fits one, as it does with the default
  // 512 KiB largest chunk. A fresh heap buffer of that size is mapped,
  // zero-filled and unmapped each time, and a stream crosses a block boundary
  // every MiB.
  BlockPool::Buffer scratch;
  std::vector<Extent> fresh;
  uint64_t at = s;
  while (at < t) {
    // The chunker reads at most `window` bytes from `at`.
    const size_t window = static_cast<size_t>(std::min<uint64_t>(t - at, max_chunk));
    const std::string_view here = pure ? overlay_.Contiguous(at, t)
                                       : std::string_view(region).substr(at - s);
    const char* p = here.data();
    size_t cut;
    if (here.size() >= window) {
      cut = chunker_->FindCut(reinterpret_cast<const uint8_t*>(p), window, at_end);
    } else {
      // The window crosses a block boundary. A cut found before the boundary
      // is the cut (FindCut looks at the bytes from `at` only); else the
      // window is copied.
      cut = chunker_->FindCut(reinterpret_cast<const uint8_t*>(p), here.size(), false);
      if (cut == 0) {
        if (!scratch) {
          BlockPool& pool = BlockPool::Shared();
          scratch = max_chunk <= pool.block_size() ? pool.Take() : BlockPool::Unpooled(max_chunk);
        }
        overlay_.Read(at, window, scratch.get());
        p = scratch.get();
        cut = chunker_->FindCut(reinterpret_cast<const uint8_t*>(p), window, at_end);
      }
    }
    if (cut == 0) break;
    const std::string_view raw(p, cut);
    ChunkId id = chunks_->Id(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
    const bool hold = !held_.count(id);
    // A new chunk that lies in one of the overlay's buffers is queued with a
    // share of that buffer, not a copy (a write to it meanwhile goes to a
    // copy of the buffer instead); one from a scratch window or an assembled
    // region is copied by Put().
    std::shared_ptr<const char> owner;
    if (pure && p == here.data()) owner = overlay_.Share(at);
    // extents_ still holds the chunks [s, t) replaces. The middle of the
    // chunk finds the old chunk with the same rows even when the rows before
    // got shorter (the start would find the chunk before it).
    SNAPFS_ASSIGN_OR_RETURN(
        ChunkStore::PutResult put,
        chunks_->Put(id, raw, hold, BaseHint(at + cut / 2), std::move(owner)));
    if (hold) held_.insert(id);
    if (put != ChunkStore::PutResult::kStored) unindexed_.insert(id);
    fresh.push_back(Extent{at, static_cast<uint32_t>(cut), 0, id});
    at += cut;
  }
  if (at == s) return Status::Ok();  // Not one full chunk yet.

  // The bytes after the last cut stay dirty. A pure region's are already in
  // place in the overlay (blocks are addressed by file offset: nothing
  // moves); a mixed region's may include committed bytes, whose extents go.
  if (pure) {
    overlay_.Erase(s, at);
  } else {
    overlay_.Erase(s, t);
    if (at < t) overlay_.Write(at, region.data() + (at - s), t - at);
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
  for (auto r = overlay_.NextRun(0); r; r = overlay_.NextRun(r->end)) starts.push_back(r->start);
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
  overlay_.Erase(kept_at, UINT64_MAX);  // Dirty bytes past the new end.
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
