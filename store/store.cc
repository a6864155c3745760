#include "store/store.h"

#include "store/store_internal.h"
#include "store/pack_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <rocksdb/db.h>
#include <rocksdb/convenience.h>
#include <rocksdb/env.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

namespace snapfs::store {
namespace internal {

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

}  // namespace internal

namespace {

namespace fsys = std::filesystem;
using internal::FromRocks;
using internal::ParseBE;
using internal::U32;
using internal::U64;

constexpr const char* kMarkerName = "SNAPFS";
constexpr const char* kMetaFormat = "format";
constexpr const char* kMetaSecret = "secret";
constexpr const char* kMetaCreated = "created";
constexpr const char* kMetaChunker = "chunker";
constexpr const char* kMetaZstdLevel = "zstd_level";
constexpr const char* kMetaNextIno = "next_ino";
constexpr const char* kMetaStateGap = "state_gap";
constexpr const char* kMetaIndexes = "indexes";  // Present once times/dirlog are complete.

// store_testing::SetLoseSyncedLogWrites.
std::atomic<bool> g_lose_synced_log_writes{false};

std::string MarkerText(uint32_t format) {
  return "snapfs store\nformat " + std::to_string(format) + "\n";
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Whether `found`, a dirents key a seek for `key` landed on, is a version of
// the same parent and name: everything but the last 8 bytes (~g) matches.
bool SameDirentName(std::string_view found, std::string_view key) {
  return found.size() == key.size() && found.substr(0, key.size() - 8) == key.substr(0, key.size() - 8);
}

// A reader's RocksDB secondary keeps its info log in a temporary folder
// named after the reader's pid, removed when the reader closes the store. A
// reader killed before that leaves its folder behind; the next reader removes
// the folders of pids that no longer run (a reused pid only keeps one longer).
constexpr const char* kReaderDirPrefix = "snapfs-reader-";

void RemoveDeadReaderDirs(const fsys::path& tmp) {
  std::error_code ec;
  for (fsys::directory_iterator it(tmp, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.starts_with(kReaderDirPrefix)) continue;
    std::error_code sec;
    if (!fsys::is_directory(it->symlink_status(sec))) continue;  // Never follows a link.
    const std::string rest = name.substr(std::char_traits<char>::length(kReaderDirPrefix));
    char* after = nullptr;
    const long pid = std::strtol(rest.c_str(), &after, 10);
    if (pid <= 0 || after == rest.c_str() || *after != '-') continue;  // Not ours.
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // Alive.
    fsys::remove_all(it->path(), sec);
  }
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
  return {kCfMeta, kCfChunks, kCfInodes, kCfDirents, kCfExtents, kCfLog, kCfStates,
          kCfTimes, kCfDirLog, kCfDirSnaps};
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

// RocksDB's info log, db/LOG. RocksDB's own file logger aborts the daemon
// when it writes again after a failed write (an assert in WritableFileWriter,
// live in Debian's build), and a full disk fails exactly such writes: the
// next warning killed the daemon. This one writes each line with one
// write(2) and ignores failures: a lost log line must never take the mount
// down. The previous session's log is kept as LOG.old; a log stops growing
// at kMaxBytes.
class InfoLog : public rocksdb::Logger {
 public:
  static constexpr off_t kMaxBytes = 8 << 20;

  InfoLog(const std::string& db_dir, rocksdb::InfoLogLevel level) : rocksdb::Logger(level) {
    const std::string path = db_dir + "/LOG";
    (void)::rename(path.c_str(), (path + ".old").c_str());  // Absent the first time.
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  }
  ~InfoLog() override { CloseImpl().PermitUncheckedError(); }

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    if (fd_ < 0) return;
    char line[4096];
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    tm t{};
    ::localtime_r(&now.tv_sec, &t);
    size_t n = std::strftime(line, sizeof(line), "%Y/%m/%d-%H:%M:%S", &t);
    n += static_cast<size_t>(std::snprintf(line + n, sizeof(line) - n, ".%06ld ",
                                           now.tv_nsec / 1000));
    const int body = std::vsnprintf(line + n, sizeof(line) - n - 1, format, ap);
    if (body < 0) return;
    n = std::min(n + static_cast<size_t>(body), sizeof(line) - 2);
    if (line[n - 1] != '\n') line[n++] = '\n';
    struct stat st;
    if (::fstat(fd_, &st) == 0 && st.st_size > kMaxBytes) return;
    (void)!::write(fd_, line, n);  // Failures (ENOSPC) are dropped on purpose.
  }

 protected:
  rocksdb::Status CloseImpl() override {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    return rocksdb::Status::OK();
  }

 private:
  int fd_ = -1;
};

rocksdb::DBOptions DbOptions() {
  rocksdb::DBOptions o;
  o.create_if_missing = false;
  o.create_missing_column_families = false;
  o.paranoid_checks = true;
  o.max_background_jobs = 2;
  // Readers (secondary instances: snapfs-ls, snapfs-mount-at) replay the log
  // that is not yet in table files when they open: keep it short, so their
  // start costs the same however long the store's history is.
  o.max_total_wal_size = 16u << 20;
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
  if (text != MarkerText(kFormatVersion) && text != MarkerText(kOldestFormatVersion))
    return Status::Version(path + " was made by an incompatible format version (" +
                           text.substr(13, text.find('\n', 13) - 13) + "; this snapfs reads formats " +
                           std::to_string(kOldestFormatVersion) + " to " +
                           std::to_string(kFormatVersion) + ")");
  return Status::Ok();
}

// Takes group and other bits off the files in `dir` (stores made before the
// umask above). Best effort: a file we cannot chmod is left as it is.
void RestrictModes(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : fsys::directory_iterator(dir, ec)) {
    struct stat st {};
    if (::lstat(e.path().c_str(), &st) == 0 && (st.st_mode & 077) != 0 && !S_ISLNK(st.st_mode))
      ::chmod(e.path().c_str(), st.st_mode & 07700);
  }
}

}  // namespace

Store::Store(std::string path, OpenOptions options, ChunkerParams chunker)
    : path_(std::move(path)), options_(options), chunker_(chunker) {}

Store::~Store() {
  {
    std::lock_guard lock(flush_mu_);
    stopping_ = true;
  }
  flush_cv_.notify_all();
  if (settler_.joinable()) settler_.join();
  if (flusher_.joinable()) flusher_.join();
  // Nothing commits any more: the next open replays none (best effort).
  if (replay_from_ != 0) (void)AdvanceReplay(/*closing=*/true);
  chunks_.reset();  // Drains the compression queue first.
  // Flush the memtables so that the next open, and every read-only
  // (secondary) open, starts from table files instead of replaying the log.
  if (db_ && !options_.read_only) (void)FlushAll();
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
  ::umask(077);  // RocksDB creates its files 0644 & ~umask: owner-only (see store.h).
  if (options.guard_share_percent > 100 || options.min_retention_ns < 0)
    return Status::Invalid("the guard share must be 0..100 % and the minimum retention >= 0");
  std::error_code ec;
  bool created = false;
  if (fsys::exists(path, ec)) {
    if (!fsys::is_directory(path, ec)) return Status::Exists(path + " exists and is not a directory");
    if (fsys::exists(path + "/" + kMarkerName, ec))
      return Status::Exists(path + " is already a snapfs store");
    if (!fsys::is_empty(path, ec))
      return Status::Exists(path + " is not empty; a new store needs an empty or new folder");
  } else if (::mkdir(path.c_str(), 0700) != 0) {
    return Status::FromErrno(errno, "create " + path);
  } else {
    created = true;
  }
  Status st = InitEmptyFolder(path, options);
  if (!st.ok()) {
    // A half-made store (a full disk, say) is removed, so the folder is as it
    // was and --init can simply be run again.
    if (created) {
      fsys::remove_all(path, ec);
    } else {
      for (const auto& e : fsys::directory_iterator(path, ec)) fsys::remove_all(e.path(), ec);
    }
  }
  return st;
}

Status Store::InitEmptyFolder(const std::string& path, const InitOptions& options) {
  if (::chmod(path.c_str(), 0700) != 0) return Status::FromErrno(errno, "chmod " + path);
  if (::mkdir((path + "/packs").c_str(), 0700) != 0)
    return Status::FromErrno(errno, "create " + path + "/packs");

  SNAPFS_ASSIGN_OR_RETURN(std::string secret, ChunkHasher::NewSecret());
  ChunkerParams cp;  // The defaults of this version; stored, so they never change for this store.

  if (::mkdir((path + "/db").c_str(), 0700) != 0)
    return Status::FromErrno(errno, "create " + path + "/db");
  rocksdb::DBOptions dbo = DbOptions();
  dbo.info_log = std::make_shared<InfoLog>(path + "/db", dbo.info_log_level);
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
  b.Put(meta, kMetaIndexes, U32(1)).PermitUncheckedError();
  b.Put(handles[7], keys::Time(now, 1), EncodeIndexMark()).PermitUncheckedError();
  b.Put(meta, keys::kMinRetention, U64(static_cast<uint64_t>(std::max<int64_t>(0, options.min_retention_ns))))
      .PermitUncheckedError();
  b.Put(meta, keys::kGuardShare, U32(options.guard_share_percent)).PermitUncheckedError();
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
  st.has_totals = true;  // The empty tree: no files, no bytes.
  b.Put(handles[6], keys::State(1), EncodeStateRecord(st)).PermitUncheckedError();
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::Status ws = db->Write(wo, &b);
  for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
  db->Close().PermitUncheckedError();
  SNAPFS_RETURN_IF_ERROR(FromRocks(ws, "initialize store"));
  // The marker goes last: a folder with a marker is a complete store.
  SNAPFS_RETURN_IF_ERROR(WriteFileSynced(path + "/" + kMarkerName, MarkerText(kFormatVersion), 0600));
  return SyncDir(path);
}

Result<std::unique_ptr<Store>> Store::Open(const std::string& path, const OpenOptions& options) {
  SNAPFS_RETURN_IF_ERROR(CheckMarker(path));
  if (!options.read_only) {
    ::umask(077);  // See store.h: what this process creates in the store is owner-only.
    RestrictModes(path + "/db");
    RestrictModes(path + "/packs");
  }
  std::unique_ptr<Store> s(new Store(path, options, ChunkerParams{}));
  SNAPFS_RETURN_IF_ERROR(s->OpenDb());
  SNAPFS_RETURN_IF_ERROR(s->LoadMeta());
  if (!options.read_only) SNAPFS_RETURN_IF_ERROR(s->AdvanceReplay());
  // Retention (store/gc.cc): dropped generations; finish an interrupted drop.
  SNAPFS_RETURN_IF_ERROR(s->LoadDropped());
  if (options.read_only) s->chunks_->SetCatchUp([p = s.get()] { return p->CatchUp(); });
  else SNAPFS_RETURN_IF_ERROR(s->RecoverDrop());
  if (!options.read_only && !s->indexed_) SNAPFS_RETURN_IF_ERROR(s->BuildIndexes());
  s->flushed_gen_ = s->latest();  // Open put what the log held into table files.
  if (!options.read_only) {
    SNAPFS_RETURN_IF_ERROR(s->CountUnsettled());
    s->flusher_ = std::thread([st = s.get()] { st->FlushWhenQuiet(); });
    if (options.settle_when_idle) s->settler_ = std::thread([st = s.get()] { st->SettleWhenIdle(); });
  }
  return s;
}

Status Store::LoadNewestGeneration(bool required) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_log_));
  it->SeekToLast();
  SNAPFS_RETURN_IF_ERROR(FromRocks(it->status(), "read log"));
  if (!it->Valid()) {
    if (required) return Status::Corruption(path_ + ": the generation log is empty");
    return Status::Ok();
  }
  SNAPFS_ASSIGN_OR_RETURN(Generation last, keys::DecodeGeneration(it->key().ToStringView()));
  SNAPFS_ASSIGN_OR_RETURN(LogRecord rec,
                          DecodeLogRecord(it->value().ToStringView(), it->key().ToStringView()));
  last_gen_ = last;
  last_time_ns_ = rec.time_ns;
  return Status::Ok();
}

