// Every RocksDB key decoder (store/key_format.h, keys::Decode*) on arbitrary
// bytes. A key a decoder accepts must encode back to exactly the same bytes:
// no decoder may accept a key that no writer could have produced.
#include "fuzz/fuzz_util.h"
#include "store/key_format.h"

using namespace snapfs::store;
using snapfs::fuzz::AsView;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view key = AsView(data, size);

  if (auto k = keys::DecodeInode(key); k.ok()) {
    FUZZ_CHECK(keys::Inode(k->ino, k->gen) == key);
    FUZZ_CHECK(key.substr(0, 8) == keys::InodePrefix(k->ino));
  }
  if (auto k = keys::DecodeDirent(key); k.ok()) {
    FUZZ_CHECK(keys::Dirent(k->parent, k->name, k->gen) == key);
    FUZZ_CHECK(!k->name.empty() && k->name.find('\0') == std::string::npos &&
               k->name.find('/') == std::string::npos);
    FUZZ_CHECK(key.substr(0, 8) == keys::DirentPrefix(k->parent));
    // Every version of the name sorts before DirentAfterName.
    FUZZ_CHECK(std::string(key) < keys::DirentAfterName(k->parent, k->name));
  }
  if (auto k = keys::DecodeExtentPage(key); k.ok())
    FUZZ_CHECK(keys::ExtentPage(k->ino, k->gen, k->page) == key);
  if (auto g = keys::DecodeGeneration(key); g.ok()) {
    FUZZ_CHECK(keys::Log(*g) == key);
    FUZZ_CHECK(keys::State(*g) == key);
  }
  if (auto id = keys::DecodeChunk(key); id.ok()) FUZZ_CHECK(keys::Chunk(*id) == key);
  if (auto k = keys::DecodeTime(key); k.ok()) FUZZ_CHECK(keys::Time(k->time_ns, k->gen) == key);
  if (auto k = keys::DecodeDirLog(key); k.ok()) {
    FUZZ_CHECK(keys::DirLog(k->parent, k->gen, k->name) == key);
    FUZZ_CHECK(!k->name.empty() && k->name.find('\0') == std::string::npos &&
               k->name.find('/') == std::string::npos);
  }
  if (auto k = keys::DecodeDirSnap(key); k.ok())
    FUZZ_CHECK(keys::DirSnap(k->parent, k->gen, k->page) == key);
  if (auto id = keys::DecodeHold(key); id.ok()) FUZZ_CHECK(keys::Hold(*id) == key);
  return 0;
}
