#include "store/store.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/store/test_util.h"

namespace snapfs::store {
namespace {

namespace fsys = std::filesystem;
using testing::ReadWholeFile;
using testing::Snapshot;
using testing::TempDir;
using testing::Unhex;
using testing::WriteWholeFile;

uint32_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

InodeRecord FileRecord(uint64_t size) {
  InodeRecord r;
  r.op = Op::kCreate;
  r.mode = 0100644;
  r.nlink = 1;
  r.size = size;
  return r;
}

using testing::Listing;

// The store's RocksDB opened directly, bypassing snapfs: to check the bytes
// snapfs wrote and to plant damaged ones. The store must be closed.
class RawDb {
 public:
  RawDb(const std::string& store_path, bool read_only) {
    std::vector<rocksdb::ColumnFamilyDescriptor> descs;
    for (const char* cf : kCfs) descs.emplace_back(cf, rocksdb::ColumnFamilyOptions());
    rocksdb::DB* raw = nullptr;
    const std::string path = store_path + "/db";
    rocksdb::Status st =
        read_only ? rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), path, descs, &cfs_, &raw)
                  : rocksdb::DB::Open(rocksdb::DBOptions(), path, descs, &cfs_, &raw);
    EXPECT_TRUE(st.ok()) << st.ToString();
    db_.reset(raw);
  }
  ~RawDb() {
    for (auto* h : cfs_) db_->DestroyColumnFamilyHandle(h);
  }
  std::string Get(const char* cf, const std::string& key) {
    std::string v;
    rocksdb::Status st = db_->Get(rocksdb::ReadOptions(), Cf(cf), key, &v);
    EXPECT_TRUE(st.ok()) << HexBytes(key) << ": " << st.ToString();
    return v;
  }
  bool Has(const char* cf, const std::string& key) {
    std::string v;
    return db_->Get(rocksdb::ReadOptions(), Cf(cf), key, &v).ok();
  }
  void Put(const char* cf, const std::string& key, const std::string& value) {
    EXPECT_TRUE(db_->Put(rocksdb::WriteOptions(), Cf(cf), key, value).ok());
  }
  void Delete(const char* cf, const std::string& key) {
    EXPECT_TRUE(db_->Delete(rocksdb::WriteOptions(), Cf(cf), key).ok());
  }

 private:
  static constexpr const char* kCfs[] = {kCfMeta,    kCfChunks, kCfInodes, kCfDirents,
                                         kCfExtents, kCfLog,    kCfStates, kCfTimes,
                                         kCfDirLog,  kCfDirSnaps};
  rocksdb::ColumnFamilyHandle* Cf(const char* name) {
    for (size_t i = 0; i < cfs_.size(); ++i)
      if (std::string_view(kCfs[i]) == name) return cfs_[i];
    ADD_FAILURE() << "no column family " << name;
    return cfs_[0];
  }
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs_;
};

class StoreTest : public testing::StoreTestBase {
 protected:
  // Commits one entry (a tombstone when rec.child is 0) as a generation.
  Generation CommitDirent(Ino parent, const std::string& name, DirentRecord rec) {
    Mutation m;
    m.PutDirent(parent, name, rec);
    return CommitOp(m, rec.child == 0 ? Op::kUnlink : Op::kCreate, rec.child);
  }
};

// A test that makes its own store (or none).
class StoreInitTest : public ::testing::Test {
 protected:
  TempDir dir_;
  const std::string path_ = dir_.path() + "/store";
};

// ---------------------------------------------------------------------------
// Init and Open.

TEST_F(StoreInitTest, InitCreatesAPrivateStoreWithMarkerDbAndPacks) {
  ASSERT_OK(Store::Init(path_, {}));
  EXPECT_EQ(ModeOf(path_), 0700u);
  EXPECT_EQ(ReadWholeFile(path_ + "/SNAPFS"), "snapfs store\nformat 2\n");
  EXPECT_EQ(ModeOf(path_ + "/SNAPFS"), 0600u);
  EXPECT_TRUE(fsys::is_directory(path_ + "/db"));
  EXPECT_TRUE(fsys::is_directory(path_ + "/packs"));
}

TEST_F(StoreInitTest, AStoreKeepsTheChunkerParamsItWasMadeWith) {
  // A store made before the defaults grew (docs/format.md, "Chunk ids") must
  // go on cutting its files where it always did, or its dedup would break.
  ASSERT_OK(Store::Init(path_, {}));
  {
    RawDb db(path_, /*read_only=*/false);
    db.Put(kCfMeta, "chunker", Unhex("00004000 00010000 00040000"));
  }
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, Store::Open(path_, {}));
  EXPECT_EQ(store->chunker().params(), testing::kFirstStoresChunkerParams);
  store.reset();

  ASSERT_OK(Store::Init(path_ + "2", {}));
  ASSERT_OK_AND_ASSIGN(store, Store::Open(path_ + "2", {}));
  EXPECT_EQ(store->chunker().params(), ChunkerParams{});
}

