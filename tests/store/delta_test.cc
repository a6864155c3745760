// Codec 2 through the whole store: a nightly dump rewritten in place, with
// about 1 % of its rows changed at scattered places, is stored as deltas
// against the day before (FileContent's base hints, ChunkStore's worker);
// every day reads back byte for byte; a damaged base fails exactly the
// chunks stored against it and snapfs-check names them; GC keeps a base as
// long as a chunk stored against it is live, also while GC races a write.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "bench/dump_data.h"
#include "fs/vfs.h"
#include "store/check.h"
#include "store/gc.h"
#include "tests/fs/vfs_test_util.h"
#include "tests/store/vfs_store_fixture.h"

namespace snapfs::store {
namespace {

using fs::Vfs;
using fs::VfsOptions;
using fs::testing::Stat;
using testing::TempDir;
using testing::XorFileByte;
using testing::DumpText;
using testing::PacksBytes;

constexpr int64_t kGapNs = 20'000'000;  // 20 ms of quiet ends a state.
constexpr size_t kDumpBytes = 6u << 20;

class DeltaTest : public testing::VfsStoreTest {
 protected:
  DeltaTest() : VfsStoreTest(kGapNs) {}
  ChunkStore& chunks() { return store_->chunks(); }
  // Commits a new file (no name) whose one extent is all of chunk `id`.
  Status CommitFileOf(const ChunkId& id, size_t size) {
    const Ino ino = store_->AllocateIno();
    InodeRecord rec;
    rec.mode = 0100644;
    rec.nlink = 1;
    rec.size = size;
    Mutation m;
    m.PutInode(ino, rec);
    m.PutContent(ino, {Extent{0, static_cast<uint32_t>(size), 0, id}}, {id});
    LogRecord log;
    log.op = Op::kWrite;
    log.ino = ino;
    return store_->Commit(m, log, CommitOptions{}).status();
  }
  Generation NewestState() {
    Generation id = 0;
    EXPECT_OK(store_->ListStates(0, [&](const State& s) {
      id = s.first_gen;
      return true;
    }));
    return id;
  }

};

TEST_F(DeltaTest, LaterDaysOfADumpCostAFractionOfTheFirstAndEveryDayReadsBack) {
  std::vector<std::string> days;
  std::vector<uint64_t> stored;
  std::vector<Generation> gens;
  for (int day = 1; day <= 3; ++day) {
    days.push_back(DumpText(kDumpBytes, day));
    stored.push_back(Dump("dump.sql", days.back()));
    gens.push_back(store_->latest());
    EndState();
  }
  ASSERT_NE(days[0], days[1]);
  // Without deltas each later day costs as much as the first (almost every
  // chunk has a changed row). Measured: day 1 ~1.9 MiB, later days
  // ~0.1 MiB.
  EXPECT_LT(stored[1] * 5, stored[0]) << stored[0] << " then " << stored[1];
  EXPECT_LT(stored[2] * 5, stored[0]) << stored[0] << " then " << stored[2];
  EXPECT_GT(chunks().counters().chunks_delta.load(), 0u);
  // Depth one: no base is a delta.
  const std::map<ChunkId, ChunkId> deltas = DeltasOf("dump.sql");
  EXPECT_FALSE(deltas.empty());
  for (const auto& [id, base] : deltas) {
    ASSERT_OK_AND_ASSIGN(std::optional<ChunkLocation> loc, chunks().Locate(base));
    ASSERT_TRUE(loc.has_value()) << base.Hex();
    EXPECT_NE(loc->codec, Codec::kZstdDelta) << base.Hex();
  }

  ASSERT_NO_FATAL_FAILURE(Reopen());  // Nothing from memory: packs only.
  for (size_t i = 0; i < days.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(std::string got, ReadAt(gens[i], "dump.sql"));
    EXPECT_TRUE(got == days[i]) << "day " << i + 1;
  }
  ASSERT_OK_AND_ASSIGN(CheckReport report, CheckStore(*store_, CheckOptions{}));
  EXPECT_TRUE(report.clean());
  EXPECT_EQ(report.chunks_verified, report.chunks);
}

// A dump job that removes its folder and writes it again (rm -rf dump/;
// dump2py dump/), or writes a temporary file and renames it into place,
// makes new inodes each night: the file that last left the same path gives
// the bases (fs/path_hints.h).
TEST_F(DeltaTest, AFileCreatedWhereAnotherLeftIsStoredAsDeltasAgainstIt) {
  using fs::testing::kUser;
  using fs::testing::WriteFile;
  std::vector<std::string> days;
  std::vector<uint64_t> stored;
  std::vector<Generation> gens;
  for (int day = 1; day <= 5; ++day) {
    days.push_back(DumpText(kDumpBytes, day));
    const uint64_t before = PacksBytes(packs_);
    if (day == 5) {
      // Rotation: the folder is renamed away and made again.
      ASSERT_OK(vfs_->Rename(kRootIno, "dump", kRootIno, "dump.old", 0));
      ASSERT_OK_AND_ASSIGN(fs::Attr d, vfs_->Mkdir(kRootIno, "dump", 0755, kUser));
      vfs_->Forget(d.ino, 1);
      ASSERT_OK_AND_ASSIGN(Ino file, WriteFile(*vfs_, d.ino, "db.py", days.back()));
      (void)file;
    } else if (day == 3) {
      // The temporary-and-rename way, on top of the folder written on day 2.
      ASSERT_OK_AND_ASSIGN(fs::Attr d, Stat(*vfs_, kRootIno, "dump"));
      ASSERT_OK_AND_ASSIGN(Ino tmp, WriteFile(*vfs_, d.ino, "db.py.tmp", days.back()));
      (void)tmp;
      ASSERT_OK(vfs_->Rename(d.ino, "db.py.tmp", d.ino, "db.py", 0));
    } else {
      if (day > 1) {  // rm -rf dump
        ASSERT_OK_AND_ASSIGN(fs::Attr d, Stat(*vfs_, kRootIno, "dump"));
        ASSERT_OK(vfs_->Unlink(d.ino, "db.py"));
        ASSERT_OK(vfs_->Rmdir(kRootIno, "dump"));
      }
      ASSERT_OK_AND_ASSIGN(fs::Attr d, vfs_->Mkdir(kRootIno, "dump", 0755, kUser));
      vfs_->Forget(d.ino, 1);
      ASSERT_OK_AND_ASSIGN(Ino file, WriteFile(*vfs_, d.ino, "db.py", days.back()));
      (void)file;
    }
    stored.push_back(PacksBytes(packs_) - before);
    gens.push_back(store_->latest());
    EndState();
  }
  // Day 3 wrote db.py.tmp, a path nothing had left yet: no bases, a full day
  // (4 is a generous floor: about 1.9 MiB as day 1, against ~0.1 MiB).
  EXPECT_LT(stored[1] * 5, stored[0]) << stored[0] << " then " << stored[1];
  EXPECT_GT(stored[2] * 4, stored[0]) << stored[0] << " then " << stored[2];
  // Day 4 created db.py where day 3's renamed file left: deltas again.
  EXPECT_LT(stored[3] * 5, stored[0]) << stored[0] << " then " << stored[3];
  // Day 5 created it in a new folder where the old one was renamed away from.
  EXPECT_LT(stored[4] * 5, stored[0]) << stored[0] << " then " << stored[4];
  ASSERT_NO_FATAL_FAILURE(Reopen());
  for (size_t i = 0; i < days.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(std::string got, ReadAt(gens[i], "dump/db.py"));
    EXPECT_TRUE(got == days[i]) << "day " << i + 1;
  }
  ASSERT_OK_AND_ASSIGN(std::string old, ReadAt(gens[4], "dump.old/db.py"));
  EXPECT_TRUE(old == days[3]);
}

TEST_F(DeltaTest, ADumpUnderANewNameEachNightIsStoredAsDeltasAgainstTheNightBefore) {
  vfs_options_.min_sibling_age = std::chrono::milliseconds(1);  // The nights: EndState() apart.
  ASSERT_NO_FATAL_FAILURE(Reopen());
  std::vector<std::string> days;
  std::vector<uint64_t> stored;
  for (int day = 1; day <= 3; ++day) {
    days.push_back(DumpText(kDumpBytes, day));
    stored.push_back(Dump("db-2026-12-0" + std::to_string(day) + ".sql", days.back()));
    EndState();
  }
  EXPECT_LT(stored[1] * 5, stored[0]) << stored[0] << " then " << stored[1];
  EXPECT_LT(stored[2] * 5, stored[0]) << stored[0] << " then " << stored[2];
  ASSERT_NO_FATAL_FAILURE(Reopen());
  for (int day = 1; day <= 3; ++day) {
    ASSERT_OK_AND_ASSIGN(std::string got,
                         ReadAt(store_->latest(), "db-2026-12-0" + std::to_string(day) + ".sql"));
    EXPECT_TRUE(got == days[static_cast<size_t>(day - 1)]) << "day " << day;
  }
}

TEST_F(DeltaTest, ADamagedBaseFailsTheChunksStoredAgainstItAndCheckNamesThem) {
  const std::string day1 = DumpText(kDumpBytes, 1), day2 = DumpText(kDumpBytes, 2);
  Dump("dump.sql", day1);
  EndState();
  Dump("dump.sql", day2);
  const Generation g2 = store_->latest();
  const Ino ino = Stat(*vfs_, kRootIno, "dump.sql")->ino;
  const std::map<ChunkId, ChunkId> deltas = DeltasOf("dump.sql");
  ASSERT_GE(deltas.size(), 2u);
  const ChunkId victim_delta = deltas.begin()->first;
  const ChunkId base = deltas.begin()->second;
  ChunkId other;
  for (const auto& [id, b] : deltas)
    if (b != base) other = id;
  ASSERT_NE(other, ChunkId{});
  ASSERT_OK_AND_ASSIGN(std::optional<ChunkLocation> loc, chunks().Locate(base));
  ASSERT_TRUE(loc.has_value());
  XorFileByte(PackPath(packs_, loc->pack),
              loc->offset + RecordHeaderSize(loc->codec) + loc->stored_len / 2);
  ASSERT_NO_FATAL_FAILURE(Reopen());

  Result<ChunkBytes> got = chunks().Get(victim_delta);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), Code::kCorruption);
  EXPECT_NE(got.status().message().find(victim_delta.Hex()), std::string::npos)
      << got.status().message();
  EXPECT_NE(got.status().message().find(base.Hex()), std::string::npos) << got.status().message();
  EXPECT_OK(chunks().Get(other));  // A delta on another base is fine.
  EXPECT_CODE(ReadAt(g2, "dump.sql"), Code::kCorruption);

