// Chunk compression: how a chunk's raw bytes become the bytes stored for it.
//
// The codec byte is stored next to each chunk and is part of the store
// format; values are never reused. A kZstd chunk is exactly one zstd frame
// as written by ZSTD_compressCCtx: the content size is recorded in the frame
// header and there is no zstd checksum (the chunk id, a hash of the raw
// bytes, is what the store checks after decoding). A kZstdDelta chunk is one
// such frame made with the raw bytes of another chunk, its base, as a zstd
// prefix (ZSTD_CCtx_refPrefix): decoding needs the same base bytes. Which
// chunk is the base is recorded by the store (docs/format.md), not here.
//
// Thread-safety: all functions are safe to call from any number of threads
// at once; each thread keeps its own zstd contexts (thread_local), created on
// first use and freed when the thread exits.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "store/status.h"

namespace snapfs::store {

enum class Codec : uint8_t {
  kRaw = 0,        // Stored bytes are the raw bytes.
  kZstd = 1,       // One zstd frame.
  kZstdDelta = 2,  // One zstd frame made with a base chunk's raw bytes as prefix.
};

// The compression levels EncodeChunk accepts.
inline constexpr int kMinZstdLevel = 1;
inline constexpr int kMaxZstdLevel = 19;

// Compresses `raw` with zstd at `level` and sets *codec and *out (replacing
// its contents). If the zstd frame is not smaller than `raw` (e.g. random or
// empty data), stores the raw bytes with Codec::kRaw instead.
//
// With a non-empty `base` (the raw bytes of another chunk, typically the one
// the same file offset held in the previous version), first compresses
// against it (Codec::kZstdDelta), and keeps the delta if it is smaller than
// `max_delta_share` times the plain frame (1: whenever it is smaller; ties go
// to the plain frame, which needs no base). The plain frame is made only
// when the delta is above max_delta_share * raw/8: a plain frame of text is
// rarely below raw/8, so it would not win, and the delta is the fast path.
// A chunk unrelated to its base costs one extra (fast) compression and is
// stored as without a base.
//
// Errors: Invalid if level is outside [kMinZstdLevel, kMaxZstdLevel]; Io if
// zstd itself fails (out of memory). On error *codec and *out are unchanged.
Status EncodeChunk(std::string_view raw, int level, std::string_view base, double max_delta_share,
                   Codec* codec, std::string* out);
inline Status EncodeChunk(std::string_view raw, int level, Codec* codec, std::string* out) {
  return EncodeChunk(raw, level, std::string_view(), 1.0, codec, out);
}

// Decodes `stored` (written with `codec`) into exactly raw_len bytes in *out,
// replacing its contents. `base` is the base chunk's raw bytes for
// kZstdDelta and ignored otherwise.
// Errors: Corruption (never a crash, never a partial result: *out is left
// empty) if the codec is unknown, a kZstdDelta chunk comes without a base
// (empty `base`), the zstd frame is damaged, truncated or followed by other
// bytes, the decoded size differs from raw_len, or (kZstdDelta) the frame
// refers to bytes the base does not have. At most raw_len bytes are
// allocated, and only after the frame header has been checked against
// raw_len. Decoding against the wrong base either fails or yields other
// bytes: the caller's check of the chunk id catches those. Io if a zstd
// context cannot be allocated. Messages do not name the chunk; callers
// prefix its id.
Status DecodeChunk(Codec codec, std::string_view stored, uint32_t raw_len, std::string_view base,
                   std::string* out);
inline Status DecodeChunk(Codec codec, std::string_view stored, uint32_t raw_len,
                          std::string* out) {
  return DecodeChunk(codec, stored, raw_len, std::string_view(), out);
}

}  // namespace snapfs::store
