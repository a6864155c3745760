#include "store/pack_file.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <xxhash.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "tests/store/test_util.h"

namespace snapfs::store {
namespace {

using testing::ReadWholeFile;
using testing::SeededBytes;
using testing::TempDir;
using testing::Unhex;
using testing::WriteWholeFile;
using testing::XorFileByte;

ChunkId IdFromSeed(uint64_t seed) {
  const std::string bytes = SeededBytes(16, seed);
  return ChunkId::FromBytes(reinterpret_cast<const uint8_t*>(bytes.data()));
}

class PackFileTest : public ::testing::Test {
 protected:
  std::unique_ptr<PackWriter> OpenWriter(uint64_t target = kDefaultPackTarget,
                                         uint64_t flush_step = kDefaultFlushStep) {
    Result<std::unique_ptr<PackWriter>> w = PackWriter::Open(dir_.path(), target, flush_step);
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    return w.ok() ? std::move(w).value() : nullptr;
  }
  // Returns once `w` has done a background sync, or after 10 s.
  static void WaitForABackgroundSync(PackWriter& w) {
    for (int i = 0; i < 1000 && w.background_syncs() == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Appends `payload` as chunk `id` (raw) and syncs.
  ChunkLocation AppendSynced(PackWriter& w, const ChunkId& id, const std::string& payload) {
    Result<ChunkLocation> loc = w.Append(id, Codec::kRaw, static_cast<uint32_t>(payload.size()),
                                         payload);
    EXPECT_TRUE(loc.ok()) << loc.status().ToString();
    EXPECT_OK(w.Sync());
    return loc.ok() ? *loc : ChunkLocation{};
  }
  // Reading `id` at `loc` fails with Corruption whose message names the chunk.
  void ExpectCorruptionNamingChunk(PackReader& reader, const ChunkId& id, const ChunkLocation& loc) {
    Result<std::string> r = reader.Read(id, loc);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
    EXPECT_NE(r.status().message().find(id.Hex()), std::string::npos) << r.status().message();
  }

  // `count` packs of one record each (chunk IdFromSeed(100 + i)), synced;
  // the writer is closed again, so it holds no fd.
  std::vector<ChunkLocation> OnePerPack(const std::string& payload, uint64_t count) {
    auto w = OpenWriter(/*target=*/100);  // Each record passes the target size.
    std::vector<ChunkLocation> locs;
    for (uint64_t i = 0; w && i < count; ++i) {
      Result<ChunkLocation> loc = w->Append(IdFromSeed(100 + i), Codec::kRaw,
                                            static_cast<uint32_t>(payload.size()), payload);
      EXPECT_TRUE(loc.ok()) << loc.status().ToString();
      if (loc.ok()) locs.push_back(*loc);
    }
    if (w) EXPECT_OK(w->Sync());
    return locs;
  }

  TempDir dir_;
  const ChunkId id_ = IdFromSeed(1);
  const std::string payload_ = SeededBytes(1000, 2);
};

TEST_F(PackFileTest, AppendThenReadReturnsThePayload) {
  auto w = OpenWriter();
  std::vector<std::pair<ChunkId, std::string>> chunks;
  std::vector<ChunkLocation> locs;
  for (uint64_t i = 0; i < 20; ++i) {
    chunks.emplace_back(IdFromSeed(100 + i), SeededBytes(i * 997, 200 + i));
    locs.push_back(AppendSynced(*w, chunks.back().first, chunks.back().second));
  }
  PackReader reader(dir_.path());
  for (size_t i = 0; i < chunks.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(std::string got, reader.Read(chunks[i].first, locs[i]));
    EXPECT_EQ(got, chunks[i].second) << i;
  }
}

TEST_F(PackFileTest, PackAndRecordLayoutMatchTheFormat) {
  auto w = OpenWriter();
  const ChunkId id = ChunkId::FromBytes(reinterpret_cast<const uint8_t*>(
      Unhex("000102030405060708090a0b0c0d0e0f").data()));
  ASSERT_OK_AND_ASSIGN(ChunkLocation loc, w->Append(id, Codec::kZstd, 0x10000, "xyz"));
  ASSERT_OK(w->Sync());
  EXPECT_EQ(loc, (ChunkLocation{Codec::kZstd, 0x10000, 3, 1, 16}));
  const std::string file = ReadWholeFile(PackPath(dir_.path(), 1));
  ASSERT_EQ(file.size(), 16u + 45u + 3u);
  EXPECT_EQ(file.substr(0, 16), "SNAPPACK" + Unhex("00000001 00000001"));
  const std::string hashed =
      Unhex("534e4348 000102030405060708090a0b0c0d0e0f 01 00010000 00000003");
  EXPECT_EQ(file.substr(16, 29), hashed);
  auto be64 = [](uint64_t v) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (56 - 8 * i));
    return s;
  };
  EXPECT_EQ(file.substr(45, 8), be64(XXH3_64bits(hashed.data(), hashed.size())));
  EXPECT_EQ(file.substr(53, 8), be64(XXH3_64bits("xyz", 3)));
  EXPECT_EQ(file.substr(61), "xyz");
}

TEST_F(PackFileTest, DeltaRecordCarriesItsBaseIdAfterTheCodecUnderTheHeaderHash) {
  auto w = OpenWriter();
  const ChunkId id = ChunkId::FromBytes(reinterpret_cast<const uint8_t*>(
      Unhex("000102030405060708090a0b0c0d0e0f").data()));
  const ChunkId base = ChunkId::FromBytes(reinterpret_cast<const uint8_t*>(
      Unhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff").data()));
  ASSERT_OK_AND_ASSIGN(ChunkLocation loc, w->Append(id, Codec::kZstdDelta, 0x10000, "xyz", base));
  ASSERT_OK(w->Sync());
  EXPECT_EQ(loc, (ChunkLocation{Codec::kZstdDelta, 0x10000, 3, 1, 16, base}));
  const std::string file = ReadWholeFile(PackPath(dir_.path(), 1));
  ASSERT_EQ(file.size(), 16u + 61u + 3u);
  const std::string hashed = Unhex(
      "534e4348 000102030405060708090a0b0c0d0e0f 02 f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff "
      "00010000 00000003");
  EXPECT_EQ(file.substr(16, 45), hashed);
  auto be64 = [](uint64_t v) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (56 - 8 * i));
    return s;
  };
  EXPECT_EQ(file.substr(61, 8), be64(XXH3_64bits(hashed.data(), hashed.size())));
  EXPECT_EQ(file.substr(69, 8), be64(XXH3_64bits("xyz", 3)));
  EXPECT_EQ(file.substr(77), "xyz");

  PackReader reader(dir_.path());
  ASSERT_OK_AND_ASSIGN(std::string got, reader.Read(id, loc));
  EXPECT_EQ(got, "xyz");
  // Every header byte, the base id included, is checked.
  for (uint64_t i = 0; i < kDeltaRecordHeaderSize; ++i) {
    SCOPED_TRACE("header byte " + std::to_string(i));
    XorFileByte(PackPath(dir_.path(), 1), loc.offset + i, 0x01);
    ExpectCorruptionNamingChunk(reader, id, loc);
    XorFileByte(PackPath(dir_.path(), 1), loc.offset + i, 0x01);
  }
  // An index naming another base disagrees with the record.
  ChunkLocation other = loc;
  other.base.bytes[0] ^= 1;
  ExpectCorruptionNamingChunk(reader, id, other);
  // Another codec in the index reads the record with the wrong header size.
  ChunkLocation plain = loc;
  plain.codec = Codec::kZstd;
  plain.base = ChunkId{};
  ExpectCorruptionNamingChunk(reader, id, plain);
}

// Commit records sit between chunk records (plain and delta); a scan steps
// over the chunks by their headers and returns the commits in order, with
// the documented 32-byte header; a record cut short ends the scan.
TEST_F(PackFileTest, ScanCommitsStepsOverChunksAndStopsAtATornRecord) {
  auto w = OpenWriter();
  ASSERT_NE(w, nullptr);
  Result<ChunkLocation> a = w->Append(IdFromSeed(5), Codec::kRaw, 1000, payload_);
  ASSERT_OK(a.status());
  ASSERT_OK(w->AppendCommit(7, "first batch"));
  Result<ChunkLocation> b = w->Append(IdFromSeed(6), Codec::kZstdDelta, 4000, payload_, IdFromSeed(5));
  ASSERT_OK(b.status());
  ASSERT_OK(w->AppendCommit(8, std::string(3000, 'b')));
  ASSERT_OK(w->Sync());
  const uint32_t pack = w->current_pack();
  w.reset();
  const std::string path = PackPath(dir_.path(), pack);
  const std::string bytes = ReadWholeFile(path);
  const size_t first = kPackHeaderSize + kRecordHeaderSize + payload_.size();
  EXPECT_EQ(bytes.substr(first, 4), "SNCB");
  EXPECT_EQ(bytes.substr(first + 4, 8), Unhex("0000000000000007"));
  EXPECT_EQ(bytes.substr(first + 12, 4), Unhex("0000000b"));
  EXPECT_EQ(bytes.substr(first + kCommitHeaderSize, 11), "first batch");

  std::vector<std::pair<uint64_t, std::string>> seen;
  auto collect = [&](uint64_t g, std::string batch) { seen.emplace_back(g, std::move(batch)); };
  ASSERT_OK(ScanCommits(dir_.path(), pack, collect));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], std::make_pair(uint64_t{7}, std::string("first batch")));
  EXPECT_EQ(seen[1], std::make_pair(uint64_t{8}, std::string(3000, 'b')));