TEST_F(StoreInitTest, InitWritesTheDocumentedMetaKeysAndRootRecords) {
  InitOptions init;
  init.root_uid = 1000;
  init.root_gid = 100;
  init.root_mode = 0750;
  const int64_t before = NowNs();
  ASSERT_OK(Store::Init(path_, init));
  const int64_t after = NowNs();

  RawDb db(path_, /*read_only=*/true);
  EXPECT_EQ(db.Get(kCfMeta, "format"), Unhex("00000002"));
  EXPECT_EQ(db.Get(kCfMeta, "secret").size(), 192u);
  EXPECT_EQ(db.Get(kCfMeta, "chunker"), Unhex("00018000 00020000 00080000"));
  EXPECT_EQ(db.Get(kCfMeta, "zstd_level"), Unhex("00000001"));
  EXPECT_EQ(db.Get(kCfMeta, "next_ino"), Unhex("0000000000000002"));
  EXPECT_EQ(db.Get(kCfMeta, "state_gap"), Unhex("00000045d964b800"));  // 300 s.
  const std::string created = db.Get(kCfMeta, "created");
  ASSERT_EQ(created.size(), 8u);
  int64_t created_ns = 0;
  for (char c : created) created_ns = created_ns << 8 | static_cast<uint8_t>(c);
  EXPECT_GE(created_ns, before);
  EXPECT_LE(created_ns, after);

  ASSERT_OK_AND_ASSIGN(InodeRecord root,
                       DecodeInodeRecord(db.Get(kCfInodes, keys::Inode(kRootIno, 1)), "root"));
  EXPECT_EQ(root.op, Op::kInit);
  EXPECT_EQ(root.mode, 040750u);
  EXPECT_EQ(root.uid, 1000u);
  EXPECT_EQ(root.gid, 100u);
  EXPECT_EQ(root.nlink, 2u);
  EXPECT_EQ(root.mtime_ns, created_ns);
  ASSERT_OK_AND_ASSIGN(LogRecord log, DecodeLogRecord(db.Get(kCfLog, keys::Log(1)), "log"));
  EXPECT_EQ(log.op, Op::kInit);
  EXPECT_EQ(log.ino, kRootIno);
  EXPECT_EQ(log.time_ns, created_ns);
  ASSERT_OK_AND_ASSIGN(StateRecord state,
                       DecodeStateRecord(db.Get(kCfStates, keys::State(1)), keys::State(1)));
  StateRecord want{1, 1, created_ns, created_ns, 1, 0, 0, 0};
  want.has_totals = true;  // Record version 2: the empty tree (docs/format.md).
  EXPECT_EQ(state, want);
  EXPECT_EQ(db.Get(kCfMeta, "min_retention"), Unhex("0000000000000000"));
  EXPECT_EQ(db.Get(kCfMeta, "guard_share"), Unhex("00000032"));  // 50 %.
}

TEST_F(StoreInitTest, InitRefusesAnExistingStore) {
  ASSERT_OK(Store::Init(path_, {}));
  const auto before = Snapshot(path_);
  EXPECT_CODE(Store::Init(path_, {}), Code::kExists);
  EXPECT_EQ(Snapshot(path_), before);
}

TEST_F(StoreInitTest, InitRefusesANonEmptyFolderAndLeavesItUntouched) {
  fsys::create_directory(path_);
  WriteWholeFile(path_ + "/photo.jpg", "not a store");
  const auto before = Snapshot(path_);
  EXPECT_CODE(Store::Init(path_, {}), Code::kExists);
  EXPECT_EQ(Snapshot(path_), before);
}

TEST_F(StoreInitTest, InitTakesAnEmptyFolderAndMakesItPrivate) {
  ASSERT_EQ(::mkdir(path_.c_str(), 0755), 0);
  ASSERT_OK(Store::Init(path_, {}));
  EXPECT_EQ(ModeOf(path_), 0700u);
  EXPECT_OK(Store::Open(path_, {}));
}

TEST_F(StoreInitTest, InitRefusesABadZstdLevel) {
  InitOptions init;
  init.zstd_level = 20;
  EXPECT_CODE(Store::Init(path_, init), Code::kInvalid);
  EXPECT_FALSE(fsys::exists(path_));
}

TEST_F(StoreInitTest, OpenOfAMissingPathIsNotFoundAndSuggestsInit) {
  Result<std::unique_ptr<Store>> s = Store::Open(path_, {});
  ASSERT_EQ(s.status().code(), Code::kNotFound) << s.status().ToString();
  EXPECT_NE(s.status().message().find("snapfs --init"), std::string::npos) << s.status().message();
  EXPECT_FALSE(fsys::exists(path_));
}

TEST_F(StoreInitTest, OpenOfAFolderWithoutMarkerIsInvalidAndLeavesItUntouched) {
  // Everything of a store but the marker: still not a store.
  ASSERT_OK(Store::Init(path_, {}));
  fsys::remove(path_ + "/SNAPFS");
  WriteWholeFile(path_ + "/notes.txt", "mine");
  const auto before = Snapshot(path_);
  EXPECT_CODE(Store::Open(path_, {}), Code::kInvalid);
  OpenOptions ro;
  ro.read_only = true;
  EXPECT_CODE(Store::Open(path_, ro), Code::kInvalid);
  EXPECT_EQ(Snapshot(path_), before);
}

TEST_F(StoreInitTest, OpenOfAFormat3StoreIsVersionAndLeavesItUntouched) {
  ASSERT_OK(Store::Init(path_, {}));
  fsys::remove(path_ + "/SNAPFS");
  WriteWholeFile(path_ + "/SNAPFS", "snapfs store\nformat 3\n");
  const auto before = Snapshot(path_);
  Result<std::unique_ptr<Store>> s = Store::Open(path_, {});
  ASSERT_EQ(s.status().code(), Code::kVersion) << s.status().ToString();
  EXPECT_NE(s.status().message().find("made by an incompatible format version"), std::string::npos)
      << s.status().message();
  EXPECT_EQ(Snapshot(path_), before);
}

TEST_F(StoreInitTest, OpenOfAFileIsInvalid) {
  WriteWholeFile(path_, "a file");
  EXPECT_CODE(Store::Open(path_, {}), Code::kInvalid);
}

TEST_F(StoreTest, SecondReadWriteOpenIsBusy) {
  Result<std::unique_ptr<Store>> second = Store::Open(path_, {});
  EXPECT_EQ(second.status().code(), Code::kBusy) << second.status().ToString();
  // The first one still works.
  EXPECT_EQ(CommitDirent(kRootIno, "a", DirentRecord{2, 8}), 2u);
}

TEST_F(StoreInitTest, DamagedDatabaseUnderAPathContainingLockIsNotBusy) {
  const std::string path = dir_.path() + "/blocks";
  ASSERT_OK(Store::Init(path, {}));
  fsys::remove(path + "/db/CURRENT");
  fsys::create_directory(path + "/db/CURRENT");
  Result<std::unique_ptr<Store>> s = Store::Open(path, {});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().code(), Code::kBusy) << s.status().ToString();
}

// Another process holds RocksDB's LOCK the way RocksDB takes it (an fcntl
// write lock): the child only makes async-signal-safe calls after fork().
TEST_F(StoreTest, ReadWriteOpenWhileAnotherProcessHoldsTheStoreIsBusy) {
  store_.reset();
  const std::string lock_path = path_ + "/db/LOCK";
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    const int fd = ::open(lock_path.c_str(), O_RDWR);
    const char c = fd >= 0 && ::fcntl(fd, F_SETLK, &fl) == 0 ? 'y' : 'n';
    if (::write(ready[1], &c, 1) != 1) ::_exit(1);
    ::pause();
    ::_exit(0);
  }
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  } reaper{child};
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  ::close(ready[1]);
  ASSERT_EQ(c, 'y');
  const auto before = testing::Snapshot(path_ + "/db");
  Result<std::unique_ptr<Store>> second = Store::Open(path_, {});
  EXPECT_EQ(second.status().code(), Code::kBusy) << second.status().ToString();
  // Found by tests/tools/cli_errors_test.cc: RocksDB used to rename the
  // holder's info log (LOG -> LOG.old.*) before finding the lock taken.
  EXPECT_TRUE(testing::Snapshot(path_ + "/db") == before) << "the busy open changed files in db/";
}

