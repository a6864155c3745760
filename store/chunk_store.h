// The chunk store: stores each distinct chunk once, compressed, in pack files,
// and finds it again by id. Internal to store/ (it holds RocksDB handles);
// other layers reach chunks through store::Store and store::FileContent.
//
// Writes are asynchronous: Put() returns once the chunk is queued, and a pool
// of worker threads compresses and appends it, so chunking a file never waits
// for zstd. A queued chunk is readable at once (from memory). Its index entry
// is written only in the batch of the first version that references it
// (AddIndexEntries), after the packs were synced: the index never names bytes
// a crash could lose.
//
// Deltas: a Put() may name a base hint, typically the chunk the same file
// offset held before. The worker then compresses the chunk against that
// chunk (or, if the hint is itself a delta, against the hint's base: a base
// is never a delta, so a read costs at most two decodes), if the base is
// indexed, and keeps the delta when it is smaller (codec.h). From the moment
// a base is chosen it is protected from GC exactly as long as the chunk
// that uses it is (docs/design.md, "Garbage collection").
//
// Thread-safety: every method is safe to call from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "store/chunk_id.h"
#include "store/key_format.h"
#include "store/pack_file.h"
#include "store/status.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class WriteBatch;
}  // namespace rocksdb

namespace snapfs::store {

using ChunkBytes = std::shared_ptr<const std::string>;

struct ChunkStoreOptions {
  int zstd_level = 3;                     // 1..19.
  size_t cache_bytes = 64u << 20;         // Decoded chunks kept for reads.
  size_t max_queued_bytes = 64u << 20;    // Put() blocks beyond this (backpressure).
  int threads = 0;                        // Compression workers; 0: one per core.
  bool read_only = false;                 // No writer, no workers.
  // Deferred compression: a worker appends a new chunk uncompressed (codec 0)
  // when more than this many raw bytes are queued, that is when writes
  // arrive faster than the workers compress; Store::Settle compresses it
  // later, when the store is idle (docs/design.md). SIZE_MAX: never.
  size_t defer_above = SIZE_MAX;
  // Deferred compression, also: a worker appends a new chunk uncompressed
  // while new chunks arrive faster than this many bytes per second (counted
  // over the last 0.1 to 0.2 s). A dump tool that writes at tens of
  // MB/s gets its chunks compressed at once, on otherwise idle cores; a copy
  // at hundreds of MB/s keeps the CPU for itself. 0: off.
  uint64_t defer_rate = 0;
  // Nice value of the worker threads (0..19). Above 0, compression takes
  // only what the writers leave of the CPU; with defer_above, a writer that
  // needs it all gets its chunks stored raw instead of waiting.
  int worker_nice = 0;
};

struct ChunkCounters {
  std::atomic<uint64_t> chunks_new{0};      // Chunks queued for storage.
  std::atomic<uint64_t> chunks_dup{0};      // Puts of a chunk already stored or queued.
  std::atomic<uint64_t> raw_bytes_new{0};   // Raw bytes of new chunks.
  std::atomic<uint64_t> stored_bytes{0};    // Compressed bytes appended to packs.
  std::atomic<uint64_t> chunks_delta{0};    // Chunks stored against a base chunk.
  std::atomic<uint64_t> chunks_deferred{0}; // Chunks stored uncompressed, to be settled.
  std::atomic<uint64_t> corrupt_reads{0};   // Reads that failed verification.
};

class ChunkStore {
 public:
  enum class PutResult { kQueued, kPending, kStored };

  ChunkStore(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, std::string packs_dir,
             ChunkHasher hasher, ChunkStoreOptions options);
  ~ChunkStore();  // Stops the workers after they drain the queue.
  ChunkStore(const ChunkStore&) = delete;
  ChunkStore& operator=(const ChunkStore&) = delete;

  // Opens a new pack and starts the workers (not for read-only stores).
  Status Start();

  ChunkId Id(const uint8_t* data, size_t len) const { return hasher_.Hash(data, len); }

  // Makes sure the chunk `id` (whose bytes are `raw`) gets stored. kQueued:
  // new, queued now (with a copy of `raw`: the only case that copies it,
  // unless `owner` keeps the bytes of `raw` alive and unchanged for as long
  // as it or a copy of it is held, as DirtyBytes::Share does: then the
  // queue holds a copy of `owner` instead);
  // kPending: already queued but not yet indexed; kStored: in the index
  // already (costs one index lookup, never a chunk read). Blocks while
  // the queue is over max_queued_bytes. With `hold`, the chunk is also held
  // (counted) until Release(): content not yet committed references it, so
  // GC must not delete it (docs/design.md, "Garbage collection"); a held
  // delta holds its base too. `base_hint`: a chunk whose bytes are likely
  // similar (the chunk the same file offset held before), used only if the
  // chunk is new and the hint is indexed when the worker compresses it.
  Result<PutResult> Put(const ChunkId& id, std::string_view raw, bool hold = false,
                        std::optional<ChunkId> base_hint = std::nullopt,
                        std::shared_ptr<const char> owner = nullptr);
  // Drops one hold on each of `ids` (after their version was committed, or
  // when the content is dropped).
  void Release(std::span<const ChunkId> ids);

