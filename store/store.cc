#include "store/store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <rocksdb/db.h>
#include <rocksdb/convenience.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

namespace snapfs::store {
namespace {

namespace fsys = std::filesystem;

constexpr const char* kMarkerName = "SNAPFS";
constexpr const char* kMarkerText = "snapfs store\nformat 1\n";
constexpr const char* kMetaFormat = "format";
constexpr const char* kMetaSecret = "secret";
constexpr const char* kMetaCreated = "created";
constexpr const char* kMetaChunker = "chunker";
constexpr const char* kMetaZstdLevel = "zstd_level";
constexpr const char* kMetaNextIno = "next_ino";
constexpr const char* kMetaStateGap = "state_gap";

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string U32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(v >> (24 - 8 * i));
  return s;
}
std::string U64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (56 - 8 * i));
  return s;
}
uint64_t ParseBE(std::string_view s) {
  uint64_t v = 0;
  for (unsigned char c : s) v = (v << 8) | c;
  return v;
}

Status FromRocks(const rocksdb::Status& st, const std::string& what) {
  if (st.ok()) return Status::Ok();
  std::string msg = what + ": " + st.ToString();
  if (st.IsNoSpace()) return Status::NoSpace(msg);
  if (st.IsCorruption()) return Status::Corruption(msg);
  if (st.IsNotFound()) return Status::NotFound(msg);
  // RocksDB reports a held LOCK file as an IOError; only its two messages for
  // that mean busy (a path such as /data/blocks/ must not).
  const std::string text = st.ToString();
  if (st.IsIOError() && (text.find("While lock file: ") != std::string::npos ||
                         text.find("lock hold by current process") != std::string::npos))
    return Status::Busy(what + ": the store is in use by another process (is it mounted?)");
  return Status::Io(msg);
}

// Busy if another process holds RocksDB's lock on `path`/db/LOCK (a POSIX
// record lock). RocksDB renames the info log (LOG -> LOG.old.*, deleting
// the oldest) before it tries the lock, so a second opener would move the
// running daemon's log away: refuse before that.
Status CheckNotLocked(const std::string& path) {
  const std::string lock = path + "/db/LOCK";
  const int fd = ::open(lock.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Ok();  // DB::Open reports what is wrong.
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  const bool held = ::fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
  ::close(fd);
  if (held)
    return Status::Busy("open " + path + ": the store is in use by another process (pid " +
                        std::to_string(fl.l_pid) + "; is it mounted?)");
  return Status::Ok();
}

std::vector<std::string> CfNames() {
  return {kCfMeta, kCfChunks, kCfInodes, kCfDirents, kCfExtents, kCfLog, kCfStates};
}

rocksdb::ColumnFamilyOptions CfOptions(const std::string& name) {
  rocksdb::ColumnFamilyOptions o;
  // Small memtables keep the daemon's memory bounded (docs/design.md).
  o.write_buffer_size = 16u << 20;
  o.max_write_buffer_number = 2;
  rocksdb::BlockBasedTableOptions t;
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  t.block_cache = nullptr;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  auto supported = rocksdb::GetSupportedCompressions();
  bool has_lz4 = std::find(supported.begin(), supported.end(), rocksdb::kLZ4Compression) !=
                 supported.end();
  // Chunk index values are random ids and locations: not worth compressing.
  o.compression = (name == kCfChunks || !has_lz4) ? rocksdb::kNoCompression
                                                   : rocksdb::kLZ4Compression;
  return o;
}

rocksdb::DBOptions DbOptions() {
  rocksdb::DBOptions o;
  o.create_if_missing = false;
  o.create_missing_column_families = false;
  o.paranoid_checks = true;
  o.max_background_jobs = 2;
  o.max_total_wal_size = 128u << 20;
  o.keep_log_file_num = 4;
  o.max_log_file_size = 8u << 20;
  o.info_log_level = rocksdb::WARN_LEVEL;
  return o;
}

Status WriteFileSynced(const std::string& path, std::string_view data, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return Status::FromErrno(errno, path);
  Status st;
  if (::write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size()) ||
      ::fsync(fd) != 0)
    st = Status::FromErrno(errno, path);
  ::close(fd);
  return st;
}

