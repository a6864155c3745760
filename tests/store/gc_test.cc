// Store::DropStates and Store::CollectGarbage (store/gc.cc), driven through
// the Vfs as the daemon drives them: dropping states removes exactly the
// versions only they showed, every kept generation reads back byte for byte,
// GC really frees disk space, a write that re-uses a chunk while GC runs
// never loses it, readers in another process survive pack rewrites, and a
// crash (the process _exit()s or is SIGKILLed) at any step of a drop or a GC
// leaves a store that opens and reads every kept state exactly.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <set>
#include <sstream>
#include <thread>

#include "fs/vfs.h"
#include "store/check.h"
#include "store/gc.h"
#include "store/when.h"
#include "tests/fs/vfs_test_util.h"
#include "tests/store/vfs_store_fixture.h"

namespace snapfs::store {
namespace {

using fs::Vfs;
using fs::VfsOptions;
using fs::testing::DescribeTree;
using fs::testing::kUser;
using fs::testing::ReadFile;
using fs::testing::Stat;
using testing::SeededBytes;
using testing::TempDir;
using Tree = std::map<std::string, std::string>;

// 200 ms of quiet ends a state. Well above the longest pause between two
// changes of one state: under ASan on a loaded machine a 150 KB write and
// commit took over 20 ms and split a state in two.
constexpr int64_t kGapNs = 200'000'000;

uint64_t DiskUsage(const std::string& dir) {
  uint64_t n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file()) n += e.file_size();
  return n;
}

class GcTest : public testing::VfsStoreTest {
 protected:
  GcTest() : VfsStoreTest(kGapNs) {}
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(VfsStoreTest::SetUp());
    EndState();  // The init state ends here, however fast the first run follows.
  }

  // Writes `data` to `name` in the root (created or truncated), closes it.
  void Put(const std::string& name, const std::string& data) {
    Result<fs::Attr> a = Stat(*vfs_, kRootIno, name);
    if (!a.ok()) {
      ASSERT_OK(fs::testing::WriteFile(*vfs_, kRootIno, name, data));
      return;
    }
    ASSERT_OK_AND_ASSIGN(fs::FileHandle fh, vfs_->Open(a->ino, O_WRONLY | O_TRUNC));
    ASSERT_OK(vfs_->Write(fh, 0, data.data(), data.size()));
    ASSERT_OK(vfs_->Release(fh));
  }

  // One "dump run": a state with several kinds of change.
  void Run(int day) {
    ASSERT_NO_FATAL_FAILURE(Put("dump.sql", SeededBytes(150000 + 1000 * day, 100 + day)));
    ASSERT_NO_FATAL_FAILURE(Put("common.bin", SeededBytes(100000, 7)));  // Same every day.
    ASSERT_NO_FATAL_FAILURE(Put("log-" + std::to_string(day), "day " + std::to_string(day)));
    if (day >= 2) ASSERT_OK(vfs_->Unlink(kRootIno, "log-" + std::to_string(day - 2)));
    if (day % 2 == 0) ASSERT_OK(vfs_->Mkdir(kRootIno, "d" + std::to_string(day), 0755, kUser));
    else if (day > 1) ASSERT_OK(vfs_->Rmdir(kRootIno, "d" + std::to_string(day - 1)));
    // A version that lives only inside this state.
    ASSERT_NO_FATAL_FAILURE(Put("tmp", SeededBytes(50000, 1000 + day)));
    ASSERT_OK(vfs_->Unlink(kRootIno, "tmp"));
    EndState();
  }

