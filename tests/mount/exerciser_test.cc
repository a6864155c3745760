// A random-operation exerciser: the same random system call, with the same
// arguments, on the mount and on a plain folder of the test machine's disk,
// step by step. After every step the results (return value or errno, bytes
// read) must be equal; every kTreeEvery steps, and at the end, the two trees
// too (names, types, permission bits, link counts, sizes, symlink targets,
// every byte of every file); then again after a remount.
//
// A mismatch prints the seed, the step, the operation and the recent steps;
// rerun one seed with
//   SNAPFS_EXERCISER_SEED=N SNAPFS_EXERCISER_STEPS=M
//     build/tests/mount_tests --gtest_filter='ExerciserTest.*'
// (SNAPFS_EXERCISER_SEEDS=K runs K seeds from N on.)
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/mount/mount_fixture.h"

namespace snapfs::testing {
namespace {

constexpr int kSlots = 6;          // Open descriptors per side.
constexpr int kTreeEvery = 10;     // Steps between whole-tree comparisons.
constexpr int kMaxOffset = 256 << 10;
constexpr int kMaxLen = 64 << 10;

std::string ErrName(int err) {
  const char* n = ::strerrorname_np(err);
  return n ? n : "errno " + std::to_string(err);
}
// The outcome of a call that just returned `rc` (errno is read here, after
// the call: never pass errno as a second argument, whose evaluation order is
// unspecified).
std::string Rc(long rc) { return rc < 0 ? "-1 " + ErrName(errno) : std::to_string(rc); }

uint64_t Fnv(const char* p, size_t n) {
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(p[i]);
    h *= 1099511628211ull;
  }
  return h;
}

// One side: a root folder and its open descriptors.
struct Side {
  std::string root;
  int dir = -1;
  std::array<int, kSlots> fds;
  Side() { fds.fill(-1); }
};

// Everything below `dirfd`: path -> "type perms nlink size content/target".
void Walk(int dirfd, const std::string& prefix, std::map<std::string, std::string>* out) {
  const int fd = ::dup(dirfd);
  DIR* d = fd >= 0 ? ::fdopendir(fd) : nullptr;
  if (d == nullptr) {
    (*out)[prefix + "<listing>"] = "opendir " + ErrName(errno);
    if (fd >= 0) ::close(fd);
    return;
  }
  ::rewinddir(d);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d))
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0)
      names.emplace_back(e->d_name);
  ::closedir(d);
  for (const std::string& name : names) {
    struct stat st {};
    const std::string path = prefix + name;
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      (*out)[path] = "lstat " + ErrName(errno);
      continue;
    }
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%o %04o nlink=%lu", static_cast<unsigned>(st.st_mode >> 12),
                  static_cast<unsigned>(st.st_mode & 07777),
                  static_cast<unsigned long>(st.st_nlink));
    std::string desc = buf;
    if (S_ISREG(st.st_mode)) {
      desc += " size=" + std::to_string(st.st_size);
      const int f = ::openat(dirfd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (f < 0) {
        desc += " open " + ErrName(errno);
      } else {
        std::string bytes(static_cast<size_t>(st.st_size), '\0');
        ssize_t n = 0;
        size_t done = 0;
        while (done < bytes.size() && (n = ::pread(f, bytes.data() + done, bytes.size() - done,
                                                   static_cast<off_t>(done))) > 0)
          done += static_cast<size_t>(n);
        desc += n < 0 ? " read " + ErrName(errno)
                      : " got=" + std::to_string(done) + " fnv=" +
                            std::to_string(Fnv(bytes.data(), done));
        ::close(f);
      }
    } else if (S_ISLNK(st.st_mode)) {
      char target[4096];
      const ssize_t n = ::readlinkat(dirfd, name.c_str(), target, sizeof(target));
      desc += n < 0 ? " readlink " + ErrName(errno) : " -> " + std::string(target, n);
    }
    (*out)[path] = desc;
    if (S_ISDIR(st.st_mode)) {
      const int sub = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) {
        (*out)[path + "/<listing>"] = "open " + ErrName(errno);
        continue;
      }
      Walk(sub, path + "/", out);
      ::close(sub);
    }
  }
}