Status SyncDir(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, path);
  Status st;
  if (::fsync(fd) != 0) st = Status::FromErrno(errno, path);
  ::close(fd);
  return st;
}

// Checks that `path` is a store of our format: the marker decides.
Status CheckMarker(const std::string& path) {
  std::error_code ec;
  if (!fsys::exists(path, ec))
    return Status::NotFound("no store at " + path + "; create one with: snapfs --init " + path);
  if (!fsys::is_directory(path, ec)) return Status::Invalid(path + " is not a directory");
  std::ifstream in(path + "/" + kMarkerName);
  if (!in)
    return Status::Invalid(path + " is not a snapfs store (it has no " + kMarkerName +
                           " marker); create one with: snapfs --init DIR");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (text.rfind("snapfs store\nformat ", 0) != 0)
    return Status::Corruption(path + "/" + kMarkerName + " is damaged");
  if (text != kMarkerText)
    return Status::Version(path + " was made by an incompatible format version (" +
                           text.substr(13, text.find('\n', 13) - 13) + "; this snapfs reads format " +
                           std::to_string(kFormatVersion) + ")");
  return Status::Ok();
}

}  // namespace

Store::Store(std::string path, OpenOptions options, ChunkerParams chunker)
    : path_(std::move(path)), options_(options), chunker_(chunker) {}

Store::~Store() {
  chunks_.reset();  // Drains the compression queue first.
  // Flush the memtables so that the next open, and every read-only
  // (secondary) open, starts from table files instead of replaying the log.
  if (db_ && !options_.read_only) db_->Flush(rocksdb::FlushOptions()).PermitUncheckedError();
  for (auto* h : cfs_) db_->DestroyColumnFamilyHandle(h);
  if (db_) db_->Close().PermitUncheckedError();
  db_.reset();
  if (!secondary_dir_.empty()) {
    std::error_code ec;
    fsys::remove_all(secondary_dir_, ec);
  }
}

