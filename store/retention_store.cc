// Store methods of retention: the policy meta keys, holds, the running tree
// totals kept in each StateRecord, and the bad-dump guard (docs/retention.md,
// docs/format.md).
#include <chrono>
#include <deque>
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

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What one inode adds to the tree totals: a regular file with a link counts
// once (hard links are one inode), with its size.
std::pair<int64_t, int64_t> Weight(const InodeRecord& rec) {
  if ((rec.mode & 0170000) != 0100000 || rec.nlink == 0) return {0, 0};
  return {1, static_cast<int64_t>(rec.size)};
}

uint64_t Add(uint64_t base, int64_t delta) {
  if (delta < 0 && static_cast<uint64_t>(-delta) > base) return 0;  // Never below empty.
  return base + static_cast<uint64_t>(delta);
}

}  // namespace

Result<RetentionPolicy> Store::GetRetentionPolicy() {
  RetentionPolicy p;
  Result<std::string> min = GetRaw(cf_meta_, keys::kMinRetention);
  if (min.ok()) {
    if (min->size() != 8) return Status::Corruption(path_ + ": meta key 'min_retention' has the wrong size");
    p.min_retention_ns = static_cast<int64_t>(ParseBE(*min));
  } else if (min.status().code() != Code::kNotFound) {
    return min.status();
  }
  std::lock_guard lock(commit_mu_);
  SNAPFS_ASSIGN_OR_RETURN(p.guard_share_percent, GuardShareLocked());
  return p;
}

Result<uint32_t> Store::GuardShareLocked() {
  if (guard_share_override_ >= 0) return static_cast<uint32_t>(guard_share_override_.load());
  Result<std::string> v = GetRaw(cf_meta_, keys::kGuardShare);
  if (!v.ok()) {
    if (v.status().code() == Code::kNotFound) return kDefaultGuardSharePercent;
    return v.status();
  }
  if (v->size() != 4 || ParseBE(*v) > 100)
    return Status::Corruption(path_ + ": meta key 'guard_share' is damaged");
  return static_cast<uint32_t>(ParseBE(*v));
}

Status Store::RaiseMinRetention(int64_t ns) {
  if (options_.read_only) return Status::ReadOnly("store opened read-only");
  if (ns < 0) return Status::Invalid("a minimum retention cannot be negative");
  std::lock_guard lock(commit_mu_);
  RetentionPolicy p;
  Result<std::string> cur = GetRaw(cf_meta_, keys::kMinRetention);
  if (cur.ok() && cur->size() == 8) p.min_retention_ns = static_cast<int64_t>(ParseBE(*cur));
  else if (cur.ok() || cur.status().code() != Code::kNotFound)
    return cur.ok() ? Status::Corruption(path_ + ": meta key 'min_retention' has the wrong size")
                    : cur.status();
  if (ns < p.min_retention_ns)
    return Status::Invalid("the minimum retention is " + FormatDuration(p.min_retention_ns) +
                           " and is never lowered; " + FormatDuration(ns) + " would lower it");
  if (ns == p.min_retention_ns) return Status::Ok();
  rocksdb::WriteOptions wo;
  wo.sync = true;
  return FromRocks(db_->Put(wo, cf_meta_, keys::kMinRetention, U64(static_cast<uint64_t>(ns))),
                   "write the minimum retention");
}

Result<std::vector<HoldRecord>> Store::ListHolds() {
  std::vector<HoldRecord> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_meta_));
  const std::string prefix(keys::kHoldPrefix);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    SNAPFS_ASSIGN_OR_RETURN(HoldRecord h, DecodeHoldRecord(it->value().ToStringView(),
                                                           it->key().ToStringView()));
    out.push_back(std::move(h));
  }
  SNAPFS_RETURN_IF_ERROR(FromRocks(it->status(), "read holds"));
  return out;
}

Result<HoldRecord> Store::AddHold(Generation state, int64_t until_ns, std::string reason) {
  if (options_.read_only) return Status::ReadOnly("store opened read-only");
  std::lock_guard lock(commit_mu_);
  Result<std::string> rec = GetRaw(cf_states_, keys::State(state));
  if (!rec.ok()) {
    if (rec.status().code() == Code::kNotFound)
      return Status::NotFound("there is no state s" + std::to_string(state));
    return rec.status();
  }
  SNAPFS_ASSIGN_OR_RETURN(std::vector<HoldRecord> holds, ListHolds());
  HoldRecord h;
  h.id = holds.empty() ? 1 : holds.back().id + 1;
  h.state = state;
  h.kind = HoldKind::kUser;
  h.created_ns = NowNs();
  h.until_ns = until_ns;
  h.reason = std::move(reason);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  SNAPFS_RETURN_IF_ERROR(
      FromRocks(db_->Put(wo, cf_meta_, keys::Hold(h.id), EncodeHoldRecord(h)), "write hold"));
  return h;
}

