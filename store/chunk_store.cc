#include "store/chunk_store.h"

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "store/dirty_bytes.h"

namespace snapfs::store {
namespace {

// When the base is older than the hint (the hint is a delta: depth one), the
// delta carries every change since the base, and grows by about one day's
// changes c per day. Storing the chunk plain instead (P) starts a new chain.
// Re-basing every N days costs P/N + c(N-1)/2 a day, least at
// N = sqrt(2P/c), when the delta has grown to about sqrt(2Pc) - c: for
// c/P between 0.02 and 0.3 (0.2 % to 3 % of the rows a day) that is 0.2 to
// 0.5 of P. So an aged delta is kept only below a third of the plain frame.
constexpr double kAgedDeltaShare = 1.0 / 3;

}  // namespace

ChunkStore::ChunkStore(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, std::string packs_dir,
                       ChunkHasher hasher, ChunkStoreOptions options)
    : db_(db),
      cf_(cf),
      packs_dir_(std::move(packs_dir)),
      hasher_(std::move(hasher)),
      options_(options),
      reader_(packs_dir_) {}

ChunkStore::~ChunkStore() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  done_cv_.notify_all();  // A Put() blocked on a full queue.
  for (auto& t : workers_) t.join();
}

Status ChunkStore::Start() {
  if (options_.read_only) return Status::Ok();
  SNAPFS_ASSIGN_OR_RETURN(writer_, PackWriter::Open(packs_dir_));
  int n = options_.threads;
  if (n <= 0) n = std::max(2u, std::thread::hardware_concurrency());
  for (int i = 0; i < n; ++i) workers_.emplace_back([this] { WorkerLoop(); });
  return Status::Ok();
}

Result<ChunkStore::PutResult> ChunkStore::Put(const ChunkId& id, std::string_view raw, bool hold,
                                              std::optional<ChunkId> base_hint,
                                              std::shared_ptr<const char> owner) {
  if (writer_ == nullptr) return Status::ReadOnly("chunk store is read-only");
  {
    std::lock_guard lock(mu_);
    auto it = pending_.find(id);
    if (it != pending_.end()) {
      counters_.chunks_dup++;
      ProtectLocked(id, hold, it->second->base);
      return PutResult::kPending;
    }
  }
  {
    // The lookup and the protection are one step for GC's sweep: it cannot
    // delete the entry between them (docs/design.md, "Garbage collection").
    std::shared_lock fence(fence_mu_);
    SNAPFS_ASSIGN_OR_RETURN(auto loc, Locate(id));
    if (loc) {
      counters_.chunks_dup++;
      std::lock_guard lock(mu_);
      ProtectLocked(id, hold,
                    loc->codec == Codec::kZstdDelta ? std::optional(loc->base) : std::nullopt);
      return PutResult::kStored;
    }
  }
  // New: only now are the bytes copied (most chunks of a dump written again
  // are stored already), and outside mu_; or not at all if the caller's
  // owner keeps them.
  Raw bytes = owner ? Raw{std::shared_ptr<const char>(std::move(owner), raw.data()), raw.size()}
                    : Copy(raw);
  std::unique_lock lock(mu_);
  ProtectLocked(id, hold, std::nullopt);
  done_cv_.wait(lock, [&] {
    return queued_bytes_ < options_.max_queued_bytes || stopping_;
  });
  // Checked after the wait, which releases mu_: another thread may have
  // queued the chunk since the lookup or while we waited.
  if (auto it = pending_.find(id); it != pending_.end()) {
    counters_.chunks_dup++;
    ProtectLocked(id, false, it->second->base);  // The hold (if any) is taken above.
    return PutResult::kPending;
  }
  auto p = std::make_shared<Pending>();
  p->raw = std::move(bytes);
  if (base_hint && *base_hint != id) p->hint = base_hint;
  p->busy = true;
  pending_.emplace(id, p);
  queue_.emplace_back(id, p);
  queued_bytes_ += raw.size();
  CountArrivalLocked(raw.size());
  counters_.chunks_new++;
  counters_.raw_bytes_new += raw.size();
  lock.unlock();
  queue_cv_.notify_one();
  return PutResult::kQueued;
}