Status Store::Init(const std::string& path, const InitOptions& options) {
  if (options.zstd_level < 1 || options.zstd_level > 19)
    return Status::Invalid("zstd level must be 1..19");
  std::error_code ec;
  if (fsys::exists(path, ec)) {
    if (!fsys::is_directory(path, ec)) return Status::Exists(path + " exists and is not a directory");
    if (fsys::exists(path + "/" + kMarkerName, ec))
      return Status::Exists(path + " is already a snapfs store");
    if (!fsys::is_empty(path, ec))
      return Status::Exists(path + " is not empty; a new store needs an empty or new folder");
  } else if (::mkdir(path.c_str(), 0700) != 0) {
    return Status::FromErrno(errno, "create " + path);
  }
  if (::chmod(path.c_str(), 0700) != 0) return Status::FromErrno(errno, "chmod " + path);
  if (::mkdir((path + "/packs").c_str(), 0700) != 0)
    return Status::FromErrno(errno, "create " + path + "/packs");

  SNAPFS_ASSIGN_OR_RETURN(std::string secret, ChunkHasher::NewSecret());
  ChunkerParams cp;  // The defaults of this version; stored, so they never change for this store.

  rocksdb::DBOptions dbo = DbOptions();
  dbo.create_if_missing = true;
  dbo.create_missing_column_families = true;
  dbo.error_if_exists = true;
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& n : CfNames()) descs.emplace_back(n, CfOptions(n));
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  SNAPFS_RETURN_IF_ERROR(
      FromRocks(rocksdb::DB::Open(dbo, path + "/db", descs, &handles, &raw), "create database"));
  std::unique_ptr<rocksdb::DB> db(raw);

  const int64_t now = NowNs();
  rocksdb::WriteBatch b;
  auto* meta = handles[0];
  b.Put(meta, kMetaFormat, U32(kFormatVersion)).PermitUncheckedError();
  b.Put(meta, kMetaSecret, secret).PermitUncheckedError();
  b.Put(meta, kMetaCreated, U64(static_cast<uint64_t>(now))).PermitUncheckedError();
  b.Put(meta, kMetaChunker, U32(cp.min_size) + U32(cp.avg_size) + U32(cp.max_size))
      .PermitUncheckedError();
  b.Put(meta, kMetaZstdLevel, U32(static_cast<uint32_t>(options.zstd_level))).PermitUncheckedError();
  b.Put(meta, kMetaNextIno, U64(kRootIno + 1)).PermitUncheckedError();
  b.Put(meta, kMetaStateGap, U64(static_cast<uint64_t>(options.state_gap_ns))).PermitUncheckedError();
  InodeRecord root;
  root.op = Op::kInit;
  root.mode = 0040000 | (options.root_mode & 07777);
  root.uid = options.root_uid;
  root.gid = options.root_gid;
  root.nlink = 2;
  root.atime_ns = root.mtime_ns = root.ctime_ns = now;
  b.Put(handles[2], keys::Inode(kRootIno, 1), EncodeInodeRecord(root)).PermitUncheckedError();
  LogRecord log;
  log.time_ns = now;
  log.op = Op::kInit;
  log.ino = kRootIno;
  b.Put(handles[5], keys::Log(1), EncodeLogRecord(log)).PermitUncheckedError();
  StateRecord st{1, 1, now, now, 1, 0, 0, 0};
  b.Put(handles[6], keys::State(1), EncodeStateRecord(st)).PermitUncheckedError();
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::Status ws = db->Write(wo, &b);
  for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
  db->Close().PermitUncheckedError();
  SNAPFS_RETURN_IF_ERROR(FromRocks(ws, "initialize store"));
  // The marker goes last: a folder with a marker is a complete store.
  SNAPFS_RETURN_IF_ERROR(WriteFileSynced(path + "/" + kMarkerName, kMarkerText, 0600));
  return SyncDir(path);
}

Result<std::unique_ptr<Store>> Store::Open(const std::string& path, const OpenOptions& options) {
  SNAPFS_RETURN_IF_ERROR(CheckMarker(path));
  std::unique_ptr<Store> s(new Store(path, options, ChunkerParams{}));
  SNAPFS_RETURN_IF_ERROR(s->OpenDb());
  SNAPFS_RETURN_IF_ERROR(s->LoadMeta());
  return s;
}

Status Store::OpenDb() {
  rocksdb::DBOptions dbo = DbOptions();
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& n : CfNames()) descs.emplace_back(n, CfOptions(n));
  rocksdb::DB* raw = nullptr;
  rocksdb::Status st;
  if (options_.read_only) {
    dbo.max_open_files = -1;  // Required for secondaries: keep files the daemon deletes open.
    char tmpl[] = "/tmp/snapfs-reader-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return Status::FromErrno(errno, "temporary folder");
    secondary_dir_ = tmpl;
    st = rocksdb::DB::OpenAsSecondary(dbo, path_ + "/db", secondary_dir_, descs, &cfs_, &raw);
  } else {
    SNAPFS_RETURN_IF_ERROR(CheckNotLocked(path_));
    st = rocksdb::DB::Open(dbo, path_ + "/db", descs, &cfs_, &raw);
  }
  SNAPFS_RETURN_IF_ERROR(FromRocks(st, "open " + path_));
  db_.reset(raw);
  cf_meta_ = cfs_[0];
  cf_chunks_ = cfs_[1];
  cf_inodes_ = cfs_[2];
  cf_dirents_ = cfs_[3];
  cf_extents_ = cfs_[4];
  cf_log_ = cfs_[5];
  cf_states_ = cfs_[6];
  return Status::Ok();
}

