#include "store/codec.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace snapfs::store {
namespace {

// Prose-like text from a small vocabulary: compresses well, but not to nothing.
std::string TextLike(size_t len) {
  static const char* const kWords[] = {"chunk", "store", "version",  "file",  "the",
                                       "a",     "of",    "snapshot", "byte",  "index",
                                       "write", "read",  "fsync",    "inode", "42"};
  std::mt19937_64 rng(7);
  std::string text;
  while (text.size() < len) {
    text += kWords[rng() % std::size(kWords)];
    text += rng() % 8 == 0 ? ".\n" : " ";
  }
  text.resize(len);
  return text;
}

std::string RandomBytes(size_t len) {
  std::mt19937_64 rng(11);
  std::string bytes(len, '\0');
  for (char& c : bytes) c = static_cast<char>(rng());
  return bytes;
}

struct Stored {
  Codec codec = Codec::kZstdDelta;
  std::string bytes;
};

// `raw` encoded at `level`; fails the test on error.
Stored Encode(const std::string& raw, int level) {
  Stored stored;
  const Status status = EncodeChunk(raw, level, &stored.codec, &stored.bytes);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return stored;
}

// `stored` decoded; fails the test on error.
std::string Decode(const Stored& stored, size_t raw_len) {
  std::string decoded;
  const Status status = DecodeChunk(stored.codec, stored.bytes, raw_len, &decoded);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return decoded;
}

// The zstd frame stored for `raw` (which must compress).
std::string ZstdFrame(const std::string& raw) {
  const Stored stored = Encode(raw, 3);
  EXPECT_EQ(stored.codec, Codec::kZstd);
  return stored.bytes;
}

class CodecRoundTripTest : public testing::TestWithParam<int> {};

TEST_P(CodecRoundTripTest, TextIsCompressedAndComesBack) {
  const std::string raw = TextLike(64 * 1024);
  const Stored stored = Encode(raw, GetParam());
  EXPECT_EQ(stored.codec, Codec::kZstd);
  EXPECT_LT(stored.bytes.size(), raw.size() / 2);
  EXPECT_EQ(Decode(stored, raw.size()), raw);
}

TEST_P(CodecRoundTripTest, RandomDataIsStoredRaw) {
  const std::string raw = RandomBytes(64 * 1024);
  const Stored stored = Encode(raw, GetParam());
  EXPECT_EQ(stored.codec, Codec::kRaw);
  EXPECT_EQ(stored.bytes, raw);
  EXPECT_EQ(Decode(stored, raw.size()), raw);
}

INSTANTIATE_TEST_SUITE_P(Levels, CodecRoundTripTest, testing::Values(1, 3, 19));

TEST(CodecTest, EmptyInputIsStoredRawAndComesBack) {
  Stored stored{Codec::kZstd, "junk"};
  ASSERT_TRUE(EncodeChunk("", 3, &stored.codec, &stored.bytes).ok());
  EXPECT_EQ(stored.codec, Codec::kRaw);
  EXPECT_TRUE(stored.bytes.empty());
  std::string decoded = "junk";
  ASSERT_TRUE(DecodeChunk(stored.codec, stored.bytes, 0, &decoded).ok());
  EXPECT_TRUE(decoded.empty());
}

TEST(CodecTest, TruncatedFrameIsCorruption) {
  const std::string raw = TextLike(8 * 1024);
  const std::string stored = ZstdFrame(raw);
  for (size_t len = 0; len < stored.size(); ++len) {
    std::string decoded;
    const Status status = DecodeChunk(Codec::kZstd, stored.substr(0, len), raw.size(), &decoded);
    EXPECT_EQ(status.code(), Code::kCorruption) << "length " << len;
    EXPECT_TRUE(decoded.empty());
  }
}

TEST(CodecTest, TrailingBytesAfterFrameAreCorruption) {
  const std::string raw = TextLike(8 * 1024);
  std::string decoded;
  EXPECT_EQ(DecodeChunk(Codec::kZstd, ZstdFrame(raw) + "x", raw.size(), &decoded).code(),
            Code::kCorruption);
  EXPECT_EQ(DecodeChunk(Codec::kZstd, ZstdFrame(raw) + ZstdFrame(raw), raw.size(), &decoded).code(),
            Code::kCorruption);
}

TEST(CodecTest, FlippedBytesNeverCrashOrGivePartialResults) {
  // zstd has no checksum here (the chunk id catches what zstd does not), so a
  // flip may decode to wrong bytes of the right length; anything else must be
  // Corruption with an empty result.
  const std::string raw = TextLike(4 * 1024);
  const std::string stored = ZstdFrame(raw);
  int corruptions = 0;
  for (size_t i = 0; i < stored.size(); ++i) {
    for (uint8_t bit : {0x01, 0x80}) {
      std::string damaged = stored;
      damaged[i] = static_cast<char>(damaged[i] ^ bit);
      std::string decoded;
      const Status status = DecodeChunk(Codec::kZstd, damaged, raw.size(), &decoded);
      if (status.ok()) {
        EXPECT_EQ(decoded.size(), raw.size()) << "byte " << i;
      } else {
        EXPECT_EQ(status.code(), Code::kCorruption) << "byte " << i;
        EXPECT_TRUE(decoded.empty()) << "byte " << i;
        ++corruptions;
      }
    }
  }
  EXPECT_GT(corruptions, 0);
}

// ChunkStore decodes into recycled buffers that still hold an older chunk.
TEST(CodecTest, DecodingIntoAStringThatHoldsOtherBytesReplacesThemAll) {
  const std::string raw = TextLike(64 * 1024);
  const Stored stored = Encode(raw, 1);
  ASSERT_EQ(stored.codec, Codec::kZstd);
  for (size_t stale : {size_t{0}, size_t{100}, raw.size() - 1, raw.size(), raw.size() + 5000}) {
    std::string out(stale, 'x');
    out.reserve(raw.size() + 8192);
    ASSERT_TRUE(DecodeChunk(stored.codec, stored.bytes, raw.size(), &out).ok());
    EXPECT_EQ(out, raw) << "stale bytes: " << stale;
    out.assign(stale, 'x');
    const std::string damaged = stored.bytes.substr(0, stored.bytes.size() - 1);
    EXPECT_EQ(DecodeChunk(stored.codec, damaged, raw.size(), &out).code(), Code::kCorruption);
    EXPECT_TRUE(out.empty()) << "stale bytes: " << stale;
  }
  std::string out(10, 'x');
  ASSERT_TRUE(DecodeChunk(Codec::kRaw, "abc", 3, &out).ok());
  EXPECT_EQ(out, "abc");
}

TEST(CodecTest, WrongRawLengthIsCorruption) {
  const std::string raw = TextLike(8 * 1024);
  const std::string stored = ZstdFrame(raw);
  std::string decoded;
  EXPECT_EQ(DecodeChunk(Codec::kZstd, stored, raw.size() - 1, &decoded).code(), Code::kCorruption);
  EXPECT_EQ(DecodeChunk(Codec::kZstd, stored, raw.size() + 1, &decoded).code(), Code::kCorruption);
  EXPECT_EQ(DecodeChunk(Codec::kZstd, stored, 0xffffffff, &decoded).code(), Code::kCorruption);
  EXPECT_EQ(DecodeChunk(Codec::kRaw, raw, raw.size() + 1, &decoded).code(), Code::kCorruption);
  EXPECT_TRUE(decoded.empty());
}

// Found by fuzz/codec_fuzzer: a valid frame that does not record its
// content size made DecodeChunk allocate raw_len (up to 4 GiB) unchecked.
TEST(CodecTest, FrameWithoutContentSizeIsCorruption) {
  // magic, descriptor 0x00 (no content size), window byte, last raw block of 0 bytes.
  const std::string frame("\x28\xb5\x2f\xfd\x00\x00\x01\x00\x00", 9);
  std::string decoded;
  const Status status = DecodeChunk(Codec::kZstd, frame, 0x7fffffff, &decoded);
  EXPECT_EQ(status.code(), Code::kCorruption);
  EXPECT_NE(status.message().find("content size"), std::string::npos) << status.ToString();
  EXPECT_TRUE(decoded.empty());
}

// Found by fuzz/codec_fuzzer: a 13-byte frame whose header claims 2 GiB (and
// raw_len agrees) is refused before anything is allocated for it.
TEST(CodecTest, FrameTooSmallForItsClaimedSizeIsCorruption) {
  // magic, descriptor 0x80 (4-byte content size), window byte, size 2^31, last raw block of 0.
  const std::string frame("\x28\xb5\x2f\xfd\x80\x00\x00\x00\x00\x80\x01\x00\x00", 13);
  std::string decoded;
  const Status status = DecodeChunk(Codec::kZstd, frame, 0x80000000u, &decoded);
  EXPECT_EQ(status.code(), Code::kCorruption);
  EXPECT_NE(status.message().find("cannot hold"), std::string::npos) << status.ToString();
  EXPECT_TRUE(decoded.empty());
}

// The bound above never refuses a real frame: 16 MiB of zeros (the largest
// chunk, compressing best) still decodes at the highest level.
TEST(CodecTest, LargestMostCompressibleChunkStillDecodes) {
  const std::string raw(16 << 20, '\0');
  Codec codec;
  std::string stored;
  ASSERT_TRUE(EncodeChunk(raw, kMaxZstdLevel, &codec, &stored).ok());
  ASSERT_EQ(codec, Codec::kZstd);
  std::string decoded;
  ASSERT_TRUE(DecodeChunk(codec, stored, raw.size(), &decoded).ok());
  EXPECT_EQ(decoded, raw);
}

TEST(CodecTest, UnknownCodecIsCorruption) {
  std::string decoded;
  EXPECT_EQ(DecodeChunk(static_cast<Codec>(7), "abc", 3, &decoded).code(), Code::kCorruption);
  EXPECT_TRUE(decoded.empty());
}

// --- Codec 2: zstd against a base chunk ------------------------------------

// `base` with one byte changed every `every` bytes: yesterday's chunk after
// a few scattered edits.
std::string Edited(std::string base, size_t every) {
  for (size_t i = every / 2; i < base.size(); i += every) base[i] = static_cast<char>(base[i] ^ 0x20);
  return base;
}

Stored EncodeAgainst(const std::string& raw, const std::string& base) {
  Stored stored;
  const Status status = EncodeChunk(raw, 3, base, 1.0, &stored.codec, &stored.bytes);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return stored;
}

TEST(CodecDeltaTest, ASimilarBaseMakesADeltaFarSmallerThanPlainThatComesBack) {
  const std::string base = TextLike(64 * 1024);
  const std::string raw = Edited(base, 4096);
  const Stored plain = Encode(raw, 3);
  const Stored delta = EncodeAgainst(raw, base);
  ASSERT_EQ(delta.codec, Codec::kZstdDelta);
  EXPECT_LT(delta.bytes.size() * 10, plain.bytes.size());
  std::string decoded;
  ASSERT_TRUE(DecodeChunk(delta.codec, delta.bytes, raw.size(), base, &decoded).ok());
  EXPECT_EQ(decoded, raw);
}

TEST(CodecDeltaTest, AnUnrelatedBaseIsNotUsed) {
  const std::string raw = TextLike(64 * 1024);
  const std::string unrelated = RandomBytes(64 * 1024);
  const Stored stored = EncodeAgainst(raw, unrelated);
  EXPECT_EQ(stored.codec, Codec::kZstd);
  EXPECT_EQ(stored.bytes, Encode(raw, 3).bytes);  // The plain frame, as without a base.
  const Stored random = EncodeAgainst(unrelated, raw);  // Random bytes, a text base.
  EXPECT_EQ(random.codec, Codec::kRaw);
}

TEST(CodecDeltaTest, RandomDataAgainstItsOwnEditIsADelta) {
  // Incompressible alone, yet nearly free against yesterday's bytes.
  const std::string base = RandomBytes(64 * 1024);
  const std::string raw = Edited(base, 8192);
  const Stored stored = EncodeAgainst(raw, base);
  ASSERT_EQ(stored.codec, Codec::kZstdDelta);
  EXPECT_LT(stored.bytes.size(), raw.size() / 8);
  std::string decoded;
  ASSERT_TRUE(DecodeChunk(stored.codec, stored.bytes, raw.size(), base, &decoded).ok());
  EXPECT_EQ(decoded, raw);
}

TEST(CodecDeltaTest, ADeltaAboveTheGivenShareOfThePlainFrameIsNotKept) {
  // Half of the chunk is the base's, half is new (random): the delta beats
  // the plain frame, but not by 3x.
  const std::string base = TextLike(64 * 1024);
  const std::string raw = base.substr(0, 32 * 1024) + RandomBytes(32 * 1024);
  const Stored plain = Encode(raw, 3);
  const Stored delta = EncodeAgainst(raw, base);
  ASSERT_EQ(delta.codec, Codec::kZstdDelta);
  ASSERT_GT(delta.bytes.size() * 3, plain.bytes.size());
  Stored stored;
  ASSERT_TRUE(EncodeChunk(raw, 3, base, 1.0 / 3, &stored.codec, &stored.bytes).ok());
  EXPECT_EQ(stored.codec, Codec::kZstd);
  EXPECT_EQ(stored.bytes, plain.bytes);
  // A small edit stays a delta under the same share.
  ASSERT_TRUE(EncodeChunk(Edited(base, 8192), 3, base, 1.0 / 3, &stored.codec, &stored.bytes).ok());
  EXPECT_EQ(stored.codec, Codec::kZstdDelta);
}

TEST(CodecDeltaTest, ADeltaWithoutItsBaseIsCorruption) {
  const std::string base = TextLike(16 * 1024);
  const Stored stored = EncodeAgainst(Edited(base, 1000), base);
  ASSERT_EQ(stored.codec, Codec::kZstdDelta);
  std::string decoded = "junk";
  const Status status = DecodeChunk(Codec::kZstdDelta, stored.bytes, base.size(), &decoded);
  EXPECT_EQ(status.code(), Code::kCorruption);
  EXPECT_NE(status.message().find("base"), std::string::npos) << status.ToString();
  EXPECT_TRUE(decoded.empty());
}

TEST(CodecDeltaTest, AgainstAnotherBaseItFailsOrGivesOtherBytesNeverACrash) {
  // The chunk id check after decoding catches "other bytes".
  const std::string base = TextLike(16 * 1024);
  const std::string raw = Edited(base, 1000);
  const Stored stored = EncodeAgainst(raw, base);
  ASSERT_EQ(stored.codec, Codec::kZstdDelta);
  for (const std::string& wrong : {base.substr(0, 100), RandomBytes(16 * 1024), Edited(base, 7)}) {
    std::string decoded;
    const Status status = DecodeChunk(stored.codec, stored.bytes, raw.size(), wrong, &decoded);
    if (status.ok()) {
      EXPECT_NE(decoded, raw);
    } else {
      EXPECT_EQ(status.code(), Code::kCorruption) << status.ToString();
      EXPECT_TRUE(decoded.empty());
    }
  }
}

TEST(CodecDeltaTest, DamagedDeltaFramesAreCorruptionOrOtherBytes) {
  const std::string base = TextLike(8 * 1024);
  const std::string raw = Edited(base, 500);
  const Stored stored = EncodeAgainst(raw, base);
  ASSERT_EQ(stored.codec, Codec::kZstdDelta);
  std::string decoded;
  for (size_t len = 0; len < stored.bytes.size(); ++len) {
    EXPECT_EQ(DecodeChunk(stored.codec, stored.bytes.substr(0, len), raw.size(), base, &decoded)
                  .code(),
              Code::kCorruption)
        << "length " << len;
  }
  EXPECT_EQ(DecodeChunk(stored.codec, stored.bytes + "x", raw.size(), base, &decoded).code(),
            Code::kCorruption);
  EXPECT_EQ(DecodeChunk(stored.codec, stored.bytes, raw.size() + 1, base, &decoded).code(),
            Code::kCorruption);
  for (size_t i = 0; i < stored.bytes.size(); ++i) {
    std::string damaged = stored.bytes;
    damaged[i] = static_cast<char>(damaged[i] ^ 0x01);
    const Status status = DecodeChunk(stored.codec, damaged, raw.size(), base, &decoded);
    if (status.ok()) {
      EXPECT_EQ(decoded.size(), raw.size()) << "byte " << i;
    } else {
      EXPECT_EQ(status.code(), Code::kCorruption) << "byte " << i;
    }
  }
  // A plain frame decodes the same whatever base it is given.
  const Stored plain = Encode(raw, 3);
  ASSERT_TRUE(DecodeChunk(plain.codec, plain.bytes, raw.size(), base, &decoded).ok());
  EXPECT_EQ(decoded, raw);
}

TEST(CodecDeltaTest, ADeltaLeavesNoPrefixBehindForTheNextFrameOfTheThread) {
  const std::string base = TextLike(16 * 1024);
  const std::string raw = Edited(base, 1000);
  ASSERT_EQ(EncodeAgainst(raw, base).codec, Codec::kZstdDelta);
  // The next plain frame of this thread decodes without any base.
  const Stored plain = Encode(raw, 3);
  ASSERT_EQ(plain.codec, Codec::kZstd);
  EXPECT_EQ(Decode(plain, raw.size()), raw);
  EXPECT_EQ(plain.bytes, ZstdFrame(raw));
}

TEST(CodecTest, LevelOutsideRangeIsInvalid) {
  for (int level : {-1, 0, 20, 22}) {
    Codec codec = Codec::kZstdDelta;
    std::string stored = "unchanged";
    EXPECT_EQ(EncodeChunk("abc", level, &codec, &stored).code(), Code::kInvalid) << level;
    EXPECT_EQ(codec, Codec::kZstdDelta);
    EXPECT_EQ(stored, "unchanged");
  }
}

}  // namespace
}  // namespace snapfs::store