namespace {
constexpr std::chrono::milliseconds kArrivalBucket{100};
constexpr size_t kCopyAlign = 64;  // Each copy starts on a cache line.
// A worker appends deferred chunks in writes of up to this many raw bytes.
constexpr size_t kDeferredBatchBytes = 1u << 20;

// The blocks queued chunks are copied into: 80 MiB, the queue's default
// bound (ChunkStoreOptions::max_queued_bytes) and room for blocks that a
// few chunks not yet stored keep. Never destroyed: a copy may outlive
// static destruction.
BlockPool& CopyPool() {
  static BlockPool* const pool = new BlockPool(1u << 20, 80u << 20);
  return *pool;
}
}  // namespace

ChunkStore::Raw ChunkStore::Copy(std::string_view raw) {
  BlockPool& pool = CopyPool();
  // A block is shared by the copies in it; the last one gives it back.
  auto share = [](BlockPool::Buffer b) {
    return std::shared_ptr<char>(b.release(), b.get_deleter());
  };
  std::shared_ptr<char> block;
  size_t at = 0;
  if (raw.size() > pool.block_size()) {
    block = share(BlockPool::Unpooled(raw.size()));
  } else {
    std::lock_guard lock(copy_mu_);
    if (!copy_block_ || copy_used_ + raw.size() > pool.block_size()) {
      copy_block_ = share(pool.Take());
      copy_used_ = 0;
    }
    block = copy_block_;
    at = copy_used_;
    copy_used_ += (raw.size() + kCopyAlign - 1) / kCopyAlign * kCopyAlign;
  }
  char* const dest = block.get() + at;
  std::memcpy(dest, raw.data(), raw.size());
  return Raw{std::shared_ptr<const char>(std::move(block), dest), raw.size()};
}

void ChunkStore::CountArrivalLocked(size_t bytes) {
  const auto now = std::chrono::steady_clock::now();
  if (now - arrival_start_ >= kArrivalBucket) {
    arrival_before_ = now - arrival_start_ < 2 * kArrivalBucket ? arrival_now_ : 0;
    arrival_now_ = 0;
    arrival_start_ = now;
  }
  arrival_now_ += bytes;
}

bool ChunkStore::ArrivingFastLocked() const {
  if (options_.defer_rate == 0) return false;
  if (std::chrono::steady_clock::now() - arrival_start_ >= 2 * kArrivalBucket) return false;
  // At most a fifth of a second's worth: more than a fifth of the rate's bytes in it.
  return arrival_before_ + arrival_now_ > options_.defer_rate / 5;
}

void ChunkStore::ProtectLocked(const ChunkId& id, bool hold, const std::optional<ChunkId>& base) {
  // A chunk's base is protected whenever the chunk is: the same fence covers
  // both (docs/design.md, "Garbage collection").
  if (hold) holds_[id].n++;
  if (base) {
    // Also when the base became known after the chunk was held (the worker
    // chose it): the hold covers every base the chunk was given.
    auto it = holds_.find(id);
    if (it != holds_.end() &&
        std::find(it->second.bases.begin(), it->second.bases.end(), *base) ==
            it->second.bases.end()) {
      it->second.bases.push_back(*base);
      holds_[*base].n++;  // Rehashing keeps `it` valid: it is not used below.
    }
  }
  if (gc_epoch_) {
    protected_.insert(id);
    if (base) protected_.insert(*base);
  }
}

void ChunkStore::ReleaseLocked(const ChunkId& id) {
  auto it = holds_.find(id);
  if (it == holds_.end() || --it->second.n > 0) return;
  const std::vector<ChunkId> bases = std::move(it->second.bases);
  holds_.erase(it);
  for (const ChunkId& base : bases) ReleaseLocked(base);  // Bases hold no bases.
}