  std::filesystem::resize_file(path, bytes.size() - 1);
  seen.clear();
  ASSERT_OK(ScanCommits(dir_.path(), pack, collect));
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].first, 7u);
  // A damaged batch hash ends the scan there too.
  std::string flipped = bytes;
  flipped[first + kCommitHeaderSize] ^= 1;
  std::filesystem::remove(path);
  WriteWholeFile(path, flipped);
  seen.clear();
  ASSERT_OK(ScanCommits(dir_.path(), pack, collect));
  EXPECT_TRUE(seen.empty());
}

TEST_F(PackFileTest, PackPathIsEightDecimalDigits) {
  EXPECT_EQ(PackPath("/s/packs", 42), "/s/packs/00000042.pack");
}

TEST_F(PackFileTest, EveryHeaderByteFlipIsCorruptionNamingTheChunk) {
  auto w = OpenWriter();
  const ChunkLocation loc = AppendSynced(*w, id_, payload_);
  PackReader reader(dir_.path());
  const std::string path = PackPath(dir_.path(), 1);
  for (uint64_t i = 0; i < kRecordHeaderSize; ++i) {
    for (uint8_t mask : {0x01, 0x80}) {
      SCOPED_TRACE("header byte " + std::to_string(i));
      XorFileByte(path, loc.offset + i, mask);
      ExpectCorruptionNamingChunk(reader, id_, loc);
      XorFileByte(path, loc.offset + i, mask);
    }
  }
  EXPECT_OK(reader.Read(id_, loc));
}