Status Store::ReplayCommits() {
  Result<std::string> from = GetRaw(cf_meta_, keys::kReplayFrom);
  if (!from.ok() && from.status().code() == Code::kNotFound) return Status::Ok();  // Format 1.
  SNAPFS_RETURN_IF_ERROR(from.status());
  if (from->size() != 4)
    return Status::Corruption(path_ + ": meta key '" + keys::kReplayFrom + "' has the wrong size");
  const uint64_t replay_from = ParseBE(*from);
  SNAPFS_RETURN_IF_ERROR(LoadNewestGeneration(/*required=*/true));
  Generation last = last_gen_.load();

  // Of several records of one generation the last appended wins: an earlier
  // one is a commit whose write to the log failed, and the generation was
  // given to the next commit.
  std::map<Generation, std::string> found;
  const std::string packs_dir = path_ + "/packs";
  SNAPFS_ASSIGN_OR_RETURN(std::vector<PackFileInfo> packs, ListPacks(packs_dir));
  for (const PackFileInfo& p : packs) {
    if (p.pack < replay_from) continue;
    SNAPFS_RETURN_IF_ERROR(ScanCommits(packs_dir, p.pack, [&](uint64_t g, std::string batch) {
      if (g > last) found[g] = std::move(batch);
    }));
  }
  for (auto& [g, rep] : found) {
    if (g != last + 1) {
      replay_note_ = "the packs hold commits from generation " + std::to_string(g) +
                     " on, but not generation " + std::to_string(last + 1) +
                     ": those were not replayed";
      break;
    }
    rocksdb::WriteBatch batch(std::move(rep));
    SNAPFS_RETURN_IF_ERROR(
        FromRocks(db_->Write(rocksdb::WriteOptions(), &batch), "replay generation " + std::to_string(g)));
    last = g;
    replayed_++;
  }
  return Status::Ok();  // AdvanceReplay() syncs the log.
}

