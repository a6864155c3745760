// Store::DropStates and Store::CollectGarbage: the store-level mechanism of
// retention. docs/format.md ("Dropping states", "Garbage collection") gives
// the records; docs/design.md ("Garbage collection") argues why this is safe
// against crashes and against the daemon writing at the same time.
#include "store/gc.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "store/store.h"
#include "store/store_internal.h"

namespace snapfs::store {
namespace {

using internal::FromRocks;
using internal::ParseBE;
using internal::U32;
using internal::U64;
using Ranges = std::vector<std::pair<Generation, Generation>>;

constexpr const char* kMetaDropped = "dropped";
constexpr const char* kMetaPruneIntent = "prune_intent";
constexpr uint8_t kRecordVersion = 1;
constexpr size_t kDeleteChunkBatch = 4096;   // Dead index entries per fenced batch.

std::function<void(std::string_view)> g_crash_hook;
size_t g_drop_batch_keys = 10000;

void Step(std::string_view name) {
  if (g_crash_hook) g_crash_hook(name);
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Sorted, non-overlapping, adjacent ranges merged.
Ranges Merge(Ranges r) {
  std::sort(r.begin(), r.end());
  Ranges out;
  for (const auto& x : r) {
    if (!out.empty() && x.first <= out.back().second + 1)
      out.back().second = std::max(out.back().second, x.second);
    else
      out.push_back(x);
  }
  return out;
}

// u32 count, then per range: u64 first, u64 last.
std::string EncodeRangesBody(const Ranges& r) {
  std::string s = U32(static_cast<uint32_t>(r.size()));
  for (const auto& [a, b] : r) s += U64(a) + U64(b);
  return s;
}

Result<Ranges> DecodeRangesBody(std::string_view v, std::string_view key) {
  const auto bad = [&](const char* why) {
    return Status::Corruption("meta key '" + std::string(key) + "': " + why);
  };
  if (v.size() < 4) return bad("short value");
  const uint64_t n = ParseBE(v.substr(0, 4));
  if (v.size() != 4 + 16 * n) return bad("wrong size");
  Ranges r;
  for (uint64_t i = 0; i < n; ++i) {
    const Generation a = ParseBE(v.substr(4 + 16 * i, 8));
    const Generation b = ParseBE(v.substr(12 + 16 * i, 8));
    if (a == 0 || b < a || (!r.empty() && a <= r.back().second)) return bad("ranges out of order");
    r.emplace_back(a, b);
  }
  return r;
}

// meta `dropped`: u8 rv, ranges body.
std::string EncodeDropped(const Ranges& r) {
  return std::string(1, static_cast<char>(kRecordVersion)) + EncodeRangesBody(r);
}
Result<Ranges> DecodeDropped(std::string_view v) {
  if (v.empty() || static_cast<uint8_t>(v[0]) != kRecordVersion)
    return Status::Corruption(std::string("meta key '") + kMetaDropped + "': unknown record version");
  return DecodeRangesBody(v.substr(1), kMetaDropped);
}

// meta `prune_intent`: u8 rv, i64 time, ranges body (the states being dropped).
std::string EncodeIntent(int64_t time_ns, const Ranges& r) {
  return std::string(1, static_cast<char>(kRecordVersion)) + U64(static_cast<uint64_t>(time_ns)) +
         EncodeRangesBody(r);
}
Status CheckIntent(std::string_view v) {
  if (v.size() < 9 || static_cast<uint8_t>(v[0]) != kRecordVersion)
    return Status::Corruption(std::string("meta key '") + kMetaPruneIntent + "' is damaged");
  return DecodeRangesBody(v.substr(9), kMetaPruneIntent).status();
}

// The range of `r` that contains g, or nullptr.
const std::pair<Generation, Generation>* RangeOf(const Ranges& r, Generation g) {
  auto it = std::upper_bound(r.begin(), r.end(), g,
                             [](Generation x, const auto& range) { return x < range.first; });
  if (it == r.begin()) return nullptr;
  --it;
  return g <= it->second ? &*it : nullptr;
}

// A version written at `gen` and replaced at `next` (0: never) is shown by
// no kept generation iff [gen, next) lies inside one dropped range (ranges
// are merged, so the generation after a range is kept).
bool OnlyInDropped(const Ranges& r, Generation gen, Generation next) {
  if (next == 0) return false;  // Valid now: the present is always kept.
  const auto* range = RangeOf(r, gen);
  return range != nullptr && next <= range->second + 1;
}

Status SyncDir(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, path);
  Status st;
  if (::fsync(fd) != 0) st = Status::FromErrno(errno, path);
  ::close(fd);
  return st;
}

Result<uint64_t> PacksSize(const std::string& dir) {
  SNAPFS_ASSIGN_OR_RETURN(auto packs, ListPacks(dir));
  uint64_t n = 0;
  for (const auto& p : packs) n += p.size;
  return n;
}

}  // namespace

namespace gc_testing {
void SetCrashHook(std::function<void(std::string_view)> hook) { g_crash_hook = std::move(hook); }
void SetDropBatchKeys(size_t keys) { g_drop_batch_keys = std::max<size_t>(1, keys); }
}  // namespace gc_testing

// --- Dropped generations ---------------------------------------------------

Status Store::LoadDropped() {
  Result<std::string> v = GetRaw(cf_meta_, kMetaDropped);
  Ranges r;
  if (v.ok()) {
    SNAPFS_ASSIGN_OR_RETURN(r, DecodeDropped(*v));
  } else if (v.status().code() != Code::kNotFound) {
    return v.status();
  }
  std::lock_guard lock(dropped_mu_);
  dropped_ = std::move(r);
  return Status::Ok();
}

bool Store::IsDropped(Generation g) const {
  std::lock_guard lock(dropped_mu_);
  return RangeOf(dropped_, g) != nullptr;
}

Generation Store::KeptAtOrBefore(Generation g) const {
  std::lock_guard lock(dropped_mu_);
  const auto* range = RangeOf(dropped_, g);
  return range == nullptr ? g : range->first - 1;
}

Generation Store::KeptAtOrAfter(Generation g) const {
  std::lock_guard lock(dropped_mu_);
  const auto* range = RangeOf(dropped_, g);
  return range == nullptr ? g : range->second + 1;
}

// --- DropStates -------------------------------------------------------------

Result<DropStats> Store::DropStates(const std::vector<Generation>& state_ids) {
  if (options_.read_only) return Status::ReadOnly("store opened read-only");
  std::lock_guard maintenance(maintenance_mu_);
  DropStats stats;
  std::set<Generation> ids(state_ids.begin(), state_ids.end());
  if (ids.empty()) return stats;

  std::map<Generation, State> states;
  SNAPFS_RETURN_IF_ERROR(ListStates(0, [&](const State& s) {
    states.emplace(s.first_gen, s);
    return true;
  }));
  Generation newest = states.empty() ? 0 : states.rbegin()->first;
  {
    std::lock_guard lock(commit_mu_);
    newest = std::max(newest, state_.first_gen);
  }
  Ranges now;
  for (Generation id : ids) {
    auto it = states.find(id);
    if (it == states.end())
      return Status::NotFound("there is no state s" + std::to_string(id) +
                              (IsDropped(id) ? " (it was dropped already)" : ""));
    if (id == newest)
      return Status::Invalid("s" + std::to_string(id) + " is the newest state; it is never dropped");
    now.emplace_back(id, it->second.last_gen);
  }
  Ranges merged;
  {
    std::lock_guard lock(dropped_mu_);
    merged = dropped_;
  }
  merged.insert(merged.end(), now.begin(), now.end());
  merged = Merge(std::move(merged));

  // One atomic batch: the intent, the new dropped ranges, and the states
  // gone from the list. From here on every read of a dropped generation
  // resolves to a kept one, so the deletions below are never visible.
  rocksdb::WriteBatch batch;
  batch.Put(cf_meta_, kMetaPruneIntent, EncodeIntent(NowNs(), now)).PermitUncheckedError();
  batch.Put(cf_meta_, kMetaDropped, EncodeDropped(merged)).PermitUncheckedError();
  for (const auto& [first, last] : now) batch.Delete(cf_states_, keys::State(first)).PermitUncheckedError();
  rocksdb::WriteOptions wo;
  wo.sync = true;
  SNAPFS_RETURN_IF_ERROR(FromRocks(db_->Write(wo, &batch), "drop states"));
  {
    std::lock_guard lock(dropped_mu_);
    dropped_ = merged;
  }
  stats.states = now.size();
  Step("drop-intent");
  SNAPFS_RETURN_IF_ERROR(FinishDrop(&stats));
  return stats;
}

Status Store::RecoverDrop() {
  Result<std::string> intent = GetRaw(cf_meta_, kMetaPruneIntent);
  if (!intent.ok()) return intent.status().code() == Code::kNotFound ? Status::Ok() : intent.status();
  SNAPFS_RETURN_IF_ERROR(CheckIntent(*intent));
  DropStats stats;
  return FinishDrop(&stats);
}

// Deletes every inode and dirent version that no kept generation shows, and
// the extent pages only such versions referenced. Idempotent: a version is
// judged by the next remaining version of its key, and deleting versions
// inside a dropped range never moves a kept generation into or out of
// another's validity (docs/format.md, "Dropping states"). Runs while Commit()
// adds versions: a new version only replaces one that is valid now, which a
// kept generation (the present) shows, so it cannot change any decision.
Status Store::FinishDrop(DropStats* stats) {
  Ranges ranges;
  {
    std::lock_guard lock(dropped_mu_);
    ranges = dropped_;
  }
  rocksdb::WriteBatch batch;
  const auto flush = [&](bool force) -> Status {
    if (batch.Count() == 0 || (!force && batch.Count() < g_drop_batch_keys)) return Status::Ok();
    rocksdb::WriteOptions wo;
    wo.sync = true;
    SNAPFS_RETURN_IF_ERROR(FromRocks(db_->Write(wo, &batch), "drop states: delete versions"));
    batch.Clear();
    Step("drop-batch");
    return Status::Ok();
  };

  if (!ranges.empty()) {
    // Inodes: all versions of one inode are adjacent, newest first. Their
    // extent pages go in the same batch, so no page outlives its last
    // version by a crash, nor the other way round.
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_inodes_));
    it->SeekToFirst();
    while (it->Valid()) {
      SNAPFS_ASSIGN_OR_RETURN(auto k0, keys::DecodeInode(it->key().ToStringView()));
      const Ino ino = k0.ino;
      Generation next = 0;
      std::set<Generation> kept_content;
      std::map<Generation, uint32_t> gone_content;
      for (; it->Valid(); it->Next()) {
        SNAPFS_ASSIGN_OR_RETURN(auto k, keys::DecodeInode(it->key().ToStringView()));
        if (k.ino != ino) break;
        SNAPFS_ASSIGN_OR_RETURN(InodeRecord rec, DecodeInodeRecord(it->value().ToStringView(),
                                                                   it->key().ToStringView()));
        if (OnlyInDropped(ranges, k.gen, next)) {
          batch.Delete(cf_inodes_, it->key()).PermitUncheckedError();
          stats->inode_versions++;
          if (rec.content_gen != 0) gone_content[rec.content_gen] = rec.pages;
        } else if (rec.content_gen != 0) {
          kept_content.insert(rec.content_gen);
        }
        next = k.gen;
      }
      for (const auto& [content_gen, pages] : gone_content) {
        if (kept_content.count(content_gen) || RangeOf(ranges, content_gen) == nullptr) continue;
        for (uint32_t p = 0; p < pages; ++p) {
          batch.Delete(cf_extents_, keys::ExtentPage(ino, content_gen, p)).PermitUncheckedError();
          stats->extent_pages++;
        }
      }
      SNAPFS_RETURN_IF_ERROR(flush(false));
    }
    SNAPFS_RETURN_IF_ERROR(FromRocks(it->status(), "drop states: read inodes"));

