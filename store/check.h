// snapfs::store::CheckStore — verifies a whole store (what snapfs-check
// runs; docs/format.md, "Invariants"): every chunk in the index reads back,
// decodes and hashes to its id; every extent names an indexed chunk; the
// metadata invariants hold. On damage it says what is damaged and what it
// costs: every file version that uses a damaged or missing chunk, and the
// paths it had in each state (and in the live tree) that shows it.
//
// The check never writes: open the store read-only (a secondary, also while
// the daemon runs) or read-write on an unmounted store; either way nothing
// changes.
//
// Cost: one pass over each family; the full check also reads every indexed
// chunk once, in pack order. Memory: about 48 bytes per indexed chunk, 16
// per inode and 40 per content version, plus the damage found. The blast radius is computed only for the
// inodes that use damaged chunks.
//
// Adding a check: a new pass or a new test inside one, reporting through
// CheckReport::problems (metadata) or damaged (chunks); the blast radius
// follows any chunk put in `damaged`. A delta (codec 2: zstd with a base
// chunk) is damaged when its base has no index entry, is itself a delta, or
// is damaged, so the blast radius of a damaged base includes every file
// version using a chunk stored against it; otherwise it is verified through
// ChunkStore::ReadVerified like the others (after all non-deltas).
//
// Generations are read as of the store's open (or last CatchUp()): a check
// of a mounted store sees the daemon's commits up to then.
//
// Thread-safety: one CheckStore per Store at a time; the Store may be read
// by others meanwhile.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "store/chunk_id.h"
#include "store/key_format.h"
#include "store/status.h"
#include "store/store.h"

namespace snapfs::store {

struct CheckProgress {
  const char* phase = "";        // "log", "chunks", "inodes", "dirents", "extents", "paths".
  uint64_t chunks_done = 0;      // Chunks verified (full check) so far.
  uint64_t chunks_total = 0;
  uint64_t bytes_done = 0;       // Stored bytes of those chunks.
  uint64_t bytes_total = 0;
  uint64_t records = 0;          // Records of the current family passed so far.
};

struct CheckOptions {
  // References and invariants only: chunks are not read (their pack records
  // are checked to exist in full, from the pack sizes).
  bool quick = false;
  // Called every few MB and at each phase change (may be empty).
  std::function<void(const CheckProgress&)> progress;
};

// A chunk some file version needs that cannot be read back as it was stored.
struct DamagedChunk {
  ChunkId id;
  std::optional<ChunkLocation> loc;  // nullopt: no (readable) index entry.
  std::string reason;                // "payload checksum mismatch", "no index entry", ...
};

// A broken metadata invariant (docs/format.md, "Invariants").
struct MetadataProblem {
  std::string family;  // "log", "inodes", "dirents", "extents", "states", "chunks".
  std::string key;     // Hex of the RocksDB key concerned ("" if none).
  std::string reason;
};

// Where a damaged file version shows: the tree at the end of a state.
struct AffectedState {
  Generation state = 0;             // The state id (its first generation): "s<state>".
  Generation at = 0;                // Its last generation, the tree shown.
  std::vector<std::string> paths;   // The file's paths then (several: hard links).
};

// One version of a file's content that uses damaged chunks.
struct AffectedVersion {
  Ino ino = 0;
  Generation content_gen = 0;        // The generation that wrote the content.
  Generation current_from = 0;       // Generations in which the inode had this
  Generation current_to = 0;         // content (to: kLatest if it still has).
  std::vector<ChunkId> chunks;       // The damaged or missing chunks it uses.
  std::vector<AffectedState> states; // The states whose tree shows it, oldest first.
  std::vector<std::string> live_paths;  // Its paths in the live (newest) tree; empty if not there.
};

struct CheckReport {
  bool quick = false;
  Generation latest = 0;
  uint64_t generations = 0;    // Log records.
  uint64_t states = 0;
  uint64_t inodes = 0;         // Distinct inodes.
  uint64_t inode_records = 0;
  uint64_t dirent_records = 0;
  uint64_t extent_pages = 0;
  uint64_t extents = 0;        // Chunk references.
  uint64_t chunks = 0;         // Index entries.
  uint64_t chunks_verified = 0;
  uint64_t stored_bytes = 0;   // Of the indexed chunks.
  uint64_t raw_bytes = 0;
  uint64_t unreferenced_chunks = 0;  // Indexed but used by no version (GC reclaims them).

  std::vector<DamagedChunk> damaged;       // Sorted by id.
  std::vector<MetadataProblem> problems;
  std::vector<AffectedVersion> affected;   // Sorted by (ino, content_gen).

  bool clean() const { return damaged.empty() && problems.empty(); }
};

// Checks `store`. The report lists the damage; the Status is an error only
// when the check itself could not run to the end (RocksDB reports its own
// files corrupt: kCorruption; an I/O error: kIo).
Result<CheckReport> CheckStore(Store& store, const CheckOptions& options);

}  // namespace snapfs::store
