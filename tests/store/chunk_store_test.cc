#include "store/chunk_store.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "store/store.h"
#include "tests/store/test_util.h"

namespace snapfs::store {
namespace {

using testing::SeededBytes;

class ChunkStoreTest : public testing::StoreTestBase {
 protected:
  ChunkStore& chunks() { return store_->chunks(); }

  ChunkId IdOf(const std::string& bytes) {
    return chunks().Id(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }
  ChunkStore::PutResult Put(const std::string& bytes) {
    Result<ChunkStore::PutResult> r = chunks().Put(IdOf(bytes), bytes);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : ChunkStore::PutResult::kQueued;
  }
  // Puts `bytes` (if not queued yet), waits until it is stored and commits a
  // file whose content is that one chunk, listing it as unindexed.
  void CommitFileOf(const std::string& bytes) {
    const ChunkId id = IdOf(bytes);
    ASSERT_OK(chunks().Put(id, bytes));
    ASSERT_OK(chunks().WaitStored({&id, 1}, nullptr));
    const Ino ino = store_->AllocateIno();
    InodeRecord rec;
    rec.mode = 0100644;
    rec.nlink = 1;
    rec.size = bytes.size();
    Mutation m;
    m.PutInode(ino, rec);
    m.PutContent(ino, {Extent{0, static_cast<uint32_t>(bytes.size()), 0, id}}, {id});
    CommitOp(m, Op::kWrite, ino);
  }
  std::optional<ChunkLocation> Locate(const std::string& bytes) {
    Result<std::optional<ChunkLocation>> loc = chunks().Locate(IdOf(bytes));
    EXPECT_TRUE(loc.ok()) << loc.status().ToString();
    return loc.ok() ? *loc : std::nullopt;
  }

  const std::string bytes_ = SeededBytes(100000, 1);
};

TEST_F(ChunkStoreTest, PutThenGetReturnsTheBytesBeforeTheyAreIndexed) {
  EXPECT_EQ(Put(bytes_), ChunkStore::PutResult::kQueued);
  ASSERT_OK_AND_ASSIGN(ChunkBytes got, chunks().Get(IdOf(bytes_)));
  EXPECT_EQ(*got, bytes_);
  EXPECT_EQ(chunks().counters().chunks_new.load(), 1u);
  EXPECT_EQ(chunks().counters().raw_bytes_new.load(), bytes_.size());
}

// Put() takes a view of the caller's bytes (FileContent's overlay, reused as
// soon as the chunk is cut): a new chunk must be copied before Put returns.
TEST_F(ChunkStoreTest, PutKeepsItsOwnCopyOfANewChunk) {
  std::string buffer = bytes_;
  const ChunkId id = IdOf(buffer);
  ASSERT_OK_AND_ASSIGN(ChunkStore::PutResult put, chunks().Put(id, buffer));
  EXPECT_EQ(put, ChunkStore::PutResult::kQueued);
  buffer.assign(buffer.size(), 'x');  // The caller's memory moves on.
  ASSERT_OK_AND_ASSIGN(ChunkBytes queued, chunks().Get(id));
  EXPECT_EQ(*queued, bytes_);
  ASSERT_OK(chunks().WaitStored({&id, 1}, nullptr));
  ASSERT_NO_FATAL_FAILURE(CommitFileOf(bytes_));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ASSERT_OK_AND_ASSIGN(ChunkBytes stored, chunks().Get(id));
  EXPECT_EQ(*stored, bytes_);
}

// Queued chunks are copied one after another into shared 1 MiB blocks (a
// chunk larger than a block gets its own buffer): no copy may overlap
// another or outlive its block while the chunk is still queued.
TEST_F(ChunkStoreTest, QueuedCopiesOfManySizesEachReadBackExact) {
  std::vector<std::string> originals;
  std::vector<ChunkId> ids;
  std::string buffer;
  for (size_t i = 0; i < 48; ++i) {
    const size_t size = i == 20 ? (3u << 20) + 7 : 1 + (i * 48611) % 262144;
    originals.push_back(SeededBytes(size, 100 + i));
    buffer = originals.back();
    ids.push_back(IdOf(buffer));
    ASSERT_OK_AND_ASSIGN(ChunkStore::PutResult put, chunks().Put(ids.back(), buffer));
    EXPECT_EQ(put, ChunkStore::PutResult::kQueued);
    buffer.assign(buffer.size(), 'x');  // The caller's memory moves on.
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(ChunkBytes got, chunks().Get(ids[i]));
    EXPECT_EQ(*got, originals[i]) << "chunk " << i;
  }
  ASSERT_OK(chunks().WaitStored(ids, nullptr));
  for (const std::string& bytes : originals) ASSERT_NO_FATAL_FAILURE(CommitFileOf(bytes));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  for (size_t i = 0; i < ids.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(ChunkBytes got, chunks().Get(ids[i]));
    EXPECT_EQ(*got, originals[i]) << "chunk " << i;
  }
}

TEST_F(ChunkStoreTest, GetAfterCommitAndReopenReadsThePack) {
  ASSERT_NO_FATAL_FAILURE(CommitFileOf(bytes_));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ASSERT_OK_AND_ASSIGN(ChunkBytes got, chunks().Get(IdOf(bytes_)));
  EXPECT_EQ(*got, bytes_);
}

TEST_F(ChunkStoreTest, WaitStoredReportsTheStoredSize) {
  const std::string text(200000, 'z');
  EXPECT_EQ(Put(text), ChunkStore::PutResult::kQueued);
  const ChunkId id = IdOf(text);
  uint64_t stored = 0;
  ASSERT_OK(chunks().WaitStored({&id, 1}, &stored));
  EXPECT_GT(stored, 0u);
  EXPECT_LT(stored, text.size() / 10);  // Compressed.
  EXPECT_EQ(chunks().counters().stored_bytes.load(), stored);
  ASSERT_NO_FATAL_FAILURE(CommitFileOf(text));
  const std::optional<ChunkLocation> loc = Locate(text);
  ASSERT_TRUE(loc.has_value());
  EXPECT_EQ(loc->codec, Codec::kZstd);
  EXPECT_EQ(loc->stored_len, stored);
  EXPECT_EQ(loc->raw_len, text.size());
}

TEST_F(ChunkStoreTest, IndexEntryAppearsOnlyAfterACommitThatListsTheChunk) {
  Put(bytes_);
  const ChunkId id = IdOf(bytes_);
  ASSERT_OK(chunks().WaitStored({&id, 1}, nullptr));
  EXPECT_FALSE(Locate(bytes_).has_value());
  // A commit that does not list the chunk adds no entry.
  Mutation m;
  m.PutDirent(kRootIno, "x", DirentRecord{0, 0});
  CommitOp(m, Op::kUnlink, kRootIno);
  EXPECT_FALSE(Locate(bytes_).has_value());
  ASSERT_NO_FATAL_FAILURE(CommitFileOf(bytes_));
  const std::optional<ChunkLocation> loc = Locate(bytes_);
  ASSERT_TRUE(loc.has_value());
  EXPECT_EQ(loc->raw_len, bytes_.size());
  EXPECT_GE(loc->pack, 1u);
  EXPECT_GE(loc->offset, kPackHeaderSize);
}

TEST_F(ChunkStoreTest, SecondPutOfAQueuedChunkIsPendingAndNotStoredAgain) {
  EXPECT_EQ(Put(bytes_), ChunkStore::PutResult::kQueued);
  EXPECT_EQ(Put(bytes_), ChunkStore::PutResult::kPending);
  EXPECT_EQ(chunks().counters().chunks_new.load(), 1u);
  EXPECT_EQ(chunks().counters().chunks_dup.load(), 1u);
}

TEST_F(ChunkStoreTest, PutOfAnIndexedChunkIsStoredWithoutReadingThePack) {
  ASSERT_NO_FATAL_FAILURE(CommitFileOf(bytes_));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  // No pack can be read any more: Put must answer from the index alone.
  for (const auto& e : std::filesystem::directory_iterator(path_ + "/packs"))
    std::filesystem::remove(e.path());
  EXPECT_EQ(Put(bytes_), ChunkStore::PutResult::kStored);
  EXPECT_EQ(chunks().counters().chunks_new.load(), 0u);
  EXPECT_EQ(chunks().counters().chunks_dup.load(), 1u);
}

TEST_F(ChunkStoreTest, FlippedPackByteIsCorruptionNamingTheChunk) {
  ASSERT_NO_FATAL_FAILURE(CommitFileOf(bytes_));
  const std::optional<ChunkLocation> loc = Locate(bytes_);
  ASSERT_TRUE(loc.has_value());
  store_.reset();
  testing::XorFileByte(PackPathOf(loc->pack), loc->offset + kRecordHeaderSize + 500, 0x20);
  ASSERT_NO_FATAL_FAILURE(Reopen());
  Result<ChunkBytes> got = chunks().Get(IdOf(bytes_));
  ASSERT_EQ(got.status().code(), Code::kCorruption) << got.status().ToString();
  EXPECT_NE(got.status().message().find(IdOf(bytes_).Hex()), std::string::npos)
      << got.status().message();
  EXPECT_EQ(chunks().counters().corrupt_reads.load(), 1u);
}

// A record rewritten with other bytes and matching checksums (what a bug or
// a malicious edit could leave) still fails: the raw bytes must hash to the id.
TEST_F(ChunkStoreTest, RecordWhoseBytesDoNotHashToTheIdIsCorruption) {
  ASSERT_NO_FATAL_FAILURE(CommitFileOf(bytes_));
  const std::optional<ChunkLocation> loc = Locate(bytes_);
  ASSERT_TRUE(loc.has_value());
  ASSERT_EQ(loc->codec, Codec::kRaw);
  store_.reset();
  const std::string path = PackPathOf(loc->pack);
  std::string pack = testing::ReadWholeFile(path);
  std::string other = bytes_;
  other[7] ^= 1;
  pack.replace(loc->offset + kRecordHeaderSize, other.size(), other);
  const uint64_t hash = XXH3_64bits(other.data(), other.size());
  for (int i = 0; i < 8; ++i)
    pack[loc->offset + 37 + i] = static_cast<char>(hash >> (56 - 8 * i));
  testing::WriteWholeFile(path, pack);
  ASSERT_NO_FATAL_FAILURE(Reopen());
  Result<ChunkBytes> got = chunks().Get(IdOf(bytes_));
  ASSERT_EQ(got.status().code(), Code::kCorruption) << got.status().ToString();
  EXPECT_NE(got.status().message().find(IdOf(bytes_).Hex()), std::string::npos);
  EXPECT_EQ(chunks().counters().corrupt_reads.load(), 1u);
}

// Chunks a sequential reader has read through leave the cache first, and
// only a short queue of them stays: damaged records behind them show which
// are still served from the cache.
TEST_F(ChunkStoreTest, ChunksReadThroughAreDroppedOnceTheirQueueIsFull) {
  const std::string a = SeededBytes(100000, 11), b = SeededBytes(100000, 12);
  ASSERT_NO_FATAL_FAILURE(CommitFileOf(a));
  ASSERT_NO_FATAL_FAILURE(CommitFileOf(b));
  OpenOptions options;
  options.chunk_cache_bytes = 1 << 20;  // The read-through queue: 128 KiB, one of them.
  ASSERT_NO_FATAL_FAILURE(Reopen(options));
  ASSERT_OK(chunks().Get(IdOf(a)));
  ASSERT_OK(chunks().Get(IdOf(b)));
  for (const std::string* bytes : {&a, &b}) {
    const std::optional<ChunkLocation> loc = Locate(*bytes);
    ASSERT_TRUE(loc.has_value());
    ASSERT_NO_FATAL_FAILURE(
        testing::XorFileByte(PackPathOf(loc->pack), loc->offset + kRecordHeaderSize + 500, 0x20));
  }
  const ChunkId ida = IdOf(a), idb = IdOf(b);
  chunks().ReadThrough({&ida, 1});
  EXPECT_OK(chunks().Get(ida));  // Still cached.
  chunks().ReadThrough({&idb, 1});
  EXPECT_CODE(chunks().Get(ida), Code::kCorruption);  // Dropped: the oldest read through.
  ASSERT_OK_AND_ASSIGN(ChunkBytes got, chunks().Get(idb));
  EXPECT_EQ(*got, b);
}

TEST_F(ChunkStoreTest, GetOfAnUnknownChunkIsNotFound) {
  EXPECT_CODE(chunks().Get(IdOf("never stored")), Code::kNotFound);
}

TEST_F(ChunkStoreTest, ReadOnlyStoreRefusesPut) {
  ASSERT_NO_FATAL_FAILURE(CommitFileOf(bytes_));
  OpenOptions ro;
  ro.read_only = true;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> reader, Store::Open(path_, ro));
  const std::string other = SeededBytes(1000, 2);
  EXPECT_CODE(reader->chunks().Put(IdOf(other), other),
              Code::kReadOnly);
  ASSERT_OK_AND_ASSIGN(ChunkBytes got, reader->chunks().Get(IdOf(bytes_)));
  EXPECT_EQ(*got, bytes_);
}

// Two threads put the same new chunk while Put() blocks on a full queue:
// the chunk is queued exactly once.
TEST_F(ChunkStoreTest, ConcurrentPutsOfOneChunkBehindAFullQueueQueueItOnce) {
  OpenOptions one_worker;
  one_worker.compress_threads = 1;
  ASSERT_NO_FATAL_FAILURE(Reopen(one_worker));
  // One chunk as big as the queue: later Puts block until it is compressed.
  Put(SeededBytes(ChunkStoreOptions{}.max_queued_bytes, 1000));
  std::vector<ChunkStore::PutResult> results(2);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) threads.emplace_back([&, t] { results[t] = Put(bytes_); });
  for (auto& t : threads) t.join();
  EXPECT_EQ(chunks().counters().chunks_new.load(), 2u);
  EXPECT_EQ(chunks().counters().chunks_dup.load(), 1u);
  EXPECT_NE(results[0], results[1]);  // One kQueued, one kPending.
  const ChunkId id = IdOf(bytes_);
  ASSERT_OK(chunks().WaitStored({&id, 1}, nullptr));
}

}  // namespace
}  // namespace snapfs::store
