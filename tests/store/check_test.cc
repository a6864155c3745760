// CheckStore (snapfs-check's logic): a clean store passes; each kind of
// damage (pack payload, record header, pack header, truncated pack, lost
// index entry, lost log record, lost inode or extent records) is found, the
// right chunk is named, and exactly the file versions and states that show
// damaged bytes are listed.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <rocksdb/db.h>

#include <chrono>
#include <filesystem>
#include <climits>
#include <set>
#include <thread>

#include "store/check.h"
#include "store/file_content.h"
#include "store/pack_file.h"
#include "store/paths.h"
#include "tests/store/test_util.h"

namespace snapfs::store::testing {
namespace {

constexpr int64_t kGapNs = 100'000'000;  // States end after 100 ms of quiet.

class CheckTest : public StoreTestBase {
 protected:
  void SetUp() override {
    InitOptions init;
    init.state_gap_ns = kGapNs;
    ASSERT_NO_FATAL_FAILURE(InitAndOpen(init));
  }

  // Ends the current state: the next commit starts a new one. Every other
  // commit continues the current state, however slow the machine is.
  void Quiet() {
    std::this_thread::sleep_for(std::chrono::nanoseconds(kGapNs * 2));
    quiet_ = true;
  }

  Generation Commit(Mutation& m, Op op, Ino ino, Ino parent, std::string name, Ino parent2 = 0,
                    std::string name2 = {}) {
    LogRecord log;
    log.op = op;
    log.ino = ino;
    log.parent = parent;
    log.name = std::move(name);
    log.parent2 = parent2;
    log.name2 = std::move(name2);
    CommitOptions options;
    if (!quiet_) options.activity_start_ns = store_->latest_time_ns();
    quiet_ = false;
    Result<Generation> g = store_->Commit(m, log, options);
    EXPECT_TRUE(g.ok()) << g.status().ToString();
    return g.ok() ? *g : 0;
  }
  InodeRecord Current(Ino ino) {
    Result<std::optional<InodeRecord>> r = store_->GetInode(ino, kLatest);
    EXPECT_TRUE(r.ok() && r->has_value());
    return r.ok() && r->has_value() ? **r : InodeRecord{};
  }
  Ino Mkdir(Ino parent, const std::string& name) {
    const Ino ino = store_->AllocateIno();
    InodeRecord rec;
    rec.op = Op::kMkdir;
    rec.mode = S_IFDIR | 0755;
    rec.nlink = 2;
    Mutation m;
    m.PutInode(ino, rec);
    m.PutDirent(parent, name, DirentRecord{ino, S_IFDIR >> 12});
    m.PutDirent(ino, "..", DirentRecord{parent, S_IFDIR >> 12});
    Commit(m, Op::kMkdir, ino, parent, name);
    return ino;
  }
  // New content for `ino` (`rec` is its record; content fields filled in).
  void PutBytes(Mutation& m, Ino ino, InodeRecord rec, const std::string& bytes) {
    FileContent fc(&store_->chunks(), &store_->chunker(), {}, 0);
    ASSERT_OK(fc.Write(0, bytes.data(), bytes.size()));
    uint64_t stored = 0;
    ASSERT_OK(fc.Flush(&stored));
    rec.size = bytes.size();
    m.PutInode(ino, rec);
    m.PutContent(ino, fc.extents(), fc.unindexed());
  }
  Ino WriteNew(Ino parent, const std::string& name, const std::string& bytes) {
    const Ino ino = store_->AllocateIno();
    InodeRecord rec;
    rec.op = Op::kCreate;
    rec.mode = S_IFREG | 0644;
    rec.nlink = 1;
    Mutation m;
    PutBytes(m, ino, rec, bytes);
    m.PutDirent(parent, name, DirentRecord{ino, S_IFREG >> 12});
    Commit(m, Op::kCreate, ino, parent, name);
    return ino;
  }
  void Rewrite(Ino ino, const std::string& bytes) {
    InodeRecord rec = Current(ino);
    rec.op = Op::kWrite;
    Mutation m;
    PutBytes(m, ino, rec, bytes);
    Commit(m, Op::kWrite, ino, 0, {});
  }
  void Rename(Ino parent, const std::string& name, Ino ino, Ino new_parent,
              const std::string& new_name) {
    Mutation m;
    m.PutDirent(parent, name, DirentRecord{});
    m.PutDirent(new_parent, new_name, DirentRecord{ino, S_IFREG >> 12});
    InodeRecord rec = Current(ino);
    rec.op = Op::kRename;
    m.PutInode(ino, rec);
    Commit(m, Op::kRename, ino, parent, name, new_parent, new_name);
  }
  void Link(Ino ino, Ino parent, const std::string& name) {
    Mutation m;
    m.PutDirent(parent, name, DirentRecord{ino, S_IFREG >> 12});
    InodeRecord rec = Current(ino);
    rec.op = Op::kLink;
    rec.nlink++;
    m.PutInode(ino, rec);
    Commit(m, Op::kLink, ino, parent, name);
  }
  void Unlink(Ino parent, const std::string& name, Ino ino) {
    Mutation m;
    m.PutDirent(parent, name, DirentRecord{});
    InodeRecord rec = Current(ino);
    rec.op = Op::kUnlink;
    rec.nlink--;
    m.PutInode(ino, rec);
    Commit(m, Op::kUnlink, ino, parent, name);
  }