Result<HoldRecord> Store::ReleaseHold(uint64_t id) {
  if (options_.read_only) return Status::ReadOnly("store opened read-only");
  std::lock_guard lock(commit_mu_);
  const std::string key = keys::Hold(id);
  Result<std::string> v = GetRaw(cf_meta_, key);
  if (!v.ok()) {
    if (v.status().code() == Code::kNotFound)
      return Status::NotFound("there is no hold " + std::to_string(id));
    return v.status();
  }
  SNAPFS_ASSIGN_OR_RETURN(HoldRecord h, DecodeHoldRecord(*v, key));
  if (h.released_ns != 0) return Status::Invalid("hold " + std::to_string(id) + " is already released");
  h.released_ns = NowNs();
  rocksdb::WriteOptions wo;
  wo.sync = true;
  SNAPFS_RETURN_IF_ERROR(FromRocks(db_->Put(wo, cf_meta_, key, EncodeHoldRecord(h)), "write hold"));
  return h;
}

Result<std::optional<HoldRecord>> Store::CheckGuard() {
  if (options_.read_only) return Status::ReadOnly("store opened read-only");
  std::lock_guard lock(commit_mu_);
  rocksdb::WriteBatch batch;
  std::optional<HoldRecord> added;
  if (state_.first_gen != 0) SNAPFS_RETURN_IF_ERROR(GuardLocked(state_, &batch, &added));
  if (!added) return added;
  rocksdb::WriteOptions wo;
  wo.sync = true;
  SNAPFS_RETURN_IF_ERROR(FromRocks(db_->Write(wo, &batch), "write guard hold"));
  if (guard_listener_) guard_listener_(*added);
  return added;
}

Status Store::GuardLocked(const State& closing, rocksdb::WriteBatch* batch,
                          std::optional<HoldRecord>* added) {
  SNAPFS_ASSIGN_OR_RETURN(uint32_t share, GuardShareLocked());
  if (share == 0 || closing.first_gen <= 1) return Status::Ok();
  // The state before `closing` as stored now (retention may have dropped some).
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_states_));
  it->SeekForPrev(keys::State(closing.first_gen - 1));
  SNAPFS_RETURN_IF_ERROR(FromRocks(it->status(), "read states"));
  if (!it->Valid()) return Status::Ok();
  SNAPFS_ASSIGN_OR_RETURN(State before, DecodeStateRecord(it->value().ToStringView(),
                                                          it->key().ToStringView()));
  std::optional<std::string> shrink = DescribeShrink(before, closing, share);
  if (!shrink) return Status::Ok();
  SNAPFS_ASSIGN_OR_RETURN(std::vector<HoldRecord> holds, ListHolds());
  for (const HoldRecord& h : holds)
    if (h.kind == HoldKind::kGuard && h.state == before.first_gen) return Status::Ok();
  HoldRecord h;
  h.id = holds.empty() ? 1 : holds.back().id + 1;
  h.state = before.first_gen;
  h.kind = HoldKind::kGuard;
  h.created_ns = NowNs();
  h.reason = *shrink;
  batch->Put(cf_meta_, keys::Hold(h.id), EncodeHoldRecord(h)).PermitUncheckedError();
  *added = std::move(h);
  return Status::Ok();
}

Status Store::UpdateTreeTotalsLocked(const Mutation& m, State* st) {
  uint64_t files = state_.tree_files, bytes = state_.tree_bytes;
  if (!state_.has_totals) {
    // A store whose newest state predates the totals (record version 1):
    // count the present tree once. Cost: one listing per folder and one
    // inode read per file.
    files = bytes = 0;
    std::unordered_set<Ino> seen{kRootIno};
    std::deque<Ino> dirs{kRootIno};
    while (!dirs.empty()) {
      const Ino dir = dirs.front();
      dirs.pop_front();
      std::vector<std::pair<Ino, uint8_t>> children;
      SNAPFS_RETURN_IF_ERROR(ListDir(dir, kLatest, [&](std::string_view name, const DirentRecord& d) {
        if (name != "..") children.emplace_back(d.child, d.type);
        return true;
      }));
      for (const auto& [child, type] : children) {
        if (!seen.insert(child).second) continue;
        if (type == (0040000 >> 12)) {
          dirs.push_back(child);
        } else if (type == (0100000 >> 12)) {
          SNAPFS_ASSIGN_OR_RETURN(std::optional<InodeRecord> rec, GetInode(child, kLatest));
          if (rec) {
            files += static_cast<uint64_t>(Weight(*rec).first);
            bytes += static_cast<uint64_t>(Weight(*rec).second);
          }
        }
      }
    }
  }
  int64_t dfiles = 0, dbytes = 0;
  for (const auto& [ino, rec] : m.inodes_) {
    SNAPFS_ASSIGN_OR_RETURN(std::optional<InodeRecord> old, GetInode(ino, kLatest));
    const auto [nf, nb] = Weight(rec);
    const auto [of, ob] = old ? Weight(*old) : std::pair<int64_t, int64_t>{0, 0};
    dfiles += nf - of;
    dbytes += nb - ob;
  }
  st->has_totals = true;
  st->tree_files = Add(files, dfiles);
  st->tree_bytes = Add(bytes, dbytes);
  return Status::Ok();
}

}  // namespace snapfs::store
