#include "store/dirty_bytes.h"

#include <gtest/gtest.h>
#include <sanitizer/asan_interface.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "tests/store/test_util.h"

namespace snapfs::store {
namespace {

using testing::SeededBytes;

// The filled bytes of a file as a plain string plus a flag per byte.
struct Model {
  std::string bytes;
  std::vector<bool> filled;

  void Write(uint64_t offset, const std::string& data) {
    if (bytes.size() < offset + data.size()) {
      bytes.resize(offset + data.size(), '\0');
      filled.resize(offset + data.size(), false);
    }
    bytes.replace(offset, data.size(), data);
    for (size_t i = 0; i < data.size(); ++i) filled[offset + i] = true;
  }
  void Erase(uint64_t from, uint64_t to) {
    for (uint64_t i = from; i < std::min<uint64_t>(to, filled.size()); ++i) filled[i] = false;
  }
  bool At(uint64_t i) const { return i < filled.size() && filled[i]; }
  uint64_t Count() const {
    uint64_t n = 0;
    for (bool f : filled) n += f;
    return n;
  }
};

// Every observable of `d` against `m`, at every offset up to past the end.
void ExpectSame(const DirtyBytes& d, const Model& m) {
  ASSERT_EQ(d.bytes(), m.Count());
  ASSERT_EQ(d.empty(), m.Count() == 0);
  if (d.empty()) {
    ASSERT_EQ(d.memory(), 0u);
  }
  const uint64_t span = m.filled.size() + 2 * d.block_size();
  std::string out(span, '\x55');
  d.Read(0, span, out.data());
  for (uint64_t i = 0; i < span; ++i) {
    ASSERT_EQ(out[i], m.At(i) ? m.bytes[i] : '\x55') << "byte " << i;
  }
  // The model's runs, then the offsets to look at: every one on small
  // files, else a sample plus both sides of every run and block edge.
  std::vector<DirtyBytes::Range> runs;
  for (uint64_t i = 0; i < m.filled.size(); ++i) {
    if (!m.filled[i]) continue;
    uint64_t j = i;
    while (m.At(j)) ++j;
    runs.push_back({i, j});
    i = j;
  }
  std::vector<uint64_t> offsets;
  const uint64_t stride = std::max<uint64_t>(1, span / 20000);
  for (uint64_t i = 0; i < span; i += stride) offsets.push_back(i);
  for (const DirtyBytes::Range& r : runs)
    for (uint64_t i : {r.start - 1, r.start, r.end - 1, r.end}) offsets.push_back(i);
  for (uint64_t b = d.block_size(); b < span; b += d.block_size())
    for (uint64_t i : {b - 1, b}) offsets.push_back(i);
  for (uint64_t i : offsets) {
    auto run = std::upper_bound(runs.begin(), runs.end(), i,
                                [](uint64_t x, const DirtyBytes::Range& r) { return x < r.end; });
    const std::optional<DirtyBytes::Range> next =
        run == runs.end() ? std::nullopt : std::optional<DirtyBytes::Range>(*run);
    const std::optional<DirtyBytes::Range> want =
        next && next->start <= i ? next : std::nullopt;
    ASSERT_EQ(d.RunContaining(i), want) << "run at " << i;
    ASSERT_EQ(d.NextRun(i), next) << "next run from " << i;
    const std::string_view c = d.Contiguous(i, span);
    if (!want) {
      ASSERT_TRUE(c.empty()) << i;
      continue;
    }
    // Within the run and the block, and non-empty.
    const uint64_t block_end = (i / d.block_size() + 1) * d.block_size();
    ASSERT_GE(c.size(), 1u);
    ASSERT_LE(i + c.size(), std::min(want->end, block_end)) << i;
    ASSERT_EQ(c, std::string_view(m.bytes).substr(i, c.size())) << i;
  }
}

class DirtyBytesRandomTest : public ::testing::TestWithParam<size_t> {};

TEST_P(DirtyBytesRandomTest, MatchesAModelUnderRandomWritesErasesAndTruncates) {
  const size_t bs = GetParam();
  BlockPool pool(bs, 4 * bs);
  DirtyBytes d(bs, &pool);
  Model m;
  std::mt19937_64 rng(bs);
  auto below = [&](uint64_t n) { return n == 0 ? 0 : rng() % n; };
  const uint64_t file = 12 * bs;
  // Shares taken along the way, each with the bytes it must keep showing
  // whatever is written, erased or truncated after it.
  struct Held {
    std::shared_ptr<const char> share;
    std::string bytes;
  };
  std::vector<Held> held;
  for (int step = 0; step < 300; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    const uint64_t op = below(100);
    if (op < 10) {
      uint64_t at = below(file);
      if (below(2) == 0) {  // Mostly a filled byte: the one at or after `at`.
        const std::optional<DirtyBytes::Range> run = d.NextRun(at);
        if (run) at = std::max(at, run->start);
      }
      const std::string_view c = d.Contiguous(at, file);
      std::shared_ptr<const char> share = d.Share(at);
      ASSERT_EQ(share == nullptr, c.empty()) << at;
      if (share) {
        ASSERT_EQ(share.get(), c.data());
        held.push_back({std::move(share), std::string(c)});
      }
      if (below(8) == 0 && !held.empty()) held.erase(held.begin());  // Some let go early.
    } else if (op < 60) {
      // Small, block-sized or multi-block; anywhere, so out of order and
      // overlapping earlier writes.
      const uint64_t len = 1 + (below(3) == 0 ? below(3 * bs) : below(bs / 8));
      const uint64_t offset = below(file);
      const std::string data = SeededBytes(len, rng());
      d.Write(offset, data.data(), data.size());
      m.Write(offset, data);
    } else if (op < 85) {
      const uint64_t from = below(file);
      const uint64_t to = from + below(2 * bs);
      d.Erase(from, to);
      m.Erase(from, to);
    } else {
      const uint64_t size = below(file);  // Truncate.
      d.Erase(size, UINT64_MAX);
      m.Erase(size, UINT64_MAX);
    }
    if (step % 10 == 0 || step > 290) {
      ASSERT_NO_FATAL_FAILURE(ExpectSame(d, m));
    }
    ASSERT_LE(pool.kept_bytes(), 4 * bs);
  }
  d.Erase(0, UINT64_MAX);
  m.Erase(0, UINT64_MAX);
  ASSERT_NO_FATAL_FAILURE(ExpectSame(d, m));
  EXPECT_GT(held.size(), 5u);
  for (const Held& h : held)
    ASSERT_EQ(std::string_view(h.share.get(), h.bytes.size()), h.bytes);
}

// A stream written in pieces out of order, as the kernel's writeback sends it
// on several FUSE threads.
TEST_P(DirtyBytesRandomTest, StreamArrivingOutOfOrderMatchesAModel) {
  const size_t bs = GetParam();
  DirtyBytes d(bs, nullptr);
  Model m;
  std::mt19937_64 rng(bs + 1);
  const size_t piece = bs / 2 + 3;  // Not aligned to blocks.
  std::vector<uint64_t> order;
  for (uint64_t at = 0; at < 20 * piece; at += piece) order.push_back(at);
  for (size_t i = 0; i + 1 < order.size(); i += 5)
    std::shuffle(order.begin() + i, order.begin() + std::min(order.size(), i + 5), rng);
  for (uint64_t at : order) {
    const std::string data = SeededBytes(piece, at);
    d.Write(at, data.data(), data.size());
    m.Write(at, data);
  }
  ASSERT_NO_FATAL_FAILURE(ExpectSame(d, m));
  EXPECT_EQ(d.RunContaining(5 * piece), (DirtyBytes::Range{0, 20 * piece}));
}

INSTANTIATE_TEST_SUITE_P(BlockSizes, DirtyBytesRandomTest, ::testing::Values(256, 4096, 65536),
                         [](const auto& p) { return std::to_string(p.param); });

TEST(DirtyBytesTest, WritesLandInPlaceWhateverTheirOrder) {
  const size_t bs = 4096;
  DirtyBytes d(bs, nullptr);
  const std::string second = SeededBytes(bs, 1), first = SeededBytes(bs, 2);
  d.Write(bs, second.data(), bs);
  const char* where = d.Contiguous(bs, 2 * bs).data();
  d.Write(0, first.data(), bs);  // The piece before arrives later.
  EXPECT_EQ(d.Contiguous(bs, 2 * bs).data(), where);
  EXPECT_EQ(d.RunContaining(0), (DirtyBytes::Range{0, 2 * bs}));
  d.Erase(0, bs + 100);  // Chunked up to bs + 100: the rest stays put.
  EXPECT_EQ(d.Contiguous(bs + 100, 2 * bs).data(), where + 100);
  EXPECT_EQ(d.bytes(), bs - 100);
}

TEST(DirtyBytesTest, ErasedWholeBlocksGoBackToThePoolAndAreReused) {
  const size_t bs = 4096;
  BlockPool pool(bs, 2 * bs);
  const std::string data = SeededBytes(4 * bs, 3);
  {
    DirtyBytes d(bs, &pool);
    d.Write(0, data.data(), data.size());
    EXPECT_EQ(d.memory(), 4 * bs);
    const char* first = d.Contiguous(0, bs).data();
    d.Erase(0, bs);
    EXPECT_EQ(pool.kept_bytes(), bs);
    EXPECT_EQ(d.memory(), 3 * bs);
    d.Write(8 * bs, data.data(), bs);
    EXPECT_EQ(d.Contiguous(8 * bs, 9 * bs).data(), first);  // The same buffer.
    EXPECT_EQ(pool.kept_bytes(), 0u);
  }
  EXPECT_EQ(pool.kept_bytes(), 2 * bs);  // Bounded: the rest were freed.
}

TEST(DirtyBytesTest, ASharedBufferKeepsItsBytesAndIsWrittenOnlyAsACopy) {
  const size_t bs = 4096;
  BlockPool pool(bs, 2 * bs);
  const std::string old_bytes = SeededBytes(bs, 4), new_bytes = SeededBytes(bs, 5);
  std::shared_ptr<const char> whole, part;
  {
    DirtyBytes d(bs, &pool);
    d.Write(0, old_bytes.data(), bs);         // A whole block, from the pool.
    d.Write(2 * bs + 8, old_bytes.data(), 8);  // A few bytes: a small buffer.
    EXPECT_EQ(d.Share(bs), nullptr);           // Not filled.
    EXPECT_EQ(d.Share(2 * bs + 7), nullptr);
    whole = d.Share(100);
    part = d.Share(2 * bs + 8);
    ASSERT_NE(whole, nullptr);
    ASSERT_NE(part, nullptr);
    const char* before = d.Contiguous(0, bs).data();
    EXPECT_EQ(whole.get(), before + 100);

    // Written while shared: the write goes to a copy, the share keeps the
    // old bytes, the overlay reads the new ones everywhere.
    d.Write(50, new_bytes.data(), 100);
    d.Write(2 * bs + 10, new_bytes.data(), 2);
    EXPECT_NE(d.Contiguous(0, bs).data(), before);
    EXPECT_EQ(std::string_view(whole.get(), bs - 100), std::string_view(old_bytes).substr(100));
    EXPECT_EQ(std::string_view(part.get(), 8), std::string_view(old_bytes).substr(0, 8));
    std::string now(bs, '\0');
    d.Read(0, bs, now.data());
    EXPECT_EQ(now, old_bytes.substr(0, 50) + new_bytes.substr(0, 100) + old_bytes.substr(150));

    // Unshared again, a write goes in place.
    const char* copy = d.Contiguous(0, bs).data();
    d.Write(0, new_bytes.data(), 10);
    EXPECT_EQ(d.Contiguous(0, bs).data(), copy);
    d.Erase(0, UINT64_MAX);
    EXPECT_EQ(pool.kept_bytes(), bs);  // The copy; the shared block is still held.
  }
  // The overlay is gone: the shares still read their bytes, and the block
  // goes back to the pool only when the last share is dropped.
  EXPECT_EQ(std::string_view(whole.get(), bs - 100), std::string_view(old_bytes).substr(100));
  EXPECT_EQ(std::string_view(part.get(), 8), std::string_view(old_bytes).substr(0, 8));
  std::shared_ptr<const char> again = whole;
  whole.reset();
  EXPECT_EQ(pool.kept_bytes(), bs);
  again.reset();
  EXPECT_EQ(pool.kept_bytes(), 2 * bs);
}

// The line of /proc/self/smaps starting with `field` for the mapping that
// holds `p`, or "" if there is none.
std::string SmapsField(const void* p, std::string_view field) {
  std::ifstream in("/proc/self/smaps");
  const auto at = reinterpret_cast<uintptr_t>(p);
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    uintptr_t lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%" SCNxPTR "-%" SCNxPTR " ", &lo, &hi) == 2 &&
        line.find(':') > line.find(' ')) {  // A mapping's header, not a "Field:" line.
      inside = lo <= at && at < hi;
    } else if (inside && line.starts_with(field)) {
      return line;
    }
  }
  return "";
}

