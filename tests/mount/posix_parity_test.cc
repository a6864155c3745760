// POSIX parity: the same system calls, run on the mount and on a plain folder
// of the test machine's disk, must give the same return values, the same
// errno and the same resulting tree, also after a remount. A plain disk is the
// oracle (mergerfs's approach): whatever ext4 does, snapfs must do.
//
// A script is a function of a `Trace`, which wraps one root folder and records
// every call and its outcome as a line: "<call as written> = <result>". The
// call text comes from the source (the CALL and FD macros), so the two logs
// differ only where results differ. Compared state: names, types, sizes,
// permission bits, owners, link counts, symlink targets, device numbers and
// file bytes; not inode numbers, directory sizes, st_blocks or atime, and
// mtime only where a test sets every time explicitly (or a tool copies them).
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "tests/mount/mount_fixture.h"

namespace snapfs::testing {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;
constexpr long kFuseSuperMagic = 0x65735546;
// Files up to this size are compared whole; bigger (sparse) ones by samples.
constexpr int64_t kWholeFileLimit = 64 * kMiB;

std::string ErrnoName(int err) {
  const char* name = ::strerrorname_np(err);
  return name != nullptr ? name : "errno " + std::to_string(err);
}

// FNV-1a, 64 bits: enough to tell two byte strings apart in a log line.
uint64_t Fnv(std::string_view bytes, uint64_t h = 14695981039346656037ull) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string Hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// `s` with every byte outside printable ASCII (and the backslash) as \xNN.
std::string Printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[5];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

std::string NsString(const timespec& t) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%lld.%09ld", static_cast<long long>(t.tv_sec), t.tv_nsec);
  return buf;
}

char TypeLetter(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return 'f';
    case S_IFDIR: return 'd';
    case S_IFLNK: return 'l';
    case S_IFIFO: return 'p';
    case S_IFSOCK: return 's';
    case S_IFCHR: return 'c';
    case S_IFBLK: return 'b';
    default: return '?';
  }
}

char DirentTypeLetter(unsigned char type) {
  switch (type) {
    case DT_REG: return 'f';
    case DT_DIR: return 'd';
    case DT_LNK: return 'l';
    case DT_FIFO: return 'p';
    case DT_SOCK: return 's';
    case DT_CHR: return 'c';
    case DT_BLK: return 'b';
    default: return '?';
  }
}

// The comparable part of a stat: type, permission bits, link count, owner,
// and the size of anything but a directory (directory sizes are the file
// system's business).
std::string Describe(const struct stat& st) {
  char perms[8];
  std::snprintf(perms, sizeof(perms), "%04o", static_cast<unsigned>(st.st_mode & 07777));
  std::string d = std::string(1, TypeLetter(st.st_mode)) + " " + perms +
                  " nlink=" + std::to_string(st.st_nlink) + " uid=" + std::to_string(st.st_uid) +
                  " gid=" + std::to_string(st.st_gid);
  if (!S_ISDIR(st.st_mode)) d += " size=" + std::to_string(st.st_size);
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
    d += " rdev=" + std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev));
  return d;
}

// A digest of the bytes of open file `fd` of `size` bytes: all of them up to
// kWholeFileLimit, else 64 KiB samples at both ends, every 256 MiB and around
// 4 GiB (so sparse multi-GiB files stay cheap to compare).
std::string ContentDigest(int fd, int64_t size) {
  std::vector<int64_t> at;
  int64_t piece = size;
  if (size <= kWholeFileLimit) {
    at.push_back(0);
  } else {
    piece = 64 << 10;
    for (int64_t o = 0; o < size; o += 256 * kMiB) at.push_back(o);
    at.push_back(4 * kGiB - piece);
    at.push_back(4 * kGiB);
    at.push_back(size - piece);
  }
  uint64_t h = Fnv("");
  std::string buf;
  for (int64_t o : at) {
    if (o < 0 || o >= size) continue;
    buf.resize(static_cast<size_t>(std::min(piece, size - o)));
    size_t done = 0;
    while (done < buf.size()) {
      const ssize_t n = ::pread(fd, buf.data() + done, buf.size() - done, o + done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return "read error " + ErrnoName(errno);
      if (n == 0) return "short read at " + std::to_string(o + done);
      done += static_cast<size_t>(n);
    }
    h = Fnv(std::to_string(o), h);
    h = Fnv(buf, h);
  }
  return Hex(h);
}

// --- Trees -------------------------------------------------------------------

struct TreeOptions {
  bool mtimes = false;          // Also compare every entry's mtime (to the ns).
  bool symlink_mtimes = true;   // With mtimes: also those of symlinks.
};
using Tree = std::map<std::string, std::string>;  // Relative path -> description.

void DescribeDir(int dirfd, const std::string& prefix, const TreeOptions& options, Tree* out) {
  std::vector<std::string> names;
  {
    const int fd = ::dup(dirfd);
    DIR* d = fd >= 0 ? ::fdopendir(fd) : nullptr;
    if (d == nullptr) {
      (*out)[prefix + "<listing>"] = "opendir: " + ErrnoName(errno);
      if (fd >= 0) ::close(fd);
      return;
    }
    ::rewinddir(d);
    while (dirent* e = ::readdir(d)) {
      const std::string_view n = e->d_name;
      if (n != "." && n != "..") names.emplace_back(n);
    }
    ::closedir(d);
  }
  for (const std::string& name : names) {
    const std::string path = prefix + name;
    struct stat st {};
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      (*out)[path] = "lstat: " + ErrnoName(errno);
      continue;
    }
    std::string desc = Describe(st);
    if (options.mtimes && (!S_ISLNK(st.st_mode) || options.symlink_mtimes))
      desc += " mtime=" + NsString(st.st_mtim);
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      const ssize_t n = ::readlinkat(dirfd, name.c_str(), target, sizeof(target));
      desc += n < 0 ? " readlink: " + ErrnoName(errno)
                    : " -> " + Printable(std::string_view(target, static_cast<size_t>(n)));
    } else if (S_ISREG(st.st_mode)) {
      const int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      desc += fd < 0 ? " open: " + ErrnoName(errno) : " content=" + ContentDigest(fd, st.st_size);
      if (fd >= 0) ::close(fd);
    }
    (*out)[path] = desc;
    if (S_ISDIR(st.st_mode)) {
      const int sub = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) {
        (*out)[path + "/<listing>"] = "open: " + ErrnoName(errno);
        continue;
      }
      DescribeDir(sub, path + "/", options, out);
      ::close(sub);
    }
  }
}

// Every entry below `root` (not `root` itself), described.
Tree DescribeTree(const std::string& root, const TreeOptions& options = {}) {
  Tree out;
  const int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    out["<root>"] = "open " + root + ": " + ErrnoName(errno);
    return out;
  }
  DescribeDir(fd, "", options, &out);
  ::close(fd);
  return out;
}

// Both trees hold the same entries with the same descriptions; otherwise
// lists (up to 20 of) the differences.
::testing::AssertionResult SameTree(const Tree& want, const Tree& got) {
  std::vector<std::string> diffs;
  size_t count = 0;
  auto note = [&](const std::string& line) {
    if (++count <= 20) diffs.push_back(line);
  };
  for (const auto& [path, desc] : want) {
    auto it = got.find(path);
    if (it == got.end()) note("  missing " + Printable(path) + ": " + desc);
    else if (it->second != desc)
      note("  " + Printable(path) + ":\n    want " + desc + "\n    got  " + it->second);
  }
  for (const auto& [path, desc] : got)
    if (!want.contains(path)) note("  extra " + Printable(path) + ": " + desc);
  if (count == 0) return ::testing::AssertionSuccess();
  ::testing::AssertionResult r = ::testing::AssertionFailure();
  r << count << " difference(s) in trees of " << want.size() << " and " << got.size()
    << " entries:\n";
  for (const std::string& d : diffs) r << d << "\n";
  return r;
}

// --- Scripts -------------------------------------------------------------------

