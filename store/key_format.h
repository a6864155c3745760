// Every RocksDB key and value snapfs writes, encoded and decoded in one
// place. docs/format.md describes each layout byte by byte; keep the two in
// step (tests/store/key_format_test.cc pins the bytes).
//
// Decoders never trust their input: a short, long or unknown-version value is
// a Corruption status that names the key (as hex) it came from.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store/chunk_id.h"
#include "store/chunker.h"
#include "store/codec.h"
#include "store/status.h"

namespace snapfs::store {

using Generation = uint64_t;
using Ino = uint64_t;

inline constexpr uint32_t kFormatVersion = 2;
// The oldest format this version reads; a read-write open upgrades it
// (docs/format.md, "Format versions").
inline constexpr uint32_t kOldestFormatVersion = 1;
inline constexpr Ino kRootIno = 1;
inline constexpr Generation kLatest = UINT64_MAX;   // "the newest committed"
inline constexpr size_t kExtentsPerPage = 4096;
inline constexpr size_t kMaxNameLength = 255;

// What a generation did (docs/format.md, "Ops").
enum class Op : uint8_t {
  kCreate = 1, kMkdir = 2, kSymlink = 3, kMknod = 4, kLink = 5, kWrite = 6,
  kTruncate = 7, kSetattr = 8, kUnlink = 9, kRmdir = 10, kRename = 11,
  kInit = 12,
};
const char* OpName(Op op);  // "create", "write", ...; "?" for unknown.

// Column family names, in the order the store opens them.
inline constexpr const char* kCfMeta = "default";
inline constexpr const char* kCfChunks = "chunks";
inline constexpr const char* kCfInodes = "inodes";
inline constexpr const char* kCfDirents = "dirents";
inline constexpr const char* kCfExtents = "extents";
inline constexpr const char* kCfLog = "log";
inline constexpr const char* kCfStates = "states";
// Indexes that keep lookups by time and directory listings independent of
// the history's length (docs/format.md, "Indexes"); a store made before
// they existed gets them at its next read-write open.
inline constexpr const char* kCfTimes = "times";
inline constexpr const char* kCfDirLog = "dirlog";
inline constexpr const char* kCfDirSnaps = "dirsnaps";

// Where a chunk's pack record is. Record version 1 for codecs 0 and 1;
// version 2 (codec kZstdDelta only) adds the base chunk's id, so GC and
// checks know a chunk's base without reading its pack.
struct ChunkLocation {
  Codec codec = Codec::kRaw;
  uint32_t raw_len = 0;
  uint32_t stored_len = 0;
  uint32_t pack = 0;
  uint64_t offset = 0;
  ChunkId base{};  // kZstdDelta: the chunk decoding needs (never itself a delta). Else zero.
  bool operator==(const ChunkLocation&) const = default;
};

struct InodeRecord {
  Op op = Op::kCreate;
  uint32_t mode = 0;  // POSIX type | permission bits.
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t nlink = 0;
  uint64_t size = 0;
  int64_t atime_ns = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  uint64_t rdev = 0;
  Generation content_gen = 0;  // 0: no extent pages.
  uint32_t pages = 0;
  std::string symlink;
  bool operator==(const InodeRecord&) const = default;
};

struct DirentRecord {
  Ino child = 0;     // 0: tombstone, the name is absent.
  uint8_t type = 0;  // mode >> 12 of the child.
  bool operator==(const DirentRecord&) const = default;
};

// A run of file bytes [offset, offset + length) stored as bytes
// [chunk_offset, chunk_offset + length) of chunk `id`.
struct Extent {
  uint64_t offset = 0;
  uint32_t length = 0;
  uint32_t chunk_offset = 0;
  ChunkId id;
  uint64_t end() const { return offset + length; }
  bool operator==(const Extent&) const = default;
};

struct LogRecord {
  int64_t time_ns = 0;
  Op op = Op::kCreate;
  Ino ino = 0;
  Ino parent = 0;
  std::string name;
  Ino parent2 = 0;
  std::string name2;
  uint64_t size = 0;
  uint64_t bytes_written = 0;
  uint64_t bytes_stored = 0;
  bool operator==(const LogRecord&) const = default;
};

struct StateRecord {
  Generation first_gen = 0;  // The key; not in the value.
  Generation last_gen = 0;
  int64_t start_ns = 0;
  int64_t end_ns = 0;
  uint64_t changes = 0;
  uint64_t files_changed = 0;
  uint64_t bytes_written = 0;
  uint64_t bytes_stored = 0;
  // Record version 2 (docs/format.md): the present tree at the state's end,
  // counted by Commit. Version 1 records (older stores) have no totals.
  bool has_totals = false;
  uint64_t tree_files = 0;  // Regular files (inodes with nlink > 0).
  uint64_t tree_bytes = 0;  // Sum of their sizes.
  bool operator==(const StateRecord&) const = default;
};

// A hold pins a state against pruning (docs/retention.md). Kept in the meta
// family under keys::Hold(id); a released hold stays as a record (released_ns
// set) so that the guard does not hold the same state again.
enum class HoldKind : uint8_t { kUser = 1, kGuard = 2 };
struct HoldRecord {
  uint64_t id = 0;             // The key; not in the value.
  Generation state = 0;        // The state's id (its first generation).
  HoldKind kind = HoldKind::kUser;
  int64_t created_ns = 0;
  int64_t until_ns = 0;        // 0: until released.
  int64_t released_ns = 0;     // 0: not released.
  std::string reason;
  bool operator==(const HoldRecord&) const = default;
};

namespace keys {
std::string Chunk(const ChunkId& id);
std::string Inode(Ino ino, Generation g);
std::string InodePrefix(Ino ino);
std::string Dirent(Ino parent, std::string_view name, Generation g);
std::string DirentPrefix(Ino parent);
// The smallest key after every version of `name` in `parent`.
std::string DirentAfterName(Ino parent, std::string_view name);
std::string ExtentPage(Ino ino, Generation g, uint32_t page);
std::string Log(Generation g);
std::string State(Generation first_gen);
// times: u64 time, u64 g. Generations in time order.
std::string Time(int64_t time_ns, Generation g);
// dirlog: u64 parent, u64 g, name. Which names of `parent` changed at g.
std::string DirLog(Ino parent, Generation g, std::string_view name);
// dirsnaps: u64 parent, u64 ~g, u32 page. The names of `parent` as of g.
std::string DirSnap(Ino parent, Generation g, uint32_t page);
std::string InoPrefix(Ino ino);  // The 8-byte prefix of every key of `ino`.
// Meta keys of holds: "hold:" then u64 id; every hold key starts with kHoldPrefix.
inline constexpr std::string_view kHoldPrefix = "hold:";
// Meta keys of the retention policy: min_retention (u64 ns), guard_share (u32 percent).
inline constexpr const char* kMinRetention = "min_retention";
// The first pack that may hold commit records the log lacks (u32; docs/format.md).
inline constexpr const char* kReplayFrom = "replay_from";
inline constexpr const char* kGuardShare = "guard_share";
std::string Hold(uint64_t id);
Result<uint64_t> DecodeHold(std::string_view key);
// Meta keys of deferred chunks (stored uncompressed, to be compressed by
// Store::Settle): "settle:" then the 16-byte chunk id.
inline constexpr std::string_view kSettlePrefix = "settle:";
std::string Settle(const ChunkId& id);
Result<ChunkId> DecodeSettle(std::string_view key);

struct DecodedInodeKey { Ino ino; Generation gen; };
struct DecodedDirentKey { Ino parent; std::string name; Generation gen; };
struct DecodedExtentKey { Ino ino; Generation gen; uint32_t page; };
Result<DecodedInodeKey> DecodeInode(std::string_view key);
Result<DecodedDirentKey> DecodeDirent(std::string_view key);
Result<DecodedExtentKey> DecodeExtentPage(std::string_view key);
Result<Generation> DecodeGeneration(std::string_view key);  // log and states keys.
Result<ChunkId> DecodeChunk(std::string_view key);
struct DecodedTimeKey { int64_t time_ns; Generation gen; };
struct DecodedDirLogKey { Ino parent; Generation gen; std::string name; };
struct DecodedDirSnapKey { Ino parent; Generation gen; uint32_t page; };
Result<DecodedTimeKey> DecodeTime(std::string_view key);
Result<DecodedDirLogKey> DecodeDirLog(std::string_view key);
Result<DecodedDirSnapKey> DecodeDirSnap(std::string_view key);
}  // namespace keys

std::string EncodeChunkLocation(const ChunkLocation& v);
Result<ChunkLocation> DecodeChunkLocation(std::string_view value, std::string_view key);
std::string EncodeInodeRecord(const InodeRecord& v);
Result<InodeRecord> DecodeInodeRecord(std::string_view value, std::string_view key);
std::string EncodeDirentRecord(const DirentRecord& v);
Result<DirentRecord> DecodeDirentRecord(std::string_view value, std::string_view key);
std::string EncodeLogRecord(const LogRecord& v);
Result<LogRecord> DecodeLogRecord(std::string_view value, std::string_view key);
std::string EncodeStateRecord(const StateRecord& v);
// Writes record version 2 when v.has_totals, else version 1; reads both.
Result<StateRecord> DecodeStateRecord(std::string_view value, std::string_view key);
std::string EncodeHoldRecord(const HoldRecord& v);
Result<HoldRecord> DecodeHoldRecord(std::string_view value, std::string_view key);

// The value of a `times` or `dirlog` key: the record version alone.
std::string EncodeIndexMark();
Status DecodeIndexMark(std::string_view value, std::string_view key);
// One page of a directory snapshot: names in byte order. Decoding appends.
std::string EncodeDirSnapPage(std::span<const std::string> names);
Status DecodeDirSnapPage(std::string_view value, std::string_view key,
                         std::vector<std::string>* out);
inline constexpr size_t kNamesPerSnapPage = 4096;

// One page of extents. `prev_end` is the end of the extent before the page
// (0 for page 0); gaps are stored relative to it. Decoding appends to *out
// and returns the end of the page's last extent (or prev_end if empty).
std::string EncodeExtentPage(std::span<const Extent> extents, uint64_t prev_end);
Result<uint64_t> DecodeExtentPage(std::string_view value, std::string_view key,
                                  uint64_t prev_end, std::vector<Extent>* out);

// The value of a settle key: the generation whose commit indexed the chunk
// (its state's bytes_stored shrinks when the chunk is compressed) and the
// base hint the chunk was put with, if any.
struct SettleRecord {
  Generation gen = 0;
  std::optional<ChunkId> hint;
  bool operator==(const SettleRecord&) const = default;
};
std::string EncodeSettleRecord(const SettleRecord& r);
Result<SettleRecord> DecodeSettleRecord(std::string_view value, std::string_view key);

// Meta values (docs/format.md, "Meta keys"): big-endian integers of exactly
// 4 or 8 bytes. Decoding anything of another size is Corruption naming `key`.
std::string EncodeMetaU32(uint32_t v);
std::string EncodeMetaU64(uint64_t v);
Result<uint32_t> DecodeMetaU32(std::string_view value, std::string_view key);
Result<uint64_t> DecodeMetaU64(std::string_view value, std::string_view key);
// `chunker`: u32 min, u32 avg, u32 max. Corruption unless 12 bytes that pass
// Chunker::Validate.
std::string EncodeMetaChunker(const ChunkerParams& p);
Result<ChunkerParams> DecodeMetaChunker(std::string_view value, std::string_view key);

// Lowercase hex of arbitrary bytes, for naming keys in messages.
std::string HexBytes(std::string_view bytes);

}  // namespace snapfs::store
