// Corruption is loud, never silent (issue 5, point 3), through real mounts:
// with bytes flipped in a pack, reading a file that uses them fails with EIO
// and a log line naming the chunk and the path; other files read back byte
// for byte; past mounts fail the same way; snapfs-check lists exactly the
// affected states. A damaged RocksDB table file is a clear error, not garbage.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "store/pack_file.h"
#include "store/store.h"
#include "tests/mount/mount_fixture.h"
#include "tests/store/test_util.h"

namespace snapfs::testing {
namespace {

using store::ChunkId;
using store::ChunkLocation;
using store::Generation;
using store::Ino;

bool Has(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Reads all of `path`: 0 and the bytes in *out, or the errno of the failing call.
int ReadAll(const std::string& path, std::string* out = nullptr) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  std::string bytes;
  char buf[65536];
  int err = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      err = errno;
      break;
    }
    if (n == 0) break;
    bytes.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (out != nullptr) *out = std::move(bytes);
  return err;
}

ProcessResult RunCheck(const std::vector<std::string>& args) {
  std::vector<std::string> argv{SNAPFS_CHECK_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv);
}

// What the test needs from the store, read through a read-only open (also
// while the daemon runs).
struct StoreFacts {
  std::vector<store::State> states;
  ChunkId chunk;         // The first chunk of `path` as of `at`.
  ChunkLocation loc;
};

void FindChunk(const std::string& store_path, const std::string& name, Generation at,
               StoreFacts* facts) {
  store::OpenOptions options;
  options.read_only = true;
  options.compress_threads = 1;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<store::Store> s, store::Store::Open(store_path, options));
  ASSERT_OK(s->CatchUp());
  facts->states.clear();
  ASSERT_OK(s->ListStates(1, [&](const store::State& st) {
    facts->states.push_back(st);
    return true;
  }));
  ASSERT_OK_AND_ASSIGN(std::optional<store::DirentRecord> d, s->Lookup(store::kRootIno, name, at));
  ASSERT_TRUE(d.has_value()) << name;
  ASSERT_OK_AND_ASSIGN(std::optional<store::InodeRecord> rec, s->GetInode(d->child, at));
  ASSERT_TRUE(rec.has_value());
  ASSERT_OK_AND_ASSIGN(std::vector<store::Extent> extents, s->GetExtents(d->child, *rec));
  ASSERT_FALSE(extents.empty());
  facts->chunk = extents[0].id;
  ASSERT_OK_AND_ASSIGN(std::optional<ChunkLocation> loc, s->chunks().Locate(facts->chunk));
  ASSERT_TRUE(loc.has_value());
  facts->loc = *loc;
}

// Flips one payload byte of the chunk in `facts`.
void FlipPayload(const std::string& store_path, const StoreFacts& facts) {
  store::testing::XorFileByte(store::PackPath(store_path + "/packs", facts.loc.pack),
                              facts.loc.offset + store::kRecordHeaderSize + facts.loc.stored_len / 2);
}

std::string Id(const store::State& s) { return "s" + std::to_string(s.first_gen); }

class CorruptionTest : public ::testing::Test {
 protected:
  // State A writes a.bin (a_v1) and b.bin; state B rewrites a.bin (a_v2).
  void WriteTwoStates() {
    ASSERT_TRUE(m_.ok());
    ASSERT_TRUE(m_.Mount());
    ASSERT_TRUE(WriteFile(Live("a.bin"), a_v1_));
    ASSERT_TRUE(WriteFile(Live("b.bin"), b_));
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // The state gap is 1 s.
    ASSERT_TRUE(WriteFile(Live("a.bin"), a_v2_));
  }
  std::string Live(const std::string& rel) const { return m_.mountpoint() + "/" + rel; }