// ---------------------------------------------------------------------------
// Commit and reading old generations.

TEST_F(StoreTest, FreshStoreHasOnlyTheRootAtGenerationOne) {
  EXPECT_EQ(store_->latest(), 1u);
  ASSERT_OK_AND_ASSIGN(std::optional<InodeRecord> root, store_->GetInode(kRootIno, kLatest));
  ASSERT_TRUE(root.has_value());
  EXPECT_EQ(root->mode, 040755u);
  EXPECT_TRUE(Listing(*store_, kRootIno, kLatest).empty());
  EXPECT_EQ(store_->next_ino(), 2u);
}

TEST_F(StoreTest, CommitsMakeConsecutiveGenerationsWithNonDecreasingTimes) {
  int64_t last = store_->latest_time_ns();
  for (Generation want = 2; want < 20; ++want) {
    Mutation m;
    const Ino ino = store_->AllocateIno();
    m.PutInode(ino, FileRecord(want));
    EXPECT_EQ(CommitOp(m, Op::kCreate, ino), want);
    EXPECT_EQ(store_->latest(), want);
    ASSERT_OK_AND_ASSIGN(LogRecord log, store_->GetLog(want));
    EXPECT_GE(log.time_ns, last);
    EXPECT_EQ(log.time_ns, store_->latest_time_ns());
    last = log.time_ns;
  }
  EXPECT_CODE(store_->GetLog(20), Code::kNotFound);
}

TEST_F(StoreTest, CommitStoresTheLogRecordWithItsTime) {
  Mutation m;
  m.PutDirent(kRootIno, "new", DirentRecord{7, 4});
  LogRecord log;
  log.op = Op::kRename;
  log.ino = 7;
  log.parent = 1;
  log.name = "old";
  log.parent2 = 1;
  log.name2 = "new";
  log.size = 3;
  log.bytes_written = 4;
  log.bytes_stored = 5;
  const int64_t before = NowNs();
  ASSERT_OK_AND_ASSIGN(Generation g, store_->Commit(m, log, {}));
  ASSERT_OK_AND_ASSIGN(LogRecord got, store_->GetLog(g));
  EXPECT_GE(got.time_ns, before);
  log.time_ns = got.time_ns;
  EXPECT_EQ(got, log);
}

TEST_F(StoreTest, GetInodeAtEachGenerationReturnsThatVersion) {
  const Ino ino = store_->AllocateIno();
  std::vector<Generation> gens;
  for (uint64_t size = 10; size <= 50; size += 10) {
    Mutation m;
    m.PutInode(ino, FileRecord(size));
    gens.push_back(CommitOp(m, Op::kWrite, ino));
    // Another inode's versions interleave and must not leak into ino's.
    Mutation other;
    other.PutInode(ino + 1, FileRecord(size + 1));
    CommitOp(other, Op::kWrite, ino + 1);
  }
  ASSERT_OK_AND_ASSIGN(std::optional<InodeRecord> none, store_->GetInode(ino, gens[0] - 1));
  EXPECT_FALSE(none.has_value());
  for (size_t i = 0; i < gens.size(); ++i) {
    for (Generation at : {gens[i], gens[i] + 1}) {
      ASSERT_OK_AND_ASSIGN(std::optional<InodeRecord> rec, store_->GetInode(ino, at));
      ASSERT_TRUE(rec.has_value());
      EXPECT_EQ(rec->size, 10 * (i + 1)) << "at " << at;
    }
  }
  ASSERT_OK_AND_ASSIGN(std::optional<InodeRecord> newest, store_->GetInode(ino, kLatest));
  EXPECT_EQ(newest->size, 50u);
  ASSERT_OK_AND_ASSIGN(std::optional<InodeRecord> unknown, store_->GetInode(ino + 2, kLatest));
  EXPECT_FALSE(unknown.has_value());
}

TEST_F(StoreTest, ListDirSkipsTombstonesAndNamesNotYetCreated) {
  const Generation g2 = CommitDirent(kRootIno, "a", DirentRecord{2, 8});
  const Generation g3 = CommitDirent(kRootIno, "b", DirentRecord{3, 8});
  const Generation g4 = CommitDirent(kRootIno, "a", DirentRecord{0, 0});
  const Generation g5 = CommitDirent(kRootIno, "a", DirentRecord{4, 4});

  using L = std::vector<std::pair<std::string, Ino>>;
  EXPECT_EQ(Listing(*store_, kRootIno, 1), L{});
  EXPECT_EQ(Listing(*store_, kRootIno, g2), (L{{"a", 2}}));
  EXPECT_EQ(Listing(*store_, kRootIno, g3), (L{{"a", 2}, {"b", 3}}));
  EXPECT_EQ(Listing(*store_, kRootIno, g4), (L{{"b", 3}}));
  EXPECT_EQ(Listing(*store_, kRootIno, g5), (L{{"a", 4}, {"b", 3}}));
  EXPECT_EQ(Listing(*store_, kRootIno, kLatest), (L{{"a", 4}, {"b", 3}}));

  ASSERT_OK_AND_ASSIGN(auto at4, store_->Lookup(kRootIno, "a", g4));
  EXPECT_FALSE(at4.has_value());
  ASSERT_OK_AND_ASSIGN(auto at3, store_->Lookup(kRootIno, "a", g3));
  EXPECT_EQ(at3, (DirentRecord{2, 8}));
  ASSERT_OK_AND_ASSIGN(auto at5, store_->Lookup(kRootIno, "a", kLatest));
  EXPECT_EQ(at5, (DirentRecord{4, 4}));
  ASSERT_OK_AND_ASSIGN(auto b_at2, store_->Lookup(kRootIno, "b", g2));
  EXPECT_FALSE(b_at2.has_value());
}

