// Content-defined chunking: where a byte stream is cut into chunks.
//
// The cut points depend only on content, so an insertion or deletion moves
// the boundaries near it and leaves later chunks byte-identical, which is what
// makes deduplication across versions of a file work. The algorithm is
// FastCDC (Xia et al., USENIX ATC 2016): a Gear rolling hash, cut-point
// skipping below min_size, and normalized chunking with a harder mask before
// avg_size and an easier one after it. The exact table, masks and loop are
// part of the store format: changing them changes every chunk boundary (see
// chunker.cc for the definition).
//
// Thread-safety: a Chunker is immutable after construction; FindCut is const
// and may be called from any number of threads at once.
#pragma once

#include <cstddef>
#include <cstdint>

#include "store/status.h"

namespace snapfs::store {

// The defaults are those of stores made now; a store keeps the params it was
// made with (docs/format.md, "Chunk ids"). Stores made before 2026-12-04
// (commit 61dec79) have min 16 KiB, average 64 KiB, max 256 KiB: the larger
// chunks of today cost the chunker, the hash and the write path less per byte
// and store dumps in fewer bytes (docs/performance.md, session 17).
struct ChunkerParams {
  // No cut is made before this many bytes (except for the final chunk of a
  // stream). Default 96 KiB. Must be at least 64 (the Gear hash window).
  uint32_t min_size = 96 * 1024;
  // Target average chunk size; must be a power of two strictly between
  // min_size and max_size. Default 128 KiB. (Cut-point skipping adds to it:
  // with the defaults, random data gives a mean chunk of about 160 KiB.)
  uint32_t avg_size = 128 * 1024;
  // A cut is forced after this many bytes. Default 512 KiB; at most 16 MiB.
  uint32_t max_size = 512 * 1024;

  friend bool operator==(const ChunkerParams&, const ChunkerParams&) = default;
};

class Chunker {
 public:
  // The largest max_size Validate accepts.
  static constexpr uint32_t kMaxChunkSize = 16 * 1024 * 1024;

  // OK when `params` can be used: 64 <= min_size < avg_size < max_size <=
  // kMaxChunkSize and avg_size is a power of two. Invalid (naming the field)
  // otherwise.
  static Status Validate(const ChunkerParams& params);

  // `params` must pass Validate (asserted in debug builds; with invalid params
  // the cut points are still in range but have no guaranteed distribution).
  explicit Chunker(ChunkerParams params = {});

  // Length of the first chunk of data[0, len): the first content-defined cut
  // point. The decision depends only on the bytes from data[0] (stateless),
  // so chunking may restart at any previous cut point, and a cut found in a
  // prefix of the stream is the cut found in the whole stream.
  //  - len == 0: returns 0.
  //  - A cut is found: returns it, a value in (min_size, max_size].
  //  - len >= max_size and no cut before it: returns max_size (forced cut).
  //  - len < max_size and no cut: returns len if `at_end` (the final,
  //    possibly short, chunk), else 0 ("need more data"; call again with at
  //    least one more byte).
  //  - In particular len <= min_size returns len if `at_end`, else 0.
  // `data` must point to `len` readable bytes; only the first
  // min(len, max_size) are read.
  size_t FindCut(const uint8_t* data, size_t len, bool at_end) const;

  const ChunkerParams& params() const { return params_; }

 private:
  ChunkerParams params_;
  uint64_t mask_small_;  // Harder mask (more bits), used before avg_size.
  uint64_t mask_large_;  // Easier mask (fewer bits), used from avg_size on.
};

}  // namespace snapfs::store