void ChunkStore::Release(std::span<const ChunkId> ids) {
  std::lock_guard lock(mu_);
  for (const ChunkId& id : ids) ReleaseLocked(id);
}

uint32_t ChunkStore::BeginGcEpoch(const std::function<void()>& snapshot) {
  std::unique_lock fence(fence_mu_);
  uint32_t first_unsafe = writer_ ? writer_->current_pack() : UINT32_MAX;
  {
    std::lock_guard lock(mu_);
    gc_epoch_ = true;
    protected_.clear();
    for (const auto& [id, n] : holds_) protected_.insert(id);
    for (const auto& [id, p] : pending_)
      if (p->loc) first_unsafe = std::min(first_unsafe, p->loc->pack);
  }
  snapshot();
  return first_unsafe;
}

void ChunkStore::EndGcEpoch() {
  std::unique_lock fence(fence_mu_);
  std::lock_guard lock(mu_);
  gc_epoch_ = false;
  protected_.clear();
}

Result<uint64_t> ChunkStore::DeleteDead(std::span<const Moved> dead,
                                        std::vector<Moved>* rescued) {
  std::unique_lock fence(fence_mu_);
  rocksdb::WriteBatch batch;
  uint64_t n = 0;
  for (const Moved& m : dead) {
    bool keep;
    {
      std::lock_guard lock(mu_);
      keep = protected_.count(m.id) || holds_.count(m.id) || pending_.count(m.id) ||
             base_refs_.count(m.id);
    }
    SNAPFS_ASSIGN_OR_RETURN(auto now, Locate(m.id));
    if (!now) continue;  // Gone already.
    if (keep || !(*now == m.from)) {
      // Still in the index: a live entry now, wherever it points.
      rescued->push_back(Moved{m.id, *now, {}});
      continue;
    }
    rocksdb::Status st = batch.Delete(cf_, keys::Chunk(m.id));
    if (!st.ok()) return Status::Io("index batch: " + st.ToString());
    ++n;
  }
  if (n == 0) return n;
  rocksdb::WriteOptions wo;
  wo.sync = true;  // Packs are removed later: the deletes must not come back.
  rocksdb::Status st = db_->Write(wo, &batch);
  if (!st.ok()) return Status::Io("delete dead chunk index entries: " + st.ToString());
  return n;
}

Result<ChunkLocation> ChunkStore::CopyRecord(const ChunkId& id, const ChunkLocation& from) {
  if (writer_ == nullptr) return Status::ReadOnly("chunk store is read-only");
  SNAPFS_ASSIGN_OR_RETURN(std::string payload, reader_.Read(id, from));
  return writer_->Append(id, from.codec, from.raw_len, payload, from.base);
}

Status ChunkStore::Repoint(std::span<const Moved> moved) {
  std::unique_lock fence(fence_mu_);
  rocksdb::WriteBatch batch;
  for (const Moved& m : moved) {
    SNAPFS_ASSIGN_OR_RETURN(auto now, Locate(m.id));
    if (!now || !(*now == m.from)) continue;
    rocksdb::Status st = batch.Put(cf_, keys::Chunk(m.id), EncodeChunkLocation(m.to));
    if (!st.ok()) return Status::Io("index batch: " + st.ToString());
  }
  rocksdb::WriteOptions wo;
  wo.sync = true;  // The old pack is removed next.
  rocksdb::Status st = db_->Write(wo, &batch);
  if (!st.ok()) return Status::Io("repoint chunk index entries: " + st.ToString());
  return Status::Ok();
}

void ChunkStore::SetBaseLocked(const PendingPtr& p, std::optional<ChunkId> base) {
  if (p->base) {
    auto it = base_refs_.find(*p->base);
    if (it != base_refs_.end() && --it->second == 0) base_refs_.erase(it);
  }
  p->base = base;
  if (base) base_refs_[*base]++;
}

