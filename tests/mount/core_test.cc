// What snapfs promises through a real mount: bytes written at any offset come
// back, duplicate data costs (almost) nothing, nothing done through the mount
// destroys an earlier version (checked through the public Store API, as the
// time-travel tools read it), closed and fsynced data survive kill -9, a big
// directory works, permissions hold for other users with allow_other, and
// statfs reports the store's disk.
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "store/store.h"
#include "tests/mount/mount_fixture.h"
#include "tests/store/test_util.h"

namespace snapfs::testing {
namespace {

using store::DirentRecord;
using store::Generation;
using store::Ino;
using store::InodeRecord;
using store::kLatest;
using store::kRootIno;
using store::Store;

constexpr size_t kMiB = size_t{1} << 20;

std::string Err(const std::string& what) { return what + ": " + std::strerror(errno); }

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// --- The store, read through its public API ----------------------------------

// Opens the store at `path`: read-only (a RocksDB secondary, as the tools do
// while the daemon runs; it sees every generation committed so far) or
// read-write (only when unmounted).
Result<std::unique_ptr<Store>> OpenStore(const std::string& path, bool read_only) {
  store::OpenOptions options;
  options.read_only = read_only;
  options.compress_threads = 1;
  SNAPFS_ASSIGN_OR_RETURN(std::unique_ptr<Store> s, Store::Open(path, options));
  SNAPFS_RETURN_IF_ERROR(s->CatchUp());
  return s;
}

// The newest generation of the mounted store `m`.
Generation LatestGeneration(const SnapfsMount& m) {
  Result<std::unique_ptr<Store>> s = OpenStore(m.store(), /*read_only=*/true);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? (*s)->latest() : 0;
}

// The bytes of version `rec` of file `ino`: its extents, each chunk fetched
// from the chunk store; holes are zeros.
Result<std::string> StoredBytes(Store& s, Ino ino, const InodeRecord& rec) {
  SNAPFS_ASSIGN_OR_RETURN(std::vector<store::Extent> extents, s.GetExtents(ino, rec));
  std::string bytes(rec.size, '\0');
  for (const store::Extent& e : extents) {
    SNAPFS_ASSIGN_OR_RETURN(store::ChunkBytes chunk, s.chunks().Get(e.id));
    if (e.end() > rec.size || size_t{e.chunk_offset} + e.length > chunk->size())
      return Status::Corruption("inode " + std::to_string(ino) + ": extent out of bounds");
    std::memcpy(bytes.data() + e.offset, chunk->data() + e.chunk_offset, e.length);
  }
  return bytes;
}

struct StoredFile {
  Ino ino = 0;
  InodeRecord rec;
};

// What `path` (relative to the root, '/'-separated) named at generation `at`,
// or nullopt if nothing.
Result<std::optional<StoredFile>> StoredPath(Store& s, std::string_view path, Generation at) {
  Ino ino = kRootIno;
  while (!path.empty()) {
    const size_t slash = path.find('/');
    const std::string_view name = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
    SNAPFS_ASSIGN_OR_RETURN(std::optional<DirentRecord> d, s.Lookup(ino, name, at));
    if (!d) return std::optional<StoredFile>();
    ino = d->child;
  }
  SNAPFS_ASSIGN_OR_RETURN(std::optional<InodeRecord> rec, s.GetInode(ino, at));
  if (!rec) return Status::Corruption("no inode " + std::to_string(ino) + " for an entry");
  return std::optional<StoredFile>(StoredFile{ino, std::move(*rec)});
}

// The content of `path` at `at`, or "<absent>".
std::string StoredContent(Store& s, std::string_view path, Generation at) {
  Result<std::optional<StoredFile>> f = StoredPath(s, path, at);
  if (!f.ok()) return "<error: " + f.status().ToString() + ">";
  if (!*f) return "<absent>";
  Result<std::string> bytes = StoredBytes(s, (*f)->ino, (*f)->rec);
  return bytes.ok() ? *bytes : "<error: " + bytes.status().ToString() + ">";
}

// A tree as comparable descriptions: type, permission bits, link count,
// owner and size (not for directories), with the content of a file or the
// target of a symlink kept apart so a mismatch can say where.
struct Node {
  std::string meta;
  std::string bytes;
  bool operator==(const Node&) const = default;
};
using Tree = std::map<std::string, Node>;

std::string Meta(uint32_t mode, uint64_t nlink, uint32_t uid, uint32_t gid, uint64_t size) {
  char buf[96];
  std::snprintf(buf, sizeof(buf), "type %o perms %04o nlink %llu uid %u gid %u", mode >> 12,
                mode & 07777, static_cast<unsigned long long>(nlink), uid, gid);
  std::string m = buf;
  if (!S_ISDIR(mode)) m += " size " + std::to_string(size);
  return m;
}

Status WalkStore(Store& s, Ino dir, Generation at, const std::string& prefix, Tree* out) {
  std::vector<std::pair<std::string, DirentRecord>> entries;
  SNAPFS_RETURN_IF_ERROR(s.ListDir(dir, at, [&](std::string_view name, const DirentRecord& d) {
    if (name != "..") entries.emplace_back(std::string(name), d);
    return true;
  }));
  for (const auto& [name, d] : entries) {
    const std::string path = prefix + name;
    SNAPFS_ASSIGN_OR_RETURN(std::optional<InodeRecord> rec, s.GetInode(d.child, at));
    if (!rec) return Status::Corruption(path + ": entry names a missing inode");
    Node n;
    n.meta = Meta(rec->mode, rec->nlink, rec->uid, rec->gid, rec->size);
    if (d.type != rec->mode >> 12) n.meta += " (entry type " + std::to_string(d.type) + ")";
    if (S_ISREG(rec->mode)) {
      SNAPFS_ASSIGN_OR_RETURN(n.bytes, StoredBytes(s, d.child, *rec));
    } else if (S_ISLNK(rec->mode)) {
      n.bytes = rec->symlink;
    }
    (*out)[path] = std::move(n);
    if (S_ISDIR(rec->mode)) SNAPFS_RETURN_IF_ERROR(WalkStore(s, d.child, at, path + "/", out));
  }
  return Status::Ok();
}

// The whole tree as the store holds it at generation `at`.
Result<Tree> StoredTree(Store& s, Generation at) {
  Tree out;
  SNAPFS_RETURN_IF_ERROR(WalkStore(s, kRootIno, at, "", &out));
  return out;
}

// The tree below `root` as seen through system calls.
Tree LiveTree(const std::string& root) {
  Tree out;
  for (auto it = std::filesystem::recursive_directory_iterator(root);
       it != std::filesystem::recursive_directory_iterator(); ++it) {
    const std::string path = it->path().lexically_relative(root);
    struct stat st {};
    Node n;
    if (::lstat(it->path().c_str(), &st) != 0) {
      n.meta = Err("lstat");
    } else {
      n.meta = Meta(st.st_mode, st.st_nlink, st.st_uid, st.st_gid, st.st_size);
      if (S_ISREG(st.st_mode)) {
        std::string error;
        n.bytes = ReadFile(it->path(), &error);
        if (!error.empty()) n.meta += " " + error;
      } else if (S_ISLNK(st.st_mode)) {
        n.bytes = std::filesystem::read_symlink(it->path());
      }
    }
    out[path] = std::move(n);
  }
  return out;
}

::testing::AssertionResult SameTree(const Tree& want, const Tree& got) {
  std::vector<std::string> diffs;
  for (const auto& [path, n] : want) {
    auto it = got.find(path);
    if (it == got.end()) {
      diffs.push_back("missing " + path + " (" + n.meta + ")");
    } else if (it->second.meta != n.meta) {
      diffs.push_back(path + ": " + it->second.meta + ", expected " + n.meta);
    } else if (it->second.bytes != n.bytes) {
      const std::string& a = it->second.bytes;
      const size_t common = std::min(a.size(), n.bytes.size());
      const size_t at = static_cast<size_t>(
          std::mismatch(a.begin(), a.begin() + static_cast<ptrdiff_t>(common), n.bytes.begin()).first -
          a.begin());
      diffs.push_back(path + ": " + std::to_string(a.size()) + " bytes, expected " +
                      std::to_string(n.bytes.size()) + ", first difference at " +
                      std::to_string(at));
    }
  }
  for (const auto& [path, n] : got)
    if (!want.contains(path)) diffs.push_back("extra " + path + " (" + n.meta + ")");
  if (diffs.empty()) return ::testing::AssertionSuccess();
  ::testing::AssertionResult r = ::testing::AssertionFailure();
  r << diffs.size() << " difference(s):";
  for (size_t i = 0; i < diffs.size() && i < 20; ++i) r << "\n  " << diffs[i];
  return r;
}

// Disk usage of everything below `dir`, as du counts it (allocated blocks).
uint64_t DiskUsage(const std::string& dir) {
  uint64_t bytes = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    struct stat st {};
    if (::lstat(e.path().c_str(), &st) == 0) bytes += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  return bytes;
}

// Names in directory `dir` (without "." and ".."), by readdir.
std::vector<std::string> ReadDirNames(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    ADD_FAILURE() << Err("opendir " + dir);
    return names;
  }
  while (dirent* e = ::readdir(d)) {
    const std::string_view n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  ::closedir(d);
  return names;
}

::testing::AssertionResult PwriteAll(int fd, std::string_view bytes, uint64_t offset) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done,
                               static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ::testing::AssertionFailure() << Err("pwrite at " + std::to_string(offset));
    done += static_cast<size_t>(n);
  }
  return ::testing::AssertionSuccess();
}

