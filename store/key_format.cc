#include "store/key_format.h"

#include <cstring>

namespace snapfs::store {
namespace {

constexpr uint8_t kRecordVersion = 1;

class Writer {
 public:
  explicit Writer(size_t reserve = 64) { s_.reserve(reserve); }
  Writer& U8(uint8_t v) { s_.push_back(static_cast<char>(v)); return *this; }
  Writer& U32(uint32_t v) {
    for (int i = 3; i >= 0; --i) U8(static_cast<uint8_t>(v >> (8 * i)));
    return *this;
  }
  Writer& U64(uint64_t v) {
    for (int i = 7; i >= 0; --i) U8(static_cast<uint8_t>(v >> (8 * i)));
    return *this;
  }
  Writer& I64(int64_t v) { return U64(static_cast<uint64_t>(v)); }
  Writer& Varint(uint64_t v) {
    while (v >= 0x80) {
      U8(static_cast<uint8_t>(v | 0x80));
      v >>= 7;
    }
    return U8(static_cast<uint8_t>(v));
  }
  Writer& Bytes(std::string_view b) { s_.append(b); return *this; }
  Writer& Lpstr(std::string_view b) { return Varint(b.size()).Bytes(b); }
  std::string Take() { return std::move(s_); }

 private:
  std::string s_;
};

// Reads fields in order; the first short read makes every later call fail,
// so a decoder checks ok() once at the end.
class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  uint8_t U8() {
    if (!Need(1)) return 0;
    uint8_t v = static_cast<uint8_t>(s_[0]);
    s_.remove_prefix(1);
    return v;
  }
  uint32_t U32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | U8();
    return v;
  }
  uint64_t U64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | U8();
    return v;
  }
  int64_t I64() { return static_cast<int64_t>(U64()); }
  // Only the shortest form is accepted (a last byte of 0 after others is
  // padding no writer emits): then one bit flip in a continuation bit cannot
  // re-align the fields that follow into another valid value.
  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t b = U8();
      if (!ok_) return 0;
      if (shift == 63 && b > 1) break;  // Overflows 64 bits.
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        if (b == 0 && shift > 0) break;  // Not the shortest form.
        return v;
      }
    }
    ok_ = false;
    return 0;
  }
  std::string_view Bytes(size_t n) {
    if (!Need(n)) return {};
    std::string_view v = s_.substr(0, n);
    s_.remove_prefix(n);
    return v;
  }
  std::string Lpstr() {
    uint64_t n = Varint();
    if (n > s_.size()) ok_ = false;
    return std::string(Bytes(ok_ ? n : 0));
  }
  bool ok() const { return ok_; }
  bool done() const { return ok_ && s_.empty(); }
  size_t remaining() const { return s_.size(); }

 private:
  bool Need(size_t n) {
    if (!ok_ || s_.size() < n) {
      ok_ = false;
      return false;
    }
    return true;
  }
  std::string_view s_;
  bool ok_ = true;
};

Status Bad(std::string_view what, std::string_view key) {
  return Status::Corruption(std::string(what) + " at key " + HexBytes(key));
}

// Checks the record version and returns a reader positioned after it.
Result<Reader> OpenValue(std::string_view value, std::string_view what,
                         std::string_view key) {
  Reader r(value);
  uint8_t rv = r.U8();
  if (!r.ok()) return Bad(std::string("empty ") + std::string(what), key);
  if (rv != kRecordVersion)
    return Bad(std::string(what) + " has unknown record version " + std::to_string(rv), key);
  return r;
}

Status Finish(const Reader& r, std::string_view what, std::string_view key) {
  if (!r.ok()) return Bad(std::string("truncated ") + std::string(what), key);
  if (!r.done()) return Bad(std::string("trailing bytes in ") + std::string(what), key);
  return Status::Ok();
}

bool ValidCodec(uint8_t c) {
  return c == static_cast<uint8_t>(Codec::kRaw) || c == static_cast<uint8_t>(Codec::kZstd) ||
         c == static_cast<uint8_t>(Codec::kZstdDelta);
}

}  // namespace

const char* OpName(Op op) {
  switch (op) {
    case Op::kCreate: return "create";
    case Op::kMkdir: return "mkdir";
    case Op::kSymlink: return "symlink";
    case Op::kMknod: return "mknod";
    case Op::kLink: return "link";
    case Op::kWrite: return "write";
    case Op::kTruncate: return "truncate";
    case Op::kSetattr: return "setattr";
    case Op::kUnlink: return "unlink";
    case Op::kRmdir: return "rmdir";
    case Op::kRename: return "rename";
    case Op::kInit: return "init";
  }
  return "?";
}