    // Dirents: all versions of one name are adjacent, newest first.
    std::unique_ptr<rocksdb::Iterator> dit(db_->NewIterator(rocksdb::ReadOptions(), cf_dirents_));
    dit->SeekToFirst();
    std::string name_key;  // The key without its ~g.
    Generation next = 0;
    for (; dit->Valid(); dit->Next()) {
      const std::string_view key = dit->key().ToStringView();
      SNAPFS_ASSIGN_OR_RETURN(auto k, keys::DecodeDirent(key));
      if (key.substr(0, key.size() - 8) != name_key) {
        SNAPFS_RETURN_IF_ERROR(flush(false));
        name_key = std::string(key.substr(0, key.size() - 8));
        next = 0;
      }
      if (OnlyInDropped(ranges, k.gen, next)) {
        batch.Delete(cf_dirents_, dit->key()).PermitUncheckedError();
        stats->dirent_versions++;
      }
      next = k.gen;
    }
    SNAPFS_RETURN_IF_ERROR(FromRocks(dit->status(), "drop states: read directories"));
  }
  batch.Delete(cf_meta_, kMetaPruneIntent).PermitUncheckedError();
  SNAPFS_RETURN_IF_ERROR(flush(true));
  Step("drop-done");
  return Status::Ok();
}