TEST(BlockPoolTest, BlocksComeFromOneRegionAlignedAndAdvisedForHugePages) {
  const size_t bs = 1 << 20;
  BlockPool pool(bs, 8 * bs);
  BlockPool::Buffer a = pool.Take(), b = pool.Take(), c = pool.Take();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.get()) % (2 * bs), 0u);
  EXPECT_EQ(b.get(), a.get() + bs);
  EXPECT_EQ(c.get(), a.get() + 2 * bs);
  std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string mode;
  std::getline(thp, mode);
  if (mode.empty() || mode.find("[never]") != std::string::npos) {
    GTEST_SKIP() << "transparent huge pages are off here: the advice is moot";
  }
  const std::string eligible = SmapsField(a.get(), "THPeligible:");
  ASSERT_FALSE(eligible.empty()) << "no THPeligible line for the region in /proc/self/smaps";
  EXPECT_EQ(eligible.back(), '1');
}

TEST(BlockPoolTest, BlocksBeyondTheRegionAreFreedAndRegionBlocksKept) {
  const size_t bs = 4096;
  BlockPool pool(bs, 2 * bs);
  std::vector<BlockPool::Buffer> taken;
  for (int i = 0; i < 5; ++i) taken.push_back(pool.Take());
  std::memset(taken[4].get(), 7, bs);  // A heap block is whole and writable.
  taken.clear();
  EXPECT_EQ(pool.kept_bytes(), 2 * bs);
  const BlockPool::Buffer again = pool.Take();
  EXPECT_EQ(pool.kept_bytes(), bs);
}