TEST_F(PackFileTest, EveryPayloadByteFlipIsCorruptionNamingTheChunk) {
  auto w = OpenWriter();
  const ChunkLocation loc = AppendSynced(*w, id_, payload_);
  PackReader reader(dir_.path());
  const std::string path = PackPath(dir_.path(), 1);
  for (uint64_t i = 0; i < payload_.size(); ++i) {
    SCOPED_TRACE("payload byte " + std::to_string(i));
    XorFileByte(path, loc.offset + kRecordHeaderSize + i, 0x04);
    ExpectCorruptionNamingChunk(reader, id_, loc);
    XorFileByte(path, loc.offset + kRecordHeaderSize + i, 0x04);
  }
  EXPECT_OK(reader.Read(id_, loc));
}

TEST_F(PackFileTest, ReadWithAnotherIdIsCorruption) {
  auto w = OpenWriter();
  const ChunkLocation loc = AppendSynced(*w, id_, payload_);
  PackReader reader(dir_.path());
  ExpectCorruptionNamingChunk(reader, IdFromSeed(99), loc);
}

TEST_F(PackFileTest, LocationThatDisagreesWithTheRecordIsCorruption) {
  auto w = OpenWriter();
  const ChunkLocation loc = AppendSynced(*w, id_, payload_);
  AppendSynced(*w, IdFromSeed(5), SeededBytes(500, 5));  // Bytes follow the record.
  PackReader reader(dir_.path());
  ChunkLocation bad = loc;
  bad.codec = Codec::kZstd;
  ExpectCorruptionNamingChunk(reader, id_, bad);
  bad = loc;
  bad.raw_len++;
  ExpectCorruptionNamingChunk(reader, id_, bad);
  bad = loc;
  bad.stored_len--;
  ExpectCorruptionNamingChunk(reader, id_, bad);
  bad = loc;
  bad.stored_len++;
  ExpectCorruptionNamingChunk(reader, id_, bad);
  bad = loc;
  bad.offset++;
  ExpectCorruptionNamingChunk(reader, id_, bad);
}

