#include "store/pack_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <span>
#include <string_view>

#include <xxhash.h>

namespace snapfs::store {
namespace {

constexpr char kPackMagic[8] = {'S', 'N', 'A', 'P', 'P', 'A', 'C', 'K'};
constexpr uint32_t kPackVersion = 1;
constexpr uint32_t kRecordMagic = 0x534E4348;  // "SNCH"
constexpr size_t kHashedHeader = 29;
constexpr uint32_t kCommitMagic = 0x534E4342;  // "SNCB"
constexpr size_t kHashedCommitHeader = 16;    // Magic, generation, length.
// A commit record's batch is at most this long (a commit holds the
// metadata of one operation and its extent pages: well under this).
constexpr uint32_t kMaxCommitBytes = 1u << 30;
// PackWriter starts the disk writes of a pack's bytes in steps of this many
// (sync_file_range, without waiting), so a Sync() finds most of them on disk
// or on their way instead of writing them all then: at the end of a long
// dump, pack after pack; at each fsync of a folder dump's files, one after
// the other, all but the last step's bytes. Folder dump day 1 with these
// steps: 0.72-0.81x of passthrough_ll, against 0.61-0.68x with 8 MiB ones,
// the SQL dump as before (docs/performance.md, session 11); 1 MiB steps
// cost the SQL dump a little more.
constexpr uint64_t kWritebackStep = 2ull << 20;

std::atomic<bool> g_fail_syncs{false};  // pack_testing::SetFailSyncs

int FdatasyncPack(int fd) {
  if (g_fail_syncs) {
    errno = EIO;
    return -1;
  }
  return ::fdatasync(fd);
}

void PutU32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}
void PutU64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (56 - 8 * i));
}
uint32_t GetU32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | p[i];
  return v;
}
uint64_t GetU64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

std::string_view Bytes(const uint8_t* p, size_t n) {
  return std::string_view(reinterpret_cast<const char*>(p), n);
}

// Whether chunk record header `h` (with `extra` bytes of base id after the
// codec byte) is intact: its magic and its header hash.
bool ChunkHeaderIntact(const uint8_t* h, size_t extra) {
  return GetU32(h) == kRecordMagic &&
         GetU64(h + 29 + extra) == XXH3_64bits(h, kHashedHeader + extra);
}

// Writes all of `parts`, one after the other, at `off`: one pwritev unless
// the kernel takes less. `what()` names the file in an error; it is called
// only then (an append must not build a path string).
template <typename What>
Status WriteAll(int fd, std::span<const std::string_view> parts, uint64_t off, const What& what) {
  iovec iov[2 * PackWriter::kMaxAppendBatch];  // A header and a payload per record.
  assert(parts.size() <= std::size(iov));
  size_t n = 0;
  for (std::string_view p : parts) {
    if (!p.empty()) iov[n++] = iovec{const_cast<char*>(p.data()), p.size()};
  }
  for (size_t i = 0; i < n;) {
    ssize_t done = ::pwritev(fd, iov + i, static_cast<int>(n - i), static_cast<off_t>(off));
    if (done < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, what());
    }
    size_t left = static_cast<size_t>(done);
    off += left;
    while (i < n && left >= iov[i].iov_len) left -= iov[i++].iov_len;
    if (i < n) {  // A short write: the rest of this part next.
      iov[i].iov_base = static_cast<char*>(iov[i].iov_base) + left;
      iov[i].iov_len -= left;
    }
  }
  return Status::Ok();
}

// Reads exactly `len` bytes at `off`; end of file first is Corruption.
Status ReadAll(int fd, void* buf, size_t len, uint64_t off, const std::string& what) {
  char* p = static_cast<char*>(buf);
  while (len > 0) {
    ssize_t n = ::pread(fd, p, len, static_cast<off_t>(off));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, what);
    }
    if (n == 0) return Status::Corruption(what + ": pack is truncated");
    p += n;
    len -= static_cast<size_t>(n);
    off += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

}  // namespace

std::string PackPath(const std::string& packs_dir, uint32_t pack) {
  char name[32];
  std::snprintf(name, sizeof(name), "/%08u.pack", pack);
  return packs_dir + name;
}