std::optional<ChunkId> ChunkStore::BaseFor(const ChunkId& id, const ChunkId& hint, bool* aged) {
  ChunkId base = hint;
  Result<std::optional<ChunkLocation>> loc = Locate(base);
  if (!loc.ok() || !*loc) return std::nullopt;
  if ((*loc)->codec == Codec::kZstdDelta) {
    base = (*loc)->base;  // Depth one: the hint's base serves instead.
    *aged = true;
    loc = Locate(base);
    if (!loc.ok() || !*loc) return std::nullopt;
  }
  if ((*loc)->codec != Codec::kZstd || base == id) return std::nullopt;
  return base;
}

std::optional<ChunkId> ChunkStore::ChooseBase(const ChunkId& id, const PendingPtr& p,
                                              ChunkBytes* bytes, bool* aged) {
  std::optional<ChunkId> found;
  {
    // Like a Put() of the base: the lookup and the protection are one step
    // for GC's sweep, so the base found here stays indexed until this chunk
    // is indexed (base_refs_) and as long as the chunk is held or protected.
    std::shared_lock fence(fence_mu_);
    found = BaseFor(id, *p->hint, aged);
    if (!found) return std::nullopt;
    std::lock_guard lock(mu_);
    SetBaseLocked(p, found);
    ProtectLocked(id, false, found);
  }
  const ChunkId base = *found;
  Result<ChunkBytes> b = Fetch(base, &id);
  if (!b.ok()) {
    std::lock_guard lock(mu_);
    SetBaseLocked(p, std::nullopt);  // Stored without a base; a hold taken stays, harmlessly.
    return std::nullopt;
  }
  *bytes = *b;
  return base;
}

Status ChunkStore::StoreDeferred(std::span<const Job> jobs, ChunkLocation* locs) {
  // Writes outrun compression: keep up now, compress when idle (Settle).
  std::vector<PackWriter::ChunkRecord> records;
  records.reserve(jobs.size());
  const ChunkId none;
  for (const Job& j : jobs)
    records.push_back({j.id, Codec::kRaw, static_cast<uint32_t>(j.raw.size), j.raw.view(), none});
  SNAPFS_RETURN_IF_ERROR(writer_->AppendChunks(records, locs));
  for (const Job& j : jobs) counters_.stored_bytes += j.raw.size;
  counters_.chunks_deferred += jobs.size();
  return Status::Ok();
}

Status ChunkStore::Store(const ChunkId& id, const PendingPtr& p, std::string_view raw,
                         ChunkLocation* loc) {
  ChunkBytes base_bytes;
  std::optional<ChunkId> base;
  bool aged = false;
  if (p->hint) base = ChooseBase(id, p, &base_bytes, &aged);
  Codec codec;
  std::string encoded;
  Status st = EncodeChunk(raw, options_.zstd_level,
                          base_bytes ? std::string_view(*base_bytes) : std::string_view(),
                          aged ? kAgedDeltaShare : 1.0, &codec, &encoded);
  if (st.ok() && base && codec != Codec::kZstdDelta) {
    std::lock_guard lock(mu_);
    SetBaseLocked(p, std::nullopt);
    base.reset();
  }
  SNAPFS_RETURN_IF_ERROR(st);
  SNAPFS_ASSIGN_OR_RETURN(*loc, AppendEncoded(id, codec, raw.size(), encoded, base));
  return Status::Ok();
}

Result<ChunkLocation> ChunkStore::AppendEncoded(const ChunkId& id, Codec codec, size_t raw_len,
                                                std::string_view encoded,
                                                const std::optional<ChunkId>& base) {
  SNAPFS_ASSIGN_OR_RETURN(ChunkLocation loc,
                          writer_->Append(id, codec, static_cast<uint32_t>(raw_len), encoded,
                                          base.value_or(ChunkId{})));
  counters_.stored_bytes += encoded.size();
  if (codec == Codec::kZstdDelta) counters_.chunks_delta++;
  return loc;
}