// One run of a script in one root folder. Every call is recorded with its
// outcome; descriptors the script leaves open are closed when the Trace ends
// (before any unmount).
class Trace {
 public:
  explicit Trace(std::string root) : root_(std::move(root)) {
    dir_ = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_ < 0) ADD_FAILURE() << "open " << root_ << ": " << ErrnoName(errno);
  }
  ~Trace() {
    for (int fd : fds_) ::close(fd);
    if (dir_ >= 0) ::close(dir_);
  }
  Trace(const Trace&) = delete;
  Trace& operator=(const Trace&) = delete;

  // The root folder, open: scripts name everything relative to it (*at calls).
  int dir() const { return dir_; }
  // `rel` as a path, for calls that have no *at form (truncate).
  std::string P(std::string_view rel) const { return root_ + "/" + std::string(rel); }
  const std::vector<std::string>& log() const { return log_; }

  // Records `what` with its outcome: the value, or -1 and errno's name.
  long Call(std::string_view what, long rc) {
    const int err = errno;
    Note(std::string(what) + " = " + (rc < 0 ? "-1 " + ErrnoName(err) : std::to_string(rc)));
    return rc;
  }
  // The same for a call returning a descriptor (whose number may differ).
  int Fd(std::string_view what, int fd) {
    const int err = errno;
    Note(std::string(what) + " = " + (fd < 0 ? "-1 " + ErrnoName(err) : "fd"));
    if (fd >= 0) fds_.push_back(fd);
    return fd;
  }
  void Note(std::string line) { log_.push_back(std::move(line)); }

  void Close(int fd, std::string_view label = "fd") {
    if (fd < 0) return;
    std::erase(fds_, fd);
    const int rc = ::close(fd);
    const int err = errno;
    Note("close(" + std::string(label) + ") = " + (rc < 0 ? "-1 " + ErrnoName(err) : "0"));
  }
  // Creates (or truncates) `rel` with `bytes`, recorded as one line.
  void Put(const std::string& rel, std::string_view bytes, mode_t mode = 0644) {
    const int fd = ::openat(dir_, rel.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) return Note("put " + Printable(rel) + " = open: " + ErrnoName(errno));
    const ssize_t n = WriteAll(fd, bytes, -1);
    const int closed = ::close(fd);
    Note("put " + Printable(rel) + " " + std::to_string(bytes.size()) + " = " +
         (n < 0 ? "write: " + ErrnoName(errno) : std::to_string(n)) + (closed ? " close failed" : ""));
  }
  void Pwrite(int fd, std::string_view bytes, int64_t offset) {
    const ssize_t n = WriteAll(fd, bytes, offset);
    const int err = errno;
    Note("pwrite " + std::to_string(bytes.size()) + "@" + std::to_string(offset) + " = " +
         (n < 0 ? "-1 " + ErrnoName(err) : std::to_string(n)));
  }
  void Write(int fd, std::string_view bytes) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    const int err = errno;
    Note("write " + std::to_string(bytes.size()) + " = " +
         (n < 0 ? "-1 " + ErrnoName(err) : std::to_string(n)));
  }
  // Reads up to `len` bytes at `offset` (until a short read) and records how
  // many came back and their digest.
  void Pread(int fd, size_t len, int64_t offset) {
    std::string buf(len, '\0');
    size_t done = 0;
    int err = 0;
    while (done < len) {
      const ssize_t n = ::pread(fd, buf.data() + done, len - done, offset + done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) err = errno;
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    buf.resize(done);
    Note("pread " + std::to_string(len) + "@" + std::to_string(offset) + " = " +
         (err ? "-1 " + ErrnoName(err) : std::to_string(done) + " " + Hex(Fnv(buf))));
  }
  // read(2) once, at the descriptor's position.
  void Read(int fd, size_t len) {
    std::string buf(len, '\0');
    const ssize_t n = ::read(fd, buf.data(), len);
    const int err = errno;
    Note("read " + std::to_string(len) + " = " +
         (n < 0 ? "-1 " + ErrnoName(err)
                : std::to_string(n) + " " + Hex(Fnv(std::string_view(buf).substr(0, n)))));
  }
  // lstat (or stat, if `follow`) of `rel`, with a symlink's target.
  void Stat(const std::string& rel, bool follow = false) {
    struct stat st {};
    const std::string what = (follow ? "stat " : "lstat ") + Printable(rel) + " = ";
    if (::fstatat(dir_, rel.c_str(), &st, follow ? 0 : AT_SYMLINK_NOFOLLOW) != 0)
      return Note(what + "-1 " + ErrnoName(errno));
    std::string d = Describe(st);
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      const ssize_t n = ::readlinkat(dir_, rel.c_str(), target, sizeof(target));
      if (n >= 0) d += " -> " + Printable(std::string_view(target, static_cast<size_t>(n)));
    }
    Note(what + d);
  }
  void Fstat(int fd, std::string_view label = "fd") {
    struct stat st {};
    const std::string what = "fstat " + std::string(label) + " = ";
    if (::fstat(fd, &st) != 0) return Note(what + "-1 " + ErrnoName(errno));
    Note(what + Describe(st));
  }
  // atime and mtime of `rel`, to the nanosecond (after explicit settings).
  void Times(const std::string& rel, bool follow = true) {
    struct stat st {};
    const std::string what = "times " + Printable(rel) + " = ";
    if (::fstatat(dir_, rel.c_str(), &st, follow ? 0 : AT_SYMLINK_NOFOLLOW) != 0)
      return Note(what + "-1 " + ErrnoName(errno));
    Note(what + "atime=" + NsString(st.st_atim) + " mtime=" + NsString(st.st_mtim));
  }
  // Whether the mtime of `rel` lies in [from, to] (for UTIME_NOW). The
  // kernel's clock is coarse: a tick before `from` counts.
  void MtimeBetween(const std::string& rel, const timespec& from, const timespec& to) {
    struct stat st {};
    if (::fstatat(dir_, rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      return Note("mtime of " + rel + " = -1 " + ErrnoName(errno));
    auto ns = [](const timespec& t) { return int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec; };
    const int64_t m = ns(st.st_mtim);
    const bool now = m >= ns(from) - 20'000'000 && m <= ns(to) + 20'000'000;
    Note("mtime of " + rel + " is now: " + (now ? "yes" : "no (" + NsString(st.st_mtim) + ")"));
  }
  // The whole content of `rel`: its size and digest.
  void Content(const std::string& rel) {
    const std::string what = "content " + Printable(rel) + " = ";
    const int fd = ::openat(dir_, rel.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Note(what + "-1 " + ErrnoName(errno));
    struct stat st {};
    ::fstat(fd, &st);
    Note(what + std::to_string(st.st_size) + " " + ContentDigest(fd, st.st_size));
    ::close(fd);
  }
  // readdir of `rel`: every name with its d_type, sorted.
  void List(const std::string& rel) {
    const std::string what = "readdir " + Printable(rel) + " = ";
    const int fd = ::openat(dir_, rel.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR* d = fd >= 0 ? ::fdopendir(fd) : nullptr;
    if (d == nullptr) {
      const int err = errno;
      if (fd >= 0) ::close(fd);
      return Note(what + "-1 " + ErrnoName(err));
    }
    std::vector<std::string> entries;
    while (dirent* e = ::readdir(d))
      entries.push_back(Printable(e->d_name) + ":" + DirentTypeLetter(e->d_type));
    ::closedir(d);
    std::sort(entries.begin(), entries.end());
    std::string line = what + std::to_string(entries.size()) + " [";
    for (const std::string& e : entries) line += e + " ";
    Note(line + "]");
  }
  void Readlink(const std::string& rel) {
    char target[8192];
    const ssize_t n = ::readlinkat(dir_, rel.c_str(), target, sizeof(target));
    const int err = errno;
    Note("readlink " + Printable(rel) + " = " +
         (n < 0 ? "-1 " + ErrnoName(err)
                : std::to_string(n) + " " +
                      Printable(std::string_view(target, static_cast<size_t>(n)))));
  }

 private:
  // Writes all of `bytes` at `offset` (or at the position, if negative).
  static ssize_t WriteAll(int fd, std::string_view bytes, int64_t offset) {
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = offset < 0 ? ::write(fd, bytes.data() + done, bytes.size() - done)
                                   : ::pwrite(fd, bytes.data() + done, bytes.size() - done,
                                              offset + static_cast<int64_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return -1;
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    return static_cast<ssize_t>(done);
  }

  std::string root_;
  int dir_ = -1;
  std::vector<int> fds_;
  std::vector<std::string> log_;
};

// Records a call and its outcome; the call's source text names it in the log.
#define CALL(r, ...) (r).Call(#__VA_ARGS__, static_cast<long>(__VA_ARGS__))
// Records a call that returns a descriptor.
#define FD(r, ...) (r).Fd(#__VA_ARGS__, (__VA_ARGS__))

// The two logs are equal; otherwise shows the first difference in context.
::testing::AssertionResult SameLog(const std::vector<std::string>& disk,
                                   const std::vector<std::string>& mount) {
  size_t i = 0;
  while (i < disk.size() && i < mount.size() && disk[i] == mount[i]) ++i;
  if (i == disk.size() && i == mount.size()) return ::testing::AssertionSuccess();
  ::testing::AssertionResult r = ::testing::AssertionFailure();
  r << "the mount and the plain folder differ at step " << i + 1 << " (of " << disk.size()
    << " and " << mount.size() << "):\n";
  for (size_t j = i >= 3 ? i - 3 : 0; j < i; ++j) r << "    same:  " << disk[j] << "\n";
  r << "    disk:  " << (i < disk.size() ? disk[i] : "<end>") << "\n";
  r << "    mount: " << (i < mount.size() ? mount[i] : "<end>") << "\n";
  size_t differing = 0;
  for (size_t j = i; j < std::min(disk.size(), mount.size()); ++j) differing += disk[j] != mount[j];
  r << "    (" << differing << " differing steps in all)";
  return r;
}

ProcessResult MustRun(const std::vector<std::string>& argv) {
  ProcessResult r = RunProcess(argv, 600'000);
  std::string cmd;
  for (const std::string& a : argv) cmd += a + " ";
  EXPECT_EQ(r.exit_code, 0) << cmd << "\n" << r.output;
  return r;
}

class PosixParityTest : public MountTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(MountTest::SetUp());
    plain_ = mount().Scratch("plain");
    ASSERT_EQ(::mkdir(plain_.c_str(), 0755), 0) << ErrnoName(errno);
  }

  // Runs `script` in the plain folder, then in the mount; expects the same
  // log, the same tree, and the same tree again after a remount.
  void ExpectParity(const std::function<void(Trace&)>& script, const TreeOptions& options = {}) {
    std::vector<std::string> disk_log, mount_log;
    {
      Trace disk(plain_);
      script(disk);
      disk_log = disk.log();
    }
    {
      Trace fuse(mount().mountpoint());
      script(fuse);
      mount_log = fuse.log();
    }
    EXPECT_TRUE(SameLog(disk_log, mount_log));
    if (std::getenv("SNAPFS_PARITY_LOG") != nullptr) {  // To see what a script checked.
      for (const std::string& line : mount_log) std::printf("  %s\n", line.c_str());
    }
    const Tree want = DescribeTree(plain_, options);
    EXPECT_TRUE(SameTree(want, DescribeTree(mount().mountpoint(), options))) << "after the script";
    ASSERT_TRUE(mount().Remount());
    EXPECT_TRUE(SameTree(want, DescribeTree(mount().mountpoint(), options))) << "after a remount";
  }

  std::string plain_;
};

// --- open and creat ---------------------------------------------------------

TEST_F(PosixParityTest, OpenWithExclusiveCreateFailsOnAnyExistingName) {
  ExpectParity([](Trace& r) {
    const int fd = FD(r, ::openat(r.dir(), "f", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640));
    r.Write(fd, "hello");
    r.Close(fd);
    FD(r, ::openat(r.dir(), "f", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640));
    FD(r, ::openat(r.dir(), "f", O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640));
    CALL(r, ::mkdirat(r.dir(), "d", 0755));
    FD(r, ::openat(r.dir(), "d", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640));
    CALL(r, ::symlinkat("nowhere", r.dir(), "dangling"));
    FD(r, ::openat(r.dir(), "dangling", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640));
    r.Stat("nowhere");
    // Without O_EXCL, creating through a dangling symlink creates its target.
    const int g = FD(r, ::openat(r.dir(), "dangling", O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    r.Write(g, "through the link");
    r.Close(g);
    r.Stat("nowhere");
    r.Content("nowhere");
    r.Content("f");
    r.Stat("f");
  });
}

TEST_F(PosixParityTest, OpenWithTruncEmptiesTheFileWhateverTheAccessMode) {
  ExpectParity([](Trace& r) {
    r.Put("f", SeededBytes(100'000, 1));
    int fd = FD(r, ::openat(r.dir(), "f", O_WRONLY | O_TRUNC | O_CLOEXEC));
    r.Fstat(fd);
    r.Write(fd, "new");
    r.Close(fd);
    r.Content("f");
    // creat(2) is open(O_CREAT | O_WRONLY | O_TRUNC).
    r.Put("g", SeededBytes(70'000, 2));
    fd = FD(r, ::openat(r.dir(), "g", O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600));
    r.Fstat(fd);
    r.Close(fd);
    r.Stat("g");
    // Linux truncates on O_RDONLY | O_TRUNC too.
    r.Put("h", SeededBytes(5000, 3));
    fd = FD(r, ::openat(r.dir(), "h", O_RDONLY | O_TRUNC | O_CLOEXEC));
    r.Fstat(fd);
    r.Pread(fd, 100, 0);
    r.Close(fd);
    r.Stat("h");
    // O_RDWR | O_TRUNC, then a write in the middle leaves a hole.
    r.Put("i", SeededBytes(9000, 4));
    fd = FD(r, ::openat(r.dir(), "i", O_RDWR | O_TRUNC | O_CLOEXEC));
    r.Pread(fd, 100, 0);
    r.Pwrite(fd, "xyz", 5000);
    r.Pread(fd, 6000, 0);
    r.Close(fd);
    r.Content("i");
    // An empty file stays empty.
    r.Put("empty", "");
    fd = FD(r, ::openat(r.dir(), "empty", O_WRONLY | O_TRUNC | O_CLOEXEC));
    r.Close(fd);
    r.Stat("empty");
  });
}

TEST_F(PosixParityTest, OpenWithAppendWritesAtTheEnd) {
  ExpectParity([](Trace& r) {
    r.Put("f", "0123456789");
    int fd = FD(r, ::openat(r.dir(), "f", O_WRONLY | O_APPEND | O_CLOEXEC));
    r.Write(fd, "abc");
    // Linux appends with O_APPEND whatever offset pwrite names.
    r.Pwrite(fd, "XY", 0);
    CALL(r, ::lseek(fd, 0, SEEK_CUR));
    r.Fstat(fd);
    r.Close(fd);
    r.Content("f");
    // Two appenders interleave without overwriting each other.
    const int a = FD(r, ::openat(r.dir(), "f", O_WRONLY | O_APPEND | O_CLOEXEC));
    const int b = FD(r, ::openat(r.dir(), "f", O_RDWR | O_APPEND | O_CLOEXEC));
    for (int i = 0; i < 20; ++i) {
      r.Write(a, "a" + std::to_string(i) + ";");
      r.Write(b, std::string(1000 + i, 'b'));
    }
    r.Pread(b, 50, 0);
    r.Close(a, "a");
    r.Close(b, "b");
    r.Content("f");
    // O_APPEND | O_CREAT on a new name.
    fd = FD(r, ::openat(r.dir(), "log", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
    r.Write(fd, "line 1\n");
    r.Close(fd);
    fd = FD(r, ::openat(r.dir(), "log", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
    r.Write(fd, "line 2\n");
    r.Close(fd);
    r.Content("log");
  });
}

TEST_F(PosixParityTest, OpenErrorsMatchAPlainDisk) {
  ExpectParity([](Trace& r) {
    FD(r, ::openat(r.dir(), "missing", O_RDONLY | O_CLOEXEC));
    FD(r, ::openat(r.dir(), "missing/x", O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    FD(r, ::openat(r.dir(), "", O_RDONLY | O_CLOEXEC));
    CALL(r, ::mkdirat(r.dir(), "d", 0755));
    FD(r, ::openat(r.dir(), "d", O_WRONLY | O_CLOEXEC));
    FD(r, ::openat(r.dir(), "d", O_RDWR | O_CLOEXEC));
    FD(r, ::openat(r.dir(), "d", O_RDONLY | O_TRUNC | O_CLOEXEC));
    const int d = FD(r, ::openat(r.dir(), "d", O_RDONLY | O_CLOEXEC));
    r.Close(d);
    r.Put("f", "file");
    FD(r, ::openat(r.dir(), "f/x", O_RDONLY | O_CLOEXEC));
    FD(r, ::openat(r.dir(), "f/x", O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    FD(r, ::openat(r.dir(), "f", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    CALL(r, ::symlinkat("f", r.dir(), "l"));
    FD(r, ::openat(r.dir(), "l", O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    const int l = FD(r, ::openat(r.dir(), "l", O_RDONLY | O_CLOEXEC));
    r.Read(l, 100);
    r.Close(l);
    CALL(r, ::symlinkat("loop2", r.dir(), "loop1"));
    CALL(r, ::symlinkat("loop1", r.dir(), "loop2"));
    FD(r, ::openat(r.dir(), "loop1", O_RDONLY | O_CLOEXEC));
    FD(r, ::openat(r.dir(), "loop1", O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  });
}

// --- read and write at any offset ----------------------------------------------

TEST_F(PosixParityTest, SequentialWritesReadBackInPiecesOfAnySize) {
  ExpectParity([](Trace& r) {
    const int fd = FD(r, ::openat(r.dir(), "seq", O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    for (int i = 0; i < 150; ++i) r.Write(fd, SeededBytes(4097 + 13 * i, i));
    r.Write(fd, SeededBytes(3 * kMiB + 5, 1000));
    CALL(r, ::lseek(fd, 0, SEEK_SET));
    const size_t sizes[] = {1, 7, 4095, 4096, 4097, 65536, 131072, 1 << 20, 3 << 20};
    for (int i = 0; i < 40; ++i) r.Read(fd, sizes[i % std::size(sizes)]);
    r.Read(fd, 100);  // At end of file: 0.
    r.Fstat(fd);
    r.Close(fd);
    r.Content("seq");
  });
}

TEST_F(PosixParityTest, RandomOffsetWritesAndReadsMatchAPlainDisk) {
  ExpectParity([](Trace& r) {
    std::mt19937_64 rng(77);
    const int fd = FD(r, ::openat(r.dir(), "rand", O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    for (int i = 0; i < 250; ++i) {
      const int64_t offset = static_cast<int64_t>(rng() % (8 * kMiB));
      const size_t len = rng() % 4 == 0 ? 1 + rng() % (300 << 10) : 1 + rng() % 9000;
      r.Pwrite(fd, SeededBytes(len, rng()), offset);
      if (i % 10 == 0) r.Pread(fd, 1 + rng() % (200 << 10), static_cast<int64_t>(rng() % (9 * kMiB)));
      if (i % 50 == 49) CALL(r, ::fsync(fd));
    }
    r.Fstat(fd);
    r.Close(fd);
    r.Content("rand");
  });
}

TEST_F(PosixParityTest, SparseWritesReadZerosInTheHoles) {
  ExpectParity([](Trace& r) {
    const int fd = FD(r, ::openat(r.dir(), "sparse", O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    r.Pwrite(fd, "a", 0);
    r.Pwrite(fd, "0123456789", kMiB + 3);
    r.Pwrite(fd, SeededBytes(70'000, 5), 100 * kMiB);
    r.Fstat(fd);
    r.Pread(fd, 2 * kMiB, 0);
    r.Pread(fd, 4096, 50 * kMiB);
    r.Pread(fd, 200'000, 100 * kMiB - 65536);
    r.Pread(fd, 100, 200 * kMiB);  // Past the end: 0 bytes.
    CALL(r, ::ftruncate(fd, 150 * kMiB));  // A hole at the end.
    r.Pread(fd, 8192, 150 * kMiB - 4096);
    r.Close(fd);
    r.Content("sparse");
    // A hole made by seeking past the end and writing.
    const int g = FD(r, ::openat(r.dir(), "seeked", O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    CALL(r, ::lseek(g, 12345, SEEK_SET));
    r.Write(g, "after the hole");
    r.Close(g);
    r.Content("seeked");
  });
}

TEST_F(PosixParityTest, WritesBeyondFourGiBAndASparseWriteAtFiveGiB) {
  ExpectParity([](Trace& r) {
    const int fd = FD(r, ::openat(r.dir(), "big", O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    const std::string across = SeededBytes(10'000, 6);
    r.Pwrite(fd, across, 4 * kGiB - 5000);  // Across the 4 GiB line.
    r.Pwrite(fd, SeededBytes(100'000, 7), 5 * kGiB);
    r.Fstat(fd);
    CALL(r, ::lseek(fd, 0, SEEK_END));
    r.Pread(fd, 10'000, 4 * kGiB - 5000);
    r.Pread(fd, 4096, 4 * kGiB);
    r.Pread(fd, 65536, 4 * kGiB + 512 * kMiB);  // The hole between.
    r.Pread(fd, 200'000, 5 * kGiB - 50'000);
    r.Pread(fd, 100, 5 * kGiB + 100'000);  // At the end: 0.
    r.Pread(fd, 4096, 0);
    r.Close(fd);
    const int ro = FD(r, ::openat(r.dir(), "big", O_RDONLY | O_CLOEXEC));
    r.Pread(ro, 100'000, 5 * kGiB);
    r.Pread(ro, 10'000, 4 * kGiB - 5000);
    r.Close(ro, "ro");
    CALL(r, ::truncate(r.P("big").c_str(), 4 * kGiB + 100));
    r.Stat("big");
    r.Content("big");
  });
}

// --- truncate ---------------------------------------------------------------

TEST_F(PosixParityTest, TruncateAndFtruncateUpAndDown) {
  ExpectParity([](Trace& r) {
    r.Put("f", SeededBytes(100'000, 8));
    CALL(r, ::truncate(r.P("f").c_str(), 50'000));
    r.Stat("f");
    r.Content("f");
    CALL(r, ::truncate(r.P("f").c_str(), 200'000));
    r.Stat("f");
    r.Content("f");
    const int fd = FD(r, ::openat(r.dir(), "f", O_RDWR | O_CLOEXEC));
    r.Pread(fd, 20'000, 40'000);
    CALL(r, ::ftruncate(fd, 3));
    r.Fstat(fd);
    r.Pread(fd, 100, 0);
    CALL(r, ::ftruncate(fd, 0));
    r.Pwrite(fd, "xyz", 10);
    r.Fstat(fd);
    CALL(r, ::ftruncate(fd, 10 * kMiB));
    r.Pwrite(fd, SeededBytes(5000, 9), 5 * kMiB);
    r.Fstat(fd);
    r.Pread(fd, 11 * kMiB, 0);
    r.Close(fd);
    r.Content("f");
    // Truncating by name while a descriptor has the old bytes cached.
    r.Put("g", "");
    const int g = FD(r, ::openat(r.dir(), "g", O_RDWR | O_CLOEXEC));
    r.Pwrite(g, SeededBytes(100'000, 10), 0);
    CALL(r, ::truncate(r.P("g").c_str(), 10));
    r.Fstat(g);
    r.Pread(g, 100'000, 0);
    r.Pwrite(g, "tail", 20);
    r.Pread(g, 100, 0);
    r.Close(g, "g");
    r.Content("g");
    // Errors.
    CALL(r, ::mkdirat(r.dir(), "d", 0755));
    CALL(r, ::truncate(r.P("d").c_str(), 0));
    CALL(r, ::truncate(r.P("missing").c_str(), 0));
    CALL(r, ::truncate(r.P("f").c_str(), -1));
    const int ro = FD(r, ::openat(r.dir(), "f", O_RDONLY | O_CLOEXEC));
    CALL(r, ::ftruncate(ro, 0));
    r.Close(ro, "ro");
    r.Stat("f");
  });
}

// --- rename ---------------------------------------------------------------

TEST_F(PosixParityTest, RenameOverAnExistingFileReplacesIt) {
  ExpectParity([](Trace& r) {
    r.Put("a", "AAAA");
    r.Put("b", "BBBBBB");
    const int old_b = FD(r, ::openat(r.dir(), "b", O_RDONLY | O_CLOEXEC));
    CALL(r, ::renameat(r.dir(), "a", r.dir(), "b"));
    r.Stat("a");
    r.Stat("b");
    r.Content("b");
    // The replaced file lives on for whoever has it open.
    r.Pread(old_b, 100, 0);
    r.Fstat(old_b, "old b");
    r.Close(old_b, "old b");
    CALL(r, ::renameat(r.dir(), "b", r.dir(), "b"));
    r.Stat("b");
    // Over a target with another name: that name keeps the old bytes.
    r.Put("c", "CCC");
    CALL(r, ::linkat(r.dir(), "c", r.dir(), "c2", 0));
    CALL(r, ::renameat(r.dir(), "b", r.dir(), "c"));
    r.Stat("c");
    r.Stat("c2");
    r.Content("c");
    r.Content("c2");
    // A file still being written is renamed; its bytes follow it at close.
    const int w = FD(r, ::openat(r.dir(), "part", O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    r.Write(w, SeededBytes(500'000, 18));
    CALL(r, ::renameat(r.dir(), "part", r.dir(), "c2"));
    r.Write(w, SeededBytes(100'000, 19));
    r.Close(w, "w");
    r.Stat("part");
    r.Content("c2");
    // The dump-job pattern: write a temporary file, rename it over the old one.
    r.Put("dump.sql", SeededBytes(300'000, 11));
    r.Put("dump.sql.tmp", SeededBytes(310'000, 12));
    CALL(r, ::renameat(r.dir(), "dump.sql.tmp", r.dir(), "dump.sql"));
    r.List(".");
    r.Content("dump.sql");
  });
}

TEST_F(PosixParityTest, RenameMovesFilesAndDirectoriesAcrossDirectories) {
  ExpectParity([](Trace& r) {
    CALL(r, ::mkdirat(r.dir(), "d1", 0755));
    CALL(r, ::mkdirat(r.dir(), "d2", 0755));
    CALL(r, ::mkdirat(r.dir(), "d1/sub", 0755));
    r.Put("d1/f", "file f");
    r.Put("d1/sub/g", "file g");
    CALL(r, ::renameat(r.dir(), "d1/f", r.dir(), "d2/f"));
    CALL(r, ::renameat(r.dir(), "d1/sub", r.dir(), "d2/sub2"));
    r.Stat("d1");
    r.Stat("d2");
    r.Stat("d2/sub2");
    r.Content("d2/sub2/g");
    r.Stat("d2/sub2/..");
    CALL(r, ::renameat(r.dir(), "d2", r.dir(), "d3"));  // A directory, same parent.
    r.Content("d3/sub2/g");
    r.Content("d3/f");
    CALL(r, ::renameat(r.dir(), "d1", r.dir(), "d3/sub2/moved"));  // Down two levels.
    r.Stat("d3/sub2");
    r.Stat("d3/sub2/moved/..");
    CALL(r, ::renameat(r.dir(), "d3/sub2", r.dir(), "up"));  // Up one level.
    r.Stat("d3");
    r.Stat("up");
    r.List(".");
    r.List("d3");
    r.List("up");
    // A directory over an empty directory.
    CALL(r, ::mkdirat(r.dir(), "e1", 0700));
    r.Put("e1/inside", "x");
    CALL(r, ::mkdirat(r.dir(), "e2", 0755));
    CALL(r, ::renameat(r.dir(), "e1", r.dir(), "e2"));
    r.Stat("e1");
    r.Stat("e2");
    r.Content("e2/inside");
    // A file over a file in another directory.
    r.Put("up/over", "old");
    r.Put("new", "new");
    CALL(r, ::renameat(r.dir(), "new", r.dir(), "up/over"));
    r.Content("up/over");
  });
}

TEST_F(PosixParityTest, RenameErrorsMatchAPlainDisk) {
  ExpectParity([](Trace& r) {
    CALL(r, ::mkdirat(r.dir(), "full", 0755));
    r.Put("full/x", "x");
    CALL(r, ::mkdirat(r.dir(), "dir", 0755));
    CALL(r, ::mkdirat(r.dir(), "dir/sub", 0755));
    r.Put("file", "file");
    CALL(r, ::renameat(r.dir(), "dir", r.dir(), "full"));        // ENOTEMPTY
    CALL(r, ::renameat(r.dir(), "dir", r.dir(), "file"));        // ENOTDIR
    CALL(r, ::renameat(r.dir(), "file", r.dir(), "dir"));        // EISDIR
    CALL(r, ::renameat(r.dir(), "dir", r.dir(), "dir/sub/in"));  // EINVAL
    CALL(r, ::renameat(r.dir(), "dir", r.dir(), "dir/sub"));     // EINVAL or ENOTEMPTY
    CALL(r, ::renameat(r.dir(), "missing", r.dir(), "x"));       // ENOENT
    CALL(r, ::renameat(r.dir(), "file", r.dir(), "missing/x"));  // ENOENT
    CALL(r, ::renameat(r.dir(), "file", r.dir(), "file/x"));     // ENOTDIR
    CALL(r, ::renameat(r.dir(), "dir/.", r.dir(), "y"));
    CALL(r, ::renameat(r.dir(), "file", r.dir(), "dir/."));
    // Two names of one inode: rename does nothing and both stay.
    CALL(r, ::linkat(r.dir(), "file", r.dir(), "file2", 0));
    CALL(r, ::renameat(r.dir(), "file", r.dir(), "file2"));
    r.Stat("file");
    r.Stat("file2");
    r.List(".");
    r.List("full");
  });
}

TEST_F(PosixParityTest, Renameat2NoReplaceAndExchange) {
  ExpectParity([](Trace& r) {
    r.Put("a", "A");
    r.Put("b", "BB");
    CALL(r, ::mkdirat(r.dir(), "d", 0750));
    r.Put("d/c", "CCC");
    CALL(r, ::renameat2(r.dir(), "a", r.dir(), "b", RENAME_NOREPLACE));  // EEXIST
    CALL(r, ::renameat2(r.dir(), "a", r.dir(), "n", RENAME_NOREPLACE));
    r.Stat("a");
    r.Content("n");
    CALL(r, ::renameat2(r.dir(), "n", r.dir(), "b", RENAME_EXCHANGE));
    r.Content("n");
    r.Content("b");
    CALL(r, ::renameat2(r.dir(), "b", r.dir(), "d", RENAME_EXCHANGE));  // A file and a dir.
    r.Stat("b");
    r.Stat("d");
    r.Content("d");
    r.Content("b/c");
    CALL(r, ::mkdirat(r.dir(), "e", 0755));
    CALL(r, ::mkdirat(r.dir(), "e/sub", 0755));
    CALL(r, ::renameat2(r.dir(), "b/c", r.dir(), "e/sub", RENAME_EXCHANGE));  // Across dirs.
    r.Stat("b");
    r.Stat("e");
    r.Stat("b/c");
    r.Stat("e/sub");
    r.Stat("b/c/..");
    CALL(r, ::renameat2(r.dir(), "d", r.dir(), "missing", RENAME_EXCHANGE));  // ENOENT
    CALL(r, ::renameat2(r.dir(), "d", r.dir(), "n", RENAME_EXCHANGE | RENAME_NOREPLACE));
    CALL(r, ::renameat2(r.dir(), "e", r.dir(), "b/c/x", RENAME_NOREPLACE));
    CALL(r, ::mkdirat(r.dir(), "p", 0755));
    CALL(r, ::mkdirat(r.dir(), "p/q", 0755));
    CALL(r, ::renameat2(r.dir(), "p", r.dir(), "p/q", RENAME_EXCHANGE));  // EINVAL
    CALL(r, ::renameat2(r.dir(), "p/q", r.dir(), "p", RENAME_EXCHANGE));  // EINVAL
    r.List(".");
  });
}

// --- unlink, rmdir, mkdir ------------------------------------------------------

TEST_F(PosixParityTest, UnlinkRmdirAndMkdirErrorsMatchAPlainDisk) {
  ExpectParity([](Trace& r) {
    CALL(r, ::mkdirat(r.dir(), "d", 0755));
    r.Put("d/f", "in d");
    r.Put("f", "top");
    CALL(r, ::unlinkat(r.dir(), "d", 0));              // EISDIR
    CALL(r, ::unlinkat(r.dir(), "f", AT_REMOVEDIR));   // ENOTDIR
    CALL(r, ::unlinkat(r.dir(), "d", AT_REMOVEDIR));   // ENOTEMPTY
    CALL(r, ::unlinkat(r.dir(), "missing", 0));
    CALL(r, ::unlinkat(r.dir(), "missing", AT_REMOVEDIR));
    CALL(r, ::unlinkat(r.dir(), "d/.", AT_REMOVEDIR));
    CALL(r, ::unlinkat(r.dir(), "d/..", AT_REMOVEDIR));
    CALL(r, ::unlinkat(r.dir(), "f/x", 0));
    CALL(r, ::mkdirat(r.dir(), "d", 0755));            // EEXIST
    CALL(r, ::mkdirat(r.dir(), "f", 0755));            // EEXIST
    CALL(r, ::mkdirat(r.dir(), "missing/x", 0755));    // ENOENT
    CALL(r, ::mkdirat(r.dir(), "f/x", 0755));          // ENOTDIR
    CALL(r, ::mkdirat(r.dir(), "modes", 01777));
    r.Stat("modes");
    CALL(r, ::mkdirat(r.dir(), "d/sub", 0700));
    r.Stat("d");
    CALL(r, ::unlinkat(r.dir(), "d/sub", AT_REMOVEDIR));
    r.Stat("d");
    CALL(r, ::unlinkat(r.dir(), "d/f", 0));
    CALL(r, ::unlinkat(r.dir(), "d", AT_REMOVEDIR));
    CALL(r, ::unlinkat(r.dir(), "f", 0));
    r.Stat("d");
    r.Stat("f");
    r.List(".");
  });
}

TEST_F(PosixParityTest, UnlinkedOpenFileStaysReadableAndWritable) {
  ExpectParity([](Trace& r) {
    r.Put("f", SeededBytes(5000, 13));
    const int fd = FD(r, ::openat(r.dir(), "f", O_RDWR | O_CLOEXEC));
    CALL(r, ::unlinkat(r.dir(), "f", 0));
    r.Stat("f");
    r.List(".");
    r.Fstat(fd);
    r.Pread(fd, 5000, 0);
    r.Pwrite(fd, "new", 4998);
    r.Pwrite(fd, SeededBytes(3000, 14), 100'000);
    r.Fstat(fd);
    r.Pread(fd, 200'000, 0);
    CALL(r, ::fsync(fd));
    CALL(r, ::ftruncate(fd, 50));
    r.Fstat(fd);
    r.Pread(fd, 100, 0);
    // An unlinked file cannot get a name again (no O_TMPFILE here).
    const std::string proc = "/proc/self/fd/" + std::to_string(fd);
    CALL(r, ::linkat(AT_FDCWD, proc.c_str(), r.dir(), "revived", AT_SYMLINK_FOLLOW));
    // A new file under the old name is another file.
    r.Put("f", "other");
    r.Content("f");
    r.Pread(fd, 100, 0);
    r.Close(fd);
    r.Content("f");
    r.List(".");
  });
}

TEST_F(PosixParityTest, RemovedDirectoryRefusesNewEntries) {
  ExpectParity([](Trace& r) {
    CALL(r, ::mkdirat(r.dir(), "d", 0755));
    CALL(r, ::mkdirat(r.dir(), "other", 0755));
    r.Put("f", "f");
    const int d = FD(r, ::openat(r.dir(), "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    CALL(r, ::unlinkat(r.dir(), "d", AT_REMOVEDIR));
    r.Fstat(d, "d");
    FD(r, ::openat(d, "x", O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    CALL(r, ::mkdirat(d, "y", 0755));
    CALL(r, ::symlinkat("t", d, "z"));
    CALL(r, ::mknodat(d, "p", S_IFIFO | 0644, 0));
    CALL(r, ::linkat(r.dir(), "f", d, "f", 0));
    CALL(r, ::renameat(r.dir(), "f", d, "f"));
    CALL(r, ::renameat(r.dir(), "other", d, "other"));
    FD(r, ::openat(d, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    r.Close(d, "d");
    r.List(".");
  });
}

TEST_F(PosixParityTest, FallocateGrowsAFileWithZeros) {
  ExpectParity([](Trace& r) {
    const int fd = FD(r, ::openat(r.dir(), "f", O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    r.Write(fd, "start");
    CALL(r, ::fallocate(fd, 0, 0, 3 * kMiB + 1));
    r.Fstat(fd);
    CALL(r, ::fallocate(fd, 0, 100, 10));  // Inside: no change.
    r.Fstat(fd);
    r.Pread(fd, 4 * kMiB, 0);
    CALL(r, ::posix_fallocate(fd, 5 * kMiB, 100));
    r.Fstat(fd);
    r.Pwrite(fd, "end", 5 * kMiB + 100);
    r.Close(fd);
    r.Content("f");
  });
}

TEST_F(PosixParityTest, SharedMmapWritesReachTheFile) {
  ExpectParity([](Trace& r) {
    r.Put("m", SeededBytes(3 * 4096 + 100, 20));
    const int fd = FD(r, ::openat(r.dir(), "m", O_RDWR | O_CLOEXEC));
    CALL(r, ::ftruncate(fd, 5 * 4096));
    void* p = ::mmap(nullptr, 5 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    r.Note(std::string("mmap = ") + (p == MAP_FAILED ? ErrnoName(errno) : "ok"));
    if (p != MAP_FAILED) {
      char* bytes = static_cast<char*>(p);
      r.Note("mapped bytes = " + Hex(Fnv(std::string_view(bytes, 5 * 4096))));
      std::memcpy(bytes + 100, "written through the map", 23);
      std::memcpy(bytes + 4 * 4096 + 5, "past the old end", 16);
      CALL(r, ::msync(p, 5 * 4096, MS_SYNC));
      r.Pread(fd, 200, 50);
      CALL(r, ::munmap(p, 5 * 4096));
    }
    r.Close(fd);
    r.Content("m");
    // Bytes written by write(2) are seen through a new map.
    const int g = FD(r, ::openat(r.dir(), "m", O_RDWR | O_CLOEXEC));
    r.Pwrite(g, "by pwrite", 4096);
    void* q = ::mmap(nullptr, 8192, PROT_READ, MAP_SHARED, g, 0);
    r.Note(std::string("mmap = ") + (q == MAP_FAILED ? ErrnoName(errno) : "ok"));
    if (q != MAP_FAILED) {
      r.Note("mapped bytes = " + Hex(Fnv(std::string_view(static_cast<char*>(q), 8192))));
      ::munmap(q, 8192);
    }
    r.Close(g, "g");
  });
}

// --- readdir, symlinks, hard links -------------------------------------------

TEST_F(PosixParityTest, ReaddirListsEveryEntryWithItsType) {
  ExpectParity([](Trace& r) {
    CALL(r, ::mkdirat(r.dir(), "d", 0755));
    CALL(r, ::mkdirat(r.dir(), "d/sub", 0755));
    r.Put("d/file", "f");
    CALL(r, ::symlinkat("file", r.dir(), "d/link"));
    CALL(r, ::mknodat(r.dir(), "d/fifo", S_IFIFO | 0644, 0));
    CALL(r, ::mknodat(r.dir(), "d/null", S_IFCHR | 0666, makedev(1, 3)));
    r.List("d");
    r.List("d/sub");
    CALL(r, ::unlinkat(r.dir(), "d/file", 0));
    r.List("d");
    CALL(r, ::mkdirat(r.dir(), "many", 0755));
    for (int i = 0; i < 400; ++i) r.Put("many/entry-with-a-longish-name-" + std::to_string(i), "");
    r.List("many");
    for (int i = 0; i < 400; i += 3)
      CALL(r, ::unlinkat(r.dir(), ("many/entry-with-a-longish-name-" + std::to_string(i)).c_str(), 0));
    r.List("many");
    r.List("missing");
    r.List("d/fifo");
  });
}

TEST_F(PosixParityTest, SymlinksKeepTheirTargets) {
  ExpectParity([](Trace& r) {
    r.Put("f", "target file");
    CALL(r, ::symlinkat("f", r.dir(), "rel"));
    CALL(r, ::symlinkat("/etc/hostname", r.dir(), "abs"));
    CALL(r, ::symlinkat("no/such/thing", r.dir(), "dangling"));
    const std::string long_target = std::string(4000, 'x');
    CALL(r, ::symlinkat(long_target.c_str(), r.dir(), "long"));
    const std::string odd_target = "../a b/\x01\xff\n";
    CALL(r, ::symlinkat(odd_target.c_str(), r.dir(), "odd"));
    CALL(r, ::symlinkat("f", r.dir(), "f"));   // EEXIST
    CALL(r, ::symlinkat("", r.dir(), "empty"));  // ENOENT
    for (const char* l : {"rel", "abs", "dangling", "long", "odd", "f", "missing"}) r.Readlink(l);
    char small[3];
    CALL(r, ::readlinkat(r.dir(), "rel", small, sizeof(small)));
    CALL(r, ::readlinkat(r.dir(), "long", small, sizeof(small)));
    r.Stat("rel", /*follow=*/true);
    r.Stat("dangling", /*follow=*/true);
    r.Content("rel");
    CALL(r, ::fchownat(r.dir(), "rel", 1234, 5678, AT_SYMLINK_NOFOLLOW));
    r.Stat("rel");
    r.Stat("f");
    CALL(r, ::fchownat(r.dir(), "rel", 4321, 8765, 0));  // Follows: changes f.
    r.Stat("rel");
    r.Stat("f");
    CALL(r, ::mkdirat(r.dir(), "d", 0755));
    r.Put("d/inside", "inside");
    CALL(r, ::symlinkat("d", r.dir(), "dlink"));
    r.Content("dlink/inside");
    r.List("dlink");
    CALL(r, ::unlinkat(r.dir(), "dlink", 0));
    r.Stat("d");
  });
}

TEST_F(PosixParityTest, HardLinksShareBytesAndCountLinks) {
  ExpectParity([](Trace& r) {
    r.Put("a", SeededBytes(200'000, 15));
    CALL(r, ::linkat(r.dir(), "a", r.dir(), "b", 0));
    r.Stat("a");
    r.Stat("b");
    int fd = FD(r, ::openat(r.dir(), "b", O_WRONLY | O_CLOEXEC));
    r.Pwrite(fd, "through b", 1000);
    r.Close(fd);
    r.Content("a");
    r.Content("b");
    CALL(r, ::mkdirat(r.dir(), "sub", 0755));
    CALL(r, ::linkat(r.dir(), "a", r.dir(), "sub/c", 0));
    r.Stat("a");
    fd = FD(r, ::openat(r.dir(), "sub/c", O_WRONLY | O_APPEND | O_CLOEXEC));
    r.Write(fd, "appended through c");
    r.Close(fd);
    r.Content("b");
    CALL(r, ::unlinkat(r.dir(), "a", 0));
    r.Stat("b");
    r.Stat("sub/c");
    r.Content("sub/c");
    CALL(r, ::linkat(r.dir(), "sub", r.dir(), "subdir-link", 0));  // EPERM
    CALL(r, ::linkat(r.dir(), "b", r.dir(), "sub/c", 0));           // EEXIST
    CALL(r, ::linkat(r.dir(), "missing", r.dir(), "x", 0));         // ENOENT
    CALL(r, ::linkat(r.dir(), "b", r.dir(), "missing/x", 0));       // ENOENT
    CALL(r, ::symlinkat("b", r.dir(), "sym"));
    CALL(r, ::linkat(r.dir(), "sym", r.dir(), "sym2", 0));  // The symlink itself.
    r.Stat("sym");
    r.Stat("sym2");
    CALL(r, ::linkat(r.dir(), "sym", r.dir(), "followed", AT_SYMLINK_FOLLOW));
    r.Stat("b");
    // Truncate through one name: every name sees it.
    CALL(r, ::truncate(r.P("followed").c_str(), 10));
    r.Content("sub/c");
    CALL(r, ::unlinkat(r.dir(), "b", 0));
    CALL(r, ::unlinkat(r.dir(), "sub/c", 0));
    r.Stat("followed");
    r.Content("followed");
  });
}

// --- attributes ---------------------------------------------------------------

TEST_F(PosixParityTest, ChmodAndChownAsRoot) {
  ExpectParity([](Trace& r) {
    r.Put("f", "x");
    for (mode_t m : {0600, 0, 07777, 04755, 02755, 01644, 0644}) {
      CALL(r, ::fchmodat(r.dir(), "f", m, 0));
      r.Stat("f");
    }
    CALL(r, ::fchownat(r.dir(), "f", 1234, 5678, 0));
    r.Stat("f");
    CALL(r, ::fchownat(r.dir(), "f", static_cast<uid_t>(-1), 99, 0));
    r.Stat("f");
    // chown of a setuid/setgid executable clears those bits, even for root.
    CALL(r, ::fchmodat(r.dir(), "f", 06755, 0));
    CALL(r, ::fchownat(r.dir(), "f", 1, 1, 0));
    r.Stat("f");
    const int fd = FD(r, ::openat(r.dir(), "f", O_RDWR | O_CLOEXEC));
    CALL(r, ::fchmod(fd, 0640));
    CALL(r, ::fchown(fd, 0, 0));
    r.Fstat(fd);
    r.Close(fd);
    // A setgid directory hands its group down (and the bit to subdirectories).
    CALL(r, ::mkdirat(r.dir(), "d", 0755));
    CALL(r, ::fchownat(r.dir(), "d", 0, 4321, 0));
    CALL(r, ::fchmodat(r.dir(), "d", 02775, 0));
    r.Stat("d");
    r.Put("d/in", "in");
    CALL(r, ::mkdirat(r.dir(), "d/sub", 0755));
    r.Stat("d/in");
    r.Stat("d/sub");
    CALL(r, ::fchmodat(r.dir(), "d", 01777, 0));
    r.Stat("d");
    CALL(r, ::fchmodat(r.dir(), "missing", 0644, 0));
    CALL(r, ::fchownat(r.dir(), "missing", 1, 1, 0));
    CALL(r, ::mknodat(r.dir(), "fifo", S_IFIFO | 0600, 0));
    CALL(r, ::fchownat(r.dir(), "fifo", 7, 8, 0));
    CALL(r, ::fchmodat(r.dir(), "fifo", 0666, 0));
    r.Stat("fifo");
  });
}

TEST_F(PosixParityTest, UtimensatSetsNanosecondTimesAndHonoursNowAndOmit) {
  ExpectParity(
      [](Trace& r) {
        r.Put("f", "times");
        CALL(r, ::mkdirat(r.dir(), "d", 0755));
        CALL(r, ::symlinkat("f", r.dir(), "l"));
        const timespec both[2] = {{1'000'000'000, 123'456'789}, {1'200'000'000, 987'654'321}};
        CALL(r, ::utimensat(r.dir(), "f", both, 0));
        r.Times("f");
        const timespec omit_atime[2] = {{0, UTIME_OMIT}, {1'300'000'000, 5}};
        CALL(r, ::utimensat(r.dir(), "f", omit_atime, 0));
        r.Times("f");
        const timespec omit_mtime[2] = {{1'400'000'000, 1}, {0, UTIME_OMIT}};
        CALL(r, ::utimensat(r.dir(), "f", omit_mtime, 0));
        r.Times("f");
        timespec before {}, after {};
        ::clock_gettime(CLOCK_REALTIME, &before);
        const timespec now_mtime[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
        CALL(r, ::utimensat(r.dir(), "f", now_mtime, 0));
        ::clock_gettime(CLOCK_REALTIME, &after);
        r.MtimeBetween("f", before, after);
        ::clock_gettime(CLOCK_REALTIME, &before);
        CALL(r, ::utimensat(r.dir(), "f", nullptr, 0));
        ::clock_gettime(CLOCK_REALTIME, &after);
        r.MtimeBetween("f", before, after);
        // Times before 1970 and far after 2038.
        const timespec old[2] = {{-31'536'000, 250'000'000}, {-86'400, 999'999'999}};
        CALL(r, ::utimensat(r.dir(), "f", old, 0));
        r.Times("f");
        const timespec future[2] = {{int64_t{1} << 33, 1}, {(int64_t{1} << 33) + 7, 2}};
        CALL(r, ::utimensat(r.dir(), "f", future, 0));
        r.Times("f");
        const int fd = FD(r, ::openat(r.dir(), "f", O_RDWR | O_CLOEXEC));
        const timespec via_fd[2] = {{1'500'000'000, 111}, {1'500'000'001, 222}};
        CALL(r, ::futimens(fd, via_fd));
        r.Close(fd);
        r.Times("f");
        // Set times on an open file with unwritten data: the data's flush
        // must not override them (cp -p, tar and rsync do this).
        const int w = FD(r, ::openat(r.dir(), "written", O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
        r.Write(w, SeededBytes(100'000, 16));
        const timespec copied[2] = {{1'111'111'111, 111'111'111}, {1'222'222'222, 222'222'222}};
        CALL(r, ::futimens(w, copied));
        r.Close(w, "w");
        r.Times("written");
        CALL(r, ::utimensat(r.dir(), "l", both, AT_SYMLINK_NOFOLLOW));
        r.Times("l", /*follow=*/false);
        r.Times("l", /*follow=*/true);
        CALL(r, ::utimensat(r.dir(), "missing", both, 0));
        const timespec dir_times[2] = {{1'600'000'000, 1}, {1'600'000'000, 999}};
        CALL(r, ::utimensat(r.dir(), "d", dir_times, 0));
        r.Times("d");
      },
      TreeOptions{.mtimes = true});
}

TEST_F(PosixParityTest, FsyncAndFdatasyncReturnZero) {
  ExpectParity([](Trace& r) {
    const int fd = FD(r, ::openat(r.dir(), "f", O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    CALL(r, ::fsync(fd));  // Nothing written yet.
    r.Write(fd, SeededBytes(1 << 20, 17));
    CALL(r, ::fsync(fd));
    r.Pwrite(fd, "more", 10);
    CALL(r, ::fdatasync(fd));
    CALL(r, ::fdatasync(fd));
    r.Close(fd);
    const int ro = FD(r, ::openat(r.dir(), "f", O_RDONLY | O_CLOEXEC));
    CALL(r, ::fsync(ro));
    CALL(r, ::fdatasync(ro));
    CALL(r, ::syncfs(ro));
    r.Close(ro, "ro");
    CALL(r, ::mkdirat(r.dir(), "d", 0755));
    const int d = FD(r, ::openat(r.dir(), "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    CALL(r, ::fsync(d));
    CALL(r, ::fdatasync(d));
    r.Close(d, "d");
    r.Content("f");
  });
}

TEST_F(PosixParityTest, StatfsHasSensibleNumbersOnTheMount) {
  struct statvfs sv {};
  ASSERT_EQ(::statvfs(mount().mountpoint().c_str(), &sv), 0) << ErrnoName(errno);
  EXPECT_GT(sv.f_bsize, 0u);
  EXPECT_GT(sv.f_frsize, 0u);
  EXPECT_GT(sv.f_blocks, 0u);
  EXPECT_GT(sv.f_bfree, 0u);
  EXPECT_LE(sv.f_bfree, sv.f_blocks);
  EXPECT_LE(sv.f_bavail, sv.f_bfree);
  EXPECT_GT(sv.f_files, 0u);
  EXPECT_GT(sv.f_ffree, 0u);
  EXPECT_LE(sv.f_ffree, sv.f_files);
  EXPECT_EQ(sv.f_namemax, 255u);
  struct statfs sf {};
  ASSERT_EQ(::statfs(mount().mountpoint().c_str(), &sf), 0);
  EXPECT_EQ(sf.f_type, kFuseSuperMagic);
  // df's arithmetic works on it: used = blocks - free is within the disk.
  EXPECT_LE((sv.f_blocks - sv.f_bfree) * sv.f_frsize, sv.f_blocks * sv.f_frsize);
}

// --- names and depth -----------------------------------------------------------

TEST_F(PosixParityTest, NamesOf255BytesWorkAnd256AreTooLong) {
  ExpectParity([](Trace& r) {
    const std::string n255(255, 'a'), n256(256, 'b');
    const std::string d255(255, 'd'), l255(255, 'l'), m255(255, 'm');
    std::string euro;  // 85 three-byte characters: 255 bytes.
    for (int i = 0; i < 85; ++i) euro += "\xe2\x82\xac";
    const int fd = FD(r, ::openat(r.dir(), n255.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    r.Write(fd, "long name");
    r.Close(fd);
    r.Stat(n255);
    r.Content(n255);
    FD(r, ::openat(r.dir(), n256.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    FD(r, ::openat(r.dir(), n256.c_str(), O_RDONLY | O_CLOEXEC));
    CALL(r, ::mkdirat(r.dir(), n256.c_str(), 0755));
    CALL(r, ::mkdirat(r.dir(), d255.c_str(), 0755));
    CALL(r, ::symlinkat(n255.c_str(), r.dir(), n256.c_str()));
    CALL(r, ::symlinkat(n255.c_str(), r.dir(), l255.c_str()));
    CALL(r, ::renameat(r.dir(), n255.c_str(), r.dir(), n256.c_str()));
    CALL(r, ::linkat(r.dir(), n255.c_str(), r.dir(), n256.c_str(), 0));
    CALL(r, ::mknodat(r.dir(), n256.c_str(), S_IFIFO | 0644, 0));
    CALL(r, ::unlinkat(r.dir(), n256.c_str(), 0));
    CALL(r, ::renameat(r.dir(), n255.c_str(), r.dir(), m255.c_str()));
    CALL(r, ::linkat(r.dir(), m255.c_str(), r.dir(), (d255 + "/" + n255).c_str(), 0));
    r.Stat(n256);
    r.Stat(m255);
    r.Readlink(l255);
    r.Put(euro, "euros");
    r.Content(euro);
    r.List(".");
    r.List(d255);
  });
}

TEST_F(PosixParityTest, EveryByteButSlashAndNulWorksInNames) {
  ExpectParity([](Trace& r) {
    CALL(r, ::mkdirat(r.dir(), "bytes", 0755));
    for (int b = 1; b < 256; ++b) {
      if (b == '/') continue;
      const char c = static_cast<char>(b);
      const std::string framed = std::string("bytes/x") + c + "y";
      r.Put(framed, framed);
      if (b != '.') r.Put(std::string("bytes/") + c, std::string(1, c));
    }
    r.List("bytes");
    for (int b = 1; b < 256; b += 17) {
      if (b == '/') continue;
      r.Content(std::string("bytes/x") + static_cast<char>(b) + "y");
    }
    // Renames and removals by such names.
    CALL(r, ::renameat(r.dir(), "bytes/\n", r.dir(), "bytes/\t\r"));
    CALL(r, ::unlinkat(r.dir(), "bytes/\xff", 0));
    CALL(r, ::mkdirat(r.dir(), "bytes/\x01\x7f\x80", 0755));
    r.List("bytes/\x01\x7f\x80");
  });
}

TEST_F(PosixParityTest, HundredLevelDeepTreeWorks) {
  ExpectParity([](Trace& r) {
    std::string path;
    for (int i = 0; i < 100; ++i) {
      path += (i == 0 ? "" : "/") + std::string("d") + std::to_string(i % 10);
      CALL(r, ::mkdirat(r.dir(), path.c_str(), 0755));
    }
    r.Put(path + "/leaf", "at the bottom");
    r.Content(path + "/leaf");
    r.Stat(path);
    r.List(path);
    // Walk down with *at calls, as find and rm -rf do.
    int fd = ::dup(r.dir());
    for (int i = 0; i < 100 && fd >= 0; ++i) {
      const int next = ::openat(fd, ("d" + std::to_string(i % 10)).c_str(),
                                O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      ::close(fd);
      fd = next;
    }
    r.Note(std::string("walked down: ") + (fd >= 0 ? "yes" : ErrnoName(errno)));
    if (fd >= 0) {
      struct stat st {};
      r.Note("leaf via dirfd: " + std::to_string(::fstatat(fd, "leaf", &st, 0)) + " size " +
             std::to_string(st.st_size));
      ::close(fd);
    }
    CALL(r, ::renameat(r.dir(), "d0", r.dir(), "top"));
    r.Content("top" + path.substr(2) + "/leaf");
    // A directory from the bottom moved to the top.
    CALL(r, ::renameat(r.dir(), ("top" + path.substr(2)).c_str(), r.dir(), "bottom"));
    r.Content("bottom/leaf");
  });
}

// --- real tools -------------------------------------------------------------

// A tree with what dump tools and archivers meet: sizes from 0 to MiBs, a
// sparse file, modes with special bits, owners, symlinks (relative, absolute,
// dangling), hard links, a fifo, a device, odd names, an empty directory,
// depth, and explicit nanosecond times.
void MakeToolTree(const std::string& root) {
  ASSERT_EQ(::mkdir(root.c_str(), 0755), 0);
  auto path = [&](const std::string& rel) { return root + "/" + rel; };
  for (const char* d : {"docs", "data", "empty", "a", "a/b", "a/b/c", "a/b/c/d", "private dir"})
    ASSERT_EQ(::mkdir(path(d).c_str(), 0755), 0) << d;
  ASSERT_TRUE(WriteFile(path("docs/readme.txt"), "read me\n"));
  ASSERT_TRUE(WriteFile(path("data/big.bin"), SeededBytes(3 * kMiB + 17, 21)));
  ASSERT_TRUE(WriteFile(path("data/zero"), ""));
  ASSERT_TRUE(WriteFile(path("data/dump.sql"), std::string(200'000, 'x') + "COMMIT;\n"));
  {
    const int fd = ::open(path("data/sparse.bin").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, "end", 3, 10 * kMiB), 3);
    ::close(fd);
  }
  ASSERT_TRUE(WriteFile(path("exec.sh"), "#!/bin/sh\necho hi\n"));
  ASSERT_EQ(::chmod(path("exec.sh").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(path("setuid"), "s"));
  ASSERT_EQ(::chmod(path("setuid").c_str(), 04755), 0);
  ASSERT_TRUE(WriteFile(path("private dir/secret"), "secret"));
  ASSERT_EQ(::chmod(path("private dir/secret").c_str(), 0600), 0);
  ASSERT_EQ(::chmod(path("private dir").c_str(), 0700), 0);
  ASSERT_TRUE(WriteFile(path("owned"), "owned"));
  ASSERT_EQ(::chown(path("owned").c_str(), 1234, 5678), 0);
  ASSERT_EQ(::symlink("docs/readme.txt", path("link-rel").c_str()), 0);
  ASSERT_EQ(::symlink("/etc/hostname", path("link-abs").c_str()), 0);
  ASSERT_EQ(::symlink("nowhere", path("dangling").c_str()), 0);
  ASSERT_EQ(::link(path("data/big.bin").c_str(), path("data/hard").c_str()), 0);
  ASSERT_EQ(::mkfifo(path("pipe").c_str(), 0640), 0);
  ASSERT_EQ(::mknod(path("null-dev").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  ASSERT_TRUE(WriteFile(path("na\xc3\xafve file \xe2\x9c\x93.txt"), "unicode"));
  ASSERT_TRUE(WriteFile(path("a/b/c/d/deep"), "deep"));
  // Every entry gets its own time in the past, to the nanosecond (rsync only
  // sets a time that differs from the copy's in whole seconds).
  int64_t i = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    ++i;
    const timespec t[2] = {{1'234'567'890 + 1000 * i, 123'456'789 + i},
                           {1'234'567'890 + 3600 * i, 987'654'321 - i}};
    ASSERT_EQ(::utimensat(AT_FDCWD, e.path().c_str(), t, AT_SYMLINK_NOFOLLOW), 0) << e.path();
  }
}

TEST_F(PosixParityTest, TarRoundTripThroughTheMountKeepsTheTree) {
  const std::string src = mount().Scratch("src");
  ASSERT_NO_FATAL_FAILURE(MakeToolTree(src));
  const TreeOptions with_times{.mtimes = true};
  const Tree want = DescribeTree(src, with_times);
  const std::string in_mount = Path("x"), on_disk = plain_ + "/x", back = plain_ + "/back";
  const std::string tar1 = mount().Scratch("in.tar"), tar2 = mount().Scratch("out.tar");
  for (const std::string& d : {in_mount, on_disk, back}) ASSERT_EQ(::mkdir(d.c_str(), 0755), 0);
  MustRun({"tar", "--format=posix", "-C", src, "-cf", tar1, "."});
  MustRun({"tar", "-C", on_disk, "-xpf", tar1});
  MustRun({"tar", "-C", in_mount, "-xpf", tar1});
  EXPECT_TRUE(SameTree(DescribeTree(on_disk, with_times), DescribeTree(in_mount, with_times)));
  EXPECT_TRUE(SameTree(want, DescribeTree(in_mount, with_times)));
  // And out again: an archive made from the mount restores the same tree.
  MustRun({"tar", "--format=posix", "-C", in_mount, "-cf", tar2, "."});
  MustRun({"tar", "-C", back, "-xpf", tar2});
  EXPECT_TRUE(SameTree(want, DescribeTree(back, with_times)));
  ASSERT_TRUE(mount().Remount());
  EXPECT_TRUE(SameTree(want, DescribeTree(in_mount, with_times))) << "after a remount";
}

TEST_F(PosixParityTest, CpArchiveIntoAndOutOfTheMountKeepsTheTree) {
  const std::string src = mount().Scratch("src");
  ASSERT_NO_FATAL_FAILURE(MakeToolTree(src));
  const TreeOptions with_times{.mtimes = true};
  const Tree want = DescribeTree(src, with_times);
  const std::string in_mount = Path("cp"), on_disk = plain_ + "/cp", back = plain_ + "/back";
  MustRun({"cp", "-a", src, on_disk});
  MustRun({"cp", "-a", src, in_mount});
  EXPECT_TRUE(SameTree(DescribeTree(on_disk, with_times), DescribeTree(in_mount, with_times)));
  EXPECT_TRUE(SameTree(want, DescribeTree(in_mount, with_times)));
  MustRun({"cp", "-a", in_mount, back});
  EXPECT_TRUE(SameTree(want, DescribeTree(back, with_times)));
  ASSERT_TRUE(mount().Remount());
  EXPECT_TRUE(SameTree(want, DescribeTree(in_mount, with_times))) << "after a remount";
}

TEST_F(PosixParityTest, RsyncIntoTheMountKeepsTheTreeAndASecondRunCopiesNothing) {
  if (RunProcess({"rsync", "--version"}).exit_code != 0)
    GTEST_SKIP() << "rsync is not installed (scripts/install-deps.sh installs it)";
  const std::string src = mount().Scratch("src");
  ASSERT_NO_FATAL_FAILURE(MakeToolTree(src));
  const TreeOptions with_times{.mtimes = true};
  const std::string in_mount = Path("rs"), on_disk = plain_ + "/rs";
  MustRun({"rsync", "-aH", src + "/", on_disk + "/"});
  MustRun({"rsync", "-aH", src + "/", in_mount + "/"});
  EXPECT_TRUE(SameTree(DescribeTree(on_disk, with_times), DescribeTree(in_mount, with_times)));
  EXPECT_TRUE(SameTree(DescribeTree(src, with_times), DescribeTree(in_mount, with_times)));
  // Sizes and mtimes came through, so a second run finds nothing to do.
  const ProcessResult again = MustRun({"rsync", "-aHi", src + "/", in_mount + "/"});
  EXPECT_EQ(again.output, "");
  // A changed file is updated (rsync writes a temporary and renames it over).
  ASSERT_TRUE(WriteFile(src + "/data/dump.sql", std::string(150'000, 'y') + "COMMIT;\n"));
  MustRun({"rsync", "-aH", src + "/", in_mount + "/"});
  MustRun({"rsync", "-aH", "--inplace", src + "/", on_disk + "/"});
  const Tree want = DescribeTree(src, with_times);
  EXPECT_TRUE(SameTree(want, DescribeTree(in_mount, with_times)));
  ASSERT_TRUE(mount().Remount());
  EXPECT_TRUE(SameTree(want, DescribeTree(in_mount, with_times))) << "after a remount";
  EXPECT_TRUE(SameTree(DescribeTree(on_disk, with_times), DescribeTree(in_mount, with_times)));
}

}  // namespace
}  // namespace snapfs::testing