TEST_F(PackFileTest, AbsurdStoredLengthIsCorruptionNotAHugeRead) {
  auto w = OpenWriter();
  ChunkLocation loc = AppendSynced(*w, id_, payload_);
  loc.stored_len = 0xfffffff0;  // A damaged index entry.
  PackReader reader(dir_.path());
  ExpectCorruptionNamingChunk(reader, id_, loc);
}

TEST_F(PackFileTest, TruncatedPackIsCorruption) {
  auto w = OpenWriter();
  const ChunkLocation loc = AppendSynced(*w, id_, payload_);
  w.reset();
  const std::string path = PackPath(dir_.path(), 1);
  const std::string whole = ReadWholeFile(path);
  PackReader reader(dir_.path());
  // Cut anywhere inside the record: in the header, in the payload, before it.
  for (uint64_t size : {uint64_t{0}, uint64_t{10}, loc.offset, loc.offset + 1,
                        loc.offset + kRecordHeaderSize - 1, loc.offset + kRecordHeaderSize,
                        loc.offset + kRecordHeaderSize + payload_.size() / 2,
                        loc.offset + kRecordHeaderSize + payload_.size() - 1}) {
    SCOPED_TRACE("pack cut to " + std::to_string(size));
    testing::WriteWholeFile(path, std::string_view(whole).substr(0, size));
    ExpectCorruptionNamingChunk(reader, id_, loc);
  }
}

// NotFound, not Corruption: GC may have moved the record and removed the
// pack, and the ChunkStore then looks the chunk up again (it reports
// Corruption if the pack is still missing).
TEST_F(PackFileTest, MissingPackIsNotFound) {
  auto w = OpenWriter();
  ChunkLocation loc = AppendSynced(*w, id_, payload_);
  loc.pack = 7;
  PackReader reader(dir_.path());
  Result<std::string> r = reader.Read(id_, loc);
  EXPECT_EQ(r.status().code(), Code::kNotFound) << r.status().ToString();
}

TEST_F(PackFileTest, RollsOverToANewPackPastTheTargetSize) {
  auto w = OpenWriter(/*target=*/1000);
  const std::string payload = SeededBytes(600, 3);
  std::vector<ChunkLocation> locs;
  for (uint64_t i = 0; i < 5; ++i) locs.push_back(AppendSynced(*w, IdFromSeed(i), payload));
  // 16 + 2 * (45 + 600) passes 1000 after two records; each later pack holds two.
  EXPECT_EQ(locs[0].pack, 1u);
  EXPECT_EQ(locs[1].pack, 1u);
  EXPECT_EQ(locs[1].offset, 16u + 45 + 600);
  EXPECT_EQ(locs[2].pack, 2u);
  EXPECT_EQ(locs[2].offset, 16u);
  EXPECT_EQ(locs[3].pack, 2u);
  EXPECT_EQ(locs[4].pack, 3u);
  EXPECT_EQ(ReadWholeFile(PackPath(dir_.path(), 2)).substr(0, 16),
            "SNAPPACK" + Unhex("00000001 00000002"));
  PackReader reader(dir_.path());
  for (uint64_t i = 0; i < locs.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(std::string got, reader.Read(IdFromSeed(i), locs[i]));
    EXPECT_EQ(got, payload);
  }
}

// Open file descriptors of this process.
size_t OpenFdCount() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n - 1;  // The iterator's own.
}