void ChunkStore::WorkerLoop() {
  pthread_setname_np(pthread_self(), "snapfs-zstd");
  // Linux: a thread's nice value is its own (PRIO_PROCESS with its tid).
  if (options_.worker_nice > 0) (void)::setpriority(PRIO_PROCESS, ::gettid(), options_.worker_nice);
  std::vector<Job> jobs;
  std::vector<ChunkLocation> locs;
  std::unique_lock lock(mu_);
  for (;;) {
    queue_cv_.wait(lock, [&] { return stopping_ || (!queue_.empty() && !workers_held_); });
    if (queue_.empty()) return;  // Stopping and drained.
    auto take = [&] {
      auto [id, p] = std::move(queue_.front());
      queue_.pop_front();
      Raw raw = p->raw;
      jobs.push_back(Job{id, std::move(p), std::move(raw)});
    };
    take();
    const bool defer = queued_bytes_ > options_.defer_above || ArrivingFastLocked();
    if (defer) {
      // The chunks queued behind it go uncompressed too, in the same write,
      // up to kDeferredBatchBytes.
      size_t bytes = jobs.front().raw.size;
      while (!queue_.empty() && jobs.size() < PackWriter::kMaxAppendBatch &&
             bytes + queue_.front().second->raw.size <= kDeferredBatchBytes) {
        bytes += queue_.front().second->raw.size;
        take();
      }
    }
    lock.unlock();
    locs.resize(jobs.size());
    const Status st = defer ? StoreDeferred(jobs, locs.data())
                            : Store(jobs[0].id, jobs[0].p, jobs[0].raw.view(), locs.data());
    lock.lock();
    for (size_t i = 0; i < jobs.size(); ++i) {
      Pending& p = *jobs[i].p;
      queued_bytes_ -= jobs[i].raw.size;
      p.busy = false;
      if (st.ok()) {
        p.loc = locs[i];
        p.deferred = defer;
        p.raw = Raw();
        p.error = Status::Ok();
      } else {
        p.error = st;
      }
    }
    jobs.clear();  // Drops the raw bytes (and the blocks they keep) now, not at the next chunk.
    done_cv_.notify_all();
  }
}

void ChunkStore::HoldWorkersForTesting(bool hold) {
  {
    std::lock_guard lock(mu_);
    workers_held_ = hold;
  }
  queue_cv_.notify_all();
}

Status ChunkStore::WaitStored(std::span<const ChunkId> ids, uint64_t* stored_bytes) {
  for (const ChunkId& id : ids) {
    std::unique_lock lock(mu_);
    auto it = pending_.find(id);
    if (it == pending_.end()) continue;  // Indexed already.
    PendingPtr p = it->second;
    done_cv_.wait(lock, [&] { return !p->busy; });
    if (!p->loc) {
      // The worker's append failed: try once more now, in this thread.
      p->busy = true;
      const Raw raw = p->raw;
      lock.unlock();
      ChunkLocation loc;
      Status st = Store(id, p, raw.view(), &loc);  // Compressed: smallest on a full disk.
      lock.lock();
      p->busy = false;
      done_cv_.notify_all();
      if (!st.ok()) {
        p->error = st;
        return st;
      }
      p->loc = loc;
      p->deferred = false;
      p->raw = Raw();
    }
    if (stored_bytes) *stored_bytes += p->loc->stored_len;
  }
  return Status::Ok();
}

Status ChunkStore::AddIndexEntries(std::span<const ChunkId> ids, rocksdb::WriteBatch* batch,
                                   bool sync_packs) {
  bool any = false;
  {
    std::lock_guard lock(mu_);
    for (const ChunkId& id : ids) {
      auto it = pending_.find(id);
      if (it == pending_.end()) continue;
      if (!it->second->loc) return Status::Invalid("chunk " + id.Hex() + " is not stored yet");
      rocksdb::Status st = batch->Put(cf_, keys::Chunk(id), EncodeChunkLocation(*it->second->loc));
      if (!st.ok()) return Status::Io("index batch: " + st.ToString());
      any = true;
    }
  }
  if (any && sync_packs) return writer_->Sync();
  return Status::Ok();
}