Status Store::AdvanceReplay(bool closing) {
  if (g_lose_synced_log_writes && replay_from_ != 0) return Status::Ok();  // A crash, for tests.
  std::lock_guard lock(commit_mu_);
  // Closing, no commit follows: past the pack being appended to.
  const uint32_t pack = chunks_->current_pack() + (closing ? 1 : 0);
  rocksdb::WriteBatch batch;
  batch.Put(cf_meta_, keys::kReplayFrom, U32(pack)).PermitUncheckedError();
  if (format_ < kFormatVersion)
    batch.Put(cf_meta_, kMetaFormat, U32(kFormatVersion)).PermitUncheckedError();
  rocksdb::WriteOptions wo;
  wo.sync = true;  // And with it every commit before: their records need no replay.
  SNAPFS_RETURN_IF_ERROR(FromRocks(db_->Write(wo, &batch), "write the replay point"));
  replay_from_ = pack;
  if (format_ < kFormatVersion) {
    // The marker last: until it is renamed into place, an open reads the
    // old marker and the new meta key, and upgrades again.
    const std::string marker = path_ + "/" + kMarkerName;
    ::unlink((marker + ".new").c_str());  // Left by an upgrade that crashed.
    SNAPFS_RETURN_IF_ERROR(WriteFileSynced(marker + ".new", MarkerText(kFormatVersion), 0600));
    if (::rename((marker + ".new").c_str(), marker.c_str()) != 0)
      return Status::FromErrno(errno, "rename " + marker + ".new");
    SNAPFS_RETURN_IF_ERROR(SyncDir(path_));
    format_ = kFormatVersion;
  }
  return Status::Ok();
}

