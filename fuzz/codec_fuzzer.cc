// The chunk codec (store/codec.h). The first byte picks the codec (low two
// bits) and, for codec 2, how much of the input is the base chunk (high six
// bits); the next four are the claimed raw length, the rest are the base
// then the stored bytes. DecodeChunk must return either exactly raw_len
// bytes or Corruption with nothing in *out, and never allocate far more than
// the frame can hold (libFuzzer's -malloc_limit_mb catches that). Then the
// stored bytes, as raw data, must survive EncodeChunk + DecodeChunk
// unchanged, without a base and against the base.
#include <string>

#include "fuzz/fuzz_util.h"
#include "store/codec.h"

using namespace snapfs::store;
using snapfs::fuzz::AsView;

namespace {

// Encodes `raw` (against `base` if not empty), checks what EncodeChunk
// promises and that it decodes back.
void RoundTrip(std::string_view raw, std::string_view base, int level, double share) {
  Codec used = static_cast<Codec>(7);
  std::string frame;
  FUZZ_CHECK(EncodeChunk(raw, level, base, share, &used, &frame).ok());
  FUZZ_CHECK(used == Codec::kRaw || used == Codec::kZstd ||
             (used == Codec::kZstdDelta && !base.empty()));
  FUZZ_CHECK(used == Codec::kRaw ? frame == raw : frame.size() < raw.size());
  const uint32_t len = static_cast<uint32_t>(raw.size());
  std::string back;
  FUZZ_CHECK(DecodeChunk(used, frame, len, base, &back).ok());
  FUZZ_CHECK(back == raw);
  // A frame with one byte more or less, or claiming another length, is refused.
  if (used != Codec::kRaw) {
    FUZZ_CHECK(!DecodeChunk(used, frame + '\0', len, base, &back).ok());
    FUZZ_CHECK(!DecodeChunk(used, frame.substr(0, frame.size() - 1), len, base, &back).ok());
    FUZZ_CHECK(!DecodeChunk(used, frame, len + 1, base, &back).ok());
  }
  // A delta without its base is refused.
  if (used == Codec::kZstdDelta) FUZZ_CHECK(!DecodeChunk(used, frame, len, &back).ok());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 5) return 0;
  const Codec codec = static_cast<Codec>(data[0] % 4);  // 3 is an unknown codec.
  const uint32_t raw_len = (uint32_t{data[1]} << 24) | (uint32_t{data[2]} << 16) |
                           (uint32_t{data[3]} << 8) | data[4];
  const std::string_view rest = AsView(data + 5, size - 5);
  const size_t base_len = codec == Codec::kZstdDelta ? rest.size() * (data[0] >> 2) / 64 : 0;
  const std::string_view base = rest.substr(0, base_len);
  const std::string_view stored = rest.substr(base_len);

  std::string out = "not cleared";
  const snapfs::Status st = DecodeChunk(codec, stored, raw_len, base, &out);
  if (st.ok()) {
    FUZZ_CHECK(out.size() == raw_len);
    FUZZ_CHECK(codec == Codec::kRaw || codec == Codec::kZstd ||
               (codec == Codec::kZstdDelta && !base.empty()));
    if (codec == Codec::kRaw) FUZZ_CHECK(out == stored);
  } else {
    FUZZ_CHECK(st.code() == snapfs::Code::kCorruption);
    FUZZ_CHECK(out.empty());
  }

  const int level = 1 + data[0] % 3;
  const double share = (data[4] & 1) != 0 ? 1.0 : 1.0 / 3;
  RoundTrip(stored, std::string_view(), level, share);
  if (!base.empty()) RoundTrip(stored, base, level, share);
  return 0;
}