TEST_F(StoreTest, ListDirStopsWhenTheCallbackReturnsFalse) {
  Mutation m;
  for (const char* name : {"a", "b", "c"}) m.PutDirent(kRootIno, name, DirentRecord{2, 8});
  CommitOp(m, Op::kCreate, 2);
  std::vector<std::string> seen;
  ASSERT_OK(store_->ListDir(kRootIno, kLatest, [&](std::string_view name, const DirentRecord&) {
    seen.emplace_back(name);
    return seen.size() < 2;
  }));
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "b"}));
}

TEST_F(StoreTest, LookupDoesNotConfuseNamesThatArePrefixesOfEachOther) {
  Mutation m;
  m.PutDirent(kRootIno, "ab", DirentRecord{3, 8});
  m.PutDirent(kRootIno, std::string("a\x01", 2), DirentRecord{4, 8});
  CommitOp(m, Op::kCreate, 3);
  ASSERT_OK_AND_ASSIGN(auto a, store_->Lookup(kRootIno, "a", kLatest));
  EXPECT_FALSE(a.has_value());
  ASSERT_OK_AND_ASSIGN(auto abc, store_->Lookup(kRootIno, "abc", kLatest));
  EXPECT_FALSE(abc.has_value());
  ASSERT_OK_AND_ASSIGN(auto ab, store_->Lookup(kRootIno, "ab", kLatest));
  EXPECT_EQ(ab, (DirentRecord{3, 8}));
}

// A seeded random history over two directories and names chosen to stress
// key order (prefixes of each other, 0x01 and 0xff bytes), checked against a
// model at every generation.
TEST_F(StoreTest, EveryGenerationListsAndLooksUpExactlyItsTree) {
  const std::vector<std::string> names = {
      "a", std::string("a\x01", 2), "a\xff", "ab", "abc", "b", std::string("\x01", 1), "\xff",
      "..", "z"};
  const std::vector<Ino> dirs = {kRootIno, 50};
  using Tree = std::map<std::pair<Ino, std::string>, DirentRecord>;
  std::vector<Tree> model(2);  // model[g]: the tree at generation g (g >= 1).
  std::map<Ino, std::vector<std::pair<Generation, uint64_t>>> sizes;  // ino -> (g, size).
  std::mt19937_64 rng(42);
  Ino next = 100;
  for (int step = 0; step < 80; ++step) {
    Tree tree = model.back();
    Mutation m;
    const int changes = 1 + static_cast<int>(rng() % 3);
    const Generation g = store_->latest() + 1;
    for (int c = 0; c < changes; ++c) {
      const auto key = std::make_pair(dirs[rng() % dirs.size()], names[rng() % names.size()]);
      if (rng() % 3 == 0) {
        tree.erase(key);
        m.PutDirent(key.first, key.second, DirentRecord{0, 0});
      } else {
        const DirentRecord rec{next++, static_cast<uint8_t>(rng() % 2 ? 8 : 4)};
        tree[key] = rec;
        m.PutDirent(key.first, key.second, rec);
        m.PutInode(rec.child, FileRecord(g));
        sizes[rec.child].emplace_back(g, g);
      }
    }
    ASSERT_EQ(CommitOp(m, Op::kRename, 0), g);
    model.push_back(std::move(tree));
  }
  for (Generation g = 1; g < model.size(); ++g) {
    SCOPED_TRACE("generation " + std::to_string(g));
    for (Ino dir : dirs) {
      std::vector<std::pair<std::string, Ino>> want;
      for (const auto& [key, rec] : model[g])
        if (key.first == dir) want.emplace_back(key.second, rec.child);
      std::sort(want.begin(), want.end());  // std::string orders bytes as unsigned.
      EXPECT_EQ(Listing(*store_, dir, g), want);
      for (const std::string& name : names) {
        ASSERT_OK_AND_ASSIGN(std::optional<DirentRecord> got, store_->Lookup(dir, name, g));
        auto it = model[g].find({dir, name});
        EXPECT_EQ(got, it == model[g].end() ? std::nullopt : std::optional(it->second))
            << HexBytes(name);
      }
    }
  }
  for (const auto& [ino, versions] : sizes) {
    for (Generation g = 1; g < model.size(); ++g) {
      ASSERT_OK_AND_ASSIGN(std::optional<InodeRecord> rec, store_->GetInode(ino, g));
      std::optional<uint64_t> want;
      for (const auto& [vg, size] : versions)
        if (vg <= g) want = size;
      EXPECT_EQ(rec ? std::optional(rec->size) : std::nullopt, want) << ino << " at " << g;
    }
  }
}

TEST_F(StoreTest, ListDirKeepsDirectoriesApart) {
  Mutation m;
  m.PutDirent(255, "x", DirentRecord{10, 8});
  m.PutDirent(256, "y", DirentRecord{11, 8});
  m.PutDirent(257, "\xff", DirentRecord{12, 8});
  CommitOp(m, Op::kCreate, 10);
  using L = std::vector<std::pair<std::string, Ino>>;
  EXPECT_EQ(Listing(*store_, 255, kLatest), (L{{"x", 10}}));
  EXPECT_EQ(Listing(*store_, 256, kLatest), (L{{"y", 11}}));
  EXPECT_EQ(Listing(*store_, 257, kLatest), (L{{"\xff", 12}}));
  EXPECT_EQ(Listing(*store_, 258, kLatest), L{});
}

TEST_F(StoreTest, VersionsAreListedOldestFirst) {
  const Ino ino = store_->AllocateIno();
  std::vector<Generation> gens;
  for (uint64_t i = 1; i <= 3; ++i) {
    Mutation m;
    m.PutInode(ino, FileRecord(i));
    m.PutDirent(kRootIno, "f", DirentRecord{i == 2 ? 0 : ino, static_cast<uint8_t>(i == 2 ? 0 : 8)});
    gens.push_back(CommitOp(m, Op::kWrite, ino));
  }
  std::vector<std::pair<Generation, uint64_t>> inode_versions;
  ASSERT_OK(store_->InodeVersions(ino, [&](Generation g, const InodeRecord& r) {
    inode_versions.emplace_back(g, r.size);
    return true;
  }));
  EXPECT_EQ(inode_versions,
            (std::vector<std::pair<Generation, uint64_t>>{{gens[0], 1}, {gens[1], 2}, {gens[2], 3}}));
  std::vector<std::pair<Generation, Ino>> dirent_versions;
  ASSERT_OK(store_->DirentVersions(kRootIno, "f", [&](Generation g, const DirentRecord& r) {
    dirent_versions.emplace_back(g, r.child);
    return true;
  }));
  EXPECT_EQ(dirent_versions,
            (std::vector<std::pair<Generation, Ino>>{{gens[0], ino}, {gens[1], 0}, {gens[2], ino}}));
}

