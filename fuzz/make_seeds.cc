// Writes the seed corpora of the fuzz targets, made with snapfs's own
// encoders: make_seeds DIR creates DIR/<target>/<n> for every target. Run by
// scripts/fuzz.sh before fuzzing; the corpora are not committed.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "store/codec.h"
#include "store/key_format.h"
#include "store/pack_file.h"

using namespace snapfs::store;

namespace {

void Write(const std::string& dir, const std::vector<std::string>& seeds) {
  std::filesystem::create_directories(dir);
  for (size_t i = 0; i < seeds.size(); ++i) {
    std::ofstream out(dir + "/seed-" + std::to_string(i), std::ios::binary | std::ios::trunc);
    out << seeds[i];
  }
}

ChunkId IdOf(uint8_t first) {
  ChunkId id;
  for (size_t i = 0; i < id.bytes.size(); ++i) id.bytes[i] = static_cast<uint8_t>(first + 7 * i);
  return id;
}

std::string Be(uint64_t v, int bytes) {
  std::string s;
  for (int i = bytes - 1; i >= 0; --i) s.push_back(static_cast<char>(v >> (8 * i)));
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_seeds DIR\n";
    return 2;
  }
  const std::string dir = argv[1];

  Write(dir + "/keys", {keys::Inode(1, 1), keys::Inode(0x1234, 99), keys::Dirent(1, "dump.sql", 5),
                        keys::Dirent(77, "..", 1), keys::ExtentPage(3, 8, 2), keys::Log(12),
                        keys::Chunk(IdOf(9))});

  InodeRecord file{Op::kWrite, 0100644, 1000, 1000, 1, 123456, 1, 2, 3, 0, 7, 2, ""};
  InodeRecord link{Op::kSymlink, 0120777, 0, 0, 1, 8, 4, 5, 6, 0, 0, 0, "site.sql"};
  LogRecord rename{1779682560000000000, Op::kRename, 5, 1, "a.sql", 9, "old.sql", 300, 0, 0};
  LogRecord write{1779682561000000000, Op::kWrite, 5, 1, "a.sql", 0, "", 300, 300, 120};
  StateRecord state{42, 50, 1779682560000000000, 1779682570000000000, 9, 2, 4096, 1024};
  auto tagged = [](char tag, const std::string& value) { return std::string(1, tag) + value; };
  Write(dir + "/records",
        {tagged(0, EncodeChunkLocation({Codec::kZstd, 65536, 1200, 3, 4096})),
         tagged(0, EncodeChunkLocation({Codec::kZstdDelta, 65536, 300, 3, 8192, IdOf(4)})),
         tagged(1, EncodeInodeRecord(file)), tagged(1, EncodeInodeRecord(link)),
         tagged(2, EncodeDirentRecord({5, 8})), tagged(2, EncodeDirentRecord({0, 0})),
         tagged(3, EncodeLogRecord(rename)), tagged(3, EncodeLogRecord(write)),
         tagged(4, EncodeStateRecord(state)), tagged(5, EncodeMetaU32(3)),
         tagged(6, EncodeMetaU64(300'000'000'000)), tagged(7, EncodeMetaChunker({})),
         tagged(7, EncodeMetaChunker({64, 128, 256}))});

  std::vector<Extent> extents = {{0, 65536, 0, IdOf(1)}, {65536, 100, 4, IdOf(2)},
                                 {1ull << 40, 4096, 0, IdOf(3)}};
  Write(dir + "/extent_page",
        {std::string(1, '\0') + Be(0, 8) + EncodeExtentPage(extents, 0),
         std::string(1, '\0') + Be(1000, 8) + EncodeExtentPage({}, 1000),
         "\x01" + std::string(40, '\x11')});

  std::string text(3000, 'x');
  for (size_t i = 0; i < text.size(); ++i) text[i] = "snapfs keeps every state "[i % 25];
  Codec codec;
  std::string frame;
  std::vector<std::string> codec_seeds;
  if (EncodeChunk(text, 3, &codec, &frame).ok())
    codec_seeds.push_back(std::string(1, static_cast<char>(codec)) + Be(text.size(), 4) + frame);
  // Codec 2: a base (a prefix of the text), then a delta frame of an edited
  // copy of it; the first byte's high six bits k split the input after the
  // length at size * k / 64, so look for a base length where that is exact.
  bool delta_seed = false;
  for (size_t len = 1000; len <= text.size() && !delta_seed; ++len) {
    const std::string base = text.substr(0, len);
    std::string edited = base;
    edited[len / 2] = '!';
    if (!EncodeChunk(edited, 3, base, 1.0, &codec, &frame).ok() || codec != Codec::kZstdDelta)
      continue;
    const size_t rest = base.size() + frame.size();
    for (size_t k = 1; k < 64 && !delta_seed; ++k) {
      if (rest * k / 64 != base.size()) continue;
      codec_seeds.push_back(std::string(1, static_cast<char>(k << 2 | 2)) + Be(edited.size(), 4) +
                            base + frame);
      delta_seed = true;
    }
  }
  codec_seeds.push_back(std::string(1, '\0') + Be(5, 4) + "hello");
  codec_seeds.push_back(std::string(1, '\1') + Be(0, 4));
  Write(dir + "/codec", codec_seeds);

  Write(dir + "/pack_reader",
        {std::string(1, '\1') + std::string(64, '\x42'), std::string(1, '\1') + text.substr(0, 300),
         std::string(1, '\0') + std::string(30, '\0') + "SNAPPACK" + Be(1, 4) + Be(1, 4) +
             Be(0x534E4348, 4) + std::string(60, '\x01')});

  Write(dir + "/when", {"now", "@1779682560", "@1779682560.25", "2026-05-25", "2026-05-25 06:16",
                        "2026-05-25 06:16:05", "2026-05-25T06:16:05.5", "2026-05-25T06:16Z",
                        "2026-05-25T06:16:05+02:00", "2026-05-25 06:16+0200", "2026-03-29T02:30",
                        "2026-10-25 02:30", "s1234", "g1", "-90s", "-1h30m", "-3d", "-1w"});
  std::cout << "seeds written to " << dir << "\n";
  return 0;
}