Result<std::string> Store::GetRaw(rocksdb::ColumnFamilyHandle* cf, const std::string& key) {
  std::string value;
  rocksdb::Status st = db_->Get(rocksdb::ReadOptions(), cf, key, &value);
  if (st.IsNotFound()) return Status::NotFound("key " + HexBytes(key));
  SNAPFS_RETURN_IF_ERROR(FromRocks(st, "read " + HexBytes(key)));
  return value;
}

Status Store::LoadMeta() {
  auto meta = [&](const char* key, size_t size) -> Result<std::string> {
    Result<std::string> v = GetRaw(cf_meta_, key);
    if (!v.ok()) return Status::Corruption(path_ + ": meta key '" + key + "' is missing");
    if (size != 0 && v->size() != size)
      return Status::Corruption(path_ + ": meta key '" + key + "' has the wrong size");
    return v;
  };
  SNAPFS_ASSIGN_OR_RETURN(std::string format, meta(kMetaFormat, 4));
  if (ParseBE(format) != kFormatVersion)
    return Status::Version(path_ + " was made by an incompatible format version (" +
                           std::to_string(ParseBE(format)) + ")");
  SNAPFS_ASSIGN_OR_RETURN(std::string secret, meta(kMetaSecret, ChunkHasher::kSecretSize));
  SNAPFS_ASSIGN_OR_RETURN(std::string chunker, meta(kMetaChunker, 12));
  SNAPFS_ASSIGN_OR_RETURN(ChunkerParams cp, DecodeMetaChunker(chunker, kMetaChunker));
  chunker_ = Chunker(cp);
  SNAPFS_ASSIGN_OR_RETURN(std::string level, meta(kMetaZstdLevel, 4));
  SNAPFS_ASSIGN_OR_RETURN(std::string next_ino, meta(kMetaNextIno, 8));
  SNAPFS_ASSIGN_OR_RETURN(std::string gap, meta(kMetaStateGap, 8));
  next_ino_ = ParseBE(next_ino);
  state_gap_ns_ = static_cast<int64_t>(ParseBE(gap));

  // The newest generation and state.
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_log_));
  it->SeekToLast();
  SNAPFS_RETURN_IF_ERROR(FromRocks(it->status(), "read log"));
  if (!it->Valid()) return Status::Corruption(path_ + ": the generation log is empty");
  SNAPFS_ASSIGN_OR_RETURN(Generation last, keys::DecodeGeneration(it->key().ToStringView()));
  SNAPFS_ASSIGN_OR_RETURN(LogRecord last_log,
                          DecodeLogRecord(it->value().ToStringView(), it->key().ToStringView()));
  last_gen_ = last;
  last_time_ns_ = last_log.time_ns;
  std::unique_ptr<rocksdb::Iterator> sit(db_->NewIterator(rocksdb::ReadOptions(), cf_states_));
  sit->SeekToLast();
  SNAPFS_RETURN_IF_ERROR(FromRocks(sit->status(), "read states"));
  if (sit->Valid()) {
    SNAPFS_ASSIGN_OR_RETURN(state_, DecodeStateRecord(sit->value().ToStringView(),
                                                      sit->key().ToStringView()));
  }

  SNAPFS_ASSIGN_OR_RETURN(ChunkHasher hasher, ChunkHasher::Create(secret));
  ChunkStoreOptions co;
  co.zstd_level = options_.zstd_level > 0 ? options_.zstd_level
                                          : static_cast<int>(ParseBE(level));
  co.cache_bytes = options_.chunk_cache_bytes;
  co.threads = options_.compress_threads;
  co.read_only = options_.read_only;
  if (co.zstd_level < 1 || co.zstd_level > 19) return Status::Invalid("zstd level must be 1..19");
  chunks_ = std::make_unique<ChunkStore>(db_.get(), cf_chunks_, path_ + "/packs",
                                         std::move(hasher), co);
  return chunks_->Start();
}

