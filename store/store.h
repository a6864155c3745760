// snapfs::store::Store — a snapfs store: every version of a file tree,
// deduplicated and compressed, in one directory (docs/format.md).
//
// Read this header to know the system. A Store is opened either
//  - read-write (one process at a time: the live daemon, or a tool on an
//    unmounted store); a second read-write open fails with kBusy; or
//  - read-only, as a RocksDB secondary instance: any number of processes,
//    also while the daemon writes. CatchUp() makes the daemon's newest
//    commits visible.
//
// Everything written goes through Commit(): one Mutation becomes one
// generation, atomically, with a wall-clock time that never decreases. Reads
// take a generation `at` and see the tree as it stood then (kLatest: now).
//
// Errors: kNotFound (no store / no such state), kInvalid (not a store, bad
// argument), kVersion (store of another format version), kBusy (store locked
// by another process), kCorruption (damaged metadata or chunk; the message
// names the key or chunk), kNoSpace (the store's filesystem is full), kIo.
//
// Files: Init() and a read-write Open() set the process umask to 077, so
// every file and folder RocksDB and the packs create in the store is
// owner-only (0600 / 0700); the chunk-id secret lives in RocksDB (meta) in
// there. A read-write Open() also takes group/other bits off files an older
// version left in db/ and packs/.
//
// Thread-safety: all methods may be called concurrently; Commit()s are
// serialized internally.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "store/chunk_store.h"
#include "store/chunker.h"
#include "store/key_format.h"
#include "store/retention.h"
#include "store/status.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class WriteBatch;
}  // namespace rocksdb

namespace snapfs::store {

struct InitOptions {
  int zstd_level = 1;                          // Default level for chunks, 1..19.
  int64_t state_gap_ns = 300'000'000'000;      // Quiet time that ends a state: 5 minutes.
  uint32_t root_uid = 0;                       // Owner of the root directory.
  uint32_t root_gid = 0;
  uint32_t root_mode = 0755;                   // Permission bits of the root directory.
  int64_t min_retention_ns = 0;                // No state younger than this is pruned; 0: none.
  uint32_t guard_share_percent = 50;           // The bad-dump guard's share (0: off); retention.h.
};

struct OpenOptions {
  bool read_only = false;            // Secondary instance: never writes, never locks.
  int zstd_level = 0;                // 0: the store's default.
  size_t chunk_cache_bytes = 64u << 20;
  int compress_threads = 0;          // 0: one per core (at least 2).
  // Deferred compression (docs/design.md, "Deferred compression"): new
  // chunks are stored uncompressed while more than this many raw bytes wait
  // for the compression workers; SIZE_MAX: never. See also settle_when_idle.
  size_t defer_above = SIZE_MAX;
  // And while new chunks arrive faster than this many bytes per second
  // (ChunkStoreOptions::defer_rate); 0: off.
  uint64_t defer_rate = 0;
  // A background thread compresses deferred chunks (Settle) whenever the
  // store has been idle for a moment, and collects the space they took.
  bool settle_when_idle = false;
  // Nice value (0..19) of the compression workers and the settler: above 0
  // they take only the CPU the writers leave (ChunkStoreOptions::worker_nice).
  int background_nice = 0;
};

// What Settle() did.
struct SettleStats {
  uint64_t chunks = 0;        // Deferred chunks now stored compressed.
  uint64_t raw_bytes = 0;     // Their stored bytes before (uncompressed) ...
  uint64_t stored_bytes = 0;  // ... and now.
  uint64_t deltas = 0;        // Of those chunks, stored as a delta (codec 2).
  uint64_t unchanged = 0;     // Records left as they were: gone, already compressed, or the
                              // bytes do not compress.
  uint64_t damaged = 0;       // Records that failed verification (snapfs-check names them).
  bool done = false;          // No deferred chunk is left.
};

// One change being prepared for Commit(). Keys get the generation at commit.
class Mutation {
 public:
  void PutInode(Ino ino, InodeRecord rec) { inodes_[ino] = std::move(rec); }
  // New content for `ino` (whose InodeRecord must also be put): the record's
  // content_gen and pages are filled in at commit. `unindexed` are the chunk
  // ids that may still need an index entry (FileContent tells).
  void PutContent(Ino ino, std::vector<Extent> extents, std::vector<ChunkId> unindexed) {
    content_[ino] = std::move(extents);
    unindexed_.insert(unindexed_.end(), unindexed.begin(), unindexed.end());
  }
  void PutDirent(Ino parent, std::string name, DirentRecord rec) {
    dirents_[{parent, std::move(name)}] = rec;
  }
  bool empty() const { return inodes_.empty() && dirents_.empty(); }
  // The record put for `ino`; after Commit() its content_gen and pages are
  // filled in. `ino` must have been put.
  const InodeRecord& inode(Ino ino) const { return inodes_.at(ino); }
  const std::vector<ChunkId>& unindexed() const { return unindexed_; }