TEST_F(StoreTest, ContentOfManyExtentsIsSplitIntoPagesAndReadBack) {
  std::vector<Extent> extents;
  for (uint32_t i = 0; i < 2 * kExtentsPerPage + 10; ++i) {
    ChunkId id;
    id.bytes[0] = static_cast<uint8_t>(i);
    id.bytes[1] = static_cast<uint8_t>(i >> 8);
    extents.push_back(Extent{uint64_t{i} * 100 + (i % 7 == 0 ? 50 : 0), 40, 0, id});
  }
  const Ino ino = store_->AllocateIno();
  Mutation m;
  m.PutInode(ino, FileRecord(extents.back().end() + 5));
  m.PutContent(ino, extents, {});
  const Generation g = CommitOp(m, Op::kWrite, ino);
  EXPECT_EQ(m.inode(ino).content_gen, g);
  EXPECT_EQ(m.inode(ino).pages, 3u);
  ASSERT_OK_AND_ASSIGN(std::optional<InodeRecord> rec, store_->GetInode(ino, kLatest));
  EXPECT_EQ(rec->content_gen, g);
  EXPECT_EQ(rec->pages, 3u);
  ASSERT_OK_AND_ASSIGN(std::vector<Extent> got, store_->GetExtents(ino, *rec));
  EXPECT_EQ(got, extents);
}

TEST_F(StoreTest, CommitOfContentWithoutAnInodeRecordIsInvalidAndWritesNothing) {
  Mutation m;
  m.PutDirent(kRootIno, "a", DirentRecord{2, 8});
  m.PutContent(2, {}, {});
  LogRecord log;
  EXPECT_CODE(store_->Commit(m, log, {}), Code::kInvalid);
  EXPECT_EQ(store_->latest(), 1u);
  EXPECT_TRUE(Listing(*store_, kRootIno, kLatest).empty());
  EXPECT_EQ(CommitDirent(kRootIno, "b", DirentRecord{3, 8}), 2u);
}

// Names the dirent key cannot hold would make the whole directory unreadable.
TEST_F(StoreTest, CommitRefusesANameTheKeyFormatCannotHold) {
  for (const std::string& name : {std::string(), std::string("a\0b", 3), std::string("a/b")}) {
    Mutation m;
    m.PutDirent(kRootIno, name, DirentRecord{2, 8});
    LogRecord log;
    EXPECT_CODE(store_->Commit(m, log, {}), Code::kInvalid);
  }
  EXPECT_EQ(store_->latest(), 1u);
  EXPECT_TRUE(Listing(*store_, kRootIno, kLatest).empty());
}

TEST_F(StoreTest, ReadOnlyStoreRefusesCommit) {
  OpenOptions ro;
  ro.read_only = true;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> reader, Store::Open(path_, ro));
  Mutation m;
  m.PutDirent(kRootIno, "a", DirentRecord{2, 8});
  EXPECT_CODE(reader->Commit(m, LogRecord{}, {}), Code::kReadOnly);
}

TEST_F(StoreTest, AReaderRemovesTheTemporaryFoldersOfKilledReadersOnly) {
  // A pid that ran and is gone, as a reader's would be after SIGKILL.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  const std::string dead = "/tmp/snapfs-reader-" + std::to_string(child) + "-test01";
  const std::string alive = "/tmp/snapfs-reader-" + std::to_string(::getpid()) + "-test02";
  const std::string link = "/tmp/snapfs-reader-" + std::to_string(child) + "-test03";
  TempDir target;  // A link to it must not be followed into it.
  for (const std::string& d : {dead, alive}) {
    fsys::create_directories(d);
    WriteWholeFile(d + "/LOG", "info");
  }
  WriteWholeFile(target.path() + "/keep", "mine");
  fsys::create_directory_symlink(target.path(), link);
  {
    OpenOptions ro;
    ro.read_only = true;
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> reader, Store::Open(path_, ro));
  }
  EXPECT_FALSE(fsys::exists(dead));
  EXPECT_TRUE(fsys::exists(alive + "/LOG"));
  EXPECT_TRUE(fsys::is_symlink(link));
  EXPECT_EQ(ReadWholeFile(target.path() + "/keep"), "mine");
  std::error_code ec;
  for (const std::string& d : {dead, alive, link}) fsys::remove_all(d, ec);
}

// ---------------------------------------------------------------------------
// Time.

TEST_F(StoreTest, GenerationAtFindsTheNewestGenerationAtOrBeforeATime) {
  for (int i = 0; i < 12; ++i) {
    SleepMs(1);
    Mutation m;
    m.PutInode(2, FileRecord(static_cast<uint64_t>(i)));
    CommitOp(m, Op::kWrite, 2);
  }
  std::vector<int64_t> times = {0};  // times[g]
  for (Generation g = 1; g <= store_->latest(); ++g) {
    ASSERT_OK_AND_ASSIGN(LogRecord log, store_->GetLog(g));
    times.push_back(log.time_ns);
  }
  for (Generation g = 1; g < times.size(); ++g) {
    SCOPED_TRACE("generation " + std::to_string(g));
    ASSERT_LT(times[g - 1], times[g]);  // One ms apart.
    ASSERT_OK_AND_ASSIGN(Generation at, store_->GenerationAt(times[g]));
    EXPECT_EQ(at, g);
    if (g > 1) {
      ASSERT_OK_AND_ASSIGN(Generation just_before, store_->GenerationAt(times[g] - 1));
      EXPECT_EQ(just_before, g - 1);
      ASSERT_OK_AND_ASSIGN(Generation between, store_->GenerationAt((times[g - 1] + times[g]) / 2));
      EXPECT_EQ(between, g - 1);
    }
  }
  ASSERT_OK_AND_ASSIGN(Generation future, store_->GenerationAt(INT64_MAX));
  EXPECT_EQ(future, store_->latest());
}

