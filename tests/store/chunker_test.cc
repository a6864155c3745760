#include "store/chunker.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "tests/store/test_util.h"

namespace snapfs::store {
namespace {

using Bytes = std::vector<uint8_t>;
using testing::ChunkLengths;

// Deterministic data: splitmix64 output from `seed`, little-endian. Written
// out here (not std:: distributions) so the golden values never depend on the
// standard library.
Bytes SeededBytes(size_t len, uint64_t seed) {
  Bytes data(len);
  for (size_t i = 0; i < len; i += 8) {
    seed += 0x9e3779b97f4a7c15;
    uint64_t z = seed;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
    z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
    z ^= z >> 31;
    for (size_t j = 0; j < 8 && i + j < len; ++j) data[i + j] = uint8_t(z >> (8 * j));
  }
  return data;
}

// The chunks themselves, as byte strings.
std::vector<std::string_view> Chunks(const Chunker& chunker, const Bytes& data) {
  std::vector<std::string_view> chunks;
  size_t pos = 0;
  for (size_t n : ChunkLengths(chunker, data)) {
    chunks.emplace_back(reinterpret_cast<const char*>(data.data()) + pos, n);
    pos += n;
  }
  return chunks;
}

constexpr size_t kMiB = 1024 * 1024;
constexpr uint64_t kSeed = 42;

// The cut offsets of 4 MiB of seeded data: the first ten and the count.
void ExpectGoldenCuts(const Chunker& chunker, const std::vector<size_t>& golden_first,
                      size_t golden_count) {
  const Bytes data = SeededBytes(4 * kMiB, kSeed);
  std::vector<size_t> offsets;
  size_t end = 0;
  for (size_t n : ChunkLengths(chunker, data)) offsets.push_back(end += n);
  ASSERT_GE(offsets.size(), golden_first.size());
  EXPECT_EQ(std::vector<size_t>(offsets.begin(), offsets.begin() + golden_first.size()),
            golden_first);
  EXPECT_EQ(offsets.size(), golden_count);
  EXPECT_EQ(offsets.back(), data.size());
}

TEST(ChunkerTest, GoldenCutPointsOnSeededData) {
  // Computed once with the params of the first stores (and matched by an
  // independent model of the algorithm); a change means the Gear table, masks
  // or loop changed, which changes the store format: stores made with these
  // params keep them.
  ExpectGoldenCuts(Chunker(testing::kFirstStoresChunkerParams),
                   {82278, 153089, 218940, 291467, 363019, 430823, 512846, 578801, 687438, 767346},
                   56);
}

TEST(ChunkerTest, GoldenCutPointsOfTheDefaultParams) {
  // Computed once with today's defaults (min 96, average 128, max 512 KiB)
  // by this implementation, whose table, masks and loop the test above pins:
  // a change here changes the chunks of every new store, which
  // docs/format.md must then say.
  ExpectGoldenCuts(Chunker(),
                   {136190, 278608, 466593, 597815, 782365, 917930, 1056688, 1243799, 1445539,
                    1590695},
                   26);
}

TEST(ChunkerTest, EveryChunkButTheLastIsWithinMinAndMax) {
  const Chunker chunker;
  const Bytes data = SeededBytes(8 * kMiB + 123, kSeed + 1);
  const std::vector<size_t> lengths = ChunkLengths(chunker, data);
  ASSERT_GT(lengths.size(), 2u);
  for (size_t i = 0; i + 1 < lengths.size(); ++i) {
    EXPECT_GE(lengths[i], chunker.params().min_size) << "chunk " << i;
    EXPECT_LE(lengths[i], chunker.params().max_size) << "chunk " << i;
  }
  EXPECT_GT(lengths.back(), 0u);
  EXPECT_LE(lengths.back(), chunker.params().max_size);
}

TEST(ChunkerTest, MeanChunkSizeIsNearAverage) {
  const Chunker chunker;
  const Bytes data = SeededBytes(16 * kMiB, kSeed + 2);
  const size_t count = ChunkLengths(chunker, data).size();
  const double mean = double(data.size()) / double(count);
  EXPECT_GT(mean, 0.75 * chunker.params().avg_size);
  EXPECT_LT(mean, 1.5 * chunker.params().avg_size);
}

TEST(ChunkerTest, EmptyInputReturnsZero) {
  const Chunker chunker;
  const uint8_t byte = 0;
  EXPECT_EQ(chunker.FindCut(&byte, 0, true), 0u);
  EXPECT_EQ(chunker.FindCut(&byte, 0, false), 0u);
}

TEST(ChunkerTest, AtEndShortInputIsOneChunk) {
  const Chunker chunker;
  const Bytes data = SeededBytes(chunker.params().min_size, kSeed);
  EXPECT_EQ(chunker.FindCut(data.data(), 1, true), 1u);
  EXPECT_EQ(chunker.FindCut(data.data(), 1000, true), 1000u);
  EXPECT_EQ(chunker.FindCut(data.data(), data.size(), true), data.size());
}

TEST(ChunkerTest, AtEndWithoutCutReturnsWholeInput) {
  // Zeros never match a mask, so there is no content-defined cut.
  const Chunker chunker;
  const Bytes zeros(chunker.params().max_size - 1, 0);
  EXPECT_EQ(chunker.FindCut(zeros.data(), zeros.size(), true), zeros.size());
}

TEST(ChunkerTest, NeedsMoreDataWhenNoCutBeforeMax) {
  const Chunker chunker;
  const Bytes zeros(chunker.params().max_size - 1, 0);
  EXPECT_EQ(chunker.FindCut(zeros.data(), zeros.size(), false), 0u);
  EXPECT_EQ(chunker.FindCut(zeros.data(), chunker.params().min_size, false), 0u);
  EXPECT_EQ(chunker.FindCut(zeros.data(), 1, false), 0u);
}

TEST(ChunkerTest, ZeroDataIsCutAtMaxSize) {
  const Chunker chunker;
  const size_t max = chunker.params().max_size;
  const Bytes zeros(3 * max + 5, 0);
  EXPECT_EQ(ChunkLengths(chunker, zeros), (std::vector<size_t>{max, max, max, 5}));
  EXPECT_EQ(chunker.FindCut(zeros.data(), max, false), max);
  EXPECT_EQ(chunker.FindCut(zeros.data(), zeros.size(), false), max);
}

TEST(ChunkerTest, StreamingInPiecesFindsTheSameCuts) {
  // Feed the data as a stream in odd-sized pieces, asking again whenever the
  // chunker needs more; the cuts must equal those of the whole buffer.
  const Chunker chunker;
  const Bytes data = SeededBytes(3 * kMiB, kSeed + 3);
  std::vector<size_t> streamed;
  size_t start = 0;
  for (size_t available = 0; start < data.size();) {
    const bool at_end = available == data.size();
    const size_t n = chunker.FindCut(data.data() + start, available - start, at_end);
    if (n == 0) {
      ASSERT_FALSE(at_end);
      available = std::min(data.size(), available + 7919);
      continue;
    }
    streamed.push_back(n);
    start += n;
  }
  EXPECT_EQ(streamed, ChunkLengths(chunker, data));
}

TEST(ChunkerTest, InsertNearStartKeepsLaterChunks) {
  const Chunker chunker;
  const Bytes original = SeededBytes(4 * kMiB, kSeed + 4);
  Bytes edited = original;
  const Bytes insert = SeededBytes(100, kSeed + 5);
  edited.insert(edited.begin() + 1000, insert.begin(), insert.end());

  const std::vector<std::string_view> before = Chunks(chunker, original);
  const std::vector<std::string_view> after = Chunks(chunker, edited);
  // Compare from the back: all but at most the first two chunks of each side
  // must be byte-identical.
  size_t same = 0;
  while (same < before.size() && same < after.size() &&
         before[before.size() - 1 - same] == after[after.size() - 1 - same]) {
    ++same;
  }
  EXPECT_LE(before.size() - same, 2u);
  EXPECT_LE(after.size() - same, 2u);
  EXPECT_GT(same, 10u);
}

TEST(ChunkerTest, SmallParamsKeepBounds) {
  const ChunkerParams params{.min_size = 64, .avg_size = 256, .max_size = 1024};
  ASSERT_TRUE(Chunker::Validate(params).ok());
  const Chunker chunker(params);
  const Bytes data = SeededBytes(kMiB, kSeed + 6);
  const std::vector<size_t> lengths = ChunkLengths(chunker, data);
  for (size_t i = 0; i + 1 < lengths.size(); ++i) {
    EXPECT_GE(lengths[i], 64u);
    EXPECT_LE(lengths[i], 1024u);
  }
  const double mean = double(data.size()) / double(lengths.size());
  EXPECT_GT(mean, 128);
  EXPECT_LT(mean, 512);
}

// Every cut of a stream with many small chunks (so each of the unrolled
// scan's four positions, its tail and both masks cut many times), folded into
// one number: the same cuts as the byte-at-a-time loop the format was
// defined with (the value was computed with it, at commit 6c39807).
TEST(ChunkerTest, GoldenCutPointsWithSmallParams) {
  const Chunker chunker(ChunkerParams{.min_size = 64, .avg_size = 256, .max_size = 1024});
  const Bytes data = SeededBytes(kMiB, kSeed + 7);
  uint64_t fold = 0;
  size_t count = 0, end = 0;
  std::array<size_t, 4> by_residue{};
  for (size_t n : ChunkLengths(chunker, data)) {
    end += n;
    fold = fold * 1000003 + end;
    ++count;
    ++by_residue[n % 4];
  }
  EXPECT_EQ(count, 3600u);
  EXPECT_EQ(fold, 4666733766405797680u);
  for (size_t r : by_residue) EXPECT_GT(r, count / 8);  // Every position of the unrolled loop cut.
}

TEST(ChunkerTest, ValidateAcceptsDefaults) {
  EXPECT_TRUE(Chunker::Validate(ChunkerParams{}).ok());
  EXPECT_TRUE(Chunker::Validate(
                  {.min_size = 1 << 20, .avg_size = 4 << 20, .max_size = Chunker::kMaxChunkSize})
                  .ok());
}

TEST(ChunkerTest, ValidateRejectsBadParams) {
  const std::vector<ChunkerParams> bad = {
      {.min_size = 64 * 1024, .avg_size = 64 * 1024, .max_size = 256 * 1024},
      {.min_size = 16 * 1024, .avg_size = 64 * 1024, .max_size = 64 * 1024},
      {.min_size = 128 * 1024, .avg_size = 64 * 1024, .max_size = 256 * 1024},
      {.min_size = 16 * 1024, .avg_size = 60 * 1024, .max_size = 256 * 1024},
      {.min_size = 16 * 1024, .avg_size = 64 * 1024, .max_size = 17 * 1024 * 1024},
      {.min_size = 32, .avg_size = 128, .max_size = 256},
      {.min_size = 0, .avg_size = 0, .max_size = 0},
  };
  for (const ChunkerParams& params : bad) {
    const Status status = Chunker::Validate(params);
    EXPECT_EQ(status.code(), Code::kInvalid)
        << params.min_size << " " << params.avg_size << " " << params.max_size;
  }
}

}  // namespace
}  // namespace snapfs::store
