// Micro benchmarks of the store's write and read paths through a real store
// in a temporary folder (store::Store::Init/Open): ChunkStore put of new and
// of duplicate chunks, ChunkStore get from the decoded-chunk cache and from
// the packs, and FileContent streaming a dump in 1 MiB writes + Flush +
// commit (the daemon's hot path without FUSE). Also: how well a delta codec
// (zstd with the previous version of a chunk as prefix, format codec 2)
// would store a chunk whose rows changed by 1 %.
//
// Part of snapfs_micro_bench; see micro_bench.cc for how to run it. The
// store lives under $TMPDIR (default /tmp): put that on the disk you mean to
// measure. Timings are wall-clock (UseRealTime): the work is split between
// the caller and the chunk store's compression threads.
//
// Counters: "ratio" = raw bytes / compressed bytes of newly stored chunks;
// "dedup" = share of chunk puts that found the chunk already stored;
// "stored_per_byte" = compressed bytes newly stored per byte processed.
#include <benchmark/benchmark.h>
#include <unistd.h>
#include <zstd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "bench/dump_data.h"
#include "store/file_content.h"
#include "store/store.h"

namespace snapfs::store {
namespace {

constexpr size_t kChunk = 64 * 1024;

// A store in a fresh temporary folder, removed with the object.
class TempStore {
 public:
  explicit TempStore(OpenOptions options = {}) {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
                       "/snapfs-bench-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    dir_ = tmpl;
    Status st = Store::Init(dir_ + "/store", InitOptions{});
    if (!st.ok()) error_ = st.ToString();
    if (st.ok()) {
      auto opened = Store::Open(dir_ + "/store", options);
      if (opened.ok()) store_ = std::move(opened).value();
      else error_ = opened.status().ToString();
    }
  }
  ~TempStore() {
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  Store* get() { return store_.get(); }
  const std::string& error() const { return error_; }

  // Commits `extents` as the content of a new file inode; returns false (and
  // sets error) on failure.
  bool CommitFile(const std::vector<Extent>& extents, std::vector<ChunkId> unindexed,
                  uint64_t size) {
    Mutation m;
    const Ino ino = store_->AllocateIno();
    InodeRecord rec;
    rec.op = Op::kWrite;
    rec.mode = 0100644;
    rec.nlink = 1;
    rec.size = size;
    m.PutInode(ino, rec);
    m.PutContent(ino, extents, std::move(unindexed));
    LogRecord log;
    log.op = Op::kWrite;
    log.ino = ino;
    log.size = size;
    Result<Generation> g = store_->Commit(m, log, CommitOptions{});
    if (!g.ok()) error_ = g.status().ToString();
    return g.ok();
  }

  // Puts `chunks` (kChunk bytes each), waits until they are stored and
  // commits them as one file; their ids go to `ids`. False (and error) on
  // failure.
  bool StoreFile(const std::vector<ChunkBytes>& chunks, std::vector<ChunkId>* ids) {
    ChunkStore& cs = store_->chunks();
    std::vector<Extent> extents;
    for (const auto& c : chunks) {
      ids->push_back(cs.Id(reinterpret_cast<const uint8_t*>(c->data()), c->size()));
      Status st = cs.Put(ids->back(), *c).status();
      if (!st.ok()) {
        error_ = st.ToString();
        return false;
      }
      extents.push_back(Extent{extents.size() * kChunk, kChunk, 0, ids->back()});
    }
    Status st = cs.WaitStored(*ids, nullptr);
    if (!st.ok()) {
      error_ = st.ToString();
      return false;
    }
    return CommitFile(extents, *ids, chunks.size() * kChunk);
  }

 private:
  std::string dir_;
  std::unique_ptr<Store> store_;
  std::string error_;
};

// `bytes` of the benchmark's SQL dump text (day `day`, seed `seed`).
std::string DumpText(uint64_t bytes, int day, uint64_t seed) {
  std::string text;
  bench::History h{.seed = seed};
  // A dump sized so that its first `bytes` bytes are table rows, mostly.
  bench::SqlDump(bytes + bytes / 8, day, h, 1 << 20, [&](std::string* piece) {
    if (text.size() < bytes) text.append(*piece, 0, std::min(piece->size(), bytes - text.size()));
    piece->clear();
  });
  text.resize(bytes, '\n');
  return text;
}

std::vector<ChunkBytes> Chunks(const std::string& text) {
  std::vector<ChunkBytes> out;
  for (size_t pos = 0; pos + kChunk <= text.size(); pos += kChunk)
    out.push_back(std::make_shared<const std::string>(text, pos, kChunk));
  return out;
}

// The chunk store's counters at one moment, to report what a benchmark's
// timed loop did (not its setup).
struct CounterSnapshot {
  explicit CounterSnapshot(const ChunkCounters& c)
      : chunks_new(c.chunks_new), chunks_dup(c.chunks_dup), raw_bytes_new(c.raw_bytes_new),
        stored_bytes(c.stored_bytes) {}
  uint64_t chunks_new, chunks_dup, raw_bytes_new, stored_bytes;
};

// Sets bytes processed, "dedup" (duplicate puts / puts) and "ratio" (raw /
// stored bytes of the new chunks) for the work done since `before`.
void SetCounters(benchmark::State& state, const ChunkCounters& now, const CounterSnapshot& before,
                 uint64_t bytes) {
  const CounterSnapshot c(now);
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  const double dup = static_cast<double>(c.chunks_dup - before.chunks_dup);
  const double puts = static_cast<double>(c.chunks_new - before.chunks_new) + dup;
  const double stored = static_cast<double>(c.stored_bytes - before.stored_bytes);
  if (puts > 0) state.counters["dedup"] = dup / puts;
  if (stored > 0)
    state.counters["ratio"] = static_cast<double>(c.raw_bytes_new - before.raw_bytes_new) / stored;
  // Bytes newly stored per byte processed: what one more copy costs on disk.
  if (bytes > 0) state.counters["stored_per_byte"] = stored / static_cast<double>(bytes);
}

// New chunks: hash, Put, then wait until the workers compressed and appended
// them (WaitStored), 64 chunks (4 MiB) per iteration. Each chunk is made new
// by stamping the iteration into its first bytes.
void BM_ChunkStorePutNew(benchmark::State& state) {
  TempStore ts;
  if (ts.get() == nullptr) return state.SkipWithError(ts.error().c_str());
  ChunkStore& cs = ts.get()->chunks();
  const std::string text = DumpText(64 * kChunk, 1, 1);
  uint64_t stamp = 0, bytes = 0;
  std::vector<ChunkId> ids;
  const CounterSnapshot before(cs.counters());
  for (auto _ : state) {
    ids.clear();
    for (size_t pos = 0; pos < text.size(); pos += kChunk) {
      std::string raw(text, pos, kChunk);
      ++stamp;
      std::memcpy(raw.data(), &stamp, sizeof(stamp));
      const ChunkId id = cs.Id(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
      if (!cs.Put(id, raw).ok()) return state.SkipWithError("put failed");
      ids.push_back(id);
    }
    if (!cs.WaitStored(ids, nullptr).ok()) return state.SkipWithError("store failed");
    bytes += text.size();
  }
  SetCounters(state, cs.counters(), before, bytes);
}
BENCHMARK(BM_ChunkStorePutNew)->UseRealTime()->Unit(benchmark::kMillisecond);

// Duplicate chunks already in the index: hash + one RocksDB point lookup.
void BM_ChunkStorePutDup(benchmark::State& state) {
  TempStore ts;
  if (ts.get() == nullptr) return state.SkipWithError(ts.error().c_str());
  ChunkStore& cs = ts.get()->chunks();
  const std::vector<ChunkBytes> chunks = Chunks(DumpText(256 * kChunk, 1, 1));
  std::vector<ChunkId> ids;
  if (!ts.StoreFile(chunks, &ids)) return state.SkipWithError(ts.error().c_str());
  const CounterSnapshot before(cs.counters());
  uint64_t bytes = 0;
  for (auto _ : state) {
    for (const auto& c : chunks) {
      const ChunkId id = cs.Id(reinterpret_cast<const uint8_t*>(c->data()), c->size());
      auto put = cs.Put(id, *c);
      if (!put.ok() || *put != ChunkStore::PutResult::kStored)
        return state.SkipWithError("duplicate chunk not found in the index");
    }
    bytes += chunks.size() * kChunk;
  }
  SetCounters(state, cs.counters(), before, bytes);
}
BENCHMARK(BM_ChunkStorePutDup)->UseRealTime();

// Get of stored chunks. Arg 1: from the decoded-chunk cache; arg 0: cache
// off, so every get reads the pack record (from the OS page cache), checks
// both record hashes, decompresses and re-hashes the bytes.
void BM_ChunkStoreGet(benchmark::State& state) {
  const bool cached = state.range(0) != 0;
  OpenOptions options;
  options.chunk_cache_bytes = cached ? 64u << 20 : 0;
  TempStore ts(options);
  if (ts.get() == nullptr) return state.SkipWithError(ts.error().c_str());
  ChunkStore& cs = ts.get()->chunks();
  const std::vector<ChunkBytes> chunks = Chunks(DumpText(256 * kChunk, 1, 1));
  std::vector<ChunkId> ids;
  if (!ts.StoreFile(chunks, &ids)) return state.SkipWithError(ts.error().c_str());
  const CounterSnapshot before(cs.counters());
  uint64_t bytes = 0;
  for (auto _ : state) {
    for (const ChunkId& id : ids) {
      auto got = cs.Get(id);
      if (!got.ok()) return state.SkipWithError(got.status().ToString().c_str());
      benchmark::DoNotOptimize((*got)->data());
      bytes += (*got)->size();
    }
  }
  SetCounters(state, cs.counters(), before, bytes);
}
BENCHMARK(BM_ChunkStoreGet)->ArgName("cached")->Arg(0)->Arg(1)->UseRealTime();

// A dump streamed into a file the way the daemon sees it: 1 MiB writes, then
// Flush (chunk the tail, wait for compression) and one commit, 64 MiB per
// iteration. Arg 0: new text every iteration (day 1 of a new store);
// arg 1: the same text again (an unchanged dump); arg 2: the next day's
// dump, with 1 % of the rows rewritten (iteration i writes day i + 1).
void BM_FileContentStream(benchmark::State& state) {
  const int mode = static_cast<int>(state.range(0));
  constexpr size_t kBytes = 64u << 20;
  constexpr size_t kWrite = 1u << 20;
  TempStore ts;
  if (ts.get() == nullptr) return state.SkipWithError(ts.error().c_str());
  Store* store = ts.get();
  std::string text = DumpText(kBytes, 1, 1);
  uint64_t seed = 1, bytes = 0;
  int day = 1;
  // Arg 1 and 2 start from a store that holds the first text already.
  auto stream = [&](const std::string& data) -> bool {
    FileContent fc(&store->chunks(), &store->chunker(), {}, 0);
    for (size_t pos = 0; pos < data.size(); pos += kWrite) {
      if (!fc.Write(pos, data.data() + pos, std::min(kWrite, data.size() - pos)).ok())
        return false;
    }
    uint64_t stored = 0;
    if (!fc.Flush(&stored).ok()) return false;
    if (!ts.CommitFile(fc.extents(), fc.unindexed(), fc.size())) return false;
    fc.MarkCommitted();
    return true;
  };
  if (mode != 0 && !stream(text)) return state.SkipWithError("first write failed");
  const CounterSnapshot before(store->chunks().counters());
  for (auto _ : state) {
    if (mode != 1) {
      state.PauseTiming();
      text = mode == 0 ? DumpText(kBytes, 1, ++seed) : DumpText(kBytes, ++day, 1);
      state.ResumeTiming();
    }
    if (!stream(text)) return state.SkipWithError("write failed");
    bytes += text.size();
  }
  SetCounters(state, store->chunks().counters(), before, bytes);
}
BENCHMARK(BM_FileContentStream)
    ->ArgName("mode")
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(6);

// What format codec 2 (zstd with a base chunk as dictionary) would gain on a
// dump whose rows change by 1 % a day: compress ~64 KiB of day-2 rows alone
// (arg 0) and with the same rows of day 1 as a zstd prefix (arg 1).
// "ratio" is raw / stored.
void BM_ZstdDeltaAgainstYesterday(benchmark::State& state) {
  const bool with_base = state.range(0) != 0;
  const std::string day1 = DumpText(4 * kChunk, 1, 1);
  const std::string day2 = DumpText(4 * kChunk, 2, 1);
  // The same rows: day 2's second 64 KiB and the day-1 window around them.
  const std::string now = day2.substr(kChunk, kChunk);
  const std::string base = day1.substr(kChunk / 2, 2 * kChunk);
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  std::string out(ZSTD_compressBound(now.size()), '\0');
  size_t n = 0;
  for (auto _ : state) {
    ZSTD_CCtx_reset(cctx, ZSTD_reset_session_only);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 3);
    if (with_base) ZSTD_CCtx_refPrefix(cctx, base.data(), base.size());
    n = ZSTD_compress2(cctx, out.data(), out.size(), now.data(), now.size());
    if (ZSTD_isError(n)) {
      state.SkipWithError(ZSTD_getErrorName(n));
      break;
    }
  }
  ZSTD_freeCCtx(cctx);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * now.size()));
  state.counters["ratio"] = n > 0 ? static_cast<double>(now.size()) / static_cast<double>(n) : 0;
}
BENCHMARK(BM_ZstdDeltaAgainstYesterday)->ArgName("base")->Arg(0)->Arg(1);

}  // namespace
}  // namespace snapfs::store