Result<uint64_t> VerifyPackHeader(const std::string& packs_dir, uint32_t pack) {
  const std::string path = PackPath(packs_dir, pack);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::Corruption("pack file missing: " + path);
    return Status::FromErrno(errno, path);
  }
  uint8_t h[kPackHeaderSize];
  Status st = ReadAll(fd, h, sizeof(h), 0, path);
  struct stat sb {};
  if (st.ok() && ::fstat(fd, &sb) != 0) st = Status::FromErrno(errno, path);
  ::close(fd);
  SNAPFS_RETURN_IF_ERROR(st);
  if (std::memcmp(h, kPackMagic, 8) != 0 || GetU32(h + 8) != kPackVersion || GetU32(h + 12) != pack)
    return Status::Corruption(path + ": damaged pack header");
  return static_cast<uint64_t>(sb.st_size);
}

Result<std::vector<PackFileInfo>> ListPacks(const std::string& packs_dir) {
  DIR* d = ::opendir(packs_dir.c_str());
  if (d == nullptr) return Status::FromErrno(errno, packs_dir);
  std::vector<PackFileInfo> out;
  while (dirent* e = ::readdir(d)) {
    unsigned n = 0;
    char tail[8] = {};
    if (std::sscanf(e->d_name, "%8u.%5s", &n, tail) != 2 || std::strcmp(tail, "pack") != 0 ||
        PackPath("", n) != "/" + std::string(e->d_name))
      continue;
    struct stat st {};
    if (::stat(PackPath(packs_dir, n).c_str(), &st) != 0) continue;  // Removed meanwhile.
    out.push_back(PackFileInfo{n, static_cast<uint64_t>(st.st_size)});
  }
  ::closedir(d);
  std::sort(out.begin(), out.end(),
            [](const PackFileInfo& a, const PackFileInfo& b) { return a.pack < b.pack; });
  return out;
}

Status ScanCommits(const std::string& packs_dir, uint32_t pack,
                   const std::function<void(uint64_t g, std::string batch)>& fn) {
  const std::string path = PackPath(packs_dir, pack);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, path);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat sb {};
  if (::fstat(fd, &sb) != 0) return Status::FromErrno(errno, path);
  const uint64_t size = static_cast<uint64_t>(sb.st_size);
  // Reads exactly n bytes at off; false at the end of the file.
  auto read = [&](void* buf, size_t n, uint64_t off) -> Result<bool> {
    if (off > size || n > size - off) return false;
    SNAPFS_RETURN_IF_ERROR(ReadAll(fd, buf, n, off, path));
    return true;
  };
  uint64_t off = kPackHeaderSize;
  for (;;) {
    uint8_t h[kDeltaRecordHeaderSize];
    SNAPFS_ASSIGN_OR_RETURN(bool got, read(h, 4, off));
    if (!got) return Status::Ok();
    const uint32_t magic = GetU32(h);
    if (magic == kRecordMagic) {
      SNAPFS_ASSIGN_OR_RETURN(got, read(h, kRecordHeaderSize, off));
      if (!got) return Status::Ok();
      const size_t extra = h[20] == static_cast<uint8_t>(Codec::kZstdDelta) ? 16 : 0;
      if (extra > 0) {
        SNAPFS_ASSIGN_OR_RETURN(got, read(h, kDeltaRecordHeaderSize, off));
        if (!got) return Status::Ok();
      }
      if (!ChunkHeaderIntact(h, extra)) return Status::Ok();
      off += kRecordHeaderSize + extra + GetU32(h + 25 + extra);
    } else if (magic == kCommitMagic) {
      SNAPFS_ASSIGN_OR_RETURN(got, read(h, kCommitHeaderSize, off));
      if (!got || GetU64(h + 16) != XXH3_64bits(h, kHashedCommitHeader)) return Status::Ok();
      const uint32_t len = GetU32(h + 12);
      if (len > kMaxCommitBytes) return Status::Ok();
      std::string batch(len, '\0');
      SNAPFS_ASSIGN_OR_RETURN(got, read(batch.data(), len, off + kCommitHeaderSize));
      if (!got || GetU64(h + 24) != XXH3_64bits(batch.data(), batch.size())) return Status::Ok();
      fn(GetU64(h + 4), std::move(batch));
      off += kCommitHeaderSize + len;
    } else {
      return Status::Ok();
    }
  }
}

PackWriter::PackWriter(std::string packs_dir, uint64_t target_size, uint64_t flush_step)
    : dir_(std::move(packs_dir)), target_size_(target_size), flush_step_(flush_step) {}