using CoreTest = MountTest;

// --- Bytes -----------------------------------------------------------------

TEST_F(CoreTest, RandomOffsetWritesReadBackByteForByteAndAfterRemount) {
  std::mt19937_64 rng(20240601);
  std::string model;  // What the file must hold.
  const std::string path = Path("random.bin");
  constexpr uint64_t kSpan = 24 * kMiB;
  struct Range { uint64_t offset; size_t len; };
  std::vector<Range> written;
  int fsyncs = 0;
  // Three sessions, each on top of what the previous ones committed.
  for (int session = 0; session < 3; ++session) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << Err("open");
    for (int i = 0; i < 150; ++i) {
      const unsigned kind = rng() % 100;
      const size_t len = kind < 70 ? 1 + rng() % 8192
                       : kind < 95 ? 8192 + rng() % (256 << 10)
                                   : (256 << 10) + rng() % (2 * kMiB);
      uint64_t offset = rng() % kSpan;
      if (!written.empty() && rng() % 4 == 0) {  // Overlap an earlier write.
        const Range& r = written[rng() % written.size()];
        offset = r.offset + rng() % r.len;
      }
      const std::string data = SeededBytes(len, rng());
      ASSERT_TRUE(PwriteAll(fd, data, offset));
      if (model.size() < offset + len) model.resize(offset + len, '\0');
      model.replace(offset, len, data);
      written.push_back({offset, len});
      if (rng() % 25 == 0) {
        ASSERT_EQ(::fsync(fd), 0) << Err("fsync");
        ++fsyncs;
      }
      if (rng() % 10 == 0) {  // Read back a random range through the descriptor.
        const uint64_t at = rng() % model.size();
        std::string got(std::min<size_t>(1 + rng() % (512 << 10), model.size() - at), '\0');
        ASSERT_EQ(::pread(fd, got.data(), got.size(), static_cast<off_t>(at)),
                  static_cast<ssize_t>(got.size()));
        ASSERT_TRUE(got == std::string_view(model).substr(at, got.size()))
            << "session " << session << ", write " << i << ": pread at " << at;
      }
    }
    ASSERT_EQ(::close(fd), 0) << Err("close");
    ASSERT_TRUE(FileHasBytes(path, model)) << "after session " << session;
  }
  std::printf("[ figures  ] %zu writes (%d fsyncs), file of %zu bytes\n", written.size(), fsyncs,
              model.size());
  ASSERT_TRUE(mount().Remount());
  EXPECT_TRUE(FileHasBytes(path, model)) << "after a remount";
}