  SnapfsMount m_{{"--state-gap", "1s"}};
  const std::string a_v1_ = SeededBytes(700'000, 81);
  const std::string a_v2_ = SeededBytes(500'000, 82);
  const std::string b_ = SeededBytes(400'000, 83);
};

TEST_F(CorruptionTest, DamagedOldVersionFailsWithEioInEveryViewAndOnlyThatStateIsListed) {
  ASSERT_NO_FATAL_FAILURE(WriteTwoStates());
  StoreFacts facts;
  ASSERT_NO_FATAL_FAILURE(FindChunk(m_.store(), "a.bin", store::kLatest, &facts));
  ASSERT_GE(facts.states.size(), 2u);  // A (with the store's first generation) and B.
  const store::State a = facts.states[facts.states.size() - 2];
  const store::State b = facts.states.back();
  ASSERT_NO_FATAL_FAILURE(FindChunk(m_.store(), "a.bin", a.last_gen, &facts));
  const std::string hex = facts.chunk.Hex();

  // Flipped under the live mount: the daemon has never read this chunk.
  ASSERT_NO_FATAL_FAILURE(FlipPayload(m_.store(), facts));
  const std::string past_a = Live(".snapfs/at/" + Id(a) + "/a.bin");
  EXPECT_EQ(ReadAll(past_a), EIO);
  EXPECT_EQ(ReadAll(past_a), EIO) << "a damaged chunk must never be served from a cache";
  std::string got;
  EXPECT_EQ(ReadAll(Live(".snapfs/at/" + Id(a) + "/b.bin"), &got), 0);
  EXPECT_TRUE(got == b_) << "an unaffected file of the same state reads back exactly";
  EXPECT_EQ(ReadAll(Live("a.bin"), &got), 0);
  EXPECT_TRUE(got == a_v2_);
  std::string log = m_.DaemonOutput();
  EXPECT_TRUE(Has(log, "read of /a.bin (inode ")) << log;
  EXPECT_TRUE(Has(log, ", at g" + std::to_string(a.last_gen) + ")")) << log;
  EXPECT_TRUE(Has(log, "chunk " + hex)) << log;

  // snapfs-check while mounted: exactly state A's /a.bin.
  ProcessResult check = RunCheck({m_.store(), "--json"});
  EXPECT_EQ(check.exit_code, 5) << check.output;
  const nlohmann::json report = nlohmann::json::parse(check.output, nullptr, false);
  ASSERT_FALSE(report.is_discarded()) << check.output;
  ASSERT_EQ(report["damaged_chunks"].size(), 1u) << check.output;
  EXPECT_EQ(report["damaged_chunks"][0]["id"], hex);
  EXPECT_EQ(report["affected_states"], nlohmann::json::array({Id(a)})) << check.output;
  EXPECT_EQ(report["affected_paths"], nlohmann::json::array({"/a.bin"}));
  EXPECT_EQ(report["live_affected"], false);

  // After a remount, and through snapfs-mount-at of state A: the same.
  ASSERT_TRUE(m_.Remount());
  EXPECT_EQ(ReadAll(past_a), EIO);
  EXPECT_EQ(ReadAll(Live("b.bin"), &got), 0);
  EXPECT_TRUE(got == b_);
  {
    PastMount past(m_.store(), Id(a), m_.Scratch("past"));
    ASSERT_TRUE(past.Mount());
    EXPECT_EQ(ReadAll(past.mountpoint() + "/a.bin"), EIO);
    EXPECT_EQ(ReadAll(past.mountpoint() + "/b.bin", &got), 0);
    EXPECT_TRUE(got == b_);
    log = past.DaemonOutput();
    EXPECT_TRUE(Has(log, "read of /a.bin (inode ")) << log;
    EXPECT_TRUE(Has(log, "chunk " + hex)) << log;
    ASSERT_TRUE(past.Unmount());
  }
  {  // State B does not show the damaged version.
    PastMount past(m_.store(), Id(b), m_.Scratch("past-b"));
    ASSERT_TRUE(past.Mount());
    EXPECT_EQ(ReadAll(past.mountpoint() + "/a.bin", &got), 0);
    EXPECT_TRUE(got == a_v2_);
    ASSERT_TRUE(past.Unmount());
  }
  ASSERT_TRUE(m_.Unmount());
  EXPECT_EQ(RunCheck({m_.store()}).exit_code, 5);
}

TEST_F(CorruptionTest, DamagedLiveFileFailsWithEioAfterARemountAndTheLiveTreeIsListed) {
  ASSERT_NO_FATAL_FAILURE(WriteTwoStates());
  ASSERT_TRUE(m_.Unmount());
  StoreFacts facts;
  ASSERT_NO_FATAL_FAILURE(FindChunk(m_.store(), "b.bin", store::kLatest, &facts));
  ASSERT_NO_FATAL_FAILURE(FlipPayload(m_.store(), facts));
  ASSERT_TRUE(m_.Mount());
  EXPECT_EQ(ReadAll(Live("b.bin")), EIO);
  std::string got;
  EXPECT_EQ(ReadAll(Live("a.bin"), &got), 0);
  EXPECT_TRUE(got == a_v2_);
  const std::string log = m_.DaemonOutput();
  EXPECT_TRUE(Has(log, "read of /b.bin (inode ")) << log;
  EXPECT_TRUE(Has(log, "chunk " + facts.chunk.Hex())) << log;

  ProcessResult check = RunCheck({m_.store()});
  EXPECT_EQ(check.exit_code, 5) << check.output;
  const store::State a = facts.states[facts.states.size() - 2];
  const store::State b = facts.states.back();
  EXPECT_TRUE(Has(check.output, Id(a) + std::string(12 - Id(a).size(), ' ') + " /b.bin  (inode "))
      << check.output;
  EXPECT_TRUE(Has(check.output, Id(b) + std::string(12 - Id(b).size(), ' ') + " /b.bin  (inode "))
      << check.output;
  EXPECT_TRUE(Has(check.output, "live         /b.bin  (inode ")) << check.output;
  EXPECT_TRUE(Has(check.output, "the live tree too")) << check.output;
  EXPECT_FALSE(Has(check.output, "/a.bin")) << check.output;
}

TEST_F(CorruptionTest, DamagedDatabaseTableFileIsAClearErrorNeverGarbage) {
  ASSERT_NO_FATAL_FAILURE(WriteTwoStates());
  ASSERT_TRUE(m_.Unmount());  // Flushes the memtables into table files.
  bool flipped = false;
  for (const auto& e : std::filesystem::directory_iterator(m_.store() + "/db")) {
    if (e.path().extension() != ".sst") continue;
    store::testing::XorFileByte(e.path(), 20);  // Early in the first data block.
    flipped = true;
  }
  ASSERT_TRUE(flipped);
  // The daemon refuses the store: exit 3 with a message, no mount.
  const ProcessResult mount = RunSnapfs({"-f", m_.store(), m_.mountpoint()}, 20'000);
  if (IsMountPoint(m_.mountpoint())) RunProcess({"fusermount3", "-u", "-z", m_.mountpoint()});
  EXPECT_EQ(mount.exit_code, 3) << mount.output;
  EXPECT_TRUE(Has(mount.output, "orruption")) << mount.output;
  EXPECT_FALSE(IsMountPoint(m_.mountpoint()));
  const ProcessResult check = RunCheck({m_.store()});
  EXPECT_EQ(check.exit_code, 3) << check.output;
  EXPECT_TRUE(Has(check.output, "snapfs-check: ")) << check.output;
}

}  // namespace
}  // namespace snapfs::testing