PackWriter::~PackWriter() {
  if (flusher_.joinable()) {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    flush_cv_.notify_all();
    flusher_.join();
  }
  for (int fd : unsynced_)
    if (fd != fd_) ::close(fd);
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<PackWriter>> PackWriter::Open(std::string packs_dir,
                                                     uint64_t target_size, uint64_t flush_step) {
  DIR* d = ::opendir(packs_dir.c_str());
  if (d == nullptr) return Status::FromErrno(errno, packs_dir);
  uint32_t highest = 0;
  while (dirent* e = ::readdir(d)) {
    unsigned n = 0;
    char tail[8] = {};
    if (std::sscanf(e->d_name, "%8u.%5s", &n, tail) == 2 && std::strcmp(tail, "pack") == 0 &&
        n > highest)
      highest = n;
  }
  ::closedir(d);
  std::unique_ptr<PackWriter> w(new PackWriter(std::move(packs_dir), target_size, flush_step));
  {
    std::lock_guard lock(w->mu_);
    SNAPFS_RETURN_IF_ERROR(w->StartPack(highest + 1));
  }
  if (flush_step > 0) w->flusher_ = std::thread([p = w.get()] { p->FlushLoop(); });
  return w;
}

void PackWriter::FlushLoop() {
  std::unique_lock lock(mu_);
  for (;;) {
    flush_cv_.wait(lock, [this] { return stopping_ || since_flush_ >= flush_step_; });
    if (stopping_) return;
    since_flush_ = 0;
    lock.unlock();
    Status st = Sync();
    lock.lock();
    flushes_++;
    if (!st.ok() && flush_error_.ok()) flush_error_ = std::move(st);
  }
}

uint64_t PackWriter::background_syncs() {
  std::lock_guard lock(mu_);
  return flushes_;
}

Status PackWriter::StartPack(uint32_t number) {
  std::string path = PackPath(dir_, number);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Status::FromErrno(errno, path);
  uint8_t header[kPackHeaderSize];
  std::memcpy(header, kPackMagic, 8);
  PutU32(header + 8, kPackVersion);
  PutU32(header + 12, number);
  const std::string_view part = Bytes(header, sizeof(header));
  Status st = WriteAll(fd, {&part, 1}, 0, [&] { return path; });
  if (!st.ok()) {
    ::close(fd);
    ::unlink(path.c_str());
    return st;
  }
  // The previous pack joins unsynced_, which owns it, even if it was synced
  // already: a Sync() in progress may be using its fd right now. The next
  // Sync() syncs and closes it.
  if (fd_ >= 0 && std::find(unsynced_.begin(), unsynced_.end(), fd_) == unsynced_.end())
    unsynced_.push_back(fd_);
  fd_ = fd;
  pack_ = number;
  end_ = kPackHeaderSize;
  written_back_ = 0;
  unsynced_.push_back(fd);
  return Status::Ok();
}

Result<ChunkLocation> PackWriter::Append(const ChunkId& id, Codec codec, uint32_t raw_len,
                                         std::string_view payload, const ChunkId& base) {
  const ChunkRecord record{id, codec, raw_len, payload, base};
  ChunkLocation loc;
  SNAPFS_RETURN_IF_ERROR(AppendChunks({&record, 1}, &loc));
  return loc;
}

Status PackWriter::AppendChunks(std::span<const ChunkRecord> records, ChunkLocation* locs) {
  assert(records.size() <= kMaxAppendBatch);
  uint8_t headers[kMaxAppendBatch][kDeltaRecordHeaderSize];
  std::string_view parts[2 * kMaxAppendBatch];
  size_t n = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    const ChunkRecord& r = records[i];
    const bool delta = r.codec == Codec::kZstdDelta;
    const size_t extra = delta ? 16 : 0;  // The base id, after the codec byte.
    uint8_t* header = headers[i];
    PutU32(header, kRecordMagic);
    std::memcpy(header + 4, r.id.bytes.data(), 16);
    header[20] = static_cast<uint8_t>(r.codec);
    if (delta) std::memcpy(header + 21, r.base.bytes.data(), 16);
    PutU32(header + 21 + extra, r.raw_len);
    PutU32(header + 25 + extra, static_cast<uint32_t>(r.payload.size()));
    PutU64(header + 29 + extra, XXH3_64bits(header, kHashedHeader + extra));
    PutU64(header + 37 + extra, XXH3_64bits(r.payload.data(), r.payload.size()));
    parts[n++] = Bytes(header, kRecordHeaderSize + extra);
    parts[n++] = r.payload;
  }
  SNAPFS_ASSIGN_OR_RETURN(auto at, AppendParts({parts, n}));
  for (size_t i = 0; i < records.size(); ++i) {
    const ChunkRecord& r = records[i];
    const bool delta = r.codec == Codec::kZstdDelta;
    locs[i] = ChunkLocation{r.codec, r.raw_len, static_cast<uint32_t>(r.payload.size()), at.first,
                            at.second, delta ? r.base : ChunkId{}};
    at.second += parts[2 * i].size() + parts[2 * i + 1].size();
  }
  return Status::Ok();
}