  Result<Tree> TreeAt(Generation g) {
    VfsOptions o;
    o.at = g;
    o.read_only = true;
    Vfs view(store_.get(), o);
    return DescribeTree(view);
  }
  // The tree at every generation.
  std::map<Generation, Tree> Oracle() {
    std::map<Generation, Tree> out;
    for (Generation g = 1; g <= store_->latest(); ++g) {
      Result<Tree> t = TreeAt(g);
      EXPECT_TRUE(t.ok()) << "g" << g << ": " << t.status().ToString();
      if (t.ok()) out[g] = *t;
    }
    return out;
  }
  // Every kept generation reads as before; a dropped one as the kept one
  // before it.
  void ExpectKeptExact(const std::map<Generation, Tree>& oracle) {
    for (const auto& [g, tree] : oracle) {
      const Generation k = store_->KeptAtOrBefore(g);
      if (k == 0) continue;
      Result<Tree> now = TreeAt(g);
      ASSERT_TRUE(now.ok()) << "g" << g << ": " << now.status().ToString();
      EXPECT_EQ(*now, oracle.at(k)) << "g" << g << " (kept: g" << k << ")";
    }
  }
  // (ino, generation) of every inode version.
  std::set<std::pair<Ino, Generation>> InodeVersions() {
    std::set<std::pair<Ino, Generation>> out;
    for (Ino ino = 1; ino < store_->next_ino(); ++ino)
      EXPECT_OK(store_->InodeVersions(ino, [&](Generation g, const InodeRecord&) {
        out.emplace(ino, g);
        return true;
      }));
    return out;
  }

  friend void MakeDead(GcTest* t, const std::string& x);
  void MakeDeadImpl(const std::string& x) {
    ASSERT_NO_FATAL_FAILURE(Put("victim", x));
    EndState();
    const Generation a = States().back().first_gen;
    ASSERT_NO_FATAL_FAILURE(Put("victim", "replaced"));
    EndState();
    ASSERT_NO_FATAL_FAILURE(Reopen());
    ASSERT_OK(store_->DropStates({a}));
  }
};

TEST_F(GcTest, DropRemovesExactlyTheVersionsOnlyDroppedStatesShowed) {
  for (int day = 0; day < 8; ++day) ASSERT_NO_FATAL_FAILURE(Run(day));
  const std::map<Generation, Tree> oracle = Oracle();
  std::vector<State> states = States();
  ASSERT_EQ(states.size(), 9u);  // The init state and 8 runs.

  // Drop runs 1, 3 and 4 (3 and 4 are adjacent).
  const std::vector<Generation> drop = {states[2].first_gen, states[4].first_gen,
                                        states[5].first_gen};
  std::set<Generation> dropped_gens;
  for (size_t i : {2, 4, 5})
    for (Generation g = states[i].first_gen; g <= states[i].last_gen; ++g) dropped_gens.insert(g);

  // The oracle of what goes: versions whose whole validity is dropped.
  const auto before = InodeVersions();
  std::set<std::pair<Ino, Generation>> expected = before;
  for (auto it = before.begin(); it != before.end(); ++it) {
    auto next = std::next(it);
    if (next == before.end() || next->first != it->first) continue;  // Valid now: kept.
    bool seen = false;
    for (Generation g = it->second; g < next->second; ++g) seen |= !dropped_gens.count(g);
    if (!seen) expected.erase(*it);
  }
  ASSERT_LT(expected.size(), before.size());

  ASSERT_OK_AND_ASSIGN(DropStats st, store_->DropStates(drop));
  EXPECT_EQ(st.states, 3u);
  EXPECT_EQ(st.inode_versions, before.size() - expected.size());
  EXPECT_GT(st.dirent_versions, 0u);
  EXPECT_GT(st.extent_pages, 0u);
  EXPECT_EQ(InodeVersions(), expected);

  std::vector<State> left = States();
  ASSERT_EQ(left.size(), 6u);
  for (const State& s : left) EXPECT_EQ(std::count(drop.begin(), drop.end(), s.first_gen), 0);
  for (Generation g : dropped_gens) EXPECT_TRUE(store_->IsDropped(g)) << g;
  EXPECT_EQ(store_->KeptAtOrBefore(states[2].last_gen), states[1].last_gen);
  EXPECT_EQ(store_->KeptAtOrBefore(states[5].last_gen), states[3].last_gen);
  ASSERT_NO_FATAL_FAILURE(ExpectKeptExact(oracle));

  // A time inside a dropped state resolves to the kept state before it.
  ASSERT_OK_AND_ASSIGN(LogRecord inside, store_->GetLog(states[4].first_gen + 1));
  ASSERT_OK_AND_ASSIGN(Generation at, store_->GenerationAt(inside.time_ns));
  EXPECT_EQ(at, states[3].last_gen);
  // So do WHENs naming a generation in it; naming the dropped state is NotFound.
  WhenSpec when;
  when.kind = WhenSpec::Kind::kGeneration;
  when.id = states[4].first_gen + 1;
  ASSERT_OK_AND_ASSIGN(Generation resolved, ResolveWhen(*store_, when, 0));
  EXPECT_EQ(resolved, states[3].last_gen);
  when.kind = WhenSpec::Kind::kState;
  when.id = states[4].first_gen;
  EXPECT_CODE(ResolveWhen(*store_, when, 0), Code::kNotFound);
  when.id = states[3].first_gen;
  ASSERT_OK_AND_ASSIGN(resolved, ResolveWhen(*store_, when, 0));
  EXPECT_EQ(resolved, states[3].last_gen);
  // Versions made in a dropped state that a kept state still shows remain.
  EXPECT_EQ(store_->KeptAtOrAfter(states[4].first_gen), states[6].first_gen);

  // GC, then reopen: still exact; the live tree is untouched.
  ASSERT_OK(store_->CollectGarbage({}));
  ASSERT_NO_FATAL_FAILURE(ExpectKeptExact(oracle));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ASSERT_NO_FATAL_FAILURE(ExpectKeptExact(oracle));
  ASSERT_OK_AND_ASSIGN(Tree live, DescribeTree(*vfs_));
  EXPECT_EQ(live, oracle.rbegin()->second);
  EXPECT_EQ(States().size(), 6u);
}

