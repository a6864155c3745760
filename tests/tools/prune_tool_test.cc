// snapfs-prune and snapfs-hold, run as programs on stores written through the
// Vfs and then closed (an unmounted store: the tools open it themselves):
// --dry-run output, what a prune really drops, holds, the minimum retention,
// the guard flag of snapfs-ls, and the exit codes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "tests/tools/tool_test_util.h"

namespace snapfs::tools::testing {
namespace {

using nlohmann::json;

class PruneToolTest : public ToolTestBase {
 protected:
  // Three runs that rewrite one file with the same size (no shrink), then
  // the store is closed.
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(ToolTestBase::SetUp());
    for (int run = 0; run < 3; ++run) {
      Quiet();
      const std::string bytes = store::testing::SeededBytes(50000, run);
      if (run == 0) file_ = Write(kRootIno, "site.sql", bytes);
      else ASSERT_NO_FATAL_FAILURE(Overwrite(file_, bytes));
      runs_.push_back(StateEndingAt(latest()));
    }
    Close();
  }
  void Close() {
    vfs_.reset();
    store_.reset();
  }
  RunResult Prune(const std::vector<std::string>& args) {
    std::vector<std::string> all{path_};
    all.insert(all.end(), args.begin(), args.end());
    return RunProgram(dir_.path(), SNAPFS_PRUNE_BINARY, all);
  }
  RunResult Hold(const std::vector<std::string>& args) {
    std::vector<std::string> all{path_};
    all.insert(all.end(), args.begin(), args.end());
    return RunProgram(dir_.path(), SNAPFS_HOLD_BINARY, all);
  }
  std::vector<std::string> StateIds() {
    RunResult r = Ls({"--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> ids;
    for (const json& row : json::parse(r.out)) ids.push_back(row["id"]);
    return ids;
  }

  Ino file_ = 0;
  std::vector<store::State> runs_;
};

TEST_F(PruneToolTest, DryRunSaysWhatGoesAndWhyAndChangesNothing) {
  RunResult r = Prune({"--keep-last", "2", "--dry-run"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> lines = r.lines();
  ASSERT_EQ(lines.size(), 6u) << r.out;
  EXPECT_TRUE(lines[0].starts_with("STATE")) << lines[0];
  EXPECT_TRUE(lines[1].starts_with("s1 ")) << lines[1];
  EXPECT_TRUE(Contains(lines[1], " drop")) << lines[1];
  EXPECT_TRUE(lines[2].starts_with(Id(runs_[0]) + " ")) << lines[2];
  EXPECT_TRUE(Contains(lines[2], " drop")) << lines[2];
  EXPECT_TRUE(Contains(lines[3], " keep   last 2")) << lines[3];
  EXPECT_TRUE(Contains(lines[4], " keep   newest state; last 2")) << lines[4];
  EXPECT_TRUE(lines[5].starts_with("would drop 2 of 4 states")) << lines[5];
  EXPECT_TRUE(Contains(lines[5], "nothing was changed")) << lines[5];
  EXPECT_EQ(StateIds().size(), 4u);
}

TEST_F(PruneToolTest, PruneDropsTheStatesNoRuleKeepsAndTheRestStaysReadable) {
  RunResult r = Prune({"--keep-last", "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json out = json::parse(r.out);
  EXPECT_FALSE(out["dry_run"]);
  EXPECT_FALSE(out["via_daemon"]);
  EXPECT_EQ(out["dropped"], 3);
  EXPECT_TRUE(out.contains("gc")) << r.out;
  EXPECT_EQ(StateIds(), std::vector<std::string>{Id(runs_[2])});
  // The kept state reads back exactly.
  RunResult at = Ls({"--at", Id(runs_[2]), "/site.sql", "--json"});
  ASSERT_EQ(at.exit_code, 0) << at.err;
  EXPECT_EQ(json::parse(at.out)["entries"][0]["size"], 50000);
  // Nothing left to drop: exit 0 all the same.
  r = Prune({"--keep-last", "1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "dropped 0 of 1 states")) << r.out;
}

TEST_F(PruneToolTest, UsageErrorsAreExit2AndChangeNothing) {
  RunResult r = Prune({});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "snapfs-prune: no rule: give at least one of")) << r.err;
  EXPECT_EQ(Prune({"--keep-last", "0"}).exit_code, 2);
  EXPECT_EQ(Prune({"--keep-daily", "-3"}).exit_code, 2);
  r = Prune({"--keep-within", "3 days"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "--keep-within")) << r.err;
  EXPECT_EQ(Hold({"not-a-when"}).exit_code, 2);
  EXPECT_EQ(Hold({"s1", "--until", "tomorrow"}).exit_code, 2);
  EXPECT_EQ(Hold({"--min-retention", "x"}).exit_code, 2);
  EXPECT_EQ(Hold({}).exit_code, 2);
  EXPECT_EQ(StateIds().size(), 4u);
}

TEST_F(PruneToolTest, AMissingStoreIsExit3AndAStoreInUseToo) {
  RunResult r = RunProgram(dir_.path(), SNAPFS_PRUNE_BINARY,
                           {dir_.path() + "/nothing", "--keep-last", "1"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_TRUE(Contains(r.err, "snapfs-prune: cannot open store")) << r.err;
  ASSERT_NO_FATAL_FAILURE(Reopen());  // Open read-write, as a daemon without socket would.
  r = Prune({"--keep-last", "1"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_TRUE(Contains(r.err, "in use")) << r.err;
}

TEST_F(PruneToolTest, AHeldStateSurvivesPruneUntilReleased) {
  RunResult r = Hold({Id(runs_[0]), "--reason", "before the upgrade"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "hold 1 on " + Id(runs_[0]) + ": active\n");
  // snapfs-ls marks it.
  RunResult ls = Ls({"--json"});
  const json rows = json::parse(ls.out);
  EXPECT_TRUE(rows[1]["held"]) << ls.out;
  EXPECT_EQ(rows[1]["holds"], json::array({1}));
  EXPECT_FALSE(rows[2]["held"]);
  EXPECT_TRUE(Contains(Ls({}).lines()[2], " held")) << Ls({}).out;

  r = Prune({"--keep-last", "1", "--dry-run"});
  EXPECT_TRUE(Contains(r.lines()[2], "keep   held (hold 1: before the upgrade)")) << r.out;
  r = Prune({"--keep-last", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(StateIds(), (std::vector<std::string>{Id(runs_[0]), Id(runs_[2])}));

  r = Hold({"--list"});
  EXPECT_TRUE(Contains(r.out, "before the upgrade")) << r.out;
  EXPECT_EQ(Hold({"--release", "1"}).exit_code, 0);
  r = Hold({"--release", "1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "already released")) << r.err;
  EXPECT_EQ(Hold({"--release", "7"}).exit_code, 1);
  EXPECT_FALSE(Contains(Hold({"--list"}).out, "before the upgrade"));
  EXPECT_TRUE(Contains(Hold({"--list", "--all"}).out, "released"));
  r = Prune({"--keep-last", "1"});
  EXPECT_EQ(StateIds(), std::vector<std::string>{Id(runs_[2])});
}

TEST_F(PruneToolTest, TheMinimumRetentionCanOnlyBeRaised) {
  EXPECT_EQ(Hold({"--min-retention", "1d"}).exit_code, 0);
  RunResult r = Hold({"--min-retention", "1h"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "the minimum retention is 1d and is never lowered")) << r.err;
  // Everything is younger than a day: nothing goes.
  r = Prune({"--keep-last", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "younger than the minimum retention (1d)")) << r.out;
  EXPECT_EQ(StateIds().size(), 4u);
}

TEST_F(DumpStoryTest, SnapfsLsFlagsTheStateBeforeTheShrinkingRun) {
  // B replaced the 300000-byte dump with 6 bytes: A is flagged; C's start
  // closed B, so the store's guard also holds A.
  RunResult r = Ls({"--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json rows = json::parse(r.out);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_TRUE(rows[1]["guard"]) << r.out;
  EXPECT_TRUE(rows[1]["held"]) << r.out;
  EXPECT_EQ(rows[1]["tree_bytes"], kGoodSize + kUsers.size());
  EXPECT_FALSE(rows[0]["guard"]);
  EXPECT_TRUE(Contains(Ls({}).lines()[2], "held,guard")) << Ls({}).out;
}

}  // namespace
}  // namespace snapfs::tools::testing
