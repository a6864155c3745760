#include "store/check.h"

#include <algorithm>
#include <filesystem>
#include <tuple>
#include <map>
#include <set>
#include <unordered_map>

#include "store/pack_file.h"
#include "store/paths.h"

namespace snapfs::store {
namespace {

constexpr uint64_t kProgressBytes = 4u << 20;
constexpr uint64_t kProgressRecords = 65536;

// One entry of the chunk index, kept sorted by id for reference checks.
struct IndexEntry {
  ChunkId id;
  ChunkLocation loc;
  bool readable = true;     // The value decoded.
  bool damaged = false;
  bool referenced = false;
};

// What the inodes family says about one content version.
struct ContentRef {
  Ino ino;
  Generation gen;
  uint32_t pages;
  uint64_t size;   // The smallest size any record with this content has.
  bool seen = false;
};

// "chunk <id> (pack 1 offset 16): payload checksum mismatch" -> the reason
// alone; the report prints id, pack and offset on their own.
std::string Reason(const ChunkId& id, const std::string& message) {
  const std::string prefix = "chunk " + id.Hex();
  if (message.rfind(prefix, 0) != 0) return message;
  size_t at = prefix.size();
  if (message.compare(at, 2, " (") == 0) {
    size_t close = message.find("): ", at);
    if (close != std::string::npos) return message.substr(close + 3);
  }
  if (message.compare(at, 2, ": ") == 0) return message.substr(at + 2);
  return message;
}

class Checker {
 public:
  Checker(Store& store, const CheckOptions& options) : store_(store), options_(options) {}

  Result<CheckReport> Run() {
    report_.quick = options_.quick;
    report_.latest = store_.latest();
    SNAPFS_RETURN_IF_ERROR(CheckLog());
    SNAPFS_RETURN_IF_ERROR(CheckStates());
    SNAPFS_RETURN_IF_ERROR(LoadIndex());
    SNAPFS_RETURN_IF_ERROR(CheckPacks());
    CheckBases();
    if (!options_.quick) SNAPFS_RETURN_IF_ERROR(VerifyChunks());
    SNAPFS_RETURN_IF_ERROR(CheckInodes());
    SNAPFS_RETURN_IF_ERROR(CheckDirents());
    SNAPFS_RETURN_IF_ERROR(CheckExtents());
    // A referenced delta's base is in use too (GC keeps it).
    for (const IndexEntry& e : index_)
      if (e.referenced && e.readable && e.loc.codec == Codec::kZstdDelta)
        if (IndexEntry* base = FindChunk(e.loc.base)) base->referenced = true;
    for (const IndexEntry& e : index_)
      if (!e.referenced) report_.unreferenced_chunks++;
    Finish();
    SNAPFS_RETURN_IF_ERROR(BlastRadius());
    return std::move(report_);
  }

 private:
  void Problem(const char* family, std::string_view key, std::string reason) {
    report_.problems.push_back({family, HexBytes(key), std::move(reason)});
  }
  void Progress(const char* phase, bool force = false) {
    if (!options_.progress) return;
    progress_.phase = phase;
    if (force || progress_.records % kProgressRecords == 0) options_.progress(progress_);
  }
  void StartPhase(const char* phase) {
    progress_.records = 0;
    Progress(phase, true);
  }
  void Damage(IndexEntry* e, std::string reason) {
    e->damaged = true;
    damaged_.emplace(e->id, DamagedChunk{e->id, e->readable ? std::optional(e->loc) : std::nullopt,
                                         std::move(reason)});
  }
  // Whether generation g has a log record (invariant 3).
  bool HasLog(Generation g) const {
    if (g == 0 || g > newest_) return false;
    auto it = missing_log_.upper_bound(g);  // First range starting after g.
    if (it == missing_log_.begin()) return true;
    --it;
    return g > it->second;
  }
  IndexEntry* FindChunk(const ChunkId& id) {
    auto it = std::lower_bound(index_.begin(), index_.end(), id,
                               [](const IndexEntry& e, const ChunkId& k) { return e.id < k; });
    return it != index_.end() && it->id == id ? &*it : nullptr;
  }