TEST_F(StoreTest, GenerationAtBeforeTheFirstGenerationIsNotFound) {
  ASSERT_OK_AND_ASSIGN(LogRecord first, store_->GetLog(1));
  EXPECT_CODE(store_->GenerationAt(first.time_ns - 1), Code::kNotFound);
  EXPECT_CODE(store_->GenerationAt(INT64_MIN), Code::kNotFound);
  ASSERT_OK_AND_ASSIGN(Generation g, store_->GenerationAt(first.time_ns));
  EXPECT_EQ(g, 1u);
}

// ---------------------------------------------------------------------------
// States.

std::vector<State> AllStates(Store& store) {
  std::vector<State> out;
  Status st = store.ListStates(1, [&](const State& s) {
    out.push_back(s);
    return true;
  });
  EXPECT_TRUE(st.ok()) << st.ToString();
  return out;
}

TEST_F(StoreTest, CommitsWithinTheStateGapExtendOneState) {
  for (Ino ino : {2, 3, 2, 4}) {
    Mutation m;
    m.PutInode(ino, FileRecord(1));
    LogRecord log;
    log.op = Op::kWrite;
    log.ino = ino;
    log.bytes_written = 100;
    log.bytes_stored = 10;
    ASSERT_OK(store_->Commit(m, log, {}));
  }
  const std::vector<State> states = AllStates(*store_);
  ASSERT_EQ(states.size(), 1u);
  EXPECT_EQ(states[0].first_gen, 1u);
  EXPECT_EQ(states[0].last_gen, 5u);
  EXPECT_EQ(states[0].changes, 5u);        // init and four writes.
  EXPECT_EQ(states[0].files_changed, 3u);  // 2, 3 and 4.
  EXPECT_EQ(states[0].bytes_written, 400u);
  EXPECT_EQ(states[0].bytes_stored, 40u);
  ASSERT_OK_AND_ASSIGN(LogRecord last, store_->GetLog(5));
  EXPECT_EQ(states[0].end_ns, last.time_ns);
}

TEST_F(StoreTest, CommitAfterAQuietGapStartsANewState) {
  store_.reset();
  fsys::remove_all(path_);
  InitOptions init;
  init.state_gap_ns = 1;
  ASSERT_NO_FATAL_FAILURE(InitAndOpen(init));
  for (int i = 0; i < 3; ++i) {
    SleepMs(1);
    Mutation m;
    m.PutInode(2, FileRecord(1));
    CommitOp(m, Op::kWrite, 2);
  }
  const std::vector<State> states = AllStates(*store_);
  ASSERT_EQ(states.size(), 4u);
  for (Generation g = 1; g <= 4; ++g) {
    const State& s = states[g - 1];
    EXPECT_EQ(s.first_gen, g);
    EXPECT_EQ(s.last_gen, g);
    EXPECT_EQ(s.changes, 1u);
    ASSERT_OK_AND_ASSIGN(LogRecord log, store_->GetLog(g));
    EXPECT_EQ(s.end_ns, log.time_ns);
  }
  // ListStates starts at the state asked for.
  std::vector<Generation> from3;
  ASSERT_OK(store_->ListStates(3, [&](const State& s) {
    from3.push_back(s.first_gen);
    return true;
  }));
  EXPECT_EQ(from3, (std::vector<Generation>{3, 4}));
}

// A commit whose work began right after the previous change belongs to the
// same burst even if it lands after the gap; one that began after a quiet
// gap starts a new state at the time its work began.
TEST_F(StoreTest, ActivityStartDecidesWhichStateACommitJoins) {
  store_.reset();
  fsys::remove_all(path_);
  InitOptions init;
  init.state_gap_ns = 50'000'000;  // 50 ms.
  ASSERT_NO_FATAL_FAILURE(InitAndOpen(init));
  ASSERT_OK_AND_ASSIGN(LogRecord first, store_->GetLog(1));
  SleepMs(80);
  CommitOptions busy;
  busy.activity_start_ns = first.time_ns + 10'000'000;  // Began 10 ms after gen 1.
  Mutation m2;
  m2.PutInode(2, FileRecord(1));
  CommitOp(m2, Op::kWrite, 2, busy);
  ASSERT_EQ(AllStates(*store_).size(), 1u);

  SleepMs(80);
  CommitOptions quiet;
  quiet.activity_start_ns = NowNs() - 5'000'000;
  Mutation m3;
  m3.PutInode(3, FileRecord(1));
  const Generation g3 = CommitOp(m3, Op::kWrite, 3, quiet);
  const std::vector<State> states = AllStates(*store_);
  ASSERT_EQ(states.size(), 2u);
  EXPECT_EQ(states[0].last_gen, 2u);
  EXPECT_EQ(states[1].first_gen, g3);
  EXPECT_EQ(states[1].start_ns, quiet.activity_start_ns);
  EXPECT_EQ(states[1].files_changed, 1u);
}

// ---------------------------------------------------------------------------
// Readers and reopening.

TEST_F(StoreTest, ReadOnlyStoreSeesNewCommitsAfterCatchUp) {
  OpenOptions ro;
  ro.read_only = true;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> reader, Store::Open(path_, ro));
  EXPECT_TRUE(reader->read_only());
  EXPECT_EQ(reader->latest(), 1u);

  Mutation m;
  m.PutDirent(kRootIno, "a", DirentRecord{2, 8});
  m.PutInode(2, FileRecord(7));
  const Generation g = CommitOp(m, Op::kCreate, 2);
  EXPECT_EQ(reader->latest(), 1u);
  ASSERT_OK(reader->CatchUp());
  EXPECT_EQ(reader->latest(), g);
  EXPECT_EQ(reader->latest_time_ns(), store_->latest_time_ns());
  ASSERT_OK_AND_ASSIGN(auto entry, reader->Lookup(kRootIno, "a", kLatest));
  EXPECT_EQ(entry, (DirentRecord{2, 8}));
  ASSERT_OK_AND_ASSIGN(auto inode, reader->GetInode(2, kLatest));
  EXPECT_EQ(inode->size, 7u);
}