TEST_F(GcTest, DropRefusesTheNewestStateAndUnknownIdsAndChangesNothing) {
  for (int day = 0; day < 3; ++day) ASSERT_NO_FATAL_FAILURE(Run(day));
  std::vector<State> states = States();
  const auto versions = InodeVersions();
  EXPECT_CODE(store_->DropStates({states[1].first_gen, states.back().first_gen}), Code::kInvalid);
  EXPECT_CODE(store_->DropStates({states[1].first_gen, states[1].first_gen + 1}),
              Code::kNotFound);
  EXPECT_EQ(States(), states);
  EXPECT_EQ(InodeVersions(), versions);
  EXPECT_FALSE(store_->IsDropped(states[1].first_gen));
  ASSERT_OK(store_->DropStates({states[1].first_gen}));
  EXPECT_CODE(store_->DropStates({states[1].first_gen}), Code::kNotFound);  // Already gone.

  // A read-only store refuses both.
  OpenOptions ro;
  ro.read_only = true;
  ASSERT_OK_AND_ASSIGN(auto reader, Store::Open(path_, ro));
  EXPECT_CODE(reader->DropStates({states[2].first_gen}), Code::kReadOnly);
  EXPECT_CODE(reader->CollectGarbage({}), Code::kReadOnly);
  EXPECT_TRUE(reader->IsDropped(states[1].first_gen));
}

TEST_F(GcTest, DroppingTheFirstStatesMakesOlderTimesNotFound) {
  for (int day = 0; day < 3; ++day) ASSERT_NO_FATAL_FAILURE(Run(day));
  const std::map<Generation, Tree> oracle = Oracle();
  std::vector<State> states = States();
  ASSERT_OK(store_->DropStates({states[0].first_gen, states[1].first_gen}));
  ASSERT_OK_AND_ASSIGN(LogRecord first, store_->GetLog(1));
  EXPECT_CODE(store_->GenerationAt(first.time_ns), Code::kNotFound);
  EXPECT_EQ(store_->KeptAtOrBefore(states[1].last_gen), 0u);
  ASSERT_OK(store_->CollectGarbage({}));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ASSERT_NO_FATAL_FAILURE(ExpectKeptExact(oracle));
}

