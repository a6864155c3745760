#include "store/file_content.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "store/store.h"
#include "tests/store/test_util.h"

namespace snapfs::store {
namespace {

using testing::ChunkLengths;
using testing::SeededBytes;

constexpr uint64_t kKiB = 1024, kMiB = 1024 * kKiB, kGiB = 1024 * kMiB;

std::set<ChunkId> IdsOf(const std::vector<Extent>& extents) {
  std::set<ChunkId> ids;
  for (const Extent& e : extents) ids.insert(e.id);
  return ids;
}

class FileContentTest : public testing::StoreTestBase {
 protected:
  std::unique_ptr<FileContent> NewFile(FileContentOptions options = {}) {
    return std::make_unique<FileContent>(&store_->chunks(), &store_->chunker(),
                                         std::vector<Extent>{}, 0, options);
  }
  uint64_t ChunksNew() { return store_->chunks().counters().chunks_new.load(); }

  // Writes `data` at `offset` in pieces of `piece` bytes.
  void WriteInPieces(FileContent& f, uint64_t offset, const std::string& data, size_t piece) {
    for (size_t pos = 0; pos < data.size(); pos += piece)
      ASSERT_OK(f.Write(offset + pos, data.data() + pos, std::min(piece, data.size() - pos)));
  }
  std::string Read(FileContent& f, uint64_t offset, size_t len) {
    std::string out(len, '\x55');
    Result<size_t> n = f.Read(offset, len, out.data());
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    out.resize(n.ok() ? *n : 0);
    return out;
  }
  std::string ReadAll(FileContent& f) { return Read(f, 0, f.size()); }

  // After Flush: extents ordered, non-overlapping, within the size, each a
  // whole stored chunk.
  void ExpectWholeChunkExtents(const FileContent& f) {
    uint64_t prev_end = 0;
    for (const Extent& e : f.extents()) {
      EXPECT_GE(e.offset, prev_end);
      EXPECT_EQ(e.chunk_offset, 0u);
      Result<ChunkBytes> chunk = store_->chunks().Get(e.id);
      ASSERT_TRUE(chunk.ok()) << chunk.status().ToString();
      EXPECT_EQ((*chunk)->size(), e.length) << "extent at " << e.offset << " is part of a chunk";
      prev_end = e.end();
    }
    EXPECT_LE(prev_end, f.size());
  }