  // The chunks of `ino`'s content as of `at`.
  std::vector<ChunkId> ChunksOf(Ino ino, Generation at = kLatest) {
    Result<std::optional<InodeRecord>> rec = store_->GetInode(ino, at);
    EXPECT_TRUE(rec.ok() && rec->has_value());
    Result<std::vector<Extent>> extents = store_->GetExtents(ino, **rec);
    EXPECT_TRUE(extents.ok()) << extents.status().ToString();
    std::vector<ChunkId> ids;
    for (const Extent& e : *extents) ids.push_back(e.id);
    return ids;
  }
  ChunkLocation Where(const ChunkId& id) {
    Result<std::optional<ChunkLocation>> loc = store_->chunks().Locate(id);
    EXPECT_TRUE(loc.ok() && loc->has_value());
    return **loc;
  }
  std::vector<State> States() {
    std::vector<State> out;
    EXPECT_OK(store_->ListStates(1, [&](const State& s) {
      out.push_back(s);
      return true;
    }));
    return out;
  }

  // Closes the store and runs `edit` on its RocksDB database directly.
  void EditDb(const std::function<void(rocksdb::DB*, std::vector<rocksdb::ColumnFamilyHandle*>&)>& edit) {
    store_.reset();
    std::vector<rocksdb::ColumnFamilyDescriptor> descs;
    for (const char* n : {kCfMeta, kCfChunks, kCfInodes, kCfDirents, kCfExtents, kCfLog, kCfStates,
                          kCfTimes, kCfDirLog, kCfDirSnaps})
      descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> cfs;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), path_ + "/db", descs, &cfs, &db).ok());
    edit(db, cfs);
    for (auto* h : cfs) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
    delete db;
  }

  // Runs the check on a fresh read-only (secondary) open, as the tool does.
  CheckReport Check(bool quick = false) {
    OpenOptions o;
    o.read_only = true;
    Result<std::unique_ptr<Store>> ro = Store::Open(path_, o);
    EXPECT_TRUE(ro.ok()) << ro.status().ToString();
    if (!ro.ok()) return {};
    EXPECT_OK((*ro)->CatchUp());
    CheckOptions options;
    options.quick = quick;
    Result<CheckReport> r = CheckStore(**ro, options);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(*r) : CheckReport{};
  }
  // "s<id>:<path>" for every state that shows an affected version, plus
  // "live:<path>".
  static std::set<std::string> Radius(const CheckReport& r) {
    std::set<std::string> out;
    for (const AffectedVersion& v : r.affected) {
      for (const AffectedState& s : v.states)
        for (const std::string& p : s.paths) out.insert("s" + std::to_string(s.state) + ":" + p);
      for (const std::string& p : v.live_paths) out.insert("live:" + p);
    }
    return out;
  }
  static std::string Reasons(const CheckReport& r) {
    std::string out;
    for (const DamagedChunk& d : r.damaged) out += d.id.Hex() + ": " + d.reason + "\n";
    for (const MetadataProblem& p : r.problems) out += p.family + " " + p.key + ": " + p.reason + "\n";
    return out;
  }

  // A story: state A writes /d/f (f_v1) and /d/g; state B rewrites /d/f
  // (f_v2); state C renames /d/g to /h.
  void WriteStory() {
    Quiet();
    d_ = Mkdir(kRootIno, "d");
    f_ = WriteNew(d_, "f", f_v1_);
    g_ = WriteNew(d_, "g", g_bytes_);
    a_ = States().back();
    Quiet();
    Rewrite(f_, f_v2_);
    b_ = States().back();
    Quiet();
    Rename(d_, "g", g_, kRootIno, "h");
    c_ = States().back();
    ASSERT_EQ(States().size(), 4u);
  }

  const std::string f_v1_ = SeededBytes(300'000, 1);
  const std::string f_v2_ = SeededBytes(200'000, 2);
  const std::string g_bytes_ = SeededBytes(100'000, 3);
  Ino d_ = 0, f_ = 0, g_ = 0;
  State a_, b_, c_;
  bool quiet_ = false;
};

std::string Id(const State& s) { return "s" + std::to_string(s.first_gen); }

TEST_F(CheckTest, CleanStorePassesBothChecks) {
  ASSERT_NO_FATAL_FAILURE(WriteStory());
  Link(f_, kRootIno, "f-link");
  Unlink(d_, "f", f_);
  // f's two contents and g's: random bytes, so no chunk is in two of them.
  size_t chunks = 0;
  for (const std::string* content : {&f_v1_, &f_v2_, &g_bytes_})
    chunks += testing::ChunkLengths(store_->chunker(), *content).size();
  for (bool quick : {false, true}) {
    CheckReport r = Check(quick);
    EXPECT_TRUE(r.clean()) << Reasons(r);
    EXPECT_TRUE(r.affected.empty());
    EXPECT_EQ(r.generations, store_->latest());
    EXPECT_EQ(r.states, 4u);
    EXPECT_EQ(r.inodes, 4u);  // Root, d, f, g.
    EXPECT_EQ(r.chunks, chunks);
    EXPECT_EQ(r.chunks_verified, quick ? 0u : r.chunks);
    EXPECT_EQ(r.unreferenced_chunks, 0u);
  }
}

// Pruning is not damage: after states are dropped and garbage collected
// (the first state held the root's first versions) the store checks clean,
// and a state that should be there but is missing is reported.
TEST_F(CheckTest, PrunedStoreChecksClean) {
  ASSERT_NO_FATAL_FAILURE(WriteStory());
  Quiet();
  Rewrite(f_, f_v1_);
  ASSERT_OK(store_->DropStates({States()[0].first_gen, a_.first_gen, b_.first_gen}));
  ASSERT_OK(store_->CollectGarbage({}));
  for (bool quick : {false, true}) {
    CheckReport r = Check(quick);
    EXPECT_TRUE(r.clean()) << Reasons(r);
    EXPECT_EQ(r.states, 2u);
  }
  const std::string key = keys::State(c_.first_gen);
  EditDb([&](rocksdb::DB* db, std::vector<rocksdb::ColumnFamilyHandle*>& cfs) {
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), cfs[6], key).ok());
  });
  CheckReport r = Check(true);
  EXPECT_FALSE(r.clean());
  EXPECT_NE(Reasons(r).find("are in no state and were not pruned"), std::string::npos) << Reasons(r);
}

