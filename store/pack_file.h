// Pack files: append-only files that hold chunk payloads (docs/format.md,
// "Pack files"). RocksDB holds only their index, so compaction never copies
// chunk bytes and a second process can read packs while the daemon writes.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "store/chunk_id.h"
#include "store/codec.h"
#include "store/key_format.h"
#include "store/status.h"

namespace snapfs::store {

inline constexpr size_t kPackHeaderSize = 16;
inline constexpr size_t kRecordHeaderSize = 45;  // 29 fields + two 8-byte hashes.
// A kZstdDelta record also carries its base id (16 bytes after the codec).
inline constexpr size_t kDeltaRecordHeaderSize = kRecordHeaderSize + 16;
inline constexpr size_t RecordHeaderSize(Codec codec) {
  return codec == Codec::kZstdDelta ? kDeltaRecordHeaderSize : kRecordHeaderSize;
}
inline constexpr uint64_t kDefaultPackTarget = 64ull << 20;
// PackWriter syncs its packs in the background each time this many bytes
// have been appended since the last such sync (PackWriter::Open).
inline constexpr uint64_t kDefaultFlushStep = 32ull << 20;
// A commit record's header: magic, generation, length and two 8-byte hashes.
inline constexpr size_t kCommitHeaderSize = 32;

// "packs/00000042.pack" under `packs_dir`.
std::string PackPath(const std::string& packs_dir, uint32_t pack);

// Checks the 16-byte header of pack `pack` (magic, version, number) and
// returns the pack's size in bytes. Corruption names the pack when the file
// is missing, short, or its header is wrong. For checks; readers of records
// do not need it.
Result<uint64_t> VerifyPackHeader(const std::string& packs_dir, uint32_t pack);

// The pack files in `packs_dir` (names of the form NNNNNNNN.pack): number and
// size in bytes, by number. For GC (store/gc.cc).
struct PackFileInfo {
  uint32_t pack = 0;
  uint64_t size = 0;
};
Result<std::vector<PackFileInfo>> ListPacks(const std::string& packs_dir);

// Reads pack `pack` record by record and calls `fn` with the generation and
// the write batch of each commit record (docs/format.md, "Commit records"),
// in the order they were appended; chunk records are stepped over by their
// header. Stops at the first bytes that are not a whole record with intact
// hashes: the end of the pack, or a record cut short by a crash while it was
// appended. Errors only when the pack cannot be read.
Status ScanCommits(const std::string& packs_dir, uint32_t pack,
                   const std::function<void(uint64_t g, std::string batch)>& fn);

// Appends chunk records to the current pack and starts a new pack when it
// passes `target_size`. Thread-safe: appends are serialized by a mutex, and
// callers compress before calling, so only the write is under the lock.
//
// The bytes appended reach the disk early, in two steps, so that a Sync()
// finds little left to do: every 2 MiB the writer starts their disk writes
// (sync_file_range, not waiting), and every `flush_step` bytes a thread of
// the writer runs a Sync() in the background. A virtual disk whose host
// caches writes persists them only when flushed, and that costs about as
// long as writing them: a 512 MiB dump synced once at its end waited 0.35 s
// for it, against 0.03 s with a flush every 32 MiB on the way
// (docs/performance.md, session 14).
class PackWriter {
 public:
  // Opens a new pack numbered one past the highest in `packs_dir`.
  // `flush_step` 0: no background syncs.
  static Result<std::unique_ptr<PackWriter>> Open(std::string packs_dir,
                                                  uint64_t target_size = kDefaultPackTarget,
                                                  uint64_t flush_step = kDefaultFlushStep);
  ~PackWriter();  // Stops the background syncs (waits for one in progress).