TEST_F(PackFileTest, ReaderKeepsAtMostMaxOpenFds) {
  const std::string payload = SeededBytes(300, 4);
  const std::vector<ChunkLocation> locs = OnePerPack(payload, 30);
  ASSERT_EQ(locs.size(), 30u);
  EXPECT_EQ(locs.back().pack, 30u);
  const size_t before = OpenFdCount();
  PackReader reader(dir_.path(), /*max_open=*/4);
  // Forwards, backwards, and the same few packs again: every read verified.
  for (int pass = 0; pass < 3; ++pass) {
    for (size_t k = 0; k < locs.size(); ++k) {
      const size_t i = pass == 1 ? locs.size() - 1 - k : (pass == 2 ? k % 3 : k);
      ASSERT_OK_AND_ASSIGN(std::string got, reader.Read(IdFromSeed(100 + i), locs[i]));
      EXPECT_EQ(got, payload) << "pack " << locs[i].pack;
      EXPECT_LE(reader.open_count(), 4u);
    }
  }
  EXPECT_LE(OpenFdCount(), before + 4);
}

TEST_F(PackFileTest, ReaderOutOfFdsClosesIdleOnesAndRetries) {
  const std::string payload = SeededBytes(300, 5);
  const std::vector<ChunkLocation> locs = OnePerPack(payload, 12);
  ASSERT_EQ(locs.size(), 12u);
  PackReader reader(dir_.path());
  for (size_t i = 0; i < 6; ++i) {
    Result<std::string> r = reader.Read(IdFromSeed(100 + i), locs[i]);
    ASSERT_OK(r.status());
  }
  ASSERT_EQ(reader.open_count(), 6u);
  // No descriptor left (a new one gets the lowest free number, which the limit
  // forbids): the next pack opens only once the reader lets go of its idle ones.
  const int lowest_free = ::dup(0);
  ASSERT_GE(lowest_free, 0);
  ::close(lowest_free);
  rlimit saved {};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(lowest_free);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
  Result<std::string> got = reader.Read(IdFromSeed(106), locs[6]);
  const size_t kept = reader.open_count();
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_OK(got.status());
  EXPECT_EQ(*got, payload);
  EXPECT_EQ(kept, 1u);
  for (size_t i = 0; i < locs.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(std::string again, reader.Read(IdFromSeed(100 + i), locs[i]));
    EXPECT_EQ(again, payload);
  }
}

// An append the file system takes only in part (here: the file-size limit
// cuts the record's payload short, then refuses the rest) fails, and leaves
// no partial record: the next append starts where the failed one did, and
// every record reads back.
TEST_F(PackFileTest, AnAppendCutShortFailsAndLeavesNoPartialRecord) {
  auto w = OpenWriter();
  const std::string first = SeededBytes(1000, 21), second = SeededBytes(5000, 22);
  const ChunkLocation at_first = AppendSynced(*w, IdFromSeed(21), first);
  const uint64_t end = at_first.offset + kRecordHeaderSize + first.size();
  rlimit saved {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(end + kRecordHeaderSize + 100);
  sighandler_t old = std::signal(SIGXFSZ, SIG_IGN);  // EFBIG instead of a signal.
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &tight), 0);
  Result<ChunkLocation> failed = w->Append(IdFromSeed(22), Codec::kRaw, 5000, second);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &saved), 0);
  std::signal(SIGXFSZ, old);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find(PackPath(dir_.path(), at_first.pack)), std::string::npos)
      << failed.status().ToString();
  EXPECT_EQ(std::filesystem::file_size(PackPath(dir_.path(), at_first.pack)), end);
  const ChunkLocation at_second = AppendSynced(*w, IdFromSeed(22), second);
  EXPECT_EQ(at_second.offset, end);
  PackReader reader(dir_.path());
  ASSERT_OK_AND_ASSIGN(std::string got_first, reader.Read(IdFromSeed(21), at_first));
  EXPECT_EQ(got_first, first);
  ASSERT_OK_AND_ASSIGN(std::string got_second, reader.Read(IdFromSeed(22), at_second));
  EXPECT_EQ(got_second, second);
}

