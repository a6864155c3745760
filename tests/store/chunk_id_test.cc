#include "store/chunk_id.h"

#include <gtest/gtest.h>

#include <string>
#include <unordered_set>

namespace snapfs::store {
namespace {

// A fixed secret: byte i is i * 37 + 11 (only the tests use a made-up one).
std::string FixedSecret(uint8_t salt = 0) {
  std::string secret(ChunkHasher::kSecretSize, '\0');
  for (size_t i = 0; i < secret.size(); ++i) {
    secret[i] = static_cast<char>(i * 37 + 11 + salt);
  }
  return secret;
}

ChunkHasher MakeHasher(const std::string& secret) {
  Result<ChunkHasher> hasher = ChunkHasher::Create(secret);
  EXPECT_TRUE(hasher.ok()) << hasher.status().ToString();
  return std::move(hasher).value();
}

ChunkId HashOf(const ChunkHasher& hasher, const std::string& data) {
  return hasher.Hash(reinterpret_cast<const uint8_t*>(data.data()), data.size());
}

const std::string kData = "the quick brown fox jumps over the lazy dog";

TEST(ChunkIdTest, SameBytesAndSecretGiveSameId) {
  const ChunkHasher a = MakeHasher(FixedSecret());
  const ChunkHasher b = MakeHasher(FixedSecret());
  EXPECT_EQ(HashOf(a, kData), HashOf(b, kData));
  EXPECT_EQ(HashOf(a, kData), HashOf(a, std::string(kData)));
}

TEST(ChunkIdTest, GoldenIdIsStable) {
  // XXH3_128bits_withSecret computed outside snapfs and printed as high64
  // then low64: the canonical form is big-endian. A change here changes the
  // name of every stored chunk.
  EXPECT_EQ(HashOf(MakeHasher(FixedSecret()), kData).Hex(), "4044d6f0691ab6c307602aa97fccf753");
}

TEST(ChunkIdTest, DifferentSecretGivesDifferentId) {
  const ChunkHasher a = MakeHasher(FixedSecret(0));
  const ChunkHasher b = MakeHasher(FixedSecret(1));
  EXPECT_NE(HashOf(a, kData), HashOf(b, kData));
}

TEST(ChunkIdTest, FlippedByteGivesDifferentId) {
  const ChunkHasher hasher = MakeHasher(FixedSecret());
  const ChunkId original = HashOf(hasher, kData);
  for (size_t i = 0; i < kData.size(); ++i) {
    std::string flipped = kData;
    flipped[i] ^= 0x01;
    EXPECT_NE(HashOf(hasher, flipped), original) << "byte " << i;
  }
}

TEST(ChunkIdTest, EmptyInputHasAnId) {
  const ChunkHasher hasher = MakeHasher(FixedSecret());
  EXPECT_EQ(hasher.Hash(nullptr, 0), HashOf(hasher, ""));
  EXPECT_NE(hasher.Hash(nullptr, 0), ChunkId{});
}

TEST(ChunkIdTest, HexRoundTrip) {
  const ChunkId id = HashOf(MakeHasher(FixedSecret()), kData);
  const std::string hex = id.Hex();
  ASSERT_EQ(hex.size(), 32u);
  EXPECT_EQ(hex.find_first_not_of("0123456789abcdef"), std::string::npos);
  Result<ChunkId> parsed = ChunkId::FromHex(hex);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(*parsed, id);
}

TEST(ChunkIdTest, HexIsBigEndianBytes) {
  ChunkId id;
  for (size_t i = 0; i < id.bytes.size(); ++i) id.bytes[i] = static_cast<uint8_t>(i * 17);
  EXPECT_EQ(id.Hex(), "00112233445566778899aabbccddeeff");
  EXPECT_EQ(ChunkId::FromBytes(id.bytes.data()), id);
}

TEST(ChunkIdTest, FromHexAcceptsUpperCase) {
  Result<ChunkId> parsed = ChunkId::FromHex("00112233445566778899AABBCCDDEEFF");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->Hex(), "00112233445566778899aabbccddeeff");
}

TEST(ChunkIdTest, FromHexRejectsWrongLength) {
  for (const char* hex :
       {"", "0", "00112233445566778899aabbccddeef", "00112233445566778899aabbccddeeff0"}) {
    EXPECT_EQ(ChunkId::FromHex(hex).status().code(), Code::kInvalid) << hex;
  }
}

TEST(ChunkIdTest, FromHexRejectsNonHex) {
  for (const char* hex : {"g0112233445566778899aabbccddeeff", "00112233445566778899aabbccddeefg",
                          "0011223344556677 899aabbccddeeff", "0x112233445566778899aabbccddeeff"}) {
    EXPECT_EQ(ChunkId::FromHex(hex).status().code(), Code::kInvalid) << hex;
  }
}

TEST(ChunkIdTest, IdsWorkAsHashKeys) {
  const ChunkHasher hasher = MakeHasher(FixedSecret());
  std::unordered_set<ChunkId, ChunkIdHash> ids;
  for (int i = 0; i < 1000; ++i) ids.insert(HashOf(hasher, std::to_string(i)));
  EXPECT_EQ(ids.size(), 1000u);
  EXPECT_TRUE(ids.contains(HashOf(hasher, "7")));
}

TEST(ChunkHasherTest, CreateRejectsWrongSecretSize) {
  for (size_t size :
       {size_t{0}, size_t{136}, ChunkHasher::kSecretSize - 1, ChunkHasher::kSecretSize + 1}) {
    EXPECT_EQ(ChunkHasher::Create(std::string(size, 'x')).status().code(), Code::kInvalid) << size;
  }
}

TEST(ChunkHasherTest, NewSecretIsFreshAndRightSize) {
  Result<std::string> a = ChunkHasher::NewSecret();
  Result<std::string> b = ChunkHasher::NewSecret();
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(a->size(), ChunkHasher::kSecretSize);
  EXPECT_EQ(b->size(), ChunkHasher::kSecretSize);
  EXPECT_NE(*a, *b);
  EXPECT_TRUE(ChunkHasher::Create(*a).ok());
}

}  // namespace
}  // namespace snapfs::store