Status Store::FlushAll() {
  return FromRocks(db_->Flush(rocksdb::FlushOptions(), cfs_), "flush the store's tables");
}

void Store::FlushWhenQuiet() {
  std::unique_lock lock(flush_mu_);
  while (!stopping_) {
    flush_cv_.wait_for(lock, kFlushQuiet / 2);
    if (stopping_ || flushed_gen_ == last_gen_.load()) continue;
    const auto quiet = std::chrono::steady_clock::now() - last_commit_;
    if (quiet < kFlushQuiet) continue;
    const Generation g = last_gen_.load();
    lock.unlock();
    // A failure (a full disk) leaves the log as it is: the next quiet
    // period tries again; commits report their own errors.
    const bool ok = FlushAll().ok();
    // And the log: so a crash of the machine leaves no commit to replay.
    if (ok) (void)AdvanceReplay();
    lock.lock();
    if (ok) flushed_gen_ = g;
  }
}

Status Store::OpenDb() {
  rocksdb::DBOptions dbo = DbOptions();
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& n : CfNames()) descs.emplace_back(n, CfOptions(n));
  rocksdb::DB* raw = nullptr;
  rocksdb::Status st;
  if (options_.read_only) {
    // A store made before the index families existed has not got them; a
    // reader opens what is there and reads without them.
    std::vector<std::string> present;
    SNAPFS_RETURN_IF_ERROR(FromRocks(
        rocksdb::DB::ListColumnFamilies(dbo, path_ + "/db", &present), "open " + path_));
    std::erase_if(descs, [&](const rocksdb::ColumnFamilyDescriptor& d) {
      return std::find(present.begin(), present.end(), d.name) == present.end();
    });
    dbo.max_open_files = -1;  // Required for secondaries: keep files the daemon deletes open.
    RemoveDeadReaderDirs("/tmp");
    std::string tmpl = "/tmp/" + std::string(kReaderDirPrefix) + std::to_string(::getpid()) +
                       "-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) return Status::FromErrno(errno, "temporary folder");
    secondary_dir_ = tmpl;
    st = rocksdb::DB::OpenAsSecondary(dbo, path_ + "/db", secondary_dir_, descs, &cfs_, &raw);
  } else {
    // Before anything touches db/: the info log below starts by moving the
    // previous LOG aside, which must not happen to a running daemon's log.
    SNAPFS_RETURN_IF_ERROR(CheckNotLocked(path_));
    dbo.create_missing_column_families = true;  // New index families (BuildIndexes).
    dbo.info_log = std::make_shared<InfoLog>(path_ + "/db", dbo.info_log_level);
    st = rocksdb::DB::Open(dbo, path_ + "/db", descs, &cfs_, &raw);
  }
  SNAPFS_RETURN_IF_ERROR(FromRocks(st, "open " + path_));
  db_.reset(raw);
  auto handle = [&](const char* name) -> rocksdb::ColumnFamilyHandle* {
    for (auto* h : cfs_)
      if (h->GetName() == name) return h;
    return nullptr;
  };
  cf_meta_ = handle(kCfMeta);
  cf_chunks_ = handle(kCfChunks);
  cf_inodes_ = handle(kCfInodes);
  cf_dirents_ = handle(kCfDirents);
  cf_extents_ = handle(kCfExtents);
  cf_log_ = handle(kCfLog);
  cf_states_ = handle(kCfStates);
  cf_times_ = handle(kCfTimes);
  cf_dirlog_ = handle(kCfDirLog);
  cf_dirsnaps_ = handle(kCfDirSnaps);
  if (!cf_meta_ || !cf_chunks_ || !cf_inodes_ || !cf_dirents_ || !cf_extents_ || !cf_log_ ||
      !cf_states_)
    return Status::Corruption(path_ + ": the database lacks one of its column families");
  return Status::Ok();
}