// Several records in one write: each lands right after the one before,
// reads back like an appended one, and a write cut short stores none of them.
TEST_F(PackFileTest, ChunksAppendedTogetherReadBackAndFailTogether) {
  auto w = OpenWriter();
  const ChunkLocation before = AppendSynced(*w, IdFromSeed(30), SeededBytes(100, 30));
  std::vector<ChunkId> ids;
  std::vector<std::string> payloads;
  for (uint64_t i = 0; i < PackWriter::kMaxAppendBatch; ++i) {
    ids.push_back(IdFromSeed(31 + i));
    payloads.push_back(SeededBytes(i * 1013 + 1, 31 + i));
  }
  const ChunkId base = IdFromSeed(99), none;
  std::vector<PackWriter::ChunkRecord> records;
  for (size_t i = 0; i < ids.size(); ++i) {
    const Codec codec = i == 5 ? Codec::kZstdDelta : Codec::kRaw;  // Its header is longer.
    records.push_back({ids[i], codec, static_cast<uint32_t>(payloads[i].size()), payloads[i],
                       codec == Codec::kZstdDelta ? base : none});
  }
  std::vector<ChunkLocation> locs(records.size());
  ASSERT_OK(w->AppendChunks(records, locs.data()));
  ASSERT_OK(w->Sync());
  uint64_t at = before.offset + kRecordHeaderSize + 100;
  PackReader reader(dir_.path());
  for (size_t i = 0; i < records.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(locs[i].pack, before.pack);
    EXPECT_EQ(locs[i].offset, at);
    EXPECT_EQ(locs[i].codec, records[i].codec);
    EXPECT_EQ(locs[i].stored_len, payloads[i].size());
    EXPECT_EQ(locs[i].base, i == 5 ? base : none);
    if (i != 5) {  // A delta's payload is read by decoding it against its base.
      ASSERT_OK_AND_ASSIGN(std::string got, reader.Read(ids[i], locs[i]));
      EXPECT_EQ(got, payloads[i]);
    }
    at += RecordHeaderSize(records[i].codec) + payloads[i].size();
  }
  const std::string pack = PackPath(dir_.path(), before.pack);
  EXPECT_EQ(std::filesystem::file_size(pack), at);

  // Room for the first record only: the whole write fails and is cut back.
  rlimit saved {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(at + kRecordHeaderSize + payloads[0].size() + 10);
  sighandler_t old = std::signal(SIGXFSZ, SIG_IGN);  // EFBIG instead of a signal.
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &tight), 0);
  const Status failed = w->AppendChunks(std::span(records).first(3), locs.data());
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &saved), 0);
  std::signal(SIGXFSZ, old);
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(std::filesystem::file_size(pack), at);
  const ChunkLocation after = AppendSynced(*w, IdFromSeed(90), SeededBytes(10, 90));
  EXPECT_EQ(after.offset, at);
}

TEST_F(PackFileTest, NewWriterStartsOnePastTheHighestPack) {
  { auto w = OpenWriter(); }
  EXPECT_TRUE(std::filesystem::exists(PackPath(dir_.path(), 1)));
  { auto w = OpenWriter(); }
  EXPECT_TRUE(std::filesystem::exists(PackPath(dir_.path(), 2)));
  // Other files do not count; a gap does not matter.
  testing::WriteWholeFile(PackPath(dir_.path(), 41), "");
  testing::WriteWholeFile(dir_.path() + "/00000099.pack.tmp", "");
  testing::WriteWholeFile(dir_.path() + "/notes.txt", "");
  auto w = OpenWriter();
  ASSERT_OK_AND_ASSIGN(ChunkLocation loc, w->Append(id_, Codec::kRaw, 3, "abc"));
  EXPECT_EQ(loc.pack, 42u);
  EXPECT_FALSE(std::filesystem::exists(PackPath(dir_.path(), 100)));
}