std::string TreeDiff(const std::map<std::string, std::string>& want,
                     const std::map<std::string, std::string>& got) {
  std::string diff;
  for (const auto& [p, d] : want) {
    auto it = got.find(p);
    if (it == got.end()) diff += "  only in plain folder: " + p + " " + d + "\n";
    else if (it->second != d) diff += "  " + p + ": plain " + d + " | mount " + it->second + "\n";
  }
  for (const auto& [p, d] : got)
    if (!want.count(p)) diff += "  only in mount: " + p + " " + d + "\n";
  return diff;
}

// One random operation, applied to a side; returns its outcome as text.
using Op = std::function<std::string(Side&)>;

class Exerciser {
 public:
  explicit Exerciser(uint64_t seed) : rng_(seed) {}

  // A random operation and its description.
  std::pair<std::string, Op> Next() {
    const int kind = Pick(100);
    if (kind < 14) return Open();
    if (kind < 22) return Close();
    if (kind < 40) return Pwrite();
    if (kind < 46) return Write();
    if (kind < 54) return Pread();
    if (kind < 58) return Ftruncate();
    if (kind < 61) return Truncate();
    if (kind < 64) return Fsync();
    if (kind < 70) return Rename();
    if (kind < 73) return Link();
    if (kind < 76) return Symlink();
    if (kind < 81) return Unlink();
    if (kind < 86) return Mkdir();
    if (kind < 90) return Rmdir();
    if (kind < 94) return Chmod();
    if (kind < 97) return Utimens();
    return Stat();
  }

 private:
  int Pick(int n) { return static_cast<int>(rng_() % static_cast<uint64_t>(n)); }
  // Paths from a small pool, so operations keep meeting each other.
  std::string Path() {
    static const char* const kNames[] = {"a", "b", "c", "d", "e"};
    std::string p = kNames[Pick(5)];
    for (int depth = Pick(3); depth > 0; --depth) p += std::string("/") + kNames[Pick(5)];
    return p;
  }
  uint32_t Mode() {
    static const uint32_t kModes[] = {0644, 0600, 0755, 0700, 0444, 0640, 01777, 02755};
    return kModes[Pick(8)];
  }