Status Store::BuildIndexes() {
  // Idempotent puts: a crash part way leaves the meta key unwritten, and the
  // next open starts again.
  rocksdb::WriteBatch batch;
  auto flush = [&](bool last) -> Status {
    if (!last && batch.Count() < 65536) return Status::Ok();
    if (last) batch.Put(cf_meta_, kMetaIndexes, U32(1)).PermitUncheckedError();
    rocksdb::WriteOptions wo;
    wo.sync = last;
    Status st = FromRocks(db_->Write(wo, &batch), "build the store's indexes");
    batch.Clear();
    return st;
  };
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_log_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    SNAPFS_ASSIGN_OR_RETURN(Generation g, keys::DecodeGeneration(it->key().ToStringView()));
    SNAPFS_ASSIGN_OR_RETURN(LogRecord rec, DecodeLogRecord(it->value().ToStringView(),
                                                           it->key().ToStringView()));
    batch.Put(cf_times_, keys::Time(rec.time_ns, g), EncodeIndexMark()).PermitUncheckedError();
    SNAPFS_RETURN_IF_ERROR(flush(false));
  }
  SNAPFS_RETURN_IF_ERROR(FromRocks(it->status(), "read log"));
  it.reset(db_->NewIterator(rocksdb::ReadOptions(), cf_dirents_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    SNAPFS_ASSIGN_OR_RETURN(auto k, keys::DecodeDirent(it->key().ToStringView()));
    batch.Put(cf_dirlog_, keys::DirLog(k.parent, k.gen, k.name), EncodeIndexMark())
        .PermitUncheckedError();
    SNAPFS_RETURN_IF_ERROR(flush(false));
  }
  SNAPFS_RETURN_IF_ERROR(FromRocks(it->status(), "read directories"));
  SNAPFS_RETURN_IF_ERROR(flush(true));
  indexed_ = true;
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
    if (!v.ok() && v.status().code() != Code::kNotFound) return v.status();  // E.g. a damaged table file.
    if (!v.ok()) return Status::Corruption(path_ + ": meta key '" + key + "' is missing");
    if (size != 0 && v->size() != size)
      return Status::Corruption(path_ + ": meta key '" + key + "' has the wrong size");
    return v;
  };
  SNAPFS_ASSIGN_OR_RETURN(std::string format, meta(kMetaFormat, 4));
  format_ = static_cast<uint32_t>(ParseBE(format));
  if (format_ < kOldestFormatVersion || format_ > kFormatVersion)
    return Status::Version(path_ + " was made by an incompatible format version (" +
                           std::to_string(format_) + ")");
  if (!options_.read_only) SNAPFS_RETURN_IF_ERROR(ReplayCommits());
  SNAPFS_ASSIGN_OR_RETURN(std::string secret, meta(kMetaSecret, ChunkHasher::kSecretSize));
  SNAPFS_ASSIGN_OR_RETURN(std::string chunker, meta(kMetaChunker, 12));
  SNAPFS_ASSIGN_OR_RETURN(ChunkerParams cp, DecodeMetaChunker(chunker, kMetaChunker));
  chunker_ = Chunker(cp);
  SNAPFS_ASSIGN_OR_RETURN(std::string level, meta(kMetaZstdLevel, 4));
  SNAPFS_ASSIGN_OR_RETURN(std::string next_ino, meta(kMetaNextIno, 8));
  SNAPFS_ASSIGN_OR_RETURN(std::string gap, meta(kMetaStateGap, 8));
  next_ino_ = ParseBE(next_ino);
  state_gap_ns_ = static_cast<int64_t>(ParseBE(gap));
  indexed_ = cf_times_ && cf_dirlog_ && cf_dirsnaps_ && GetRaw(cf_meta_, kMetaIndexes).ok();

  // The newest generation and state.
  SNAPFS_RETURN_IF_ERROR(LoadNewestGeneration(/*required=*/true));
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
  co.defer_above = options_.defer_above;
  co.defer_rate = options_.defer_rate;
  co.worker_nice = options_.background_nice;
  if (co.zstd_level < 1 || co.zstd_level > 19) return Status::Invalid("zstd level must be 1..19");
  chunks_ = std::make_unique<ChunkStore>(db_.get(), cf_chunks_, path_ + "/packs",
                                         std::move(hasher), co);
  return chunks_->Start();
}

Status Store::CatchUp() {
  if (!options_.read_only) return Status::Ok();
  SNAPFS_RETURN_IF_ERROR(FromRocks(db_->TryCatchUpWithPrimary(), "catch up with the daemon"));
  SNAPFS_RETURN_IF_ERROR(LoadNewestGeneration(/*required=*/false));
  chunks_->ForgetRemovedPacks();  // Packs GC removed: do not keep their space.
  return LoadDropped();
}