TEST_F(CheckTest, FlippedPayloadByteNamesTheChunkAndOnlyTheStateThatShowsIt) {
  ASSERT_NO_FATAL_FAILURE(WriteStory());
  // A chunk only the first version of /d/f has.
  const std::vector<ChunkId> v1 = ChunksOf(f_, a_.last_gen);
  const ChunkId bad = v1[1];
  for (const ChunkId& id : ChunksOf(f_)) ASSERT_NE(id, bad);
  const ChunkLocation loc = Where(bad);
  store_.reset();
  XorFileByte(PackPathOf(loc.pack), loc.offset + kRecordHeaderSize + 100);

  CheckReport r = Check();
  ASSERT_EQ(r.damaged.size(), 1u) << Reasons(r);
  EXPECT_EQ(r.damaged[0].id, bad);
  ASSERT_TRUE(r.damaged[0].loc.has_value());
  EXPECT_EQ(*r.damaged[0].loc, loc);
  EXPECT_EQ(r.damaged[0].reason, "payload checksum mismatch");
  EXPECT_TRUE(r.problems.empty()) << Reasons(r);
  ASSERT_EQ(r.affected.size(), 1u);
  EXPECT_EQ(r.affected[0].ino, f_);
  EXPECT_EQ(r.affected[0].chunks, std::vector<ChunkId>{bad});
  EXPECT_EQ(Radius(r), (std::set<std::string>{Id(a_) + ":/d/f"}));
  EXPECT_TRUE(r.affected[0].live_paths.empty());
  EXPECT_EQ(r.affected[0].current_to, b_.first_gen - 1);

  // The quick check does not read chunks: it cannot see this.
  EXPECT_TRUE(Check(true).clean());
}