void ChunkStore::MarkIndexed(std::span<const ChunkId> ids) {
  std::lock_guard lock(mu_);
  for (const ChunkId& id : ids) {
    auto it = pending_.find(id);
    if (it != pending_.end() && it->second->loc) {
      // Indexed: from now on the entry names the base (GC's mark follows it).
      SetBaseLocked(it->second, std::nullopt);
      pending_.erase(it);
    }
  }
}

std::vector<std::pair<ChunkId, std::optional<ChunkId>>> ChunkStore::Deferred(
    std::span<const ChunkId> ids) {
  std::vector<std::pair<ChunkId, std::optional<ChunkId>>> out;
  std::lock_guard lock(mu_);
  for (const ChunkId& id : ids) {
    auto it = pending_.find(id);
    if (it != pending_.end() && it->second->loc && it->second->deferred)
      out.emplace_back(id, it->second->hint);
  }
  return out;
}

bool ChunkStore::Idle() {
  std::lock_guard lock(mu_);
  return queue_.empty();
}

Result<std::optional<ChunkStore::Resettled>> ChunkStore::Resettle(const ChunkId& id,
                                                                  std::optional<ChunkId> hint) {
  if (writer_ == nullptr) return Status::ReadOnly("chunk store is read-only");
  SNAPFS_ASSIGN_OR_RETURN(auto from, Locate(id));
  if (!from || from->codec != Codec::kRaw) return std::optional<Resettled>();
  SNAPFS_ASSIGN_OR_RETURN(ChunkBytes raw, ReadVerified(id, *from));
  ChunkBytes base_bytes;
  std::optional<ChunkId> base;
  bool aged = false;
  if (hint) base = BaseFor(id, *hint, &aged);
  if (base) {
    Result<ChunkBytes> b = Fetch(*base, &id);
    if (b.ok()) base_bytes = *b;
    else base.reset();  // Stored without a base; snapfs-check names the damaged one.
  }
  Codec codec;
  std::string encoded;
  SNAPFS_RETURN_IF_ERROR(EncodeChunk(*raw, options_.zstd_level,
                                     base_bytes ? std::string_view(*base_bytes) : std::string_view(),
                                     aged ? kAgedDeltaShare : 1.0, &codec, &encoded));
  if (codec == Codec::kRaw) return std::optional<Resettled>();
  if (codec != Codec::kZstdDelta) base.reset();
  SNAPFS_ASSIGN_OR_RETURN(ChunkLocation to, AppendEncoded(id, codec, raw->size(), encoded, base));
  return std::optional<Resettled>(Resettled{id, *from, to});
}

Status ChunkStore::SyncPacks() {
  if (writer_ == nullptr) return Status::Ok();
  return writer_->Sync();
}

Result<std::optional<ChunkLocation>> ChunkStore::Locate(const ChunkId& id) {
  std::string key = keys::Chunk(id);
  rocksdb::PinnableSlice value;
  rocksdb::Status st = db_->Get(rocksdb::ReadOptions(), cf_, key, &value);
  if (st.IsNotFound()) return std::optional<ChunkLocation>();
  if (!st.ok()) return Status::Io("chunk index lookup " + id.Hex() + ": " + st.ToString());
  SNAPFS_ASSIGN_OR_RETURN(ChunkLocation loc, DecodeChunkLocation(value.ToStringView(), key));
  return std::optional<ChunkLocation>(loc);
}

Result<ChunkBytes> ChunkStore::Get(const ChunkId& id) { return Fetch(id, nullptr); }