Result<std::optional<InodeRecord>> Store::GetInode(Ino ino, Generation at) {
  at = KeptAtOrBefore(at);  // A dropped generation reads as the kept one before it.
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
  at = KeptAtOrBefore(at);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_dirents_));
  const std::string key = keys::Dirent(parent, name, at);
  it->Seek(key);
  SNAPFS_RETURN_IF_ERROR(FromRocks(it->status(), "read directory " + std::to_string(parent)));
  if (!it->Valid() || !SameDirentName(it->key().ToStringView(), key))
    return std::optional<DirentRecord>();
  SNAPFS_ASSIGN_OR_RETURN(DirentRecord rec,
                          DecodeDirentRecord(it->value().ToStringView(), it->key().ToStringView()));
  if (rec.child == 0) return std::optional<DirentRecord>();
  return std::optional<DirentRecord>(rec);
}

Status Store::ListDir(Ino parent, Generation at,
                      const std::function<bool(std::string_view, const DirentRecord&)>& fn) {
  at = KeptAtOrBefore(at);
  if (!indexed_) return ListDirByScan(parent, at, fn);
  SNAPFS_ASSIGN_OR_RETURN(std::vector<std::string> names, DirNamesAt(parent, at));
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_dirents_));
  for (const std::string& name : names) {
    const std::string key = keys::Dirent(parent, name, at);
    it->Seek(key);
    if (!it->Valid()) break;
    if (!SameDirentName(it->key().ToStringView(), key)) continue;
    SNAPFS_ASSIGN_OR_RETURN(DirentRecord rec, DecodeDirentRecord(it->value().ToStringView(),
                                                                 it->key().ToStringView()));
    if (rec.child != 0 && !fn(name, rec)) return Status::Ok();
  }
  return FromRocks(it->status(), "list directory " + std::to_string(parent));
}

Result<std::vector<std::string>> Store::DirNamesAt(Ino parent, Generation at) {
  // The newest snapshot of the directory at or before `at` (its names then),
  // plus every name changed after it up to `at`: a superset of the names
  // present at `at`, as large as the directory was, not as long as its
  // history (a snapshot is taken once the changes since the last one
  // outnumber its names; see SnapshotChangedDirs).
  std::vector<std::string> names;
  SNAPFS_ASSIGN_OR_RETURN(Generation snap_gen, ReadDirSnapshot(parent, at, &names));
  const size_t from_snapshot = names.size();
  SNAPFS_RETURN_IF_ERROR(ScanDirLog(parent, snap_gen + 1, at, [&](std::string&& name) {
    names.push_back(std::move(name));
  }));
  // Snapshot pages are sorted; merge in the changed names.
  std::sort(names.begin() + static_cast<std::ptrdiff_t>(from_snapshot), names.end());
  std::inplace_merge(names.begin(), names.begin() + static_cast<std::ptrdiff_t>(from_snapshot),
                     names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

Result<Generation> Store::ReadDirSnapshot(Ino parent, Generation at,
                                          std::vector<std::string>* names) {
  const std::string prefix = keys::InoPrefix(parent);
  Generation snap_gen = 0;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_dirsnaps_));
  for (it->Seek(keys::DirSnap(parent, at, 0)); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    SNAPFS_ASSIGN_OR_RETURN(auto k, keys::DecodeDirSnap(it->key().ToStringView()));
    if (snap_gen != 0 && k.gen != snap_gen) break;
    snap_gen = k.gen;
    SNAPFS_RETURN_IF_ERROR(DecodeDirSnapPage(it->value().ToStringView(), it->key().ToStringView(),
                                             names));
  }
  SNAPFS_RETURN_IF_ERROR(FromRocks(it->status(), "read directory snapshots"));
  return snap_gen;
}

Status Store::ScanDirLog(Ino parent, Generation from, Generation to,
                         const std::function<void(std::string&&)>& fn) {
  const std::string prefix = keys::InoPrefix(parent);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_dirlog_));
  for (it->Seek(keys::DirLog(parent, from, "")); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    SNAPFS_ASSIGN_OR_RETURN(auto k, keys::DecodeDirLog(it->key().ToStringView()));
    if (k.gen > to) break;
    fn(std::move(k.name));
  }
  return FromRocks(it->status(), "read directory changes");
}

Status Store::ListDirByScan(Ino parent, Generation at,
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
  SNAPFS_RETURN_IF_ERROR(
      DirentVersionsNewestFirst(parent, name, [&](Generation g, const DirentRecord& rec) {
        versions.emplace_back(g, rec);
        return true;
      }));
  for (auto v = versions.rbegin(); v != versions.rend(); ++v)
    if (!fn(v->first, v->second)) break;
  return Status::Ok();
}