// --- CollectGarbage -----------------------------------------------------------

Result<GcStats> Store::CollectGarbage(const GcOptions& options) {
  if (options_.read_only) return Status::ReadOnly("store opened read-only");
  if (!(options.rewrite_below >= 0.0 && options.rewrite_below <= 1.0))
    return Status::Invalid("rewrite_below must be between 0 and 1");
  std::lock_guard maintenance(maintenance_mu_);
  GcStats stats;
  const std::string packs_dir = path_ + "/packs";
  SNAPFS_ASSIGN_OR_RETURN(stats.pack_bytes_before, PacksSize(packs_dir));
  // The packs before the replay point hold no commit record the log lacks:
  // move it up to the pack being appended to, so GC may remove all before.
  SNAPFS_RETURN_IF_ERROR(AdvanceReplay());

  // The fence goes up and the snapshot is taken while lookups wait: every
  // commit after the snapshot references only chunks that were held or
  // Put() during the epoch (docs/design.md, "Garbage collection").
  const rocksdb::Snapshot* snap = nullptr;
  const uint32_t first_unsafe = chunks_->BeginGcEpoch([&] { snap = db_->GetSnapshot(); });
  struct Epoch {
    Store* s;
    const rocksdb::Snapshot* snap;
    ~Epoch() {
      s->chunks_->EndGcEpoch();
      s->db_->ReleaseSnapshot(snap);
    }
  } epoch{this, snap};
  Step("gc-epoch");
  rocksdb::ReadOptions ro;
  ro.snapshot = snap;

  // Mark: every chunk a remaining extent page names.
  std::unordered_set<ChunkId, ChunkIdHash> live;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf_extents_));
    std::vector<Extent> extents;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      extents.clear();
      SNAPFS_RETURN_IF_ERROR(DecodeExtentPage(it->value().ToStringView(),
                                              it->key().ToStringView(), 0, &extents)
                                 .status());
      for (const Extent& e : extents) live.insert(e.id);
    }
    SNAPFS_RETURN_IF_ERROR(FromRocks(it->status(), "gc: read extents"));
  }

  // Sweep candidates: index entries (as of the snapshot) of unmarked chunks.
  // Entries made after the snapshot are never candidates. A live delta keeps
  // its base live (its entry names it); bases are never deltas, so the bases
  // of the marked deltas close the live set.
  std::map<uint32_t, std::vector<ChunkStore::Moved>> by_pack;  // Live entries per pack.
  std::vector<ChunkStore::Moved> dead;
  {
    std::vector<ChunkStore::Moved> entries;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf_chunks_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      SNAPFS_ASSIGN_OR_RETURN(ChunkId id, keys::DecodeChunk(it->key().ToStringView()));
      SNAPFS_ASSIGN_OR_RETURN(ChunkLocation loc, DecodeChunkLocation(it->value().ToStringView(),
                                                                     it->key().ToStringView()));
      entries.push_back({id, loc, {}});
    }
    SNAPFS_RETURN_IF_ERROR(FromRocks(it->status(), "gc: read chunk index"));
    std::vector<ChunkId> bases;
    for (const auto& m : entries)
      if (m.from.codec == Codec::kZstdDelta && live.count(m.id)) bases.push_back(m.from.base);
    live.insert(bases.begin(), bases.end());
    for (auto& m : entries) {
      if (live.count(m.id)) {
        stats.chunks_live++;
        by_pack[m.from.pack].push_back(m);
      } else {
        dead.push_back(m);
      }
    }
  }
  live.clear();
  for (size_t i = 0; i < dead.size(); i += kDeleteChunkBatch) {
    std::span<const ChunkStore::Moved> part(dead.data() + i,
                                            std::min(kDeleteChunkBatch, dead.size() - i));
    std::vector<ChunkStore::Moved> rescued;
    SNAPFS_ASSIGN_OR_RETURN(uint64_t n, chunks_->DeleteDead(part, &rescued));
    stats.chunks_deleted += n;
    stats.chunks_rescued += rescued.size();
    for (auto& m : rescued) by_pack[m.from.pack].push_back(m);
  }
  Step("gc-swept");

  // Packs: remove those with nothing live; rewrite those mostly dead. Packs
  // from first_unsafe on may hold chunks not yet indexed, and from the
  // replay point on commits the log may lose: never touched.
  SNAPFS_ASSIGN_OR_RETURN(auto packs, ListPacks(packs_dir));
  bool removed = false;
  for (const PackFileInfo& pack : packs) {
    if (pack.pack >= first_unsafe || pack.pack >= replay_from_.load()) continue;
    auto entries_it = by_pack.find(pack.pack);
    if (entries_it != by_pack.end() && !entries_it->second.empty()) {
      std::vector<ChunkStore::Moved>& entries = entries_it->second;
      uint64_t live_bytes = 0;
      for (const auto& m : entries) live_bytes += RecordHeaderSize(m.from.codec) + m.from.stored_len;
      const uint64_t body = pack.size > kPackHeaderSize ? pack.size - kPackHeaderSize : 0;
      if (static_cast<double>(live_bytes) >= options.rewrite_below * static_cast<double>(body))
        continue;
      // Copy, sync, then repoint in one synced batch; only then remove.
      bool copied = true;
      for (auto& m : entries) {
        Result<ChunkLocation> to = chunks_->CopyRecord(m.id, m.from);
        if (!to.ok()) {
          // A damaged record stays where it is, for snapfs-check to name.
          if (to.status().code() != Code::kCorruption) return to.status();
          copied = false;
          break;
        }
        m.to = *to;
      }
      if (!copied) continue;
      SNAPFS_RETURN_IF_ERROR(chunks_->SyncPacks());
      Step("gc-copied");
      SNAPFS_RETURN_IF_ERROR(chunks_->Repoint(entries));
      Step("gc-repointed");
      stats.packs_rewritten++;
      stats.bytes_copied += live_bytes;
    }
    const std::string path = PackPath(packs_dir, pack.pack);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Status::FromErrno(errno, path);
    chunks_->ForgetPack(pack.pack);
    stats.packs_deleted++;
    removed = true;
    Step("gc-unlinked");
  }
  if (removed) SNAPFS_RETURN_IF_ERROR(SyncDir(packs_dir));

  if (options.compact) {
    rocksdb::CompactRangeOptions co;
    co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
    for (auto* cf : {cf_chunks_, cf_extents_, cf_inodes_, cf_dirents_, cf_states_, cf_meta_})
      SNAPFS_RETURN_IF_ERROR(FromRocks(db_->CompactRange(co, cf, nullptr, nullptr), "gc: compact"));
  }
  SNAPFS_ASSIGN_OR_RETURN(stats.pack_bytes_after, PacksSize(packs_dir));
  Step("gc-done");
  return stats;
}

}  // namespace snapfs::store
