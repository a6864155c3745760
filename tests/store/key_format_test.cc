#include "store/key_format.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "tests/store/test_util.h"

namespace snapfs::store {
namespace {

using testing::Unhex;

ChunkId IdOf(uint8_t first) {
  ChunkId id;
  for (size_t i = 0; i < id.bytes.size(); ++i) id.bytes[i] = static_cast<uint8_t>(first + i);
  return id;
}

// A copy of `bytes` in a heap block of exactly that size, so that ASan
// reports a decoder that reads one byte too far.
class ExactBuffer {
 public:
  explicit ExactBuffer(std::string_view bytes) : data_(new char[bytes.size()]), size_(bytes.size()) {
    if (!bytes.empty()) std::memcpy(data_.get(), bytes.data(), bytes.size());
  }
  std::string_view view() const { return {data_.get(), size_}; }

 private:
  std::unique_ptr<char[]> data_;
  size_t size_;
};

// Bytewise order, as RocksDB's default comparator sorts keys.
bool Bytewise(const std::string& a, const std::string& b) {
  const int c = std::memcmp(a.data(), b.data(), std::min(a.size(), b.size()));
  return c != 0 ? c < 0 : a.size() < b.size();
}

// ---------------------------------------------------------------------------
// Byte layouts pinned against docs/format.md.

TEST(KeyFormatTest, ChunkKeyIsTheSixteenIdBytes) {
  EXPECT_EQ(keys::Chunk(IdOf(0)), Unhex("000102030405060708090a0b0c0d0e0f"));
}

TEST(KeyFormatTest, InodeKeyIsInoThenComplementedGeneration) {
  EXPECT_EQ(keys::Inode(0x0102030405060708, 5), Unhex("0102030405060708 fffffffffffffffa"));
  EXPECT_EQ(keys::InodePrefix(7), Unhex("0000000000000007"));
}

TEST(KeyFormatTest, DirentKeyIsParentNameNulComplementedGeneration) {
  EXPECT_EQ(keys::Dirent(7, "ab", 3), Unhex("0000000000000007 6162 00 fffffffffffffffc"));
  EXPECT_EQ(keys::DirentPrefix(7), Unhex("0000000000000007"));
  EXPECT_EQ(keys::DirentAfterName(7, "ab"), Unhex("0000000000000007 6162 01"));
}

TEST(KeyFormatTest, ExtentKeyIsInoGenerationPage) {
  EXPECT_EQ(keys::ExtentPage(9, 0x10, 0x0102),
            Unhex("0000000000000009 0000000000000010 00000102"));
}

TEST(KeyFormatTest, LogAndStateKeysAreTheGeneration) {
  EXPECT_EQ(keys::Log(0x0a0b), Unhex("0000000000000a0b"));
  EXPECT_EQ(keys::State(1), Unhex("0000000000000001"));
}

const ChunkLocation kLocation{Codec::kZstd, 0x10000, 0x1234, 3, 0x0102030405060708};
const char kLocationHex[] = "01 01 00010000 00001234 00000003 0102030405060708";

TEST(KeyFormatTest, ChunkLocationLayout) {
  EXPECT_EQ(EncodeChunkLocation(kLocation), Unhex(kLocationHex));
}

// Codec 2 (a delta) is record version 2: version 1's fields, then the base id.
const ChunkLocation kDeltaLocation{Codec::kZstdDelta, 0x10000, 0x99, 4, 0x20,
                                   ChunkId::FromBytes(reinterpret_cast<const uint8_t*>(
                                       "\x00\x11\x22\x33\x44\x55\x66\x77"
                                       "\x88\x99\xaa\xbb\xcc\xdd\xee\xff"))};
const char kDeltaLocationHex[] =
    "02 02 00010000 00000099 00000004 0000000000000020 00112233445566778899aabbccddeeff";

TEST(KeyFormatTest, DeltaChunkLocationLayoutAddsTheBaseId) {
  EXPECT_EQ(EncodeChunkLocation(kDeltaLocation), Unhex(kDeltaLocationHex));
}

InodeRecord FileInode() {
  InodeRecord r;
  r.op = Op::kWrite;
  r.mode = 0100644;
  r.uid = 1000;
  r.gid = 100;
  r.nlink = 1;
  r.size = 0x123456789;
  r.atime_ns = -1;
  r.mtime_ns = 0x1122334455667788;
  r.ctime_ns = 2;
  r.rdev = 0x0801;
  r.content_gen = 7;
  r.pages = 1;
  return r;
}
const char kFileInodeHex[] =
    "01 06 000081a4 000003e8 00000064 00000001 0000000123456789 ffffffffffffffff "
    "1122334455667788 0000000000000002 0000000000000801 0000000000000007 00000001 00";

InodeRecord SymlinkInode() {
  InodeRecord r;
  r.op = Op::kSymlink;
  r.mode = 0120777;
  r.nlink = 1;
  r.size = 6;
  r.symlink = "target";
  return r;
}
const char kSymlinkInodeHex[] =
    "01 03 0000a1ff 00000000 00000000 00000001 0000000000000006 0000000000000000 "
    "0000000000000000 0000000000000000 0000000000000000 0000000000000000 00000000 "
    "06 746172676574";

TEST(KeyFormatTest, InodeRecordLayout) {
  EXPECT_EQ(EncodeInodeRecord(FileInode()), Unhex(kFileInodeHex));
}

TEST(KeyFormatTest, InodeRecordSymlinkTargetIsLengthPrefixed) {
  EXPECT_EQ(EncodeInodeRecord(SymlinkInode()), Unhex(kSymlinkInodeHex));
}

TEST(KeyFormatTest, DirentRecordLayout) {
  EXPECT_EQ(EncodeDirentRecord({0x42, 8}), Unhex("01 0000000000000042 08"));
  EXPECT_EQ(EncodeDirentRecord({0, 0}), Unhex("01 0000000000000000 00"));
}

LogRecord RenameLog() {
  LogRecord r;
  r.time_ns = 0x0102030405060708;
  r.op = Op::kRename;
  r.ino = 5;
  r.parent = 1;
  r.name = "a";
  r.parent2 = 2;
  r.name2 = "bc";
  r.size = 10;
  r.bytes_written = 20;
  r.bytes_stored = 30;
  return r;
}
const char kRenameLogHex[] =
    "01 0102030405060708 0b 0000000000000005 0000000000000001 01 61 0000000000000002 "
    "02 6263 000000000000000a 0000000000000014 000000000000001e";

TEST(KeyFormatTest, LogRecordLayout) {
  EXPECT_EQ(EncodeLogRecord(RenameLog()), Unhex(kRenameLogHex));
}

const StateRecord kState{4, 9, 100, 200, 6, 2, 0x1000, 0x800};
const char kStateHex[] =
    "01 0000000000000009 0000000000000064 00000000000000c8 0000000000000006 "
    "0000000000000002 0000000000001000 0000000000000800";

TEST(KeyFormatTest, StateRecordLayoutLeavesFirstGenerationToTheKey) {
  EXPECT_EQ(EncodeStateRecord(kState), Unhex(kStateHex));
}

std::vector<Extent> TwoExtents() {
  return {Extent{0, 65536, 0, IdOf(0x00)}, Extent{65836, 200, 5, IdOf(0xf0)}};
}
// count 2; gap 0, length 65536, chunk offset 0, id; gap 300, length 200,
// chunk offset 5, id.
const char kTwoExtentsHex[] =
    "01 02 00 808004 00 000102030405060708090a0b0c0d0e0f "
    "ac02 c801 05 f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

TEST(KeyFormatTest, ExtentPageLayout) {
  EXPECT_EQ(EncodeExtentPage(TwoExtents(), 0), Unhex(kTwoExtentsHex));
}

TEST(KeyFormatTest, ExtentPageGapCountsFromThePreviousPage) {
  const std::vector<Extent> page = {Extent{66036, 1, 0, IdOf(0x10)}};
  EXPECT_EQ(EncodeExtentPage(page, 66036), Unhex("01 01 00 01 00 101112131415161718191a1b1c1d1e1f"));
  EXPECT_EQ(EncodeExtentPage(page, 66000), Unhex("01 01 24 01 00 101112131415161718191a1b1c1d1e1f"));
}

TEST(KeyFormatTest, EmptyExtentPageIsVersionAndZeroCount) {
  EXPECT_EQ(EncodeExtentPage({}, 0), Unhex("01 00"));
}

// ---------------------------------------------------------------------------
// Round trips.

const std::string kKey = "some key";

TEST(KeyFormatTest, ChunkLocationRoundTrips) {
  ASSERT_OK_AND_ASSIGN(ChunkLocation v, DecodeChunkLocation(Unhex(kLocationHex), kKey));
  EXPECT_EQ(v, kLocation);
  ASSERT_OK_AND_ASSIGN(ChunkLocation d, DecodeChunkLocation(Unhex(kDeltaLocationHex), kKey));
  EXPECT_EQ(d, kDeltaLocation);
}

TEST(KeyFormatTest, InodeRecordsRoundTrip) {
  for (const InodeRecord& r : {FileInode(), SymlinkInode()}) {
    ASSERT_OK_AND_ASSIGN(InodeRecord v, DecodeInodeRecord(EncodeInodeRecord(r), kKey));
    EXPECT_EQ(v, r);
  }
}

TEST(KeyFormatTest, DirentRecordRoundTrips) {
  ASSERT_OK_AND_ASSIGN(DirentRecord v, DecodeDirentRecord(EncodeDirentRecord({0x42, 8}), kKey));
  EXPECT_EQ(v, (DirentRecord{0x42, 8}));
}

TEST(KeyFormatTest, LogRecordRoundTrips) {
  ASSERT_OK_AND_ASSIGN(LogRecord v, DecodeLogRecord(EncodeLogRecord(RenameLog()), kKey));
  EXPECT_EQ(v, RenameLog());
}

TEST(KeyFormatTest, StateRecordRoundTripsWithFirstGenerationFromKey) {
  ASSERT_OK_AND_ASSIGN(StateRecord v, DecodeStateRecord(Unhex(kStateHex), keys::State(4)));
  EXPECT_EQ(v, kState);
}

TEST(KeyFormatTest, ExtentPagesRoundTripAcrossPages) {
  std::vector<Extent> all;
  uint64_t at = 12345;
  for (int i = 0; i < 9000; ++i) {
    all.push_back(Extent{at, static_cast<uint32_t>(1 + i * 37 % 300000),
                         static_cast<uint32_t>(i % 3), IdOf(static_cast<uint8_t>(i))});
    at = all.back().end() + (i % 5 == 0 ? 1000 * i : 0);
  }
  std::vector<Extent> decoded;
  uint64_t prev_end = 0;
  for (size_t i = 0; i < all.size(); i += kExtentsPerPage) {
    std::span<const Extent> page(all.data() + i, std::min(kExtentsPerPage, all.size() - i));
    ASSERT_OK_AND_ASSIGN(prev_end, DecodeExtentPage(EncodeExtentPage(page, prev_end), kKey,
                                                    prev_end, &decoded));
  }
  EXPECT_EQ(decoded, all);
  EXPECT_EQ(prev_end, all.back().end());
}

TEST(KeyFormatTest, KeysRoundTrip) {
  ASSERT_OK_AND_ASSIGN(auto inode, keys::DecodeInode(keys::Inode(0x0102030405060708, 5)));
  EXPECT_EQ(inode.ino, 0x0102030405060708u);
  EXPECT_EQ(inode.gen, 5u);
  const std::string name("a\x01\xff", 3);
  ASSERT_OK_AND_ASSIGN(auto dirent, keys::DecodeDirent(keys::Dirent(7, name, kLatest - 1)));
  EXPECT_EQ(dirent.parent, 7u);
  EXPECT_EQ(dirent.name, name);
  EXPECT_EQ(dirent.gen, kLatest - 1);
  ASSERT_OK_AND_ASSIGN(auto extent, keys::DecodeExtentPage(keys::ExtentPage(9, 16, 258)));
  EXPECT_EQ(extent.ino, 9u);
  EXPECT_EQ(extent.gen, 16u);
  EXPECT_EQ(extent.page, 258u);
  ASSERT_OK_AND_ASSIGN(Generation g, keys::DecodeGeneration(keys::Log(0x0a0b)));
  EXPECT_EQ(g, 0x0a0bu);
  ASSERT_OK_AND_ASSIGN(ChunkId id, keys::DecodeChunk(keys::Chunk(IdOf(3))));
  EXPECT_EQ(id, IdOf(3));
}

TEST(KeyFormatTest, CorruptionNamesTheKeyInHex) {
  const std::string key = keys::Dirent(7, "ab", 3);
  Result<DirentRecord> r = DecodeDirentRecord(Unhex("01 00"), key);
  ASSERT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_NE(r.status().message().find(HexBytes(key)), std::string::npos) << r.status().message();
}

// ---------------------------------------------------------------------------
// Damaged input: every decoder against truncations, flips and garbage.

// One decoder under test. `decode` returns the decoder's status and, when it
// is OK, the re-encoding of the decoded value.
struct Layout {
  std::string name;
  std::string valid;
  bool is_key;  // Values are self-delimiting: every truncation must fail.
  std::function<std::pair<Status, std::string>(std::string_view)> decode;
};

template <typename T, typename Decode, typename Encode>
std::function<std::pair<Status, std::string>(std::string_view)> DecodeThen(Decode decode,
                                                                            Encode encode) {
  return [decode, encode](std::string_view bytes) -> std::pair<Status, std::string> {
    Result<T> r = decode(bytes);
    if (!r.ok()) return {r.status(), ""};
    return {Status::Ok(), encode(*r)};
  };
}

std::vector<Layout> AllLayouts() {
  std::vector<Layout> out;
  out.push_back({"inode key", keys::Inode(0x0102030405060708, 5), true,
                 DecodeThen<keys::DecodedInodeKey>(
                     [](std::string_view b) { return keys::DecodeInode(b); },
                     [](const keys::DecodedInodeKey& k) { return keys::Inode(k.ino, k.gen); })});
  for (const std::string name : {"ab", "a\x01\xff", "x"}) {
    out.push_back({"dirent key " + HexBytes(name), keys::Dirent(7, name, 3), true,
                   DecodeThen<keys::DecodedDirentKey>(
                       [](std::string_view b) { return keys::DecodeDirent(b); },
                       [](const keys::DecodedDirentKey& k) {
                         return keys::Dirent(k.parent, k.name, k.gen);
                       })});
  }
  out.push_back({"extent key", keys::ExtentPage(9, 16, 258), true,
                 DecodeThen<keys::DecodedExtentKey>(
                     [](std::string_view b) { return keys::DecodeExtentPage(b); },
                     [](const keys::DecodedExtentKey& k) {
                       return keys::ExtentPage(k.ino, k.gen, k.page);
                     })});
  out.push_back({"log key", keys::Log(0x0a0b), true,
                 DecodeThen<Generation>([](std::string_view b) { return keys::DecodeGeneration(b); },
                                        [](Generation g) { return keys::Log(g); })});
  out.push_back({"chunk key", keys::Chunk(IdOf(3)), true,
                 DecodeThen<ChunkId>([](std::string_view b) { return keys::DecodeChunk(b); },
                                     [](const ChunkId& id) { return keys::Chunk(id); })});
  for (const char* hex : {kLocationHex, kDeltaLocationHex}) {
    out.push_back({"chunk location", Unhex(hex), false,
                   DecodeThen<ChunkLocation>(
                       [](std::string_view b) { return DecodeChunkLocation(b, kKey); },
                       [](const ChunkLocation& v) { return EncodeChunkLocation(v); })});
  }
  for (const InodeRecord& rec : {FileInode(), SymlinkInode()}) {
    out.push_back({"inode record", EncodeInodeRecord(rec), false,
                   DecodeThen<InodeRecord>(
                       [](std::string_view b) { return DecodeInodeRecord(b, kKey); },
                       [](const InodeRecord& v) { return EncodeInodeRecord(v); })});
  }
  out.push_back({"dirent record", EncodeDirentRecord({0x42, 8}), false,
                 DecodeThen<DirentRecord>(
                     [](std::string_view b) { return DecodeDirentRecord(b, kKey); },
                     [](const DirentRecord& v) { return EncodeDirentRecord(v); })});
  out.push_back({"log record", Unhex(kRenameLogHex), false,
                 DecodeThen<LogRecord>([](std::string_view b) { return DecodeLogRecord(b, kKey); },
                                       [](const LogRecord& v) { return EncodeLogRecord(v); })});
  out.push_back({"state record", Unhex(kStateHex), false,
                 DecodeThen<StateRecord>(
                     [](std::string_view b) { return DecodeStateRecord(b, keys::State(4)); },
                     [](const StateRecord& v) { return EncodeStateRecord(v); })});
  for (uint64_t prev_end : {uint64_t{0}, uint64_t{1} << 40}) {
    std::vector<Extent> extents = TwoExtents();
    for (Extent& e : extents) e.offset += prev_end;
    out.push_back({"extent page", EncodeExtentPage(extents, prev_end), false,
                   DecodeThen<std::vector<Extent>>(
                       [prev_end](std::string_view b) -> Result<std::vector<Extent>> {
                         std::vector<Extent> v;
                         Result<uint64_t> end = DecodeExtentPage(b, kKey, prev_end, &v);
                         if (!end.ok()) return end.status();
                         if (*end != (v.empty() ? prev_end : v.back().end()))
                           return Status::Invalid("wrong end returned");
                         return v;
                       },
                       [prev_end](const std::vector<Extent>& v) {
                         return EncodeExtentPage(v, prev_end);
                       })});
  }
  return out;
}

// `bytes` decodes to Corruption, or to a value that encodes back to exactly
// `bytes` (a damage that happens to keep the layout valid).
void ExpectCorruptionOrCanonical(const Layout& layout, std::string_view bytes) {
  const ExactBuffer exact(bytes);
  auto [status, reencoded] = layout.decode(exact.view());
  if (status.ok()) {
    EXPECT_EQ(HexBytes(reencoded), HexBytes(bytes))
        << layout.name << ": damaged bytes decoded to another value";
  } else {
    EXPECT_EQ(status.code(), Code::kCorruption) << layout.name << ": " << status.ToString();
  }
}

TEST(KeyFormatTest, EveryValidExampleDecodes) {
  for (const Layout& layout : AllLayouts()) {
    auto [status, reencoded] = layout.decode(ExactBuffer(layout.valid).view());
    ASSERT_TRUE(status.ok()) << layout.name << ": " << status.ToString();
    EXPECT_EQ(HexBytes(reencoded), HexBytes(layout.valid)) << layout.name;
  }
}

TEST(KeyFormatTest, EveryTruncationIsRejected) {
  for (const Layout& layout : AllLayouts()) {
    for (size_t n = 0; n < layout.valid.size(); ++n) {
      SCOPED_TRACE(layout.name + " cut to " + std::to_string(n) + " bytes");
      const std::string_view cut = std::string_view(layout.valid).substr(0, n);
      if (layout.is_key) {
        ExpectCorruptionOrCanonical(layout, cut);
      } else {
        EXPECT_EQ(layout.decode(ExactBuffer(cut).view()).first.code(), Code::kCorruption);
      }
    }
  }
}

TEST(KeyFormatTest, TrailingByteIsRejected) {
  for (const Layout& layout : AllLayouts()) {
    SCOPED_TRACE(layout.name);
    for (char extra : {'\0', '\x01', '\xff'}) ExpectCorruptionOrCanonical(layout, layout.valid + extra);
    if (!layout.is_key) {
      EXPECT_EQ(layout.decode(layout.valid + '\0').first.code(), Code::kCorruption);
    }
  }
}

TEST(KeyFormatTest, EverySingleByteFlipIsRejectedOrStillCanonical) {
  for (const Layout& layout : AllLayouts()) {
    for (size_t i = 0; i < layout.valid.size(); ++i) {
      for (uint8_t mask : {0x01, 0x02, 0x10, 0x40, 0x80, 0xff}) {
        SCOPED_TRACE(layout.name + " byte " + std::to_string(i) + " ^ " + std::to_string(mask));
        std::string flipped = layout.valid;
        flipped[i] = static_cast<char>(flipped[i] ^ mask);
        ExpectCorruptionOrCanonical(layout, flipped);
      }
    }
  }
}

TEST(KeyFormatTest, FlippedRecordVersionIsCorruption) {
  for (const Layout& layout : AllLayouts()) {
    if (layout.is_key) continue;
    std::string flipped = layout.valid;
    flipped[0] = flipped[0] == 2 ? 3 : 2;  // Another version than the layout's.
    EXPECT_EQ(layout.decode(flipped).first.code(), Code::kCorruption) << layout.name;
  }
}

TEST(KeyFormatTest, RandomGarbageNeverCrashes) {
  std::mt19937_64 rng(2024);
  for (const Layout& layout : AllLayouts()) {
    for (int i = 0; i < 3000; ++i) {
      std::string bytes(rng() % 120, '\0');
      for (char& c : bytes) c = static_cast<char>(rng());
      // Half of the inputs start like a real value, to get past the first check.
      if (!bytes.empty() && i % 2 == 0) bytes[0] = layout.valid[0];
      SCOPED_TRACE(layout.name + " garbage " + HexBytes(bytes));
      ExpectCorruptionOrCanonical(layout, bytes);
    }
  }
}

TEST(KeyFormatTest, UnknownCodecInChunkLocationIsCorruption) {
  std::string v = Unhex(kLocationHex);
  v[1] = 3;
  EXPECT_CODE(DecodeChunkLocation(v, kKey), Code::kCorruption);
}

TEST(KeyFormatTest, CodecAndRecordVersionOfAChunkLocationMustAgree) {
  // Version 1 cannot name a base, so it cannot hold a delta; version 2 is
  // only ever written for one.
  std::string v1_delta = Unhex(kLocationHex);
  v1_delta[1] = 2;
  EXPECT_CODE(DecodeChunkLocation(v1_delta, kKey), Code::kCorruption);
  std::string v2_zstd = Unhex(kDeltaLocationHex);
  v2_zstd[1] = 1;
  EXPECT_CODE(DecodeChunkLocation(v2_zstd, kKey), Code::kCorruption);
  std::string v3 = Unhex(kDeltaLocationHex);
  v3[0] = 3;
  EXPECT_CODE(DecodeChunkLocation(v3, kKey), Code::kCorruption);
  EXPECT_CODE(DecodeChunkLocation(Unhex(kDeltaLocationHex).substr(0, 37), kKey), Code::kCorruption);
}

TEST(KeyFormatTest, DirentKeyWithSlashOrNulInNameIsCorruption) {
  EXPECT_CODE(keys::DecodeDirent(keys::Dirent(7, "a/b", 3)), Code::kCorruption);
  EXPECT_CODE(keys::DecodeDirent(keys::Dirent(7, std::string("a\0b", 3), 3)), Code::kCorruption);
  EXPECT_CODE(keys::DecodeDirent(keys::Dirent(7, "", 3)), Code::kCorruption);
}

// ---------------------------------------------------------------------------
// Varints and extent pages.

TEST(KeyFormatTest, TenByteVarintIsAccepted) {
  // gap 2^63 (nine 0x80 bytes, then 0x01), length 1, chunk offset 0.
  const std::string page = Unhex("01 01 80808080808080808001 01 00") + keys::Chunk(IdOf(0));
  std::vector<Extent> out;
  ASSERT_OK_AND_ASSIGN(uint64_t end, DecodeExtentPage(page, kKey, 0, &out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].offset, uint64_t{1} << 63);
  EXPECT_EQ(end, (uint64_t{1} << 63) + 1);
}

TEST(KeyFormatTest, VarintPastSixtyFourBitsIsCorruption) {
  std::vector<Extent> out;
  // Tenth byte 0x02 sets bit 64.
  EXPECT_CODE(DecodeExtentPage(Unhex("01 01 80808080808080808002 01 00") + keys::Chunk(IdOf(0)),
                               kKey, 0, &out),
              Code::kCorruption);
  // Eleven bytes.
  EXPECT_CODE(DecodeExtentPage(Unhex("01 01 8080808080808080808001 01 00") + keys::Chunk(IdOf(0)),
                               kKey, 0, &out),
              Code::kCorruption);
  // A symlink length that never ends.
  std::string inode = EncodeInodeRecord(FileInode());
  inode.pop_back();
  inode += Unhex("ffffffffffffffffffffff01");
  EXPECT_CODE(DecodeInodeRecord(inode, kKey), Code::kCorruption);
}

TEST(KeyFormatTest, PaddedVarintIsCorruption) {
  std::vector<Extent> out;
  // length 1 written as "81 00": the same value, not the shortest form.
  EXPECT_CODE(DecodeExtentPage(Unhex("01 01 00 8100 00") + keys::Chunk(IdOf(0)), kKey, 0, &out),
              Code::kCorruption);
  // A symlink length of 0 written as "80 00".
  std::string inode = EncodeInodeRecord(FileInode());
  inode.back() = '\x80';
  inode.push_back('\0');
  EXPECT_CODE(DecodeInodeRecord(inode, kKey), Code::kCorruption);
}

TEST(KeyFormatTest, SymlinkLengthPastTheValueIsCorruption) {
  std::string inode = EncodeInodeRecord(SymlinkInode());
  inode[inode.size() - 7] = 7;  // Claims 7 bytes; 6 follow.
  EXPECT_CODE(DecodeInodeRecord(inode, kKey), Code::kCorruption);
}

std::vector<Extent> Consecutive(size_t n) {
  std::vector<Extent> v;
  for (size_t i = 0; i < n; ++i) v.push_back(Extent{i * 10, 10, 0, IdOf(static_cast<uint8_t>(i))});
  return v;
}

TEST(KeyFormatTest, ExtentPageOfFourThousandNinetySixIsAccepted) {
  std::vector<Extent> out;
  ASSERT_OK_AND_ASSIGN(uint64_t end,
                       DecodeExtentPage(EncodeExtentPage(Consecutive(kExtentsPerPage), 0), kKey,
                                        0, &out));
  EXPECT_EQ(out.size(), kExtentsPerPage);
  EXPECT_EQ(end, kExtentsPerPage * 10);
}

TEST(KeyFormatTest, ExtentPageWithCountOverFourThousandNinetySixIsCorruption) {
  std::vector<Extent> out;
  EXPECT_CODE(DecodeExtentPage(EncodeExtentPage(Consecutive(kExtentsPerPage + 1), 0), kKey, 0,
                               &out),
              Code::kCorruption);
}

TEST(KeyFormatTest, ExtentPageWithHugeCountAndShortValueIsCorruption) {
  std::vector<Extent> out;
  EXPECT_CODE(DecodeExtentPage(Unhex("01 ffffffffffffffff7f"), kKey, 0, &out), Code::kCorruption);
  EXPECT_CODE(DecodeExtentPage(Unhex("01 8020"), kKey, 0, &out), Code::kCorruption);  // 4096.
}

TEST(KeyFormatTest, ExtentOfLengthZeroIsCorruption) {
  std::vector<Extent> out;
  EXPECT_CODE(DecodeExtentPage(Unhex("01 01 00 00 00") + keys::Chunk(IdOf(0)), kKey, 0, &out),
              Code::kCorruption);
}

TEST(KeyFormatTest, ExtentLengthOrChunkOffsetPastThirtyTwoBitsIsCorruption) {
  std::vector<Extent> out;
  // length 2^32
  EXPECT_CODE(DecodeExtentPage(Unhex("01 01 00 8080808010 00") + keys::Chunk(IdOf(0)), kKey, 0,
                               &out),
              Code::kCorruption);
  // chunk offset 2^32
  EXPECT_CODE(DecodeExtentPage(Unhex("01 01 00 01 8080808010") + keys::Chunk(IdOf(0)), kKey, 0,
                               &out),
              Code::kCorruption);
}

TEST(KeyFormatTest, ExtentEndingPastSixtyFourBitsIsCorruption) {
  std::vector<Extent> out;
  // prev_end near 2^64 and a gap that wraps.
  EXPECT_CODE(DecodeExtentPage(Unhex("01 01 10 01 00") + keys::Chunk(IdOf(0)), kKey,
                               UINT64_MAX - 8, &out),
              Code::kCorruption);
  EXPECT_CODE(DecodeExtentPage(Unhex("01 01 00 10 00") + keys::Chunk(IdOf(0)), kKey,
                               UINT64_MAX - 8, &out),
              Code::kCorruption);
}

// ---------------------------------------------------------------------------
// Key order.

TEST(KeyFormatTest, NewerInodeVersionSortsFirst) {
  const std::vector<Generation> gens = {1, 2, 255, 256, 65536, kLatest - 1, kLatest};
  for (size_t i = 0; i + 1 < gens.size(); ++i) {
    EXPECT_TRUE(Bytewise(keys::Inode(5, gens[i + 1]), keys::Inode(5, gens[i])));
    // Every version of inode 5 sorts before any of inode 6, and after inode 4.
    EXPECT_TRUE(Bytewise(keys::Inode(5, gens[i]), keys::Inode(6, kLatest)));
    EXPECT_TRUE(Bytewise(keys::Inode(4, 1), keys::Inode(5, gens[i])));
  }
  EXPECT_TRUE(Bytewise(keys::Inode(255, 1), keys::Inode(256, kLatest)));
}

TEST(KeyFormatTest, DirentKeysGroupByNameInByteOrderNewestFirst) {
  const std::vector<std::string> names = {
      "a", "a\x01", std::string("a\x01", 2) + "b", "a\xff", "ab", "abc", "b",
      "\x01", "\xff", "\xff\xff", "..", "~"};
  const std::vector<Generation> gens = {1, 2, 300, kLatest - 1};
  struct Entry {
    std::string key, name;
    Generation gen;
  };
  std::vector<Entry> entries;
  for (const std::string& name : names)
    for (Generation g : gens) entries.push_back({keys::Dirent(7, name, g), name, g});
  // Keys of the neighbouring parents surround parent 7's.
  const std::string before = keys::Dirent(6, "\xff\xff\xff", 1);
  const std::string after = keys::Dirent(8, "\x01", kLatest);
  auto less = [](const Entry& x, const Entry& y) { return Bytewise(x.key, y.key); };
  std::sort(entries.begin(), entries.end(), less);
  std::vector<std::string> sorted_names = names;
  std::sort(sorted_names.begin(), sorted_names.end(), Bytewise);
  for (size_t i = 0; i < entries.size(); ++i) {
    SCOPED_TRACE(HexBytes(entries[i].key));
    // Contiguous per name, names in byte order, newest generation first.
    EXPECT_EQ(entries[i].name, sorted_names[i / gens.size()]);
    EXPECT_EQ(entries[i].gen, gens[gens.size() - 1 - i % gens.size()]);
    EXPECT_TRUE(Bytewise(before, entries[i].key));
    EXPECT_TRUE(Bytewise(entries[i].key, after));
    EXPECT_EQ(entries[i].key.substr(0, 8), keys::DirentPrefix(7));
    // DirentAfterName lies after every version of the name and before the next name.
    const std::string after_name = keys::DirentAfterName(7, entries[i].name);
    EXPECT_TRUE(Bytewise(entries[i].key, after_name));
    const size_t next = (i / gens.size() + 1) * gens.size();
    if (next < entries.size()) {
      EXPECT_TRUE(Bytewise(after_name, entries[next].key));
    }
  }
  // Seeking to (name, at) lands on the newest version at or before `at`.
  for (const std::string& name : names) {
    for (Generation at : {Generation{1}, Generation{2}, Generation{299}, Generation{300}, kLatest}) {
      const Entry probe{keys::Dirent(7, name, at), name, at};
      auto it = std::lower_bound(entries.begin(), entries.end(), probe, less);
      ASSERT_NE(it, entries.end());
      EXPECT_EQ(it->name, name);
      Generation want = 0;
      for (Generation g : gens)
        if (g <= at) want = g;
      EXPECT_EQ(it->gen, want) << HexBytes(name) << " at " << at;
    }
  }
}

TEST(KeyFormatTest, ExtentKeysSortByInoGenerationPage) {
  EXPECT_TRUE(Bytewise(keys::ExtentPage(5, 1, 0), keys::ExtentPage(5, 1, 1)));
  EXPECT_TRUE(Bytewise(keys::ExtentPage(5, 1, 255), keys::ExtentPage(5, 1, 256)));
  EXPECT_TRUE(Bytewise(keys::ExtentPage(5, 1, 70000), keys::ExtentPage(5, 2, 0)));
  EXPECT_TRUE(Bytewise(keys::ExtentPage(5, 255, 0), keys::ExtentPage(5, 256, 0)));
  EXPECT_TRUE(Bytewise(keys::ExtentPage(5, kLatest, 70000), keys::ExtentPage(6, 1, 0)));
}

TEST(KeyFormatTest, LogAndStateKeysSortNumerically) {
  for (Generation g : {Generation{1}, Generation{255}, Generation{65535}, kLatest - 1}) {
    EXPECT_TRUE(Bytewise(keys::Log(g), keys::Log(g + 1)));
    EXPECT_TRUE(Bytewise(keys::State(g), keys::State(g + 1)));
  }
}

TEST(KeyFormatTest, OpNamesCoverEveryOp) {
  EXPECT_STREQ(OpName(Op::kCreate), "create");
  EXPECT_STREQ(OpName(Op::kInit), "init");
  EXPECT_STREQ(OpName(static_cast<Op>(200)), "?");
}

}  // namespace
}  // namespace snapfs::store