TEST_F(StoreTest, ReopeningKeepsEverything) {
  const Ino ino = store_->AllocateIno();
  const Ino unused = store_->AllocateIno();
  Mutation m;
  m.PutDirent(kRootIno, "a", DirentRecord{ino, 8});
  m.PutInode(ino, FileRecord(3));
  const Generation g = CommitOp(m, Op::kCreate, ino);
  const Generation g2 = CommitDirent(kRootIno, "a", DirentRecord{0, 0});
  const int64_t time = store_->latest_time_ns();
  const std::vector<State> states = AllStates(*store_);
  ASSERT_OK(store_->Sync());

  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_EQ(store_->latest(), g2);
  EXPECT_EQ(store_->latest_time_ns(), time);
  EXPECT_EQ(store_->next_ino(), unused + 1);  // Handed-out numbers are never reused.
  EXPECT_EQ(AllStates(*store_), states);
  ASSERT_OK_AND_ASSIGN(auto at_g, store_->Lookup(kRootIno, "a", g));
  EXPECT_EQ(at_g, (DirentRecord{ino, 8}));
  ASSERT_OK_AND_ASSIGN(auto now, store_->Lookup(kRootIno, "a", kLatest));
  EXPECT_FALSE(now.has_value());
  ASSERT_OK_AND_ASSIGN(auto inode, store_->GetInode(ino, kLatest));
  EXPECT_EQ(inode->size, 3u);
  // Commits continue where they left off.
  EXPECT_EQ(CommitDirent(kRootIno, "b", DirentRecord{ino, 8}), g2 + 1);
  ASSERT_OK_AND_ASSIGN(LogRecord log, store_->GetLog(g2 + 1));
  EXPECT_GE(log.time_ns, time);
}

// ---------------------------------------------------------------------------
// Damaged metadata: Corruption naming the key; the rest stays readable.

TEST_F(StoreTest, DamagedInodeRecordIsCorruptionNamingTheKeyAndOthersStayReadable) {
  Mutation m;
  m.PutInode(2, FileRecord(2));
  m.PutInode(3, FileRecord(3));
  CommitOp(m, Op::kCreate, 2);
  const Generation g = store_->latest();
  store_.reset();
  {
    RawDb db(path_, /*read_only=*/false);
    std::string value = db.Get(kCfInodes, keys::Inode(2, g));
    value.pop_back();
    db.Put(kCfInodes, keys::Inode(2, g), value);
  }
  ASSERT_NO_FATAL_FAILURE(Reopen());
  Result<std::optional<InodeRecord>> bad = store_->GetInode(2, kLatest);
  ASSERT_EQ(bad.status().code(), Code::kCorruption) << bad.status().ToString();
  EXPECT_NE(bad.status().message().find(HexBytes(keys::Inode(2, g))), std::string::npos)
      << bad.status().message();
  ASSERT_OK_AND_ASSIGN(std::optional<InodeRecord> good, store_->GetInode(3, kLatest));
  EXPECT_EQ(good->size, 3u);
}

TEST_F(StoreTest, DamagedDirentRecordMakesListingAndLookupCorruption) {
  Mutation m;
  m.PutDirent(kRootIno, "a", DirentRecord{2, 8});
  m.PutDirent(50, "b", DirentRecord{3, 8});
  const Generation g = CommitOp(m, Op::kCreate, 2);
  store_.reset();
  {
    RawDb db(path_, /*read_only=*/false);
    db.Put(kCfDirents, keys::Dirent(kRootIno, "a", g), Unhex("02 0000000000000002 08"));
  }
  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_CODE(store_->Lookup(kRootIno, "a", kLatest), Code::kCorruption);
  EXPECT_CODE(store_->ListDir(kRootIno, kLatest, [](std::string_view, const DirentRecord&) {
    return true;
  }), Code::kCorruption);
  using L = std::vector<std::pair<std::string, Ino>>;
  EXPECT_EQ(Listing(*store_, 50, kLatest), (L{{"b", 3}}));
}

TEST_F(StoreTest, MissingExtentPageIsCorruption) {
  std::vector<Extent> extents(kExtentsPerPage + 1, Extent{0, 1, 0, ChunkId{}});
  for (size_t i = 0; i < extents.size(); ++i) extents[i].offset = i;
  Mutation m;
  m.PutInode(2, FileRecord(extents.size()));
  m.PutContent(2, extents, {});
  const Generation g = CommitOp(m, Op::kWrite, 2);
  store_.reset();
  {
    RawDb db(path_, /*read_only=*/false);
    db.Delete(kCfExtents, keys::ExtentPage(2, g, 1));
  }
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ASSERT_OK_AND_ASSIGN(std::optional<InodeRecord> rec, store_->GetInode(2, kLatest));
  EXPECT_CODE(store_->GetExtents(2, *rec), Code::kCorruption);
}

TEST_F(StoreTest, ExtentsEndingPastTheSizeAreCorruption) {
  Mutation m;
  m.PutInode(2, FileRecord(10));
  m.PutContent(2, {Extent{5, 10, 0, ChunkId{}}}, {});
  CommitOp(m, Op::kWrite, 2);
  ASSERT_OK_AND_ASSIGN(std::optional<InodeRecord> rec, store_->GetInode(2, kLatest));
  EXPECT_CODE(store_->GetExtents(2, *rec), Code::kCorruption);
}

TEST_F(StoreTest, MetaOfAnotherFormatIsVersion) {
  store_.reset();
  {
    RawDb db(path_, /*read_only=*/false);
    db.Put(kCfMeta, "format", Unhex("00000003"));
  }
  EXPECT_CODE(Store::Open(path_, {}), Code::kVersion);
}

// A store of format 1 (before commit records) opens, and a read-write open
// upgrades it: meta key, replay point and marker.
TEST_F(StoreTest, AFormat1StoreIsUpgradedByAReadWriteOpen) {
  Mutation m;
  m.PutInode(2, FileRecord(5));
  CommitOp(m, Op::kCreate, 2);
  store_.reset();
  {
    RawDb db(path_, /*read_only=*/false);
    db.Put(kCfMeta, "format", Unhex("00000001"));
    db.Delete(kCfMeta, "replay_from");
  }
  fsys::remove(path_ + "/SNAPFS");
  WriteWholeFile(path_ + "/SNAPFS", "snapfs store\nformat 1\n");
  OpenOptions ro;
  ro.read_only = true;
  {
    Result<std::unique_ptr<Store>> reader = Store::Open(path_, ro);  // Read as it is.
    ASSERT_OK(reader.status());
  }
  EXPECT_EQ(ReadWholeFile(path_ + "/SNAPFS"), "snapfs store\nformat 1\n");
  ASSERT_OK_AND_ASSIGN(store_, Store::Open(path_, {}));
  EXPECT_EQ(ReadWholeFile(path_ + "/SNAPFS"), "snapfs store\nformat 2\n");
  EXPECT_FALSE(fsys::exists(path_ + "/SNAPFS.new"));
  ASSERT_OK_AND_ASSIGN(std::optional<InodeRecord> rec, store_->GetInode(2, kLatest));
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->size, 5u);
  store_.reset();
  RawDb db(path_, /*read_only=*/true);
  EXPECT_EQ(db.Get(kCfMeta, "format"), Unhex("00000002"));
  EXPECT_EQ(db.Get(kCfMeta, "replay_from").size(), 4u);
}