Status PackWriter::AppendCommit(uint64_t g, std::string_view batch) {
  if (batch.size() > kMaxCommitBytes)
    return Status(Code::kTooBig, "commit of generation " + std::to_string(g) + " is too large");
  uint8_t header[kCommitHeaderSize];
  PutU32(header, kCommitMagic);
  PutU64(header + 4, g);
  PutU32(header + 12, static_cast<uint32_t>(batch.size()));
  PutU64(header + 16, XXH3_64bits(header, kHashedCommitHeader));
  PutU64(header + 24, XXH3_64bits(batch.data(), batch.size()));
  const std::string_view parts[] = {Bytes(header, sizeof(header)), batch};
  return AppendParts(parts).status();
}

Result<std::pair<uint32_t, uint64_t>> PackWriter::AppendParts(
    std::span<const std::string_view> parts) {
  uint64_t len = 0;
  for (std::string_view p : parts) len += p.size();
  std::pair<uint32_t, uint64_t> at;
  WritebackRange kick;
  bool flush = false;
  {
    std::lock_guard lock(mu_);
    if (end_ >= target_size_) SNAPFS_RETURN_IF_ERROR(StartPack(pack_ + 1));
    Status st = WriteAll(fd_, parts, end_, [&] { return PackPath(dir_, pack_); });
    if (!st.ok()) {
      // Cut off the partial records so the next append starts clean.
      if (::ftruncate(fd_, static_cast<off_t>(end_)) != 0) { /* reported by st */ }
      return st;
    }
    if (std::find(unsynced_.begin(), unsynced_.end(), fd_) == unsynced_.end())
      unsynced_.push_back(fd_);
    at = {pack_, end_};
    end_ += len;
    if (end_ - written_back_ >= kWritebackStep) {
      kick = WritebackRange{fd_, written_back_, end_ - written_back_};
      written_back_ = end_;
    }
    const uint64_t before = since_flush_;
    since_flush_ += len;
    flush = flush_step_ > 0 && before < flush_step_ && since_flush_ >= flush_step_;
  }
  if (kick.fd >= 0) StartWriteback(kick);
  if (flush) flush_cv_.notify_one();
  return at;
}

void PackWriter::StartWriteback(const WritebackRange& r) {
  // Outside mu_, so other appends go on meanwhile (starting the writes
  // allocates the blocks and may wait for the disk's queue). Only Sync
  // closes a pack's fd, under sync_mu_: while we hold it the fd stays ours.
  // A Sync in progress (often the background one) or the next one writes
  // these bytes anyway.
  std::unique_lock sync_lock(sync_mu_, std::try_to_lock);
  if (!sync_lock.owns_lock()) return;
  // Only starts the writes; Sync waits for them, and reports a failure.
  (void)::sync_file_range(r.fd, static_cast<off_t>(r.offset), static_cast<off_t>(r.len),
                          SYNC_FILE_RANGE_WRITE);
}

Status PackWriter::Sync() {
  std::lock_guard sync_lock(sync_mu_);
  std::vector<int> fds;
  Status result;
  {
    std::lock_guard lock(mu_);
    fds.swap(unsynced_);
    result = std::exchange(flush_error_, Status::Ok());
  }
  std::vector<int> failed;
  // Start the writes of every pack first, so the disk gets them all at once
  // rather than one pack's after the other's are done.
  for (int fd : fds) (void)::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
  for (int fd : fds) {
    if (FdatasyncPack(fd) != 0) {
      if (result.ok()) result = Status::FromErrno(errno, "fdatasync pack");
      failed.push_back(fd);
    }
  }
  std::lock_guard lock(mu_);
  for (int fd : fds) {
    // Appended to or rolled over while we synced: unsynced_ owns it again.
    if (fd == fd_ || std::find(unsynced_.begin(), unsynced_.end(), fd) != unsynced_.end())
      continue;
    if (std::find(failed.begin(), failed.end(), fd) != failed.end()) {
      unsynced_.push_back(fd);  // The next Sync retries it.
      continue;
    }
    ::close(fd);  // A rolled-over pack: nobody appends to it again.
  }
  if (!result.ok() && std::find(unsynced_.begin(), unsynced_.end(), fd_) == unsynced_.end())
    unsynced_.push_back(fd_);  // Keep the current pack marked unsynced too.
  return result;
}