 private:
  friend class Store;
  std::map<Ino, InodeRecord> inodes_;
  std::map<Ino, std::vector<Extent>> content_;
  std::map<std::pair<Ino, std::string>, DirentRecord> dirents_;
  std::vector<ChunkId> unindexed_;
};

struct CommitOptions {
  bool sync = false;                 // fsync the log before returning.
  int64_t activity_start_ns = 0;     // When the work this commit records began (0: now).
};

// A state as the tools list it (see StateRecord).
using State = StateRecord;

// --- Retention: dropping states and garbage collection (store/gc.cc) -----
// What DropStates() removed.
struct DropStats {
  uint64_t states = 0;            // States dropped by this call.
  uint64_t inode_versions = 0;    // Records deleted, per family.
  uint64_t dirent_versions = 0;
  uint64_t extent_pages = 0;
};

struct GcOptions {
  // Rewrite a pack when its live records are less than this share of its
  // bytes (0..1; 0: never rewrite, only delete packs with nothing live).
  double rewrite_below = 0.5;
  // Compact RocksDB afterwards, so deleted records leave db/ at once.
  bool compact = true;
};

// What CollectGarbage() found and did.
struct GcStats {
  uint64_t chunks_live = 0;       // Index entries some remaining version needs.
  uint64_t chunks_deleted = 0;    // Index entries of dead chunks removed.
  uint64_t chunks_rescued = 0;    // Dead at mark time but re-used by a concurrent write: kept.
  uint64_t packs_deleted = 0;     // Pack files removed (rewritten or with nothing live).
  uint64_t packs_rewritten = 0;   // Of those, packs whose live records were copied first.
  uint64_t bytes_copied = 0;      // Record bytes copied by rewrites.
  uint64_t pack_bytes_before = 0; // Size of packs/ before and after.
  uint64_t pack_bytes_after = 0;
};

class Store {
 public:
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Creates a new, empty store at `path` (created if missing; an existing
  // folder must be empty). kExists if `path` holds anything.
  static Status Init(const std::string& path, const InitOptions& options);
  static Result<std::unique_ptr<Store>> Open(const std::string& path, const OpenOptions& options);

  const std::string& path() const { return path_; }
  bool read_only() const { return options_.read_only; }

  // --- Reading, at any generation --------------------------------------
  // Newest committed generation (for a read-only store: as of CatchUp()).
  Generation latest() const { return last_gen_.load(); }
  // Read-only stores: see the daemon's commits since open or the last call.
  Status CatchUp();

  // The inode as of `at`, or nullopt if it did not exist yet.
  Result<std::optional<InodeRecord>> GetInode(Ino ino, Generation at);
  // The entry `name` in `parent` as of `at`, or nullopt if absent.
  Result<std::optional<DirentRecord>> Lookup(Ino parent, std::string_view name, Generation at);
  // Calls fn(name, entry) for each entry of `parent` as of `at`, in byte order
  // of names, until fn returns false. Cost: one seek per name the directory
  // held around `at` (its newest snapshot before `at` plus the changes since),
  // however long its history (docs/format.md, "Indexes").
  Status ListDir(Ino parent, Generation at,
                 const std::function<bool(std::string_view, const DirentRecord&)>& fn);
  // The extents of `rec` (an InodeRecord of `ino`), in offset order.
  Result<std::vector<Extent>> GetExtents(Ino ino, const InodeRecord& rec);
  // Every version of `ino`, oldest first: fn(generation, record).
  Status InodeVersions(Ino ino, const std::function<bool(Generation, const InodeRecord&)>& fn);
  // Every version of `name` in `parent`, oldest first.
  Status DirentVersions(Ino parent, std::string_view name,
                        const std::function<bool(Generation, const DirentRecord&)>& fn);
  // The same, newest first, until fn returns false: reads no further than it
  // must (a name may have millions of versions).
  Status DirentVersionsNewestFirst(Ino parent, std::string_view name,
                                   const std::function<bool(Generation, const DirentRecord&)>& fn);

  Result<LogRecord> GetLog(Generation g);
  // The newest generation whose time is <= time_ns. kNotFound if the store's
  // first generation is younger.
  Result<Generation> GenerationAt(int64_t time_ns);
  // States (bursts) with first generation >= from, oldest first.
  Status ListStates(Generation from, const std::function<bool(const State&)>& fn);

  // Every record of one family, in key order: fn(key, value) until it
  // returns false. For whole-store passes (snapfs-check); a read-only store
  // sees the state as of open or the last CatchUp().
  enum class Family { kChunks, kInodes, kDirents, kExtents, kLog, kStates };
  Status Scan(Family family,
              const std::function<bool(std::string_view key, std::string_view value)>& fn);

  ChunkStore& chunks() { return *chunks_; }
  const ChunkerParams& chunker_params() const { return chunker_.params(); }
  const Chunker& chunker() const { return chunker_; }

  // --- Writing (read-write stores only) --------------------------------
  // A fresh inode number, never handed out before.
  Ino AllocateIno() { return next_ino_.fetch_add(1); }
  // Inode numbers handed out so far, plus one (root is 1).
  Ino next_ino() const { return next_ino_.load(); }
  // Writes `m` as one new generation described by `log` (its time_ns is set
  // here). Returns the generation. On failure nothing of `m` is visible.
  Result<Generation> Commit(Mutation& m, LogRecord log, const CommitOptions& options);
  // Makes every generation committed so far durable (their commit records:
  // one sync of the packs).
  Status Sync();
  // What the read-write Open() replayed: commits whose records were in the
  // packs but whose writes to the log were lost (a crash of the machine
  // after a synced commit; docs/format.md, "Commit records"); and, if it had
  // to stop early, why (empty otherwise). For the daemon's log.
  uint64_t replayed() const { return replayed_; }
  const std::string& replay_note() const { return replay_note_; }
  // Time of the newest generation.
  int64_t latest_time_ns() const { return last_time_ns_.load(); }

  // --- Retention (read-write stores only; docs/format.md, "Dropping states")
  // Removes the given states (ids = first generation, as in ListStates) from
  // history: every generation of a kept state stays readable exactly, the
  // newest state can never be dropped (kInvalid), an unknown id is kNotFound;
  // on any error nothing is dropped. Crash-safe: an intent record is written
  // first and an interrupted drop is finished by the next read-write Open().
  // A generation inside a dropped state reads as the newest kept generation
  // before it (KeptAtOrBefore). Runs concurrently with Commit().
  Result<DropStats> DropStates(const std::vector<Generation>& state_ids);
  // Reclaims chunks that no remaining version references; rewrites packs
  // whose live share is below options.rewrite_below and deletes packs with
  // nothing live, so packs/ shrinks. Safe while the daemon writes (a chunk a
  // concurrent write re-uses is never deleted: docs/design.md, "Garbage
  // collection") and against SIGKILL at any point. Serialized with DropStates.
  Result<GcStats> CollectGarbage(const GcOptions& options);
  // Compresses deferred chunks (stored uncompressed while writes outran the
  // compression workers, OpenOptions::defer_above), at most about
  // `max_raw_bytes` of them: each is compressed as a worker would have (a
  // delta against the chunk its file offset held before, if that pays),
  // appended, the packs synced, and its index entry moved to the new record
  // in one synced batch that also drops its settle key and takes the bytes
  // saved off the bytes_stored of the state that stored it. The old record
  // is garbage for CollectGarbage(). Crash-safe at any point (an interrupted
  // batch is redone). Serialized with DropStates() and CollectGarbage().
  Result<SettleStats> Settle(uint64_t max_raw_bytes);
  // Settles every deferred chunk; if any was settled since the last such
  // collection (here or by the settler), starts a new pack and collects
  // garbage (`gc`), so the space of the uncompressed records is freed too.
  Result<std::pair<SettleStats, std::optional<GcStats>>> SettleAll(const GcOptions& gc);
  // True if generation g lies in a dropped state.
  bool IsDropped(Generation g) const;
  // g itself if it is kept, else the newest kept generation before it; 0 if
  // there is none (g lies before the oldest kept state).
  Generation KeptAtOrBefore(Generation g) const;
  // g itself if it is kept, else the first kept generation after it (the
  // present is always kept).
  Generation KeptAtOrAfter(Generation g) const;

  // --- Retention (store/retention_store.cc; docs/retention.md) ---------
  // Meta keys min_retention, guard_share and hold:<id> (docs/format.md). The
  // readers work on read-only stores too; the writers need a read-write store
  // (kReadOnly otherwise) and are serialized with Commit().
  //
  // The store's policy: minimum retention and the guard's share.
  Result<RetentionPolicy> GetRetentionPolicy();
  // Raises the minimum retention to `ns`. It is never lowered: kInvalid (the
  // message names the current value) if `ns` is lower; equal is a no-op.
  Status RaiseMinRetention(int64_t ns);
  // Every hold ever made, released ones included, by id.
  Result<std::vector<HoldRecord>> ListHolds();
  // Holds the state whose id (first generation) is `state` until `until_ns`
  // (0: until released). kNotFound if there is no such state.
  Result<HoldRecord> AddHold(Generation state, int64_t until_ns, std::string reason);
  // Releases hold `id` (the record stays, marked released). kNotFound if no
  // such hold; kInvalid if it is already released.
  Result<HoldRecord> ReleaseHold(uint64_t id);
  // The bad-dump guard, run by Commit() when a new state closes the previous
  // one, and by the daemon at unmount: if the newest state ended with the
  // tree much smaller than the state before it (DescribeShrink), holds that
  // one (kind kGuard) unless it ever had a guard hold. Returns the hold made.
  Result<std::optional<HoldRecord>> CheckGuard();
  // Called with every guard hold the store makes (under the commit lock:
  // keep it short, e.g. a log line). Set it before the first commit.
  void SetGuardListener(std::function<void(const HoldRecord&)> fn) {
    guard_listener_ = std::move(fn);
  }
  // Overrides the store's guard share for this open store (mount option);
  // -1: use the store's.
  void SetGuardShareOverride(int percent) { guard_share_override_ = percent; }

 private:
  Store(std::string path, OpenOptions options, ChunkerParams chunker);
  // Init() once `path` is an empty folder; on failure Init() empties it again.
  static Status InitEmptyFolder(const std::string& path, const InitOptions& options);
  Status OpenDb();
  Status LoadMeta();
  Result<std::string> GetRaw(rocksdb::ColumnFamilyHandle* cf, const std::string& key);
  // Writes every column family's memtable to table files (the log is then
  // obsolete, and readers opening the store need not replay it).
  Status FlushAll();
  // The read-write store's background thread: FlushAll() once commits have
  // paused for kFlushQuiet, so readers that open after a dump run start from
  // table files.
  void FlushWhenQuiet();
  static constexpr std::chrono::seconds kFlushQuiet{2};
  // Fills the index families for a store made before they existed.
  Status BuildIndexes();
  // ListDir without the indexes: one seek per name ever used.
  Status ListDirByScan(Ino parent, Generation at,
                       const std::function<bool(std::string_view, const DirentRecord&)>& fn);
  // A sorted superset of the names `parent` holds at `at` (from dirsnaps and
  // dirlog).
  Result<std::vector<std::string>> DirNamesAt(Ino parent, Generation at);
  // Appends the names of `parent`'s newest snapshot at or before `at`;
  // returns its generation (0: none).
  Result<Generation> ReadDirSnapshot(Ino parent, Generation at, std::vector<std::string>* names);
  // fn(name) for each dirlog entry of `parent` with a generation in [from, to].
  Status ScanDirLog(Ino parent, Generation from, Generation to,
                    const std::function<void(std::string&&)>& fn);
  // Directory snapshots (dirsnaps) are written once a directory's changes
  // since its last snapshot reach max(kMinSnapshotChanges, its names then).
  struct DirCounter {
    uint64_t names = 0;    // Names in the newest snapshot.
    uint64_t changes = 0;  // dirlog entries after it.
  };
  static constexpr uint64_t kMinSnapshotChanges = 32;
  static constexpr size_t kMaxDirCounters = 65536;
  void SnapshotChangedDirs(const Mutation& m, Generation g);  // Under commit_mu_.
  Result<DirCounter*> CounterOf(Ino parent, Generation g);
  // Retention (store/gc.cc).
  Status LoadDropped();                  // Reads meta `dropped` into dropped_.
  Status FinishDrop(DropStats* stats);   // Deletes what dropped states alone showed.
  Status RecoverDrop();                  // At Open: finishes an interrupted drop.
  // Commit records (docs/format.md): at a read-write Open, before the
  // newest generation is read, applies those the log lacks; then, and
  // whenever everything committed is durable in the log, moves the replay
  // point to the pack being appended to (a synced write; upgrades a format-1
  // store on the way). Takes commit_mu_. `closing`: from the destructor, no
  // commit follows, so the point goes past the pack being appended to.
  Status ReplayCommits();
  Status AdvanceReplay(bool closing = false);
  // Sets last_gen_ and last_time_ns_ from the log's newest record; an empty
  // log is Corruption when `required`, else leaves them as they are.
  Status LoadNewestGeneration(bool required);
  // Deferred compression (store/settle.cc).
  Status CountUnsettled();               // At Open: sets unsettled_.
  void SettleWhenIdle();                 // The settler_ thread.
  Result<GcStats> CollectAfterSettle(const GcOptions& gc);
  // Takes `saved` bytes off bytes_stored of the state holding each
  // generation, into `batch`; *current: the new state_ if it changed.
  // commit_mu_ held.
  Status ShrinkStatesLocked(const std::map<Generation, uint64_t>& saved,
                            rocksdb::WriteBatch* batch, std::optional<State>* current);

  const std::string path_;
  const OpenOptions options_;
  Chunker chunker_;
  std::string secondary_dir_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs_;
  rocksdb::ColumnFamilyHandle* cf_meta_ = nullptr;
  rocksdb::ColumnFamilyHandle* cf_chunks_ = nullptr;
  rocksdb::ColumnFamilyHandle* cf_inodes_ = nullptr;
  rocksdb::ColumnFamilyHandle* cf_dirents_ = nullptr;
  rocksdb::ColumnFamilyHandle* cf_extents_ = nullptr;
  rocksdb::ColumnFamilyHandle* cf_log_ = nullptr;
  rocksdb::ColumnFamilyHandle* cf_states_ = nullptr;
  rocksdb::ColumnFamilyHandle* cf_times_ = nullptr;     // Null in an old store opened read-only.
  rocksdb::ColumnFamilyHandle* cf_dirlog_ = nullptr;
  rocksdb::ColumnFamilyHandle* cf_dirsnaps_ = nullptr;
  bool indexed_ = false;           // The three index families are complete.
  std::unique_ptr<ChunkStore> chunks_;

  std::atomic<Generation> last_gen_{0};
  std::atomic<int64_t> last_time_ns_{0};
  std::atomic<Ino> next_ino_{2};
  int64_t state_gap_ns_ = 0;

  std::mutex flush_mu_;            // Guards the flusher's fields below.
  std::condition_variable flush_cv_;
  bool stopping_ = false;
  Generation flushed_gen_ = 0;     // Newest generation known to be in table files.
  std::chrono::steady_clock::time_point last_commit_;
  std::thread flusher_;
  std::thread settler_;            // Settles when idle (options_.settle_when_idle).
  // Settle keys written (an upper bound: two commits may record one chunk);
  // the settler looks for work only while this is not 0.
  std::atomic<uint64_t> unsettled_{0};
  // Raw bytes settled since the last CollectAfterSettle (by Settle, whoever
  // called it): what GC may reclaim.
  std::atomic<uint64_t> settled_since_collect_{0};

  std::mutex commit_mu_;           // Serializes Commit().
  uint32_t format_ = 0;            // The store's format version (meta `format`).
  // Packs from this one on may hold commit records the log has not made
  // durable: GC leaves them alone (meta `replay_from`).
  std::atomic<uint32_t> replay_from_{0};
  uint64_t replayed_ = 0;
  std::string replay_note_;
  State state_;                    // The newest state (burst).
  std::set<Ino> state_files_;      // Files changed in state_, for files_changed.
  std::unordered_map<Ino, DirCounter> dir_counters_;  // Under commit_mu_.

  std::mutex maintenance_mu_;      // Serializes DropStates() and CollectGarbage().
  mutable std::mutex dropped_mu_;
  std::vector<std::pair<Generation, Generation>> dropped_;  // Merged, sorted [first, last].

  // --- Retention (store/retention_store.cc) ---
  // Sets st->tree_files/tree_bytes from state_'s totals and the change `m`
  // makes (one inode lookup per inode in m). commit_mu_ held.
  Status UpdateTreeTotalsLocked(const Mutation& m, State* st);
  // The guard for `closing` (the newest state) against the state before it:
  // puts a guard hold into *batch (and *added) if it shrank. commit_mu_ held.
  Status GuardLocked(const State& closing, rocksdb::WriteBatch* batch,
                     std::optional<HoldRecord>* added);
  Result<uint32_t> GuardShareLocked();
  std::function<void(const HoldRecord&)> guard_listener_;
  std::atomic<int> guard_share_override_{-1};
};

namespace store_testing {
// While set, a synced Commit() appends its record to the pack and syncs the
// packs but never writes its batch to the log, and the replay point stays
// where the open put it (also when the store closes): what a crash of the
// machine right after the fsync leaves. Tests close and reopen the store
// with it set, then clear it.
void SetLoseSyncedLogWrites(bool lose);
}  // namespace store_testing

}  // namespace snapfs::store