// --- Deduplication ---------------------------------------------------------

// Store growth of writing `data` to `first`, then to `second` (each followed
// by an unmount, so everything is on disk). Expects the second to cost less
// than 5 % of the first.
void ExpectSecondWriteCostsUnderFivePercent(SnapfsMount& m, const std::string& data,
                                            const std::string& first, const std::string& second) {
  ASSERT_TRUE(m.Unmount());
  const uint64_t empty = DiskUsage(m.store());
  ASSERT_TRUE(m.Mount());
  ASSERT_TRUE(WriteFile(m.mountpoint() + "/" + first, data));
  ASSERT_TRUE(m.Unmount());
  const uint64_t once = DiskUsage(m.store());
  ASSERT_TRUE(m.Mount());
  ASSERT_TRUE(WriteFile(m.mountpoint() + "/" + second, data));
  EXPECT_TRUE(FileHasBytes(m.mountpoint() + "/" + second, data));
  ASSERT_TRUE(m.Unmount());
  const uint64_t twice = DiskUsage(m.store());
  ASSERT_GT(once, empty);
  const uint64_t first_growth = once - empty;
  const uint64_t second_growth = twice > once ? twice - once : 0;
  std::printf("[ figures  ] store: %llu bytes empty; +%llu for the first %zu bytes; +%llu for "
              "the same bytes again (%.2f %%)\n",
              static_cast<unsigned long long>(empty), static_cast<unsigned long long>(first_growth),
              data.size(), static_cast<unsigned long long>(second_growth),
              100.0 * static_cast<double>(second_growth) / static_cast<double>(first_growth));
  EXPECT_GE(first_growth, data.size() * 9 / 10) << "random bytes do not compress";
  EXPECT_LT(second_growth, first_growth / 20);
  ASSERT_TRUE(m.Mount());
  EXPECT_TRUE(FileHasBytes(m.mountpoint() + "/" + first, data));
}

TEST_F(CoreTest, SameFiftyMegabytesInASecondFileGrowTheStoreByUnderFivePercent) {
  ExpectSecondWriteCostsUnderFivePercent(mount(), SeededBytes(50'000'000, 50), "first.bin",
                                         "second.bin");
}

TEST_F(CoreTest, RewritingAFileWithTheSameFiftyMegabytesGrowsTheStoreByUnderFivePercent) {
  ExpectSecondWriteCostsUnderFivePercent(mount(), SeededBytes(50'000'000, 51), "dump.sql",
                                         "dump.sql");
}

// --- History ---------------------------------------------------------------

TEST_F(CoreTest, RmRfOfEverythingLeavesTheEarlierTreeInTheStore) {
  std::map<std::string, std::string> written;
  auto put = [&](const std::string& rel, std::string bytes) {
    ASSERT_TRUE(WriteFile(Path(rel), bytes));
    written[rel] = std::move(bytes);
  };
  for (const char* d : {"dumps", "dumps/2024-06-01", "empty", "deep", "deep/a", "deep/a/b"})
    ASSERT_EQ(::mkdir(Path(d).c_str(), 0755), 0) << d;
  std::string dump = SeededBytes(kMiB, 60);
  dump += dump.substr(0, 300'000);  // Some repetition: dedup inside a file.
  put("dumps/2024-06-01/db.sql", dump);
  put("dumps/2024-06-01/schema.sql", "CREATE TABLE t (id int);\n");
  put("big.bin", SeededBytes(6 * kMiB + 123, 61));  // Past the 4 MiB streaming threshold.
  put("zero", "");
  put(".hidden", "dot file");
  put("deep/a/b/leaf", "leaf");
  put("private", "0600 and not root's");
  ASSERT_EQ(::chmod(Path("private").c_str(), 0600), 0);
  ASSERT_EQ(::chown(Path("private").c_str(), 1234, 5678), 0);
  ASSERT_EQ(::symlink("2024-06-01", Path("dumps/latest").c_str()), 0);
  ASSERT_EQ(::link(Path("dumps/2024-06-01/db.sql").c_str(), Path("dumps/hard").c_str()), 0);
  written["dumps/hard"] = written["dumps/2024-06-01/db.sql"];
  ASSERT_EQ(::mkfifo(Path("fifo").c_str(), 0640), 0);

  const Tree before = LiveTree(mount().mountpoint());
  for (const auto& [rel, bytes] : written) {
    ASSERT_TRUE(before.contains(rel)) << rel;
    ASSERT_TRUE(before.at(rel).bytes == bytes) << rel << " does not read back as written";
  }
  const Generation g = LatestGeneration(mount());
  ASSERT_GT(g, 0u);

  const ProcessResult rm = RunProcess(
      {"sh", "-c", "rm -rf -- \"$1\"/* \"$1\"/.[!.]*", "sh", mount().mountpoint()});
  ASSERT_EQ(rm.exit_code, 0) << rm.output;
  ASSERT_EQ(ReadDirNames(mount().mountpoint()), std::vector<std::string>{});

  {  // While mounted, through a read-only store (as the tools read it).
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> s, OpenStore(mount().store(), true));
    ASSERT_GT(s->latest(), g);
    ASSERT_OK_AND_ASSIGN(Tree then, StoredTree(*s, g));
    EXPECT_TRUE(SameTree(before, then)) << "at generation " << g << ", while mounted";
    ASSERT_OK_AND_ASSIGN(Tree now, StoredTree(*s, kLatest));
    EXPECT_TRUE(SameTree(Tree{}, now)) << "now";
  }
  ASSERT_TRUE(mount().Unmount());
  {  // And after unmounting, opened read-write as an offline tool would.
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> s, OpenStore(mount().store(), false));
    ASSERT_OK_AND_ASSIGN(Tree then, StoredTree(*s, g));
    EXPECT_TRUE(SameTree(before, then)) << "at generation " << g << ", after unmount";
  }
}

