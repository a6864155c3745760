// snapfs-diff, run as a program on a store that stays open read-write:
// added, removed, modified and renamed entries between two states, a PATH
// limit, JSON, and the exit codes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <string>

#include "tests/tools/tool_test_util.h"

namespace snapfs::tools::testing {
namespace {

using nlohmann::json;

TEST_F(DumpStoryTest, DiffListsAddedRemovedModifiedAndRenamed) {
  RunResult r = Diff({Id(a_), Id(b_)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "M /dump/old/ (mode 0755 -> 0700)\n"
            "R /dump/site.sql -> /dump/old/site.sql.1\n"
            "M /dump/old/site.sql.1 (300000 -> 100 bytes)\n"
            "+ /dump/site.sql (6 bytes)\n"
            "- /dump/users.csv (14 bytes)\n");
  EXPECT_EQ(r.err, "");
}

TEST_F(DumpStoryTest, DiffTheOtherWayRoundIsTheInverse) {
  RunResult r = Diff({Id(b_), Id(a_)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "M /dump/old/ (mode 0700 -> 0755)\n"
            "- /dump/site.sql (6 bytes)\n"
            "R /dump/old/site.sql.1 -> /dump/site.sql\n"
            "M /dump/site.sql (100 -> 300000 bytes)\n"
            "+ /dump/users.csv (14 bytes)\n");
}

TEST_F(DumpStoryTest, DiffShowsADeletedFileAsRemoved) {
  RunResult r = Diff({Id(b_), Id(c_)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "- /dump/old/site.sql.1 (100 bytes)\n");
}

TEST_F(DumpStoryTest, DiffOfAPathComparesOnlyBelowIt) {
  RunResult r = Diff({Id(a_), Id(b_), "/dump/old"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The file came from outside the path, so here it is new.
  EXPECT_EQ(r.out,
            "M /dump/old/ (mode 0755 -> 0700)\n"
            "+ /dump/old/site.sql.1 (100 bytes)\n");
  RunResult file = Diff({Id(a_), Id(b_), "dump/site.sql"});
  ASSERT_EQ(file.exit_code, 0) << file.err;
  EXPECT_EQ(file.out, "- /dump/site.sql (300000 bytes)\n+ /dump/site.sql (6 bytes)\n");
}

TEST_F(DumpStoryTest, DiffOfOneStateWithItselfIsEmpty) {
  RunResult r = Diff({Id(a_), "g" + std::to_string(a_.last_gen)});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(DumpStoryTest, DiffShowsARenamedFolderAsOneLine) {
  Write(old_, "keep.txt", "keep");
  const store::State before = StateEndingAt(latest());
  Quiet();
  ASSERT_NO_FATAL_FAILURE(Rename(dump_, "old", kRootIno, "archive"));
  RunResult r = Diff({Id(before), "now"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "R /dump/old/ -> /archive/\n");
}

TEST_F(DumpStoryTest, DiffIgnoresARewriteWithTheSameBytesButNotOtherBytes) {
  // These writes extend state C, so its end is named by generation.
  const std::string end_of_c = "g" + std::to_string(c_.last_gen);
  ASSERT_NO_FATAL_FAILURE(Overwrite(broken_, "broken"));
  RunResult same = Diff({end_of_c, "now"});
  ASSERT_EQ(same.exit_code, 0) << same.err;
  EXPECT_EQ(same.out, "");
  ASSERT_NO_FATAL_FAILURE(Overwrite(broken_, "BROKEN"));
  RunResult changed = Diff({end_of_c, "now"});
  ASSERT_EQ(changed.exit_code, 0) << changed.err;
  EXPECT_EQ(changed.out, "M /dump/site.sql (content changed, 6 bytes)\n");
}

TEST_F(DumpStoryTest, DiffJsonNamesBothStatesAndEveryChange) {
  RunResult r = Diff({Id(a_), Id(b_), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["path"], "/");
  EXPECT_EQ(j["from"]["generation"], a_.last_gen);
  EXPECT_EQ(j["to"]["generation"], b_.last_gen);
  EXPECT_EQ(j["to"]["time_ns"], b_.end_ns);
  ASSERT_EQ(j["changes"].size(), 5u);
  const json& renamed = j["changes"][1];
  EXPECT_EQ(renamed["change"], "renamed");
  EXPECT_EQ(renamed["old_path"], "/dump/site.sql");
  EXPECT_EQ(renamed["path"], "/dump/old/site.sql.1");
  const json& modified = j["changes"][2];
  EXPECT_EQ(modified["change"], "modified");
  EXPECT_EQ(modified["old_size"], 300000u);
  EXPECT_EQ(modified["size"], 100u);
  EXPECT_EQ(j["changes"][3]["change"], "added");
  EXPECT_EQ(j["changes"][4]["change"], "removed");
  EXPECT_EQ(j["changes"][4]["path"], "/dump/users.csv");
}

TEST_F(DumpStoryTest, DiffErrorsHaveTheirExitCodes) {
  RunResult bad = Diff({"s1", "2026-13-01"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(bad.err.starts_with("snapfs-diff: WHEN2: bad WHEN '2026-13-01': there is no month 13"))
      << bad.err;
  EXPECT_TRUE(Contains(bad.err, "WHEN is one of:")) << bad.err;
  RunResult early = Diff({"2001-01-01", "now"});
  EXPECT_EQ(early.exit_code, 1);
  EXPECT_TRUE(Contains(early.err, "before the store's history")) << early.err;
  RunResult missing = Diff({Id(a_), Id(b_), "/nope"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_TRUE(Contains(missing.err, "snapfs-diff: /nope: no such file or directory at g")) << missing.err;
  RunResult usage = Diff({"now"});
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_TRUE(usage.err.starts_with("snapfs-diff: ")) << usage.err;
}

}  // namespace
}  // namespace snapfs::tools::testing