  // Invariant 2: log keys 1..newest, times never decreasing.
  Status CheckLog() {
    StartPhase("log");
    Generation expected = 1;
    int64_t last_time = INT64_MIN;
    return store_.Scan(Store::Family::kLog, [&](std::string_view key, std::string_view value) {
      progress_.records++;
      Progress("log");
      Result<Generation> g = keys::DecodeGeneration(key);
      if (!g.ok()) {
        Problem("log", key, g.status().message());
        return true;
      }
      if (*g != expected) {
        missing_log_[expected] = *g - 1;
        Problem("log", key,
                *g - 1 == expected
                    ? "generation " + std::to_string(expected) + " has no log record"
                    : "generations " + std::to_string(expected) + ".." + std::to_string(*g - 1) +
                          " have no log records");
      }
      expected = *g + 1;
      newest_ = *g;
      report_.generations++;
      Result<LogRecord> rec = DecodeLogRecord(value, key);
      if (!rec.ok()) {
        Problem("log", key, rec.status().message());
        return true;
      }
      if (rec->time_ns < last_time)
        Problem("log", key, "generation " + std::to_string(*g) + " is older than the one before it");
      last_time = rec->time_ns;
      return true;
    });
  }

  // States: each a run of generations after the one before, within the log.
  Status CheckStates() {
    StartPhase("states");
    Generation prev_last = 0;
    SNAPFS_RETURN_IF_ERROR(store_.Scan(Store::Family::kStates, [&](std::string_view key, std::string_view value) {
      Result<Generation> first = keys::DecodeGeneration(key);
      Result<StateRecord> rec = first.ok() ? DecodeStateRecord(value, key) : first.status();
      if (!rec.ok()) {
        Problem("states", key, rec.status().message());
        return true;
      }
      rec->first_gen = *first;
      report_.states++;
      if (rec->first_gen <= prev_last || rec->last_gen < rec->first_gen || rec->last_gen > newest_)
        Problem("states", key,
                "state s" + std::to_string(rec->first_gen) + " covers generations " +
                    std::to_string(rec->first_gen) + ".." + std::to_string(rec->last_gen) +
                    ", which overlap another state or are not in the log");
      prev_last = std::max(prev_last, rec->last_gen);
      states_.push_back(*rec);
      return true;
    }));
    // Invariant 6: the states and the dropped (pruned) ranges cover every
    // generation exactly once, and the newest state is kept.
    Generation next = 1;
    auto gap = [&](Generation from, Generation to) {
      if (from <= to && !(store_.IsDropped(from) && store_.IsDropped(to)))
        Problem("states", "", "generations " + std::to_string(from) + ".." + std::to_string(to) +
                                  " are in no state and were not pruned");
    };
    for (const StateRecord& st : states_) {
      gap(next, st.first_gen - 1);
      if (store_.IsDropped(st.first_gen))
        Problem("states", keys::State(st.first_gen),
                "state s" + std::to_string(st.first_gen) + " is listed but was pruned");
      next = std::max(next, st.last_gen + 1);
    }
    gap(next, newest_);
    return Status::Ok();
  }