// Under AddressSanitizer (scripts/sanitize.sh) a region block is addressable
// only while taken, so a read past a chunk into a free block is caught as a
// heap buffer's would be.
TEST(BlockPoolTest, UnderAsanOnlyTakenRegionBlocksAreAddressable) {
#if defined(__SANITIZE_ADDRESS__)
  const size_t bs = 1 << 20;
  BlockPool pool(bs, 4 * bs);
  BlockPool::Buffer a = pool.Take();
  char* const first = a.get();
  EXPECT_EQ(__asan_region_is_poisoned(first, bs), nullptr);
  EXPECT_TRUE(__asan_address_is_poisoned(first + bs));  // The next block: never taken.
  a.reset();
  EXPECT_TRUE(__asan_address_is_poisoned(first));  // Given back.
  BlockPool::Buffer again = pool.Take();
  ASSERT_EQ(again.get(), first);
  EXPECT_EQ(__asan_region_is_poisoned(first, bs), nullptr);
#else
  GTEST_SKIP() << "not built with AddressSanitizer (scripts/sanitize.sh runs this)";
#endif
}

TEST(DirtyBytesTest, SmallScatteredWritesHoldLittleMemory) {
  const size_t bs = 1 << 20;
  DirtyBytes d(bs, nullptr);
  const std::string data = SeededBytes(100, 4);
  for (uint64_t i = 0; i < 64; ++i) d.Write(i * bs + 5000 + i, data.data(), data.size());
  EXPECT_EQ(d.bytes(), 64 * 100u);
  EXPECT_LE(d.memory(), 64 * 8192u);  // A granule or two per block, not 64 MiB.
  // A block filled from its start after the block before ends full is a
  // stream: it gets a whole buffer at once.
  const std::string block = SeededBytes(bs, 5);
  d.Write(100 * bs, block.data(), bs);
  d.Write(101 * bs, data.data(), 100);
  d.Write(101 * bs + 100, block.data(), bs / 2);
  EXPECT_EQ(d.Contiguous(101 * bs, 102 * bs).size(), bs / 2 + 100);
}

}  // namespace
}  // namespace snapfs::store
