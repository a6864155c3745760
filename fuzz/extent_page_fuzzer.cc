// Extent pages (store/key_format.h, DecodeExtentPage): the only values with
// varints. Two modes, picked by the first byte:
//  even: arbitrary bytes as a page (the next 8 bytes are prev_end). An accepted
//        page encodes back to the same bytes, its extents are in order and do
//        not overlap, and what it returns is the end of its last extent.
//  odd:  extents built from the input are encoded, decoded and compared
//        (every varint width, gaps, lengths up to 2^32-1, offsets near 2^64).
#include <fuzzer/FuzzedDataProvider.h>

#include <vector>

#include "fuzz/fuzz_util.h"
#include "store/key_format.h"

using namespace snapfs::store;
using snapfs::fuzz::AsView;

namespace {

const std::string kKey = keys::ExtentPage(7, 3, 0);

void DecodeArbitrary(std::string_view in) {
  if (in.size() < 8) return;
  uint64_t prev_end = 0;
  for (int i = 0; i < 8; ++i) prev_end = (prev_end << 8) | static_cast<uint8_t>(in[i]);
  const std::string_view value = in.substr(8);
  std::vector<Extent> out = {Extent{}};  // Decoding appends: the first stays.
  auto end = DecodeExtentPage(value, kKey, prev_end, &out);
  if (!end.ok()) {
    FUZZ_CHECK(end.status().code() == snapfs::Code::kCorruption);
    return;
  }
  const std::span<const Extent> got(out.begin() + 1, out.end());
  FUZZ_CHECK(got.size() <= kExtentsPerPage);
  uint64_t at = prev_end;
  for (const Extent& e : got) {
    FUZZ_CHECK(e.offset >= at && e.length > 0 && e.end() > e.offset);
    at = e.end();
  }
  FUZZ_CHECK(*end == at);
  FUZZ_CHECK(EncodeExtentPage(got, prev_end) == value);
  std::vector<Extent> again;
  FUZZ_CHECK(!DecodeExtentPage(std::string(value) + '\0', kKey, prev_end, &again).ok());
}

void EncodeBuilt(FuzzedDataProvider& in) {
  const uint64_t start = in.ConsumeIntegral<uint64_t>();
  uint64_t at = start;
  std::vector<Extent> extents;
  const size_t n = in.ConsumeIntegralInRange<size_t>(0, 64);
  for (size_t i = 0; i < n && in.remaining_bytes() > 0; ++i) {
    Extent e;
    const uint64_t gap = in.ConsumeIntegralInRange<uint64_t>(0, UINT64_MAX - at);
    e.offset = at + gap;
    const uint64_t room = UINT64_MAX - e.offset;
    if (room == 0) break;
    e.length = static_cast<uint32_t>(
        in.ConsumeIntegralInRange<uint64_t>(1, std::min<uint64_t>(room, UINT32_MAX)));
    e.chunk_offset = in.ConsumeIntegral<uint32_t>();
    for (uint8_t& b : e.id.bytes) b = in.ConsumeIntegral<uint8_t>();
    extents.push_back(e);
    at = e.end();
  }
  const std::string page = EncodeExtentPage(extents, start);
  std::vector<Extent> back;
  auto end = DecodeExtentPage(page, kKey, start, &back);
  FUZZ_CHECK(end.ok());
  FUZZ_CHECK(*end == at);
  FUZZ_CHECK(back == extents);
  // Every strict prefix of a page is refused (truncation is never silent).
  for (size_t cut = 0; cut < page.size(); ++cut) {
    std::vector<Extent> partial;
    FUZZ_CHECK(!DecodeExtentPage(std::string_view(page).substr(0, cut), kKey, start, &partial).ok());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  if (data[0] % 2 == 0) {
    DecodeArbitrary(AsView(data + 1, size - 1));
  } else {
    FuzzedDataProvider in(data + 1, size - 1);
    EncodeBuilt(in);
  }
  return 0;
}