  // Appends one record; `base` is written (and returned in the location)
  // for Codec::kZstdDelta only. On failure (ENOSPC: kNoSpace) the pack is cut
  // back to where it was, so a later append succeeds once there is room again.
  Result<ChunkLocation> Append(const ChunkId& id, Codec codec, uint32_t raw_len,
                               std::string_view payload, const ChunkId& base = ChunkId{});
  // A record for AppendChunks: Append's arguments.
  struct ChunkRecord {
    const ChunkId& id;
    Codec codec;
    uint32_t raw_len;
    std::string_view payload;
    const ChunkId& base;
  };
  static constexpr size_t kMaxAppendBatch = 32;
  // Appends up to kMaxAppendBatch records one after the other, in one write
  // (a write per record costs about a third more per byte for 72 KiB records:
  // docs/performance.md, session 15), and sets locs[i] to where records[i]
  // went. All or none: on failure the pack is cut back as by Append().
  Status AppendChunks(std::span<const ChunkRecord> records, ChunkLocation* locs);
  // Appends a commit record: generation `g`'s write batch, as RocksDB encodes
  // it. Fails and leaves the pack as it was like Append().
  Status AppendCommit(uint64_t g, std::string_view batch);
  // fdatasync every pack appended to since the last Sync; returns once they
  // are durable. Concurrent callers share one sync. A background sync that
  // failed since the last Sync() fails this one too: its fdatasync reported
  // the error to the writer's thread only, and the kernel would not again.
  Status Sync();
  // Background syncs done so far.
  uint64_t background_syncs();
  // The number of the pack appends go to now (GC never touches it or later).
  uint32_t current_pack();
  // Starts the next pack if the current one holds a record, so that GC may
  // collect the current one.
  Status Rollover();

 private:
  PackWriter(std::string packs_dir, uint64_t target_size, uint64_t flush_step);
  Status StartPack(uint32_t number);  // mu_ held.
  void FlushLoop();  // The background syncs' thread.
  // Appends `parts` one after the other (one or more whole records);
  // returns the pack and the offset of the first.
  Result<std::pair<uint32_t, uint64_t>> AppendParts(std::span<const std::string_view> parts);
  struct WritebackRange {
    int fd = -1;
    uint64_t offset = 0;
    uint64_t len = 0;
  };
  // Starts (does not wait for) the disk writes of a range of a pack.
  void StartWriteback(const WritebackRange& r);

  const std::string dir_;
  const uint64_t target_size_;
  std::mutex mu_;
  int fd_ = -1;
  uint32_t pack_ = 0;
  uint64_t end_ = 0;
  uint64_t written_back_ = 0;  // The current pack's bytes whose writeback was started.
  std::vector<int> unsynced_;  // fds appended to since the last sync; we own them.
  std::mutex sync_mu_;

  const uint64_t flush_step_;
  std::condition_variable flush_cv_;
  uint64_t since_flush_ = 0;    // mu_: bytes appended since the last background sync began.
  uint64_t flushes_ = 0;        // mu_: background syncs done.
  Status flush_error_;          // mu_: a background sync's failure, for the next Sync().
  bool stopping_ = false;       // mu_
  std::thread flusher_;         // Runs FlushLoop when flush_step_ > 0.
};

// Reads and verifies records. Keeps read-only fds of the packs it read last,
// at most `max_open` of them (a store grows by a pack per 64 MiB, for years:
// one fd per pack would run into the process's open-file limit). Thread-safe.
class PackReader {
 public:
  static constexpr size_t kDefaultMaxOpen = 128;
  explicit PackReader(std::string packs_dir, size_t max_open = kDefaultMaxOpen);
  ~PackReader();
  // The verified payload of the record at `loc`, which must hold chunk `id`.
  // Corruption names the chunk, pack and offset when the header, its hash,
  // the id, the base id (kZstdDelta) or the payload hash do not match. NotFound if the pack file does
  // not exist (GC may have removed it after moving its records: the caller
  // looks the chunk up again). A pack that cannot be opened because the
  // process is out of file descriptors is retried once after closing the
  // idle ones.
  Result<std::string> Read(const ChunkId& id, const ChunkLocation& loc);
  // Closes the fd of `pack` (GC removed it); reads in progress keep theirs.
  void Forget(uint32_t pack);
  // Closes the fds of packs that were removed (link count 0), so a reader
  // does not keep their disk space.
  void ForgetRemoved();
  // How many pack fds are kept open now (reads in progress may hold more).
  size_t open_count();

 private:
  struct OpenPack;  // Closes its fd when the last user lets go.
  struct Kept {
    std::shared_ptr<OpenPack> pack;
    uint64_t last_use = 0;
  };
  Result<std::shared_ptr<OpenPack>> Fd(uint32_t pack);
  const std::string dir_;
  const size_t max_open_;
  std::mutex mu_;
  std::map<uint32_t, Kept> fds_;
  uint64_t uses_ = 0;  // Ticks of Fd(), for last_use.
};

namespace pack_testing {
// While set, every fdatasync of a pack fails with EIO instead of syncing: a
// disk that lost a write. For tests.
void SetFailSyncs(bool fail);
}  // namespace pack_testing

}  // namespace snapfs::store
