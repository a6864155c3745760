// The chunk codec (store/codec.h). The first byte picks the codec, the next
// four are the claimed raw length, the rest are the stored bytes. DecodeChunk
// must return either exactly raw_len bytes or Corruption with nothing in
// *out, and never allocate far more than the frame can hold (libFuzzer's
// -malloc_limit_mb catches that). Then the stored bytes, as raw data, must
// survive EncodeChunk + DecodeChunk unchanged.
#include <string>

#include "fuzz/fuzz_util.h"
#include "store/codec.h"

using namespace snapfs::store;
using snapfs::fuzz::AsView;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 5) return 0;
  const Codec codec = static_cast<Codec>(data[0] % 4);  // 3 is an unknown codec.
  const uint32_t raw_len = (uint32_t{data[1]} << 24) | (uint32_t{data[2]} << 16) |
                           (uint32_t{data[3]} << 8) | data[4];
  const std::string_view stored = AsView(data + 5, size - 5);

  std::string out = "not cleared";
  const snapfs::Status st = DecodeChunk(codec, stored, raw_len, &out);
  if (st.ok()) {
    FUZZ_CHECK(out.size() == raw_len);
    FUZZ_CHECK(codec == Codec::kRaw || codec == Codec::kZstd);
    if (codec == Codec::kRaw) FUZZ_CHECK(out == stored);
  } else {
    FUZZ_CHECK(st.code() == snapfs::Code::kCorruption);
    FUZZ_CHECK(out.empty());
  }

  Codec used = Codec::kZstdDelta;
  std::string frame;
  FUZZ_CHECK(EncodeChunk(stored, 1 + data[0] % 3, &used, &frame).ok());
  FUZZ_CHECK(used == Codec::kRaw || used == Codec::kZstd);
  FUZZ_CHECK(used == Codec::kRaw ? frame == stored : frame.size() < stored.size());
  std::string back;
  FUZZ_CHECK(DecodeChunk(used, frame, static_cast<uint32_t>(stored.size()), &back).ok());
  FUZZ_CHECK(back == stored);
  // A frame with one byte more or less, or claiming another length, is refused.
  if (used == Codec::kZstd) {
    FUZZ_CHECK(!DecodeChunk(used, frame + '\0', static_cast<uint32_t>(stored.size()), &back).ok());
    FUZZ_CHECK(!DecodeChunk(used, frame.substr(0, frame.size() - 1),
                            static_cast<uint32_t>(stored.size()), &back).ok());
    FUZZ_CHECK(!DecodeChunk(used, frame, static_cast<uint32_t>(stored.size()) + 1, &back).ok());
  }
  return 0;
}
