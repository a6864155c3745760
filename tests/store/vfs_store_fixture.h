// A store with a Vfs over it, opened as the daemon opens it, for tests that
// drive whole dump runs and reopen the store as a restarted daemon would
// (gc_test.cc, delta_test.cc, settle_test.cc), with the dump helpers they share.
#pragma once

#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "bench/dump_data.h"
#include "fs/vfs.h"
#include "store/gc.h"
#include "store/store.h"
#include "tests/fs/vfs_test_util.h"
#include "tests/store/test_util.h"

namespace snapfs::store::testing {

// The first `bytes` bytes of the benchmark's SQL dump on `day` (rows change
// by 1 % a day, at scattered places; bench/dump_data.h).
inline std::string DumpText(size_t bytes, int day) { return bench::SqlDumpPrefix(bytes, day, 3); }

inline uint64_t PacksBytes(const std::string& dir) {
  uint64_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) n += e.file_size();
  return n;
}

class VfsStoreTest : public ::testing::Test {
 protected:
  // `state_gap_ns` of quiet ends a state (EndState waits one and a half).
  explicit VfsStoreTest(int64_t state_gap_ns) : state_gap_ns_(state_gap_ns) {}

  void SetUp() override {
    InitOptions init;
    init.state_gap_ns = state_gap_ns_;
    ASSERT_OK(Store::Init(path_, init));
    ASSERT_NO_FATAL_FAILURE(Open());
  }
  void TearDown() override {
    gc_testing::SetCrashHook(nullptr);
    Close();
  }
  void Open() {
    OpenOptions o = open_options_;
    o.compress_threads = 2;
    ASSERT_OK_AND_ASSIGN(store_, Store::Open(path_, o));
    vfs_ = std::make_unique<fs::Vfs>(store_.get(), vfs_options_);
  }
  void Close() {
    vfs_.reset();
    store_.reset();
  }
  void Reopen() {
    Close();
    ASSERT_NO_FATAL_FAILURE(Open());
  }
  std::vector<State> States() {
    std::vector<State> out;
    EXPECT_OK(store_->ListStates(0, [&](const State& s) {
      out.push_back(s);
      return true;
    }));
    return out;
  }
  // Ends the current state: the next change starts a new one.
  void EndState() const {
    std::this_thread::sleep_for(std::chrono::nanoseconds(state_gap_ns_ * 3 / 2));
  }

  // Writes `data` to `name` as a dump job does: open with O_TRUNC (or
  // create), write 1 MiB at a time (FUSE's max_write), close. Returns the
  // bytes this added to the packs.
  uint64_t Dump(const std::string& name, const std::string& data) {
    const uint64_t before = PacksBytes(packs_);
    fs::FileHandle fh;
    Result<fs::Attr> a = fs::testing::Stat(*vfs_, kRootIno, name);
    if (a.ok()) {
      Result<fs::FileHandle> h = vfs_->Open(a->ino, O_WRONLY | O_TRUNC);
      EXPECT_OK(h);
      if (!h.ok()) return 0;
      fh = *h;
    } else {
      Result<fs::Vfs::Created> c = vfs_->Create(kRootIno, name, 0644, O_WRONLY, fs::testing::kUser);
      EXPECT_OK(c);
      if (!c.ok()) return 0;
      fh = c->fh;
      vfs_->Forget(c->attr.ino, 1);
    }
    for (size_t at = 0; at < data.size(); at += 1 << 20) {
      const size_t n = std::min<size_t>(1 << 20, data.size() - at);
      EXPECT_OK(vfs_->Write(fh, at, data.data() + at, n));
    }
    EXPECT_OK(vfs_->Release(fh));
    return PacksBytes(packs_) - before;
  }

  // The content of `path` (relative to the root, '/' between names) in the
  // tree at generation `g`.
  Result<std::string> ReadAt(Generation g, const std::string& path) {
    fs::VfsOptions o;
    o.at = g;
    o.read_only = true;
    fs::Vfs view(store_.get(), o);
    Ino ino = kRootIno;
    for (size_t at = 0; at <= path.size();) {
      const size_t slash = std::min(path.find('/', at), path.size());
      SNAPFS_ASSIGN_OR_RETURN(fs::Attr a,
                              fs::testing::Stat(view, ino, path.substr(at, slash - at)));
      ino = a.ino;
      at = slash + 1;
    }
    return fs::testing::ReadFile(view, ino);
  }

  // The extents of `name` as of now.
  std::vector<Extent> ExtentsOf(const std::string& name) {
    Result<fs::Attr> a = fs::testing::Stat(*vfs_, kRootIno, name);
    EXPECT_OK(a);
    if (!a.ok()) return {};
    Result<std::optional<InodeRecord>> rec = store_->GetInode(a->ino, kLatest);
    EXPECT_OK(rec);
    if (!rec.ok() || !*rec) return {};
    Result<std::vector<Extent>> ex = store_->GetExtents(a->ino, **rec);
    EXPECT_OK(ex);
    return ex.ok() ? *ex : std::vector<Extent>{};
  }
  // delta chunk -> its base, for the chunks of `name` stored as deltas.
  std::map<ChunkId, ChunkId> DeltasOf(const std::string& name) {
    std::map<ChunkId, ChunkId> out;
    for (const Extent& e : ExtentsOf(name)) {
      Result<std::optional<ChunkLocation>> loc = store_->chunks().Locate(e.id);
      EXPECT_OK(loc);
      if (loc.ok() && *loc && (*loc)->codec == Codec::kZstdDelta) out[e.id] = (*loc)->base;
    }
    return out;
  }


  OpenOptions open_options_;  // What Open() uses (compress_threads: 2).
  fs::VfsOptions vfs_options_;
  const int64_t state_gap_ns_;
  TempDir dir_;
  const std::string path_ = dir_.path() + "/store";
  const std::string packs_ = path_ + "/packs";
  std::unique_ptr<Store> store_;
  std::unique_ptr<fs::Vfs> vfs_;
};

}  // namespace snapfs::store::testing
