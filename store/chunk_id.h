// Chunk names: a chunk is stored under the XXH3-128 hash of its raw
// (uncompressed) bytes, keyed with a per-store secret.
//
// The secret is made once when a store is created and kept in the store; it
// makes chunk ids unpredictable to anyone who does not hold it, so nobody can
// craft two different chunks with the same id (XXH3 is not a cryptographic
// hash, but without the secret collisions cannot be aimed). The id is written
// in XXH128's canonical form: 16 bytes, big-endian high half then low half.
//
// Thread-safety: ChunkId and ChunkHasher are values; all const methods are
// safe to call from any number of threads at once.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "store/status.h"

namespace snapfs::store {

struct ChunkId {
  // XXH128 canonical (big-endian) form. Ordering is bytewise, which is also
  // the order of the hex strings.
  std::array<uint8_t, 16> bytes{};

  // 32 lowercase hex digits.
  std::string Hex() const;
  // Parses exactly 32 hex digits (either case). Invalid on any other length
  // or a non-hex character.
  static Result<ChunkId> FromHex(std::string_view hex);
  // Copies 16 bytes from `p`, which must point to at least 16 readable bytes.
  static ChunkId FromBytes(const uint8_t* p);

  auto operator<=>(const ChunkId&) const = default;
};

// For unordered containers. Ids are keyed hashes, so any 8 bytes of them are
// already uniformly distributed.
struct ChunkIdHash {
  size_t operator()(const ChunkId& id) const;
};

class ChunkHasher {
 public:
  // The secret length (XXH3's default secret size). XXH3 needs at least
  // XXH3_SECRET_SIZE_MIN (136) bytes that look random; bytes straight from
  // getrandom(2) qualify, so no XXH3_generateSecret step is needed.
  static constexpr size_t kSecretSize = 192;

  // A fresh random secret of kSecretSize bytes from getrandom(2). Io error if
  // the kernel refuses (e.g. getrandom unavailable).
  static Result<std::string> NewSecret();

  // A hasher that uses (a copy of) `secret`. Invalid unless
  // secret.size() == kSecretSize.
  static Result<ChunkHasher> Create(std::string_view secret);

  // XXH3_128bits_withSecret of data[0, len). `data` may be null when len is 0.
  ChunkId Hash(const uint8_t* data, size_t len) const;

 private:
  explicit ChunkHasher(std::string_view secret) : secret_(secret) {}

  std::string secret_;
};

}  // namespace snapfs::store
