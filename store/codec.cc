#include "store/codec.h"

#include <zstd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace snapfs::store {
namespace {

struct CCtxDeleter {
  void operator()(ZSTD_CCtx* cctx) const { ZSTD_freeCCtx(cctx); }
};
struct DCtxDeleter {
  void operator()(ZSTD_DCtx* dctx) const { ZSTD_freeDCtx(dctx); }
};

// Contexts are expensive to create (hundreds of KiB of tables) and not
// thread-safe, so each thread keeps one. Null if allocation failed.
ZSTD_CCtx* ThreadCCtx() {
  thread_local std::unique_ptr<ZSTD_CCtx, CCtxDeleter> cctx(ZSTD_createCCtx());
  return cctx.get();
}
ZSTD_DCtx* ThreadDCtx() {
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxDeleter> dctx(ZSTD_createDCtx());
  return dctx.get();
}

Status Corrupt(const std::string& why) { return Status::Corruption("chunk data: " + why); }

// Forgets any prefix and parameter a context may still hold (a delta that
// failed half-way), so the next frame starts clean.
void Reset(ZSTD_CCtx* cctx) { ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters); }
void Reset(ZSTD_DCtx* dctx) { ZSTD_DCtx_reset(dctx, ZSTD_reset_session_and_parameters); }

// One frame of `raw`, against `base` as a prefix if it is not empty. zstd
// writes into a per-thread buffer of the worst-case size, and only the frame
// is copied out: a string of that size would be zero-filled first, as many
// bytes as the chunk for a frame a fraction of it.
Status Compress(std::string_view raw, int level, std::string_view base, std::string* frame) {
  ZSTD_CCtx* cctx = ThreadCCtx();
  if (cctx == nullptr) return Status::Io("zstd: cannot allocate a compression context");
  thread_local std::vector<char> scratch;
  const size_t bound = ZSTD_compressBound(raw.size());
  if (scratch.size() < bound) scratch.resize(bound);
  size_t n;
  if (base.empty()) {
    n = ZSTD_compressCCtx(cctx, scratch.data(), bound, raw.data(), raw.size(), level);
  } else {
    // The same frame format as ZSTD_compressCCtx: content size recorded, no
    // checksum (both are ZSTD_compress2's defaults after a reset).
    Reset(cctx);
    n = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
    if (!ZSTD_isError(n)) n = ZSTD_CCtx_refPrefix(cctx, base.data(), base.size());
    if (!ZSTD_isError(n))
      n = ZSTD_compress2(cctx, scratch.data(), bound, raw.data(), raw.size());
    Reset(cctx);
  }
  if (ZSTD_isError(n)) return Status::Io(std::string("zstd: ") + ZSTD_getErrorName(n));
  frame->assign(scratch.data(), n);
  return Status::Ok();
}