TEST_F(CheckTest, DamageInTheNewestContentListsTheLiveTreeAndEveryStateSince) {
  ASSERT_NO_FATAL_FAILURE(WriteStory());
  const ChunkId bad = ChunksOf(g_)[0];  // /d/g in A and B, /h in C and now.
  const ChunkLocation loc = Where(bad);
  store_.reset();
  XorFileByte(PackPathOf(loc.pack), loc.offset + kRecordHeaderSize + 7, 0x01);
  CheckReport r = Check();
  ASSERT_EQ(r.damaged.size(), 1u) << Reasons(r);
  EXPECT_EQ(r.damaged[0].id, bad);
  EXPECT_EQ(Radius(r), (std::set<std::string>{Id(a_) + ":/d/g", Id(b_) + ":/d/g",
                                               Id(c_) + ":/h", "live:/h"}));
}

TEST_F(CheckTest, SharedChunkListsEveryFileThatUsesIt) {
  Quiet();
  const std::string bytes = SeededBytes(150'000, 9);
  const Ino one = WriteNew(kRootIno, "one", bytes);
  const State s1 = States().back();
  Quiet();
  const Ino two = WriteNew(kRootIno, "two", bytes);  // Dedup: the same chunks.
  Link(two, kRootIno, "two-link");
  const State s2 = States().back();
  ASSERT_EQ(ChunksOf(one), ChunksOf(two));
  const ChunkId bad = ChunksOf(one)[0];
  const ChunkLocation loc = Where(bad);
  store_.reset();
  XorFileByte(PackPathOf(loc.pack), loc.offset + kRecordHeaderSize + loc.stored_len - 1);
  CheckReport r = Check();
  ASSERT_EQ(r.damaged.size(), 1u) << Reasons(r);
  EXPECT_EQ(r.affected.size(), 2u);
  EXPECT_EQ(Radius(r), (std::set<std::string>{Id(s1) + ":/one", Id(s2) + ":/one", Id(s2) + ":/two",
                                               Id(s2) + ":/two-link", "live:/one", "live:/two",
                                               "live:/two-link"}));
}

TEST_F(CheckTest, DeletedFileIsListedOnlyInTheStatesBeforeItsDeletion) {
  Quiet();
  const Ino f = WriteNew(kRootIno, "f", SeededBytes(90'000, 4));
  const State s1 = States().back();
  Quiet();
  Unlink(kRootIno, "f", f);
  const ChunkId bad = ChunksOf(f)[0];  // The record with nlink 0 keeps the content.
  const ChunkLocation loc = Where(bad);
  store_.reset();
  XorFileByte(PackPathOf(loc.pack), loc.offset + kRecordHeaderSize + 3);
  CheckReport r = Check();
  ASSERT_EQ(r.damaged.size(), 1u);
  EXPECT_EQ(Radius(r), (std::set<std::string>{Id(s1) + ":/f"}));
}

TEST_F(CheckTest, FlippedRecordHeaderByteIsADamagedRecordHeader) {
  ASSERT_NO_FATAL_FAILURE(WriteStory());
  const ChunkId bad = ChunksOf(f_)[0];
  const ChunkLocation loc = Where(bad);
  store_.reset();
  XorFileByte(PackPathOf(loc.pack), loc.offset + 22, 0x10);  // Inside the raw length.
  CheckReport r = Check();
  ASSERT_EQ(r.damaged.size(), 1u) << Reasons(r);
  EXPECT_EQ(r.damaged[0].id, bad);
  EXPECT_EQ(r.damaged[0].reason, "damaged record header");
  EXPECT_EQ(Radius(r), (std::set<std::string>{Id(b_) + ":/d/f", Id(c_) + ":/d/f", "live:/d/f"}));
}

TEST_F(CheckTest, FlippedPackHeaderIsAMetadataProblemAndNoChunkIsLost) {
  ASSERT_NO_FATAL_FAILURE(WriteStory());
  const ChunkLocation loc = Where(ChunksOf(f_)[0]);
  store_.reset();
  XorFileByte(PackPathOf(loc.pack), 2);
  for (bool quick : {false, true}) {
    CheckReport r = Check(quick);
    EXPECT_TRUE(r.damaged.empty()) << Reasons(r);
    ASSERT_EQ(r.problems.size(), 1u) << Reasons(r);
    EXPECT_EQ(r.problems[0].family, "packs");
    EXPECT_NE(r.problems[0].reason.find("damaged pack header"), std::string::npos);
  }
}

TEST_F(CheckTest, TruncatedPackLosesTheChunksPastTheCutInBothChecks) {
  ASSERT_NO_FATAL_FAILURE(WriteStory());
  // Cut the pack inside the last chunk of the newest /d/f.
  const std::vector<ChunkId> ids = ChunksOf(f_);
  const ChunkLocation loc = Where(ids.back());
  store_.reset();
  // Every record at or after the cut is lost; find them.
  const std::string pack = PackPathOf(loc.pack);
  ASSERT_EQ(::truncate(pack.c_str(), static_cast<off_t>(loc.offset + 50)), 0);
  CheckReport full = Check();
  CheckReport quick = Check(true);
  ASSERT_FALSE(full.damaged.empty());
  EXPECT_EQ(full.damaged.size(), quick.damaged.size()) << Reasons(full) << Reasons(quick);
  bool named = false;
  for (const DamagedChunk& d : full.damaged) {
    ASSERT_TRUE(d.loc.has_value());
    EXPECT_GE(d.loc->offset, loc.offset) << "only records past the cut are lost";
    EXPECT_NE(d.reason.find("truncated"), std::string::npos) << d.reason;
    named |= d.id == ids.back();
  }
  EXPECT_TRUE(named);
  for (const DamagedChunk& d : quick.damaged) EXPECT_EQ(d.reason, "pack is truncated");
}

TEST_F(CheckTest, MissingPackFileDamagesEveryChunkInIt) {
  ASSERT_NO_FATAL_FAILURE(WriteStory());
  const ChunkLocation loc = Where(ChunksOf(f_)[0]);
  store_.reset();
  ASSERT_EQ(::unlink(PackPathOf(loc.pack).c_str()), 0);
  CheckReport r = Check(true);
  EXPECT_EQ(r.damaged.size(), r.chunks);
  for (const DamagedChunk& d : r.damaged)
    EXPECT_NE(d.reason.find("pack file missing"), std::string::npos) << d.reason;
  EXPECT_TRUE(Radius(r).count("live:/h"));
}

TEST_F(CheckTest, DeletedIndexEntryIsAMissingChunkInBothChecks) {
  ASSERT_NO_FATAL_FAILURE(WriteStory());
  const ChunkId gone = ChunksOf(f_, a_.last_gen)[0];
  ASSERT_NO_FATAL_FAILURE(EditDb([&](rocksdb::DB* db, auto& cfs) {
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), cfs[1], keys::Chunk(gone)).ok());
  }));
  for (bool quick : {false, true}) {
    CheckReport r = Check(quick);
    ASSERT_EQ(r.damaged.size(), 1u) << Reasons(r);
    EXPECT_EQ(r.damaged[0].id, gone);
    EXPECT_FALSE(r.damaged[0].loc.has_value());
    EXPECT_EQ(r.damaged[0].reason, "no index entry");
    EXPECT_EQ(Radius(r), (std::set<std::string>{Id(a_) + ":/d/f"}));
    EXPECT_EQ(r.unreferenced_chunks, 0u);
  }
}