TEST_F(GcTest, CollectGarbageReallyShrinksTheStoreOnDisk) {
  constexpr size_t kPerRun = 1u << 20;  // Incompressible: 1 MiB stored per run.
  constexpr int kRuns = 10;
  for (int day = 0; day < kRuns; ++day) {
    ASSERT_NO_FATAL_FAILURE(Put("dump.sql", SeededBytes(kPerRun, 5000 + day)));
    ASSERT_NO_FATAL_FAILURE(Put("small", std::to_string(day)));
    EndState();
  }
  const std::map<Generation, Tree> oracle = Oracle();
  ASSERT_NO_FATAL_FAILURE(Reopen());  // The daemon restarted: its old pack is no longer current.
  std::vector<State> states = States();
  std::vector<Generation> drop;
  for (size_t i = 1; i + 2 < states.size(); ++i) drop.push_back(states[i].first_gen);
  ASSERT_EQ(drop.size(), kRuns - 2u);  // Keep the init state and the last two runs.

  const uint64_t packs_before = DiskUsage(path_ + "/packs");
  const uint64_t db_before = DiskUsage(path_ + "/db");
  ASSERT_OK(store_->DropStates(drop));
  ASSERT_OK_AND_ASSIGN(GcStats gc, store_->CollectGarbage({}));
  const uint64_t packs_after = DiskUsage(path_ + "/packs");
  const uint64_t db_after = DiskUsage(path_ + "/db");
  std::printf("packs/ %llu -> %llu bytes, db/ %llu -> %llu bytes; %llu chunks deleted, %llu live, "
              "%llu packs removed (%llu rewritten, %llu bytes copied)\n",
              (unsigned long long)packs_before, (unsigned long long)packs_after,
              (unsigned long long)db_before, (unsigned long long)db_after,
              (unsigned long long)gc.chunks_deleted, (unsigned long long)gc.chunks_live,
              (unsigned long long)gc.packs_deleted, (unsigned long long)gc.packs_rewritten,
              (unsigned long long)gc.bytes_copied);
  // 8 of 10 MiB are garbage: at least 7 MiB must be gone from disk.
  EXPECT_GT(packs_before, packs_after + 7 * kPerRun);
  EXPECT_LT(packs_after, 3 * kPerRun + (64u << 10));
  EXPECT_GT(gc.chunks_deleted, 0u);
  EXPECT_EQ(gc.pack_bytes_after, packs_after);
  EXPECT_LT(packs_after + db_after, packs_before + db_before - 7 * kPerRun);

  ASSERT_NO_FATAL_FAILURE(ExpectKeptExact(oracle));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ASSERT_NO_FATAL_FAILURE(ExpectKeptExact(oracle));
  // A second GC finds nothing more to do.
  ASSERT_OK_AND_ASSIGN(GcStats again, store_->CollectGarbage({}));
  EXPECT_EQ(again.chunks_deleted, 0u);
  ASSERT_NO_FATAL_FAILURE(ExpectKeptExact(oracle));
}