  // Waits until each of `ids` that is not yet indexed is in a pack. A chunk
  // whose append failed (e.g. kNoSpace) is retried once here; the error is
  // returned if it fails again, and the chunk stays queued in memory so a
  // later call can succeed once there is room. Adds the compressed size of
  // each waited-for chunk to *stored_bytes (may be null).
  Status WaitStored(std::span<const ChunkId> ids, uint64_t* stored_bytes);

  // Adds an index entry to `batch` for each of `ids` still awaiting one. If
  // there is any, syncs the packs first, so the entry can never outlive the
  // bytes it names (see the header comment). Call WaitStored first.
  // With `sync_packs` false the caller syncs the packs itself before the
  // batch is written (a synced commit: docs/design.md, "Durability and crashes").
  Status AddIndexEntries(std::span<const ChunkId> ids, rocksdb::WriteBatch* batch,
                         bool sync_packs = true);
  // Call after the batch from AddIndexEntries committed.
  void MarkIndexed(std::span<const ChunkId> ids);
  // Those of `ids` (not yet marked indexed) that a worker stored uncompressed
  // (ChunkStoreOptions::defer_above), each with the base hint it was put
  // with: Store::Commit records them for Store::Settle.
  std::vector<std::pair<ChunkId, std::optional<ChunkId>>> Deferred(std::span<const ChunkId> ids);
  // True when no chunk waits for a worker.
  bool Idle();
  // Tests only: while held, the workers take no chunk from the queue (so a
  // test can act while chunks are queued); WaitStored must not be called.
  void HoldWorkersForTesting(bool hold);

  // A deferred chunk compressed by Resettle; its index entry is to move
  // from the uncompressed record to the new one.
  struct Resettled {
    ChunkId id;
    ChunkLocation from;
    ChunkLocation to;
  };
  // Compresses the indexed codec-0 chunk `id` as a worker would have
  // (against the base `hint` leads to, see BaseFor) and appends it to the
  // current pack; the caller syncs the packs and moves the index entry.
  // nullopt when there is nothing to do: no index entry, not codec 0, or the
  // bytes do not compress. Corruption if the stored record is damaged. For
  // Store::Settle only, which keeps GC from running meanwhile (the base
  // found stays indexed until the entry naming it is written).
  Result<std::optional<Resettled>> Resettle(const ChunkId& id, std::optional<ChunkId> hint);

  // The raw bytes of chunk `id`: from memory if queued, else from the cache or
  // its pack (a delta: decoded against its base, fetched the same way but
  // not cached). NotFound if the index has no entry; Corruption (naming the
  // chunk) if the record fails any check, and for a delta whose base is
  // missing, itself a delta, or damaged (naming the base too).
  Result<ChunkBytes> Get(const ChunkId& id);
  // Moves each of `ids` that is cached to the cache's short queue of chunks
  // read through, for a reader that will not ask for them again: a
  // sequential pass, whose bytes the kernel's page cache keeps once read.
  // The queue holds cache_bytes / 8 (a chunk whose end one read reached may
  // still be wanted by a read of its start that is in flight), and its
  // oldest chunks drop first. Without it a long read fills the whole cache
  // with fresh buffers before one is recycled, and touching fresh memory
  // costs more than decoding (docs/performance.md, "Reading back, part 3").
  // A copy still held (a read reply) stays valid.
  void ReadThrough(std::span<const ChunkId> ids);
  // Reads the record at `loc` from its pack and verifies it (header, payload
  // hash, decoding, raw length, hash of the raw bytes == id), bypassing and
  // never filling the cache: for checks. A delta's base is fetched as by
  // Get(). Corruption names the chunk.
  Result<ChunkBytes> ReadVerified(const ChunkId& id, const ChunkLocation& loc);
  // The index entry, or nullopt.
  Result<std::optional<ChunkLocation>> Locate(const ChunkId& id);