Status Store::CatchUp() {
  if (!options_.read_only) return Status::Ok();
  SNAPFS_RETURN_IF_ERROR(FromRocks(db_->TryCatchUpWithPrimary(), "catch up with the daemon"));
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_log_));
  it->SeekToLast();
  SNAPFS_RETURN_IF_ERROR(FromRocks(it->status(), "read log"));
  if (it->Valid()) {
    SNAPFS_ASSIGN_OR_RETURN(Generation last, keys::DecodeGeneration(it->key().ToStringView()));
    SNAPFS_ASSIGN_OR_RETURN(LogRecord rec,
                            DecodeLogRecord(it->value().ToStringView(), it->key().ToStringView()));
    last_gen_ = last;
    last_time_ns_ = rec.time_ns;
  }
  return Status::Ok();
}

Result<std::optional<InodeRecord>> Store::GetInode(Ino ino, Generation at) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_inodes_));
  const std::string prefix = keys::InodePrefix(ino);
  it->Seek(keys::Inode(ino, at));
  SNAPFS_RETURN_IF_ERROR(FromRocks(it->status(), "read inode " + std::to_string(ino)));
  if (!it->Valid() || !it->key().starts_with(prefix)) return std::optional<InodeRecord>();
  SNAPFS_ASSIGN_OR_RETURN(InodeRecord rec,
                          DecodeInodeRecord(it->value().ToStringView(), it->key().ToStringView()));
  return std::optional<InodeRecord>(std::move(rec));
}

Result<std::optional<DirentRecord>> Store::Lookup(Ino parent, std::string_view name,
                                                  Generation at) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_dirents_));
  const std::string key = keys::Dirent(parent, name, at);
  it->Seek(key);
  SNAPFS_RETURN_IF_ERROR(FromRocks(it->status(), "read directory " + std::to_string(parent)));
  // Same parent and name: everything but the last 8 bytes (~g) matches.
  if (!it->Valid() || it->key().size() != key.size() ||
      it->key().ToStringView().substr(0, key.size() - 8) != std::string_view(key).substr(0, key.size() - 8))
    return std::optional<DirentRecord>();
  SNAPFS_ASSIGN_OR_RETURN(DirentRecord rec,
                          DecodeDirentRecord(it->value().ToStringView(), it->key().ToStringView()));
  if (rec.child == 0) return std::optional<DirentRecord>();
  return std::optional<DirentRecord>(rec);
}

Status Store::ListDir(Ino parent, Generation at,
                      const std::function<bool(std::string_view, const DirentRecord&)>& fn) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_dirents_));
  const std::string prefix = keys::DirentPrefix(parent);
  it->Seek(prefix);
  while (it->Valid() && it->key().starts_with(prefix)) {
    SNAPFS_ASSIGN_OR_RETURN(auto k, keys::DecodeDirent(it->key().ToStringView()));
    // Jump to this name's newest version at or before `at`.
    if (k.gen > at) {
      it->Seek(keys::Dirent(parent, k.name, at));
      if (!it->Valid() || !it->key().starts_with(prefix)) break;
      SNAPFS_ASSIGN_OR_RETURN(auto k2, keys::DecodeDirent(it->key().ToStringView()));
      if (k2.name != k.name) continue;  // No version of k.name at `at`; k2 is the next name.
    }
    SNAPFS_ASSIGN_OR_RETURN(DirentRecord rec, DecodeDirentRecord(it->value().ToStringView(),
                                                                 it->key().ToStringView()));
    if (rec.child != 0 && !fn(k.name, rec)) return Status::Ok();
    it->Seek(keys::DirentAfterName(parent, k.name));
  }
  return FromRocks(it->status(), "list directory " + std::to_string(parent));
}

Result<std::vector<Extent>> Store::GetExtents(Ino ino, const InodeRecord& rec) {
  std::vector<Extent> out;
  uint64_t end = 0;
  for (uint32_t page = 0; page < rec.pages; ++page) {
    std::string key = keys::ExtentPage(ino, rec.content_gen, page);
    Result<std::string> value = GetRaw(cf_extents_, key);
    if (!value.ok()) {
      if (value.status().code() == Code::kNotFound)
        return Status::Corruption("inode " + std::to_string(ino) + ": extent page " +
                                  std::to_string(page) + " of generation " +
                                  std::to_string(rec.content_gen) + " is missing");
      return value.status();
    }
    SNAPFS_ASSIGN_OR_RETURN(end, DecodeExtentPage(*value, key, end, &out));
  }
  if (end > rec.size)
    return Status::Corruption("inode " + std::to_string(ino) + ": extents end past the size");
  return out;
}