// The dedup-GC race: a chunk GC found dead is written again (a dedup hit in
// the index) while GC runs. The write must never end up referencing a chunk
// GC deleted.
TEST_F(GcTest, ContentWrittenAgainWhileGcRunsIsNeverLost) {
  constexpr int kIterations = 12;
  uint64_t deleted = 0, rescued = 0;
  for (int i = 0; i < kIterations; ++i) {
    const std::string x = SeededBytes(400000, 9000 + i);  // ~6 chunks.
    ASSERT_NO_FATAL_FAILURE(MakeDeadImpl(x));

    std::atomic<bool> stop{false};
    std::atomic<int> written{0};
    Status writer_status;
    std::thread writer([&] {
      for (int k = 0; !stop.load() || k < 3; ++k) {
        Result<Ino> ino = fs::testing::WriteFile(*vfs_, kRootIno,
                                                 "copy-" + std::to_string(i) + "-" + std::to_string(k), x);
        if (!ino.ok()) {
          writer_status = ino.status();
          return;
        }
        written++;
      }
    });
    for (int round = 0; round < 3; ++round) {
      GcOptions o;
      o.rewrite_below = 1.0;  // Rewrite every pack with anything dead: the most moving.
      o.compact = false;
      Result<GcStats> gc = store_->CollectGarbage(o);
      EXPECT_TRUE(gc.ok()) << gc.status().ToString();
      if (gc.ok()) {
        deleted += gc->chunks_deleted;
        rescued += gc->chunks_rescued;
      }
    }
    stop = true;
    writer.join();
    ASSERT_TRUE(writer_status.ok()) << writer_status.ToString();
    ASSERT_OK(store_->CollectGarbage({}));
    ASSERT_NO_FATAL_FAILURE(Reopen());  // Read from disk, not from the chunk cache.
    for (int k = 0; k < written.load(); ++k) {
      const std::string name = "copy-" + std::to_string(i) + "-" + std::to_string(k);
      ASSERT_OK_AND_ASSIGN(fs::Attr attr, Stat(*vfs_, kRootIno, name));
      ASSERT_OK_AND_ASSIGN(std::string got, ReadFile(*vfs_, attr.ino));
      ASSERT_TRUE(got == x) << "iteration " << i << ": " << name << " differs";
      ASSERT_OK(vfs_->Unlink(kRootIno, name));
    }
  }
  // And from disk, with no caches.
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ASSERT_OK(store_->CollectGarbage({}));
  std::printf("during the writes GC deleted %llu chunks and rescued %llu\n",
              (unsigned long long)deleted, (unsigned long long)rescued);
  EXPECT_GT(deleted + rescued, 0u);  // The race was really run: x was dead.
}

// Makes `x` dead: it lives only in a state that is then dropped. The store
// is reopened so the pack holding x is not the one being appended to.
void MakeDead(GcTest* t, const std::string& x);

// The two windows of the race, made to happen for sure. First: a write that
// finds the dead chunk in the index after GC's snapshot, before the sweep.
TEST_F(GcTest, ADedupHitBetweenSnapshotAndSweepKeepsTheChunk) {
  const std::string x = SeededBytes(400000, 77);
  ASSERT_NO_FATAL_FAILURE(MakeDead(this, x));
  Status wrote;
  gc_testing::SetCrashHook([&](std::string_view step) {
    if (step == "gc-epoch") wrote = fs::testing::WriteFile(*vfs_, kRootIno, "again", x).status();
  });
  ASSERT_OK_AND_ASSIGN(GcStats gc, store_->CollectGarbage({}));
  gc_testing::SetCrashHook(nullptr);
  ASSERT_OK(wrote);
  EXPECT_GT(gc.chunks_rescued, 0u);
  ASSERT_NO_FATAL_FAILURE(Reopen());  // Read from disk, not from the chunk cache.
  ASSERT_OK(store_->CollectGarbage({}));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ASSERT_OK_AND_ASSIGN(fs::Attr a, Stat(*vfs_, kRootIno, "again"));
  ASSERT_OK_AND_ASSIGN(std::string got, ReadFile(*vfs_, a.ino));
  EXPECT_TRUE(got == x);
}

// Second: chunks put (dedup hits) before GC starts by a file that is closed,
// and so committed, only after GC finished.
TEST_F(GcTest, ChunksOfAnUncommittedWriteSurviveGc) {
  const std::string x = SeededBytes(6u << 20, 78);  // Past 4 MiB: chunked while written.
  ASSERT_NO_FATAL_FAILURE(MakeDead(this, x));
  ASSERT_OK_AND_ASSIGN(fs::Vfs::Created c, vfs_->Create(kRootIno, "open", 0644, O_WRONLY, kUser));
  ASSERT_OK(vfs_->Write(c.fh, 0, x.data(), x.size()));
  ASSERT_OK_AND_ASSIGN(GcStats gc, store_->CollectGarbage({}));
  EXPECT_GT(gc.chunks_rescued, 0u);
  ASSERT_OK(vfs_->Release(c.fh));
  vfs_->Forget(c.attr.ino, 1);
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ASSERT_OK(store_->CollectGarbage({}));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ASSERT_OK_AND_ASSIGN(std::string got, ReadFile(*vfs_, c.attr.ino));
  EXPECT_TRUE(got == x);
}