TEST_F(PackFileTest, NewPackFileIsPrivate) {
  auto w = OpenWriter();
  struct stat st {};
  ASSERT_EQ(::stat(PackPath(dir_.path(), 1).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// The writer syncs in the background once `flush_step` bytes have been
// appended since its last background sync, and not before.
TEST_F(PackFileTest, SyncsInTheBackgroundEveryFlushStep) {
  const std::string payload = SeededBytes(1000, 5);
  auto w = OpenWriter(kDefaultPackTarget, /*flush_step=*/10 * 1045);
  for (uint64_t i = 0; i < 9; ++i)
    ASSERT_TRUE(w->Append(IdFromSeed(i), Codec::kRaw, 1000, payload).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(w->background_syncs(), 0u);  // 9 records of 1045 bytes: not yet.
  ASSERT_TRUE(w->Append(IdFromSeed(9), Codec::kRaw, 1000, payload).ok());
  WaitForABackgroundSync(*w);
  EXPECT_EQ(w->background_syncs(), 1u);
  EXPECT_OK(w->Sync());
  // Without a flush step, never.
  auto quiet = OpenWriter(kDefaultPackTarget, /*flush_step=*/0);
  for (uint64_t i = 0; i < 20; ++i)
    ASSERT_TRUE(quiet->Append(IdFromSeed(100 + i), Codec::kRaw, 1000, payload).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(quiet->background_syncs(), 0u);
}

// A background sync that fails is not lost: the next Sync() fails with it,
// although its own fdatasync succeeds (the kernel reports a failed writeback
// to one fdatasync only). The one after that succeeds again.
TEST_F(PackFileTest, AFailedBackgroundSyncFailsTheNextSync) {
  const std::string payload = SeededBytes(1000, 6);
  auto w = OpenWriter(kDefaultPackTarget, /*flush_step=*/4 * 1045);
  pack_testing::SetFailSyncs(true);
  for (uint64_t i = 0; i < 4; ++i)
    ASSERT_TRUE(w->Append(IdFromSeed(i), Codec::kRaw, 1000, payload).ok());
  WaitForABackgroundSync(*w);
  pack_testing::SetFailSyncs(false);
  ASSERT_EQ(w->background_syncs(), 1u);
  Status st = w->Sync();
  EXPECT_EQ(st.code(), Code::kIo) << st.ToString();
  EXPECT_NE(st.message().find("fdatasync pack"), std::string::npos) << st.ToString();
  EXPECT_OK(w->Sync());
}

// Appends that roll over to new packs while other threads sync, and the
// writer's own background syncs run every few records: every append and
// every sync succeeds and every record reads back.
TEST_F(PackFileTest, SyncsConcurrentWithRolloversAllSucceed) {
  auto w = OpenWriter(/*target=*/2048, /*flush_step=*/4096);
  const std::string payload = SeededBytes(300, 4);
  constexpr int kAppenders = 2, kPerThread = 1500;
  std::atomic<bool> done{false};
  std::atomic<int> sync_failures{0};
  std::vector<std::vector<ChunkLocation>> locs(kAppenders);
  std::thread syncer([&] {
    while (!done.load()) {
      Status st = w->Sync();
      if (!st.ok()) {
        ++sync_failures;
        ADD_FAILURE() << st.ToString();
      }
    }
  });
  std::vector<std::thread> appenders;
  for (int t = 0; t < kAppenders; ++t) {
    appenders.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Result<ChunkLocation> loc = w->Append(IdFromSeed(static_cast<uint64_t>(t * kPerThread + i)),
                                              Codec::kRaw, 300, payload);
        if (!loc.ok()) {
          ADD_FAILURE() << loc.status().ToString();
          return;
        }
        locs[t].push_back(*loc);
        if (i % 7 == 0) EXPECT_OK(w->Sync());
      }
    });
  }
  for (auto& t : appenders) t.join();
  done = true;
  syncer.join();
  EXPECT_OK(w->Sync());
  WaitForABackgroundSync(*w);
  EXPECT_GT(w->background_syncs(), 0u);
  EXPECT_EQ(sync_failures.load(), 0);
  PackReader reader(dir_.path());
  for (int t = 0; t < kAppenders; ++t) {
    ASSERT_EQ(locs[t].size(), static_cast<size_t>(kPerThread));
    for (int i = 0; i < kPerThread; ++i) {
      Result<std::string> got =
          reader.Read(IdFromSeed(static_cast<uint64_t>(t * kPerThread + i)), locs[t][i]);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      EXPECT_EQ(*got, payload);
    }
  }
}

}  // namespace
}  // namespace snapfs::store