Status Store::InodeVersions(Ino ino,
                            const std::function<bool(Generation, const InodeRecord&)>& fn) {
  std::vector<std::pair<Generation, InodeRecord>> versions;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_inodes_));
  const std::string prefix = keys::InodePrefix(ino);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    SNAPFS_ASSIGN_OR_RETURN(auto k, keys::DecodeInode(it->key().ToStringView()));
    SNAPFS_ASSIGN_OR_RETURN(InodeRecord rec, DecodeInodeRecord(it->value().ToStringView(),
                                                               it->key().ToStringView()));
    versions.emplace_back(k.gen, std::move(rec));
  }
  SNAPFS_RETURN_IF_ERROR(FromRocks(it->status(), "read inode " + std::to_string(ino)));
  for (auto v = versions.rbegin(); v != versions.rend(); ++v)
    if (!fn(v->first, v->second)) break;
  return Status::Ok();
}

Status Store::DirentVersions(Ino parent, std::string_view name,
                             const std::function<bool(Generation, const DirentRecord&)>& fn) {
  std::vector<std::pair<Generation, DirentRecord>> versions;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_dirents_));
  const std::string start = keys::Dirent(parent, name, kLatest);
  const std::string_view prefix = std::string_view(start).substr(0, start.size() - 8);
  for (it->Seek(start); it->Valid() && it->key().size() == start.size() &&
                        it->key().starts_with(prefix);
       it->Next()) {
    SNAPFS_ASSIGN_OR_RETURN(auto k, keys::DecodeDirent(it->key().ToStringView()));
    SNAPFS_ASSIGN_OR_RETURN(DirentRecord rec, DecodeDirentRecord(it->value().ToStringView(),
                                                                 it->key().ToStringView()));
    versions.emplace_back(k.gen, rec);
  }
  SNAPFS_RETURN_IF_ERROR(FromRocks(it->status(), "read directory " + std::to_string(parent)));
  for (auto v = versions.rbegin(); v != versions.rend(); ++v)
    if (!fn(v->first, v->second)) break;
  return Status::Ok();
}

Result<LogRecord> Store::GetLog(Generation g) {
  std::string key = keys::Log(g);
  Result<std::string> value = GetRaw(cf_log_, key);
  if (!value.ok()) {
    if (value.status().code() == Code::kNotFound)
      return Status::NotFound("no generation " + std::to_string(g));
    return value.status();
  }
  return DecodeLogRecord(*value, key);
}

Result<Generation> Store::GenerationAt(int64_t time_ns) {
  // Times never decrease with the generation, so binary search the log.
  Generation lo = 1, hi = latest();
  SNAPFS_ASSIGN_OR_RETURN(LogRecord first, GetLog(lo));
  if (first.time_ns > time_ns) return Status::NotFound("the store has no state that old");
  while (lo < hi) {
    Generation mid = lo + (hi - lo + 1) / 2;
    SNAPFS_ASSIGN_OR_RETURN(LogRecord rec, GetLog(mid));
    if (rec.time_ns <= time_ns) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

Status Store::ListStates(Generation from, const std::function<bool(const State&)>& fn) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_states_));
  for (it->Seek(keys::State(from)); it->Valid(); it->Next()) {
    SNAPFS_ASSIGN_OR_RETURN(State s, DecodeStateRecord(it->value().ToStringView(),
                                                       it->key().ToStringView()));
    if (!fn(s)) break;
  }
  return FromRocks(it->status(), "read states");
}

Status Store::Sync() {
  if (options_.read_only) return Status::Ok();
  SNAPFS_RETURN_IF_ERROR(chunks_->SyncPacks());
  return FromRocks(db_->SyncWAL(), "sync the store's log");
}