void MakeDead(GcTest* t, const std::string& x) { t->MakeDeadImpl(x); }

TEST_F(GcTest, AReaderInAnotherProcessFollowsRewrittenPacks) {
  for (int day = 0; day < 4; ++day) {
    ASSERT_NO_FATAL_FAILURE(Put("dump.sql", SeededBytes(300000, 300 + day)));
    ASSERT_NO_FATAL_FAILURE(Put("keep-" + std::to_string(day), SeededBytes(200000, 400 + day)));
    EndState();
  }
  const std::map<Generation, Tree> oracle = Oracle();
  ASSERT_NO_FATAL_FAILURE(Reopen());
  OpenOptions ro;
  ro.read_only = true;
  ASSERT_OK_AND_ASSIGN(auto reader, Store::Open(path_, ro));  // Index as of now.
  std::vector<State> states = States();
  ASSERT_OK(store_->DropStates({states[1].first_gen, states[2].first_gen}));
  GcOptions o;
  o.rewrite_below = 1.0;
  ASSERT_OK_AND_ASSIGN(GcStats gc, store_->CollectGarbage(o));
  EXPECT_GT(gc.packs_rewritten, 0u);
  // The reader never caught up: its index names removed packs. Reading the
  // newest state makes it catch up and retry.
  VfsOptions vo;
  vo.at = states.back().last_gen;
  vo.read_only = true;
  Vfs view(reader.get(), vo);
  ASSERT_OK_AND_ASSIGN(Tree tree, DescribeTree(view));
  EXPECT_EQ(tree, oracle.at(states.back().last_gen));
}

// --- Crashes ------------------------------------------------------------------

// The crash tests run the work in a fresh process (this test binary again,
// running only GcCrashChild.Work): a forked child would inherit RocksDB's
// thread pools without their threads. The child drops the states listed in
// SNAPFS_GC_DROP, runs GC, and dies at step SNAPFS_GC_STEP (counting every
// step DropStates and CollectGarbage reach) by _exit() or, with
// SNAPFS_GC_KILL=1, by SIGKILL.
TEST(GcCrashChild, Work) {
  const char* store = std::getenv("SNAPFS_GC_STORE");
  if (store == nullptr) GTEST_SKIP() << "only run as the child of a crash test";
  const int n = std::atoi(std::getenv("SNAPFS_GC_STEP"));
  const bool sigkill = std::getenv("SNAPFS_GC_KILL")[0] == '1';
  std::vector<Generation> drop;
  std::stringstream ids(std::getenv("SNAPFS_GC_DROP"));
  for (std::string id; std::getline(ids, id, ',');) drop.push_back(std::stoull(id));
  int steps = 0;
  gc_testing::SetDropBatchKeys(3);
  gc_testing::SetCrashHook([&](std::string_view) {
    if (++steps == n) {
      if (sigkill) ::kill(::getpid(), SIGKILL);
      ::_exit(42);
    }
  });
  OpenOptions o;
  o.compress_threads = 1;
  Result<std::unique_ptr<Store>> s = Store::Open(store, o);
  if (!s.ok()) ::_exit(2);
  if (!(*s)->DropStates(drop).ok()) ::_exit(3);
  GcOptions gc;
  gc.rewrite_below = 1.0;
  if (!(*s)->CollectGarbage(gc).ok()) ::_exit(4);
  s->reset();
  ::_exit(0);
}