TEST_F(CheckTest, DroppedLogRecordBreaksTheLogAndTheRecordsOfThatGeneration) {
  ASSERT_NO_FATAL_FAILURE(WriteStory());
  const Generation g = b_.first_gen;  // The rewrite of /d/f.
  ASSERT_NO_FATAL_FAILURE(EditDb([&](rocksdb::DB* db, auto& cfs) {
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), cfs[5], keys::Log(g)).ok());
  }));
  for (bool quick : {false, true}) {
    CheckReport r = Check(quick);
    EXPECT_TRUE(r.damaged.empty());
    ASSERT_EQ(r.problems.size(), 2u) << Reasons(r);
    EXPECT_EQ(r.problems[0].family, "log");
    EXPECT_EQ(r.problems[0].reason, "generation " + std::to_string(g) + " has no log record");
    EXPECT_EQ(r.problems[1].family, "inodes");
    EXPECT_EQ(r.problems[1].key, HexBytes(keys::Inode(f_, g)));
  }
}

TEST_F(CheckTest, MissingInodeRecordOfANamedFileIsADirentProblem) {
  ASSERT_NO_FATAL_FAILURE(WriteStory());
  Generation first = 0;
  ASSERT_OK(store_->InodeVersions(g_, [&](Generation gen, const InodeRecord&) {
    first = gen;
    return false;
  }));
  ASSERT_NO_FATAL_FAILURE(EditDb([&](rocksdb::DB* db, auto& cfs) {
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), cfs[2], keys::Inode(g_, first)).ok());
  }));
  CheckReport r = Check(true);
  ASSERT_FALSE(r.problems.empty());
  bool found = false;
  for (const MetadataProblem& p : r.problems)
    found |= p.family == "dirents" && p.reason.find("names inode " + std::to_string(g_)) !=
                                          std::string::npos;
  EXPECT_TRUE(found) << Reasons(r);
}