  ASSERT_OK_AND_ASSIGN(CheckReport report, CheckStore(*store_, CheckOptions{}));
  std::map<ChunkId, std::string> damaged;
  for (const DamagedChunk& d : report.damaged) damaged[d.id] = d.reason;
  ASSERT_TRUE(damaged.count(base));
  ASSERT_TRUE(damaged.count(victim_delta));
  EXPECT_NE(damaged[victim_delta].find(base.Hex()), std::string::npos) << damaged[victim_delta];
  EXPECT_FALSE(damaged.count(other));
  // Every dependent of the base is damaged, and the day-2 version lists them.
  std::set<ChunkId> dependents;
  for (const auto& [id, b] : deltas)
    if (b == base) dependents.insert(id);
  bool day2_listed = false;
  for (const AffectedVersion& v : report.affected) {
    if (v.ino != ino || v.content_gen != g2) continue;
    day2_listed = true;
    const std::set<ChunkId> listed(v.chunks.begin(), v.chunks.end());
    for (const ChunkId& id : dependents) EXPECT_TRUE(listed.count(id)) << id.Hex();
  }
  EXPECT_TRUE(day2_listed);
}

// The quick check reads no chunk: a base lost with its pack still makes its
// deltas damaged, so their versions are in the blast radius.
TEST_F(DeltaTest, QuickCheckCountsTheDeltasOfALostBaseAsDamaged) {
  Dump("dump.sql", DumpText(kDumpBytes, 1));
  EndState();
  ASSERT_NO_FATAL_FAILURE(Reopen());  // Day 2 goes to a new pack.
  Dump("dump.sql", DumpText(kDumpBytes, 2));
  const std::map<ChunkId, ChunkId> deltas = DeltasOf("dump.sql");
  ASSERT_FALSE(deltas.empty());
  ASSERT_OK_AND_ASSIGN(std::optional<ChunkLocation> base, chunks().Locate(deltas.begin()->second));
  ASSERT_TRUE(base.has_value());
  const uint32_t lost = base->pack;
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ASSERT_EQ(::truncate(PackPath(packs_, lost).c_str(), 16), 0);  // Only the pack header left.
  CheckOptions quick;
  quick.quick = true;
  ASSERT_OK_AND_ASSIGN(CheckReport report, CheckStore(*store_, quick));
  std::map<ChunkId, std::string> damaged;
  for (const DamagedChunk& d : report.damaged) damaged[d.id] = d.reason;
  int dependents = 0;
  for (const auto& [id, b] : deltas) {
    ASSERT_OK_AND_ASSIGN(std::optional<ChunkLocation> bl, chunks().Locate(b));
    if (!bl || bl->pack != lost) continue;
    ++dependents;
    ASSERT_TRUE(damaged.count(id)) << id.Hex();
    EXPECT_NE(damaged[id].find("base chunk " + b.Hex()), std::string::npos) << damaged[id];
  }
  EXPECT_GT(dependents, 0);
}