Status DecodeZstd(std::string_view stored, uint32_t raw_len, std::string_view base,
                  std::string* out) {
  // Check the header (and that `stored` is exactly one whole frame) before
  // allocating raw_len bytes, so a damaged length does not cost memory.
  const unsigned long long content_size = ZSTD_getFrameContentSize(stored.data(), stored.size());
  if (content_size == ZSTD_CONTENTSIZE_ERROR) return Corrupt("bad zstd frame header");
  // We always record the size (codec.h); without it raw_len would go unchecked.
  if (content_size == ZSTD_CONTENTSIZE_UNKNOWN)
    return Corrupt("zstd frame header does not record the content size");
  if (content_size != raw_len) {
    return Corrupt("zstd frame holds " + std::to_string(content_size) + " bytes, want " +
                   std::to_string(raw_len));
  }
  const size_t frame_size = ZSTD_findFrameCompressedSize(stored.data(), stored.size());
  if (ZSTD_isError(frame_size)) {
    return Corrupt(std::string("zstd frame: ") + ZSTD_getErrorName(frame_size));
  }
  if (frame_size != stored.size()) {
    return Corrupt(std::to_string(stored.size() - frame_size) + " bytes after the zstd frame");
  }

  // Every block of a frame takes at least 4 bytes and decodes to at most
  // ZSTD_BLOCKSIZE_MAX: a header claiming more than that is damaged, and we
  // must not allocate for it.
  if (raw_len / ZSTD_BLOCKSIZE_MAX > stored.size() / 4) {
    return Corrupt("a zstd frame of " + std::to_string(stored.size()) + " bytes cannot hold " +
                   std::to_string(raw_len) + " bytes");
  }

  ZSTD_DCtx* dctx = ThreadDCtx();
  if (dctx == nullptr) return Status::Io("zstd: cannot allocate a decompression context");
  out->resize(raw_len);
  size_t n;
  if (base.empty()) {
    n = ZSTD_decompressDCtx(dctx, out->data(), out->size(), stored.data(), stored.size());
  } else {
    // A match that reaches before the prefix, or a window larger than the
    // decoder allows, is an error from zstd, not a read out of bounds.
    Reset(dctx);
    n = ZSTD_DCtx_refPrefix(dctx, base.data(), base.size());
    if (!ZSTD_isError(n))
      n = ZSTD_decompressDCtx(dctx, out->data(), out->size(), stored.data(), stored.size());
    Reset(dctx);
  }
  if (ZSTD_isError(n)) {
    out->clear();
    return Corrupt(std::string("zstd: ") + ZSTD_getErrorName(n));
  }
  if (n != raw_len) {
    out->clear();
    return Corrupt("zstd frame decodes to " + std::to_string(n) + " bytes, want " +
                   std::to_string(raw_len));
  }
  return Status::Ok();
}

}  // namespace

Status EncodeChunk(std::string_view raw, int level, std::string_view base, double max_delta_share,
                   Codec* codec, std::string* out) {
  if (level < kMinZstdLevel || level > kMaxZstdLevel) {
    return Status::Invalid("zstd level " + std::to_string(level) + " is outside [" +
                           std::to_string(kMinZstdLevel) + ", " + std::to_string(kMaxZstdLevel) +
                           "]");
  }
  std::string delta;
  if (!base.empty()) {
    SNAPFS_RETURN_IF_ERROR(Compress(raw, level, base, &delta));
    // Clearly worth it: keep it without making the plain frame (codec.h).
    if (static_cast<double>(delta.size()) <= max_delta_share * static_cast<double>(raw.size() / 8)) {
      *out = std::move(delta);
      *codec = Codec::kZstdDelta;
      return Status::Ok();
    }
  }
  std::string frame;
  SNAPFS_RETURN_IF_ERROR(Compress(raw, level, std::string_view(), &frame));
  const size_t plain = std::min(frame.size(), raw.size());
  if (!base.empty() &&
      static_cast<double>(delta.size()) < max_delta_share * static_cast<double>(plain)) {
    *out = std::move(delta);
    *codec = Codec::kZstdDelta;
  } else if (frame.size() < raw.size()) {
    *out = std::move(frame);
    *codec = Codec::kZstd;
  } else {
    out->assign(raw);
    *codec = Codec::kRaw;
  }
  return Status::Ok();
}

Status DecodeChunk(Codec codec, std::string_view stored, uint32_t raw_len, std::string_view base,
                   std::string* out) {
  // *out is not cleared first: DecodeZstd resizes it to raw_len, which fills
  // with zeros only the bytes past its old size (none when a buffer is reused
  // for a chunk no larger, see ChunkStore::ReadVerified), and zstd overwrites
  // every byte.
  auto decode = [&]() -> Status {
    switch (codec) {
      case Codec::kRaw:
        if (stored.size() != raw_len) {
          return Corrupt("raw chunk is " + std::to_string(stored.size()) + " bytes, want " +
                         std::to_string(raw_len));
        }
        out->assign(stored);
        return Status::Ok();
      case Codec::kZstd:
        return DecodeZstd(stored, raw_len, std::string_view(), out);
      case Codec::kZstdDelta:
        if (base.empty()) return Corrupt("a zstd-delta chunk needs its base chunk");
        return DecodeZstd(stored, raw_len, base, out);
    }
    return Corrupt("unknown codec " + std::to_string(static_cast<int>(codec)));
  };
  Status st = decode();
  if (!st.ok()) out->clear();
  return st;
}

}  // namespace snapfs::store