TEST_F(CoreTest, TruncateLeavesTheEarlierContentInTheStore) {
  const std::string v1 = SeededBytes(2 * kMiB, 70);
  ASSERT_TRUE(WriteFile(Path("f"), v1));
  const Generation g1 = LatestGeneration(mount());
  ASSERT_EQ(::truncate(Path("f").c_str(), 1000), 0) << Err("truncate");
  const Generation g2 = LatestGeneration(mount());
  ASSERT_EQ(::truncate(Path("f").c_str(), 0), 0) << Err("truncate");
  EXPECT_TRUE(FileHasBytes(Path("f"), ""));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> s, OpenStore(mount().store(), true));
  EXPECT_TRUE(StoredContent(*s, "f", g1) == v1);
  EXPECT_TRUE(StoredContent(*s, "f", g2) == v1.substr(0, 1000));
  EXPECT_EQ(StoredContent(*s, "f", kLatest), "");
}

TEST_F(CoreTest, OpenWithTruncLeavesTheEarlierContentInTheStore) {
  const std::string v1 = SeededBytes(kMiB + 5, 71);
  const std::string v2 = SeededBytes(300'000, 72);
  ASSERT_TRUE(WriteFile(Path("dump.sql"), v1));
  const Generation g1 = LatestGeneration(mount());
  ASSERT_TRUE(WriteFile(Path("dump.sql"), v2));  // open(O_TRUNC), write, close: `> file`.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> s, OpenStore(mount().store(), true));
  EXPECT_TRUE(StoredContent(*s, "dump.sql", g1) == v1);
  EXPECT_TRUE(StoredContent(*s, "dump.sql", kLatest) == v2);
}

TEST_F(CoreTest, RenameOverLeavesTheReplacedFileInTheStore) {
  const std::string old_dump = SeededBytes(700'000, 73);
  const std::string new_dump = SeededBytes(800'000, 74);
  ASSERT_TRUE(WriteFile(Path("dump.sql"), old_dump));
  ASSERT_TRUE(WriteFile(Path("dump.sql.tmp"), new_dump));
  const Generation g1 = LatestGeneration(mount());
  ASSERT_EQ(::rename(Path("dump.sql.tmp").c_str(), Path("dump.sql").c_str()), 0) << Err("rename");
  EXPECT_TRUE(FileHasBytes(Path("dump.sql"), new_dump));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> s, OpenStore(mount().store(), true));
  EXPECT_TRUE(StoredContent(*s, "dump.sql", g1) == old_dump);
  EXPECT_TRUE(StoredContent(*s, "dump.sql.tmp", g1) == new_dump);
  EXPECT_TRUE(StoredContent(*s, "dump.sql", kLatest) == new_dump);
  EXPECT_EQ(StoredContent(*s, "dump.sql.tmp", kLatest), "<absent>");
}

TEST_F(CoreTest, UnlinkLeavesTheFileInTheStore) {
  const std::string data = SeededBytes(900'000, 75);
  ASSERT_EQ(::mkdir(Path("d").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(Path("d/f"), data));
  const Generation g1 = LatestGeneration(mount());
  ASSERT_EQ(::unlink(Path("d/f").c_str()), 0) << Err("unlink");
  ASSERT_EQ(::rmdir(Path("d").c_str()), 0) << Err("rmdir");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> s, OpenStore(mount().store(), true));
  EXPECT_TRUE(StoredContent(*s, "d/f", g1) == data);
  EXPECT_EQ(StoredContent(*s, "d/f", kLatest), "<absent>");
  EXPECT_EQ(StoredContent(*s, "d", kLatest), "<absent>");
}

int64_t WallNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One change made through the mount, the op its (last) generation must log,
// and what the tree must show at that generation.
struct Change {
  std::string what;
  std::function<bool()> run;  // The system calls; true if they all worked.
  store::Op op;
  std::function<::testing::AssertionResult(Store&, Generation)> check;
  Generation generations = 1;  // How many the system calls make.
};

::testing::AssertionResult Holds(bool ok, const std::string& what) {
  return ok ? ::testing::AssertionSuccess() : ::testing::AssertionFailure() << what;
}

TEST_F(CoreTest, EveryChangeIsAGenerationWithItsOpAndWallClockTime) {
  const std::string f = Path("f"), d = Path("d");
  auto inode = [](Store& s, std::string_view path, Generation g) -> std::optional<InodeRecord> {
    Result<std::optional<StoredFile>> r = StoredPath(s, path, g);
    if (!r.ok() || !*r) return std::nullopt;
    return (*r)->rec;
  };
  const timespec times[2] = {{1'000'000'000, 1}, {1'100'000'000, 123'456'789}};
  const std::vector<Change> changes = {
      {"create", [&] { const int fd = ::open(f.c_str(), O_WRONLY | O_CREAT, 0644);
                       return fd >= 0 && ::close(fd) == 0; },
       store::Op::kCreate,
       [&](Store& s, Generation g) { return Holds(StoredContent(s, "f", g).empty(), "f empty"); }},
      {"write and close",
       [&] {
         const int fd = ::open(f.c_str(), O_WRONLY);
         const bool ok = fd >= 0 && ::write(fd, "version 1", 9) == 9;
         return ::close(fd) == 0 && ok;
       },
       store::Op::kWrite,
       [&](Store& s, Generation g) { return Holds(StoredContent(s, "f", g) == "version 1", "v1"); }},
      {"write and fsync, still open",
       [&] {
         const int fd = ::open(f.c_str(), O_WRONLY | O_APPEND);
         const bool ok = fd >= 0 && ::write(fd, "+2", 2) == 2 && ::fsync(fd) == 0;
         return ::close(fd) == 0 && ok;
       },
       store::Op::kWrite,
       [&](Store& s, Generation g) { return Holds(StoredContent(s, "f", g) == "version 1+2", "v2"); }},
      {"mkdir", [&] { return ::mkdir(d.c_str(), 0750) == 0; }, store::Op::kMkdir,
       [&](Store& s, Generation g) {
         auto r = inode(s, "d", g);
         return Holds(r && S_ISDIR(r->mode) && (r->mode & 07777) == 0750, "d 0750");
       }},
      {"symlink", [&] { return ::symlink("f", Path("l").c_str()) == 0; }, store::Op::kSymlink,
       [&](Store& s, Generation g) {
         auto r = inode(s, "l", g);
         return Holds(r && S_ISLNK(r->mode) && r->symlink == "f", "l -> f");
       }},
      {"mknod", [&] { return ::mkfifo(Path("p").c_str(), 0600) == 0; }, store::Op::kMknod,
       [&](Store& s, Generation g) {
         auto r = inode(s, "p", g);
         return Holds(r && S_ISFIFO(r->mode), "p fifo");
       }},
      {"chmod", [&] { return ::chmod(f.c_str(), 0600) == 0; }, store::Op::kSetattr,
       [&](Store& s, Generation g) {
         auto r = inode(s, "f", g);
         return Holds(r && (r->mode & 07777) == 0600, "f 0600");
       }},
      {"chown", [&] { return ::chown(f.c_str(), 1234, 5678) == 0; }, store::Op::kSetattr,
       [&](Store& s, Generation g) {
         auto r = inode(s, "f", g);
         return Holds(r && r->uid == 1234 && r->gid == 5678 && (r->mode & 07777) == 0600,
                      "f 1234:5678 0600");
       }},
      {"utimens", [&] { return ::utimensat(AT_FDCWD, f.c_str(), times, 0) == 0; },
       store::Op::kSetattr,
       [&](Store& s, Generation g) {
         auto r = inode(s, "f", g);
         return Holds(r && r->mtime_ns == 1'100'000'000'123'456'789 &&
                          r->atime_ns == 1'000'000'000'000'000'001,
                      "f times");
       }},
      {"truncate", [&] { return ::truncate(f.c_str(), 3) == 0; }, store::Op::kTruncate,
       [&](Store& s, Generation g) { return Holds(StoredContent(s, "f", g) == "ver", "f ver"); }},
      {"link", [&] { return ::link(f.c_str(), Path("d/hard").c_str()) == 0; }, store::Op::kLink,
       [&](Store& s, Generation g) {
         auto r = inode(s, "f", g);
         return Holds(r && r->nlink == 2 && StoredContent(s, "d/hard", g) == "ver", "2 links");
       }},
      {"rename", [&] { return ::rename(f.c_str(), Path("d/moved").c_str()) == 0; },
       store::Op::kRename,
       [&](Store& s, Generation g) {
         return Holds(StoredContent(s, "f", g) == "<absent>" &&
                          StoredContent(s, "d/moved", g) == "ver",
                      "f moved to d/moved");
       }},
      {"unlink", [&] { return ::unlink(Path("d/hard").c_str()) == 0; }, store::Op::kUnlink,
       [&](Store& s, Generation g) {
         auto r = inode(s, "d/moved", g);
         return Holds(r && r->nlink == 1 && StoredContent(s, "d/hard", g) == "<absent>",
                      "d/hard gone");
       }},
      {"rmdir", [&] { return ::mkdir(Path("e").c_str(), 0755) == 0 && ::rmdir(Path("e").c_str()) == 0; },
       store::Op::kRmdir,
       [&](Store& s, Generation g) { return Holds(!inode(s, "e", g), "e gone"); },
       /*generations=*/2},
  };

  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> s, OpenStore(mount().store(), true));
  Generation last = s->latest();
  int64_t last_time = s->latest_time_ns();
  std::vector<Generation> at;
  std::string counts;
  for (const Change& c : changes) {
    const int64_t before = WallNs();
    ASSERT_TRUE(c.run()) << c.what << ": " << std::strerror(errno);
    const int64_t after = WallNs();
    ASSERT_OK(s->CatchUp());
    const Generation g = s->latest();
    ASSERT_GT(g, last) << c.what << " made no generation";
    EXPECT_EQ(g - last, c.generations) << c.what;
    counts += " " + c.what + ":" + std::to_string(g - last);
    ASSERT_OK_AND_ASSIGN(store::LogRecord log, s->GetLog(g));
    EXPECT_EQ(store::OpName(log.op), std::string(store::OpName(c.op))) << c.what;
    EXPECT_GE(log.time_ns, before) << c.what;
    EXPECT_LE(log.time_ns, after) << c.what;
    EXPECT_GE(log.time_ns, last_time) << c.what << ": time went backwards";
    EXPECT_TRUE(c.check(*s, g)) << c.what << " at generation " << g;
    ASSERT_OK_AND_ASSIGN(Generation by_time, s->GenerationAt(log.time_ns));
    EXPECT_EQ(by_time, g) << c.what;
    last = g;
    last_time = log.time_ns;
    at.push_back(g);
  }
  std::printf("[ figures  ] generations per change:%s\n", counts.c_str());
  // Every state is still there, as it was, after all the later changes.
  ASSERT_TRUE(mount().Unmount());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> after_all, OpenStore(mount().store(), false));
  for (size_t i = 0; i < changes.size(); ++i)
    EXPECT_TRUE(changes[i].check(*after_all, at[i])) << changes[i].what << " at " << at[i];
}

// --- Crashes ---------------------------------------------------------------

TEST_F(CoreTest, ClosedFileSurvivesKill9) {
  const std::string data = SeededBytes(3 * kMiB + 77, 80);
  ASSERT_TRUE(WriteFile(Path("closed.bin"), data, /*fsync=*/false));
  ASSERT_TRUE(mount().Kill9());
  ASSERT_TRUE(mount().Mount());
  EXPECT_TRUE(FileHasBytes(Path("closed.bin"), data));
}

TEST_F(CoreTest, FsyncedDataOfAnOpenFileSurvivesKill9) {
  const std::string v1 = SeededBytes(kMiB, 81);
  ASSERT_TRUE(WriteFile(Path("f"), v1));
  const Generation g1 = LatestGeneration(mount());
  const std::string patch = SeededBytes(100'000, 82);
  std::string v2 = v1;
  v2.replace(500'000, patch.size(), patch);
  v2 += SeededBytes(50'000, 83);
  {
    const int fd = ::open(Path("f").c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0) << Err("open");
    EXPECT_TRUE(PwriteAll(fd, patch, 500'000));
    EXPECT_TRUE(PwriteAll(fd, v2.substr(v1.size()), v1.size()));
    EXPECT_EQ(::fsync(fd), 0) << Err("fsync");
    // Killed while the file is still open: only fsync made it durable.
    EXPECT_TRUE(mount().Kill9());
    ::close(fd);
  }
  ASSERT_TRUE(mount().Mount());
  EXPECT_TRUE(FileHasBytes(Path("f"), v2));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> s, OpenStore(mount().store(), true));
  EXPECT_TRUE(StoredContent(*s, "f", g1) == v1);
}

TEST_F(CoreTest, Kill9LeavesEveryEarlierVersionIntact) {
  std::vector<std::pair<Generation, std::map<std::string, std::string>>> versions;
  std::map<std::string, std::string> now;
  for (int v = 0; v < 4; ++v) {
    now["dump.sql"] = SeededBytes(400'000 + 100'000 * static_cast<size_t>(v), 90 + v);
    now["log-" + std::to_string(v)] = "run " + std::to_string(v);
    for (const std::string& name : {std::string("dump.sql"), "log-" + std::to_string(v)}) {
      ASSERT_TRUE(WriteFile(Path(name), now[name], /*fsync=*/v % 2 == 0));
    }
    versions.emplace_back(LatestGeneration(mount()), now);
  }
  ASSERT_TRUE(mount().Kill9());
  ASSERT_TRUE(mount().Mount());
  for (const auto& [name, bytes] : now) EXPECT_TRUE(FileHasBytes(Path(name), bytes));
  ASSERT_TRUE(mount().Unmount());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> s, OpenStore(mount().store(), false));
  for (const auto& [g, files] : versions) {
    ASSERT_OK_AND_ASSIGN(Tree tree, StoredTree(*s, g));
    EXPECT_EQ(tree.size(), files.size()) << "generation " << g;
    for (const auto& [name, bytes] : files)
      EXPECT_TRUE(tree[name].bytes == bytes) << name << " at generation " << g;
  }
}

TEST_F(CoreTest, Kill9AtRandomPointsNeverDamagesAnEarlierVersion) {
  std::mt19937_64 rng(4242);
  std::map<std::string, std::string> closed;  // Every file whose close() succeeded.
  ASSERT_EQ(::mkdir(Path("w").c_str(), 0755), 0);
  int next = 0;
  for (int round = 0; round < 3; ++round) {
    // A writer streams new files (some fsynced) until the daemon dies under
    // it, killed after a random number of them: often in the middle of one.
    const int kill_after = 10 + static_cast<int>(rng() % 40);
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::pair<std::string, std::string>> done;
    std::atomic<bool> stop{false};
    std::thread writer([&, seed = rng()] {
      std::mt19937_64 r(seed);
      while (!stop) {
        const std::string name = "w/" + std::to_string(next++);
        const std::string bytes = SeededBytes(1 + r() % 40'000, r());
        if (!WriteFile(Path(name), bytes, /*fsync=*/r() % 4 == 0)) return;  // The daemon is gone.
        std::lock_guard lock(mu);
        done.emplace_back(name, bytes);
        cv.notify_all();
      }
    });
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return static_cast<int>(done.size()) >= kill_after; });
    }
    const ::testing::AssertionResult killed = mount().Kill9();
    stop = true;
    writer.join();
    ASSERT_TRUE(killed);
    for (auto& [name, bytes] : done) closed[name] = bytes;
    ASSERT_TRUE(mount().Mount());
    for (const auto& [name, bytes] : closed)
      EXPECT_TRUE(FileHasBytes(Path(name), bytes)) << "round " << round;
  }
  ASSERT_TRUE(mount().Unmount());
  // Every generation the store kept reads back whole: each version of each
  // file is the empty file of its create or the complete bytes of a close or
  // fsync, never something damaged.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> s, OpenStore(mount().store(), false));
  std::printf("[ figures  ] %zu files closed before 3 kills; %llu generations checked\n",
              closed.size(), static_cast<unsigned long long>(s->latest()));
  for (Generation g = 1; g <= s->latest(); ++g) {
    ASSERT_OK_AND_ASSIGN(Tree tree, StoredTree(*s, g));
    for (const auto& [path, node] : tree) {
      if (!path.starts_with("w/") || path == "w/") continue;
      auto it = closed.find(path);
      if (it == closed.end()) continue;  // In flight at a kill: readable is enough.
      EXPECT_TRUE(node.bytes.empty() || node.bytes == it->second)
          << path << " at generation " << g << ": " << node.bytes.size() << " bytes";
    }
  }
}

// --- Scale -----------------------------------------------------------------

TEST_F(CoreTest, HundredThousandFilesInOneDirectory) {
  constexpr int kFiles = 100'000;
  const std::string dir = Path("many");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  auto name = [](int i) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "file-%06d", i);
    return std::string(buf);
  };
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kFiles; ++i) {
    const int fd = ::open((dir + "/" + name(i)).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                          0644);
    ASSERT_GE(fd, 0) << Err("create " + name(i));
    if (i % 1000 == 0) {
      ASSERT_EQ(::write(fd, "x", 1), 1);
    }
    ASSERT_EQ(::close(fd), 0);
  }
  const double create_s = SecondsSince(start);

  start = std::chrono::steady_clock::now();
  std::vector<std::string> names = ReadDirNames(dir);
  const double readdir_s = SecondsSince(start);
  ASSERT_EQ(names.size(), static_cast<size_t>(kFiles));
  std::sort(names.begin(), names.end());
  for (int i = 0; i < kFiles; ++i) ASSERT_EQ(names[i], name(i));

  start = std::chrono::steady_clock::now();
  for (int i : {0, 1, 999, 1000, 54'321, 99'000, kFiles - 1}) {
    struct stat st {};
    ASSERT_EQ(::stat((dir + "/" + name(i)).c_str(), &st), 0) << name(i);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_size, i % 1000 == 0 ? 1 : 0) << name(i);
  }
  struct stat st {};
  EXPECT_NE(::stat((dir + "/" + name(kFiles)).c_str(), &st), 0);
  const double stat_s = SecondsSince(start);

  // After a remount the listing comes from the store alone.
  ASSERT_TRUE(mount().Remount());
  start = std::chrono::steady_clock::now();
  EXPECT_EQ(ReadDirNames(dir).size(), static_cast<size_t>(kFiles));
  const double cold_readdir_s = SecondsSince(start);

  start = std::chrono::steady_clock::now();
  for (int i = 0; i < kFiles; ++i)
    ASSERT_EQ(::unlink((dir + "/" + name(i)).c_str()), 0) << Err("unlink " + name(i));
  const double unlink_s = SecondsSince(start);
  EXPECT_EQ(ReadDirNames(dir).size(), 0u);
  EXPECT_EQ(::rmdir(dir.c_str()), 0) << Err("rmdir");

  std::printf("[ figures  ] %d files in one directory: create %.1f s (%.0f/s), readdir %.2f s, "
              "readdir after remount %.2f s, 8 stats %.4f s, unlink %.1f s (%.0f/s)\n",
              kFiles, create_s, kFiles / create_s, readdir_s, cold_readdir_s, stat_s, unlink_s,
              kFiles / unlink_s);
  RecordProperty("create_seconds", std::to_string(create_s));
  RecordProperty("readdir_seconds", std::to_string(readdir_s));
  RecordProperty("unlink_seconds", std::to_string(unlink_s));
}