Result<ChunkBytes> ChunkStore::Fetch(const ChunkId& id, const ChunkId* base_of) {
  if (ChunkBytes hit = CacheLookup(id)) return hit;
  std::optional<ChunkLocation> loc;
  Raw queued;
  {
    std::lock_guard lock(mu_);
    auto it = pending_.find(id);
    if (it != pending_.end()) {
      queued = it->second->raw;
      loc = it->second->loc;
    }
  }
  // Not cached: it is in memory only until stored, soon.
  if (queued.data) return std::make_shared<const std::string>(queued.view());
  if (!loc) {
    SNAPFS_ASSIGN_OR_RETURN(loc, Locate(id));
    if (!loc) {
      if (base_of != nullptr)
        return Status::Corruption("chunk " + base_of->Hex() + ": its base chunk " + id.Hex() +
                                  " is not in the store");
      return Status::NotFound("chunk " + id.Hex() + " is not in the store");
    }
  }
  // A base is never a delta (so a read decodes at most twice): an index that
  // says otherwise is damaged, and following it could recurse.
  if (base_of != nullptr && loc->codec == Codec::kZstdDelta)
    return Status::Corruption("chunk " + base_of->Hex() + ": its base chunk " + id.Hex() +
                              " is itself a delta");
  // Only verified bytes enter the cache: a damaged record fails every read.
  Result<ChunkBytes> bytes = ReadVerified(id, *loc);
  if (!bytes.ok() && bytes.status().code() == Code::kNotFound) {
    // GC moved the record and removed its pack after we looked it up: look
    // again (a read-only store first catches up with the daemon's index).
    if (catch_up_) SNAPFS_RETURN_IF_ERROR(catch_up_());
    SNAPFS_ASSIGN_OR_RETURN(auto again, Locate(id));
    if (again && !(*again == *loc)) bytes = ReadVerified(id, *again);
    if (!bytes.ok() && bytes.status().code() == Code::kNotFound)
      bytes = Status::Corruption("chunk " + id.Hex() + ": " + bytes.status().message());
  }
  if (base_of != nullptr) {
    // A base is read for one delta at a time (yesterday's chunk under
    // today's): caching it would only push out chunks that are read.
    if (!bytes.ok())
      return Status::Corruption("chunk " + base_of->Hex() + ": base chunk " + id.Hex() + ": " +
                                bytes.status().message());
    return bytes;
  }
  if (!bytes.ok() && bytes.status().code() == Code::kCorruption) counters_.corrupt_reads++;
  if (bytes.ok()) CacheInsert(id, *bytes);
  return bytes;
}

namespace {

// Buffers for decoded chunks, recycled: the buffer of a chunk dropped from
// the cache (its last ChunkBytes gone) is kept for the next chunk decoded
// into the same size class. A fresh std::string is zero-filled by resize()
// before zstd overwrites it, and its pages are faulted in anew: a quarter of
// the daemon's CPU reading a dump back (docs/performance.md, "Reading
// back"). A recycled one is resized within its capacity, which fills at most
// the difference between two chunks of one class.
class DecodeBufferPool {
 public:
  static constexpr size_t kMinSize = 16u << 10;  // Smaller chunks get a plain string.
  static constexpr size_t kMaxSize = 4u << 20;   // So do larger ones.
  static constexpr size_t kMaxBytes = 8u << 20;  // Capacity kept free in all.

  // Never destroyed: a ChunkBytes may outlive every other static.
  static DecodeBufferPool& Get() {
    static DecodeBufferPool* pool = new DecodeBufferPool;
    return *pool;
  }

  // A string with room for `n` bytes, owned by the returned ChunkBytes, which
  // gives it back here when the last copy is gone. Its contents are stale.
  std::shared_ptr<std::string> Take(size_t n) {
    if (n < kMinSize || n > kMaxSize) return std::make_shared<std::string>();
    const size_t cap = ClassOf(n);
    std::unique_ptr<std::string> s;
    {
      // The class of n or, failing that, one of the next two (a buffer up to
      // 3/8 too large beats a fresh one).
      std::lock_guard lock(mu_);
      for (size_t c = cap, tries = 0; !s && tries < 3; c += std::bit_floor(c) / 8, ++tries) {
        auto it = free_.find(c);
        if (it == free_.end() || it->second.empty()) continue;
        s = std::move(it->second.back());
        it->second.pop_back();
        bytes_ -= c;
      }
    }
    if (!s) {
      s = std::make_unique<std::string>();
      s->reserve(cap);
    }
    return std::shared_ptr<std::string>(s.release(), [](std::string* p) { Get().Give(p); });
  }

