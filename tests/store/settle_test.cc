// Deferred compression: chunks stored uncompressed while writes outrun the
// compression workers (OpenOptions::defer_above; 0 here defers every chunk)
// read back byte for byte, are recorded by settle keys, and Settle()
// compresses them (as deltas where the file offset held a chunk before),
// moves their index entries, shrinks the states' bytes_stored, survives a
// reopen, never makes a base out of an uncompressed chunk, and lets GC free
// the space; the background settler does it all by itself once idle.
#include <chrono>
#include <thread>

#include "store/check.h"
#include "store/key_format.h"
#include "tests/store/vfs_store_fixture.h"

namespace snapfs::store {
namespace {

using testing::DumpText;
using testing::PacksBytes;

constexpr int64_t kGapNs = 200'000'000;
constexpr size_t kDumpBytes = 4u << 20;

class SettleTest : public testing::VfsStoreTest {
 protected:
  SettleTest() : VfsStoreTest(kGapNs) {}
  void SetUp() override {
    open_options_.defer_above = 0;  // Every new chunk is deferred.
    VfsStoreTest::SetUp();
  }
  void ReopenWith(size_t defer_above, bool settle_when_idle = false) {
    open_options_.defer_above = defer_above;
    open_options_.settle_when_idle = settle_when_idle;
    ASSERT_NO_FATAL_FAILURE(Reopen());
  }
  ChunkStore& chunks() { return store_->chunks(); }
  // Index entries by codec.
  std::map<Codec, uint64_t> Codecs() {
    std::map<Codec, uint64_t> n;
    const Status st =
        store_->Scan(Store::Family::kChunks, [&](std::string_view key, std::string_view v) {
          Result<ChunkLocation> loc = DecodeChunkLocation(v, key);
          EXPECT_OK(loc);
          if (loc.ok()) n[loc->codec]++;
          return true;
        });
    EXPECT_OK(st);
    return n;
  }
  void ExpectClean() {
    ASSERT_OK_AND_ASSIGN(CheckReport report, CheckStore(*store_, CheckOptions{}));
    EXPECT_TRUE(report.clean());
    EXPECT_EQ(report.chunks_verified, report.chunks);
  }
};

// OpenOptions::defer_rate: new chunks arriving faster than the rate are
// deferred even with the queue rule off; slower ones are compressed at once.
TEST_F(SettleTest, ChunksArrivingFasterThanTheRateAreDeferred) {
  open_options_.defer_rate = 1;  // Bytes per second: every dump is faster.
  ASSERT_NO_FATAL_FAILURE(ReopenWith(SIZE_MAX));
  const std::string day1 = DumpText(kDumpBytes, 1);
  Dump("fast.sql", day1);
  const uint64_t deferred = chunks().counters().chunks_deferred.load();
  EXPECT_GT(deferred, 0u);
  EXPECT_EQ(Codecs()[Codec::kZstd], 0u);
  open_options_.defer_rate = uint64_t{1} << 40;  // 1 TiB/s: no dump is that fast.
  ASSERT_NO_FATAL_FAILURE(ReopenWith(SIZE_MAX));
  Dump("slow.sql", DumpText(kDumpBytes, 7));
  EXPECT_EQ(chunks().counters().chunks_deferred.load(), 0u);  // Counters start at the reopen.
  EXPECT_GT(Codecs()[Codec::kZstd], 0u);
  ASSERT_OK_AND_ASSIGN(std::string got, ReadAt(store_->latest(), "fast.sql"));
  EXPECT_TRUE(got == day1);
  ExpectClean();
}

// A worker appends the deferred chunks queued behind the one it takes in
// the same write (up to 32 of them, 1 MiB): each reads back as itself.
TEST_F(SettleTest, DeferredChunksQueuedTogetherAreStoredTogetherAndReadBack) {
  std::vector<std::string> bytes;
  std::vector<ChunkId> ids;
  chunks().HoldWorkersForTesting(true);
  for (uint64_t i = 0; i < 45; ++i) {
    bytes.push_back(testing::SeededBytes(20000 + i, 500 + i));
    ids.push_back(chunks().Id(reinterpret_cast<const uint8_t*>(bytes.back().data()),
                              bytes.back().size()));
    ASSERT_OK_AND_ASSIGN(ChunkStore::PutResult put, chunks().Put(ids.back(), bytes.back()));
    EXPECT_EQ(put, ChunkStore::PutResult::kQueued);
  }
  chunks().HoldWorkersForTesting(false);
  uint64_t stored = 0;
  ASSERT_OK(chunks().WaitStored(ids, &stored));
  EXPECT_EQ(chunks().counters().chunks_deferred.load(), ids.size());
  uint64_t raw = 0;
  for (const std::string& b : bytes) raw += b.size();
  EXPECT_EQ(stored, raw);
  for (size_t i = 0; i < ids.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(ChunkBytes got, chunks().Get(ids[i]));
    EXPECT_TRUE(*got == bytes[i]) << i;
  }
}

TEST_F(SettleTest, DeferredChunksReadBackAndSettleCompressesThem) {
  const std::string day1 = DumpText(kDumpBytes, 1);
  const uint64_t raw_stored = Dump("dump.sql", day1);
  const Generation g1 = store_->latest();
  EXPECT_GT(chunks().counters().chunks_deferred.load(), 0u);
  // Stored uncompressed: the packs hold at least the dump.
  EXPECT_GE(raw_stored, day1.size());
  std::map<Codec, uint64_t> codecs = Codecs();
  EXPECT_GT(codecs[Codec::kRaw], 0u);
  EXPECT_EQ(codecs[Codec::kZstd], 0u);
  ASSERT_OK_AND_ASSIGN(std::string got, ReadAt(g1, "dump.sql"));
  EXPECT_TRUE(got == day1);
  const uint64_t state_before = States().back().bytes_stored;
  EXPECT_GE(state_before, day1.size());

  ASSERT_NO_FATAL_FAILURE(Reopen());  // Settle keys are durable.
  ASSERT_OK_AND_ASSIGN(SettleStats s, store_->Settle(UINT64_MAX));
  EXPECT_TRUE(s.done);
  EXPECT_EQ(s.chunks, codecs[Codec::kRaw]);
  EXPECT_EQ(s.damaged, 0u);
  EXPECT_EQ(s.raw_bytes, day1.size());
  EXPECT_LT(s.stored_bytes * 2, s.raw_bytes);  // SQL text compresses about 3x.
  codecs = Codecs();
  EXPECT_EQ(codecs[Codec::kRaw], 0u);
  EXPECT_EQ(codecs[Codec::kZstd], s.chunks);
  // The state now counts what its chunks take compressed.
  const uint64_t state_after = States().back().bytes_stored;
  EXPECT_EQ(state_after, state_before - (s.raw_bytes - s.stored_bytes));

  // Nothing left: a second pass changes nothing.
  ASSERT_OK_AND_ASSIGN(SettleStats again, store_->Settle(UINT64_MAX));
  EXPECT_TRUE(again.done);
  EXPECT_EQ(again.chunks + again.unchanged, 0u);

  ASSERT_NO_FATAL_FAILURE(Reopen());  // From the packs only.
  ASSERT_OK_AND_ASSIGN(got, ReadAt(g1, "dump.sql"));
  EXPECT_TRUE(got == day1);
  ExpectClean();
}

TEST_F(SettleTest, SettleAllFreesTheUncompressedRecords) {
  const std::string day1 = DumpText(kDumpBytes, 1);
  Dump("dump.sql", day1);
  const uint64_t before = PacksBytes(packs_);
  ASSERT_OK_AND_ASSIGN(auto result, store_->SettleAll(GcOptions{}));
  EXPECT_TRUE(result.first.done);
  ASSERT_TRUE(result.second.has_value());
  const uint64_t after = PacksBytes(packs_);
  // The uncompressed records were in the pack being appended to: SettleAll
  // starts a new one so GC can remove it.
  EXPECT_GE(result.second->packs_deleted + result.second->packs_rewritten, 1u);
  EXPECT_LT(after * 2, before) << before << " -> " << after;
  ASSERT_OK_AND_ASSIGN(std::string got, ReadAt(store_->latest(), "dump.sql"));
  EXPECT_TRUE(got == day1);
  ExpectClean();
}

TEST_F(SettleTest, ADeferredLaterDayBecomesDeltasAgainstTheDayBefore) {
  ASSERT_NO_FATAL_FAILURE(ReopenWith(SIZE_MAX));  // Day 1 compressed at once.
  const std::string day1 = DumpText(kDumpBytes, 1), day2 = DumpText(kDumpBytes, 2);
  Dump("dump.sql", day1);
  const Generation g1 = store_->latest();
  EndState();
  ASSERT_NO_FATAL_FAILURE(ReopenWith(0));  // Day 2 deferred.
  Dump("dump.sql", day2);
  const Generation g2 = store_->latest();
  EXPECT_EQ(chunks().counters().chunks_delta.load(), 0u);
  ASSERT_OK_AND_ASSIGN(SettleStats s, store_->Settle(UINT64_MAX));
  EXPECT_TRUE(s.done);
  EXPECT_GT(s.deltas, 0u);
  EXPECT_LT(s.stored_bytes * 5, s.raw_bytes) << s.raw_bytes << " -> " << s.stored_bytes;
  const std::map<ChunkId, ChunkId> deltas = DeltasOf("dump.sql");
  EXPECT_EQ(deltas.size(), s.deltas);
  for (const auto& [id, base] : deltas) {
    ASSERT_OK_AND_ASSIGN(std::optional<ChunkLocation> loc, chunks().Locate(base));
    ASSERT_TRUE(loc.has_value());
    EXPECT_EQ(loc->codec, Codec::kZstd) << base.Hex();
  }
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ASSERT_OK_AND_ASSIGN(std::string got1, ReadAt(g1, "dump.sql"));
  ASSERT_OK_AND_ASSIGN(std::string got2, ReadAt(g2, "dump.sql"));
  EXPECT_TRUE(got1 == day1);
  EXPECT_TRUE(got2 == day2);
  ExpectClean();
}

TEST_F(SettleTest, AnUncompressedChunkIsNeverABaseSoSettlingItKeepsDepthOne) {
  // Day 1 compressed; day 2 deferred (its chunks will be settled into deltas
  // against day 1); day 3 written compressed while day 2 is still raw: day
  // 2's chunks must not serve as its bases, or settling day 2 would give
  // day 3 deltas whose base is a delta.
  ASSERT_NO_FATAL_FAILURE(ReopenWith(SIZE_MAX));
  std::vector<std::string> days;
  std::vector<Generation> gens;
  for (int day = 1; day <= 3; ++day) {
    if (day > 1) {
      ASSERT_NO_FATAL_FAILURE(ReopenWith(day == 2 ? 0 : SIZE_MAX));
    }
    days.push_back(DumpText(kDumpBytes, day));
    Dump("dump.sql", days.back());
    gens.push_back(store_->latest());
    EndState();
  }
  ASSERT_OK_AND_ASSIGN(SettleStats s, store_->Settle(UINT64_MAX));
  EXPECT_GT(s.deltas, 0u);
  // Every delta's base is a plain zstd chunk.
  uint64_t deltas = 0;
  const Status scanned =
      store_->Scan(Store::Family::kChunks, [&](std::string_view key, std::string_view v) {
        Result<ChunkLocation> loc = DecodeChunkLocation(v, key);
        EXPECT_OK(loc);
        if (!loc.ok() || loc->codec != Codec::kZstdDelta) return true;
        deltas++;
        Result<std::optional<ChunkLocation>> base = chunks().Locate(loc->base);
        EXPECT_OK(base);
        EXPECT_TRUE(base.ok() && *base && (*base)->codec == Codec::kZstd);
        return true;
      });
  ASSERT_OK(scanned);
  EXPECT_GE(deltas, s.deltas);
  ASSERT_NO_FATAL_FAILURE(Reopen());
  for (size_t i = 0; i < days.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(std::string got, ReadAt(gens[i], "dump.sql"));
    EXPECT_TRUE(got == days[i]) << "day " << i + 1;
  }
  ExpectClean();
}

TEST_F(SettleTest, TheSettlerCompressesByItselfOnceTheStoreIsIdle) {
  ASSERT_NO_FATAL_FAILURE(ReopenWith(0, /*settle_when_idle=*/true));
  const std::string day1 = DumpText(kDumpBytes, 1);
  Dump("dump.sql", day1);
  ASSERT_GT(Codecs()[Codec::kRaw], 0u);
  // Functional, not a timing check: the deadline only bounds a hang.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (Codecs()[Codec::kRaw] > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(Codecs()[Codec::kRaw], 0u);
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ASSERT_OK_AND_ASSIGN(std::string got, ReadAt(store_->latest(), "dump.sql"));
  EXPECT_TRUE(got == day1);
  ExpectClean();
}

TEST_F(SettleTest, AChunkPutAgainWhileUncompressedStaysOneEntry) {
  // The same bytes in a second file dedup against the uncompressed chunks;
  // settling moves the one entry both files use.
  const std::string day1 = DumpText(kDumpBytes, 1);
  Dump("a.sql", day1);
  const uint64_t deferred = chunks().counters().chunks_deferred.load();
  Dump("b.sql", day1);
  EXPECT_EQ(chunks().counters().chunks_deferred.load(), deferred);  // All duplicates.
  ASSERT_OK_AND_ASSIGN(SettleStats s, store_->Settle(UINT64_MAX));
  EXPECT_EQ(s.chunks, deferred);
  ASSERT_NO_FATAL_FAILURE(Reopen());
  for (const char* name : {"a.sql", "b.sql"}) {
    ASSERT_OK_AND_ASSIGN(std::string got, ReadAt(store_->latest(), name));
    EXPECT_TRUE(got == day1) << name;
  }
  ExpectClean();
}

}  // namespace
}  // namespace snapfs::store