Status Store::DirentVersionsNewestFirst(
    Ino parent, std::string_view name,
    const std::function<bool(Generation, const DirentRecord&)>& fn) {
  // Keys end in ~g: the newest version of a name sorts first.
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_dirents_));
  const std::string start = keys::Dirent(parent, name, kLatest);
  const std::string_view prefix = std::string_view(start).substr(0, start.size() - 8);
  for (it->Seek(start); it->Valid() && it->key().size() == start.size() &&
                        it->key().starts_with(prefix);
       it->Next()) {
    SNAPFS_ASSIGN_OR_RETURN(auto k, keys::DecodeDirent(it->key().ToStringView()));
    SNAPFS_ASSIGN_OR_RETURN(DirentRecord rec, DecodeDirentRecord(it->value().ToStringView(),
                                                                 it->key().ToStringView()));
    if (!fn(k.gen, rec)) break;
  }
  return FromRocks(it->status(), "read directory " + std::to_string(parent));
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
  if (time_ns < 0) return Status::NotFound("the store has no state that old");
  Generation lo = 0;
  if (indexed_) {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_times_));
    it->SeekForPrev(keys::Time(time_ns, UINT64_MAX));
    SNAPFS_RETURN_IF_ERROR(FromRocks(it->status(), "read the time index"));
    if (!it->Valid()) return Status::NotFound("the store has no state that old");
    SNAPFS_ASSIGN_OR_RETURN(auto k, keys::DecodeTime(it->key().ToStringView()));
    // A reader may see index entries of generations it has not caught up to.
    if (k.gen <= latest()) lo = k.gen;
  }
  if (lo == 0) {
    // Times never decrease with the generation, so binary search the log.
    lo = 1;
    Generation hi = latest();
    SNAPFS_ASSIGN_OR_RETURN(LogRecord first, GetLog(lo));
    if (first.time_ns > time_ns) return Status::NotFound("the store has no state that old");
    while (lo < hi) {
      Generation mid = lo + (hi - lo + 1) / 2;
      SNAPFS_ASSIGN_OR_RETURN(LogRecord rec, GetLog(mid));
      if (rec.time_ns <= time_ns) lo = mid;
      else hi = mid - 1;
    }
  }
  // The log keeps dropped generations; they resolve to the kept one before.
  if (KeptAtOrBefore(lo) == 0)
    return Status::NotFound("the store has no kept state that old (older states were pruned)");
  return KeptAtOrBefore(lo);
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

Status Store::Scan(Family family,
                   const std::function<bool(std::string_view, std::string_view)>& fn) {
  rocksdb::ColumnFamilyHandle* cf = nullptr;
  switch (family) {
    case Family::kChunks: cf = cf_chunks_; break;
    case Family::kInodes: cf = cf_inodes_; break;
    case Family::kDirents: cf = cf_dirents_; break;
    case Family::kExtents: cf = cf_extents_; break;
    case Family::kLog: cf = cf_log_; break;
    case Family::kStates: cf = cf_states_; break;
  }
  rocksdb::ReadOptions ro;
  ro.readahead_size = 2u << 20;  // A sequential pass.
  ro.verify_checksums = true;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf));
  for (it->SeekToFirst(); it->Valid(); it->Next())
    if (!fn(it->key().ToStringView(), it->value().ToStringView())) return Status::Ok();
  return FromRocks(it->status(), "scan " + cf->GetName());
}