  std::pair<std::string, Op> Open() {
    static const int kAcc[] = {O_RDONLY, O_WRONLY, O_RDWR};
    int flags = kAcc[Pick(3)];
    if (Pick(3) != 0) flags |= O_CREAT;
    if (Pick(6) == 0) flags |= O_EXCL;
    if (Pick(5) == 0) flags |= O_TRUNC;
    if (Pick(6) == 0) flags |= O_APPEND;
    if (Pick(8) == 0) flags |= O_DIRECTORY;
    const int slot = Pick(kSlots);
    const std::string path = Path();
    const uint32_t mode = Mode();
    char what[128];
    std::snprintf(what, sizeof(what), "open(%s, 0%o, 0%o) -> slot %d", path.c_str(),
                  static_cast<unsigned>(flags), mode, slot);
    return {what, [=](Side& s) {
              std::string r;
              if (s.fds[slot] >= 0) {
                const int rc = ::close(s.fds[slot]);
                r = "close old " + Rc(rc) + "; ";
                s.fds[slot] = -1;
              }
              const int fd = ::openat(s.dir, path.c_str(), flags | O_CLOEXEC, mode);
              if (fd >= 0) s.fds[slot] = fd;
              return r + (fd < 0 ? "-1 " + ErrName(errno) : "fd");
            }};
  }
  std::pair<std::string, Op> Close() {
    const int slot = Pick(kSlots);
    return {"close(slot " + std::to_string(slot) + ")", [=](Side& s) {
              if (s.fds[slot] < 0) return std::string("not open");
              const int rc = ::close(s.fds[slot]);
              s.fds[slot] = -1;
              return Rc(rc);
            }};
  }
  std::pair<std::string, Op> Pwrite() {
    const int slot = Pick(kSlots);
    const int64_t off = Pick(kMaxOffset);
    const size_t len = 1 + static_cast<size_t>(Pick(kMaxLen));
    const uint64_t seed = rng_();
    return {"pwrite(slot " + std::to_string(slot) + ", " + std::to_string(len) + " @ " +
                std::to_string(off) + ")",
            [=](Side& s) {
              if (s.fds[slot] < 0) return std::string("not open");
              const std::string bytes = SeededBytes(len, seed);
              const ssize_t n = ::pwrite(s.fds[slot], bytes.data(), len, off);
              return Rc(n);
            }};
  }
  std::pair<std::string, Op> Write() {
    const int slot = Pick(kSlots);
    const size_t len = 1 + static_cast<size_t>(Pick(kMaxLen / 4));
    const uint64_t seed = rng_();
    return {"write(slot " + std::to_string(slot) + ", " + std::to_string(len) + ")",
            [=](Side& s) {
              if (s.fds[slot] < 0) return std::string("not open");
              const std::string bytes = SeededBytes(len, seed);
              const ssize_t n = ::write(s.fds[slot], bytes.data(), len);
              return Rc(n);
            }};
  }
  std::pair<std::string, Op> Pread() {
    const int slot = Pick(kSlots);
    const int64_t off = Pick(kMaxOffset + kMaxLen);
    const size_t len = 1 + static_cast<size_t>(Pick(kMaxLen));
    return {"pread(slot " + std::to_string(slot) + ", " + std::to_string(len) + " @ " +
                std::to_string(off) + ")",
            [=](Side& s) {
              if (s.fds[slot] < 0) return std::string("not open");
              std::string buf(len, '\0');
              const ssize_t n = ::pread(s.fds[slot], buf.data(), len, off);
              if (n < 0) return "-1 " + ErrName(errno);
              return std::to_string(n) + " fnv=" + std::to_string(Fnv(buf.data(), n));
            }};
  }
  std::pair<std::string, Op> Ftruncate() {
    const int slot = Pick(kSlots);
    const int64_t size = Pick(4) == 0 ? 0 : Pick(kMaxOffset + kMaxLen);
    return {"ftruncate(slot " + std::to_string(slot) + ", " + std::to_string(size) + ")",
            [=](Side& s) {
              if (s.fds[slot] < 0) return std::string("not open");
              return Rc(::ftruncate(s.fds[slot], size));
            }};
  }
  std::pair<std::string, Op> Truncate() {
    const std::string path = Path();
    const int64_t size = Pick(kMaxOffset);
    return {"truncate(" + path + ", " + std::to_string(size) + ")", [=](Side& s) {
              return Rc(::truncate((s.root + "/" + path).c_str(), size));
            }};
  }
  std::pair<std::string, Op> Fsync() {
    const int slot = Pick(kSlots);
    const bool data = Pick(2);
    return {std::string(data ? "fdatasync" : "fsync") + "(slot " + std::to_string(slot) + ")",
            [=](Side& s) {
              if (s.fds[slot] < 0) return std::string("not open");
              return Rc(data ? ::fdatasync(s.fds[slot]) : ::fsync(s.fds[slot]));
            }};
  }
  std::pair<std::string, Op> Rename() {
    const std::string from = Path(), to = Path();
    static const unsigned kFlags[] = {0, 0, 0, RENAME_NOREPLACE, RENAME_EXCHANGE};
    const unsigned flags = kFlags[Pick(5)];
    return {"renameat2(" + from + ", " + to + ", " + std::to_string(flags) + ")", [=](Side& s) {
              return Rc(::renameat2(s.dir, from.c_str(), s.dir, to.c_str(), flags));
            }};
  }
  std::pair<std::string, Op> Link() {
    const std::string from = Path(), to = Path();
    return {"link(" + from + ", " + to + ")",
            [=](Side& s) { return Rc(::linkat(s.dir, from.c_str(), s.dir, to.c_str(), 0)); }};
  }
  std::pair<std::string, Op> Symlink() {
    const std::string target = Pick(4) == 0 ? "../" + Path() : Path();
    const std::string path = Path();
    return {"symlink(" + target + ", " + path + ")",
            [=](Side& s) { return Rc(::symlinkat(target.c_str(), s.dir, path.c_str())); }};
  }
  std::pair<std::string, Op> Unlink() {
    const std::string path = Path();
    return {"unlink(" + path + ")",
            [=](Side& s) { return Rc(::unlinkat(s.dir, path.c_str(), 0)); }};
  }
  std::pair<std::string, Op> Mkdir() {
    const std::string path = Path();
    const uint32_t mode = Mode() | 0700;  // Root may enter any folder; keep them listable.
    return {"mkdir(" + path + ")",
            [=](Side& s) { return Rc(::mkdirat(s.dir, path.c_str(), mode)); }};
  }
  std::pair<std::string, Op> Rmdir() {
    const std::string path = Path();
    return {"rmdir(" + path + ")",
            [=](Side& s) { return Rc(::unlinkat(s.dir, path.c_str(), AT_REMOVEDIR)); }};
  }
  std::pair<std::string, Op> Chmod() {
    const std::string path = Path();
    const uint32_t mode = Mode();
    char what[64];
    std::snprintf(what, sizeof(what), "chmod(%s, 0%o)", path.c_str(), mode);
    return {what, [=](Side& s) { return Rc(::fchmodat(s.dir, path.c_str(), mode, 0)); }};
  }
  std::pair<std::string, Op> Utimens() {
    const std::string path = Path();
    const int64_t t = 1'600'000'000 + Pick(100'000'000);
    const long ns = Pick(1'000'000'000);
    const int flags = Pick(3) == 0 ? AT_SYMLINK_NOFOLLOW : 0;
    return {"utimensat(" + path + ", " + std::to_string(t) + "." + std::to_string(ns) + ", " +
                std::to_string(flags) + ")",
            [=](Side& s) {
              const timespec ts[2] = {{t, ns}, {t + 1, ns}};
              const int rc = ::utimensat(s.dir, path.c_str(), ts, flags);
              if (rc != 0) return "-1 " + ErrName(errno);
              struct stat st {};
              if (::fstatat(s.dir, path.c_str(), &st, flags) != 0) return "stat " + ErrName(errno);
              return "0 mtime=" + std::to_string(st.st_mtim.tv_sec) + "." +
                     std::to_string(st.st_mtim.tv_nsec);
            }};
  }
  std::pair<std::string, Op> Stat() {
    const std::string path = Path();
    return {"lstat(" + path + ")", [=](Side& s) {
              struct stat st {};
              if (::fstatat(s.dir, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
                return "-1 " + ErrName(errno);
              char buf[96];
              std::snprintf(buf, sizeof(buf), "%o %04o nlink=%lu size=%lld",
                            static_cast<unsigned>(st.st_mode >> 12),
                            static_cast<unsigned>(st.st_mode & 07777),
                            static_cast<unsigned long>(st.st_nlink),
                            S_ISDIR(st.st_mode) ? 0LL : static_cast<long long>(st.st_size));
              return std::string(buf);
            }};
  }

  std::mt19937_64 rng_;
};

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

class ExerciserTest : public MountTest {
 protected:
  // Runs `steps` random operations from `seed`; returns false on the first
  // mismatch (reported to gtest).
  bool Run(uint64_t seed, int steps) {
    const std::string plain_root = mount().Scratch("plain-" + std::to_string(seed));
    const std::string mount_root = Path("x" + std::to_string(seed));
    if (::mkdir(plain_root.c_str(), 0755) != 0 || ::mkdir(mount_root.c_str(), 0755) != 0) {
      ADD_FAILURE() << "mkdir: " << ErrName(errno);
      return false;
    }
    Side plain, mnt;
    plain.root = plain_root;
    mnt.root = mount_root;
    plain.dir = ::open(plain_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    mnt.dir = ::open(mount_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    Exerciser ex(seed);
    std::deque<std::string> recent;
    auto fail = [&](int step, const std::string& what) {
      std::string context;
      for (const std::string& r : recent) context += "    " + r + "\n";
      ADD_FAILURE() << "seed " << seed << ", step " << step << ": " << what
                    << "\n  recent steps (op: result):\n" << context
                    << "  rerun: SNAPFS_EXERCISER_SEED=" << seed << " SNAPFS_EXERCISER_STEPS="
                    << step + 1;
    };
    auto compare_trees = [&](int step, const char* when) {
      std::map<std::string, std::string> a, b;
      Walk(plain.dir, "", &a);
      Walk(mnt.dir, "", &b);
      const std::string diff = TreeDiff(a, b);
      if (!diff.empty()) fail(step, std::string("trees differ ") + when + ":\n" + diff);
      return diff.empty();
    };
    bool ok = true;
    int step = 0;
    for (; step < steps && ok; ++step) {
      auto [what, op] = ex.Next();
      const std::string want = op(plain);
      const std::string got = op(mnt);
      recent.push_back(what + ": " + want);
      if (recent.size() > 25) recent.pop_front();
      if (want != got) {
        fail(step, what + "\n  plain folder: " + want + "\n  mount:        " + got);
        ok = false;
      } else if (step % kTreeEvery == kTreeEvery - 1) {
        ok = compare_trees(step, "after this step");
      }
    }
    for (int slot = 0; slot < kSlots; ++slot) {
      const std::string what = "close(slot " + std::to_string(slot) + ") at the end";
      const std::string want = plain.fds[slot] < 0 ? "" : Rc(::close(plain.fds[slot]));
      const std::string got = mnt.fds[slot] < 0 ? "" : Rc(::close(mnt.fds[slot]));
      if (ok && want != got) {
        fail(step, what + ": plain " + want + ", mount " + got);
        ok = false;
      }
    }
    if (ok) ok = compare_trees(step, "at the end");
    ::close(mnt.dir);
    if (ok) {
      EXPECT_TRUE(mount().Remount());
      mnt.dir = ::open(mount_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      ok = compare_trees(step, "after a remount");
      ::close(mnt.dir);
    }
    ::close(plain.dir);
    std::printf("exerciser seed %llu: %d steps, %s\n", static_cast<unsigned long long>(seed), step,
                ok ? "no difference" : "MISMATCH");
    return ok;
  }
};

TEST_F(ExerciserTest, RandomOperationsMatchAPlainFolder) {
  const uint64_t first = EnvOr("SNAPFS_EXERCISER_SEED", 20261125);
  const int seeds = static_cast<int>(EnvOr("SNAPFS_EXERCISER_SEEDS", 3));
  const int steps = static_cast<int>(EnvOr("SNAPFS_EXERCISER_STEPS", 1500));
  for (int i = 0; i < seeds; ++i)
    if (!Run(first + static_cast<uint64_t>(i), steps)) break;
}

// Found by the exerciser: rewinddir(3) on a folder opened before a file was
// created in it must list that file (POSIX: the stream then refers to the
// current state of the folder, as opendir would). snapfs served the listing
// taken at opendir until the descriptor was closed.
TEST_F(ExerciserTest, RewinddirSeesEntriesCreatedSinceOpendir) {
  ASSERT_EQ(::mkdir(Path("d").c_str(), 0755), 0);
  DIR* d = ::opendir(Path("d").c_str());
  ASSERT_NE(d, nullptr);
  auto names = [&] {
    std::vector<std::string> out;
    ::rewinddir(d);
    while (dirent* e = ::readdir(d))
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0)
        out.emplace_back(e->d_name);
    std::sort(out.begin(), out.end());
    return out;
  };
  EXPECT_EQ(names(), std::vector<std::string>{});
  ASSERT_TRUE(WriteFile(Path("d/new"), "x"));
  EXPECT_EQ(names(), std::vector<std::string>{"new"});
  ASSERT_EQ(::unlink(Path("d/new").c_str()), 0);
  ASSERT_EQ(::mkdir(Path("d/sub").c_str(), 0755), 0);
  EXPECT_EQ(names(), std::vector<std::string>{"sub"});
  ::closedir(d);
}

}  // namespace
}  // namespace snapfs::testing