TEST_F(DeltaTest, DroppingDayOneAndCollectingGarbageKeepsTheBasesOfLaterDays) {
  std::vector<std::string> days;
  std::vector<Generation> gens;
  for (int day = 1; day <= 3; ++day) {
    days.push_back(DumpText(kDumpBytes, day));
    Dump("dump.sql", days.back());
    gens.push_back(store_->latest());
    EndState();
  }
  const std::map<ChunkId, ChunkId> deltas = DeltasOf("dump.sql");
  ASSERT_FALSE(deltas.empty());
  std::vector<State> states;
  ASSERT_OK(store_->ListStates(0, [&](const State& s) {
    states.push_back(s);
    return true;
  }));
  std::vector<Generation> drop;  // The states of days 1 and 2.
  for (const State& st : states)
    if (st.first_gen <= gens[1] && st.last_gen >= gens[0]) drop.push_back(st.first_gen);
  ASSERT_EQ(drop.size(), 2u);
  ASSERT_NO_FATAL_FAILURE(Reopen());  // The packs written so far can be rewritten.
  ASSERT_OK(store_->DropStates(drop));
  GcOptions gc;
  gc.rewrite_below = 1.0;  // Copy every live record: bases travel too.
  ASSERT_OK_AND_ASSIGN(GcStats stats, store_->CollectGarbage(gc));
  EXPECT_GT(stats.chunks_deleted, 0u);  // Day-2 chunks no delta uses are gone.
  EXPECT_GT(stats.packs_rewritten, 0u);
  ASSERT_NO_FATAL_FAILURE(Reopen());
  for (const auto& [id, base] : deltas) {
    ASSERT_OK_AND_ASSIGN(std::optional<ChunkLocation> loc, chunks().Locate(base));
    EXPECT_TRUE(loc.has_value()) << "base " << base.Hex() << " of " << id.Hex() << " was swept";
  }
  ASSERT_OK_AND_ASSIGN(std::string got, ReadAt(gens[2], "dump.sql"));
  EXPECT_TRUE(got == days[2]);
  ASSERT_OK_AND_ASSIGN(CheckReport report, CheckStore(*store_, CheckOptions{}));
  EXPECT_TRUE(report.clean());
  EXPECT_EQ(report.unreferenced_chunks, 0u);  // The bases count as used.
}