// --- Other users --------------------------------------------------------------

constexpr uid_t kNobody = 65534;

// What a process running as nobody saw (errno of each step; 0: it worked).
struct NobodyOutcome {
  int setup = -1;
  int write_own_folder = -1;
  int read_back_own_file = -1;
  int create_in_root_folder = -1;
  int read_root_0600_file = -1;
  int read_root_0644_file = -1;
  int write_root_0644_file = -1;
  int unlink_in_root_folder = -1;
};

TEST(AllowOtherTest, OtherUserWritesWhereAllowedAndIsRefusedElsewhere) {
  SnapfsMount m;
  ASSERT_TRUE(m.ok());
  // mkdtemp made the test folder 0700: let others reach the mount point.
  ASSERT_EQ(::chmod(std::filesystem::path(m.mountpoint()).parent_path().c_str(), 0755), 0);
  ASSERT_TRUE(m.Mount({"-o", "allow_other"}));
  const std::string mnt = m.mountpoint();
  ASSERT_EQ(::mkdir((mnt + "/nobody").c_str(), 0755), 0);
  ASSERT_EQ(::chown((mnt + "/nobody").c_str(), kNobody, kNobody), 0);
  ASSERT_EQ(::mkdir((mnt + "/rootonly").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(mnt + "/secret", "root's secret"));
  ASSERT_EQ(::chmod((mnt + "/secret").c_str(), 0600), 0);
  ASSERT_TRUE(WriteFile(mnt + "/public", "for everyone"));

  // Everything the child needs is prepared here: after fork() it makes
  // system calls only.
  const std::string own = mnt + "/nobody/dump.sql", in_root = mnt + "/rootonly/x",
                    secret = mnt + "/secret", pub = mnt + "/public";
  const std::string dump = "pg_dump output\n";
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    NobodyOutcome o;
    auto err_of = [](int rc) { return rc < 0 ? errno : 0; };
    o.setup = (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
               ::setresuid(kNobody, kNobody, kNobody) != 0)
                  ? errno
                  : 0;
    if (o.setup == 0) {
      int fd = ::open(own.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      o.write_own_folder = err_of(fd);
      if (fd >= 0) {
        if (::write(fd, dump.data(), dump.size()) != static_cast<ssize_t>(dump.size()))
          o.write_own_folder = errno;
        if (::close(fd) != 0) o.write_own_folder = errno;
      }
      fd = ::open(own.c_str(), O_RDONLY);
      o.read_back_own_file = err_of(fd);
      char buf[64];
      if (fd >= 0 && ::read(fd, buf, sizeof(buf)) != static_cast<ssize_t>(dump.size()))
        o.read_back_own_file = EIO;
      if (fd >= 0) ::close(fd);
      fd = ::open(in_root.c_str(), O_WRONLY | O_CREAT, 0644);
      o.create_in_root_folder = err_of(fd);
      if (fd >= 0) ::close(fd);
      fd = ::open(secret.c_str(), O_RDONLY);
      o.read_root_0600_file = err_of(fd);
      if (fd >= 0) ::close(fd);
      fd = ::open(pub.c_str(), O_RDONLY);
      o.read_root_0644_file = err_of(fd);
      if (fd >= 0) ::close(fd);
      fd = ::open(pub.c_str(), O_WRONLY);
      o.write_root_0644_file = err_of(fd);
      if (fd >= 0) ::close(fd);
      o.unlink_in_root_folder = err_of(::unlink(pub.c_str()));
    }
    (void)!::write(pipe_fds[1], &o, sizeof(o));
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  NobodyOutcome o;
  pollfd p{pipe_fds[0], POLLIN, 0};
  const bool answered = ::poll(&p, 1, 60'000) > 0 &&
                        ::read(pipe_fds[0], &o, sizeof(o)) == static_cast<ssize_t>(sizeof(o));
  ::close(pipe_fds[0]);
  if (!answered) ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(answered) << "the child running as nobody did not report (hung on the mount?)";
  ASSERT_EQ(o.setup, 0) << std::strerror(o.setup);
  EXPECT_EQ(o.write_own_folder, 0) << std::strerror(o.write_own_folder);
  EXPECT_EQ(o.read_back_own_file, 0) << std::strerror(o.read_back_own_file);
  EXPECT_EQ(o.create_in_root_folder, EACCES) << std::strerror(o.create_in_root_folder);
  EXPECT_EQ(o.read_root_0600_file, EACCES) << std::strerror(o.read_root_0600_file);
  EXPECT_EQ(o.read_root_0644_file, 0) << std::strerror(o.read_root_0644_file);
  EXPECT_EQ(o.write_root_0644_file, EACCES) << std::strerror(o.write_root_0644_file);
  EXPECT_EQ(o.unlink_in_root_folder, EACCES) << std::strerror(o.unlink_in_root_folder);

  struct stat st {};
  ASSERT_EQ(::stat(own.c_str(), &st), 0) << Err("stat");
  EXPECT_EQ(st.st_uid, kNobody);
  EXPECT_EQ(st.st_gid, kNobody);
  EXPECT_TRUE(FileHasBytes(own, dump));
  EXPECT_NE(::access(in_root.c_str(), F_OK), 0);
  ASSERT_TRUE(m.Unmount());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> s, OpenStore(m.store(), false));
  ASSERT_OK_AND_ASSIGN(std::optional<StoredFile> f, StoredPath(*s, "nobody/dump.sql", kLatest));
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->rec.uid, kNobody);
  EXPECT_EQ(f->rec.gid, kNobody);
  EXPECT_EQ(StoredContent(*s, "nobody/dump.sql", kLatest), dump);
}

// --- statfs ------------------------------------------------------------------

TEST_F(CoreTest, StatfsThroughTheMountReportsTheStoreFilesystemSizes) {
  struct statvfs disk {}, fuse {};
  ASSERT_EQ(::statvfs(mount().store().c_str(), &disk), 0) << Err("statvfs store");
  ASSERT_EQ(::statvfs(mount().mountpoint().c_str(), &fuse), 0) << Err("statvfs mount");
  EXPECT_EQ(fuse.f_frsize, disk.f_frsize);
  EXPECT_EQ(fuse.f_blocks, disk.f_blocks);
  // Free space moves as other processes write; the two calls were adjacent.
  const double slack = 256.0 * kMiB / static_cast<double>(disk.f_frsize);
  EXPECT_NEAR(static_cast<double>(fuse.f_bfree), static_cast<double>(disk.f_bfree), slack);
  EXPECT_NEAR(static_cast<double>(fuse.f_bavail), static_cast<double>(disk.f_bavail), slack);
  EXPECT_GT(fuse.f_files, 0u);
  EXPECT_GT(fuse.f_ffree, 0u);
  EXPECT_EQ(fuse.f_namemax, 255u);
}

}  // namespace
}  // namespace snapfs::testing