  Status LoadIndex() {
    StartPhase("index");
    SNAPFS_RETURN_IF_ERROR(
        store_.Scan(Store::Family::kChunks, [&](std::string_view key, std::string_view value) {
          progress_.records++;
          Progress("index");
          Result<ChunkId> id = keys::DecodeChunk(key);
          if (!id.ok()) {
            Problem("chunks", key, id.status().message());
            return true;
          }
          IndexEntry e;
          e.id = *id;
          Result<ChunkLocation> loc = DecodeChunkLocation(value, key);
          if (loc.ok()) {
            e.loc = *loc;
            progress_.bytes_total += loc->stored_len + RecordHeaderSize(loc->codec);
            report_.stored_bytes += loc->stored_len;
            report_.raw_bytes += loc->raw_len;
          } else {
            e.readable = false;
          }
          index_.push_back(e);
          if (!loc.ok()) Damage(&index_.back(), "index entry: " + loc.status().message());
          return true;
        }));
    // The family is in key order, which is id order; keep it so whatever
    // RocksDB does.
    std::sort(index_.begin(), index_.end(),
              [](const IndexEntry& a, const IndexEntry& b) { return a.id < b.id; });
    report_.chunks = index_.size();
    progress_.chunks_total = options_.quick ? 0 : index_.size();
    return Status::Ok();
  }

  // Every pack the index names: its header (a problem of its own: records
  // are read by offset), and that each record lies inside the file.
  Status CheckPacks() {
    std::map<uint32_t, std::optional<uint64_t>> sizes;  // nullopt: no usable file.
    const std::string dir = store_.path() + "/packs";
    for (IndexEntry& e : index_) {
      if (!e.readable) continue;
      auto it = sizes.find(e.loc.pack);
      if (it == sizes.end()) {
        const std::string path = PackPath(dir, e.loc.pack);
        std::error_code ec;
        const uint64_t size = std::filesystem::file_size(path, ec);
        if (ec) {
          pack_errors_[e.loc.pack] = ec == std::errc::no_such_file_or_directory
                                         ? "pack file missing: " + path
                                         : path + ": " + ec.message();
          it = sizes.emplace(e.loc.pack, std::nullopt).first;
        } else {
          Status header = VerifyPackHeader(dir, e.loc.pack).status();
          if (!header.ok()) Problem("packs", "", header.message());
          it = sizes.emplace(e.loc.pack, size).first;
        }
      }
      if (!it->second) Damage(&e, pack_errors_[e.loc.pack]);
      else if (e.loc.offset + RecordHeaderSize(e.loc.codec) + e.loc.stored_len > *it->second)
        Damage(&e, "pack is truncated");
    }
    return Status::Ok();
  }

  static bool IsDelta(const IndexEntry& e) {
    return e.readable && e.loc.codec == Codec::kZstdDelta;
  }

  // Invariant 8: a delta's base is indexed and not a delta. A delta whose
  // base is damaged is damaged too: it cannot be decoded, so every version
  // using it is in the blast radius.
  void CheckBases() {
    for (IndexEntry& e : index_) {
      if (!IsDelta(e) || e.damaged) continue;
      const IndexEntry* base = FindChunk(e.loc.base);
      const std::string what = "base chunk " + e.loc.base.Hex();
      if (base == nullptr) Damage(&e, what + " has no index entry");
      else if (IsDelta(*base)) Damage(&e, what + " is itself a delta");
      else if (base->damaged) Damage(&e, what + " is damaged");
    }
  }

  // Reads every chunk in pack order (sequential I/O) and verifies it; the
  // deltas last, so a base found damaged here is known before its dependents.
  Status VerifyChunks() {
    StartPhase("chunks");
    std::vector<IndexEntry*> order;
    for (IndexEntry& e : index_)
      if (e.readable && !e.damaged) order.push_back(&e);
    std::sort(order.begin(), order.end(), [](const IndexEntry* a, const IndexEntry* b) {
      return std::make_tuple(IsDelta(*a), a->loc.pack, a->loc.offset) <
             std::make_tuple(IsDelta(*b), b->loc.pack, b->loc.offset);
    });
    uint64_t since = 0;
    for (IndexEntry* e : order) {
      if (IsDelta(*e)) {
        const IndexEntry* base = FindChunk(e->loc.base);
        if (base != nullptr && base->damaged) {
          Damage(e, "base chunk " + e->loc.base.Hex() + " is damaged");
          progress_.chunks_done++;
          continue;
        }
      }
      Result<ChunkBytes> bytes = store_.chunks().ReadVerified(e->id, e->loc);
      if (!bytes.ok()) Damage(e, Reason(e->id, bytes.status().message()));
      else report_.chunks_verified++;
      progress_.chunks_done++;
      const uint64_t n = e->loc.stored_len + RecordHeaderSize(e->loc.codec);
      progress_.bytes_done += n;
      since += n;
      if (since >= kProgressBytes) {
        since = 0;
        Progress("chunks", true);
      }
    }
    progress_.chunks_done += index_.size() - order.size();  // Failed before reading.
    Progress("chunks", true);
    return Status::Ok();
  }

