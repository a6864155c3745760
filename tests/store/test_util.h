// Helpers shared by the store unit tests: scratch folders, seeded bytes,
// hex literals, Status assertions, byte surgery on files, and a small store
// fixture. Test-only; nothing here is part of snapfs.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "store/chunker.h"
#include "store/status.h"
#include "store/store.h"

namespace snapfs::store::testing {

inline const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) { return r.status(); }

}  // namespace snapfs::store::testing

// Status or Result `expr` is OK (shows the error otherwise).
#define EXPECT_OK(expr)                                                         \
  do {                                                                          \
    const auto& _snapfs_v = (expr);                                             \
    EXPECT_TRUE(::snapfs::store::testing::StatusOf(_snapfs_v).ok())             \
        << ::snapfs::store::testing::StatusOf(_snapfs_v).ToString();            \
  } while (0)
#define ASSERT_OK(expr)                                                         \
  do {                                                                          \
    const auto& _snapfs_v = (expr);                                             \
    ASSERT_TRUE(::snapfs::store::testing::StatusOf(_snapfs_v).ok())             \
        << ::snapfs::store::testing::StatusOf(_snapfs_v).ToString();            \
  } while (0)
// Status or Result `expr` failed with Code `code`.
#define EXPECT_CODE(expr, want)                                                 \
  do {                                                                          \
    const auto& _snapfs_v = (expr);                                             \
    EXPECT_EQ(::snapfs::store::testing::StatusOf(_snapfs_v).code(), (want))     \
        << ::snapfs::store::testing::StatusOf(_snapfs_v).ToString();            \
  } while (0)
// `lhs = value of rexpr`, or a fatal failure (in a void function).
#define ASSERT_OK_AND_ASSIGN(lhs, rexpr) \
  ASSERT_OK_AND_ASSIGN_IMPL(SNAPFS_CONCAT(_snapfs_t, __LINE__), lhs, rexpr)
#define ASSERT_OK_AND_ASSIGN_IMPL(tmp, lhs, rexpr)     \
  auto tmp = (rexpr);                                  \
  ASSERT_TRUE(tmp.ok()) << tmp.status().ToString();    \
  lhs = std::move(tmp).value()

namespace snapfs::store::testing {

// A fresh folder under $TMPDIR (or /tmp), removed with everything in it.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
                       "/snapfs-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// `len` bytes from a generator seeded with `seed`: the same every run.
inline std::string SeededBytes(size_t len, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string bytes(len, '\0');
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    const uint64_t v = rng();
    for (int b = 0; b < 8; ++b) bytes[i + b] = static_cast<char>(v >> (8 * b));
  }
  for (; i < len; ++i) bytes[i] = static_cast<char>(rng());
  return bytes;
}

// The chunker params of the stores made before 2026-12-04 (commit 61dec79),
// which those stores keep (store/chunker.h).
inline constexpr ChunkerParams kFirstStoresChunkerParams{
    .min_size = 16 * 1024, .avg_size = 64 * 1024, .max_size = 256 * 1024};

// Lengths of the chunks `chunker` cuts `data` into, read in one piece.
inline std::vector<size_t> ChunkLengths(const Chunker& chunker, std::string_view data) {
  std::vector<size_t> lengths;
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  for (size_t pos = 0; pos < data.size();) {
    const size_t n = chunker.FindCut(p + pos, data.size() - pos, /*at_end=*/true);
    EXPECT_GT(n, 0u);
    if (n == 0) break;
    lengths.push_back(n);
    pos += n;
  }
  return lengths;
}
inline std::vector<size_t> ChunkLengths(const Chunker& chunker, std::span<const uint8_t> data) {
  return ChunkLengths(chunker,
                      std::string_view(reinterpret_cast<const char*>(data.data()), data.size()));
}

// Bytes from hex digits; spaces are ignored ("0102 ff" -> {1, 2, 255}).
inline std::string Unhex(std::string_view hex) {
  std::string digits;
  for (char c : hex)
    if (c != ' ') digits.push_back(c);
  std::string out;
  for (size_t i = 0; i + 1 < digits.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(digits.substr(i, 2), nullptr, 16)));
  return out;
}

inline std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void WriteWholeFile(const std::string& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

// XORs the byte at `offset` of the file at `path` with `mask`.
inline void XorFileByte(const std::string& path, uint64_t offset, uint8_t mask = 0xff) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0) << path;
  char c = 0;
  ASSERT_EQ(::pread(fd, &c, 1, static_cast<off_t>(offset)), 1);
  c = static_cast<char>(c ^ mask);
  ASSERT_EQ(::pwrite(fd, &c, 1, static_cast<off_t>(offset)), 1);
  ::close(fd);
}

// Every entry below `root` with its type, mode, size, mtime and (for files)
// contents: equal listings mean nothing was created, removed or changed.
inline std::map<std::string, std::string> Snapshot(const std::string& root) {
  namespace fsys = std::filesystem;
  std::map<std::string, std::string> out;
  for (const auto& e : fsys::recursive_directory_iterator(root)) {
    struct stat st {};
    ::lstat(e.path().c_str(), &st);
    std::string desc = std::to_string(st.st_mode) + " " + std::to_string(st.st_size) + " " +
                       std::to_string(st.st_mtim.tv_sec) + "." +
                       std::to_string(st.st_mtim.tv_nsec);
    if (S_ISREG(st.st_mode)) desc += " " + ReadWholeFile(e.path());
    out[fsys::relative(e.path(), root)] = desc;
  }
  return out;
}

// A test with a fresh store at dir/store, open read-write as store_.
// name -> child for every live entry of `parent` at `at`, in listing order.
inline std::vector<std::pair<std::string, Ino>> Listing(Store& store, Ino parent, Generation at) {
  std::vector<std::pair<std::string, Ino>> out;
  Status st = store.ListDir(parent, at, [&](std::string_view name, const DirentRecord& rec) {
    out.emplace_back(std::string(name), rec.child);
    return true;
  });
  EXPECT_TRUE(st.ok()) << st.ToString();
  return out;
}

class StoreTestBase : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(InitAndOpen()); }

  void InitAndOpen(const InitOptions& init = {}) {
    ASSERT_OK(Store::Init(path_, init));
    ASSERT_NO_FATAL_FAILURE(Reopen());
  }
  // Closes store_ (if open) and opens it again read-write.
  void Reopen(OpenOptions options = {}) {
    store_.reset();
    if (options.compress_threads == 0) options.compress_threads = 2;
    ASSERT_OK_AND_ASSIGN(store_, Store::Open(path_, options));
  }
  // Commits `m` with a log record of `op` on `ino`; returns the generation.
  Generation CommitOp(Mutation& m, Op op, Ino ino, CommitOptions options = {}) {
    LogRecord log;
    log.op = op;
    log.ino = ino;
    Result<Generation> g = store_->Commit(m, log, options);
    EXPECT_TRUE(g.ok()) << g.status().ToString();
    return g.ok() ? *g : 0;
  }
  std::string PackPathOf(uint32_t pack) const { return PackPath(path_ + "/packs", pack); }

  TempDir dir_;
  const std::string path_ = dir_.path() + "/store";
  std::unique_ptr<Store> store_;
};

}  // namespace snapfs::store::testing
