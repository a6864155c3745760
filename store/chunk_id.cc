#include "store/chunk_id.h"

#include <sys/random.h>
#include <xxhash.h>

#include <cerrno>
#include <cstring>

namespace snapfs::store {
namespace {

static_assert(ChunkHasher::kSecretSize >= XXH3_SECRET_SIZE_MIN);
static_assert(sizeof(XXH128_canonical_t) == sizeof(ChunkId::bytes));

constexpr char kHexDigits[] = "0123456789abcdef";

// The value of hex digit `c`, or -1.
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string ChunkId::Hex() const {
  std::string hex(2 * bytes.size(), '\0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    hex[2 * i] = kHexDigits[bytes[i] >> 4];
    hex[2 * i + 1] = kHexDigits[bytes[i] & 0xf];
  }
  return hex;
}

Result<ChunkId> ChunkId::FromHex(std::string_view hex) {
  ChunkId id;
  if (hex.size() != 2 * id.bytes.size()) {
    return Status::Invalid("chunk id '" + std::string(hex) + "': want " +
                           std::to_string(2 * id.bytes.size()) + " hex digits");
  }
  for (size_t i = 0; i < id.bytes.size(); ++i) {
    const int hi = HexValue(hex[2 * i]);
    const int lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return Status::Invalid("chunk id '" + std::string(hex) + "': not hex");
    }
    id.bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return id;
}

ChunkId ChunkId::FromBytes(const uint8_t* p) {
  ChunkId id;
  std::memcpy(id.bytes.data(), p, id.bytes.size());
  return id;
}

size_t ChunkIdHash::operator()(const ChunkId& id) const {
  size_t h;
  std::memcpy(&h, id.bytes.data() + id.bytes.size() - sizeof(h), sizeof(h));
  return h;
}

Result<std::string> ChunkHasher::NewSecret() {
  std::string secret(kSecretSize, '\0');
  size_t filled = 0;
  while (filled < secret.size()) {
    const ssize_t n = getrandom(secret.data() + filled, secret.size() - filled, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Io(std::string("getrandom: ") + std::strerror(errno));
    }
    filled += static_cast<size_t>(n);
  }
  return secret;
}

Result<ChunkHasher> ChunkHasher::Create(std::string_view secret) {
  if (secret.size() != kSecretSize) {
    return Status::Invalid("chunk hasher: secret is " + std::to_string(secret.size()) +
                           " bytes, want " + std::to_string(kSecretSize));
  }
  return ChunkHasher(secret);
}

ChunkId ChunkHasher::Hash(const uint8_t* data, size_t len) const {
  const XXH128_hash_t hash = XXH3_128bits_withSecret(data, len, secret_.data(), secret_.size());
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, hash);
  return ChunkId::FromBytes(canonical.digest);
}

}  // namespace snapfs::store
