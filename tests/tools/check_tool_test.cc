// snapfs-check, run as a program on a store that stays open read-write (as
// under a running daemon): a clean store exits 0; damaged chunk bytes exit 5
// naming the chunk and exactly the states and paths that show it; a store
// that cannot be read exits 3; bad arguments exit 2.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "store/pack_file.h"
#include "tests/tools/tool_test_util.h"

namespace snapfs::tools::testing {
namespace {

using nlohmann::json;

class CheckToolTest : public DumpStoryTest {
 protected:
  RunResult Check(const std::vector<std::string>& args) {
    std::vector<std::string> all{path_};
    all.insert(all.end(), args.begin(), args.end());
    return RunProgram(dir_.path(), SNAPFS_CHECK_BINARY, all);
  }
  // Flips a payload byte of the first chunk of the good dump (state A's
  // /dump/site.sql, overwritten in state B); returns the chunk.
  store::ChunkId DamageGoodDump() {
    Result<std::optional<store::InodeRecord>> rec = store_->GetInode(good_, a_.last_gen);
    EXPECT_TRUE(rec.ok() && rec->has_value());
    Result<std::vector<store::Extent>> extents = store_->GetExtents(good_, **rec);
    EXPECT_TRUE(extents.ok() && !extents->empty());
    const store::ChunkId id = (*extents)[0].id;
    Result<std::optional<store::ChunkLocation>> loc = store_->chunks().Locate(id);
    EXPECT_TRUE(loc.ok() && loc->has_value());
    loc_ = **loc;
    store::testing::XorFileByte(PackPathOf(loc_.pack),
                                loc_.offset + store::kRecordHeaderSize + 1000);
    return id;
  }
  store::ChunkLocation loc_;
};

TEST_F(CheckToolTest, CleanStoreExitsZeroAndSaysSo) {
  RunResult r = Check({});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(Contains(r.out, "(full check): 4 states")) << r.out;
  EXPECT_TRUE(Contains(r.out, "no damage found")) << r.out;
  EXPECT_EQ(r.err, "") << "no progress line when stderr is not a terminal";
  RunResult quick = Check({"--quick"});
  EXPECT_EQ(quick.exit_code, 0) << quick.out << quick.err;
  EXPECT_TRUE(Contains(quick.out, "(quick check)")) << quick.out;
}

TEST_F(CheckToolTest, DamagedChunkExitsFiveNamingTheChunkAndExactlyTheStateThatShowsIt) {
  const store::ChunkId bad = DamageGoodDump();
  RunResult r = Check({});
  EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
  EXPECT_TRUE(Contains(r.out, "damaged chunk " + bad.Hex() + " (pack " + std::to_string(loc_.pack) +
                                  " offset " + std::to_string(loc_.offset) +
                                  "): payload checksum mismatch"))
      << r.out;
  std::vector<std::string> rows;
  bool in_table = false;
  for (const std::string& line : r.lines()) {
    if (line.starts_with("STATE")) in_table = true;
    else if (line.starts_with("DAMAGE FOUND")) in_table = false;
    else if (in_table) rows.push_back(line);
  }
  ASSERT_EQ(rows.size(), 1u) << r.out;
  EXPECT_TRUE(rows[0].starts_with(Id(a_) + " ")) << rows[0];
  EXPECT_TRUE(Contains(rows[0], " /dump/site.sql  (inode " + std::to_string(good_))) << rows[0];
  EXPECT_TRUE(Contains(r.out, "DAMAGE FOUND: 1 damaged chunk, 0 metadata problems; 1 path in 1 state "
                              "affected\n"))
      << r.out;

  RunResult j = Check({"--json"});
  EXPECT_EQ(j.exit_code, 5) << j.err;
  const json report = json::parse(j.out);
  EXPECT_EQ(report["clean"], false);
  ASSERT_EQ(report["damaged_chunks"].size(), 1u);
  EXPECT_EQ(report["damaged_chunks"][0]["id"], bad.Hex());
  EXPECT_EQ(report["damaged_chunks"][0]["pack"], loc_.pack);
  EXPECT_EQ(report["damaged_chunks"][0]["offset"], loc_.offset);
  EXPECT_EQ(report["affected_states"], json::array({Id(a_)}));
  EXPECT_EQ(report["affected_paths"], json::array({"/dump/site.sql"}));
  EXPECT_EQ(report["live_affected"], false);

  // --quick does not read chunk bytes.
  EXPECT_EQ(Check({"--quick"}).exit_code, 0);
}

TEST_F(CheckToolTest, TruncatedPackIsFoundByTheQuickCheckToo) {
  DamageGoodDump();
  // Everything from the good dump's first chunk on is cut off.
  ASSERT_EQ(::truncate(PackPathOf(loc_.pack).c_str(), static_cast<off_t>(loc_.offset + 10)), 0);
  RunResult r = Check({"--quick"});
  EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
  EXPECT_TRUE(Contains(r.out, "pack is truncated")) << r.out;
  EXPECT_TRUE(Contains(r.out, "live ")) << "the broken dump written after it is lost too\n" << r.out;
}

TEST_F(CheckToolTest, ADamagedDatabaseFileExitsThreeWithoutAReport) {
  vfs_.reset();
  store_.reset();  // Flushes the memtables into table files.
  bool flipped = false;
  for (const auto& e : std::filesystem::directory_iterator(path_ + "/db")) {
    if (e.path().extension() != ".sst") continue;
    // A byte early in the first data block, in every table file.
    store::testing::XorFileByte(e.path(), 20);
    flipped = true;
  }
  ASSERT_TRUE(flipped);
  RunResult r = Check({});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_TRUE(r.err.starts_with("snapfs-check: ")) << r.err;
  EXPECT_TRUE(Contains(r.err, "orruption")) << r.err;
  EXPECT_EQ(r.out, "") << "no report from a database that cannot be read";
}

TEST_F(CheckToolTest, MissingStoreFileAndBadArgumentsHaveTheirExitCodes) {
  RunResult missing = RunProgram(dir_.path(), SNAPFS_CHECK_BINARY, {dir_.path() + "/nothing"});
  EXPECT_EQ(missing.exit_code, 3) << missing.err;
  EXPECT_TRUE(Contains(missing.err, "snapfs-check: cannot open store: no store at")) << missing.err;
  store::testing::WriteWholeFile(dir_.path() + "/file", "x");
  RunResult file = RunProgram(dir_.path(), SNAPFS_CHECK_BINARY, {dir_.path() + "/file"});
  EXPECT_EQ(file.exit_code, 3) << file.err;
  EXPECT_EQ(Check({"--bogus"}).exit_code, 2);
  EXPECT_EQ(RunProgram(dir_.path(), SNAPFS_CHECK_BINARY, {}).exit_code, 2);
  RunResult help = RunProgram(dir_.path(), SNAPFS_CHECK_BINARY, {"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_TRUE(Contains(help.out, "5 damage found")) << help.out;
}

}  // namespace
}  // namespace snapfs::tools::testing