 private:
  // n rounded up to a multiple of an eighth of the power of two below it: a
  // chunk wastes at most 1/8 of its bytes, and there are 8 classes per octave.
  static size_t ClassOf(size_t n) {
    const size_t step = std::bit_floor(n) / 8;
    return (n + step - 1) / step * step;
  }
  void Give(std::string* p) {
    std::unique_ptr<std::string> s(p);
    const size_t cap = s->capacity();
    if (cap < kMinSize || cap > kMaxSize || cap != ClassOf(cap)) return;
    std::lock_guard lock(mu_);
    if (bytes_ + cap > kMaxBytes) return;
    bytes_ += cap;
    free_[cap].push_back(std::move(s));
  }

  std::mutex mu_;
  std::unordered_map<size_t, std::vector<std::unique_ptr<std::string>>> free_;
  size_t bytes_ = 0;
};

}  // namespace

Result<ChunkBytes> ChunkStore::ReadVerified(const ChunkId& id, const ChunkLocation& loc) {
  SNAPFS_ASSIGN_OR_RETURN(std::string stored, reader_.Read(id, loc));
  ChunkBytes base;
  if (loc.codec == Codec::kZstdDelta) {
    SNAPFS_ASSIGN_OR_RETURN(base, Fetch(loc.base, &id));
  }
  std::shared_ptr<std::string> raw = DecodeBufferPool::Get().Take(loc.raw_len);
  Status st = DecodeChunk(loc.codec, stored, loc.raw_len,
                          base ? std::string_view(*base) : std::string_view(), raw.get());
  if (!st.ok()) return Status::Corruption("chunk " + id.Hex() + ": " + st.message());
  if (hasher_.Hash(reinterpret_cast<const uint8_t*>(raw->data()), raw->size()) != id)
    return Status::Corruption("chunk " + id.Hex() + ": content does not match its id");
  return ChunkBytes(std::move(raw));
}

ChunkBytes ChunkStore::CacheLookup(const ChunkId& id) {
  std::lock_guard lock(cache_mu_);
  auto it = cache_.find(id);
  if (it == cache_.end()) return nullptr;
  if (!it->second.through) lru_.splice(lru_.begin(), lru_, it->second.it);
  return it->second.it->second;
}

void ChunkStore::ReadThrough(std::span<const ChunkId> ids) {
  std::vector<ChunkBytes> dropped;  // Released after the lock: that recycles them.
  std::lock_guard lock(cache_mu_);
  for (const ChunkId& id : ids) {
    auto it = cache_.find(id);
    if (it == cache_.end() || it->second.through) continue;
    const size_t bytes = it->second.it->second->capacity();
    cache_size_ -= bytes;
    through_size_ += bytes;
    through_.splice(through_.begin(), lru_, it->second.it);
    it->second.through = true;
  }
  while (through_size_ > options_.cache_bytes / 8 && !through_.empty())
    dropped.push_back(CacheDropOldest(through_, through_size_));
}

ChunkBytes ChunkStore::CacheDropOldest(std::list<std::pair<ChunkId, ChunkBytes>>& list,
                                       size_t& size) {
  ChunkBytes bytes = std::move(list.back().second);
  size -= bytes->capacity();
  cache_.erase(list.back().first);
  list.pop_back();
  return bytes;
}

void ChunkStore::CacheInsert(const ChunkId& id, const ChunkBytes& bytes) {
  if (options_.cache_bytes == 0) return;
  std::lock_guard lock(cache_mu_);
  if (cache_.count(id)) return;
  lru_.emplace_front(id, bytes);
  cache_.emplace(id, CacheSlot{lru_.begin()});
  cache_size_ += bytes->capacity();  // What it holds: a recycled buffer may be larger.
  while (cache_size_ + through_size_ > options_.cache_bytes && !(lru_.empty() && through_.empty())) {
    // Chunks read through go first.
    if (through_.empty()) CacheDropOldest(lru_, cache_size_);
    else CacheDropOldest(through_, through_size_);
  }
}

}  // namespace snapfs::store