// The log's write of a synced commit is not synced: only the packs are,
// with the commit's record in them. A crash of the machine that loses the
// log's tail loses nothing the next open does not replay.
TEST_F(StoreTest, ASyncedCommitTheLogLostIsReplayedFromThePack) {
  Mutation a;
  a.PutInode(2, FileRecord(5));
  CommitOp(a, Op::kCreate, 2);  // Unsynced: its record reaches the disk with the next sync.
  store_testing::SetLoseSyncedLogWrites(true);
  Mutation b;
  b.PutInode(3, FileRecord(7));
  const Generation g = CommitOp(b, Op::kCreate, 3, CommitOptions{.sync = true});
  store_.reset();
  store_testing::SetLoseSyncedLogWrites(false);
  {
    // What the log holds: not g.
    RawDb db(path_, /*read_only=*/true);
    EXPECT_FALSE(db.Has(kCfLog, keys::Log(g)));
  }
  ASSERT_OK_AND_ASSIGN(store_, Store::Open(path_, {}));
  EXPECT_EQ(store_->replayed(), 1u);  // g; the commit before it reached the log.
  EXPECT_EQ(store_->replay_note(), "");
  EXPECT_EQ(store_->latest(), g);
  ASSERT_OK_AND_ASSIGN(std::optional<InodeRecord> r2, store_->GetInode(2, kLatest));
  ASSERT_OK_AND_ASSIGN(std::optional<InodeRecord> r3, store_->GetInode(3, kLatest));
  ASSERT_TRUE(r2.has_value() && r3.has_value());
  EXPECT_EQ(r2->size, 5u);
  EXPECT_EQ(r3->size, 7u);
  // The next commit follows it; a reopen replays nothing again.
  Mutation c;
  c.PutInode(4, FileRecord(9));
  EXPECT_EQ(CommitOp(c, Op::kCreate, 4), g + 1);
  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_EQ(store_->replayed(), 0u);
  EXPECT_EQ(store_->latest(), g + 1);
}

// A record cut short by the crash (the sync never finished) is not applied:
// the store is as of the commit before, and goes on from there.
TEST_F(StoreTest, ACommitRecordCutShortIsNotReplayed) {
  Mutation a;
  a.PutInode(2, FileRecord(5));
  const Generation before = CommitOp(a, Op::kCreate, 2, CommitOptions{.sync = true});
  store_testing::SetLoseSyncedLogWrites(true);
  Mutation b;
  b.PutInode(3, FileRecord(7));
  const Generation g = CommitOp(b, Op::kCreate, 3, CommitOptions{.sync = true});
  const std::string pack = PackPathOf(store_->chunks().current_pack());
  store_.reset();
  store_testing::SetLoseSyncedLogWrites(false);
  fsys::resize_file(pack, fsys::file_size(pack) - 3);
  ASSERT_OK_AND_ASSIGN(store_, Store::Open(path_, {}));
  EXPECT_EQ(store_->replayed(), 0u);
  EXPECT_EQ(store_->latest(), before);
  ASSERT_OK_AND_ASSIGN(std::optional<InodeRecord> r3, store_->GetInode(3, kLatest));
  EXPECT_FALSE(r3.has_value());
  Mutation c;
  c.PutInode(4, FileRecord(9));
  EXPECT_EQ(CommitOp(c, Op::kCreate, 4), g);
  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_EQ(store_->latest(), g);
  ASSERT_OK_AND_ASSIGN(std::optional<InodeRecord> r4, store_->GetInode(4, kLatest));
  EXPECT_TRUE(r4.has_value());
}

TEST_F(StoreTest, MissingSecretIsCorruption) {
  store_.reset();
  {
    RawDb db(path_, /*read_only=*/false);
    db.Delete(kCfMeta, "secret");
  }
  Result<std::unique_ptr<Store>> s = Store::Open(path_, {});
  ASSERT_EQ(s.status().code(), Code::kCorruption) << s.status().ToString();
  EXPECT_NE(s.status().message().find("secret"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Concurrency.

TEST_F(StoreTest, ConcurrentCommitsGetDistinctConsecutiveGenerations) {
  constexpr int kThreads = 4, kEach = 40;
  std::vector<std::vector<Generation>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const Ino ino = store_->AllocateIno();
        Mutation m;
        m.PutInode(ino, FileRecord(static_cast<uint64_t>(t)));
        m.PutDirent(kRootIno, "f" + std::to_string(ino), DirentRecord{ino, 8});
        got[t].push_back(CommitOp(m, Op::kCreate, ino));
      }
    });
  }
  for (auto& t : threads) t.join();
  std::vector<Generation> all;
  for (const auto& v : got) {
    EXPECT_TRUE(std::is_sorted(v.begin(), v.end()));
    all.insert(all.end(), v.begin(), v.end());
  }
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], 2 + i);
  EXPECT_EQ(store_->latest(), 1u + kThreads * kEach);
  int64_t last = 0;
  for (Generation g = 1; g <= store_->latest(); ++g) {
    ASSERT_OK_AND_ASSIGN(LogRecord log, store_->GetLog(g));
    EXPECT_GE(log.time_ns, last);
    last = log.time_ns;
  }
  EXPECT_EQ(Listing(*store_, kRootIno, kLatest).size(), static_cast<size_t>(kThreads * kEach));
  EXPECT_EQ(store_->next_ino(), 2u + kThreads * kEach);
  const std::vector<State> states = AllStates(*store_);
  ASSERT_EQ(states.size(), 1u);
  EXPECT_EQ(states[0].changes, 1u + kThreads * kEach);
  EXPECT_EQ(states[0].files_changed, static_cast<uint64_t>(kThreads * kEach));
}

}  // namespace
}  // namespace snapfs::store