Status PackWriter::Rollover() {
  std::lock_guard lock(mu_);
  if (end_ <= kPackHeaderSize) return Status::Ok();
  return StartPack(pack_ + 1);
}

uint32_t PackWriter::current_pack() {
  std::lock_guard lock(mu_);
  return pack_;
}

struct PackReader::OpenPack {
  explicit OpenPack(int f) : fd(f) {}
  ~OpenPack() { ::close(fd); }
  OpenPack(const OpenPack&) = delete;
  OpenPack& operator=(const OpenPack&) = delete;
  const int fd;
};

PackReader::PackReader(std::string packs_dir, size_t max_open)
    : dir_(std::move(packs_dir)), max_open_(std::max<size_t>(max_open, 1)) {}

PackReader::~PackReader() = default;

Result<std::shared_ptr<PackReader::OpenPack>> PackReader::Fd(uint32_t pack) {
  std::lock_guard lock(mu_);
  auto it = fds_.find(pack);
  if (it != fds_.end()) {
    it->second.last_use = ++uses_;
    return it->second.pack;
  }
  if (fds_.size() >= max_open_) {
    auto oldest = std::min_element(fds_.begin(), fds_.end(), [](const auto& a, const auto& b) {
      return a.second.last_use < b.second.last_use;
    });
    fds_.erase(oldest);  // A read in progress keeps its fd until it is done.
  }
  std::string path = PackPath(dir_, pack);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && (errno == EMFILE || errno == ENFILE) && !fds_.empty()) {
    fds_.clear();
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0) {
    if (errno == ENOENT) return Status::NotFound("pack file missing: " + path);
    return Status::FromErrno(errno, path);
  }
  auto open = std::make_shared<OpenPack>(fd);
  fds_.emplace(pack, Kept{open, ++uses_});
  return open;
}

size_t PackReader::open_count() {
  std::lock_guard lock(mu_);
  return fds_.size();
}

void PackReader::Forget(uint32_t pack) {
  std::lock_guard lock(mu_);
  fds_.erase(pack);
}

void PackReader::ForgetRemoved() {
  std::lock_guard lock(mu_);
  for (auto it = fds_.begin(); it != fds_.end();) {
    struct stat st {};
    if (::fstat(it->second.pack->fd, &st) == 0 && st.st_nlink == 0) it = fds_.erase(it);
    else ++it;
  }
}

Result<std::string> PackReader::Read(const ChunkId& id, const ChunkLocation& loc) {
  SNAPFS_ASSIGN_OR_RETURN(std::shared_ptr<OpenPack> open, Fd(loc.pack));
  const int fd = open->fd;
  const std::string where = "chunk " + id.Hex() + " (pack " + std::to_string(loc.pack) +
                            " offset " + std::to_string(loc.offset) + ")";
  // The header first: the payload buffer is sized only once a record whose
  // header hash checks out agrees with the index, so a damaged index entry
  // cannot make us allocate and read up to 4 GiB.
  // Its size follows from the codec the index gives; a record whose codec
  // byte disagrees fails the header hash or the comparison below.
  const bool delta = loc.codec == Codec::kZstdDelta;
  const size_t extra = delta ? 16 : 0;
  uint8_t h[kDeltaRecordHeaderSize];
  SNAPFS_RETURN_IF_ERROR(ReadAll(fd, h, kRecordHeaderSize + extra, loc.offset, where));
  if (!ChunkHeaderIntact(h, extra)) return Status::Corruption(where + ": damaged record header");
  if (std::memcmp(h + 4, id.bytes.data(), 16) != 0)
    return Status::Corruption(where + ": record holds another chunk");
  if (h[20] != static_cast<uint8_t>(loc.codec) || GetU32(h + 21 + extra) != loc.raw_len ||
      GetU32(h + 25 + extra) != loc.stored_len ||
      (delta && std::memcmp(h + 21, loc.base.bytes.data(), 16) != 0))
    return Status::Corruption(where + ": record disagrees with the index");
  std::string payload(loc.stored_len, '\0');
  SNAPFS_RETURN_IF_ERROR(ReadAll(fd, payload.data(), payload.size(),
                                 loc.offset + kRecordHeaderSize + extra, where));
  if (GetU64(h + 37 + extra) != XXH3_64bits(payload.data(), payload.size()))
    return Status::Corruption(where + ": payload checksum mismatch");
  return payload;
}

namespace pack_testing {
void SetFailSyncs(bool fail) { g_fail_syncs = fail; }
}  // namespace pack_testing

}  // namespace snapfs::store