  Status SyncPacks();
  // PackWriter::AppendCommit and current_pack (read-write stores).
  Status AppendCommit(uint64_t g, std::string_view batch) {
    return writer_ ? writer_->AppendCommit(g, batch) : Status::ReadOnly("read-only");
  }
  uint32_t current_pack() { return writer_ ? writer_->current_pack() : 0; }
  // PackWriter::Rollover (read-write stores).
  Status RollPack() { return writer_ ? writer_->Rollover() : Status::ReadOnly("read-only"); }
  const ChunkCounters& counters() const { return counters_; }
  const std::string& packs_dir() const { return packs_dir_; }

  // --- The GC fence (store/gc.cc; docs/design.md, "Garbage collection") ----
  // Starts a GC epoch: until EndGcEpoch() every chunk that is held or Put()
  // (whatever the result) is protected. `snapshot` runs while lookups are
  // blocked; GC takes its RocksDB snapshot there. Returns the first pack
  // number GC must leave alone (the pack being appended to, or an older one
  // holding a chunk that is stored but not yet indexed).
  uint32_t BeginGcEpoch(const std::function<void()>& snapshot);
  void EndGcEpoch();
  struct Moved {
    ChunkId id;
    ChunkLocation from;   // Where the index pointed in GC's snapshot.
    ChunkLocation to;     // For Repoint(): the copy.
  };
  // Deletes the index entry of each chunk that is not protected, held or
  // queued and whose entry still equals `from`, in one synced batch, while
  // lookups wait (after it, a Put() of that chunk stores a fresh copy).
  // Returns how many were deleted; the others (still referenced or changed)
  // are appended to *rescued.
  Result<uint64_t> DeleteDead(std::span<const Moved> dead, std::vector<Moved>* rescued);
  // Copies the record of `id` at `from` (verified) to the current pack.
  Result<ChunkLocation> CopyRecord(const ChunkId& id, const ChunkLocation& from);
  // Points each entry that still equals `from` at `to`, in one synced batch.
  Status Repoint(std::span<const Moved> moved);
  // Forgets the fd of a pack GC removed; ForgetRemovedPacks: of every pack
  // some other process removed (read-only stores, at CatchUp).
  void ForgetPack(uint32_t pack) { reader_.Forget(pack); }
  void ForgetRemovedPacks() { reader_.ForgetRemoved(); }
  // Read-only stores: how to see the daemon's newest index (Store::CatchUp),
  // tried once when a read finds its pack removed by GC.
  void SetCatchUp(std::function<Status()> fn) { catch_up_ = std::move(fn); }

 private:
  // A queued chunk's bytes: a copy (Copy()), or Put()'s caller's `owner`.
  struct Raw {
    std::shared_ptr<const char> data;  // Keeps the block the bytes are in.
    size_t size = 0;
    std::string_view view() const { return {data.get(), size}; }
  };
  struct Pending {
    Raw raw;                 // Dropped once stored.
    std::optional<ChunkId> hint;  // Put()'s base hint; immutable.
    std::optional<ChunkId> base;  // mu_: the base chosen (counted in base_refs_).
    std::optional<ChunkLocation> loc;
    Status error;            // Last failed append.
    bool busy = false;       // A worker or a waiter is appending it.
    bool deferred = false;   // Appended uncompressed (codec 0), to be settled.
  };
  using PendingPtr = std::shared_ptr<Pending>;
  struct Hold {
    uint32_t n = 0;
    std::vector<ChunkId> bases;  // Each held once for as long as n > 0 (one, nearly always).
  };

  // A chunk a worker took from the queue.
  struct Job {
    ChunkId id;
    PendingPtr p;
    Raw raw;  // Kept while p->raw may be dropped.
  };
  void WorkerLoop();
  // Compresses and appends; returns the outcome. Called without mu_ held.
  Status Store(const ChunkId& id, const PendingPtr& p, std::string_view raw, ChunkLocation* loc);
  // Appends the raw bytes of `jobs` uncompressed (deferred compression), in
  // one write; all or none. Called without mu_ held.
  Status StoreDeferred(std::span<const Job> jobs, ChunkLocation* locs);
  // A copy of `raw`, packed after the copies before it into 1 MiB blocks of
  // a BlockPool (dirty_bytes.h): their pages are faulted in once, in huge
  // pages, and recycled, where a heap copy of each chunk costs fresh 4 KiB
  // faults (docs/performance.md, session 10). A block goes back to the pool
  // when the last chunk copied into it is stored and dropped.
  Raw Copy(std::string_view raw);
  // The chunk a chunk put with base hint `hint` is compressed against: the
  // hint, or the hint's base if the hint is a delta (depth one). Only a
  // chunk stored as one plain zstd frame (codec 1) serves: a codec-0 chunk
  // may be a deferred one that Settle turns into a delta later. nullopt if
  // none. *aged: the base is older than the hint. Callers keep GC from
  // deleting the base (the fence, or Settle's exclusion).
  std::optional<ChunkId> BaseFor(const ChunkId& id, const ChunkId& hint, bool* aged);
  // Appends an encoded chunk to the current pack and counts it.
  Result<ChunkLocation> AppendEncoded(const ChunkId& id, Codec codec, size_t raw_len,
                                      std::string_view encoded,
                                      const std::optional<ChunkId>& base);
  // The base p's chunk is compressed against, and its bytes; nullopt if the
  // hint is not indexed (or unreadable). Records and protects the base.
  // *aged: the hint is itself a delta, so the base is older than the hint.
  std::optional<ChunkId> ChooseBase(const ChunkId& id, const PendingPtr& p, ChunkBytes* bytes,
                                    bool* aged);
  void SetBaseLocked(const PendingPtr& p, std::optional<ChunkId> base);  // mu_ held.
  // Get(), or with `base_of`: the base of that delta (never itself a delta;
  // not cached; errors name both).
  Result<ChunkBytes> Fetch(const ChunkId& id, const ChunkId* base_of);
  void CacheInsert(const ChunkId& id, const ChunkBytes& bytes);
  ChunkBytes CacheLookup(const ChunkId& id);