// The fence: chunk D is put (held) with base B, a chunk no kept version
// uses. GC starts; while it is between its snapshot and its sweep, D's file
// is committed (so D is neither pending nor in GC's snapshot) and its hold
// released. B must survive: the epoch protected it together with D.
TEST_F(DeltaTest, ABaseInUseByAChunkCommittedWhileGcRunsSurvivesTheSweep) {
  const std::string day1 = DumpText(kDumpBytes, 1);
  Dump("victim", day1);
  EndState();
  const std::vector<Extent> old = ExtentsOf("victim");
  ASSERT_GE(old.size(), 2u);
  const ChunkId base = old[1].id;
  ASSERT_OK_AND_ASSIGN(ChunkBytes base_bytes, chunks().Get(base));
  const Generation first = NewestState();
  Dump("victim", "replaced");
  EndState();
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ASSERT_OK(store_->DropStates({first}));  // B is now dead.
  ASSERT_NO_FATAL_FAILURE(Reopen());

  std::string raw = *base_bytes;
  raw[raw.size() / 2] = static_cast<char>(raw[raw.size() / 2] ^ 0x20);
  const ChunkId id = chunks().Id(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
  ASSERT_OK(chunks().Put(id, raw, /*hold=*/true, base));
  ASSERT_OK(chunks().WaitStored({&id, 1}, nullptr));
  bool committed = false;
  gc_testing::SetCrashHook([&](std::string_view step) {
    if (step != "gc-epoch" || committed) return;
    committed = true;
    EXPECT_OK(CommitFileOf(id, raw.size()));
    chunks().Release({&id, 1});
  });
  ASSERT_OK_AND_ASSIGN(GcStats stats, store_->CollectGarbage(GcOptions{}));
  gc_testing::SetCrashHook(nullptr);
  ASSERT_TRUE(committed);
  EXPECT_GT(stats.chunks_deleted, 0u);  // The other chunks of day 1 went.
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ASSERT_OK_AND_ASSIGN(std::optional<ChunkLocation> loc, chunks().Locate(id));
  ASSERT_TRUE(loc.has_value());
  ASSERT_EQ(loc->codec, Codec::kZstdDelta);  // Else this test tests nothing.
  EXPECT_EQ(loc->base, base);
  ASSERT_OK_AND_ASSIGN(ChunkBytes got, chunks().Get(id));
  EXPECT_TRUE(*got == raw);
  ASSERT_OK_AND_ASSIGN(CheckReport report, CheckStore(*store_, CheckOptions{}));
  EXPECT_TRUE(report.clean());
}

// The same with D still waiting for its commit when GC sweeps: the chunk is
// pending, so its base is kept through the pending chunk, not a hold.
TEST_F(DeltaTest, ABaseOfAChunkNotYetCommittedSurvivesGc) {
  const std::string day1 = DumpText(kDumpBytes, 1);
  Dump("victim", day1);
  EndState();
  const std::vector<Extent> old = ExtentsOf("victim");
  const ChunkId base = old.at(1).id;
  ASSERT_OK_AND_ASSIGN(ChunkBytes base_bytes, chunks().Get(base));
  const Generation first = NewestState();
  Dump("victim", "replaced");
  EndState();
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ASSERT_OK(store_->DropStates({first}));
  ASSERT_NO_FATAL_FAILURE(Reopen());

  std::string raw = *base_bytes;
  raw[100] = static_cast<char>(raw[100] ^ 0x20);
  const ChunkId id = chunks().Id(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
  ASSERT_OK(chunks().Put(id, raw, /*hold=*/false, base));
  ASSERT_OK(chunks().WaitStored({&id, 1}, nullptr));
  ASSERT_OK(store_->CollectGarbage(GcOptions{}));
  // Committed only now; its index entry names B, which must still be there.
  ASSERT_OK(CommitFileOf(id, raw.size()));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ASSERT_OK_AND_ASSIGN(std::optional<ChunkLocation> loc, chunks().Locate(id));
  ASSERT_TRUE(loc.has_value());
  ASSERT_EQ(loc->codec, Codec::kZstdDelta);
  ASSERT_OK_AND_ASSIGN(ChunkBytes got, chunks().Get(id));
  EXPECT_TRUE(*got == raw);
  ASSERT_OK_AND_ASSIGN(CheckReport report, CheckStore(*store_, CheckOptions{}));
  EXPECT_TRUE(report.clean());
}

}  // namespace
}  // namespace snapfs::store