  // Invariant 3 for inodes; what the extents pass needs to know.
  Status CheckInodes() {
    StartPhase("inodes");
    Ino last_ino = 0;
    SNAPFS_RETURN_IF_ERROR(
        store_.Scan(Store::Family::kInodes, [&](std::string_view key, std::string_view value) {
          progress_.records++;
          Progress("inodes");
          Result<keys::DecodedInodeKey> k = keys::DecodeInode(key);
          if (!k.ok()) {
            Problem("inodes", key, k.status().message());
            return true;
          }
          report_.inode_records++;
          if (k->ino != last_ino || first_gen_.empty()) {
            first_gen_.emplace_back(k->ino, k->gen);
            report_.inodes++;
            last_ino = k->ino;
          }
          // Newest first within an inode: the last one seen is the first.
          first_gen_.back().second = k->gen;
          if (!HasLog(k->gen))
            Problem("inodes", key,
                    "inode " + std::to_string(k->ino) + " has a version at generation " +
                        std::to_string(k->gen) + ", which has no log record");
          Result<InodeRecord> rec = DecodeInodeRecord(value, key);
          if (!rec.ok()) {
            Problem("inodes", key, rec.status().message());
            return true;
          }
          if ((rec->content_gen == 0) != (rec->pages == 0) || rec->content_gen > k->gen) {
            Problem("inodes", key,
                    "inode " + std::to_string(k->ino) + " at generation " + std::to_string(k->gen) +
                        " names content of generation " + std::to_string(rec->content_gen) +
                        " with " + std::to_string(rec->pages) + " pages");
            return true;
          }
          if (rec->content_gen != 0) {
            ContentRef ref{k->ino, rec->content_gen, rec->pages, rec->size};
            auto [it, fresh] = ref_index_.emplace(std::make_pair(ref.ino, ref.gen), refs_.size());
            if (fresh) {
              refs_.push_back(ref);
            } else {
              ContentRef& known = refs_[it->second];
              if (known.pages != ref.pages)
                Problem("inodes", key,
                        "inode " + std::to_string(k->ino) + ": versions disagree on the page count "
                        "of the content of generation " + std::to_string(ref.gen));
              known.size = std::min(known.size, ref.size);
            }
          }
          return true;
        }));
    return Status::Ok();
  }

  // Invariants 3 and 5 for directory entries.
  Status CheckDirents() {
    StartPhase("dirents");
    return store_.Scan(Store::Family::kDirents, [&](std::string_view key, std::string_view value) {
      progress_.records++;
      Progress("dirents");
      Result<keys::DecodedDirentKey> k = keys::DecodeDirent(key);
      if (!k.ok()) {
        Problem("dirents", key, k.status().message());
        return true;
      }
      report_.dirent_records++;
      const std::string what =
          "entry '" + k->name + "' of directory " + std::to_string(k->parent) + " at generation " +
          std::to_string(k->gen);
      if (!HasLog(k->gen)) Problem("dirents", key, what + " has no log record");
      Result<DirentRecord> rec = DecodeDirentRecord(value, key);
      if (!rec.ok()) {
        Problem("dirents", key, rec.status().message());
        return true;
      }
      if (rec->child == 0) return true;
      auto it = std::lower_bound(first_gen_.begin(), first_gen_.end(), rec->child,
                                 [](const std::pair<Ino, Generation>& p, Ino i) { return p.first < i; });
      // A version made in a dropped (pruned) state is first read at the
      // first kept generation after it (docs/format.md, invariant 5).
      const Generation read_at = store_.IsDropped(k->gen) ? store_.KeptAtOrAfter(k->gen) : k->gen;
      if (it == first_gen_.end() || it->first != rec->child || it->second > read_at)
        Problem("dirents", key,
                what + " names inode " + std::to_string(rec->child) +
                    ", which has no record at or before that generation");
      return true;
    });
  }

