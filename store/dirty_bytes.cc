#include "store/dirty_bytes.h"

#include <sanitizer/asan_interface.h>  // No-ops unless built with AddressSanitizer.
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstdint>
#include <cstring>

namespace snapfs::store {

namespace {
// The size of a transparent huge page on x86-64 (and arm64 with 4 KiB pages).
constexpr size_t kHugePage = 2u << 20;
}  // namespace

void BlockPool::Return::operator()(char* p) const {
  if (pool != nullptr) pool->Put(p);
  else delete[] p;
}

BlockPool::BlockPool(size_t block_size, size_t max_bytes) : block_size_(block_size) {
  const size_t blocks = max_bytes / block_size;
  if (blocks == 0) return;
  free_.reserve(blocks);  // Put runs in a deleter: it must not throw.
  const size_t bytes = blocks * block_size;
  const size_t align = bytes >= kHugePage ? kHugePage : 1;
  map_bytes_ = bytes + align - 1;
  // MAP_NORESERVE: only what is touched counts, as with the heap.
  map_ = ::mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (map_ == MAP_FAILED) {  // No region: every block comes from the heap.
    map_ = nullptr;
    return;
  }
  const auto at = reinterpret_cast<uintptr_t>(map_);
  region_ = reinterpret_cast<char*>((at + align - 1) / align * align);
  region_blocks_ = blocks;
  // Advice only: without transparent huge pages (or with them "never") the
  // region is faulted in 4 KiB at a time, as the heap would be.
  if (align == kHugePage) (void)::madvise(region_, bytes, MADV_HUGEPAGE);
  // Under AddressSanitizer a block is addressable only while taken, as a
  // heap buffer would be.
  ASAN_POISON_MEMORY_REGION(region_, bytes);
}

BlockPool::~BlockPool() {
  if (map_ == nullptr) return;
  ASAN_UNPOISON_MEMORY_REGION(region_, region_blocks_ * block_size_);
  ::munmap(map_, map_bytes_);
}

BlockPool& BlockPool::Shared() {
  // 128 MiB: the blocks of a few streams in flight (a stream's writes arrive
  // up to ~15 MiB out of order, each of its blocks is freed once chunked,
  // and a day-1 copy has 32-48 MiB of blocks live at its peaks), and the
  // blocks the chunk queue (at most 64 MiB) keeps shared until its chunks
  // are stored. Only what is touched counts; blocks beyond it are faulted
  // in 4 KiB at a time. Never destroyed: a FileContent may outlive static
  // destruction.
  static BlockPool* const pool = new BlockPool(DirtyBytes::kDefaultBlockSize, 128u << 20);
  return *pool;
}

BlockPool::Buffer BlockPool::Unpooled(size_t bytes) { return Buffer(new char[bytes], Return{}); }

BlockPool::Buffer BlockPool::Take() {
  char* p = nullptr;
  {
    std::lock_guard lock(mu_);
    if (!free_.empty()) {
      p = free_.back();
      free_.pop_back();
    } else if (region_taken_ < region_blocks_) {
      p = region_ + region_taken_++ * block_size_;
    }
  }
  if (p == nullptr) return Unpooled(block_size_);  // Beyond the region: freed when dropped.
  ASAN_UNPOISON_MEMORY_REGION(p, block_size_);
  return Buffer(p, Return{this});
}

void BlockPool::Put(char* p) {
  ASAN_POISON_MEMORY_REGION(p, block_size_);
  std::lock_guard lock(mu_);
  free_.push_back(p);
}

size_t BlockPool::kept_bytes() const {
  std::lock_guard lock(mu_);
  return free_.size() * block_size_;
}

DirtyBytes::DirtyBytes(size_t block_size, BlockPool* pool) : block_size_(block_size), pool_(pool) {
  assert(block_size >= 256 && (block_size & (block_size - 1)) == 0);
  assert(pool == nullptr || pool->block_size() == block_size);
}

DirtyBytes::~DirtyBytes() {
  for (auto& entry : blocks_) Release(entry.second);
}

void DirtyBytes::Release(Block& b) {
  if (!b.buf) return;
  memory_ -= b.cap;
  b.buf.reset();  // A pool's block goes back to it (once no share holds it).
  b.cap = 0;
}

ptrdiff_t DirtyBytes::RangeAt(const Block& b, uint32_t pos) {
  auto it = std::upper_bound(b.filled.begin(), b.filled.end(), pos,
                             [](uint32_t p, const auto& r) { return p < r.first; });
  if (it == b.filled.begin()) return -1;
  --it;
  return pos < it->second ? it - b.filled.begin() : -1;
}

std::shared_ptr<char> DirtyBytes::NewBuffer(uint32_t cap) {
  BlockPool::Buffer buf = cap == block_size_ && pool_ != nullptr ? pool_->Take()
                                                                 : BlockPool::Unpooled(cap);
  const BlockPool::Return give_back = buf.get_deleter();
  return std::shared_ptr<char>(buf.release(), give_back);
}

void DirtyBytes::Reserve(Blocks::iterator it, uint32_t lo, uint32_t hi) {
  Block& b = it->second;
  if (b.buf && lo >= b.base && hi <= b.base + b.cap) {
    // use_count() reads the count relaxed. Seeing 1, no share is left and
    // none can be taken but by us; the fence orders the last holder's reads
    // of the bytes (before its release of the count) before our writes.
    if (b.buf.use_count() == 1) {
      std::atomic_thread_fence(std::memory_order_acquire);
      return;
    }
    // Shared: the holders keep the bytes as they are, we write to a copy.
    Rebuffer(b, b.base, b.cap);
    return;
  }
  const uint32_t bs = static_cast<uint32_t>(block_size_);
  const uint32_t want_lo = b.buf ? std::min(lo, b.filled.front().first) : lo;
  const uint32_t want_hi = b.buf ? std::max(hi, b.filled.back().second) : hi;
  // A block a stream runs into (written from its start, the block before
  // filled to its end) or one filled over a quarter gets a whole buffer.
  bool whole = want_hi - want_lo >= bs / 4;
  if (!whole && lo == 0 && it != blocks_.begin()) {
    auto prev = std::prev(it);
    whole = prev->first + 1 == it->first && prev->second.filled.back().second == bs;
  }
  uint32_t base = 0, cap = bs;
  if (!whole) {
    // Partial buffers start and end on granules and at least double, so
    // growing one copies each byte at most about once on average.
    const uint32_t granule = std::min<uint32_t>(4096, bs / 16);
    const uint32_t first = want_lo / granule * granule;
    const uint32_t last = (want_hi + granule - 1) / granule * granule;
    cap = std::min(bs, std::max(last - first, 2 * b.cap));
    base = std::min(first, bs - cap);
  }
  Rebuffer(b, base, cap);
}

void DirtyBytes::Rebuffer(Block& b, uint32_t base, uint32_t cap) {
  std::shared_ptr<char> buf = NewBuffer(cap);
  for (const auto& r : b.filled)
    std::memcpy(buf.get() + (r.first - base), b.buf.get() + (r.first - b.base), r.second - r.first);
  Release(b);
  b.buf = std::move(buf);
  b.base = base;
  b.cap = cap;
  memory_ += cap;
}

void DirtyBytes::Write(uint64_t offset, const char* data, size_t len) {
  const uint64_t end = offset + len;
  auto it = blocks_.end();
  for (uint64_t at = offset; at < end;) {
    const uint64_t index = at / block_size_;
    const uint64_t block_start = index * block_size_;
    const uint32_t lo = static_cast<uint32_t>(at - block_start);
    const uint32_t hi = static_cast<uint32_t>(std::min<uint64_t>(end - block_start, block_size_));
    if (it == blocks_.end() || it->first != index) it = blocks_.try_emplace(it, index);
    Reserve(it, lo, hi);
    Block& b = it->second;
    std::memcpy(b.buf.get() + (lo - b.base), data + (at - offset), hi - lo);
    // Merge [lo, hi) with the ranges it overlaps or touches.
    auto first = std::lower_bound(b.filled.begin(), b.filled.end(), lo,
                                  [](const auto& r, uint32_t p) { return r.second < p; });
    auto last = first;
    uint32_t new_lo = lo, new_hi = hi;
    uint64_t had = 0;
    for (; last != b.filled.end() && last->first <= hi; ++last) {
      new_lo = std::min(new_lo, last->first);
      new_hi = std::max(new_hi, last->second);
      had += last->second - last->first;
    }
    bytes_ += (new_hi - new_lo) - had;
    if (first == last) {
      b.filled.insert(first, {new_lo, new_hi});
    } else {
      *first = {new_lo, new_hi};
      b.filled.erase(first + 1, last);
    }
    at = block_start + hi;
    ++it;
  }
}

void DirtyBytes::Read(uint64_t offset, size_t len, char* out) const {
  const uint64_t end = offset + len;
  for (auto it = blocks_.lower_bound(offset / block_size_);
       it != blocks_.end() && it->first * block_size_ < end; ++it) {
    const uint64_t block_start = it->first * block_size_;
    const Block& b = it->second;
    for (const auto& r : b.filled) {
      const uint64_t lo = std::max(offset, block_start + r.first);
      const uint64_t hi = std::min(end, block_start + r.second);
      if (lo < hi)
        std::memcpy(out + (lo - offset), b.buf.get() + (lo - block_start - b.base), hi - lo);
    }
  }
}

void DirtyBytes::Erase(uint64_t from, uint64_t to) {
  if (from >= to) return;
  for (auto it = blocks_.lower_bound(from / block_size_);
       it != blocks_.end() && it->first * block_size_ < to;) {
    const uint64_t block_start = it->first * block_size_;
    const uint32_t lo = static_cast<uint32_t>(std::max(from, block_start) - block_start);
    const uint32_t hi =
        static_cast<uint32_t>(std::min<uint64_t>(to - block_start, block_size_));
    Block& b = it->second;
    std::vector<std::pair<uint32_t, uint32_t>> kept;
    for (const auto& r : b.filled) {
      if (r.second <= lo || r.first >= hi) {
        kept.push_back(r);
        continue;
      }
      if (r.first < lo) kept.emplace_back(r.first, lo);
      if (r.second > hi) kept.emplace_back(hi, r.second);
      bytes_ -= std::min(r.second, hi) - std::max(r.first, lo);
    }
    b.filled = std::move(kept);
    if (b.filled.empty()) {
      Release(b);
      it = blocks_.erase(it);
    } else {
      ++it;
    }
  }
}

std::optional<DirtyBytes::Range> DirtyBytes::RunContaining(uint64_t offset) const {
  auto it = blocks_.find(offset / block_size_);
  if (it == blocks_.end()) return std::nullopt;
  const ptrdiff_t i = RangeAt(it->second, static_cast<uint32_t>(offset % block_size_));
  if (i < 0) return std::nullopt;
  const auto& r = it->second.filled[static_cast<size_t>(i)];
  Range run{it->first * block_size_ + r.first, it->first * block_size_ + r.second};
  // A run goes on into the next block when it ends at this block's end and
  // the next block is filled from its start.
  for (auto left = it; run.start % block_size_ == 0 && left != blocks_.begin();) {
    auto prev = std::prev(left);
    if (prev->first + 1 != left->first || prev->second.filled.back().second != block_size_) break;
    left = prev;
    run.start = left->first * block_size_ + left->second.filled.back().first;
  }
  for (auto right = std::next(it); run.end % block_size_ == 0 && right != blocks_.end() &&
                                   right->first * block_size_ == run.end &&
                                   right->second.filled.front().first == 0;
       ++right)
    run.end = right->first * block_size_ + right->second.filled.front().second;
  return run;
}

std::optional<DirtyBytes::Range> DirtyBytes::NextRun(uint64_t offset) const {
  for (auto it = blocks_.lower_bound(offset / block_size_); it != blocks_.end(); ++it) {
    const uint64_t block_start = it->first * block_size_;
    for (const auto& r : it->second.filled) {
      if (block_start + r.second > offset)
        return RunContaining(std::max(offset, block_start + r.first));
    }
  }
  return std::nullopt;
}

std::string_view DirtyBytes::Contiguous(uint64_t offset, uint64_t limit) const {
  auto it = blocks_.find(offset / block_size_);
  if (it == blocks_.end() || offset >= limit) return {};
  const Block& b = it->second;
  const uint64_t block_start = it->first * block_size_;
  const ptrdiff_t i = RangeAt(b, static_cast<uint32_t>(offset - block_start));
  if (i < 0) return {};
  const uint64_t end = std::min(limit, block_start + b.filled[static_cast<size_t>(i)].second);
  return std::string_view(b.buf.get() + (offset - block_start - b.base), end - offset);
}

std::shared_ptr<const char> DirtyBytes::Share(uint64_t offset) const {
  auto it = blocks_.find(offset / block_size_);
  if (it == blocks_.end()) return nullptr;
  const Block& b = it->second;
  const uint32_t pos = static_cast<uint32_t>(offset % block_size_);
  if (RangeAt(b, pos) < 0) return nullptr;
  return std::shared_ptr<const char>(b.buf, b.buf.get() + (pos - b.base));
}

}  // namespace snapfs::store
