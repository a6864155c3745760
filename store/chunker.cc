#include "store/chunker.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cassert>
#include <string>

namespace snapfs::store {
namespace {

// The Gear table is part of the store format. It is kGear[i] = the (i+1)-th
// output of splitmix64 (Steele, Lea, Flood 2014; the variant in Vigna's
// splitmix64.c) started from state kGearSeed, i.e. for i = 0..255:
//   state += 0x9e3779b97f4a7c15;
//   z = state;
//   z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
//   z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
//   kGear[i] = z ^ (z >> 31);
// kGearSeed is the ASCII string "snapfs-1" read as a big-endian integer.
constexpr uint64_t kGearSeed = 0x736e617066732d31;

constexpr std::array<uint64_t, 256> MakeGearTable() {
  std::array<uint64_t, 256> table{};
  uint64_t state = kGearSeed;
  for (uint64_t& entry : table) {
    state += 0x9e3779b97f4a7c15;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
    z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
    entry = z ^ (z >> 31);
  }
  return table;
}

constexpr std::array<uint64_t, 256> kGear = MakeGearTable();
// Pin the table: these values were computed independently of this code.
static_assert(kGear[0] == 0x2f14e96816f09e63 && kGear[255] == 0xed595b58ce756ba9,
              "the Gear table is part of the store format and must not change");

// The Gear hash is h = (h << 1) + kGear[byte]. Bit j of h depends only on the
// last j+1 bytes, so the masks test the top bits, which depend on the last 64
// bytes. A mask of the top k bits matches at a position with probability
// 2^-k. With avg_size = 2^b, FastCDC's normalization level 2 uses k = b+2
// below avg_size (cuts 4x rarer than 1/avg) and k = b-2 from avg_size on
// (4x likelier), which narrows the size distribution around avg_size.
constexpr int kNormalization = 2;

constexpr uint64_t TopBitsMask(int bits) { return bits <= 0 ? 0 : ~uint64_t{0} << (64 - bits); }

// Rolls the Gear hash over data[from, to): returns the position after the
// first byte where (hash & mask) == 0, or 0 if there is none (a cut is never
// at 0). Unrolled four times by hand: the loop's own increment and compare
// then cost a quarter as much per byte, and the chunker, which runs on every
// byte written, gets about a fifth faster (docs/performance.md, session 10).
inline size_t Scan(const uint8_t* data, size_t from, size_t to, uint64_t mask, uint64_t* state) {
  uint64_t hash = *state;
  size_t i = from;
  for (; i + 4 <= to; i += 4) {
    hash = (hash << 1) + kGear[data[i]];
    if ((hash & mask) == 0) return i + 1;
    hash = (hash << 1) + kGear[data[i + 1]];
    if ((hash & mask) == 0) return i + 2;
    hash = (hash << 1) + kGear[data[i + 2]];
    if ((hash & mask) == 0) return i + 3;
    hash = (hash << 1) + kGear[data[i + 3]];
    if ((hash & mask) == 0) return i + 4;
  }
  for (; i < to; ++i) {
    hash = (hash << 1) + kGear[data[i]];
    if ((hash & mask) == 0) return i + 1;
  }
  *state = hash;
  return 0;
}

}  // namespace

Status Chunker::Validate(const ChunkerParams& params) {
  auto describe = [&params] {
    return " (min_size " + std::to_string(params.min_size) + ", avg_size " +
           std::to_string(params.avg_size) + ", max_size " + std::to_string(params.max_size) + ")";
  };
  if (params.min_size < 64) {
    return Status::Invalid("chunker: min_size must be at least 64" + describe());
  }
  if (params.min_size >= params.avg_size || params.avg_size >= params.max_size) {
    return Status::Invalid("chunker: need min_size < avg_size < max_size" + describe());
  }
  if (!std::has_single_bit(params.avg_size)) {
    return Status::Invalid("chunker: avg_size must be a power of two" + describe());
  }
  if (params.max_size > kMaxChunkSize) {
    return Status::Invalid("chunker: max_size must be at most 16 MiB" + describe());
  }
  return Status::Ok();
}

Chunker::Chunker(ChunkerParams params) : params_(params) {
  assert(Validate(params_).ok());
  const int bits = static_cast<int>(std::bit_width(params_.avg_size)) - 1;  // log2(avg_size)
  mask_small_ = TopBitsMask(bits + kNormalization);
  mask_large_ = TopBitsMask(bits - kNormalization);
}

size_t Chunker::FindCut(const uint8_t* data, size_t len, bool at_end) const {
  const size_t min_size = params_.min_size;
  const size_t max_size = params_.max_size;
  if (len <= min_size) return at_end ? len : 0;

  // Cut-point skipping: the hash starts fresh at min_size, so the decision
  // depends only on data[min_size, cut). The normal point is avg_size, never
  // clamped to len, so a prefix of the stream yields the same cut as the
  // whole stream.
  const size_t limit = std::min(len, max_size);
  const size_t normal = std::min<size_t>(params_.avg_size, limit);
  uint64_t hash = 0;
  if (const size_t cut = Scan(data, min_size, normal, mask_small_, &hash)) return cut;
  if (const size_t cut = Scan(data, normal, limit, mask_large_, &hash)) return cut;
  if (limit == max_size) return max_size;
  return at_end ? len : 0;
}

}  // namespace snapfs::store
