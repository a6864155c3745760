// Store methods of deferred compression: settle keys, Settle() and the
// thread that runs it when the store is idle (docs/design.md, "Deferred
// compression"; docs/format.md, "Settle keys").
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "store/store.h"
#include "store/store_internal.h"

namespace snapfs::store {
namespace {

using internal::FromRocks;

// The settler looks every tick whether the store is idle: no chunk waits for
// a compression worker and fewer than kBusyBytes of new chunks were put
// since the last look (a trickle of writes does not starve it).
constexpr auto kSettleTick = std::chrono::milliseconds(250);
constexpr uint64_t kBusyBytes = 2u << 20;
// Raw bytes per Settle() batch: one pack sync and one synced index batch each.
constexpr uint64_t kSettleBatchBytes = 16u << 20;
// Once everything is settled and at least this much was (a pack's worth of
// uncompressed records became garbage), CollectGarbage() reclaims it.
constexpr uint64_t kCollectAfterBytes = 64u << 20;
// The packs deferred chunks were appended to are mostly their uncompressed
// records, dead once settled, next to live compressed ones: GC after
// settling rewrites every pack less than this share live (plain GC: 0.5).
constexpr double kSettledRewriteBelow = 0.9;
constexpr auto kRetryAfterError = std::chrono::seconds(30);

bool IsSettleKey(const rocksdb::Iterator& it) {
  return it.Valid() && it.key().ToStringView().starts_with(keys::kSettlePrefix);
}

}  // namespace

Status Store::CountUnsettled() {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_meta_));
  it->Seek(std::string(keys::kSettlePrefix));
  SNAPFS_RETURN_IF_ERROR(FromRocks(it->status(), "read settle keys"));
  unsettled_ = IsSettleKey(*it) ? 1 : 0;  // A hint: the settler counts down from there.
  return Status::Ok();
}

Result<SettleStats> Store::Settle(uint64_t max_raw_bytes) {
  if (options_.read_only) return Status::ReadOnly("store opened read-only");
  // No GC meanwhile: it is the only other thing that moves or deletes index
  // entries, so each entry stays as Resettle found it, and so does the base
  // it chose, until the batch below names that base.
  std::lock_guard maintenance(maintenance_mu_);
  SettleStats stats;
  struct Item {
    std::string key;
    Generation gen;
    ChunkStore::Resettled moved;
  };
  std::vector<Item> items;
  std::vector<std::string> drop;  // Keys with nothing (more) to do.
  uint64_t raw = 0;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_meta_));
    for (it->Seek(std::string(keys::kSettlePrefix)); IsSettleKey(*it) && raw < max_raw_bytes;
         it->Next()) {
      std::string key = it->key().ToString();
      Result<ChunkId> id = keys::DecodeSettle(key);
      Result<SettleRecord> rec = DecodeSettleRecord(it->value().ToStringView(), key);
      if (!id.ok() || !rec.ok()) {
        // Only a hint is lost: the chunk stays readable uncompressed.
        stats.damaged++;
        drop.push_back(std::move(key));
        continue;
      }
      Result<std::optional<ChunkStore::Resettled>> moved = chunks_->Resettle(*id, rec->hint);
      if (!moved.ok()) {
        if (moved.status().code() != Code::kCorruption) return moved.status();
        stats.damaged++;  // Left as it is, for snapfs-check to name.
        drop.push_back(std::move(key));
        continue;
      }
      if (!*moved) {
        stats.unchanged++;
        drop.push_back(std::move(key));
        continue;
      }
      raw += (*moved)->from.stored_len;
      items.push_back({std::move(key), rec->gen, **moved});
    }
    SNAPFS_RETURN_IF_ERROR(FromRocks(it->status(), "read settle keys"));
  }
  if (!items.empty()) SNAPFS_RETURN_IF_ERROR(chunks_->SyncPacks());

  std::lock_guard lock(commit_mu_);
  rocksdb::WriteBatch batch;
  std::map<Generation, uint64_t> saved;
  for (const Item& item : items) {
    const ChunkStore::Resettled& m = item.moved;
    SNAPFS_ASSIGN_OR_RETURN(auto now, chunks_->Locate(m.id));
    if (!now || !(*now == m.from)) {
      stats.unchanged++;  // Cannot happen while GC waits; the new record is garbage then.
      drop.push_back(item.key);
      continue;
    }
    batch.Put(cf_chunks_, keys::Chunk(m.id), EncodeChunkLocation(m.to)).PermitUncheckedError();
    batch.Delete(cf_meta_, item.key).PermitUncheckedError();
    saved[item.gen] += m.from.stored_len - std::min(m.from.stored_len, m.to.stored_len);
    stats.chunks++;
    stats.raw_bytes += m.from.stored_len;
    stats.stored_bytes += m.to.stored_len;
    if (m.to.codec == Codec::kZstdDelta) stats.deltas++;
  }
  for (const std::string& key : drop) batch.Delete(cf_meta_, key).PermitUncheckedError();
  std::optional<State> current;
  SNAPFS_RETURN_IF_ERROR(ShrinkStatesLocked(saved, &batch, &current));
  if (batch.Count() > 0) {
    // Synced under commit_mu_: every commit so far is durable in the log with
    // it, so the replay point moves up too (docs/format.md, "Commit records").
    const uint32_t replay_from = chunks_->current_pack();
    batch.Put(cf_meta_, keys::kReplayFrom, internal::U32(replay_from)).PermitUncheckedError();
    rocksdb::WriteOptions wo;
    wo.sync = true;  // The old records become garbage GC may remove.
    SNAPFS_RETURN_IF_ERROR(FromRocks(db_->Write(wo, &batch), "settle: index batch"));
    replay_from_ = replay_from;
    if (current) state_ = *current;
    settled_since_collect_ += stats.raw_bytes;
  }
  // Commits add settle keys under commit_mu_, so this look is exact.
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_meta_));
  it->Seek(std::string(keys::kSettlePrefix));
  SNAPFS_RETURN_IF_ERROR(FromRocks(it->status(), "read settle keys"));
  stats.done = !IsSettleKey(*it);
  unsettled_ = stats.done ? 0 : std::max<uint64_t>(1, unsettled_.load() - std::min<uint64_t>(
                                                          unsettled_.load(), stats.chunks));
  return stats;
}

