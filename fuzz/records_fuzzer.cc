// Every RocksDB value decoder of store/key_format.h on arbitrary bytes:
// ChunkLocation, InodeRecord, DirentRecord, LogRecord, StateRecord and the
// meta values. The first byte picks the decoder, the rest is the value.
// Properties: never a crash or an overlong read (ASan); a value a decoder
// accepts encodes back to exactly the same bytes (so trailing garbage, a
// padded varint or a length past the end is never accepted); the same value
// with one more byte is refused.
#include "fuzz/fuzz_util.h"
#include "store/key_format.h"

using namespace snapfs::store;
using snapfs::fuzz::AsView;

namespace {

// decode(value) ok => encode(decoded) == value, and decode(value + 'x') fails.
template <typename Decode, typename Encode>
void RoundTrip(std::string_view value, Decode decode, Encode encode) {
  auto v = decode(value);
  if (!v.ok()) {
    FUZZ_CHECK(v.status().code() == snapfs::Code::kCorruption);
    return;
  }
  FUZZ_CHECK(encode(*v) == value);
  FUZZ_CHECK(!decode(std::string(value) + 'x').ok());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view value = AsView(data + 1, size - 1);
  const std::string key = keys::State(42);  // Any 8-byte key; StateRecord needs one.
  switch (data[0] % 11) {
    case 0:
      RoundTrip(value, [&](std::string_view v) { return DecodeChunkLocation(v, key); },
                EncodeChunkLocation);
      break;
    case 1:
      RoundTrip(value, [&](std::string_view v) { return DecodeInodeRecord(v, key); },
                EncodeInodeRecord);
      break;
    case 2:
      RoundTrip(value, [&](std::string_view v) { return DecodeDirentRecord(v, key); },
                EncodeDirentRecord);
      break;
    case 3:
      RoundTrip(value, [&](std::string_view v) { return DecodeLogRecord(v, key); },
                EncodeLogRecord);
      break;
    case 4: {
      RoundTrip(value, [&](std::string_view v) { return DecodeStateRecord(v, key); },
                EncodeStateRecord);
      auto s = DecodeStateRecord(value, key);
      if (s.ok()) FUZZ_CHECK(s->first_gen == 42);
      // A state record under a malformed key is refused, whatever the value.
      FUZZ_CHECK(!DecodeStateRecord(value, "short").ok());
      break;
    }
    case 5:
      RoundTrip(value, [&](std::string_view v) { return DecodeMetaU32(v, "zstd_level"); },
                EncodeMetaU32);
      break;
    case 6:
      RoundTrip(value, [&](std::string_view v) { return DecodeMetaU64(v, "next_ino"); },
                EncodeMetaU64);
      break;
    case 7: {
      RoundTrip(value, [&](std::string_view v) { return DecodeMetaChunker(v, "chunker"); },
                EncodeMetaChunker);
      // Parameters the store accepts must give a chunker that keeps its
      // contract on any bytes (chunker.h, FindCut).
      auto p = DecodeMetaChunker(value, "chunker");
      if (!p.ok()) break;
      const Chunker chunker(*p);
      for (bool at_end : {false, true}) {
        const size_t cut = chunker.FindCut(data, size, at_end);
        FUZZ_CHECK(cut <= size && cut <= p->max_size);
        if (cut != 0 && cut < size) FUZZ_CHECK(cut > p->min_size);
        if (cut == 0) FUZZ_CHECK(size == 0 || (!at_end && size < p->max_size));
      }
      break;
    }
    case 8:
      RoundTrip(value, [&](std::string_view v) { return DecodeHoldRecord(v, keys::Hold(7)); },
                EncodeHoldRecord);
      break;
    case 9:
      RoundTrip(value,
                [&](std::string_view v) -> snapfs::Result<std::vector<std::string>> {
                  std::vector<std::string> names;
                  SNAPFS_RETURN_IF_ERROR(DecodeDirSnapPage(v, keys::DirSnap(1, 2, 0), &names));
                  return names;
                },
                [](const std::vector<std::string>& names) { return EncodeDirSnapPage(names); });
      break;
    case 10:
      if (DecodeIndexMark(value, "k").ok()) FUZZ_CHECK(value == EncodeIndexMark());
      break;
  }
  return 0;
}