TEST_F(CheckTest, MissingExtentPageIsFound) {
  ASSERT_NO_FATAL_FAILURE(WriteStory());
  const Generation content = store_->GetInode(f_, a_.last_gen)->value().content_gen;
  ASSERT_NO_FATAL_FAILURE(EditDb([&](rocksdb::DB* db, auto& cfs) {
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), cfs[4], keys::ExtentPage(f_, content, 0)).ok());
  }));
  CheckReport r = Check(true);
  ASSERT_EQ(r.problems.size(), 1u) << Reasons(r);
  EXPECT_EQ(r.problems[0].family, "extents");
  EXPECT_NE(r.problems[0].reason.find("are missing"), std::string::npos) << r.problems[0].reason;
}

TEST_F(CheckTest, ExtentsPastTheSizeAreFound) {
  ASSERT_NO_FATAL_FAILURE(WriteStory());
  InodeRecord rec = Current(f_);
  rec.size = 10;  // The extents go on to 200000.
  ASSERT_NO_FATAL_FAILURE(EditDb([&](rocksdb::DB* db, auto& cfs) {
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), cfs[2], keys::Inode(f_, c_.last_gen + 1),
                        EncodeInodeRecord(rec)).ok());
    LogRecord log;
    log.op = Op::kTruncate;
    log.ino = f_;
    log.time_ns = INT64_MAX;  // After every other generation.
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), cfs[5], keys::Log(c_.last_gen + 1),
                        EncodeLogRecord(log)).ok());
  }));
  CheckReport r = Check(true);
  // The planted generation belongs to no state: invariant 6 names it too.
  ASSERT_EQ(r.problems.size(), 2u) << Reasons(r);
  EXPECT_NE(Reasons(r).find("past the size 10"), std::string::npos) << Reasons(r);
  EXPECT_NE(Reasons(r).find("are in no state"), std::string::npos) << Reasons(r);
}