// Returns false if the child finished before reaching step n.
bool RunChildDyingAtStep(const std::string& path, int n, bool sigkill,
                         const std::vector<Generation>& drop) {
  std::string ids;
  for (Generation g : drop) ids += (ids.empty() ? "" : ",") + std::to_string(g);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("SNAPFS_GC_STORE", path.c_str(), 1);
    ::setenv("SNAPFS_GC_STEP", std::to_string(n).c_str(), 1);
    ::setenv("SNAPFS_GC_KILL", sigkill ? "1" : "0", 1);
    ::setenv("SNAPFS_GC_DROP", ids.c_str(), 1);
    ::execl("/proc/self/exe", "gc_tests", "--gtest_filter=GcCrashChild.Work", nullptr);
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return false;
  EXPECT_TRUE((WIFEXITED(status) && WEXITSTATUS(status) == 42) ||
              (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
      << "child status " << status;
  return true;
}

void ExpectCheckClean(const std::string& path) {
  OpenOptions ro;
  ro.read_only = true;
  Result<std::unique_ptr<Store>> store = Store::Open(path, ro);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Result<CheckReport> report = CheckStore(**store, CheckOptions{});
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  std::string problems;
  for (const auto& d : report->damaged) problems += d.id.Hex() + ": " + d.reason + "\n";
  for (const auto& p : report->problems) problems += p.family + ": " + p.reason + "\n";
  EXPECT_TRUE(report->clean()) << problems;
}

TEST_F(GcTest, CrashAtAnyStepOfDropOrGcLeavesEveryKeptStateExact) {
  for (int day = 0; day < 6; ++day) ASSERT_NO_FATAL_FAILURE(Run(day));
  const std::map<Generation, Tree> oracle = Oracle();
  std::vector<State> states = States();
  const std::vector<Generation> drop = {states[1].first_gen, states[2].first_gen,
                                        states[4].first_gen};
  std::set<Generation> kept_ids;
  for (const State& s : states)
    if (std::count(drop.begin(), drop.end(), s.first_gen) == 0) kept_ids.insert(s.first_gen);
  Close();
  const std::string pristine = dir_.path() + "/pristine";
  std::filesystem::copy(path_, pristine, std::filesystem::copy_options::recursive);

  // The reference: the same work, never interrupted.
  ASSERT_FALSE(RunChildDyingAtStep(path_, 1 << 30, false, drop));
  ASSERT_NO_FATAL_FAILURE(Open());
  const auto reference_versions = InodeVersions();
  const uint64_t reference_packs = DiskUsage(path_ + "/packs");
  Close();

  int crashes = 0;
  for (int n = 1;; ++n) {
    std::filesystem::remove_all(path_);
    std::filesystem::copy(pristine, path_, std::filesystem::copy_options::recursive);
    if (!RunChildDyingAtStep(path_, n, n % 2 == 0, drop)) break;
    ++crashes;
    SCOPED_TRACE("crash at step " + std::to_string(n));
    // snapfs-check (read-only, as the tool opens it) finds nothing wrong,
    // before and after the next read-write open finishes the drop.
    ASSERT_NO_FATAL_FAILURE(ExpectCheckClean(path_));
    // Reopening finishes an interrupted drop.
    ASSERT_NO_FATAL_FAILURE(Open());
    std::set<Generation> ids;
    for (const State& s : States()) ids.insert(s.first_gen);
    EXPECT_EQ(ids, kept_ids);
    EXPECT_EQ(InodeVersions(), reference_versions);
    ASSERT_NO_FATAL_FAILURE(ExpectKeptExact(oracle));
    // Whatever GC left behind, the next GC removes.
    GcOptions all;
    all.rewrite_below = 1.0;
    ASSERT_OK(store_->CollectGarbage(all));
    ASSERT_NO_FATAL_FAILURE(ExpectKeptExact(oracle));
    EXPECT_LE(DiskUsage(path_ + "/packs"), reference_packs + 2 * kPackHeaderSize);
    Close();
    ASSERT_NO_FATAL_FAILURE(ExpectCheckClean(path_));
  }
  EXPECT_GE(crashes, 8);
  std::printf("crashed at %d steps\n", crashes);
}

}  // namespace
}  // namespace snapfs::store
