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
// Thread-safety: all methods may be called concurrently; Commit()s are
// serialized internally.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "store/chunk_store.h"
#include "store/chunker.h"
#include "store/key_format.h"
#include "store/status.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
}  // namespace rocksdb

namespace snapfs::store {

struct InitOptions {
  int zstd_level = 3;                          // Default level for chunks, 1..19.
  int64_t state_gap_ns = 300'000'000'000;      // Quiet time that ends a state: 5 minutes.
  uint32_t root_uid = 0;                       // Owner of the root directory.
  uint32_t root_gid = 0;
  uint32_t root_mode = 0755;                   // Permission bits of the root directory.
};

struct OpenOptions {
  bool read_only = false;            // Secondary instance: never writes, never locks.
  int zstd_level = 0;                // 0: the store's default.
  size_t chunk_cache_bytes = 64u << 20;
  int compress_threads = 0;          // 0: one per core (at least 2).
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
  // of names, until fn returns false. Cost: one seek per name ever used in
  // the directory.
  Status ListDir(Ino parent, Generation at,
                 const std::function<bool(std::string_view, const DirentRecord&)>& fn);
  // The extents of `rec` (an InodeRecord of `ino`), in offset order.
  Result<std::vector<Extent>> GetExtents(Ino ino, const InodeRecord& rec);
  // Every version of `ino`, oldest first: fn(generation, record).
  Status InodeVersions(Ino ino, const std::function<bool(Generation, const InodeRecord&)>& fn);
  // Every version of `name` in `parent`, oldest first.
  Status DirentVersions(Ino parent, std::string_view name,
                        const std::function<bool(Generation, const DirentRecord&)>& fn);

  Result<LogRecord> GetLog(Generation g);
  // The newest generation whose time is <= time_ns. kNotFound if the store's
  // first generation is younger.
  Result<Generation> GenerationAt(int64_t time_ns);
  // States (bursts) with first generation >= from, oldest first.
  Status ListStates(Generation from, const std::function<bool(const State&)>& fn);

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
  // Makes every generation committed so far durable (packs and log).
  Status Sync();
  // Time of the newest generation.
  int64_t latest_time_ns() const { return last_time_ns_.load(); }

 private:
  Store(std::string path, OpenOptions options, ChunkerParams chunker);
  // Init() once `path` is an empty folder; on failure Init() empties it again.
  static Status InitEmptyFolder(const std::string& path, const InitOptions& options);
  Status OpenDb();
  Status LoadMeta();
  Result<std::string> GetRaw(rocksdb::ColumnFamilyHandle* cf, const std::string& key);

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
  std::unique_ptr<ChunkStore> chunks_;

  std::atomic<Generation> last_gen_{0};
  std::atomic<int64_t> last_time_ns_{0};
  std::atomic<Ino> next_ino_{2};
  int64_t state_gap_ns_ = 0;

  std::mutex commit_mu_;           // Serializes Commit().
  // The last write to RocksDB failed (guarded by commit_mu_ for writes; read
  // by Sync()): its log must not be synced directly (see Sync()).
  std::atomic<bool> log_failed_{false};
  State state_;                    // The newest state (burst).
  std::set<Ino> state_files_;      // Files changed in state_, for files_changed.
};

}  // namespace snapfs::store