Status Store::Sync() {
  if (options_.read_only) return Status::Ok();
  // Every commit put its record into a pack: synced, the packs make every
  // generation so far durable (the next open replays what the log lost).
  return chunks_->SyncPacks();
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
  // Index entries first (no generation in them). An unsynced commit syncs
  // the packs now if there are any; a synced one syncs them below, once.
  SNAPFS_RETURN_IF_ERROR(chunks_->AddIndexEntries(m.unindexed_, &batch, !options.sync));
  const auto deferred = chunks_->Deferred(m.unindexed_);

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
  for (auto& [key, rec] : m.dirents_) {
    batch.Put(cf_dirents_, keys::Dirent(key.first, key.second, g), EncodeDirentRecord(rec))
        .PermitUncheckedError();
    batch.Put(cf_dirlog_, keys::DirLog(key.first, g, key.second), EncodeIndexMark())
        .PermitUncheckedError();
  }
  batch.Put(cf_log_, keys::Log(g), EncodeLogRecord(log)).PermitUncheckedError();
  batch.Put(cf_times_, keys::Time(now, g), EncodeIndexMark()).PermitUncheckedError();
  batch.Put(cf_meta_, kMetaNextIno, U64(next_ino_.load())).PermitUncheckedError();
  for (const auto& [id, hint] : deferred)  // For Settle (store/settle.cc).
    batch.Put(cf_meta_, keys::Settle(id), EncodeSettleRecord({g, hint})).PermitUncheckedError();

  // Extend the newest state, or start one after a quiet gap. state_files_ is
  // only changed once the batch is written.
  State st = state_;
  const int64_t activity = options.activity_start_ns > 0 ? std::min(options.activity_start_ns, now)
                                                         : now;
  const bool new_state = st.first_gen == 0 || activity - st.end_ns > state_gap_ns_;
  if (new_state) st = State{g, g, activity, now, 0, 0, 0, 0};
  SNAPFS_RETURN_IF_ERROR(UpdateTreeTotalsLocked(m, &st));
  std::optional<HoldRecord> guard_hold;  // The guard, as state_ closes.
  if (new_state && state_.first_gen != 0)
    SNAPFS_RETURN_IF_ERROR(GuardLocked(state_, &batch, &guard_hold));
  const bool counts = log.op != Op::kMkdir && log.op != Op::kRmdir && log.op != Op::kSetattr;
  const bool new_file = counts && (new_state || !state_files_.count(log.ino));
  st.last_gen = g;
  st.end_ns = now;
  st.changes++;
  if (new_file) st.files_changed++;
  st.bytes_written += log.bytes_written;
  st.bytes_stored += log.bytes_stored;
  batch.Put(cf_states_, keys::State(st.first_gen), EncodeStateRecord(st)).PermitUncheckedError();

  // The batch also goes into the pack, after the chunks it indexes
  // (docs/format.md, "Commit records"). A synced commit then syncs the packs
  // and nothing else: the log's write is not synced, and if the machine
  // loses it, the next read-write open replays the batch from the pack.
  // If the record cannot be appended (a full disk; the log may still have
  // room), the commit goes to the log synced instead, as before commit
  // records: durable without one, so replay needs none for it.
  const bool recorded = chunks_->AppendCommit(g, batch.Data()).ok();
  if (options.sync || !recorded) SNAPFS_RETURN_IF_ERROR(chunks_->SyncPacks());
  rocksdb::WriteOptions wo;
  wo.sync = !recorded;
  Status written;
  if (!(options.sync && recorded && g_lose_synced_log_writes))
    written = FromRocks(db_->Write(wo, &batch), "commit generation " + std::to_string(g));
  SNAPFS_RETURN_IF_ERROR(written);
  last_gen_ = g;
  last_time_ns_ = now;
  {
    std::lock_guard flush_lock(flush_mu_);
    last_commit_ = std::chrono::steady_clock::now();
  }
  state_ = st;
  unsettled_ += deferred.size();
  if (new_state) state_files_.clear();
  if (new_file) state_files_.insert(log.ino);
  chunks_->MarkIndexed(m.unindexed_);
  SnapshotChangedDirs(m, g);
  if (guard_hold && guard_listener_) guard_listener_(*guard_hold);
  return g;
}

void Store::SnapshotChangedDirs(const Mutation& m, Generation g) {
  for (auto it = m.dirents_.begin(); it != m.dirents_.end();) {
    const Ino parent = it->first.first;
    uint64_t changed = 0;
    for (; it != m.dirents_.end() && it->first.first == parent; ++it) ++changed;
    Result<DirCounter*> counter = CounterOf(parent, g);
    if (!counter.ok()) continue;  // Only an optimization: listings stay right.
    (*counter)->changes += changed;
    if ((*counter)->changes < std::max<uint64_t>(kMinSnapshotChanges, (*counter)->names)) continue;
    std::vector<std::string> names;
    Status st = ListDir(parent, g, [&](std::string_view name, const DirentRecord&) {
      names.emplace_back(name);
      return true;
    });
    if (!st.ok()) continue;
    rocksdb::WriteBatch batch;
    uint32_t page = 0;
    for (size_t i = 0; i < names.size() || page == 0; i += kNamesPerSnapPage, ++page) {
      std::span<const std::string> part(names.data() + i,
                                        std::min(kNamesPerSnapPage, names.size() - i));
      batch.Put(cf_dirsnaps_, keys::DirSnap(parent, g, page), EncodeDirSnapPage(part))
          .PermitUncheckedError();
    }
    if (db_->Write(rocksdb::WriteOptions(), &batch).ok())
      **counter = DirCounter{names.size(), 0};
  }
}

Result<Store::DirCounter*> Store::CounterOf(Ino parent, Generation g) {
  auto found = dir_counters_.find(parent);
  if (found != dir_counters_.end()) return &found->second;
  if (dir_counters_.size() >= kMaxDirCounters) dir_counters_.clear();
  // First change since open: count the snapshot's names and the changes
  // after it (fewer than the snapshot's names, or kMinSnapshotChanges)
  // before g; the caller counts generation g's own changes.
  std::vector<std::string> names;
  SNAPFS_ASSIGN_OR_RETURN(Generation snap_gen, ReadDirSnapshot(parent, g, &names));
  DirCounter c{names.size(), 0};
  SNAPFS_RETURN_IF_ERROR(ScanDirLog(parent, snap_gen + 1, g - 1, [&](std::string&&) {
    ++c.changes;
  }));
  return &dir_counters_.emplace(parent, c).first->second;
}

namespace store_testing {
void SetLoseSyncedLogWrites(bool lose) { g_lose_synced_log_writes = lose; }
}  // namespace store_testing

}  // namespace snapfs::store