std::string HexBytes(std::string_view bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

namespace keys {

std::string Chunk(const ChunkId& id) {
  return std::string(reinterpret_cast<const char*>(id.bytes.data()), id.bytes.size());
}
std::string Inode(Ino ino, Generation g) { return Writer(16).U64(ino).U64(~g).Take(); }
std::string InodePrefix(Ino ino) { return Writer(8).U64(ino).Take(); }
std::string Dirent(Ino parent, std::string_view name, Generation g) {
  return Writer(17 + name.size()).U64(parent).Bytes(name).U8(0).U64(~g).Take();
}
std::string DirentPrefix(Ino parent) { return Writer(8).U64(parent).Take(); }
std::string DirentAfterName(Ino parent, std::string_view name) {
  return Writer(9 + name.size()).U64(parent).Bytes(name).U8(1).Take();
}
std::string ExtentPage(Ino ino, Generation g, uint32_t page) {
  return Writer(20).U64(ino).U64(g).U32(page).Take();
}
std::string Log(Generation g) { return Writer(8).U64(g).Take(); }
std::string State(Generation first_gen) { return Writer(8).U64(first_gen).Take(); }
std::string Time(int64_t time_ns, Generation g) { return Writer(16).I64(time_ns).U64(g).Take(); }
std::string DirLog(Ino parent, Generation g, std::string_view name) {
  return Writer(16 + name.size()).U64(parent).U64(g).Bytes(name).Take();
}
std::string DirSnap(Ino parent, Generation g, uint32_t page) {
  return Writer(20).U64(parent).U64(~g).U32(page).Take();
}
std::string InoPrefix(Ino ino) { return Writer(8).U64(ino).Take(); }

Result<DecodedTimeKey> DecodeTime(std::string_view key) {
  if (key.size() != 16) return Bad("malformed times key", key);
  Reader r(key);
  DecodedTimeKey k;
  k.time_ns = r.I64();
  k.gen = r.U64();
  return k;
}

Result<DecodedDirLogKey> DecodeDirLog(std::string_view key) {
  if (key.size() < 17 || key.size() > 16 + kMaxNameLength) return Bad("malformed dirlog key", key);
  Reader r(key);
  DecodedDirLogKey k;
  k.parent = r.U64();
  k.gen = r.U64();
  k.name = std::string(r.Bytes(key.size() - 16));
  if (k.name.find('\0') != std::string::npos || k.name.find('/') != std::string::npos)
    return Bad("dirlog key with an impossible name", key);
  return k;
}

Result<DecodedDirSnapKey> DecodeDirSnap(std::string_view key) {
  if (key.size() != 20) return Bad("malformed dirsnaps key", key);
  Reader r(key);
  DecodedDirSnapKey k;
  k.parent = r.U64();
  k.gen = ~r.U64();
  k.page = r.U32();
  return k;
}

std::string Hold(uint64_t id) { return Writer(13).Bytes(kHoldPrefix).U64(id).Take(); }

std::string Settle(const ChunkId& id) {
  return Writer(kSettlePrefix.size() + 16).Bytes(kSettlePrefix).Bytes(Chunk(id)).Take();
}

Result<DecodedInodeKey> DecodeInode(std::string_view key) {
  if (key.size() != 16) return Bad("malformed inode key", key);
  Reader r(key);
  DecodedInodeKey k;
  k.ino = r.U64();
  k.gen = ~r.U64();
  return k;
}

Result<DecodedDirentKey> DecodeDirent(std::string_view key) {
  // parent(8) name(>=1) 0x00 ~g(8)
  if (key.size() < 18 || key[key.size() - 9] != '\0') return Bad("malformed dirent key", key);
  Reader r(key);
  DecodedDirentKey k;
  k.parent = r.U64();
  k.name = std::string(r.Bytes(key.size() - 17));
  if (k.name.find('\0') != std::string::npos || k.name.find('/') != std::string::npos)
    return Bad("dirent key with an impossible name", key);
  r.U8();
  k.gen = ~r.U64();
  return k;
}

Result<DecodedExtentKey> DecodeExtentPage(std::string_view key) {
  if (key.size() != 20) return Bad("malformed extent key", key);
  Reader r(key);
  DecodedExtentKey k;
  k.ino = r.U64();
  k.gen = r.U64();
  k.page = r.U32();
  return k;
}

Result<Generation> DecodeGeneration(std::string_view key) {
  if (key.size() != 8) return Bad("malformed generation key", key);
  return Reader(key).U64();
}

Result<ChunkId> DecodeChunk(std::string_view key) {
  if (key.size() != 16) return Bad("malformed chunk key", key);
  return ChunkId::FromBytes(reinterpret_cast<const uint8_t*>(key.data()));
}

Result<uint64_t> DecodeHold(std::string_view key) {
  if (key.size() != kHoldPrefix.size() + 8 || !key.starts_with(kHoldPrefix))
    return Bad("malformed hold key", key);
  return Reader(key.substr(kHoldPrefix.size())).U64();
}

Result<ChunkId> DecodeSettle(std::string_view key) {
  if (key.size() != kSettlePrefix.size() + 16 || !key.starts_with(kSettlePrefix))
    return Bad("malformed settle key", key);
  return DecodeChunk(key.substr(kSettlePrefix.size()));
}

}  // namespace keys

// Record version 2 is a delta's location: version 1 plus the base id. The
// version follows from the codec, so each location has one encoding.
std::string EncodeChunkLocation(const ChunkLocation& v) {
  const bool delta = v.codec == Codec::kZstdDelta;
  Writer w(38);
  w.U8(delta ? 2 : 1).U8(static_cast<uint8_t>(v.codec)).U32(v.raw_len)
      .U32(v.stored_len).U32(v.pack).U64(v.offset);
  if (delta) w.Bytes(std::string_view(reinterpret_cast<const char*>(v.base.bytes.data()), 16));
  return w.Take();
}

Result<ChunkLocation> DecodeChunkLocation(std::string_view value, std::string_view key) {
  Reader r(value);
  const uint8_t rv = r.U8();
  if (!r.ok()) return Bad("empty chunk location", key);
  if (rv != 1 && rv != 2)
    return Bad("chunk location has unknown record version " + std::to_string(rv), key);
  ChunkLocation v;
  uint8_t codec = r.U8();
  v.raw_len = r.U32();
  v.stored_len = r.U32();
  v.pack = r.U32();
  v.offset = r.U64();
  if (rv == 2) {
    std::string_view base = r.Bytes(16);
    if (r.ok()) std::memcpy(v.base.bytes.data(), base.data(), 16);
  }
  SNAPFS_RETURN_IF_ERROR(Finish(r, "chunk location", key));
  if (!ValidCodec(codec)) return Bad("chunk location with unknown codec", key);
  v.codec = static_cast<Codec>(codec);
  // A delta without its base cannot be decoded; a base on another codec is
  // something no writer emits.
  if ((v.codec == Codec::kZstdDelta) != (rv == 2))
    return Bad("chunk location: codec " + std::to_string(codec) + " in record version " +
                   std::to_string(rv),
               key);
  return v;
}

std::string EncodeInodeRecord(const InodeRecord& v) {
  return Writer(80 + v.symlink.size())
      .U8(kRecordVersion).U8(static_cast<uint8_t>(v.op)).U32(v.mode).U32(v.uid).U32(v.gid)
      .U32(v.nlink).U64(v.size).I64(v.atime_ns).I64(v.mtime_ns).I64(v.ctime_ns).U64(v.rdev)
      .U64(v.content_gen).U32(v.pages).Lpstr(v.symlink).Take();
}

Result<InodeRecord> DecodeInodeRecord(std::string_view value, std::string_view key) {
  SNAPFS_ASSIGN_OR_RETURN(Reader r, OpenValue(value, "inode record", key));
  InodeRecord v;
  v.op = static_cast<Op>(r.U8());
  v.mode = r.U32();
  v.uid = r.U32();
  v.gid = r.U32();
  v.nlink = r.U32();
  v.size = r.U64();
  v.atime_ns = r.I64();
  v.mtime_ns = r.I64();
  v.ctime_ns = r.I64();
  v.rdev = r.U64();
  v.content_gen = r.U64();
  v.pages = r.U32();
  v.symlink = r.Lpstr();
  SNAPFS_RETURN_IF_ERROR(Finish(r, "inode record", key));
  return v;
}

std::string EncodeDirentRecord(const DirentRecord& v) {
  return Writer(10).U8(kRecordVersion).U64(v.child).U8(v.type).Take();
}

Result<DirentRecord> DecodeDirentRecord(std::string_view value, std::string_view key) {
  SNAPFS_ASSIGN_OR_RETURN(Reader r, OpenValue(value, "dirent record", key));
  DirentRecord v;
  v.child = r.U64();
  v.type = r.U8();
  SNAPFS_RETURN_IF_ERROR(Finish(r, "dirent record", key));
  return v;
}

std::string EncodeLogRecord(const LogRecord& v) {
  return Writer(64 + v.name.size() + v.name2.size())
      .U8(kRecordVersion).I64(v.time_ns).U8(static_cast<uint8_t>(v.op)).U64(v.ino)
      .U64(v.parent).Lpstr(v.name).U64(v.parent2).Lpstr(v.name2).U64(v.size)
      .U64(v.bytes_written).U64(v.bytes_stored).Take();
}

Result<LogRecord> DecodeLogRecord(std::string_view value, std::string_view key) {
  SNAPFS_ASSIGN_OR_RETURN(Reader r, OpenValue(value, "log record", key));
  LogRecord v;
  v.time_ns = r.I64();
  v.op = static_cast<Op>(r.U8());
  v.ino = r.U64();
  v.parent = r.U64();
  v.name = r.Lpstr();
  v.parent2 = r.U64();
  v.name2 = r.Lpstr();
  v.size = r.U64();
  v.bytes_written = r.U64();
  v.bytes_stored = r.U64();
  SNAPFS_RETURN_IF_ERROR(Finish(r, "log record", key));
  return v;
}

std::string EncodeStateRecord(const StateRecord& v) {
  Writer w(80);
  w.U8(v.has_totals ? 2 : kRecordVersion).U64(v.last_gen).I64(v.start_ns).I64(v.end_ns)
      .U64(v.changes).U64(v.files_changed).U64(v.bytes_written).U64(v.bytes_stored);
  if (v.has_totals) w.U64(v.tree_files).U64(v.tree_bytes);
  return w.Take();
}

Result<StateRecord> DecodeStateRecord(std::string_view value, std::string_view key) {
  // Record version 2 adds the tree totals; version 1 has none.
  Reader r(value);
  const uint8_t rv = r.U8();
  if (!r.ok()) return Bad("empty state record", key);
  if (rv != 1 && rv != 2)
    return Bad("state record has unknown record version " + std::to_string(rv), key);
  StateRecord v;
  v.last_gen = r.U64();
  v.start_ns = r.I64();
  v.end_ns = r.I64();
  v.changes = r.U64();
  v.files_changed = r.U64();
  v.bytes_written = r.U64();
  v.bytes_stored = r.U64();
  if (rv == 2) {
    v.has_totals = true;
    v.tree_files = r.U64();
    v.tree_bytes = r.U64();
  }
  SNAPFS_RETURN_IF_ERROR(Finish(r, "state record", key));
  SNAPFS_ASSIGN_OR_RETURN(v.first_gen, keys::DecodeGeneration(key));
  return v;
}

std::string EncodeIndexMark() { return Writer(1).U8(kRecordVersion).Take(); }

Status DecodeIndexMark(std::string_view value, std::string_view key) {
  SNAPFS_ASSIGN_OR_RETURN(Reader r, OpenValue(value, "index entry", key));
  return Finish(r, "index entry", key);
}

std::string EncodeDirSnapPage(std::span<const std::string> names) {
  size_t bytes = 8;
  for (const auto& n : names) bytes += n.size() + 2;
  Writer w(bytes);
  w.U8(kRecordVersion).Varint(names.size());
  for (const auto& n : names) w.Lpstr(n);
  return w.Take();
}

Status DecodeDirSnapPage(std::string_view value, std::string_view key,
                         std::vector<std::string>* out) {
  SNAPFS_ASSIGN_OR_RETURN(Reader r, OpenValue(value, "directory snapshot", key));
  const uint64_t count = r.Varint();
  // Each name takes at least two bytes: a count beyond that is damage, not
  // a reason to reserve memory.
  if (!r.ok() || count > r.remaining() / 2 + 1) return Bad("malformed directory snapshot", key);
  for (uint64_t i = 0; i < count && r.ok(); ++i) {
    std::string name = r.Lpstr();
    if (!r.ok() || name.empty() || name.size() > kMaxNameLength ||
        name.find('\0') != std::string::npos || name.find('/') != std::string::npos)
      return Bad("directory snapshot with an impossible name", key);
    out->push_back(std::move(name));
  }
  return Finish(r, "directory snapshot", key);
}

std::string EncodeHoldRecord(const HoldRecord& v) {
  return Writer(48 + v.reason.size())
      .U8(kRecordVersion).U64(v.state).U8(static_cast<uint8_t>(v.kind)).I64(v.created_ns)
      .I64(v.until_ns).I64(v.released_ns).Lpstr(v.reason).Take();
}

Result<HoldRecord> DecodeHoldRecord(std::string_view value, std::string_view key) {
  SNAPFS_ASSIGN_OR_RETURN(Reader r, OpenValue(value, "hold record", key));
  HoldRecord v;
  v.state = r.U64();
  const uint8_t kind = r.U8();
  v.created_ns = r.I64();
  v.until_ns = r.I64();
  v.released_ns = r.I64();
  v.reason = r.Lpstr();
  SNAPFS_RETURN_IF_ERROR(Finish(r, "hold record", key));
  if (kind != static_cast<uint8_t>(HoldKind::kUser) && kind != static_cast<uint8_t>(HoldKind::kGuard))
    return Bad("hold record with unknown kind " + std::to_string(kind), key);
  v.kind = static_cast<HoldKind>(kind);
  SNAPFS_ASSIGN_OR_RETURN(v.id, keys::DecodeHold(key));
  return v;
}

std::string EncodeMetaU32(uint32_t v) { return Writer(4).U32(v).Take(); }
std::string EncodeMetaU64(uint64_t v) { return Writer(8).U64(v).Take(); }

std::string EncodeSettleRecord(const SettleRecord& r) {
  Writer w(24);
  w.U64(r.gen);
  if (r.hint) w.Bytes(keys::Chunk(*r.hint));
  return w.Take();
}

Result<SettleRecord> DecodeSettleRecord(std::string_view value, std::string_view key) {
  if (value.size() != 8 && value.size() != 24) return Bad("settle value is not 8 or 24 bytes", key);
  SettleRecord r;
  r.gen = Reader(value.substr(0, 8)).U64();
  if (value.size() == 24) {
    SNAPFS_ASSIGN_OR_RETURN(ChunkId hint, keys::DecodeChunk(value.substr(8)));
    r.hint = hint;
  }
  return r;
}

Result<uint32_t> DecodeMetaU32(std::string_view value, std::string_view key) {
  if (value.size() != 4) return Bad("meta value is not 4 bytes", key);
  return Reader(value).U32();
}

Result<uint64_t> DecodeMetaU64(std::string_view value, std::string_view key) {
  if (value.size() != 8) return Bad("meta value is not 8 bytes", key);
  return Reader(value).U64();
}

std::string EncodeMetaChunker(const ChunkerParams& p) {
  return Writer(12).U32(p.min_size).U32(p.avg_size).U32(p.max_size).Take();
}

Result<ChunkerParams> DecodeMetaChunker(std::string_view value, std::string_view key) {
  if (value.size() != 12) return Bad("meta value is not 12 bytes", key);
  Reader r(value);
  ChunkerParams p;
  p.min_size = r.U32();
  p.avg_size = r.U32();
  p.max_size = r.U32();
  if (Status st = Chunker::Validate(p); !st.ok()) return Bad(st.message(), key);
  return p;
}

std::string EncodeExtentPage(std::span<const Extent> extents, uint64_t prev_end) {
  Writer w(8 + extents.size() * 24);
  w.U8(kRecordVersion).Varint(extents.size());
  for (const Extent& e : extents) {
    w.Varint(e.offset - prev_end).Varint(e.length).Varint(e.chunk_offset);
    w.Bytes(std::string_view(reinterpret_cast<const char*>(e.id.bytes.data()), 16));
    prev_end = e.end();
  }
  return w.Take();
}

Result<uint64_t> DecodeExtentPage(std::string_view value, std::string_view key,
                                  uint64_t prev_end, std::vector<Extent>* out) {
  SNAPFS_ASSIGN_OR_RETURN(Reader r, OpenValue(value, "extent page", key));
  uint64_t count = r.Varint();
  // Each extent takes at least 19 bytes: refuse absurd counts before reserving.
  if (!r.ok() || count > kExtentsPerPage || count * 19 > r.remaining())
    return Bad("extent page with a bad count", key);
  out->reserve(out->size() + count);
  for (uint64_t i = 0; i < count; ++i) {
    Extent e;
    uint64_t gap = r.Varint();
    uint64_t length = r.Varint();
    uint64_t chunk_offset = r.Varint();
    std::string_view id = r.Bytes(16);
    if (!r.ok()) break;
    if (length == 0 || length > UINT32_MAX || chunk_offset > UINT32_MAX ||
        gap > UINT64_MAX - prev_end || length > UINT64_MAX - prev_end - gap)
      return Bad("extent page with an impossible extent", key);
    e.offset = prev_end + gap;
    e.length = static_cast<uint32_t>(length);
    e.chunk_offset = static_cast<uint32_t>(chunk_offset);
    e.id = ChunkId::FromBytes(reinterpret_cast<const uint8_t*>(id.data()));
    prev_end = e.end();
    out->push_back(e);
  }
  SNAPFS_RETURN_IF_ERROR(Finish(r, "extent page", key));
  return prev_end;
}

}  // namespace snapfs::store
