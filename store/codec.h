// Chunk compression: how a chunk's raw bytes become the bytes stored for it.
//
// The codec byte is stored next to each chunk and is part of the store
// format; values are never reused. A kZstd chunk is exactly one zstd frame
// as written by ZSTD_compressCCtx: the content size is recorded in the frame
// header and there is no zstd checksum (the chunk id, a hash of the raw
// bytes, is what the store checks after decoding).
//
// Thread-safety: both functions are safe to call from any number of threads
// at once; each thread keeps its own zstd context (thread_local), created on
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
  kZstdDelta = 2,  // Reserved: zstd with a base chunk as dictionary. Not
                   // implemented; DecodeChunk reports Corruption.
};

// The compression levels EncodeChunk accepts.
inline constexpr int kMinZstdLevel = 1;
inline constexpr int kMaxZstdLevel = 19;

// Compresses `raw` with zstd at `level` and sets *codec and *out (replacing
// its contents). If the zstd frame is not smaller than `raw` (e.g. random or
// empty data), stores the raw bytes with Codec::kRaw instead.
// Errors: Invalid if level is outside [kMinZstdLevel, kMaxZstdLevel]; Io if
// zstd itself fails (out of memory). On error *codec and *out are unchanged.
Status EncodeChunk(std::string_view raw, int level, Codec* codec, std::string* out);

// Decodes `stored` (written with `codec`) into exactly raw_len bytes in *out,
// replacing its contents.
// Errors: Corruption (never a crash, never a partial result: *out is left
// empty) if the codec is unknown or kZstdDelta, the zstd frame is damaged,
// truncated or followed by other bytes, or the decoded size differs from
// raw_len. At most raw_len bytes are allocated, and only after the frame
// header has been checked against raw_len. Io if a zstd context cannot be
// allocated. Messages do not name the chunk; callers prefix its id.
Status DecodeChunk(Codec codec, std::string_view stored, uint32_t raw_len, std::string* out);

}  // namespace snapfs::store