TEST_F(CheckTest, RunsOnASecondaryWhileTheStoreIsOpenForWriting) {
  ASSERT_NO_FATAL_FAILURE(WriteStory());
  // store_ stays open read-write, as under the daemon.
  CheckReport r = Check();
  EXPECT_TRUE(r.clean()) << Reasons(r);
  EXPECT_EQ(r.latest, store_->latest());
}

TEST_F(CheckTest, ProgressReportsEveryChunk) {
  ASSERT_NO_FATAL_FAILURE(WriteStory());
  CheckOptions options;
  CheckProgress last;
  std::set<std::string> phases;
  options.progress = [&](const CheckProgress& p) {
    last = p;
    phases.insert(p.phase);
  };
  ASSERT_OK_AND_ASSIGN(CheckReport r, CheckStore(*store_, options));
  EXPECT_TRUE(r.clean());
  EXPECT_TRUE(phases.count("chunks") && phases.count("extents")) << phases.size();
  EXPECT_EQ(last.chunks_done, r.chunks);
  EXPECT_EQ(last.bytes_done, last.bytes_total);
}

TEST_F(CheckTest, ADamagedChunkFailsEveryReadAndIsNeverCached) {
  ASSERT_NO_FATAL_FAILURE(WriteStory());
  const ChunkId bad = ChunksOf(f_)[0];
  const ChunkLocation loc = Where(bad);
  store_.reset();
  XorFileByte(PackPathOf(loc.pack), loc.offset + kRecordHeaderSize + 1);
  ASSERT_NO_FATAL_FAILURE(Reopen());
  for (int i = 0; i < 2; ++i) {
    Result<ChunkBytes> got = store_->chunks().Get(bad);
    EXPECT_CODE(got, Code::kCorruption);
    EXPECT_NE(got.status().message().find(bad.Hex()), std::string::npos);
  }
  // The other chunks still read.
  EXPECT_OK(store_->chunks().Get(ChunksOf(g_)[0]));
}

TEST_F(CheckTest, PathFinderFollowsRenamesAndHardLinks) {
  ASSERT_NO_FATAL_FAILURE(WriteStory());
  Link(g_, d_, "g-again");
  PathFinder finder(*store_);
  using Paths = std::vector<std::string>;
  EXPECT_EQ(finder.Paths(g_, a_.last_gen).value(), Paths{"/d/g"});
  EXPECT_EQ(finder.Paths(g_, c_.last_gen).value(), Paths{"/h"});
  EXPECT_EQ(finder.Paths(g_, kLatest).value(), (Paths{"/d/g-again", "/h"}));
  EXPECT_EQ(finder.Paths(g_, 1).value(), Paths{});
  EXPECT_EQ(finder.Paths(kRootIno, 1).value(), Paths{"/"});
  EXPECT_EQ(DirPath(*store_, d_, kLatest).value(), "/d");
}

// Every path under the store, with group/other bits set.
std::vector<std::string> OpenToOthers(const std::string& root) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    struct stat st {};
    if (::lstat(e.path().c_str(), &st) == 0 && (st.st_mode & 077) != 0)
      out.push_back(e.path().string() + " " + std::to_string(st.st_mode & 07777));
  }
  return out;
}

TEST_F(CheckTest, EveryStoreFileIsOwnerOnlyAndOldModesAreTightenedAtOpen) {
  ::umask(022);  // What a shell usually has; Init and Open must not depend on it.
  ASSERT_NO_FATAL_FAILURE(WriteStory());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  WriteNew(kRootIno, "after-reopen", SeededBytes(70'000, 5));  // A second pack.
  store_.reset();
  EXPECT_EQ(OpenToOthers(path_), std::vector<std::string>{});
  // A store written before this rule: a read-write open fixes it.
  const std::string current = path_ + "/db/CURRENT";
  ASSERT_EQ(::chmod(current.c_str(), 0644), 0);
  ASSERT_EQ(::chmod(PackPathOf(1).c_str(), 0644), 0);
  ASSERT_NO_FATAL_FAILURE(Reopen());
  store_.reset();
  EXPECT_EQ(OpenToOthers(path_), std::vector<std::string>{});
}

}  // namespace
}  // namespace snapfs::store::testing