Result<Generation> Store::Commit(Mutation& m, LogRecord log, const CommitOptions& options) {
  if (options_.read_only) return Status::ReadOnly("store opened read-only");
  // A name the dirent key cannot hold (docs/format.md: no NUL; no '/'; not
  // empty) would decode as Corruption and make its whole directory unlistable.
  for (const auto& [key, rec] : m.dirents_) {
    const std::string& name = key.second;
    if (name.empty() || name.find('\0') != std::string::npos ||
        name.find('/') != std::string::npos)
      return Status::Invalid("directory " + std::to_string(key.first) + ": name '" +
                             HexBytes(name) + "' (hex) cannot be stored");
  }
  rocksdb::WriteBatch batch;
  // Index entries first (no generation in them); this may sync the packs.
  SNAPFS_RETURN_IF_ERROR(chunks_->AddIndexEntries(m.unindexed_, &batch));

  std::lock_guard lock(commit_mu_);
  const Generation g = last_gen_ + 1;
  const int64_t now = std::max(NowNs(), last_time_ns_.load());
  log.time_ns = now;

  for (auto& [ino, extents] : m.content_) {
    auto rec = m.inodes_.find(ino);
    if (rec == m.inodes_.end()) return Status::Invalid("content without an inode record");
    uint64_t prev_end = 0;
    uint32_t pages = 0;
    for (size_t i = 0; i < extents.size(); i += kExtentsPerPage, ++pages) {
      std::span<const Extent> page(extents.data() + i,
                                   std::min(kExtentsPerPage, extents.size() - i));
      batch.Put(cf_extents_, keys::ExtentPage(ino, g, pages), EncodeExtentPage(page, prev_end))
          .PermitUncheckedError();
      prev_end = page.back().end();
    }
    rec->second.content_gen = pages ? g : 0;
    rec->second.pages = pages;
  }
  for (auto& [ino, rec] : m.inodes_)
    batch.Put(cf_inodes_, keys::Inode(ino, g), EncodeInodeRecord(rec)).PermitUncheckedError();
  for (auto& [key, rec] : m.dirents_)
    batch.Put(cf_dirents_, keys::Dirent(key.first, key.second, g), EncodeDirentRecord(rec))
        .PermitUncheckedError();
  batch.Put(cf_log_, keys::Log(g), EncodeLogRecord(log)).PermitUncheckedError();
  batch.Put(cf_meta_, kMetaNextIno, U64(next_ino_.load())).PermitUncheckedError();

  // Extend the newest state, or start one after a quiet gap. state_files_ is
  // only changed once the batch is written.
  State st = state_;
  const int64_t activity = options.activity_start_ns > 0 ? std::min(options.activity_start_ns, now)
                                                         : now;
  const bool new_state = st.first_gen == 0 || activity - st.end_ns > state_gap_ns_;
  if (new_state) st = State{g, g, activity, now, 0, 0, 0, 0};
  const bool counts = log.op != Op::kMkdir && log.op != Op::kRmdir && log.op != Op::kSetattr;
  const bool new_file = counts && (new_state || !state_files_.count(log.ino));
  st.last_gen = g;
  st.end_ns = now;
  st.changes++;
  if (new_file) st.files_changed++;
  st.bytes_written += log.bytes_written;
  st.bytes_stored += log.bytes_stored;
  batch.Put(cf_states_, keys::State(st.first_gen), EncodeStateRecord(st)).PermitUncheckedError();

  rocksdb::WriteOptions wo;
  wo.sync = options.sync;
  SNAPFS_RETURN_IF_ERROR(FromRocks(db_->Write(wo, &batch), "commit generation " + std::to_string(g)));
  last_gen_ = g;
  last_time_ns_ = now;
  state_ = st;
  if (new_state) state_files_.clear();
  if (new_file) state_files_.insert(log.ino);
  chunks_->MarkIndexed(m.unindexed_);
  return g;
}

}  // namespace snapfs::store