  // Flushes `f`, commits it as inode `ino` and returns a FileContent built
  // afresh from what the store now holds.
  std::unique_ptr<FileContent> CommitAndReload(FileContent& f, Ino ino,
                                               FileContentOptions options = {}) {
    uint64_t stored = 0;
    Status st = f.Flush(&stored);
    EXPECT_TRUE(st.ok()) << st.ToString();
    Mutation m;
    m.PutInode(ino, InodeRecord{Op::kWrite, 0100644, 0, 0, 1, f.size(), 0, 0, 0, 0, 0, 0, ""});
    m.PutContent(ino, f.extents(), f.unindexed());
    LogRecord log;
    log.op = Op::kWrite;
    log.ino = ino;
    log.bytes_written = f.bytes_written();
    log.bytes_stored = stored;
    Result<Generation> g = store_->Commit(m, log, {});
    EXPECT_TRUE(g.ok()) << g.status().ToString();
    f.MarkCommitted();
    EXPECT_FALSE(f.dirty());
    return Load(ino, options);
  }
  std::unique_ptr<FileContent> Load(Ino ino, FileContentOptions options = {}) {
    Result<std::optional<InodeRecord>> rec = store_->GetInode(ino, kLatest);
    EXPECT_TRUE(rec.ok() && rec->has_value());
    if (!rec.ok() || !rec->has_value()) return nullptr;
    Result<std::vector<Extent>> extents = store_->GetExtents(ino, **rec);
    EXPECT_TRUE(extents.ok()) << extents.status().ToString();
    if (!extents.ok()) return nullptr;
    return std::make_unique<FileContent>(&store_->chunks(), &store_->chunker(),
                                         std::move(extents).value(), (*rec)->size, options);
  }
};

// ---------------------------------------------------------------------------
// Sequential writes.

class SequentialWriteTest : public FileContentTest,
                            public ::testing::WithParamInterface<size_t> {};

TEST_P(SequentialWriteTest, FlushLeavesContiguousWholeChunksThatReadBackExactly) {
  const std::string data = SeededBytes(8 * kMiB + 12345, 1);
  auto f = NewFile();
  ASSERT_NO_FATAL_FAILURE(WriteInPieces(*f, 0, data, GetParam()));
  EXPECT_EQ(f->size(), data.size());
  EXPECT_EQ(f->bytes_written(), data.size());
  ASSERT_OK(f->Flush(nullptr));
  // The same boundaries as chunking the whole file at once.
  std::vector<uint64_t> lengths;
  uint64_t at = 0;
  for (const Extent& e : f->extents()) {
    EXPECT_EQ(e.offset, at);
    lengths.push_back(e.length);
    at = e.end();
  }
  EXPECT_EQ(at, data.size());
  EXPECT_EQ(lengths, ChunkLengths(store_->chunker(), data));
  ASSERT_NO_FATAL_FAILURE(ExpectWholeChunkExtents(*f));
  EXPECT_EQ(ReadAll(*f), data);
  auto reloaded = CommitAndReload(*f, 2);
  EXPECT_EQ(reloaded->extents(), f->extents());
  EXPECT_EQ(ReadAll(*reloaded), data);
}

INSTANTIATE_TEST_SUITE_P(Pieces, SequentialWriteTest, ::testing::Values(8 * kKiB, 1 * kMiB),
                         [](const auto& p) { return std::to_string(p.param / kKiB) + "KiB"; });

// ---------------------------------------------------------------------------
// Random operations against a std::string model.

struct RandomOpsCase {
  const char* name;
  FileContentOptions options;
  uint64_t seed;
};

class RandomOpsTest : public FileContentTest,
                      public ::testing::WithParamInterface<RandomOpsCase> {};

TEST_P(RandomOpsTest, ContentMatchesAStringModelAfterEveryOperation) {
  const FileContentOptions options = GetParam().options;
  std::mt19937_64 rng(GetParam().seed);
  auto below = [&](uint64_t n) { return n == 0 ? 0 : rng() % n; };
  constexpr Ino kIno = 2;
  std::string model;
  auto f = NewFile(options);
  for (int step = 0; step < 400; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    const uint64_t op = below(100);
    std::string what;
    if (op < 45) {
      // Mostly near existing data; sometimes past the end, leaving a hole.
      const uint64_t offset = below(model.size() + (below(4) == 0 ? 600 * kKiB : 1));
      const uint64_t len = 1 + below(below(3) == 0 ? 400 * kKiB : 5000);
      const std::string data = SeededBytes(len, rng());
      what = "write " + std::to_string(len) + " at " + std::to_string(offset);
      ASSERT_OK(f->Write(offset, data.data(), data.size()));
      if (model.size() < offset + len) model.resize(offset + len, '\0');
      model.replace(offset, len, data);
    } else if (op < 57) {
      const uint64_t size = model.size() > 3 * kMiB ? below(model.size())
                                                    : below(model.size() * 5 / 4 + 70000);
      what = "truncate to " + std::to_string(size);
      ASSERT_OK(f->Truncate(size));
      model.resize(size, '\0');
    } else if (op < 77) {
      const uint64_t offset = below(model.size() + 1000);
      const uint64_t len = below(300 * kKiB);
      what = "read " + std::to_string(len) + " at " + std::to_string(offset);
      const std::string want = offset < model.size() ? model.substr(offset, len) : "";
      ASSERT_EQ(Read(*f, offset, len), want) << what;
    } else if (op < 90) {
      what = "flush";
      ASSERT_OK(f->Flush(nullptr));
      ASSERT_NO_FATAL_FAILURE(ExpectWholeChunkExtents(*f)) << what;
    } else if (op < 97) {
      what = "commit";
      f = CommitAndReload(*f, kIno, options);
      ASSERT_NE(f, nullptr);
    } else {
      what = "commit and reopen the store";
      CommitAndReload(*f, kIno, options);
      f.reset();
      ASSERT_NO_FATAL_FAILURE(Reopen());
      f = Load(kIno, options);
      ASSERT_NE(f, nullptr);
    }
    SCOPED_TRACE(what);
    ASSERT_EQ(f->size(), model.size());
    ASSERT_TRUE(ReadAll(*f) == model) << "content differs from the model";
  }
}

FileContentOptions Thresholds(size_t stream, size_t dirty) {
  FileContentOptions o;
  o.stream_threshold = stream;
  o.max_dirty = dirty;
  return o;
}

FileContentOptions Blocks(size_t block_size, FileContentOptions o = {}) {
  o.block_size = block_size;
  return o;
}

INSTANTIATE_TEST_SUITE_P(Options, RandomOpsTest,
                         ::testing::Values(
                             RandomOpsCase{"Default", {}, 1},
                             RandomOpsCase{"DefaultOtherSeed", {}, 2},
                             RandomOpsCase{"SmallThresholds", Thresholds(64 * kKiB, 256 * kKiB), 3},
                             // Chunk after every write.
                             RandomOpsCase{"ChunkEveryWrite", Thresholds(1, 1), 4},
                             // Chunker windows (512 KiB) across many overlay blocks.
                             RandomOpsCase{"SmallBlocks", Blocks(4 * kKiB), 5},
                             RandomOpsCase{"SmallBlocksSmallThresholds",
                                           Blocks(16 * kKiB, Thresholds(64 * kKiB, 256 * kKiB)),
                                           6}),
                         [](const auto& p) { return std::string(p.param.name); });

// ---------------------------------------------------------------------------
// Dedup.

TEST_F(FileContentTest, SameContentWrittenTwiceStoresNoNewChunks) {
  const std::string data = SeededBytes(8 * kMiB, 2);
  auto first = NewFile();
  ASSERT_NO_FATAL_FAILURE(WriteInPieces(*first, 0, data, 1 * kMiB));
  CommitAndReload(*first, 2);
  const uint64_t chunks_after_first = ChunksNew();
  const uint64_t dups_after_first = store_->chunks().counters().chunks_dup.load();
  EXPECT_GT(chunks_after_first, 8 * kMiB / (256 * kKiB));

  auto second = NewFile();
  ASSERT_NO_FATAL_FAILURE(WriteInPieces(*second, 0, data, 1 * kMiB));
  uint64_t stored = 0;
  ASSERT_OK(second->Flush(&stored));
  EXPECT_EQ(ChunksNew(), chunks_after_first);
  EXPECT_EQ(stored, 0u);
  EXPECT_EQ(store_->chunks().counters().chunks_dup.load() - dups_after_first,
            second->extents().size());
  EXPECT_TRUE(second->unindexed().empty());  // Every chunk was indexed already.
  EXPECT_EQ(second->extents(), first->extents());
}

// A multi-threaded FUSE session can hand over a stream's writes out of order:
// the pieces after a late one must not be cut before it arrives.
TEST_F(FileContentTest, SameStreamArrivingOutOfOrderStoresNoNewChunks) {
  const std::string data = SeededBytes(24 * kMiB, 12);
  auto first = NewFile();
  ASSERT_NO_FATAL_FAILURE(WriteInPieces(*first, 0, data, 1 * kMiB));
  CommitAndReload(*first, 2);
  const uint64_t chunks_after_first = ChunksNew();

  // In groups of six 1 MiB pieces, the first of each group comes last.
  auto second = NewFile();
  for (size_t group = 0; group < 24; group += 6) {
    for (size_t piece : {1, 2, 3, 4, 5, 0}) {
      const size_t at = (group + piece) * kMiB;
      ASSERT_OK(second->Write(at, data.data() + at, kMiB));
    }
  }
  ASSERT_OK(second->Flush(nullptr));
  EXPECT_EQ(ReadAll(*second), data);
  EXPECT_EQ(ChunksNew(), chunks_after_first);
  EXPECT_EQ(second->extents(), first->extents());
}

// Chunks are cut in the overlay's blocks; windows across block boundaries
// must find the same cuts as the whole stream read at once.
TEST_F(FileContentTest, StreamOutOfOrderInSmallBlocksIsCutAsTheWholeStream) {
  const std::string data = SeededBytes(12 * kMiB + 777, 13);
  FileContentOptions options;
  options.block_size = 64 * kKiB;
  options.stream_threshold = 1 * kMiB;
  auto f = NewFile(options);
  const size_t piece = 300 * kKiB + 5;
  std::vector<size_t> order;
  for (size_t at = 0; at < data.size(); at += piece) order.push_back(at);
  for (size_t i = 0; i + 1 < order.size(); i += 4) std::swap(order[i], order[i + 1]);
  for (size_t at : order)
    ASSERT_OK(f->Write(at, data.data() + at, std::min(piece, data.size() - at)));
  EXPECT_EQ(ReadAll(*f), data);
  ASSERT_OK(f->Flush(nullptr));
  std::vector<uint64_t> lengths;
  for (const Extent& e : f->extents()) lengths.push_back(e.length);
  EXPECT_EQ(lengths, ChunkLengths(store_->chunker(), data));
  ASSERT_NO_FATAL_FAILURE(ExpectWholeChunkExtents(*f));
  EXPECT_EQ(ReadAll(*f), data);
}

TEST_F(FileContentTest, InsertNearTheStartOfACommittedFileStoresOnlyACoupleOfChunks) {
  const std::string before = SeededBytes(4 * kMiB, 3);
  auto f = NewFile();
  ASSERT_NO_FATAL_FAILURE(WriteInPieces(*f, 0, before, 1 * kMiB));
  f = CommitAndReload(*f, 2);
  const std::set<ChunkId> old_ids = IdsOf(f->extents());
  const uint64_t chunks_before = ChunksNew();

  // Rewrite the whole file with 100 bytes inserted at offset 1000.
  const std::string after = before.substr(0, 1000) + SeededBytes(100, 4) + before.substr(1000);
  ASSERT_NO_FATAL_FAILURE(WriteInPieces(*f, 0, after, 1 * kMiB));
  ASSERT_OK(f->Flush(nullptr));
  EXPECT_EQ(ReadAll(*f), after);
  const uint64_t new_chunks = ChunksNew() - chunks_before;
  EXPECT_GE(new_chunks, 1u);
  EXPECT_LE(new_chunks, 2u);
  size_t changed = 0;
  for (const Extent& e : f->extents()) changed += old_ids.count(e.id) == 0;
  EXPECT_EQ(changed, new_chunks);
}

TEST_F(FileContentTest, OverwriteInTheMiddleStoresOnlyTheChunkItTouches) {
  const std::string data = SeededBytes(4 * kMiB, 5);
  auto f = NewFile();
  ASSERT_NO_FATAL_FAILURE(WriteInPieces(*f, 0, data, 1 * kMiB));
  f = CommitAndReload(*f, 2);
  const std::vector<Extent> old = f->extents();
  const uint64_t chunks_before = ChunksNew();
  // 100 bytes inside one chunk, away from its ends.
  const Extent& target = old[old.size() / 2];
  const uint64_t at = target.offset + target.length / 2;
  const std::string patch = SeededBytes(100, 6);
  ASSERT_OK(f->Write(at, patch.data(), patch.size()));
  ASSERT_OK(f->Flush(nullptr));
  std::string want = data;
  want.replace(at, patch.size(), patch);
  EXPECT_EQ(ReadAll(*f), want);
  EXPECT_LE(ChunksNew() - chunks_before, 2u);
  // Every chunk before the edited one is unchanged.
  for (size_t i = 0; i < old.size() / 2; ++i) EXPECT_EQ(f->extents()[i], old[i]) << i;
}

// A new chunk is queued with a share of the overlay buffer it was cut from,
// not a copy. Writes that land on those bytes before the chunk is stored
// must leave the queued chunk as it was cut: a buffer the overlay still
// holds is copied before it is written, a released one is not reused.
TEST_F(FileContentTest, AQueuedChunkKeepsItsBytesWhenTheFileIsWrittenAgainBeforeItIsStored) {
  ChunkStore& chunks = store_->chunks();
  const std::string data = SeededBytes(6 * kMiB + 777, 7);
  auto f = NewFile();
  chunks.HoldWorkersForTesting(true);
  ASSERT_NO_FATAL_FAILURE(WriteInPieces(*f, 0, data, 1 * kMiB));
  const std::vector<Extent> queued = f->extents();  // Streamed past 4 MiB: cut and queued.
  ASSERT_GT(queued.size(), 10u);
  const uint64_t tail = queued.back().end();  // The bytes after it wait in the overlay.
  ASSERT_LT(tail, data.size());
  ASSERT_NE(tail % kMiB, 0u);  // So its block is shared by the queue and the overlay.
  std::string want = data;
  for (const uint64_t at : {tail - 5000, queued[3].offset + 10, uint64_t{0}}) {
    const std::string patch = SeededBytes(10000, at);
    ASSERT_OK(f->Write(at, patch.data(), patch.size()));
    want.replace(at, patch.size(), patch);
  }
  EXPECT_EQ(ReadAll(*f), want);  // The overlay has the new bytes, before any store.
  chunks.HoldWorkersForTesting(false);

  ASSERT_OK(f->Flush(nullptr));
  EXPECT_EQ(ReadAll(*f), want);
  ASSERT_NO_FATAL_FAILURE(ExpectWholeChunkExtents(*f));
  for (const Extent& e : queued) {
    Result<ChunkBytes> chunk = chunks.Get(e.id);
    ASSERT_TRUE(chunk.ok()) << chunk.status().ToString();
    EXPECT_EQ(**chunk, data.substr(e.offset, e.length)) << "chunk at " << e.offset;
  }
  f = CommitAndReload(*f, 3);
  EXPECT_EQ(ReadAll(*f), want);
}

// ---------------------------------------------------------------------------
// Holes, sizes, truncation.

TEST_F(FileContentTest, SparseFilePastFourGiBReadsZerosThenTheData) {
  const std::string data = SeededBytes(1 * kMiB, 7);
  const uint64_t at = 5 * kGiB;
  auto f = NewFile();
  ASSERT_OK(f->Write(at, data.data(), data.size()));
  auto check = [&](FileContent& c) {
    EXPECT_EQ(c.size(), at + data.size());
    EXPECT_EQ(Read(c, at - 1 * kMiB, 1 * kMiB), std::string(1 * kMiB, '\0'));
    EXPECT_EQ(Read(c, 0, 4096), std::string(4096, '\0'));
    EXPECT_EQ(Read(c, 4 * kGiB - 10, 20), std::string(20, '\0'));
    EXPECT_EQ(Read(c, at, data.size()), data);
    EXPECT_EQ(Read(c, at - 10, 20), std::string(10, '\0') + data.substr(0, 10));
    EXPECT_EQ(Read(c, at + data.size() - 10, 100), data.substr(data.size() - 10));
  };
  check(*f);
  ASSERT_OK(f->Flush(nullptr));
  ASSERT_FALSE(f->extents().empty());
  EXPECT_EQ(f->extents().front().offset, at);  // The hole is not stored.
  ASSERT_NO_FATAL_FAILURE(ExpectWholeChunkExtents(*f));
  check(*f);
  auto reloaded = CommitAndReload(*f, 2);
  check(*reloaded);
}

TEST_F(FileContentTest, TruncateIntoTheMiddleOfAChunkKeepsTheBytesBeforeIt) {
  const std::string data = SeededBytes(1 * kMiB, 8);
  auto f = NewFile();
  ASSERT_NO_FATAL_FAILURE(WriteInPieces(*f, 0, data, 64 * kKiB));
  f = CommitAndReload(*f, 2);
  ASSERT_GE(f->extents().size(), 3u);
  const Extent third = f->extents()[2];
  const uint64_t cut = third.offset + third.length / 2;
  ASSERT_OK(f->Truncate(cut));
  EXPECT_EQ(f->size(), cut);
  EXPECT_EQ(ReadAll(*f), data.substr(0, cut));
  EXPECT_EQ(Read(*f, cut, 100), "");
  ASSERT_OK(f->Flush(nullptr));
  ASSERT_NO_FATAL_FAILURE(ExpectWholeChunkExtents(*f));
  ASSERT_FALSE(f->extents().empty());
  EXPECT_EQ(f->extents().back().end(), cut);
  // Chunks before the cut are unchanged.
  EXPECT_EQ(f->extents()[0].id, Load(2)->extents()[0].id);
  auto reloaded = CommitAndReload(*f, 2);
  EXPECT_EQ(ReadAll(*reloaded), data.substr(0, cut));
  // Growing again reads zeros, not the old bytes.
  ASSERT_OK(reloaded->Truncate(cut + 5000));
  EXPECT_EQ(ReadAll(*reloaded), data.substr(0, cut) + std::string(5000, '\0'));
  auto regrown = CommitAndReload(*reloaded, 2);
  EXPECT_EQ(ReadAll(*regrown), data.substr(0, cut) + std::string(5000, '\0'));
}

TEST_F(FileContentTest, TruncateToZeroEmptiesTheFile) {
  const std::string data = SeededBytes(300 * kKiB, 9);
  auto f = NewFile();
  ASSERT_OK(f->Write(0, data.data(), data.size()));
  f = CommitAndReload(*f, 2);
  ASSERT_OK(f->Truncate(0));
  EXPECT_EQ(f->size(), 0u);
  ASSERT_OK(f->Flush(nullptr));
  EXPECT_TRUE(f->extents().empty());
  auto reloaded = CommitAndReload(*f, 2);
  EXPECT_EQ(reloaded->size(), 0u);
  EXPECT_TRUE(reloaded->extents().empty());
}

TEST_F(FileContentTest, ReadAtOrPastTheEndReturnsNothingAndReadsAreShortAtTheEnd) {
  auto f = NewFile();
  ASSERT_OK(f->Write(0, "hello", 5));
  EXPECT_EQ(Read(*f, 5, 10), "");
  EXPECT_EQ(Read(*f, 1000, 10), "");
  EXPECT_EQ(Read(*f, 3, 10), "lo");
}

TEST_F(FileContentTest, WriteOrTruncatePastTheLargestSizeIsTooBig) {
  auto f = NewFile();
  EXPECT_CODE(f->Write(uint64_t{1} << 62, "x", 1), Code::kTooBig);
  EXPECT_CODE(f->Write(UINT64_MAX - 2, "xyz", 3), Code::kTooBig);
  EXPECT_CODE(f->Truncate((uint64_t{1} << 62) + 1), Code::kTooBig);
  EXPECT_EQ(f->size(), 0u);
}

TEST_F(FileContentTest, BytesWrittenCountsWritesNotTruncates) {
  const std::string data = SeededBytes(200 * kKiB, 10);
  auto f = NewFile();
  EXPECT_FALSE(f->dirty());
  ASSERT_OK(f->Write(0, data.data(), data.size()));
  ASSERT_OK(f->Write(10, data.data(), 100));
  EXPECT_TRUE(f->dirty());
  EXPECT_EQ(f->bytes_written(), data.size() + 100);
  f = CommitAndReload(*f, 2);
  ASSERT_OK(f->Truncate(100 * kKiB + 7));  // Into a chunk: its head is re-written internally.
  EXPECT_TRUE(f->dirty());
  EXPECT_EQ(f->bytes_written(), 0u);
}

// ---------------------------------------------------------------------------
// ReadSlices: the zero-copy read of committed content.

// The bytes of `slices`, concatenated.
std::string Join(const std::vector<FileContent::Slice>& slices) {
  std::string out;
  for (const FileContent::Slice& s : slices) {
    EXPECT_LE(s.offset + s.length, s.chunk->size());
    out.append(*s.chunk, s.offset, s.length);
  }
  return out;
}

TEST_F(FileContentTest, ReadSlicesOfCommittedContentGiveTheBytesAcrossChunkBoundaries) {
  const std::string data = SeededBytes(2 * kMiB + 777, 11);
  auto f = NewFile();
  ASSERT_NO_FATAL_FAILURE(WriteInPieces(*f, 0, data, 128 * kKiB));
  f = CommitAndReload(*f, 2);
  ASSERT_GE(f->extents().size(), 4u);
  const Extent& second = f->extents()[1];
  const std::vector<std::pair<uint64_t, size_t>> reads = {
      {0, 128 * kKiB},                               // The first chunks.
      {second.offset - 1, 2},                        // One byte either side of a boundary.
      {second.offset, second.length},                // Exactly one chunk.
      {second.offset + 5, 3 * 64 * kKiB},            // Starts inside a chunk, spans several.
      {1 * kMiB + 3, 1 * kMiB},                      // 1 MiB requests, as the kernel sends.
      {data.size() - 100, 1 * kMiB},                 // Short at the end of the file.
      {0, data.size()}};
  for (const auto& [offset, len] : reads) {
    std::vector<FileContent::Slice> slices;
    Result<bool> sliced = f->ReadSlices(offset, len, &slices);
    ASSERT_OK(sliced.status());
    ASSERT_TRUE(*sliced) << offset;
    EXPECT_EQ(Join(slices), data.substr(offset, len)) << "read of " << len << " at " << offset;
    for (const FileContent::Slice& s : slices) EXPECT_GT(s.length, 0u);
  }
  for (uint64_t at : {uint64_t{data.size()}, uint64_t{data.size()} + 10}) {
    std::vector<FileContent::Slice> slices;
    Result<bool> sliced = f->ReadSlices(at, 4096, &slices);
    ASSERT_OK(sliced.status());
    EXPECT_TRUE(*sliced);
    EXPECT_TRUE(slices.empty()) << "read at " << at;
  }
}

TEST_F(FileContentTest, ReadSlicesLeaveDirtyBytesAndHolesToRead) {
  const std::string data = SeededBytes(512 * kKiB, 12);
  auto f = NewFile();
  ASSERT_OK(f->Write(1 * kMiB, data.data(), data.size()));  // After a 1 MiB hole.
  f = CommitAndReload(*f, 2);
  const ChunkBytes marker = std::make_shared<const std::string>("marker");
  auto expect_declined = [&](FileContent& c, uint64_t offset, size_t len) {
    std::vector<FileContent::Slice> slices = {{marker, 0, 6}};
    Result<bool> sliced = c.ReadSlices(offset, len, &slices);
    ASSERT_OK(sliced.status());
    EXPECT_FALSE(*sliced) << "read of " << len << " at " << offset;
    ASSERT_EQ(slices.size(), 1u);  // Untouched.
    EXPECT_EQ(slices[0].chunk, marker);
  };
  expect_declined(*f, 0, 4096);                  // In the hole.
  expect_declined(*f, 1 * kMiB - 10, 4096);      // The hole's end and the data.
  std::vector<FileContent::Slice> slices;
  Result<bool> sliced = f->ReadSlices(1 * kMiB + 10, 4096, &slices);  // Past the hole.
  ASSERT_OK(sliced.status());
  ASSERT_TRUE(*sliced);
  EXPECT_EQ(Join(slices), data.substr(10, 4096));

  ASSERT_OK(f->Write(1 * kMiB + 100, "dirty", 5));
  expect_declined(*f, 1 * kMiB + 10, 4096);      // Over the dirty bytes.
  std::string want = data;
  want.replace(100, 5, "dirty");
  EXPECT_EQ(Read(*f, 1 * kMiB, data.size()), want);
  f = CommitAndReload(*f, 2);
  slices.clear();
  sliced = f->ReadSlices(1 * kMiB, data.size(), &slices);
  ASSERT_OK(sliced.status());
  ASSERT_TRUE(*sliced);
  EXPECT_EQ(Join(slices), want);
}

}  // namespace
}  // namespace snapfs::store