Result<std::pair<SettleStats, std::optional<GcStats>>> Store::SettleAll(const GcOptions& gc) {
  SettleStats total;
  for (;;) {
    SNAPFS_ASSIGN_OR_RETURN(SettleStats s, Settle(kSettleBatchBytes));
    total.chunks += s.chunks;
    total.raw_bytes += s.raw_bytes;
    total.stored_bytes += s.stored_bytes;
    total.deltas += s.deltas;
    total.unchanged += s.unchanged;
    total.damaged += s.damaged;
    total.done = s.done;
    // A batch that found nothing to do while keys remain: they were added
    // meanwhile by commits; the next call (or the settler) takes them.
    if (s.done || s.chunks + s.unchanged + s.damaged == 0) break;
  }
  if (settled_since_collect_.load() == 0) return std::pair(total, std::optional<GcStats>());
  SNAPFS_ASSIGN_OR_RETURN(GcStats stats, CollectAfterSettle(gc));
  return std::pair(total, std::optional<GcStats>(stats));
}

Result<GcStats> Store::CollectAfterSettle(const GcOptions& gc) {
  // GC never touches the pack being appended to, which holds the newest
  // uncompressed records: start another.
  SNAPFS_RETURN_IF_ERROR(chunks_->RollPack());
  GcOptions options = gc;
  options.rewrite_below = std::max(options.rewrite_below, kSettledRewriteBelow);
  const uint64_t settled = settled_since_collect_.exchange(0);
  Result<GcStats> stats = CollectGarbage(options);
  if (!stats.ok()) settled_since_collect_ += settled;  // Reclaimed by a later call.
  return stats;
}

Status Store::ShrinkStatesLocked(const std::map<Generation, uint64_t>& saved,
                                 rocksdb::WriteBatch* batch, std::optional<State>* current) {
  std::map<Generation, State> older;  // By first generation.
  for (const auto& [g, bytes] : saved) {
    State* s = nullptr;
    if (state_.first_gen != 0 && g >= state_.first_gen) {
      if (!*current) *current = state_;
      s = &**current;
    } else {
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_states_));
      it->SeekForPrev(keys::State(g));
      SNAPFS_RETURN_IF_ERROR(FromRocks(it->status(), "read states"));
      if (!it->Valid()) continue;  // In a dropped state: nothing to count.
      SNAPFS_ASSIGN_OR_RETURN(State rec, DecodeStateRecord(it->value().ToStringView(),
                                                           it->key().ToStringView()));
      if (g > rec.last_gen) continue;
      s = &older.try_emplace(rec.first_gen, rec).first->second;
    }
    s->bytes_stored -= std::min(s->bytes_stored, bytes);
  }
  for (const auto& [first, s] : older)
    batch->Put(cf_states_, keys::State(first), EncodeStateRecord(s)).PermitUncheckedError();
  if (*current)
    batch->Put(cf_states_, keys::State((*current)->first_gen), EncodeStateRecord(**current))
        .PermitUncheckedError();
  return Status::Ok();
}

void Store::SettleWhenIdle() {
  pthread_setname_np(pthread_self(), "snapfs-settle");
  if (options_.background_nice > 0)
    (void)::setpriority(PRIO_PROCESS, ::gettid(), options_.background_nice);
  uint64_t seen = chunks_->counters().raw_bytes_new.load();
  bool again = false;  // The last batch left work and nothing new came meanwhile.
  std::unique_lock lock(flush_mu_);
  while (!stopping_) {
    if (!again) flush_cv_.wait_for(lock, kSettleTick);
    again = false;
    if (stopping_) break;
    const uint64_t now = chunks_->counters().raw_bytes_new.load();
    const bool busy = now - seen > kBusyBytes;
    seen = now;
    if (busy || !chunks_->Idle()) continue;
    if (unsettled_.load() == 0) {
      if (settled_since_collect_.load() < kCollectAfterBytes) continue;
      lock.unlock();
      GcOptions gc;
      gc.compact = false;
      const bool collected = CollectAfterSettle(gc).ok();
      lock.lock();
      if (!collected) flush_cv_.wait_for(lock, kRetryAfterError, [this] { return stopping_; });
      continue;
    }
    lock.unlock();
    Result<SettleStats> r = Settle(kSettleBatchBytes);
    lock.lock();
    if (!r.ok()) {
      // A full disk, say: the chunks stay readable as they are; try later.
      flush_cv_.wait_for(lock, kRetryAfterError, [this] { return stopping_; });
      continue;
    }
    again = !r->done && chunks_->counters().raw_bytes_new.load() == seen;
  }
}

}  // namespace snapfs::store