  rocksdb::DB* const db_;
  rocksdb::ColumnFamilyHandle* const cf_;
  const std::string packs_dir_;
  const ChunkHasher hasher_;
  const ChunkStoreOptions options_;
  std::unique_ptr<PackWriter> writer_;
  PackReader reader_;
  ChunkCounters counters_;

  std::mutex mu_;
  std::condition_variable queue_cv_;   // Workers wait for work.
  std::condition_variable done_cv_;    // Waiters and blocked Put()s.
  std::mutex copy_mu_;                 // Copy()'s block being filled:
  std::shared_ptr<char> copy_block_;   // copy_mu_
  size_t copy_used_ = 0;               // copy_mu_: bytes of it handed out.
  std::unordered_map<ChunkId, PendingPtr, ChunkIdHash> pending_;
  std::deque<std::pair<ChunkId, PendingPtr>> queue_;
  size_t queued_bytes_ = 0;
  // New bytes queued in the current tenth of a second (since arrival_start_)
  // and in the one before it: the arrival rate, for options_.defer_rate.
  std::chrono::steady_clock::time_point arrival_start_;
  uint64_t arrival_now_ = 0;
  uint64_t arrival_before_ = 0;
  bool stopping_ = false;
  bool workers_held_ = false;  // HoldWorkersForTesting.
  std::vector<std::thread> workers_;

  // The GC fence. Lookups in Put() hold it shared; GC holds it exclusively
  // while it starts an epoch and while it deletes or repoints index entries.
  // Lock order: fence_mu_ before mu_.
  std::shared_mutex fence_mu_;
  bool gc_epoch_ = false;                                   // mu_
  std::unordered_set<ChunkId, ChunkIdHash> protected_;      // mu_: this epoch's.
  std::unordered_map<ChunkId, Hold, ChunkIdHash> holds_;    // mu_
  // Bases chosen for pending chunks, with the number of such chunks (mu_):
  // never swept while a chunk that will name them is not yet indexed.
  std::unordered_map<ChunkId, uint32_t, ChunkIdHash> base_refs_;
  std::function<Status()> catch_up_;
  // Counts `bytes` of new chunks queued now (mu_ held).
  void CountArrivalLocked(size_t bytes);
  // Whether new chunks arrive faster than options_.defer_rate (mu_ held).
  bool ArrivingFastLocked() const;
  // Protects (and with `hold`, holds) `id` and its base, if known. mu_ held.
  void ProtectLocked(const ChunkId& id, bool hold, const std::optional<ChunkId>& base);
  void ReleaseLocked(const ChunkId& id);                    // mu_ held.

  // The cache: lru_ (most recent first) and through_ (ReadThrough; oldest
  // last), each entry in one of them, with the bytes each list holds.
  struct CacheSlot {
    std::list<std::pair<ChunkId, ChunkBytes>>::iterator it;
    bool through = false;
  };
  // Removes the last entry of `list` (lru_ or through_, whose bytes `size`
  // counts) from the cache and returns its bytes (cache_mu_ held).
  ChunkBytes CacheDropOldest(std::list<std::pair<ChunkId, ChunkBytes>>& list, size_t& size);
  std::mutex cache_mu_;
  std::list<std::pair<ChunkId, ChunkBytes>> lru_;
  std::list<std::pair<ChunkId, ChunkBytes>> through_;
  std::unordered_map<ChunkId, CacheSlot, ChunkIdHash> cache_;
  size_t cache_size_ = 0;    // Of lru_.
  size_t through_size_ = 0;  // Of through_.
};

}  // namespace snapfs::store
