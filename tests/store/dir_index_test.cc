// The indexes that keep listings and lookups by time independent of the
// history's length (docs/format.md, "Indexes"): directory listings at every
// generation must equal a model of the tree, through snapshots, restarts,
// readers, and in a store made before the indexes existed.
#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "store/key_format.h"
#include "store/store.h"
#include "tests/store/test_util.h"

namespace snapfs::store {
namespace {

using testing::Listing;
using testing::StoreTestBase;
using Dir = std::map<std::string, Ino>;


std::vector<std::pair<std::string, Ino>> AsListing(const Dir& dir) {
  return {dir.begin(), dir.end()};
}

class DirIndexTest : public StoreTestBase {
 protected:
  static constexpr Ino kDirs[] = {kRootIno, 100, 101};

  // Random creates, replacements and deletions in three directories, in the
  // pattern of dated dumps (new names) and of fixed names rewritten; after
  // each generation the model of every directory is recorded.
  void MakeHistory(int generations, uint64_t seed) {
    std::mt19937_64 rng(seed);
    for (int i = 0; i < generations; ++i) {
      Mutation m;
      const int puts = 1 + static_cast<int>(rng() % 3);
      for (int p = 0; p < puts; ++p) {
        const Ino parent = kDirs[rng() % 3];
        Dir& dir = model_[parent];
        std::string name;
        if (rng() % 2 == 0 || dir.empty())
          name = "dump-" + std::to_string(next_name_++) + ".sql";  // A dated name.
        else if (rng() % 4 == 0)
          name = "fixed-" + std::to_string(rng() % 5);
        else
          name = std::next(dir.begin(), static_cast<long>(rng() % dir.size()))->first;
        const bool remove = dir.count(name) && rng() % 3 != 0;
        DirentRecord rec = remove ? DirentRecord{0, 0} : DirentRecord{next_ino_++, 8};
        m.PutDirent(parent, name, rec);
        if (remove) dir.erase(name);
        else dir[name] = rec.child;
      }
      const Generation g = CommitOp(m, Op::kCreate, 2);
      ASSERT_NE(g, 0u);
      history_[g] = model_;
      if (i == generations / 2) {
        ASSERT_NO_FATAL_FAILURE(Reopen());  // Counters start again.
      }
    }
  }

  void ExpectListingsMatch(Store& store) {
    for (const auto& [g, dirs] : history_) {
      for (Ino parent : kDirs) {
        auto want = dirs.count(parent) ? AsListing(dirs.at(parent))
                                       : std::vector<std::pair<std::string, Ino>>{};
        ASSERT_EQ(Listing(store, parent, g), want) << "directory " << parent << " at g" << g;
      }
    }
    for (Ino parent : kDirs)
      ASSERT_EQ(Listing(store, parent, kLatest), AsListing(model_[parent]));
  }

  std::map<Ino, Dir> model_;
  std::map<Generation, std::map<Ino, Dir>> history_;
  int next_name_ = 0;
  Ino next_ino_ = 1000;
};

TEST_F(DirIndexTest, ListingsAtEveryGenerationMatchTheModel) {
  ASSERT_NO_FATAL_FAILURE(MakeHistory(1500, 7));
  ASSERT_NO_FATAL_FAILURE(ExpectListingsMatch(*store_));
}

TEST_F(DirIndexTest, AReaderListsTheSameAsTheWriter) {
  ASSERT_NO_FATAL_FAILURE(MakeHistory(400, 11));
  OpenOptions ro;
  ro.read_only = true;
  ASSERT_OK_AND_ASSIGN(auto reader, Store::Open(path_, ro));
  ASSERT_NO_FATAL_FAILURE(ExpectListingsMatch(*reader));
}

TEST_F(DirIndexTest, GenerationAtUsesTheTimeOfEachGeneration) {
  ASSERT_NO_FATAL_FAILURE(MakeHistory(50, 3));
  for (Generation g = 1; g <= store_->latest(); ++g) {
    ASSERT_OK_AND_ASSIGN(LogRecord rec, store_->GetLog(g));
    ASSERT_OK_AND_ASSIGN(Generation found, store_->GenerationAt(rec.time_ns));
    // The newest generation with that time (several may share a nanosecond).
    ASSERT_GE(found, g);
    ASSERT_OK_AND_ASSIGN(LogRecord found_rec, store_->GetLog(found));
    EXPECT_EQ(found_rec.time_ns, rec.time_ns);
    if (found < store_->latest()) {
      ASSERT_OK_AND_ASSIGN(LogRecord next, store_->GetLog(found + 1));
      EXPECT_GT(next.time_ns, rec.time_ns);
    }
  }
  ASSERT_OK_AND_ASSIGN(LogRecord first, store_->GetLog(1));
  EXPECT_CODE(store_->GenerationAt(first.time_ns - 1), Code::kNotFound);
}

// A store made before the index families existed: readers list it without
// them, and the first read-write open builds them.
TEST_F(DirIndexTest, AStoreWithoutIndexesIsReadAndThenIndexed) {
  ASSERT_NO_FATAL_FAILURE(MakeHistory(300, 5));
  store_.reset();
  {
    rocksdb::DBOptions dbo;
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(dbo, path_ + "/db", &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> descs;
    for (const auto& n : names) descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(dbo, path_ + "/db", descs, &handles, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    for (auto* h : handles) {
      if (h->GetName() == kCfTimes || h->GetName() == kCfDirLog || h->GetName() == kCfDirSnaps) {
        ASSERT_TRUE(db->DropColumnFamily(h).ok());
      }
    }
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), handles[0], "indexes").ok());
    for (auto* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
  }
  OpenOptions ro;
  ro.read_only = true;
  {
    ASSERT_OK_AND_ASSIGN(auto reader, Store::Open(path_, ro));
    ASSERT_NO_FATAL_FAILURE(ExpectListingsMatch(*reader));
  }
  ASSERT_NO_FATAL_FAILURE(Reopen());  // Builds the indexes.
  ASSERT_NO_FATAL_FAILURE(ExpectListingsMatch(*store_));
  ASSERT_NO_FATAL_FAILURE(MakeHistory(200, 6));  // And keeps them up to date.
  ASSERT_NO_FATAL_FAILURE(ExpectListingsMatch(*store_));
}

}  // namespace
}  // namespace snapfs::store