  // Invariants 1 (references) and 4; maps damaged chunks to file versions.
  Status CheckExtents() {
    StartPhase("extents");
    std::optional<std::pair<Ino, Generation>> group;
    uint32_t next_page = 0;
    uint64_t end = 0;
    bool broken = false;  // A page of this group failed; its end is unknown.
    std::string first_key;
    auto close_group = [&] {
      if (!group) return;
      auto it = ref_index_.find(*group);
      if (it == ref_index_.end()) return;  // No inode version uses it: garbage, not damage.
      ContentRef& ref = refs_[it->second];
      ref.seen = true;
      const std::string what = "inode " + std::to_string(group->first) + ": content of generation " +
                               std::to_string(group->second);
      if (next_page != ref.pages)
        Problem("extents", first_key,
                what + " has " + std::to_string(next_page) + " extent pages, its inode record says " +
                    std::to_string(ref.pages));
      else if (!broken && end > ref.size)
        Problem("extents", first_key,
                what + ": extents end at " + std::to_string(end) + ", past the size " +
                    std::to_string(ref.size));
    };
    std::vector<Extent> extents;
    SNAPFS_RETURN_IF_ERROR(
        store_.Scan(Store::Family::kExtents, [&](std::string_view key, std::string_view value) {
          progress_.records++;
          Progress("extents");
          Result<keys::DecodedExtentKey> k = keys::DecodeExtentPage(key);
          if (!k.ok()) {
            Problem("extents", key, k.status().message());
            return true;
          }
          report_.extent_pages++;
          const auto this_group = std::make_pair(k->ino, k->gen);
          if (!group || *group != this_group) {
            close_group();
            group = this_group;
            next_page = 0;
            end = 0;
            broken = false;
            first_key = std::string(key);
          }
          if (k->page != next_page) {
            Problem("extents", key,
                    "inode " + std::to_string(k->ino) + ": content of generation " +
                        std::to_string(k->gen) + " has page " + std::to_string(k->page) +
                        " where page " + std::to_string(next_page) + " belongs");
            broken = true;
          }
          next_page = k->page + 1;
          extents.clear();
          Result<uint64_t> page_end = DecodeExtentPage(value, key, end, &extents);
          if (!page_end.ok()) {
            Problem("extents", key, page_end.status().message());
            broken = true;
            return true;
          }
          end = *page_end;
          for (const Extent& e : extents) {
            report_.extents++;
            IndexEntry* chunk = FindChunk(e.id);
            if (chunk == nullptr) {
              damaged_.try_emplace(e.id, DamagedChunk{e.id, std::nullopt, "no index entry"});
              Affect(k->ino, k->gen, e.id);
              continue;
            }
            chunk->referenced = true;
            if (chunk->damaged) Affect(k->ino, k->gen, e.id);
            else if (chunk->readable &&
                     static_cast<uint64_t>(e.chunk_offset) + e.length > chunk->loc.raw_len)
              Problem("extents", key,
                      "inode " + std::to_string(k->ino) + ": an extent of generation " +
                          std::to_string(k->gen) + " reaches past the end of chunk " + e.id.Hex());
          }
          return true;
        }));
    close_group();
    for (const ContentRef& ref : refs_)
      if (!ref.seen)
        Problem("extents", keys::ExtentPage(ref.ino, ref.gen, 0),
                "inode " + std::to_string(ref.ino) + ": the extent pages of generation " +
                    std::to_string(ref.gen) + " are missing");
    return Status::Ok();
  }

