// Micro benchmarks for the store's per-byte work: chunking, chunk hashing,
// zstd encode and decode. store_bench.cc (same executable) adds the chunk
// store and FileContent paths through a real store; docs/performance.md has
// the figures.
//
// Run them from a Release build (debug numbers mean nothing):
//   cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release
//   cmake --build build-release --target snapfs_micro_bench
//   build-release/bench/snapfs_micro_bench --benchmark_min_time=0.2
// Add --benchmark_filter=Zstd to run a subset. Throughput is in bytes_per_second;
// "ratio" is raw bytes / stored bytes; "avg_chunk" is the mean chunk size.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <random>
#include <string>

#include "store/chunk_id.h"
#include "store/chunker.h"
#include "store/codec.h"

namespace snapfs::store {
namespace {

constexpr size_t kChunkBytes = 64 * 1024;
constexpr size_t kStreamBytes = 16 * 1024 * 1024;

std::string RandomData(size_t len) {
  std::mt19937_64 rng(1);
  std::string data(len, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  return data;
}

// Looks like a SQL dump: one INSERT per line with random ids, names, dates,
// prices and states, so it compresses a few times, not a hundred.
std::string SqlDump(size_t len) {
  static const char* const kStates[] = {"new", "paid", "shipped", "returned", "cancelled"};
  std::mt19937_64 rng(2);
  // One statement per draw, so the data does not depend on the order in
  // which a compiler evaluates function arguments.
  auto draw = [&rng](uint64_t bound) { return static_cast<unsigned long long>(rng() % bound); };
  std::string dump;
  char line[256];
  for (unsigned long long id = 1; dump.size() < len; ++id) {
    const unsigned long long customer = draw(100000);
    const unsigned long long month = draw(12) + 1;
    const unsigned long long day = draw(28) + 1;
    const unsigned long long cents = draw(100000);
    const char* state = kStates[draw(std::size(kStates))];
    const unsigned long long tracking = rng();
    const int n =
        std::snprintf(line, sizeof(line),
                      "INSERT INTO orders VALUES (%llu,'name-%llu','2024-%02llu-%02llu',"
                      "%llu.%02llu,'%s',%llu);\n",
                      id, customer, month, day, cents / 100, cents % 100, state, tracking);
    dump.append(line, static_cast<size_t>(n));
  }
  dump.resize(len);
  return dump;
}

const uint8_t* Bytes(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

void ChunkAll(benchmark::State& state, const std::string& data) {
  const Chunker chunker;
  size_t chunks = 0;
  for (auto _ : state) {
    for (size_t pos = 0; pos < data.size(); ++chunks) {
      pos += chunker.FindCut(Bytes(data) + pos, data.size() - pos, true);
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
  state.counters["avg_chunk"] =
      static_cast<double>(state.iterations() * data.size()) / static_cast<double>(chunks);
}

void BM_ChunkerRandom(benchmark::State& state) { ChunkAll(state, RandomData(kStreamBytes)); }
BENCHMARK(BM_ChunkerRandom);

void BM_ChunkerText(benchmark::State& state) { ChunkAll(state, SqlDump(kStreamBytes)); }
BENCHMARK(BM_ChunkerText);

void BM_ChunkHash(benchmark::State& state) {
  const std::string data = RandomData(kChunkBytes);
  const std::string secret(ChunkHasher::kSecretSize, '\x5a');
  const ChunkHasher hasher = ChunkHasher::Create(secret).value();
  for (auto _ : state) {
    ChunkId id = hasher.Hash(Bytes(data), data.size());
    benchmark::DoNotOptimize(id);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_ChunkHash);

// Sets the throughput and the compression ratio of a codec benchmark.
void ReportCodec(benchmark::State& state, size_t raw_size, size_t stored_size) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * raw_size));
  state.counters["ratio"] = static_cast<double>(raw_size) / static_cast<double>(stored_size);
}

void BM_ZstdEncode(benchmark::State& state) {
  const std::string raw = SqlDump(kChunkBytes);
  const int level = static_cast<int>(state.range(0));
  Codec codec;
  std::string stored;
  for (auto _ : state) {
    if (!EncodeChunk(raw, level, &codec, &stored).ok()) {
      state.SkipWithError("encode failed");
      break;
    }
    benchmark::DoNotOptimize(stored.data());
  }
  ReportCodec(state, raw.size(), stored.size());
}
BENCHMARK(BM_ZstdEncode)->Arg(1)->Arg(3)->Arg(9)->Arg(19);

void BM_ZstdDecode(benchmark::State& state) {
  const std::string raw = SqlDump(kChunkBytes);
  Codec codec;
  std::string stored;
  std::string decoded;
  Status status = EncodeChunk(raw, static_cast<int>(state.range(0)), &codec, &stored);
  for (auto _ : state) {
    if (status.ok()) status = DecodeChunk(codec, stored, raw.size(), &decoded);
    if (!status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(decoded.data());
  }
  ReportCodec(state, raw.size(), stored.size());
}
BENCHMARK(BM_ZstdDecode)->Arg(1)->Arg(3)->Arg(9)->Arg(19);

}  // namespace
}  // namespace snapfs::store
