// snapfs-ls, run as a program on a store that stays open read-write (as under
// a running daemon): states, every generation, past trees, the history of a
// path, every WHEN form, and the exit codes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <thread>
#include <string>
#include <vector>

#include "store/when.h"
#include "tests/tools/tool_test_util.h"

namespace snapfs::tools::testing {
namespace {

using nlohmann::json;

// The lines of `out` that contain `needle`.
std::vector<std::string> LinesWith(const RunResult& r, const std::string& needle) {
  std::vector<std::string> out;
  for (const std::string& line : r.lines())
    if (Contains(line, needle)) out.push_back(line);
  return out;
}

TEST_F(DumpStoryTest, ListsOneRowPerStateNewestLast) {
  RunResult r = Ls({"--bytes"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> lines = r.lines();
  ASSERT_EQ(lines.size(), 5u) << r.out;
  EXPECT_TRUE(lines[0].starts_with("STATE")) << lines[0];
  EXPECT_TRUE(lines[1].starts_with("s1 ")) << lines[1];
  EXPECT_TRUE(lines[2].starts_with(Id(a_) + " ")) << lines[2];
  EXPECT_TRUE(lines[3].starts_with(Id(b_) + " ")) << lines[3];
  EXPECT_TRUE(lines[4].starts_with(Id(c_) + " ")) << lines[4];
  // The good dump's state wrote the 300000-byte file and the csv.
  EXPECT_TRUE(Contains(lines[2], " " + std::to_string(kGoodSize + kUsers.size()) + " "))
      << lines[2];
  EXPECT_TRUE(Contains(lines[2], store::FormatLocalTime(a_.start_ns))) << lines[2];
  EXPECT_TRUE(Contains(lines[2], store::FormatLocalTime(a_.end_ns))) << lines[2];
}

TEST_F(DumpStoryTest, JsonStatesMatchTheStore) {
  RunResult r = Ls({"--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json rows = json::parse(r.out);
  const std::vector<store::State> states = States();
  ASSERT_EQ(rows.size(), states.size());
  for (size_t i = 0; i < states.size(); ++i) {
    const json& row = rows[i];
    const store::State& s = states[i];
    EXPECT_EQ(row["id"], "s" + std::to_string(s.first_gen));
    EXPECT_EQ(row["first_gen"], s.first_gen);
    EXPECT_EQ(row["last_gen"], s.last_gen);
    EXPECT_EQ(row["changes"], s.changes);
    EXPECT_EQ(row["files_changed"], s.files_changed);
    EXPECT_EQ(row["bytes_written"], s.bytes_written);
    EXPECT_EQ(row["bytes_stored"], s.bytes_stored);
    EXPECT_EQ(row["start_ns"], s.start_ns);
    EXPECT_EQ(row["end"], store::FormatIsoTime(s.end_ns));
  }
}

TEST_F(DumpStoryTest, GapMergesStatesIntoOneRowNamedByItsNewestState) {
  RunResult r = Ls({"--gap", "1h", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json rows = json::parse(r.out);
  ASSERT_EQ(rows.size(), 1u) << r.out;
  EXPECT_EQ(rows[0]["id"], Id(c_));  // So the id still names the row's end.
  EXPECT_EQ(rows[0]["first_gen"], 1u);
  EXPECT_EQ(rows[0]["last_gen"], c_.last_gen);
  EXPECT_EQ(rows[0]["states"], 4u);
  EXPECT_EQ(rows[0]["changes"], c_.last_gen);  // Every generation, once.
  RunResult none = Ls({"--gap", "0s", "--json"});
  ASSERT_EQ(none.exit_code, 0) << none.err;
  EXPECT_EQ(json::parse(none.out).size(), 4u);
}

TEST_F(DumpStoryTest, AllListsEveryGenerationWithItsPath) {
  RunResult r = Ls({"--all"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(r.lines().size(), latest() + 1) << r.out;
  EXPECT_EQ(LinesWith(r, "rename").size(), 1u) << r.out;
  EXPECT_TRUE(Contains(LinesWith(r, "rename")[0], "/dump/site.sql -> /dump/old/site.sql.1"));
  EXPECT_EQ(LinesWith(r, "unlink").size(), 2u) << r.out;
  EXPECT_TRUE(Contains(LinesWith(r, "unlink")[0], "/dump/users.csv"));
  EXPECT_TRUE(Contains(LinesWith(r, "unlink")[1], "/dump/old/site.sql.1"));
  // A write names only the inode; its path comes from the log before it.
  const std::vector<std::string> truncates = LinesWith(r, "truncate");
  ASSERT_EQ(truncates.size(), 1u);
  EXPECT_TRUE(Contains(truncates[0], "/dump/old/site.sql.1")) << truncates[0];
  EXPECT_TRUE(Contains(r.lines()[1], "init")) << r.out;

  RunResult j = Ls({"--all", "--json"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  const json gens = json::parse(j.out);
  ASSERT_EQ(gens.size(), latest());
  EXPECT_EQ(gens[0]["op"], "init");
  EXPECT_EQ(gens.back()["op"], "unlink");
  EXPECT_EQ(gens.back()["path"], "/dump/old/site.sql.1");
}

TEST_F(DumpStoryTest, AtListsAPastTreeAfterItsFilesWereDeleted) {
  RunResult r = Ls({"--at", Id(a_), "/dump", "-n"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> lines = r.lines();
  ASSERT_EQ(lines.size(), 5u) << r.out;
  EXPECT_EQ(lines[0], "/dump at g" + std::to_string(a_.last_gen) + " (" +
                          store::FormatLocalTime(a_.end_ns) + "):");
  // Entries in byte order of names, like ls -l.
  EXPECT_TRUE(lines[1].starts_with("lrwxrwxrwx 1000 1000      8 ")) << lines[1];
  EXPECT_TRUE(lines[1].ends_with(" latest -> site.sql")) << lines[1];
  EXPECT_TRUE(lines[2].starts_with("drwxr-xr-x 1000 1000      0 ")) << lines[2];
  EXPECT_TRUE(lines[2].ends_with(" old")) << lines[2];
  EXPECT_TRUE(lines[3].starts_with("-rw-r--r-- 1000 1000 300000 ")) << lines[3];
  EXPECT_TRUE(lines[3].ends_with(" site.sql")) << lines[3];
  EXPECT_TRUE(lines[4].starts_with("-rw-r--r-- 1000 1000     14 ")) << lines[4];
  EXPECT_TRUE(lines[4].ends_with(" users.csv")) << lines[4];

  RunResult now = Ls({"--at", "now", "/dump", "-n"});
  ASSERT_EQ(now.exit_code, 0) << now.err;
  EXPECT_FALSE(Contains(now.out, "users.csv")) << now.out;
  EXPECT_TRUE(Contains(now.out, "1000 1000 6 ")) << now.out;  // The broken dump.
}

TEST_F(DumpStoryTest, AtWithRListsEveryFolderBelow) {
  RunResult r = Ls({"--at", Id(b_), "-R", "-n"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.out.starts_with("/ at g" + std::to_string(b_.last_gen))) << r.out;
  EXPECT_TRUE(Contains(r.out, "\n/dump:\n")) << r.out;
  const size_t old_header = r.out.find("\n/dump/old:\n");
  ASSERT_NE(old_header, std::string::npos) << r.out;
  EXPECT_TRUE(Contains(r.out.substr(old_header), "100 ")) << r.out;
  EXPECT_TRUE(r.out.ends_with(" site.sql.1\n")) << r.out;
}

TEST_F(DumpStoryTest, AtOneFileListsJustIt) {
  RunResult r = Ls({"--at", Id(a_), "/dump/site.sql", "-n"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(r.lines().size(), 1u) << r.out;
  EXPECT_TRUE(r.out.starts_with("-rw-r--r-- 1000 1000 300000 ")) << r.out;
  EXPECT_TRUE(r.out.ends_with(" /dump/site.sql\n")) << r.out;
}

TEST_F(DumpStoryTest, AtJsonGivesTheGenerationAndEveryEntry) {
  RunResult r = Ls({"--at", Id(a_), "-R", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["generation"], a_.last_gen);
  EXPECT_EQ(j["path"], "/");
  std::vector<std::string> paths;
  for (const json& e : j["entries"]) paths.push_back(e["path"]);
  EXPECT_EQ(paths, (std::vector<std::string>{"/dump", "/dump/latest", "/dump/old",
                                             "/dump/site.sql", "/dump/users.csv"}));
  EXPECT_EQ(j["entries"][1]["target"], "site.sql");
  EXPECT_EQ(j["entries"][3]["size"], kGoodSize);
  EXPECT_EQ(j["entries"][3]["mode"], "0644");
  EXPECT_EQ(j["entries"][3]["type"], "file");
}

TEST_F(DumpStoryTest, AtAMissingPathFailsWithExitOne) {
  RunResult r = Ls({"--at", Id(a_), "/dump/nope"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "snapfs-ls: --at " + Id(a_) + ": /dump/nope: no such file or directory at g" +
                       std::to_string(a_.last_gen) + "\n")
      << r.err;
  RunResult before = Ls({"--at", "s1", "dump"});  // Before /dump was made.
  EXPECT_EQ(before.exit_code, 1);
  EXPECT_TRUE(Contains(before.err, "no such file or directory")) << before.err;
  RunResult through_file = Ls({"--at", Id(a_), "/dump/site.sql/x"});
  EXPECT_EQ(through_file.exit_code, 1);
  EXPECT_TRUE(Contains(through_file.err, "not a directory")) << through_file.err;
}

// What --history --json says happened, one "<inode>: <what>" per version.
std::vector<std::string> HistoryOf(const RunResult& r) {
  std::vector<std::string> out;
  for (const json& v : json::parse(r.out))
    out.push_back(std::to_string(v["ino"].get<uint64_t>()) + ": " + v["what"].get<std::string>());
  return out;
}

TEST_F(DumpStoryTest, HistoryFollowsAFileAcrossARenameAndADelete) {
  RunResult r = Ls({"--history", "/dump/site.sql", "--json", "--bytes"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string good = std::to_string(good_), fresh = std::to_string(broken_);
  // Both inodes that were ever at the path, every version, by generation.
  EXPECT_EQ(HistoryOf(r), (std::vector<std::string>{
                              good + ": created",
                              good + ": written (300000 written, 300000 newly stored)",
                              good + ": renamed to /dump/old/site.sql.1",
                              fresh + ": created",
                              fresh + ": written (6 written, 6 newly stored)",
                              good + ": truncated to 0",
                              good + ": written (100 written, 100 newly stored)",
                              good + ": deleted: /dump/old/site.sql.1",
                          }));
  RunResult text = Ls({"--history", "dump/site.sql"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  const std::vector<std::string> lines = text.lines();
  ASSERT_EQ(lines.size(), 9u) << text.out;
  EXPECT_TRUE(lines[0].starts_with("     GEN  TIME")) << lines[0];
  EXPECT_TRUE(lines[3].ends_with("  300000  renamed to /dump/old/site.sql.1")) << lines[3];
  EXPECT_TRUE(lines[8].ends_with("     100  deleted: /dump/old/site.sql.1")) << lines[8];
}

TEST_F(DumpStoryTest, HistoryOfTheNewNameSaysWhereTheFileCameFrom) {
  RunResult r = Ls({"--history", "/dump/old/site.sql.1", "--json", "--bytes"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string good = std::to_string(good_);
  EXPECT_EQ(HistoryOf(r), (std::vector<std::string>{
                              good + ": created as /dump/site.sql",
                              good + ": written (300000 written, 300000 newly stored)",
                              good + ": renamed from /dump/site.sql",
                              good + ": truncated to 0",
                              good + ": written (100 written, 100 newly stored)",
                              good + ": deleted",
                          }));
}

TEST_F(DumpStoryTest, HistoryOfAFolderListsItsEntryChanges) {
  RunResult r = Ls({"--history", "/dump/old", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string old = std::to_string(old_);
  EXPECT_EQ(HistoryOf(r), (std::vector<std::string>{
                              old + ": created",
                              old + ": entry site.sql.1 moved in from /dump/site.sql",
                              old + ": chmod 0755 -> 0700",
                              old + ": entry site.sql.1 deleted",
                          }));
  RunResult dump = Ls({"--history", "/dump", "--json"});
  ASSERT_EQ(dump.exit_code, 0) << dump.err;
  const std::string d = std::to_string(dump_);
  EXPECT_EQ(HistoryOf(dump), (std::vector<std::string>{
                                 d + ": created",
                                 d + ": entry site.sql created",
                                 d + ": entry users.csv created",
                                 d + ": entry latest created",
                                 d + ": entry old created",
                                 d + ": entry site.sql moved to /dump/old/site.sql.1",
                                 d + ": entry users.csv deleted",
                                 d + ": entry site.sql created",
                             }));
  RunResult root = Ls({"--history", "/", "--json"});
  ASSERT_EQ(root.exit_code, 0) << root.err;
  EXPECT_EQ(HistoryOf(root), (std::vector<std::string>{"1: created (the store's root)",
                                                       "1: entry dump created"}));
}

TEST_F(DumpStoryTest, HistoryOfAPathThatNeverExistedFails) {
  RunResult r = Ls({"--history", "/dump/nope"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "snapfs-ls: /dump/nope: no such file or directory at any time in the store\n");
  EXPECT_EQ(r.out, "");
}

// A store with two states two seconds apart, so that times given to the
// second tell them apart.
class WhenFormsTest : public ToolTestBase {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(ToolTestBase::SetUp());
    Quiet();
    Write(kRootIno, "a.txt", "first");
    a_ = StateEndingAt(latest());
    std::this_thread::sleep_for(std::chrono::milliseconds(2100));
    Write(kRootIno, "b.txt", "second");
    b_ = StateEndingAt(latest());
  }
  // The generation `snapfs-ls --at WHEN` lists, or -1 with the error.
  int64_t GenerationOf(const std::string& when) {
    RunResult r = Ls({"--at", when, "--json"});
    EXPECT_EQ(r.exit_code, 0) << when << ": " << r.err;
    if (r.exit_code != 0) return -1;
    return json::parse(r.out)["generation"].get<int64_t>();
  }
  static std::string Strftime(const char* format, const struct tm& tm) {
    char buf[64];
    return std::string(buf, std::strftime(buf, sizeof buf, format, &tm));
  }
  store::State a_, b_;
};

TEST_F(WhenFormsTest, EveryFormIsAcceptedAndNamesTheRightState) {
  // The first whole second after state A: before B, which began 2 s later.
  const time_t t = static_cast<time_t>(a_.end_ns / 1'000'000'000 + 1);
  struct tm local {}, utc {}, minus5 {};
  ::localtime_r(&t, &local);
  ::gmtime_r(&t, &utc);
  const time_t t5 = t - 5 * 3600;
  ::gmtime_r(&t5, &minus5);
  const std::string offset = Strftime("%z", local);  // "+0100" or "+0200"
  const int64_t a = static_cast<int64_t>(a_.last_gen);
  for (const std::string& when : {
           "@" + std::to_string(t),
           "@" + std::to_string(t) + ".5",
           Strftime("%Y-%m-%d %H:%M:%S", local),
           Strftime("%Y-%m-%dT%H:%M:%S", local),
           Strftime("%Y-%m-%dT%H:%M:%S.5", local),
           Strftime("%Y-%m-%dT%H:%M:%SZ", utc),
           Strftime("%Y-%m-%d %H:%M:%S", utc) + "Z",
           Strftime("%Y-%m-%dT%H:%M:%S", local) + offset,
           Strftime("%Y-%m-%dT%H:%M:%S", local) + offset.substr(0, 3) + ":" + offset.substr(3),
           Strftime("%Y-%m-%dT%H:%M:%S-05", minus5),
           Id(a_),
           "g" + std::to_string(a),
       })
    EXPECT_EQ(GenerationOf(when), a) << when;

  const int64_t b = static_cast<int64_t>(b_.last_gen);
  const time_t later = ::time(nullptr) + 120, tomorrow = ::time(nullptr) + 86400;
  struct tm later_tm {}, tomorrow_tm {};
  ::localtime_r(&later, &later_tm);
  ::localtime_r(&tomorrow, &tomorrow_tm);
  for (const std::string& when : {std::string("now"), std::string("-0s"), Id(b_),
                                  Strftime("%Y-%m-%d %H:%M", later_tm),
                                  Strftime("%Y-%m-%dT%H:%M", later_tm),
                                  Strftime("%Y-%m-%d", tomorrow_tm)})
    EXPECT_EQ(GenerationOf(when), b) << when;
}

TEST_F(WhenFormsTest, MomentsBeforeTheStoreExitOneAndSayWhenHistoryStarts) {
  const time_t start = static_cast<time_t>(a_.start_ns / 1'000'000'000);
  struct tm start_tm {};
  ::localtime_r(&start, &start_tm);
  for (const std::string& when : {std::string("-90s"), std::string("-15m"), std::string("-2h"),
                                  std::string("-3d"), std::string("-1w"), std::string("-1h30m"),
                                  Strftime("%Y-%m-%d", start_tm), std::string("@1000000000"),
                                  std::string("2001-09-09T01:46:40Z")}) {
    RunResult r = Ls({"--at", when});
    EXPECT_EQ(r.exit_code, 1) << when;
    EXPECT_TRUE(r.err.starts_with("snapfs-ls: --at " + when + ": ")) << r.err;
    EXPECT_TRUE(Contains(r.err, "is before the store's history, which starts at ")) << r.err;
  }
  RunResult state = Ls({"--at", "s999"});
  EXPECT_EQ(state.exit_code, 1);
  EXPECT_TRUE(Contains(state.err, "there is no state s999")) << state.err;
  RunResult gen = Ls({"--at", "g999"});
  EXPECT_EQ(gen.exit_code, 1);
  EXPECT_TRUE(Contains(gen.err, "there is no generation g999")) << gen.err;
}

TEST_F(ToolTestBase, MalformedWhenExitsTwoAndListsTheForms) {
  for (const char* when : {"", "yesterday", "2026-02-30", "2026-05-25 25:00", "2026-13-01",
                           "2026-05-25T06:16:05+24:00", "@x", "@1.", "s0", "sx", "g", "-5x",
                           "2026-05-25 06:16 junk", "@99999999999999999999"}) {
    RunResult r = Ls({"--at", when});
    EXPECT_EQ(r.exit_code, 2) << when;
    EXPECT_TRUE(r.err.starts_with(std::string("snapfs-ls: --at: bad WHEN '") + when + "'"))
        << r.err;
    EXPECT_TRUE(Contains(r.err, "WHEN is one of:")) << r.err;
    for (const char* form : {"@1779682560", "2026-05-25 ", "2026-05-25T06:16", "+02:00", "s1234",
                             "g1234", "-90s", "now"})
      EXPECT_TRUE(Contains(r.err, form)) << form << " missing in: " << r.err;
    EXPECT_EQ(r.out, "");
  }
}

TEST_F(ToolTestBase, StoreMissingOrNotAStoreExitsThree) {
  RunResult missing = RunProgram(dir_.path(), SNAPFS_LS_BINARY, {dir_.path() + "/nothing"});
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_TRUE(missing.err.starts_with("snapfs-ls: cannot open store: no store at ")) << missing.err;
  RunResult plain = RunProgram(dir_.path(), SNAPFS_LS_BINARY, {dir_.path()});
  EXPECT_EQ(plain.exit_code, 3);
  EXPECT_TRUE(Contains(plain.err, "is not a snapfs store")) << plain.err;
  RunResult diff = RunProgram(dir_.path(), SNAPFS_DIFF_BINARY, {dir_.path(), "s1", "now"});
  EXPECT_EQ(diff.exit_code, 3);
  EXPECT_TRUE(diff.err.starts_with("snapfs-diff: cannot open store: ")) << diff.err;
  store::testing::WriteWholeFile(path_ + "/SNAPFS", "snapfs store\nformat 99\n");
  RunResult version = Ls({});
  EXPECT_EQ(version.exit_code, 3);
  EXPECT_TRUE(Contains(version.err, "incompatible format version")) << version.err;
}

TEST_F(ToolTestBase, UsageErrorsExitTwo) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"/dump"},                            // PATH without --at
           {"--at", "now", "--history", "/x"},   // two modes
           {"--all", "--gap", "1h"},
           {"-R"},                               // -R without --at
           {"--gap", "soon"},
           {"--bogus"},
       }) {
    RunResult r = Ls(args);
    EXPECT_EQ(r.exit_code, 2) << args[0];
    EXPECT_TRUE(r.err.starts_with("snapfs-ls: ")) << r.err;
  }
  RunResult none = RunProgram(dir_.path(), SNAPFS_LS_BINARY, {});
  EXPECT_EQ(none.exit_code, 2);
  RunResult help = Ls({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_TRUE(Contains(help.out, "WHEN is the newest state at or before a moment")) << help.out;
  EXPECT_TRUE(Contains(help.out, "Exit codes: 0 ok")) << help.out;
}

}  // namespace
}  // namespace snapfs::tools::testing