  void Affect(Ino ino, Generation gen, const ChunkId& id) {
    std::set<ChunkId>& ids = affected_[{ino, gen}];
    ids.insert(id);
  }

  void Finish() {
    for (auto& [id, d] : damaged_) report_.damaged.push_back(std::move(d));
    damaged_.clear();
  }

  // For each version that uses a damaged chunk: when the inode had that
  // content, and its paths in each state's tree (and the live tree) then.
  Status BlastRadius() {
    if (affected_.empty()) return Status::Ok();
    StartPhase("paths");
    PathFinder finder(store_);
    std::map<Ino, std::vector<std::pair<Generation, InodeRecord>>> versions;
    for (const auto& [key, ids] : affected_) {
      const Ino ino = key.first;
      const Generation content_gen = key.second;
      auto vit = versions.find(ino);
      if (vit == versions.end()) {
        std::vector<std::pair<Generation, InodeRecord>> v;
        SNAPFS_RETURN_IF_ERROR(store_.InodeVersions(ino, [&](Generation g, const InodeRecord& r) {
          v.emplace_back(g, r);  // Oldest first.
          return true;
        }));
        vit = versions.emplace(ino, std::move(v)).first;
      }
      const auto& v = vit->second;
      AffectedVersion out;
      out.ino = ino;
      out.content_gen = content_gen;
      out.chunks.assign(ids.begin(), ids.end());
      for (size_t i = 0; i < v.size(); ++i) {
        if (v[i].second.content_gen != content_gen) continue;
        if (out.current_from == 0) out.current_from = v[i].first;
        out.current_to = i + 1 < v.size() ? v[i + 1].first - 1 : kLatest;
      }
      // The record in force at generation g (nullptr before the first).
      auto record_at = [&](Generation g) -> const InodeRecord* {
        auto it = std::upper_bound(v.begin(), v.end(), g,
                                   [](Generation x, const auto& p) { return x < p.first; });
        return it == v.begin() ? nullptr : &std::prev(it)->second;
      };
      auto paths_at = [&](Generation g) -> Result<std::vector<std::string>> {
        const InodeRecord* r = record_at(g);
        if (r == nullptr || r->content_gen != content_gen || r->nlink == 0)
          return std::vector<std::string>{};
        return finder.Paths(ino, g);
      };
      for (const StateRecord& s : states_) {
        if (s.last_gen < out.current_from || s.last_gen > out.current_to) continue;
        SNAPFS_ASSIGN_OR_RETURN(std::vector<std::string> paths, paths_at(s.last_gen));
        if (!paths.empty()) out.states.push_back({s.first_gen, s.last_gen, std::move(paths)});
      }
      if (report_.latest != 0) {
        SNAPFS_ASSIGN_OR_RETURN(out.live_paths, paths_at(report_.latest));
      }
      report_.affected.push_back(std::move(out));
    }
    return Status::Ok();
  }

  Store& store_;
  const CheckOptions& options_;
  CheckReport report_;
  CheckProgress progress_;
  Generation newest_ = 0;
  std::map<Generation, Generation> missing_log_;  // first -> last of each missing range.
  std::vector<StateRecord> states_;
  std::vector<IndexEntry> index_;                 // Sorted by id.
  std::map<uint32_t, std::string> pack_errors_;
  std::map<ChunkId, DamagedChunk> damaged_;
  std::vector<std::pair<Ino, Generation>> first_gen_;  // By ino: its oldest record.
  std::vector<ContentRef> refs_;
  std::map<std::pair<Ino, Generation>, size_t> ref_index_;
  std::map<std::pair<Ino, Generation>, std::set<ChunkId>> affected_;
};

}  // namespace

Result<CheckReport> CheckStore(Store& store, const CheckOptions& options) {
  return Checker(store, options).Run();
}

}  // namespace snapfs::store
