// FileContent: the bytes of one regular file as it is being read and written
// through the live mount, on top of its last committed extents.
//
// Writes land in an in-memory overlay (DirtyBytes: blocks aligned to file
// offsets, so each write is one memcpy to where its bytes stay, in whatever
// order writes arrive). A run of dirty bytes is turned into content-defined
// chunks when it grows past a threshold (a sequential dump streams through
// in a few MiB at a time) and at Flush(). Chunking restarts at the start of
// the first chunk the run touches and ends at the end of the last one, so
// chunks before and after an edit keep their ids and dedup survives inserts
// and overwrites. A run made only of dirty bytes is chunked where it lies in
// the blocks (only a chunker window across a block boundary is copied, into
// a scratch buffer); bytes after the last cut stay where they are. Each chunk
// is copied once into its own buffer for the ChunkStore, which compresses and
// stores it on its own threads.
//
// Memory: the overlay holds at most `max_dirty` bytes of buffers for random
// writes plus the unchunked part of a sequential stream (its tail < one max
// chunk, and the blocks it wrote ahead of itself) before it is chunked.
// Not thread-safe: the caller (one per inode) serializes access, except that
// Read() may run concurrently with other Read() calls.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "store/chunk_store.h"
#include "store/chunker.h"
#include "store/dirty_bytes.h"
#include "store/key_format.h"
#include "store/status.h"

namespace snapfs::store {

class Store;

struct FileContentOptions {
  size_t stream_threshold = 4u << 20;   // Chunk a run at end of file once this big.
  size_t max_dirty = 32u << 20;         // Overlay memory past which runs in line with
                                        // chunked content are chunked; every run past twice this.
  size_t block_size = DirtyBytes::kDefaultBlockSize;  // Overlay block (power of two >= 256).
};

class FileContent {
 public:
  FileContent(ChunkStore* chunks, const Chunker* chunker, std::vector<Extent> extents,
              uint64_t size, FileContentOptions options = {});
  ~FileContent();  // Releases the chunks it holds (see held_).
  FileContent(const FileContent&) = delete;
  FileContent& operator=(const FileContent&) = delete;

  uint64_t size() const { return size_; }
  // True when there are writes or truncates since the last MarkCommitted().
  bool dirty() const { return dirty_; }
  // Logical bytes written since the last MarkCommitted().
  uint64_t bytes_written() const { return bytes_written_; }

  // Reads up to `len` bytes at `offset` into `out` (holes read as zeros);
  // returns the count, short at end of file. Corruption if a chunk is damaged.
  // Changes nothing: concurrent calls are safe.
  Result<size_t> Read(uint64_t offset, size_t len, char* out);
  // Read() without the copy, for replies that gather the bytes (fs/vfs.h):
  // when [offset, offset + len) up to the end of file is all committed chunks
  // (no dirty bytes, no hole), appends them in order to *out and returns
  // true; false (*out unchanged): use Read(). Corruption as Read() (*out
  // may hold some slices then).
  struct Slice {
    ChunkBytes chunk;  // Holds the bytes.
    size_t offset;     // Of the bytes wanted, within *chunk.
    size_t length;
  };
  Result<bool> ReadSlices(uint64_t offset, size_t len, std::vector<Slice>* out);
  Status Write(uint64_t offset, const char* data, size_t len);
  Status Truncate(uint64_t size);
  // The extents of content this new file replaces (the file that last had
  // its path: fs/path_hints.h), offered as delta bases where the file has
  // none of its own, as the extents a truncate removed are.
  void SetPrevious(std::vector<Extent> previous);

  // Chunks all dirty data and waits until every new chunk is stored.
  // Afterwards extents() is the complete content. kNoSpace when the store is
  // full: nothing is lost, a later Flush() retries.
  Status Flush(uint64_t* stored_bytes);
  const std::vector<Extent>& extents() const { return extents_; }
  // Chunk ids that may still lack an index entry (for Mutation::PutContent).
  std::vector<ChunkId> unindexed() const;
  // Call after the commit of extents() succeeded.
  void MarkCommitted();

 private:
  // How ChunkRun ends a run whose last bytes do not end a chunk.
  enum class Cut {
    kFinal,   // Cut there (Flush: the content must be complete).
    kStream,  // Keep the bytes after the last cut in the overlay unless
              // committed chunks follow the run: a stream still arriving,
              // perhaps out of order, continues them later.
    kBound,   // Keep them only at end of file (bounding the overlay).
  };
  // Chunks the run starting at `run_start`, widened to chunk boundaries of
  // the committed extents.
  Status ChunkRun(uint64_t run_start, Cut cut);
  Status ChunkAll(Cut cut);
  // Content bytes [from, to) from the committed extents (holes as zeros).
  Status ReadBase(uint64_t from, uint64_t to, char* out);
  // Index of the first extent whose end is > offset.
  size_t FirstExtentEndingAfter(uint64_t offset) const;
  // The chunk that held file offset `offset` before it was rewritten, as a
  // base for compressing the new chunk there (ChunkStore::Put): the extent
  // being replaced, or the one a truncate removed. nullopt if none.
  std::optional<ChunkId> BaseHint(uint64_t offset) const;

  ChunkStore* const chunks_;
  const Chunker* const chunker_;
  const FileContentOptions options_;
  std::vector<Extent> extents_;          // Sorted, non-overlapping, whole chunks.
  DirtyBytes overlay_;                   // Bytes written and not yet chunked.
  uint64_t size_ = 0;
  bool dirty_ = false;
  uint64_t bytes_written_ = 0;
  std::unordered_set<ChunkId, ChunkIdHash> unindexed_;
  // Chunks put since the last commit, each held once in the ChunkStore so GC
  // cannot delete them before the version that references them is committed.
  std::unordered_set<ChunkId, ChunkIdHash> held_;
  // The extents the last truncate removed: a dump rewritten in place (open
  // with O_TRUNC, write it all again) finds yesterday's chunks here, though
  // the truncate was committed before the first write. At most the size of
  // the extent list before the truncate; gone with this object (the Vfs
  // drops it at the last close). Or those SetPrevious() gave.
  std::vector<Extent> truncated_;
};

}  // namespace snapfs::store
