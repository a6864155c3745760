// The Vfs without FUSE: POSIX behaviour as a real disk shows it, exactly one
// generation per change, and no change ever altering an earlier generation.
#include "fs/vfs.h"
#include "fs/snapshot_dir.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/fs/vfs_test_util.h"

namespace snapfs::fs::testing {
namespace {

class VfsTest : public VfsTestBase {
 protected:
  // Open file `c` reads as `want` through its handle, and again once closed
  // (committed).
  void ExpectBeforeAndAfterClose(const Vfs::Created& c, const std::string& want) {
    ASSERT_OK_AND_ASSIGN(std::string before, ReadHandle(*vfs_, c.fh));
    EXPECT_TRUE(before == want);
    ASSERT_OK(vfs_->Release(c.fh));
    ASSERT_OK_AND_ASSIGN(std::string after, ReadFile(*vfs_, c.attr.ino));
    EXPECT_TRUE(after == want);
  }
};

// --- File content ------------------------------------------------------------

TEST_F(VfsTest, WrittenBytesReadBackBeforeAndAfterFlush) {
  const std::string data = SeededBytes(300'000, 1);  // Several chunks.
  ASSERT_OK_AND_ASSIGN(Vfs::Created c, vfs_->Create(kRootIno, "f", 0644, O_RDWR, kUser));
  ASSERT_OK_AND_ASSIGN(size_t n, vfs_->Write(c.fh, 0, data.data(), data.size()));
  EXPECT_EQ(n, data.size());
  ASSERT_OK_AND_ASSIGN(std::string before, ReadHandle(*vfs_, c.fh));
  EXPECT_TRUE(before == data);
  ASSERT_OK(vfs_->Flush(c.fh));
  ExpectBeforeAndAfterClose(c, data);
  ASSERT_OK_AND_ASSIGN(Attr a, vfs_->GetAttr(c.attr.ino));
  EXPECT_EQ(a.size, data.size());
}

TEST_F(VfsTest, WritesAtRandomOffsetsMatchAModel) {
  std::mt19937_64 rng(7);
  std::string model;
  ASSERT_OK_AND_ASSIGN(Vfs::Created c, vfs_->Create(kRootIno, "f", 0644, O_RDWR, kUser));
  for (int i = 0; i < 300; ++i) {
    const uint64_t offset = rng() % (3u << 20);  // Often past the end: a hole.
    const size_t len = 1 + rng() % 70'000;
    const std::string bytes = SeededBytes(len, 1000 + i);
    ASSERT_OK(vfs_->Write(c.fh, offset, bytes.data(), len));
    if (model.size() < offset + len) model.resize(offset + len, '\0');
    model.replace(offset, len, bytes);
    if (i % 37 == 0) {
      ASSERT_OK(vfs_->Flush(c.fh));
      ASSERT_OK_AND_ASSIGN(std::string got, ReadHandle(*vfs_, c.fh));
      ASSERT_TRUE(got == model) << "after write " << i;
    }
  }
  ExpectBeforeAndAfterClose(c, model);
}

TEST_F(VfsTest, SequentialWritesInKernelSizedPiecesReadBack) {
  const std::string data = SeededBytes(20 << 20, 11);  // Past the 4 MiB streaming threshold.
  constexpr size_t kPiece = 128 << 10;                  // What the kernel sends.
  ASSERT_OK_AND_ASSIGN(Vfs::Created c, vfs_->Create(kRootIno, "f", 0644, O_RDWR, kUser));
  for (size_t at = 0; at < data.size(); at += kPiece)
    ASSERT_OK(vfs_->Write(c.fh, at, data.data() + at, std::min(kPiece, data.size() - at)));
  ExpectBeforeAndAfterClose(c, data);
}

TEST_F(VfsTest, RandomWritesBeyondTheDirtyLimitMatchAModel) {
  // More than FileContent's 32 MiB of dirty bytes before the first flush.
  std::mt19937_64 rng(12);
  std::string model(48 << 20, '\0');
  ASSERT_OK_AND_ASSIGN(Vfs::Created c, vfs_->Create(kRootIno, "f", 0644, O_RDWR, kUser));
  for (int i = 0; i < 700; ++i) {
    const size_t len = 1 + rng() % (128 << 10);
    const uint64_t offset = rng() % (model.size() - len);
    const std::string bytes = SeededBytes(len, 5000 + i);
    ASSERT_OK(vfs_->Write(c.fh, offset, bytes.data(), len));
    model.replace(offset, len, bytes);
  }
  const uint64_t size = vfs_->GetAttr(c.attr.ino)->size;
  model.resize(size);
  ExpectBeforeAndAfterClose(c, model);
}

TEST_F(VfsTest, WritePastTheEndLeavesAHoleOfZeros) {
  ASSERT_OK_AND_ASSIGN(Ino ino, WriteFile(*vfs_, kRootIno, "f", "head"));
  ASSERT_OK_AND_ASSIGN(FileHandle fh, vfs_->Open(ino, O_WRONLY));
  ASSERT_OK(vfs_->Write(fh, 100'000, "tail", 4));
  ASSERT_OK(vfs_->Release(fh));
  ASSERT_OK_AND_ASSIGN(std::string got, ReadFile(*vfs_, ino));
  std::string want = "head" + std::string(100'000 - 4, '\0') + "tail";
  EXPECT_TRUE(got == want);
}

TEST_F(VfsTest, SparseFileBeyond4GiBReadsBack) {
  constexpr uint64_t kFar = 5ull << 30;
  const std::string data = SeededBytes(100'000, 2);
  ASSERT_OK_AND_ASSIGN(Vfs::Created c, vfs_->Create(kRootIno, "big", 0644, O_RDWR, kUser));
  ASSERT_OK(vfs_->Write(c.fh, kFar, data.data(), data.size()));
  ASSERT_OK(vfs_->Write(c.fh, 4ull << 30, "x", 1));  // Right at the 32-bit boundary.
  ASSERT_OK(vfs_->Release(c.fh));

  ASSERT_OK_AND_ASSIGN(Attr a, vfs_->GetAttr(c.attr.ino));
  EXPECT_EQ(a.size, kFar + data.size());
  ASSERT_OK_AND_ASSIGN(FileHandle fh, vfs_->Open(c.attr.ino, O_RDONLY));
  std::string buf(data.size() + 10, '?');
  ASSERT_OK_AND_ASSIGN(size_t n, vfs_->Read(fh, kFar, buf.size(), buf.data()));
  EXPECT_EQ(n, data.size());
  EXPECT_TRUE(buf.substr(0, n) == data);
  ASSERT_OK_AND_ASSIGN(n, vfs_->Read(fh, (4ull << 30) - 2, 4, buf.data()));
  EXPECT_EQ(std::string(buf.data(), n), std::string("\0\0x\0", 4));
  ASSERT_OK_AND_ASSIGN(n, vfs_->Read(fh, 3ull << 30, 8, buf.data()));
  EXPECT_EQ(std::string(buf.data(), n), std::string(8, '\0'));
  ASSERT_OK_AND_ASSIGN(n, vfs_->Read(fh, kFar + data.size(), 8, buf.data()));
  EXPECT_EQ(n, 0u);
  ASSERT_OK(vfs_->Release(fh));
}

TEST_F(VfsTest, ManySmallExtentsSpanSeveralPagesAndReadBack) {
  // Far-apart one-byte writes each become an extent: more than the 4096 of
  // one extent page.
  constexpr int kWrites = 5000;
  std::string model;
  ASSERT_OK_AND_ASSIGN(Vfs::Created c, vfs_->Create(kRootIno, "f", 0644, O_RDWR, kUser));
  for (int i = 0; i < kWrites; ++i) {
    const char byte = static_cast<char>('a' + i % 26);
    const uint64_t offset = static_cast<uint64_t>(i) * 100 + i % 7;
    ASSERT_OK(vfs_->Write(c.fh, offset, &byte, 1));
    model.resize(offset + 1, '\0');
    model[offset] = byte;
  }
  ASSERT_OK(vfs_->Release(c.fh));
  ASSERT_NO_FATAL_FAILURE(ReopenAll());
  ASSERT_OK_AND_ASSIGN(std::string got, ReadFile(*vfs_, c.attr.ino));
  EXPECT_TRUE(got == model);
  SetAttrRequest shrink;
  shrink.size = model.size() / 2;
  ASSERT_OK(vfs_->SetAttr(c.attr.ino, shrink));
  ASSERT_OK_AND_ASSIGN(got, ReadFile(*vfs_, c.attr.ino));
  EXPECT_TRUE(got == model.substr(0, model.size() / 2));
}

TEST_F(VfsTest, OpenWithTruncEmptiesTheFileAndRecordsAGeneration) {
  ASSERT_OK_AND_ASSIGN(Ino ino, WriteFile(*vfs_, kRootIno, "f", "old bytes"));
  const Generation before = latest();
  ASSERT_OK_AND_ASSIGN(FileHandle fh, vfs_->Open(ino, O_WRONLY | O_TRUNC));
  EXPECT_EQ(latest(), before + 1);
  ASSERT_OK_AND_ASSIGN(Attr a, vfs_->GetAttr(ino));
  EXPECT_EQ(a.size, 0u);
  ASSERT_OK(vfs_->Release(fh));
  ASSERT_OK_AND_ASSIGN(std::string now, ReadFile(*vfs_, ino));
  EXPECT_EQ(now, "");
  ASSERT_OK_AND_ASSIGN(std::string then, ReadFile(*PastAt(before), ino));
  EXPECT_EQ(then, "old bytes");
}

TEST_F(VfsTest, OpenReadOnlyWithTruncTruncatesAsLinuxDoes) {
  // Linux truncates on O_RDONLY | O_TRUNC, and with FUSE's atomic_o_trunc
  // the kernel leaves that truncation to our open.
  ASSERT_OK_AND_ASSIGN(Ino ino, WriteFile(*vfs_, kRootIno, "f", "old bytes"));
  ASSERT_OK_AND_ASSIGN(FileHandle fh, vfs_->Open(ino, O_RDONLY | O_TRUNC));
  ASSERT_OK(vfs_->Release(fh));
  ASSERT_OK_AND_ASSIGN(std::string now, ReadFile(*vfs_, ino));
  EXPECT_EQ(now, "");
}

TEST_F(VfsTest, TruncateBySetAttrShrinksAndGrowsWithZeros) {
  const std::string data = SeededBytes(200'000, 3);
  ASSERT_OK_AND_ASSIGN(Ino ino, WriteFile(*vfs_, kRootIno, "f", data));
  SetAttrRequest shrink;
  shrink.size = 70'000;  // Inside a chunk.
  ASSERT_OK_AND_ASSIGN(Attr a, vfs_->SetAttr(ino, shrink));
  EXPECT_EQ(a.size, 70'000u);
  SetAttrRequest grow;
  grow.size = 150'000;
  ASSERT_OK_AND_ASSIGN(a, vfs_->SetAttr(ino, grow));
  EXPECT_EQ(a.size, 150'000u);
  ASSERT_OK_AND_ASSIGN(std::string got, ReadFile(*vfs_, ino));
  EXPECT_TRUE(got == data.substr(0, 70'000) + std::string(80'000, '\0'));
}

TEST_F(VfsTest, TruncateOfAnOpenFileWithUnflushedWritesKeepsTheWrites) {
  ASSERT_OK_AND_ASSIGN(Vfs::Created c, vfs_->Create(kRootIno, "f", 0644, O_RDWR, kUser));
  ASSERT_OK(vfs_->Write(c.fh, 0, "0123456789", 10));
  SetAttrRequest shrink;
  shrink.size = 4;
  ASSERT_OK(vfs_->SetAttr(c.attr.ino, shrink));
  ASSERT_OK(vfs_->Write(c.fh, 6, "ab", 2));
  ASSERT_OK(vfs_->Release(c.fh));
  ASSERT_OK_AND_ASSIGN(std::string got, ReadFile(*vfs_, c.attr.ino));
  EXPECT_EQ(got, std::string("0123\0\0ab", 8));
}

TEST_F(VfsTest, FallocateGrowsTheFileWithZeros) {
  ASSERT_OK_AND_ASSIGN(Vfs::Created c, vfs_->Create(kRootIno, "f", 0644, O_RDWR, kUser));
  ASSERT_OK(vfs_->Write(c.fh, 0, "abc", 3));
  ASSERT_OK(vfs_->Fallocate(c.fh, 0, 0, 10));
  ASSERT_OK(vfs_->Fallocate(c.fh, 0, 0, 5));  // Never shrinks.
  EXPECT_CODE(vfs_->Fallocate(c.fh, 1 /* FALLOC_FL_KEEP_SIZE */, 0, 20), Code::kUnsupported);
  ASSERT_OK(vfs_->Release(c.fh));
  ASSERT_OK_AND_ASSIGN(std::string got, ReadFile(*vfs_, c.attr.ino));
  EXPECT_EQ(got, std::string("abc\0\0\0\0\0\0\0", 10));
}

TEST_F(VfsTest, ChmodKeepsTheFileType) {
  ASSERT_OK_AND_ASSIGN(Ino file, WriteFile(*vfs_, kRootIno, "f", "x"));
  ASSERT_OK_AND_ASSIGN(Attr dir, vfs_->Mkdir(kRootIno, "d", 0755, kUser));
  SetAttrRequest chmod;
  chmod.mode = S_IFDIR | 04600;  // Type bits in a request are ignored.
  ASSERT_OK_AND_ASSIGN(Attr a, vfs_->SetAttr(file, chmod));
  EXPECT_EQ(a.mode, S_IFREG | 04600u);
  chmod.mode = 01777;
  ASSERT_OK_AND_ASSIGN(a, vfs_->SetAttr(dir.ino, chmod));
  EXPECT_EQ(a.mode, S_IFDIR | 01777u);
  ASSERT_OK_AND_ASSIGN(a, Stat(*vfs_, kRootIno, "f"));
  EXPECT_EQ(a.mode, S_IFREG | 04600u);
}

TEST_F(VfsTest, ChownAndUtimensAreKept) {
  ASSERT_OK_AND_ASSIGN(Ino ino, WriteFile(*vfs_, kRootIno, "f", "x"));
  SetAttrRequest req;
  req.uid = 7;
  req.gid = 8;
  req.atime_ns = 1'000'000'001;
  req.mtime_ns = 2'000'000'002;
  ASSERT_OK(vfs_->SetAttr(ino, req));
  ASSERT_NO_FATAL_FAILURE(ReopenAll());
  ASSERT_OK_AND_ASSIGN(Attr a, vfs_->GetAttr(ino));
  EXPECT_EQ(a.uid, 7u);
  EXPECT_EQ(a.gid, 8u);
  EXPECT_EQ(a.atime_ns, 1'000'000'001);
  EXPECT_EQ(a.mtime_ns, 2'000'000'002);
}

TEST_F(VfsTest, UnlinkedOpenFileStaysReadableAndWritable) {
  ASSERT_OK_AND_ASSIGN(Vfs::Created c, vfs_->Create(kRootIno, "f", 0644, O_RDWR, kUser));
  ASSERT_OK(vfs_->Write(c.fh, 0, "before", 6));
  ASSERT_OK(vfs_->Flush(c.fh));
  ASSERT_OK(vfs_->Unlink(kRootIno, "f"));
  vfs_->Forget(c.attr.ino, 1);  // The kernel drops the name's reference.
  EXPECT_CODE(vfs_->Lookup(kRootIno, "f"), Code::kNotFound);
  ASSERT_OK_AND_ASSIGN(std::string got, ReadHandle(*vfs_, c.fh));
  EXPECT_EQ(got, "before");
  ASSERT_OK(vfs_->Write(c.fh, 6, " after", 6));
  ASSERT_OK(vfs_->Flush(c.fh));
  ASSERT_OK_AND_ASSIGN(got, ReadHandle(*vfs_, c.fh));
  EXPECT_EQ(got, "before after");
  ASSERT_OK_AND_ASSIGN(Attr a, vfs_->GetAttr(c.attr.ino));
  EXPECT_EQ(a.nlink, 0u);
  ASSERT_OK(vfs_->Release(c.fh));
}

TEST_F(VfsTest, RenamedOpenFileCommitsItsWritesUnderTheNewName) {
  ASSERT_OK_AND_ASSIGN(Attr d, vfs_->Mkdir(kRootIno, "d", 0755, kUser));
  ASSERT_OK_AND_ASSIGN(Vfs::Created c, vfs_->Create(kRootIno, "f", 0644, O_RDWR, kUser));
  ASSERT_OK(vfs_->Write(c.fh, 0, "abc", 3));
  ASSERT_OK(vfs_->Rename(kRootIno, "f", d.ino, "g", 0));
  const Generation renamed = latest();
  ASSERT_OK(vfs_->Write(c.fh, 3, "def", 3));
  ASSERT_OK(vfs_->Release(c.fh));
  EXPECT_EQ(latest(), renamed + 1);
  ASSERT_OK_AND_ASSIGN(Attr g, Stat(*vfs_, d.ino, "g"));
  EXPECT_EQ(g.size, 6u);
  ASSERT_OK_AND_ASSIGN(std::string got, ReadFile(*vfs_, g.ino));
  EXPECT_EQ(got, "abcdef");
  ASSERT_OK_AND_ASSIGN(std::string then, ReadFile(*PastAt(renamed), g.ino));
  EXPECT_EQ(then, "");  // The writes were not flushed yet at the rename.
}

TEST_F(VfsTest, HardLinkedNamesShareWrites) {
  ASSERT_OK_AND_ASSIGN(Ino f, WriteFile(*vfs_, kRootIno, "a", "one"));
  ASSERT_OK(vfs_->Link(f, kRootIno, "b"));
  vfs_->Forget(f, 1);
  ASSERT_OK_AND_ASSIGN(Attr b, Stat(*vfs_, kRootIno, "b"));
  ASSERT_OK_AND_ASSIGN(FileHandle fh, vfs_->Open(b.ino, O_WRONLY));
  ASSERT_OK(vfs_->Write(fh, 0, "two", 3));
  ASSERT_OK(vfs_->Release(fh));
  ASSERT_OK_AND_ASSIGN(Attr a, Stat(*vfs_, kRootIno, "a"));
  ASSERT_OK_AND_ASSIGN(std::string got, ReadFile(*vfs_, a.ino));
  EXPECT_EQ(got, "two");
}

TEST_F(VfsTest, BadFileHandlesFailWithInvalid) {
  char buf[4];
  EXPECT_CODE(vfs_->Read(99, 0, 4, buf), Code::kInvalid);
  EXPECT_CODE(vfs_->Write(99, 0, "x", 1), Code::kInvalid);
  EXPECT_CODE(vfs_->Flush(99), Code::kInvalid);
  EXPECT_CODE(vfs_->Release(99), Code::kInvalid);
  EXPECT_TRUE(vfs_->DirEntries(99).empty());
}

TEST_F(VfsTest, OpenOfADirectoryFailsWithIsDir) {
  ASSERT_OK_AND_ASSIGN(Attr d, vfs_->Mkdir(kRootIno, "d", 0755, kUser));
  EXPECT_CODE(vfs_->Open(d.ino, O_RDONLY), Code::kIsDir);
}

// --- Parallel reads and read-ahead ------------------------------------------

// The kernel sends several reads of one file at once, in any order; with
// read-ahead decoding the chunks after each one on other threads.
TEST_F(VfsTest, ParallelReadsOfOneHandleReturnTheFilesBytes) {
  const std::string data = SeededBytes(12 << 20, 21);  // ~190 chunks.
  ASSERT_OK_AND_ASSIGN(Ino ino, WriteFile(*vfs_, kRootIno, "f", data));
  ASSERT_NO_FATAL_FAILURE(ReopenAll());  // Every chunk from the packs.
  ASSERT_OK_AND_ASSIGN(FileHandle fh, vfs_->Open(ino, O_RDONLY));
  constexpr size_t kPiece = 128 << 10;
  constexpr int kThreads = 4;
  const size_t pieces = (data.size() + kPiece - 1) / kPiece;
  std::string got(data.size(), 'x');
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Thread t reads pieces t, t + kThreads, ...: a sequential pass split
      // over threads; the last thread goes backwards.
      for (size_t k = 0; k < pieces; ++k) {
        const size_t i = t == kThreads - 1 ? pieces - 1 - k : k;
        if (static_cast<int>(i % kThreads) != t) continue;
        const size_t at = i * kPiece;
        Result<size_t> n = vfs_->Read(fh, at, kPiece, got.data() + at);
        if (!n.ok() || *n != std::min(kPiece, data.size() - at)) failures++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_TRUE(got == data);
  ASSERT_OK(vfs_->Release(fh));
}

// Chunks queued for read-ahead are the old content once a write lands: the
// next read must show the write, before and after it is committed.
TEST_F(VfsTest, ReadAfterAWriteShowsItWhileReadAheadHoldsTheOldChunks) {
  std::string model = SeededBytes(8 << 20, 22);
  ASSERT_OK_AND_ASSIGN(Ino ino, WriteFile(*vfs_, kRootIno, "f", model));
  ASSERT_NO_FATAL_FAILURE(ReopenAll());
  ASSERT_OK_AND_ASSIGN(FileHandle r, vfs_->Open(ino, O_RDONLY));
  ASSERT_OK_AND_ASSIGN(FileHandle w, vfs_->Open(ino, O_RDWR));
  constexpr size_t kPiece = 128 << 10;
  std::string buf(kPiece, '\0');
  // A sequential start: read-ahead queues the chunks of the next 4 MiB.
  ASSERT_OK_AND_ASSIGN(size_t n, vfs_->Read(r, 0, kPiece, buf.data()));
  ASSERT_EQ(n, kPiece);
  EXPECT_TRUE(buf == model.substr(0, kPiece));
  const std::string fresh = SeededBytes(300'000, 23);
  ASSERT_OK(vfs_->Write(w, kPiece + 1000, fresh.data(), fresh.size()));
  model.replace(kPiece + 1000, fresh.size(), fresh);
  ASSERT_OK_AND_ASSIGN(n, vfs_->Read(r, kPiece, kPiece, buf.data()));
  ASSERT_EQ(n, kPiece);
  EXPECT_TRUE(buf == model.substr(kPiece, kPiece));
  ASSERT_OK(vfs_->Flush(w));  // New chunks and extents.
  ASSERT_OK_AND_ASSIGN(n, vfs_->Read(r, 2 * kPiece, kPiece, buf.data()));
  ASSERT_EQ(n, kPiece);
  EXPECT_TRUE(buf == model.substr(2 * kPiece, kPiece));
  ASSERT_OK_AND_ASSIGN(std::string all, ReadHandle(*vfs_, r));
  EXPECT_TRUE(all == model);
  ASSERT_OK(vfs_->Release(w));
  ASSERT_OK(vfs_->Release(r));
}

// A sequential pass hands the chunks it has read to their end to the chunk
// cache's short read-through queue (ChunkStore::ReadThrough), so a long read
// does not fill the cache: with the packs damaged after the pass, the start
// of the file is no longer served from the cache, the end still is.
TEST_F(VfsTest, SequentialPassLeavesOnlyItsLastChunksInTheCache) {
  const std::string model = SeededBytes(2 << 20, 24);
  ASSERT_OK_AND_ASSIGN(Ino ino, WriteFile(*vfs_, kRootIno, "f", model));
  vfs_.reset();
  store::OpenOptions options;
  options.chunk_cache_bytes = 4 << 20;  // Holds the whole file; its read-through queue 512 KiB.
  ASSERT_NO_FATAL_FAILURE(Reopen(options));
  vfs_ = std::make_unique<Vfs>(store_.get(), LiveOptions());
  ASSERT_OK_AND_ASSIGN(FileHandle fh, vfs_->Open(ino, O_RDONLY));
  ASSERT_OK_AND_ASSIGN(std::string all, ReadHandle(*vfs_, fh));
  ASSERT_TRUE(all == model);
  for (const auto& e : std::filesystem::directory_iterator(path_ + "/packs")) {
    for (uint64_t at = store::kPackHeaderSize; at < e.file_size(); at += 4096)
      ASSERT_NO_FATAL_FAILURE(store::testing::XorFileByte(e.path().string(), at, 0x20));
  }
  std::string buf(64 << 10, '\0');
  EXPECT_CODE(vfs_->Read(fh, 0, buf.size(), buf.data()), Code::kCorruption);
  ASSERT_OK_AND_ASSIGN(size_t n, vfs_->Read(fh, model.size() - buf.size(), buf.size(), buf.data()));
  EXPECT_EQ(n, buf.size());
  EXPECT_TRUE(buf == model.substr(model.size() - buf.size()));
  ASSERT_OK(vfs_->Release(fh));
}

// The bytes ReadSlices gives for [offset, offset + len) of `fh`, joined.
Result<std::string> ReadBySlices(Vfs& vfs, FileHandle fh, uint64_t offset, size_t len) {
  std::vector<store::FileContent::Slice> slices;
  SNAPFS_ASSIGN_OR_RETURN(size_t n, vfs.ReadSlices(fh, offset, len, &slices));
  std::string out;
  for (const store::FileContent::Slice& s : slices) out.append(*s.chunk, s.offset, s.length);
  if (out.size() != n) return Status::Corruption("slices hold " + std::to_string(out.size()) +
                                                 " bytes, ReadSlices says " + std::to_string(n));
  return out;
}

// Every piece of a pass in kernel-sized reads, and reads across the chunk
// boundaries, give through ReadSlices what Read gives.
void ExpectSlicesMatchRead(Vfs& vfs, FileHandle fh, const std::string& want) {
  std::vector<std::pair<uint64_t, size_t>> reads;
  for (uint64_t at = 0; at < want.size() + (1 << 20); at += 128 << 10) reads.push_back({at, 128 << 10});
  for (uint64_t at = 1; at < want.size(); at += 40'000) reads.push_back({at, 70'001});
  for (const auto& [offset, len] : reads) {
    std::string copy(len, '\0');
    ASSERT_OK_AND_ASSIGN(size_t n, vfs.Read(fh, offset, len, copy.data()));
    copy.resize(n);
    ASSERT_OK_AND_ASSIGN(std::string sliced, ReadBySlices(vfs, fh, offset, len));
    EXPECT_TRUE(sliced == copy) << "read of " << len << " at " << offset;
    EXPECT_TRUE(copy == want.substr(std::min<uint64_t>(offset, want.size()), len))
        << "read of " << len << " at " << offset;
  }
}

TEST_F(VfsTest, ReadSlicesGiveWhatReadGivesForCommittedDirtySparseAndPastContent) {
  const std::string first = SeededBytes(900'000, 24);  // ~14 chunks.
  ASSERT_OK_AND_ASSIGN(Ino ino, WriteFile(*vfs_, kRootIno, "f", first));
  const Generation g = latest();
  ASSERT_NO_FATAL_FAILURE(ReopenAll());  // Every chunk from the packs.
  ASSERT_OK_AND_ASSIGN(FileHandle fh, vfs_->Open(ino, O_RDWR));
  ASSERT_NO_FATAL_FAILURE(ExpectSlicesMatchRead(*vfs_, fh, first));
  // Slices hold their chunks: a write and its commit change nothing in them.
  std::vector<store::FileContent::Slice> held;
  ASSERT_OK(vfs_->ReadSlices(fh, 0, 300'000, &held));
  std::string model = first;
  const std::string fresh = SeededBytes(200'000, 25);
  ASSERT_OK(vfs_->Write(fh, 100'000, fresh.data(), fresh.size()));  // Dirty bytes.
  model.replace(100'000, fresh.size(), fresh);
  ASSERT_OK(vfs_->Write(fh, 2'000'000, "tail", 4));  // And a hole before them.
  model.resize(2'000'000, '\0');
  model += "tail";
  ASSERT_NO_FATAL_FAILURE(ExpectSlicesMatchRead(*vfs_, fh, model));
  ASSERT_OK(vfs_->Release(fh));  // Committed: chunks, and a hole.
  std::string joined;
  for (const store::FileContent::Slice& s : held) joined.append(*s.chunk, s.offset, s.length);
  EXPECT_TRUE(joined == first.substr(0, 300'000));
  held.clear();
  ASSERT_NO_FATAL_FAILURE(ReopenAll());
  ASSERT_OK_AND_ASSIGN(fh, vfs_->Open(ino, O_RDONLY));
  ASSERT_NO_FATAL_FAILURE(ExpectSlicesMatchRead(*vfs_, fh, model));
  ASSERT_OK(vfs_->Release(fh));
  std::unique_ptr<Vfs> past = PastAt(g);
  ASSERT_OK_AND_ASSIGN(FileHandle pfh, past->Open(ino, O_RDONLY));
  ASSERT_NO_FATAL_FAILURE(ExpectSlicesMatchRead(*past, pfh, first));
  ASSERT_OK(past->Release(pfh));
}

// --- Generations and history -------------------------------------------------

TEST_F(VfsTest, EveryNamespaceChangeMakesExactlyOneGeneration) {
  Generation g = latest();
  auto one_more = [&](const Status& st, const char* what) {
    EXPECT_TRUE(st.ok()) << what << ": " << st.ToString();
    EXPECT_EQ(latest(), g + 1) << what;
    g = latest();
  };
  ASSERT_OK_AND_ASSIGN(Attr d, vfs_->Mkdir(kRootIno, "d", 0755, kUser));
  one_more(Status::Ok(), "mkdir");
  ASSERT_OK_AND_ASSIGN(Vfs::Created c, vfs_->Create(d.ino, "f", 0644, O_WRONLY, kUser));
  one_more(Status::Ok(), "create");
  ASSERT_OK(vfs_->Release(c.fh));
  EXPECT_EQ(latest(), g);  // Nothing was written.
  one_more(vfs_->Symlink(d.ino, "l", "f", kUser).status(), "symlink");
  one_more(vfs_->Mknod(d.ino, "p", S_IFIFO | 0600, 0, kUser).status(), "mknod");
  one_more(vfs_->Link(c.attr.ino, kRootIno, "hard").status(), "link");
  SetAttrRequest chmod;
  chmod.mode = 0600;
  one_more(vfs_->SetAttr(c.attr.ino, chmod).status(), "chmod");
  SetAttrRequest truncate;
  truncate.size = 10;
  one_more(vfs_->SetAttr(c.attr.ino, truncate).status(), "truncate");
  SetAttrRequest touch;
  touch.mtime_ns = SetAttrRequest::kNow;
  one_more(vfs_->SetAttr(c.attr.ino, touch).status(), "utimens");
  one_more(vfs_->Rename(d.ino, "f", kRootIno, "g", 0), "rename");
  ASSERT_OK(WriteFile(*vfs_, kRootIno, "victim", ""));
  g = latest();
  one_more(vfs_->Rename(kRootIno, "g", kRootIno, "victim", 0), "rename over a file");
  one_more(vfs_->Unlink(d.ino, "l"), "unlink");
  one_more(vfs_->Unlink(d.ino, "p"), "unlink fifo");
  one_more(vfs_->Rmdir(kRootIno, "d"), "rmdir");
}

TEST_F(VfsTest, WrittenContentMakesOneGenerationAtFlush) {
  ASSERT_OK_AND_ASSIGN(Vfs::Created c, vfs_->Create(kRootIno, "f", 0644, O_RDWR, kUser));
  const Generation created = latest();
  ASSERT_OK(vfs_->Write(c.fh, 0, "abc", 3));
  ASSERT_OK(vfs_->Write(c.fh, 3, "def", 3));
  EXPECT_EQ(latest(), created);
  ASSERT_OK(vfs_->Flush(c.fh));
  EXPECT_EQ(latest(), created + 1);
  ASSERT_OK(vfs_->Flush(c.fh));  // Nothing new: no generation.
  ASSERT_OK(vfs_->Fsync(c.fh, false));
  EXPECT_EQ(latest(), created + 1);
  ASSERT_OK(vfs_->Write(c.fh, 0, "x", 1));
  ASSERT_OK(vfs_->Fsync(c.fh, true));
  EXPECT_EQ(latest(), created + 2);
  ASSERT_OK(vfs_->Write(c.fh, 1, "y", 1));
  ASSERT_OK(vfs_->Release(c.fh));  // The last close commits what is left.
  EXPECT_EQ(latest(), created + 3);
  ASSERT_OK_AND_ASSIGN(std::string got, ReadFile(*PastAt(created + 1), c.attr.ino));
  EXPECT_EQ(got, "abcdef");
  ASSERT_OK_AND_ASSIGN(got, ReadFile(*vfs_, c.attr.ino));
  EXPECT_EQ(got, "xycdef");
}

TEST_F(VfsTest, TimesSetWhileDirtyAreFoldedIntoTheContentVersion) {
  ASSERT_OK_AND_ASSIGN(Vfs::Created c, vfs_->Create(kRootIno, "f", 0644, O_RDWR, kUser));
  const Generation created = latest();
  ASSERT_OK(vfs_->Write(c.fh, 0, "abc", 3));
  SetAttrRequest touch;
  touch.mtime_ns = 5'000'000'000;
  ASSERT_OK(vfs_->SetAttr(c.attr.ino, touch));
  EXPECT_EQ(latest(), created);
  ASSERT_OK(vfs_->Release(c.fh));
  EXPECT_EQ(latest(), created + 1);
  ASSERT_OK_AND_ASSIGN(Attr a, PastAt(created + 1)->GetAttr(c.attr.ino));
  EXPECT_EQ(a.mtime_ns, 5'000'000'000);
}

// With the writeback cache the kernel pushes a file's unchanged times after
// each rename, link and unlink of it; that must not add a version.
TEST_F(VfsTest, TimesThatChangeNothingMakeNoGeneration) {
  ASSERT_OK_AND_ASSIGN(Ino f, WriteFile(*vfs_, kRootIno, "f", "data"));
  ASSERT_OK(vfs_->Rename(kRootIno, "f", kRootIno, "g", 0));
  const Generation renamed = latest();
  ASSERT_OK_AND_ASSIGN(Attr before, vfs_->GetAttr(f));
  SetAttrRequest same;
  same.mtime_ns = before.mtime_ns;
  ASSERT_OK(vfs_->SetAttr(f, same));
  same.atime_ns = before.atime_ns;
  ASSERT_OK(vfs_->SetAttr(f, same));
  EXPECT_EQ(latest(), renamed);
  SetAttrRequest other;
  other.mtime_ns = before.mtime_ns + 1;
  ASSERT_OK(vfs_->SetAttr(f, other));
  EXPECT_EQ(latest(), renamed + 1);
}

TEST_F(VfsTest, ReadsAndFailedCallsMakeNoGeneration) {
  ASSERT_OK_AND_ASSIGN(Ino f, WriteFile(*vfs_, kRootIno, "f", "data"));
  ASSERT_OK_AND_ASSIGN(Attr d, vfs_->Mkdir(kRootIno, "d", 0755, kUser));
  ASSERT_OK(WriteFile(*vfs_, d.ino, "inner", ""));
  const Generation g = latest();
  EXPECT_OK(Stat(*vfs_, kRootIno, "f"));
  EXPECT_OK(vfs_->GetAttr(f));
  EXPECT_OK(ReadFile(*vfs_, f));
  EXPECT_OK(List(*vfs_, kRootIno));
  EXPECT_OK(vfs_->StatFs());
  EXPECT_OK(vfs_->FsyncDir());
  EXPECT_CODE(vfs_->Mkdir(kRootIno, "f", 0755, kUser), Code::kExists);
  EXPECT_CODE(vfs_->Rmdir(kRootIno, "d"), Code::kNotEmpty);
  EXPECT_CODE(vfs_->Unlink(kRootIno, "missing"), Code::kNotFound);
  EXPECT_CODE(vfs_->Rename(kRootIno, "f", kRootIno, "d", 0), Code::kIsDir);
  EXPECT_CODE(vfs_->Link(d.ino, kRootIno, "d2"), Code::kPermission);
  EXPECT_EQ(latest(), g);
}

// The heart of snapfs: after each step of building a tree, note the
// generation and what the tree looked like; after `rm -rf` of all of it, a
// view at each noted generation shows exactly what was noted.
TEST_F(VfsTest, RemovingATreeKeepsEveryEarlierGeneration) {
  std::vector<std::pair<Generation, std::map<std::string, std::string>>> seen;
  Generation last = latest();
  auto note = [&](const char* step, Generation expected_new) {
    SCOPED_TRACE(step);
    EXPECT_EQ(latest(), last + expected_new);
    last = latest();
    ASSERT_OK_AND_ASSIGN(auto tree, DescribeTree(*vfs_));
    seen.emplace_back(latest(), std::move(tree));
  };
  ASSERT_NO_FATAL_FAILURE(note("empty", 0));
  ASSERT_OK_AND_ASSIGN(Attr a, vfs_->Mkdir(kRootIno, "a", 0755, kUser));
  ASSERT_NO_FATAL_FAILURE(note("mkdir a", 1));
  ASSERT_OK_AND_ASSIGN(Attr b, vfs_->Mkdir(a.ino, "b", 0700, kUser));
  ASSERT_NO_FATAL_FAILURE(note("mkdir a/b", 1));
  ASSERT_OK_AND_ASSIGN(Attr c, vfs_->Mkdir(b.ino, "c", 0750, kUser));
  ASSERT_NO_FATAL_FAILURE(note("mkdir a/b/c", 1));
  ASSERT_OK_AND_ASSIGN(Ino big, WriteFile(*vfs_, c.ino, "big", SeededBytes(700'000, 4)));
  ASSERT_NO_FATAL_FAILURE(note("big file", 2));
  ASSERT_OK(WriteFile(*vfs_, a.ino, "small", "hello"));
  ASSERT_NO_FATAL_FAILURE(note("small file", 2));
  ASSERT_OK(WriteFile(*vfs_, kRootIno, "empty", ""));
  ASSERT_NO_FATAL_FAILURE(note("empty file", 1));
  ASSERT_OK(vfs_->Symlink(b.ino, "link", "../small", kUser));
  ASSERT_NO_FATAL_FAILURE(note("symlink", 1));
  ASSERT_OK(vfs_->Mknod(a.ino, "fifo", S_IFIFO | 0644, 0, kUser));
  ASSERT_NO_FATAL_FAILURE(note("fifo", 1));
  ASSERT_OK(vfs_->Link(big, kRootIno, "big-too"));
  vfs_->Forget(big, 1);
  ASSERT_NO_FATAL_FAILURE(note("hard link", 1));
  ASSERT_OK_AND_ASSIGN(FileHandle fh, vfs_->Open(big, O_WRONLY));
  const std::string patch = SeededBytes(5000, 5);
  ASSERT_OK(vfs_->Write(fh, 300'000, patch.data(), patch.size()));
  ASSERT_OK(vfs_->Release(fh));
  ASSERT_NO_FATAL_FAILURE(note("overwrite in the middle", 1));
  SetAttrRequest chmod;
  chmod.mode = 0600;
  ASSERT_OK(vfs_->SetAttr(big, chmod));
  ASSERT_NO_FATAL_FAILURE(note("chmod", 1));
  SetAttrRequest truncate;
  truncate.size = 100'000;
  ASSERT_OK(vfs_->SetAttr(big, truncate));
  ASSERT_NO_FATAL_FAILURE(note("truncate", 1));
  ASSERT_OK(vfs_->Rename(a.ino, "small", c.ino, "moved", 0));
  ASSERT_NO_FATAL_FAILURE(note("rename a file across directories", 1));
  ASSERT_OK(vfs_->Rename(a.ino, "b", kRootIno, "b2", 0));
  ASSERT_NO_FATAL_FAILURE(note("rename a directory up", 1));
  ASSERT_OK(WriteFile(*vfs_, kRootIno, "replacement", "new"));
  ASSERT_OK(vfs_->Rename(kRootIno, "replacement", kRootIno, "empty", 0));
  ASSERT_NO_FATAL_FAILURE(note("rename over a file", 3));

  ASSERT_OK_AND_ASSIGN(std::vector<std::string> top, Names(*vfs_, kRootIno));
  for (const std::string& name : top) ASSERT_OK(RemoveTree(*vfs_, kRootIno, name));
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> left, Names(*vfs_, kRootIno));
  EXPECT_TRUE(left.empty());

  for (const auto& [g, tree] : seen) {
    SCOPED_TRACE("generation " + std::to_string(g));
    std::unique_ptr<Vfs> past = PastAt(g);
    ASSERT_OK_AND_ASSIGN(auto then, DescribeTree(*past));
    EXPECT_EQ(then, tree);
  }
}

TEST_F(VfsTest, PastViewShowsTheParentADirectoryHadThen) {
  ASSERT_OK_AND_ASSIGN(Attr a, vfs_->Mkdir(kRootIno, "a", 0755, kUser));
  ASSERT_OK_AND_ASSIGN(Attr b, vfs_->Mkdir(kRootIno, "b", 0755, kUser));
  ASSERT_OK_AND_ASSIGN(Attr d, vfs_->Mkdir(a.ino, "d", 0755, kUser));
  const Generation g = latest();
  ASSERT_OK(vfs_->Rename(a.ino, "d", b.ino, "d", 0));
  ASSERT_OK_AND_ASSIGN(auto now, List(*vfs_, d.ino));
  EXPECT_EQ(now[1].ino, b.ino);
  ASSERT_OK_AND_ASSIGN(auto then, List(*PastAt(g), d.ino));
  EXPECT_EQ(then[1].ino, a.ino);
}

// --- A past view is read-only -----------------------------------------------

TEST_F(VfsTest, PastViewRefusesEveryMutationWithReadOnly) {
  ASSERT_OK_AND_ASSIGN(Attr d, vfs_->Mkdir(kRootIno, "d", 0755, kUser));
  ASSERT_OK_AND_ASSIGN(Ino f, WriteFile(*vfs_, kRootIno, "f", "data"));
  const Generation g = latest();
  std::unique_ptr<Vfs> past = PastAt(g);
  EXPECT_TRUE(past->read_only());
  EXPECT_EQ(past->generation(), g);
  ASSERT_OK_AND_ASSIGN(FileHandle fh, past->Open(f, O_RDONLY));

  SetAttrRequest chmod;
  chmod.mode = 0600;
  EXPECT_CODE(past->SetAttr(f, chmod), Code::kReadOnly);
  SetAttrRequest truncate;
  truncate.size = 0;
  EXPECT_CODE(past->SetAttr(f, truncate), Code::kReadOnly);
  EXPECT_CODE(past->Mknod(kRootIno, "n", S_IFIFO | 0644, 0, kUser), Code::kReadOnly);
  EXPECT_CODE(past->Mkdir(kRootIno, "m", 0755, kUser), Code::kReadOnly);
  EXPECT_CODE(past->Symlink(kRootIno, "s", "f", kUser), Code::kReadOnly);
  EXPECT_CODE(past->Unlink(kRootIno, "f"), Code::kReadOnly);
  EXPECT_CODE(past->Rmdir(kRootIno, "d"), Code::kReadOnly);
  EXPECT_CODE(past->Rename(kRootIno, "f", d.ino, "f", 0), Code::kReadOnly);
  EXPECT_CODE(past->Link(f, d.ino, "f2"), Code::kReadOnly);
  EXPECT_CODE(past->Create(kRootIno, "c", 0644, O_WRONLY, kUser), Code::kReadOnly);
  EXPECT_CODE(past->Open(f, O_WRONLY), Code::kReadOnly);
  EXPECT_CODE(past->Open(f, O_RDWR), Code::kReadOnly);
  EXPECT_CODE(past->Open(f, O_RDONLY | O_TRUNC), Code::kReadOnly);
  EXPECT_CODE(past->Write(fh, 0, "x", 1), Code::kReadOnly);
  EXPECT_CODE(past->Fallocate(fh, 0, 0, 100), Code::kReadOnly);
  ASSERT_OK(past->Release(fh));

  EXPECT_EQ(latest(), g);
  ASSERT_OK_AND_ASSIGN(std::string got, ReadFile(*vfs_, f));
  EXPECT_EQ(got, "data");
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, Names(*vfs_, kRootIno));
  EXPECT_EQ(names, (std::vector<std::string>{"d", "f"}));
}

TEST_F(VfsTest, ViewOfAnEarlierGenerationIsReadOnlyEvenIfNotAskedSo) {
  ASSERT_OK(WriteFile(*vfs_, kRootIno, "f", "data"));
  const Generation g = latest();
  Vfs past(store_.get(), VfsOptions{.at = g, .read_only = false});
  EXPECT_TRUE(past.read_only());
  EXPECT_CODE(past.Mkdir(kRootIno, "m", 0755, kUser), Code::kReadOnly);
  EXPECT_CODE(past.Unlink(kRootIno, "f"), Code::kReadOnly);
  EXPECT_EQ(latest(), g);
}

TEST_F(VfsTest, PastViewsOfAReusedNameShowTheInodeOfTheirTime) {
  ASSERT_OK_AND_ASSIGN(Attr first, vfs_->Mkdir(kRootIno, "x", 0755, kUser));
  const Generation g1 = latest();
  ASSERT_OK(vfs_->Rmdir(kRootIno, "x"));
  const Generation g2 = latest();
  ASSERT_OK_AND_ASSIGN(Ino second, WriteFile(*vfs_, kRootIno, "x", "file"));
  ASSERT_OK_AND_ASSIGN(Attr at1, Stat(*PastAt(g1), kRootIno, "x"));
  EXPECT_EQ(at1.ino, first.ino);
  EXPECT_TRUE(S_ISDIR(at1.mode));
  EXPECT_CODE(PastAt(g2)->Lookup(kRootIno, "x"), Code::kNotFound);
  ASSERT_OK_AND_ASSIGN(Attr now, Stat(*vfs_, kRootIno, "x"));
  EXPECT_EQ(now.ino, second);
}

TEST_F(VfsTest, PastViewDoesNotSeeLaterChanges) {
  ASSERT_OK(WriteFile(*vfs_, kRootIno, "old", "1"));
  const Generation g = latest();
  ASSERT_OK(WriteFile(*vfs_, kRootIno, "new", "2"));
  std::unique_ptr<Vfs> past = PastAt(g);
  EXPECT_CODE(past->Lookup(kRootIno, "new"), Code::kNotFound);
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, Names(*past, kRootIno));
  EXPECT_EQ(names, std::vector<std::string>{"old"});
}

// --- Errors as on a real disk ------------------------------------------------

TEST_F(VfsTest, MkdirOverAnExistingNameFailsWithExists) {
  ASSERT_OK(vfs_->Mkdir(kRootIno, "d", 0755, kUser));
  ASSERT_OK(WriteFile(*vfs_, kRootIno, "f", ""));
  EXPECT_CODE(vfs_->Mkdir(kRootIno, "d", 0755, kUser), Code::kExists);
  EXPECT_CODE(vfs_->Mkdir(kRootIno, "f", 0755, kUser), Code::kExists);
  EXPECT_CODE(vfs_->Create(kRootIno, "d", 0644, O_WRONLY, kUser), Code::kExists);
  EXPECT_CODE(vfs_->Symlink(kRootIno, "f", "x", kUser), Code::kExists);
  EXPECT_CODE(vfs_->Mknod(kRootIno, "f", S_IFIFO | 0644, 0, kUser), Code::kExists);
}

TEST_F(VfsTest, RmdirOfANonEmptyDirectoryFailsWithNotEmpty) {
  ASSERT_OK_AND_ASSIGN(Attr d, vfs_->Mkdir(kRootIno, "d", 0755, kUser));
  ASSERT_OK(WriteFile(*vfs_, d.ino, "f", ""));
  EXPECT_CODE(vfs_->Rmdir(kRootIno, "d"), Code::kNotEmpty);
  ASSERT_OK(vfs_->Unlink(d.ino, "f"));
  EXPECT_OK(vfs_->Rmdir(kRootIno, "d"));
}

TEST_F(VfsTest, UnlinkOfADirectoryFailsWithIsDir) {
  ASSERT_OK(vfs_->Mkdir(kRootIno, "d", 0755, kUser));
  EXPECT_CODE(vfs_->Unlink(kRootIno, "d"), Code::kIsDir);
}

TEST_F(VfsTest, RmdirOfAFileFailsWithNotDir) {
  ASSERT_OK(WriteFile(*vfs_, kRootIno, "f", ""));
  EXPECT_CODE(vfs_->Rmdir(kRootIno, "f"), Code::kNotDir);
}

TEST_F(VfsTest, RemovingAMissingNameFailsWithNotFound) {
  EXPECT_CODE(vfs_->Unlink(kRootIno, "nope"), Code::kNotFound);
  EXPECT_CODE(vfs_->Rmdir(kRootIno, "nope"), Code::kNotFound);
  EXPECT_CODE(vfs_->Rename(kRootIno, "nope", kRootIno, "x", 0), Code::kNotFound);
  EXPECT_CODE(vfs_->Lookup(kRootIno, "nope"), Code::kNotFound);
}

TEST_F(VfsTest, CallsOnAFileAsDirectoryFailWithNotDir) {
  ASSERT_OK_AND_ASSIGN(Ino f, WriteFile(*vfs_, kRootIno, "f", ""));
  EXPECT_CODE(vfs_->Lookup(f, "x"), Code::kNotDir);
  EXPECT_CODE(vfs_->Mkdir(f, "x", 0755, kUser), Code::kNotDir);
  EXPECT_CODE(vfs_->OpenDir(f), Code::kNotDir);
  EXPECT_CODE(vfs_->Unlink(f, "x"), Code::kNotDir);
  EXPECT_CODE(vfs_->Rename(kRootIno, "f", f, "x", 0), Code::kNotDir);
}

TEST_F(VfsTest, RenameOfADirectoryIntoItsOwnSubdirectoryFailsWithInvalid) {
  ASSERT_OK_AND_ASSIGN(Attr a, vfs_->Mkdir(kRootIno, "a", 0755, kUser));
  ASSERT_OK_AND_ASSIGN(Attr b, vfs_->Mkdir(a.ino, "b", 0755, kUser));
  ASSERT_OK_AND_ASSIGN(Attr c, vfs_->Mkdir(b.ino, "c", 0755, kUser));
  EXPECT_CODE(vfs_->Rename(kRootIno, "a", c.ino, "a", 0), Code::kInvalid);
  EXPECT_CODE(vfs_->Rename(kRootIno, "a", a.ino, "a", 0), Code::kInvalid);
  EXPECT_CODE(vfs_->Rename(b.ino, "c", c.ino, "x", 0), Code::kInvalid);
  // The other way round through an exchange: a/b/c trades places with a.
  EXPECT_CODE(vfs_->Rename(b.ino, "c", kRootIno, "a", kRenameExchange), Code::kInvalid);
}

TEST_F(VfsTest, RenameOfAFileOverADirectoryFailsWithIsDir) {
  ASSERT_OK(WriteFile(*vfs_, kRootIno, "f", ""));
  ASSERT_OK(vfs_->Mkdir(kRootIno, "d", 0755, kUser));
  EXPECT_CODE(vfs_->Rename(kRootIno, "f", kRootIno, "d", 0), Code::kIsDir);
}

TEST_F(VfsTest, RenameOfADirectoryOverANonEmptyDirectoryFailsWithNotEmpty) {
  ASSERT_OK(vfs_->Mkdir(kRootIno, "a", 0755, kUser));
  ASSERT_OK_AND_ASSIGN(Attr b, vfs_->Mkdir(kRootIno, "b", 0755, kUser));
  ASSERT_OK(vfs_->Mkdir(b.ino, "inner", 0755, kUser));
  EXPECT_CODE(vfs_->Rename(kRootIno, "a", kRootIno, "b", 0), Code::kNotEmpty);
}

TEST_F(VfsTest, RenameOfADirectoryOverAFileFailsWithNotDir) {
  ASSERT_OK(vfs_->Mkdir(kRootIno, "d", 0755, kUser));
  ASSERT_OK(WriteFile(*vfs_, kRootIno, "f", ""));
  EXPECT_CODE(vfs_->Rename(kRootIno, "d", kRootIno, "f", 0), Code::kNotDir);
}

TEST_F(VfsTest, RenameNoReplaceOverAnExistingNameFailsWithExists) {
  ASSERT_OK(WriteFile(*vfs_, kRootIno, "a", "A"));
  ASSERT_OK(WriteFile(*vfs_, kRootIno, "b", "B"));
  EXPECT_CODE(vfs_->Rename(kRootIno, "a", kRootIno, "b", kRenameNoReplace), Code::kExists);
  ASSERT_OK(vfs_->Rename(kRootIno, "a", kRootIno, "c", kRenameNoReplace));
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, Names(*vfs_, kRootIno));
  EXPECT_EQ(names, (std::vector<std::string>{"b", "c"}));
}

TEST_F(VfsTest, RenameWithBothFlagsFailsWithInvalid) {
  ASSERT_OK(WriteFile(*vfs_, kRootIno, "a", "A"));
  ASSERT_OK(WriteFile(*vfs_, kRootIno, "b", "B"));
  EXPECT_CODE(vfs_->Rename(kRootIno, "a", kRootIno, "b", kRenameNoReplace | kRenameExchange),
              Code::kInvalid);
  EXPECT_CODE(vfs_->Rename(kRootIno, "a", kRootIno, "b", 4 /* RENAME_WHITEOUT */),
              Code::kInvalid);
}

TEST_F(VfsTest, RenameOverAFileReplacesIt) {
  ASSERT_OK_AND_ASSIGN(Ino a, WriteFile(*vfs_, kRootIno, "a", "A"));
  ASSERT_OK_AND_ASSIGN(Ino b, WriteFile(*vfs_, kRootIno, "b", "B"));
  ASSERT_OK(vfs_->Rename(kRootIno, "a", kRootIno, "b", 0));
  ASSERT_OK_AND_ASSIGN(Attr now, Stat(*vfs_, kRootIno, "b"));
  EXPECT_EQ(now.ino, a);
  ASSERT_OK_AND_ASSIGN(Attr gone, vfs_->GetAttr(b));
  EXPECT_EQ(gone.nlink, 0u);
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, Names(*vfs_, kRootIno));
  EXPECT_EQ(names, std::vector<std::string>{"b"});
}

TEST_F(VfsTest, RenameOntoAnotherNameOfTheSameFileDoesNothing) {
  ASSERT_OK_AND_ASSIGN(Ino f, WriteFile(*vfs_, kRootIno, "a", "A"));
  ASSERT_OK(vfs_->Link(f, kRootIno, "b"));
  const Generation g = latest();
  ASSERT_OK(vfs_->Rename(kRootIno, "a", kRootIno, "b", 0));
  ASSERT_OK(vfs_->Rename(kRootIno, "a", kRootIno, "a", 0));
  EXPECT_EQ(latest(), g);
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, Names(*vfs_, kRootIno));
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b"}));
}

TEST_F(VfsTest, RenameExchangeSwapsTwoFilesBothWays) {
  ASSERT_OK_AND_ASSIGN(Attr d, vfs_->Mkdir(kRootIno, "d", 0755, kUser));
  ASSERT_OK_AND_ASSIGN(Ino a, WriteFile(*vfs_, kRootIno, "a", "A"));
  ASSERT_OK_AND_ASSIGN(Ino b, WriteFile(*vfs_, d.ino, "b", "B"));
  ASSERT_OK(vfs_->Rename(kRootIno, "a", d.ino, "b", kRenameExchange));
  ASSERT_OK_AND_ASSIGN(Attr x, Stat(*vfs_, kRootIno, "a"));
  ASSERT_OK_AND_ASSIGN(Attr y, Stat(*vfs_, d.ino, "b"));
  EXPECT_EQ(x.ino, b);
  EXPECT_EQ(y.ino, a);
  ASSERT_OK(vfs_->Rename(d.ino, "b", kRootIno, "a", kRenameExchange));
  ASSERT_OK_AND_ASSIGN(x, Stat(*vfs_, kRootIno, "a"));
  ASSERT_OK_AND_ASSIGN(y, Stat(*vfs_, d.ino, "b"));
  EXPECT_EQ(x.ino, a);
  EXPECT_EQ(y.ino, b);
  EXPECT_CODE(vfs_->Rename(kRootIno, "a", d.ino, "missing", kRenameExchange), Code::kNotFound);
}

TEST_F(VfsTest, RenameExchangeOfADirectoryAndAFileFixesDotDotAndLinkCounts) {
  ASSERT_OK_AND_ASSIGN(Attr p, vfs_->Mkdir(kRootIno, "p", 0755, kUser));
  ASSERT_OK_AND_ASSIGN(Attr q, vfs_->Mkdir(kRootIno, "q", 0755, kUser));
  ASSERT_OK_AND_ASSIGN(Attr dir, vfs_->Mkdir(p.ino, "x", 0755, kUser));
  ASSERT_OK_AND_ASSIGN(Ino file, WriteFile(*vfs_, q.ino, "y", "F"));
  ASSERT_OK(vfs_->Rename(p.ino, "x", q.ino, "y", kRenameExchange));
  ASSERT_OK_AND_ASSIGN(Attr in_p, Stat(*vfs_, p.ino, "x"));
  ASSERT_OK_AND_ASSIGN(Attr in_q, Stat(*vfs_, q.ino, "y"));
  EXPECT_EQ(in_p.ino, file);
  EXPECT_EQ(in_q.ino, dir.ino);
  ASSERT_OK_AND_ASSIGN(auto entries, List(*vfs_, dir.ino));
  EXPECT_EQ(entries[1].ino, q.ino);
  ASSERT_OK_AND_ASSIGN(Attr pa, vfs_->GetAttr(p.ino));
  ASSERT_OK_AND_ASSIGN(Attr qa, vfs_->GetAttr(q.ino));
  EXPECT_EQ(pa.nlink, 2u);
  EXPECT_EQ(qa.nlink, 3u);

  ASSERT_OK(vfs_->Rename(q.ino, "y", p.ino, "x", kRenameExchange));  // And back.
  ASSERT_OK_AND_ASSIGN(entries, List(*vfs_, dir.ino));
  EXPECT_EQ(entries[1].ino, p.ino);
  ASSERT_OK_AND_ASSIGN(pa, vfs_->GetAttr(p.ino));
  ASSERT_OK_AND_ASSIGN(qa, vfs_->GetAttr(q.ino));
  EXPECT_EQ(pa.nlink, 3u);
  EXPECT_EQ(qa.nlink, 2u);
  ASSERT_OK_AND_ASSIGN(Attr back, Stat(*vfs_, p.ino, "x"));
  EXPECT_EQ(back.ino, dir.ino);
}

TEST_F(VfsTest, RenameExchangeOfTwoDirectoriesFixesBothDotDots) {
  ASSERT_OK_AND_ASSIGN(Attr p, vfs_->Mkdir(kRootIno, "p", 0755, kUser));
  ASSERT_OK_AND_ASSIGN(Attr q, vfs_->Mkdir(kRootIno, "q", 0755, kUser));
  ASSERT_OK_AND_ASSIGN(Attr x, vfs_->Mkdir(p.ino, "x", 0755, kUser));
  ASSERT_OK_AND_ASSIGN(Attr y, vfs_->Mkdir(q.ino, "y", 0755, kUser));
  ASSERT_OK(vfs_->Rename(p.ino, "x", q.ino, "y", kRenameExchange));
  ASSERT_OK_AND_ASSIGN(auto xe, List(*vfs_, x.ino));
  ASSERT_OK_AND_ASSIGN(auto ye, List(*vfs_, y.ino));
  EXPECT_EQ(xe[1].ino, q.ino);
  EXPECT_EQ(ye[1].ino, p.ino);
  ASSERT_OK_AND_ASSIGN(Attr pa, vfs_->GetAttr(p.ino));
  ASSERT_OK_AND_ASSIGN(Attr qa, vfs_->GetAttr(q.ino));
  EXPECT_EQ(pa.nlink, 3u);
  EXPECT_EQ(qa.nlink, 3u);
}

TEST_F(VfsTest, NameOf255BytesWorksAnd256FailsWithNameTooLong) {
  const std::string ok(255, 'n');
  const std::string too_long(256, 'n');
  ASSERT_OK(WriteFile(*vfs_, kRootIno, ok, "x"));
  ASSERT_OK(Stat(*vfs_, kRootIno, ok));
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, Names(*vfs_, kRootIno));
  EXPECT_EQ(names, std::vector<std::string>{ok});
  EXPECT_CODE(vfs_->Create(kRootIno, too_long, 0644, O_WRONLY, kUser), Code::kNameTooLong);
  EXPECT_CODE(vfs_->Mkdir(kRootIno, too_long, 0755, kUser), Code::kNameTooLong);
  EXPECT_CODE(vfs_->Lookup(kRootIno, too_long), Code::kNameTooLong);
  EXPECT_CODE(vfs_->Rename(kRootIno, ok, kRootIno, too_long, 0), Code::kNameTooLong);
  EXPECT_CODE(vfs_->Link(2, kRootIno, too_long), Code::kNameTooLong);
}

TEST_F(VfsTest, NamesWithEveryByteButSlashAndNulWork) {
  std::vector<std::string> want;
  std::string all;
  for (int b = 1; b < 256; ++b) {
    if (b == '/') continue;
    all.push_back(static_cast<char>(b));
    want.push_back(std::string("n") + static_cast<char>(b));
    if (b != '.') want.push_back(std::string(1, static_cast<char>(b)));
  }
  want.push_back(all);  // 254 bytes.
  want.push_back("...");
  for (const std::string& name : want) ASSERT_OK(WriteFile(*vfs_, kRootIno, name, name));
  std::sort(want.begin(), want.end());
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, Names(*vfs_, kRootIno));
  EXPECT_EQ(names, want);  // In byte order.
  for (const std::string& name : want) {
    ASSERT_OK_AND_ASSIGN(Attr a, Stat(*vfs_, kRootIno, name));
    ASSERT_OK_AND_ASSIGN(std::string got, ReadFile(*vfs_, a.ino));
    EXPECT_EQ(got, name);
  }
}

TEST_F(VfsTest, NamesWithSlashOrDotsFailWithInvalid) {
  EXPECT_CODE(vfs_->Mkdir(kRootIno, "a/b", 0755, kUser), Code::kInvalid);
  EXPECT_CODE(vfs_->Mkdir(kRootIno, ".", 0755, kUser), Code::kInvalid);
  EXPECT_CODE(vfs_->Mkdir(kRootIno, "..", 0755, kUser), Code::kInvalid);
  EXPECT_CODE(vfs_->Mkdir(kRootIno, "", 0755, kUser), Code::kInvalid);
  EXPECT_CODE(vfs_->Mkdir(kRootIno, std::string("a\0b", 3), 0755, kUser), Code::kInvalid);
}

TEST_F(VfsTest, NothingCanBeAddedToARemovedDirectory) {
  ASSERT_OK_AND_ASSIGN(Attr d, vfs_->Mkdir(kRootIno, "d", 0755, kUser));
  ASSERT_OK_AND_ASSIGN(Ino f, WriteFile(*vfs_, kRootIno, "f", ""));
  ASSERT_OK(vfs_->Rmdir(kRootIno, "d"));  // The kernel may still hold d (a cwd).
  const Generation g = latest();
  EXPECT_CODE(vfs_->Mkdir(d.ino, "x", 0755, kUser), Code::kNotFound);
  EXPECT_CODE(vfs_->Create(d.ino, "x", 0644, O_WRONLY, kUser), Code::kNotFound);
  EXPECT_CODE(vfs_->Symlink(d.ino, "x", "t", kUser), Code::kNotFound);
  EXPECT_CODE(vfs_->Rename(kRootIno, "f", d.ino, "x", 0), Code::kNotFound);
  EXPECT_CODE(vfs_->Link(f, d.ino, "x"), Code::kNotFound);
  EXPECT_EQ(latest(), g);
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, Names(*vfs_, d.ino));
  EXPECT_TRUE(names.empty());
}

TEST_F(VfsTest, HardLinkToADirectoryFailsWithPermission) {
  ASSERT_OK_AND_ASSIGN(Attr d, vfs_->Mkdir(kRootIno, "d", 0755, kUser));
  EXPECT_CODE(vfs_->Link(d.ino, kRootIno, "d2"), Code::kPermission);
}

TEST_F(VfsTest, LinkOverAnExistingNameFailsWithExists) {
  ASSERT_OK_AND_ASSIGN(Ino f, WriteFile(*vfs_, kRootIno, "a", "A"));
  ASSERT_OK(WriteFile(*vfs_, kRootIno, "b", "B"));
  EXPECT_CODE(vfs_->Link(f, kRootIno, "b"), Code::kExists);
}

TEST_F(VfsTest, LinkCountsNamesAndUnlinkOfOneKeepsTheOther) {
  ASSERT_OK_AND_ASSIGN(Attr d, vfs_->Mkdir(kRootIno, "d", 0755, kUser));
  ASSERT_OK_AND_ASSIGN(Ino f, WriteFile(*vfs_, kRootIno, "a", "shared"));
  ASSERT_OK_AND_ASSIGN(Attr linked, vfs_->Link(f, d.ino, "b"));
  vfs_->Forget(f, 1);
  EXPECT_EQ(linked.ino, f);
  EXPECT_EQ(linked.nlink, 2u);
  ASSERT_OK_AND_ASSIGN(Attr via_b, Stat(*vfs_, d.ino, "b"));
  EXPECT_EQ(via_b.ino, f);
  EXPECT_EQ(via_b.nlink, 2u);
  ASSERT_OK(vfs_->Unlink(kRootIno, "a"));
  ASSERT_OK_AND_ASSIGN(via_b, Stat(*vfs_, d.ino, "b"));
  EXPECT_EQ(via_b.nlink, 1u);
  ASSERT_OK_AND_ASSIGN(std::string got, ReadFile(*vfs_, f));
  EXPECT_EQ(got, "shared");
}

// --- Directories ---------------------------------------------------------------

TEST_F(VfsTest, DirectoryLinkCountIsTwoPlusSubdirectories) {
  auto nlink = [&](Ino ino) {
    Result<Attr> a = vfs_->GetAttr(ino);
    return a.ok() ? a->nlink : 0u;
  };
  EXPECT_EQ(nlink(kRootIno), 2u);
  ASSERT_OK_AND_ASSIGN(Attr a, vfs_->Mkdir(kRootIno, "a", 0755, kUser));
  EXPECT_EQ(a.nlink, 2u);
  EXPECT_EQ(nlink(kRootIno), 3u);
  ASSERT_OK_AND_ASSIGN(Attr b, vfs_->Mkdir(a.ino, "b", 0755, kUser));
  ASSERT_OK(vfs_->Mkdir(a.ino, "c", 0755, kUser));
  ASSERT_OK(WriteFile(*vfs_, a.ino, "file", ""));  // Files do not count.
  EXPECT_EQ(nlink(a.ino), 4u);
  ASSERT_OK(vfs_->Rename(a.ino, "b", kRootIno, "b", 0));  // Across directories.
  EXPECT_EQ(nlink(a.ino), 3u);
  EXPECT_EQ(nlink(kRootIno), 4u);
  ASSERT_OK(vfs_->Rename(kRootIno, "b", a.ino, "c", 0));  // Over an empty directory.
  EXPECT_EQ(nlink(a.ino), 3u);
  EXPECT_EQ(nlink(kRootIno), 3u);
  EXPECT_EQ(nlink(b.ino), 2u);
  ASSERT_OK(vfs_->Rmdir(a.ino, "c"));
  EXPECT_EQ(nlink(a.ino), 2u);
  EXPECT_EQ(nlink(b.ino), 0u);
  ASSERT_NO_FATAL_FAILURE(ReopenAll());  // What was committed agrees.
  EXPECT_EQ(nlink(a.ino), 2u);
  EXPECT_EQ(nlink(kRootIno), 3u);
}

TEST_F(VfsTest, SetgidDirectoryPassesItsGroupAndTheBitToSubdirectories) {
  ASSERT_OK_AND_ASSIGN(Attr shared, vfs_->Mkdir(kRootIno, "shared", 0755, kUser));
  SetAttrRequest req;
  req.gid = 500;
  req.mode = 02775;
  ASSERT_OK(vfs_->SetAttr(shared.ino, req));
  ASSERT_OK_AND_ASSIGN(Attr sub, vfs_->Mkdir(shared.ino, "sub", 0755, kUser));
  EXPECT_EQ(sub.gid, 500u);
  EXPECT_EQ(sub.uid, kUser.uid);
  EXPECT_EQ(sub.mode, S_IFDIR | 02755u);
  ASSERT_OK_AND_ASSIGN(Ino file, WriteFile(*vfs_, sub.ino, "f", ""));
  ASSERT_OK_AND_ASSIGN(Attr fa, vfs_->GetAttr(file));
  EXPECT_EQ(fa.gid, 500u);
  EXPECT_EQ(fa.mode, S_IFREG | 0644u);
  ASSERT_OK_AND_ASSIGN(Attr plain, vfs_->Mkdir(kRootIno, "plain", 0755, kUser));
  EXPECT_EQ(plain.gid, kUser.gid);
  EXPECT_EQ(plain.mode, S_IFDIR | 0755u);
}

TEST_F(VfsTest, OpenDirListsDotAndDotDotFirst) {
  ASSERT_OK_AND_ASSIGN(Attr d, vfs_->Mkdir(kRootIno, "d", 0755, kUser));
  ASSERT_OK(WriteFile(*vfs_, d.ino, "f", ""));
  ASSERT_OK_AND_ASSIGN(auto entries, List(*vfs_, d.ino));
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].name, ".");
  EXPECT_EQ(entries[0].ino, d.ino);
  EXPECT_EQ(entries[0].type, S_IFDIR >> 12);
  EXPECT_EQ(entries[1].name, "..");
  EXPECT_EQ(entries[1].ino, kRootIno);
  EXPECT_EQ(entries[2].name, "f");
  EXPECT_EQ(entries[2].type, S_IFREG >> 12);
  ASSERT_OK_AND_ASSIGN(auto root, List(*vfs_, kRootIno));
  EXPECT_EQ(root[1].ino, kRootIno);
}

TEST_F(VfsTest, HundredThousandFilesInOneDirectoryAreAllListed) {
  constexpr int kFiles = 100'000;
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  ASSERT_OK_AND_ASSIGN(Attr d, vfs_->Mkdir(kRootIno, "many", 0755, kUser));
  std::vector<std::string> want;
  want.reserve(kFiles);
  char name[16];
  for (int i = 0; i < kFiles; ++i) {
    std::snprintf(name, sizeof name, "f%06d", i);
    ASSERT_OK_AND_ASSIGN(Vfs::Created c, vfs_->Create(d.ino, name, 0644, O_WRONLY, kUser));
    ASSERT_OK(vfs_->Release(c.fh));
    vfs_->Forget(c.attr.ino, 1);
    want.emplace_back(name);
  }
  const auto created = Clock::now();
  ASSERT_OK_AND_ASSIGN(auto entries, List(*vfs_, d.ino));
  const auto listed = Clock::now();
  ASSERT_EQ(entries.size(), want.size() + 2);
  EXPECT_EQ(entries[0].name, ".");
  EXPECT_EQ(entries[1].name, "..");
  for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(entries[i + 2].name, want[i]);
  auto ms = [](auto span) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(span).count();
  };
  std::printf("[ timing   ] %d creates: %lld ms; listing: %lld ms\n", kFiles,
              static_cast<long long>(ms(created - start)),
              static_cast<long long>(ms(listed - created)));
}

// Workers change their own directories and a shared one while a reader lists
// and reads the shared one: no deadlock, one generation per change, and the
// tree ends exactly as the sum of the workers' changes.
TEST_F(VfsTest, ConcurrentChangesStayConsistent) {
  constexpr int kWorkers = 4;
  constexpr int kRounds = 120;
  ASSERT_OK_AND_ASSIGN(Attr shared, vfs_->Mkdir(kRootIno, "shared", 0755, kUser));
  std::vector<Ino> dirs;
  for (int t = 0; t < kWorkers; ++t) {
    ASSERT_OK_AND_ASSIGN(Attr d, vfs_->Mkdir(kRootIno, "w" + std::to_string(t), 0755, kUser));
    dirs.push_back(d.ino);
  }
  auto content = [](int t, int i) { return SeededBytes(1000 + 37 * i, 100'000 * t + i); };
  const Generation start = latest();
  std::atomic<uint64_t> expected_generations{0};
  auto worker = [&](int t) {
    const Ino dir = dirs[t];
    uint64_t generations = 0;
    auto expect_ok = [&](const Status& st, const std::string& what) {
      EXPECT_TRUE(st.ok()) << what << ": " << st.ToString();
      generations++;
    };
    for (int i = 0; i < kRounds; ++i) {
      const std::string name = "f" + std::to_string(i);
      const std::string tag = std::to_string(t) + "-" + std::to_string(i);
      Result<Ino> f = WriteFile(*vfs_, dir, name, content(t, i));
      EXPECT_TRUE(f.ok()) << f.status().ToString();
      if (!f.ok()) return;
      generations += 2;
      if (i % 5 == 0) {
        SetAttrRequest chmod;
        chmod.mode = 0600;
        expect_ok(vfs_->SetAttr(*f, chmod).status(), "chmod " + tag);
      }
      if (i % 3 == 0) {
        expect_ok(vfs_->Rename(dir, name, shared.ino, "t" + tag, 0), "rename " + tag);
      } else if (i % 3 == 1) {
        expect_ok(vfs_->Unlink(dir, name), "unlink " + tag);
      } else if (i % 7 == 2) {
        Result<Attr> l = vfs_->Link(*f, shared.ino, "l" + tag);
        if (l.ok()) vfs_->Forget(*f, 1);
        expect_ok(l.status(), "link " + tag);
      }
      if (i % 4 == 0) {
        expect_ok(vfs_->Mkdir(dir, "d" + std::to_string(i), 0755, kUser).status(), "mkdir");
        if (i % 8 == 0) expect_ok(vfs_->Rmdir(dir, "d" + std::to_string(i)), "rmdir");
      }
    }
    expected_generations += generations;
  };
  std::atomic<bool> stop{false};
  auto reader = [&] {
    while (!stop) {
      Result<std::vector<std::string>> names = Names(*vfs_, shared.ino);
      EXPECT_TRUE(names.ok()) << names.status().ToString();
      if (!names.ok()) return;
      for (const std::string& name : *names) {
        Result<Attr> a = Stat(*vfs_, shared.ino, name);
        EXPECT_TRUE(a.ok()) << name << ": " << a.status().ToString();
        if (!a.ok()) continue;
        Result<std::string> got = ReadFile(*vfs_, a->ino);
        int t = 0, i = 0;
        ASSERT_EQ(std::sscanf(name.c_str() + 1, "%d-%d", &t, &i), 2) << name;
        EXPECT_TRUE(got.ok() && *got == content(t, i)) << name;
      }
    }
  };
  std::vector<std::thread> threads;
  std::thread read_thread(reader);
  for (int t = 0; t < kWorkers; ++t) threads.emplace_back(worker, t);
  for (auto& th : threads) th.join();
  stop = true;
  read_thread.join();

  EXPECT_EQ(latest(), start + expected_generations.load());
  std::vector<std::string> want_shared;
  for (int t = 0; t < kWorkers; ++t) {
    std::vector<std::string> want;
    uint32_t subdirs = 0;
    for (int i = 0; i < kRounds; ++i) {
      const std::string tag = std::to_string(t) + "-" + std::to_string(i);
      if (i % 3 == 0) want_shared.push_back("t" + tag);
      if (i % 3 == 2) want.push_back("f" + std::to_string(i));
      if (i % 3 == 2 && i % 7 == 2) want_shared.push_back("l" + tag);
      if (i % 4 == 0 && i % 8 != 0) {
        want.push_back("d" + std::to_string(i));
        subdirs++;
      }
    }
    std::sort(want.begin(), want.end());
    ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, Names(*vfs_, dirs[t]));
    EXPECT_EQ(names, want);
    ASSERT_OK_AND_ASSIGN(Attr a, vfs_->GetAttr(dirs[t]));
    EXPECT_EQ(a.nlink, 2 + subdirs);
  }
  std::sort(want_shared.begin(), want_shared.end());
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, Names(*vfs_, shared.ino));
  EXPECT_EQ(names, want_shared);
}

// --- Special files, statfs ---------------------------------------------------

TEST_F(VfsTest, SymlinkReadsBackItsTarget) {
  ASSERT_OK_AND_ASSIGN(Attr l, vfs_->Symlink(kRootIno, "l", "some/where/else", kUser));
  EXPECT_EQ(l.mode, S_IFLNK | 0777u);
  EXPECT_EQ(l.size, 15u);
  ASSERT_OK_AND_ASSIGN(std::string target, vfs_->Readlink(l.ino));
  EXPECT_EQ(target, "some/where/else");
  ASSERT_OK_AND_ASSIGN(auto entries, List(*vfs_, kRootIno));
  EXPECT_EQ(entries[2].type, S_IFLNK >> 12);
  ASSERT_OK_AND_ASSIGN(Ino f, WriteFile(*vfs_, kRootIno, "f", ""));
  EXPECT_CODE(vfs_->Readlink(f), Code::kInvalid);
  EXPECT_CODE(vfs_->Symlink(kRootIno, "empty", "", kUser), Code::kNotFound);
}

TEST_F(VfsTest, MknodMakesAFifo) {
  ASSERT_OK_AND_ASSIGN(Attr p, vfs_->Mknod(kRootIno, "p", S_IFIFO | 0640, 0, kUser));
  EXPECT_EQ(p.mode, S_IFIFO | 0640u);
  EXPECT_EQ(p.nlink, 1u);
  ASSERT_OK_AND_ASSIGN(Attr again, Stat(*vfs_, kRootIno, "p"));
  EXPECT_EQ(again.mode, S_IFIFO | 0640u);
  ASSERT_OK_AND_ASSIGN(auto entries, List(*vfs_, kRootIno));
  EXPECT_EQ(entries[2].type, S_IFIFO >> 12);
  EXPECT_CODE(vfs_->Mknod(kRootIno, "d", S_IFDIR | 0755, 0, kUser), Code::kInvalid);
}

TEST_F(VfsTest, StatFsNumbersAreNonZero) {
  ASSERT_OK_AND_ASSIGN(FsStats s, vfs_->StatFs());
  EXPECT_GT(s.block_size, 0u);
  EXPECT_GT(s.blocks, 0u);
  EXPECT_GT(s.blocks_free, 0u);
  EXPECT_GT(s.blocks_avail, 0u);
  EXPECT_GT(s.files, 0u);
  EXPECT_GT(s.files_free, 0u);
  EXPECT_EQ(s.name_max, 255u);
}

// --- Reopen --------------------------------------------------------------------

TEST_F(VfsTest, ReopenedStoreReadsBackEverythingCommitted) {
  const std::string big = SeededBytes(9 << 20, 6);  // Streams through several chunk runs.
  ASSERT_OK_AND_ASSIGN(Attr d, vfs_->Mkdir(kRootIno, "d", 0750, kUser));
  ASSERT_OK_AND_ASSIGN(Ino f, WriteFile(*vfs_, d.ino, "big", big));
  ASSERT_OK(WriteFile(*vfs_, kRootIno, "small", "tiny"));
  ASSERT_OK(vfs_->Symlink(d.ino, "l", "big", kUser));
  ASSERT_OK(vfs_->Link(f, kRootIno, "big-link"));
  ASSERT_OK_AND_ASSIGN(auto before, DescribeTree(*vfs_));
  const Generation g = latest();
  ASSERT_NO_FATAL_FAILURE(ReopenAll());
  EXPECT_EQ(latest(), g);
  ASSERT_OK_AND_ASSIGN(auto after, DescribeTree(*vfs_));
  EXPECT_EQ(after, before);
  // New inodes do not reuse old numbers.
  ASSERT_OK_AND_ASSIGN(Ino fresh, WriteFile(*vfs_, kRootIno, "fresh", ""));
  EXPECT_GT(fresh, f);
  EXPECT_EQ(latest(), g + 1);
}

TEST_F(VfsTest, ClosingTheVfsCommitsDirtyFiles) {
  ASSERT_OK_AND_ASSIGN(Vfs::Created c, vfs_->Create(kRootIno, "f", 0644, O_WRONLY, kUser));
  ASSERT_OK(vfs_->Write(c.fh, 0, "unflushed", 9));
  ASSERT_NO_FATAL_FAILURE(ReopenAll());  // The Vfs is destroyed with the file open.
  ASSERT_OK_AND_ASSIGN(std::string got, ReadFile(*vfs_, c.attr.ino));
  EXPECT_EQ(got, "unflushed");
}

// --- The hidden .snapfs folder ------------------------------------------------

class SnapfsDirTest : public VfsTestBase {
 protected:
  VfsOptions LiveOptions() const override { return {.snapfs_dir = true}; }
  // The root of .snapfs/at/<when>.
  Result<Attr> ViewRoot(const std::string& when) {
    SNAPFS_ASSIGN_OR_RETURN(Attr snapfs, vfs_->Lookup(kRootIno, ".snapfs"));
    SNAPFS_ASSIGN_OR_RETURN(Attr at, vfs_->Lookup(snapfs.ino, "at"));
    return vfs_->Lookup(at.ino, when);
  }
};

TEST_F(SnapfsDirTest, IsFoundByNameButNotListed) {
  ASSERT_OK(WriteFile(*vfs_, kRootIno, "f", ""));
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, Names(*vfs_, kRootIno));
  EXPECT_EQ(names, std::vector<std::string>{"f"});
  ASSERT_OK_AND_ASSIGN(Attr snapfs, vfs_->Lookup(kRootIno, ".snapfs"));
  EXPECT_TRUE(S_ISDIR(snapfs.mode));
  ASSERT_OK_AND_ASSIGN(names, Names(*vfs_, snapfs.ino));
  EXPECT_EQ(names, (std::vector<std::string>{"at", "states"}));
}

TEST_F(SnapfsDirTest, AtAGenerationShowsTheTreeOfThatGeneration) {
  ASSERT_OK_AND_ASSIGN(Ino f, WriteFile(*vfs_, kRootIno, "f", "first"));
  const Generation g = latest();
  ASSERT_OK_AND_ASSIGN(FileHandle fh, vfs_->Open(f, O_WRONLY | O_TRUNC));
  ASSERT_OK(vfs_->Write(fh, 0, "second", 6));
  ASSERT_OK(vfs_->Release(fh));
  ASSERT_OK(vfs_->Unlink(kRootIno, "f"));
  ASSERT_OK_AND_ASSIGN(Attr root, ViewRoot("g" + std::to_string(g)));
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, Names(*vfs_, root.ino));
  EXPECT_EQ(names, std::vector<std::string>{"f"});
  ASSERT_OK_AND_ASSIGN(Attr then, vfs_->Lookup(root.ino, "f"));
  ASSERT_OK_AND_ASSIGN(std::string got, ReadFile(*vfs_, then.ino));
  EXPECT_EQ(got, "first");
}

TEST_F(SnapfsDirTest, RefusesEveryChangeWithReadOnly) {
  ASSERT_OK_AND_ASSIGN(Ino f, WriteFile(*vfs_, kRootIno, "f", "data"));
  ASSERT_OK_AND_ASSIGN(Attr snapfs, vfs_->Lookup(kRootIno, ".snapfs"));
  ASSERT_OK_AND_ASSIGN(Attr root, ViewRoot("now"));
  ASSERT_OK_AND_ASSIGN(Attr past, vfs_->Lookup(root.ino, "f"));
  const Generation g = latest();
  SetAttrRequest chmod;
  chmod.mode = 0600;
  EXPECT_CODE(vfs_->SetAttr(past.ino, chmod), Code::kReadOnly);
  EXPECT_CODE(vfs_->Mkdir(snapfs.ino, "x", 0755, kUser), Code::kReadOnly);
  EXPECT_CODE(vfs_->Mkdir(root.ino, "x", 0755, kUser), Code::kReadOnly);
  EXPECT_CODE(vfs_->Create(root.ino, "x", 0644, O_WRONLY, kUser), Code::kReadOnly);
  EXPECT_CODE(vfs_->Unlink(root.ino, "f"), Code::kReadOnly);
  EXPECT_CODE(vfs_->Rmdir(kRootIno, ".snapfs"), Code::kReadOnly);
  EXPECT_CODE(vfs_->Rename(root.ino, "f", kRootIno, "g", 0), Code::kReadOnly);
  EXPECT_CODE(vfs_->Rename(kRootIno, "f", kRootIno, ".snapfs", 0), Code::kReadOnly);
  EXPECT_CODE(vfs_->Link(past.ino, kRootIno, "g"), Code::kReadOnly);
  EXPECT_CODE(vfs_->Link(f, root.ino, "g"), Code::kReadOnly);
  EXPECT_CODE(vfs_->Open(past.ino, O_WRONLY), Code::kReadOnly);
  EXPECT_CODE(vfs_->Open(past.ino, O_RDONLY | O_TRUNC), Code::kReadOnly);
  ASSERT_OK_AND_ASSIGN(FileHandle fh, vfs_->Open(past.ino, O_RDONLY));
  EXPECT_CODE(vfs_->Write(fh, 0, "x", 1), Code::kReadOnly);
  EXPECT_CODE(vfs_->Fallocate(fh, 0, 0, 100), Code::kReadOnly);
  ASSERT_OK(vfs_->Release(fh));
  EXPECT_CODE(vfs_->Mkdir(kRootIno, ".snapfs", 0755, kUser), Code::kExists);
  EXPECT_EQ(latest(), g);
}

TEST_F(SnapfsDirTest, ForgottenViewsAreRecycledSoManyStatesCanBeVisited) {
  // More distinct past states than views may exist at once: each is looked
  // up, read, and forgotten, as the kernel does.
  ASSERT_OK_AND_ASSIGN(Ino f, WriteFile(*vfs_, kRootIno, "f", "v0"));
  std::vector<Generation> gens;
  for (size_t i = 1; i <= SnapshotDir::kMaxViews + 20; ++i) {
    SetAttrRequest chmod;
    chmod.mode = 0600 | (i % 2 ? 0044 : 0004);
    Result<Attr> changed = vfs_->SetAttr(f, chmod);
    ASSERT_OK(changed.status());
    gens.push_back(latest());
  }
  for (Generation g : gens) {
    ASSERT_OK_AND_ASSIGN(Attr root, ViewRoot("g" + std::to_string(g)));
    ASSERT_OK_AND_ASSIGN(Attr past, vfs_->Lookup(root.ino, "f"));
    ASSERT_OK_AND_ASSIGN(std::string got, ReadFile(*vfs_, past.ino));
    EXPECT_EQ(got, "v0");
    vfs_->Forget(past.ino, 1);
    vfs_->Forget(root.ino, 1);
  }
  // A view still referenced is never recycled: its inode keeps answering.
  ASSERT_OK_AND_ASSIGN(Attr kept, ViewRoot("g" + std::to_string(gens.front())));
  for (size_t i = 0; i < SnapshotDir::kMaxViews; ++i) {
    ASSERT_OK_AND_ASSIGN(Attr root, ViewRoot("g" + std::to_string(gens[i + 1])));
    vfs_->Forget(root.ino, 1);
  }
  ASSERT_OK_AND_ASSIGN(Attr again, vfs_->GetAttr(kept.ino));
  EXPECT_EQ(again.ino, kept.ino);
  ASSERT_OK_AND_ASSIGN(Attr past, vfs_->Lookup(kept.ino, "f"));
  EXPECT_EQ(past.mode & 07777, 0600u | 0044u);
}

}  // namespace
}  // namespace snapfs::fs::testing
