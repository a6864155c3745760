// The pack reader (store/pack_file.h) on damaged packs. The first byte picks:
//  even: the pack file is arbitrary bytes and the index entry (ChunkLocation)
//        is arbitrary too: Read returns Corruption or Io, or a payload of
//        exactly stored_len bytes whose record checks out.
//  odd:  PackWriter appends 1..3 real records, then one bit of the file may
//        be flipped and the file may be cut short. Reading a record that was
//        not touched returns its payload; a touched one is Corruption. A
//        payload read back is also fed to DecodeChunk with its codec.
// Packs are written in a private folder under /dev/shm (or $TMPDIR, /tmp).
#include <fuzzer/FuzzedDataProvider.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "store/pack_file.h"

using namespace snapfs::store;
using snapfs::Result;

namespace {

std::string g_dir;

void RemoveDir() { std::filesystem::remove_all(g_dir); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

ChunkId ConsumeId(FuzzedDataProvider& in) {
  ChunkId id;
  for (uint8_t& b : id.bytes) b = in.ConsumeIntegral<uint8_t>();
  return id;
}

void ArbitraryPack(FuzzedDataProvider& in) {
  ChunkLocation loc;
  loc.codec = static_cast<Codec>(in.ConsumeIntegralInRange<uint8_t>(0, 3));
  loc.raw_len = in.ConsumeIntegral<uint32_t>();
  loc.stored_len = in.ConsumeBool() ? in.ConsumeIntegral<uint32_t>()
                                    : in.ConsumeIntegralInRange<uint32_t>(0, 4096);
  loc.pack = 1;
  loc.offset = in.ConsumeBool() ? in.ConsumeIntegral<uint64_t>()
                                : in.ConsumeIntegralInRange<uint64_t>(0, 4096);
  const ChunkId id = ConsumeId(in);
  if (loc.codec == Codec::kZstdDelta) loc.base = ConsumeId(in);
  WriteFile(PackPath(g_dir, 1), in.ConsumeRemainingBytesAsString());
  PackReader reader(g_dir);
  Result<std::string> got = reader.Read(id, loc);
  if (got.ok()) {
    FUZZ_CHECK(got->size() == loc.stored_len);
  } else {
    const snapfs::Code c = got.status().code();
    FUZZ_CHECK(c == snapfs::Code::kCorruption || c == snapfs::Code::kIo ||
               c == snapfs::Code::kInvalid);
  }
  // A pack number with no file is NotFound (GC may have removed it: the
  // chunk store looks the chunk up again), never a crash.
  loc.pack = 2;
  FUZZ_CHECK(reader.Read(id, loc).status().code() == snapfs::Code::kNotFound);
}

void DamagedRealPack(FuzzedDataProvider& in) {
  struct Written { ChunkId id; ChunkLocation loc; std::string payload; };
  std::vector<Written> written;
  {
    auto writer = PackWriter::Open(g_dir);
    FUZZ_CHECK(writer.ok());
    const int n = in.ConsumeIntegralInRange<int>(1, 3);
    for (int i = 0; i < n; ++i) {
      Written w;
      w.id = ConsumeId(in);
      const Codec codec = static_cast<Codec>(in.ConsumeIntegralInRange<uint8_t>(0, 2));
      const uint32_t raw_len = in.ConsumeIntegral<uint32_t>();
      const ChunkId base = codec == Codec::kZstdDelta ? ConsumeId(in) : ChunkId{};
      w.payload = in.ConsumeRandomLengthString(1024);
      auto loc = (*writer)->Append(w.id, codec, raw_len, w.payload, base);
      FUZZ_CHECK(loc.ok());
      w.loc = *loc;
      written.push_back(std::move(w));
    }
    FUZZ_CHECK((*writer)->Sync().ok());
  }
  const std::string path = PackPath(g_dir, 1);
  std::string file = ReadFile(path);
  size_t flipped = SIZE_MAX;
  if (in.ConsumeBool()) {
    flipped = in.ConsumeIntegralInRange<size_t>(0, file.size() - 1);
    file[flipped] = static_cast<char>(file[flipped] ^ (1 << in.ConsumeIntegralInRange(0, 7)));
  }
  const size_t keep = in.ConsumeBool() ? in.ConsumeIntegralInRange<size_t>(0, file.size())
                                       : file.size();
  file.resize(keep);
  WriteFile(path, file);

  PackReader reader(g_dir);
  for (const Written& w : written) {
    const uint64_t begin = w.loc.offset;
    const uint64_t end = begin + RecordHeaderSize(w.loc.codec) + w.payload.size();
    const bool touched = (flipped >= begin && flipped < end) || keep < end;
    Result<std::string> got = reader.Read(w.id, w.loc);
    if (touched) {
      FUZZ_CHECK(got.status().code() == snapfs::Code::kCorruption);
      continue;
    }
    FUZZ_CHECK(got.ok() && *got == w.payload);
    std::string raw;
    const snapfs::Status st = DecodeChunk(w.loc.codec, *got, w.loc.raw_len, &raw);
    FUZZ_CHECK(st.ok() ? raw.size() == w.loc.raw_len : raw.empty());
    // Another id at the same place is refused.
    ChunkId other = w.id;
    other.bytes[0] ^= 1;
    FUZZ_CHECK(reader.Read(other, w.loc).status().code() == snapfs::Code::kCorruption);
    // So is an index entry naming another base.
    if (w.loc.codec == Codec::kZstdDelta) {
      ChunkLocation moved = w.loc;
      moved.base.bytes[15] ^= 1;
      FUZZ_CHECK(reader.Read(w.id, moved).status().code() == snapfs::Code::kCorruption);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm"
                     : std::getenv("TMPDIR") != nullptr ? std::getenv("TMPDIR") : "/tmp";
  std::string tmpl = std::string(base) + "/snapfs-pack-fuzz-XXXXXX";
  FUZZ_CHECK(::mkdtemp(tmpl.data()) != nullptr);
  g_dir = tmpl;
  std::atexit(RemoveDir);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  for (const auto& e : std::filesystem::directory_iterator(g_dir)) std::filesystem::remove(e);
  FuzzedDataProvider in(data + 1, size - 1);
  if (data[0] % 2 == 0) ArbitraryPack(in);
  else DamagedRealPack(in);
  return 0;
}
