// DirtyBytes: the bytes written to a file and not yet chunked, held in
// blocks aligned to file offsets (FileContent's write overlay).
//
// A block covers the file bytes [i * block_size, (i + 1) * block_size) and
// records which of them are filled. A write is one memcpy per block it
// touches, into the place its bytes keep until they are chunked, whatever
// order writes arrive in: nothing is merged, moved or reallocated. A block
// written in large pieces gets a whole block_size buffer, recycled through a
// BlockPool so its pages stay faulted in; a block that only holds a few small
// writes gets a buffer just covering them (doubling up to block_size / 4,
// then a whole block), so scattered small writes cost about what they write.
//
// A block's bytes can be shared (Share): whoever holds the share sees them
// unchanged for as long as it holds it, because a write to a block that is
// shared goes to a private copy of the block (copy on write). The chunk
// store queues new chunks this way, without copying them.
//
// Not thread-safe, except that the const members may run concurrently with
// each other (FileContent::Read runs under a shared lock), and a share may be
// dropped on any thread at any time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace snapfs::store {

// Whole-block buffers kept for reuse instead of being freed. A fresh page
// costs a page fault on first touch, and in a virtual machine a fault is dear
// (about 16 us per 4 KiB page on the machine of docs/performance.md, so 4 ms
// per MiB). The pool's blocks therefore come from one region of `max_bytes`,
// reserved once, aligned to 2 MiB and advised for transparent huge pages:
// touching a fresh 2 MiB then costs one fault instead of 512. A streaming
// write recycles the region's blocks; blocks wanted beyond it come from the
// heap and are freed when returned. Thread-safe.
class BlockPool {
 public:
  // Returns a buffer to the pool it came from (or frees it) when dropped.
  struct Return {
    BlockPool* pool = nullptr;  // Null: a plain heap buffer.
    void operator()(char* p) const;
  };
  using Buffer = std::unique_ptr<char[], Return>;

  // Keeps buffers of `block_size` bytes, at most `max_bytes` in all. Nothing
  // is touched until a block is taken.
  BlockPool(size_t block_size, size_t max_bytes);
  ~BlockPool();  // Every buffer taken must have been dropped already.
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  // The pool of 1 MiB blocks, 64 MiB at most, that FileContent uses.
  static BlockPool& Shared();
  // A heap buffer of `bytes` bytes (contents unspecified), freed when dropped.
  static Buffer Unpooled(size_t bytes);

  size_t block_size() const { return block_size_; }
  // A buffer of block_size() bytes (contents unspecified); back to the pool
  // when dropped.
  Buffer Take();
  // Bytes of the blocks given back and kept for reuse now.
  size_t kept_bytes() const;

 private:
  void Put(char* p);  // `p` is a region block: only those carry this pool in their Return.

  const size_t block_size_;
  void* map_ = nullptr;  // The mapping the region was cut from (munmapped by ~BlockPool).
  size_t map_bytes_ = 0;
  char* region_ = nullptr;
  size_t region_blocks_ = 0;
  mutable std::mutex mu_;
  size_t region_taken_ = 0;  // mu_: region blocks handed out at least once.
  std::vector<char*> free_;  // mu_: region blocks given back (capacity for all: Put never allocates).
};

class DirtyBytes {
 public:
  static constexpr size_t kDefaultBlockSize = 1u << 20;

  // [start, end) in file offsets.
  struct Range {
    uint64_t start = 0;
    uint64_t end = 0;
    bool operator==(const Range&) const = default;
  };

  // `block_size` must be a power of two >= 256. `pool` (may be null: no
  // recycling) must outlive this object and have the same block size.
  explicit DirtyBytes(size_t block_size = kDefaultBlockSize, BlockPool* pool = nullptr);
  ~DirtyBytes();  // Gives the whole-block buffers back to the pool.
  DirtyBytes(const DirtyBytes&) = delete;
  DirtyBytes& operator=(const DirtyBytes&) = delete;

  size_t block_size() const { return block_size_; }
  // Filled bytes.
  uint64_t bytes() const { return bytes_; }
  // Bytes of the buffers held (what bounds the overlay's memory).
  uint64_t memory() const { return memory_; }
  bool empty() const { return blocks_.empty(); }

  // Fills [offset, offset + len) with `data`. offset + len must not overflow.
  void Write(uint64_t offset, const char* data, size_t len);
  // Copies the filled bytes within [offset, offset + len) to the same places
  // in `out` (out[0] is offset); leaves the other bytes of `out` alone.
  void Read(uint64_t offset, size_t len, char* out) const;
  // Unfills [from, to), freeing blocks left empty.
  void Erase(uint64_t from, uint64_t to);

  // The run (maximal range of filled bytes) containing byte `offset`, or
  // nullopt if that byte is not filled.
  std::optional<Range> RunContaining(uint64_t offset) const;
  // The first run that has a filled byte at or after `offset` (its start may
  // be before `offset`), or nullopt.
  std::optional<Range> NextRun(uint64_t offset) const;
  // The filled bytes from `offset` on that are contiguous in memory (within
  // one block), at most up to `limit`; empty if byte `offset` is not filled.
  std::string_view Contiguous(uint64_t offset, uint64_t limit) const;
  // Keeps the buffer holding filled byte `offset` alive and unchanged while
  // the returned pointer (to that byte, as Contiguous returns it) or a copy
  // of it is held; null if the byte is not filled. The bytes stay what they
  // are now even if they are overwritten, erased or the DirtyBytes is
  // destroyed meanwhile.
  std::shared_ptr<const char> Share(uint64_t offset) const;

 private:
  struct Block {
    // Covers the block's bytes [base, base + cap). Shared with Share()'s
    // holders: written only when not shared (Own).
    std::shared_ptr<char> buf;
    uint32_t base = 0;
    uint32_t cap = 0;
    // Filled [lo, hi) within the block: sorted, disjoint, non-adjacent.
    std::vector<std::pair<uint32_t, uint32_t>> filled;
  };
  using Blocks = std::map<uint64_t, Block>;  // By block index.

  // Makes `b`'s buffer cover [lo, hi), keeping its filled bytes, and ours
  // alone to write (a shared one is replaced by a copy).
  void Reserve(Blocks::iterator it, uint32_t lo, uint32_t hi);
  // Moves `b`'s filled bytes to a new buffer covering [base, base + cap),
  // which must contain them.
  void Rebuffer(Block& b, uint32_t base, uint32_t cap);
  // A buffer of `cap` bytes: a pool's block when it is a whole one.
  std::shared_ptr<char> NewBuffer(uint32_t cap);
  void Release(Block& b);
  // Index of the range of `b` containing `pos`, or -1.
  static ptrdiff_t RangeAt(const Block& b, uint32_t pos);

  const size_t block_size_;
  BlockPool* const pool_;
  Blocks blocks_;
  uint64_t bytes_ = 0;
  uint64_t memory_ = 0;
};

}  // namespace snapfs::store
