// Hostile command lines (issue 5, point 5): every program given a missing
// path, a file instead of a store, a folder that is not a store, a store in
// use, garbage arguments, a bad WHEN or a missing mount point prints a clear
// message naming the problem, exits with the code docs/cli.md documents,
// and changes nothing: the whole scratch folder (store, files, mount point)
// is listed with modes, sizes and contents before and after each case.
//
// The table is per program; a new program (snapfs-check, snapfs-prune,
// snapfs-hold) adds a Tool in Tools() with how it names a store, and its own
// cases to the table, and every store case runs for it too.
//
// CliErrorsTest.* needs no FUSE (label unit); CliErrorsMountTest.* runs
// against a real mount (label mount).
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "tests/mount/mount_fixture.h"
#include "tools/exit_codes.h"

namespace snapfs::tools {
namespace {

namespace fsys = std::filesystem;
using snapfs::testing::ProcessResult;
using snapfs::testing::RunProcess;
using snapfs::testing::SnapfsMount;
using snapfs::testing::TempDir;

// Placeholders in a case's arguments, replaced by paths in the scratch folder.
constexpr char kStore[] = "{store}";      // A store made by snapfs --init.
constexpr char kMissing[] = "{missing}";  // Nothing there.
constexpr char kFile[] = "{file}";        // A regular file.
constexpr char kEmpty[] = "{empty}";      // An empty folder.
constexpr char kNotStore[] = "{notstore}";  // A folder with files, not a store.
constexpr char kMnt[] = "{mnt}";          // An empty folder to mount on.

// A program and how it is given a store (the rest of a minimal valid
// command line around it).
struct Tool {
  std::string name;    // As it prefixes its messages.
  std::string binary;
  std::vector<std::string> with_store;  // kStore marks where the store goes.
};

std::vector<Tool> Tools() {
  return {
      {"snapfs", SNAPFS_BINARY, {kStore, kMnt}},
      {"snapfs-ls", SNAPFS_LS_BINARY, {kStore}},
      {"snapfs-diff", SNAPFS_DIFF_BINARY, {kStore, "g1", "now"}},
      {"snapfs-mount-at", SNAPFS_MOUNT_AT_BINARY, {kStore, "now", kMnt}},
      // snapfs-check, snapfs-prune, snapfs-hold: add them here.
  };
}

const Tool& ToolNamed(const std::string& name) {
  static const std::vector<Tool> tools = Tools();
  for (const Tool& t : tools)
    if (t.name == name) return t;
  ADD_FAILURE() << "no tool " << name;
  return tools[0];
}

// One hostile command line and what must come of it.
struct Case {
  std::string tool;
  std::vector<std::string> args;
  int exit_code;
  std::vector<std::string> message;  // Substrings of the output (placeholders allowed).
};

using snapfs::store::testing::Snapshot;  // Every path with mode, size, mtime, contents.

std::string Describe(const std::map<std::string, std::string>& before,
                     const std::map<std::string, std::string>& after) {
  std::string d;
  for (const auto& [p, v] : before) {
    auto it = after.find(p);
    if (it == after.end()) d += "  removed " + p + "\n";
    else if (it->second != v) d += "  changed " + p + ": " + v + " -> " + it->second + "\n";
  }
  for (const auto& [p, v] : after)
    if (!before.count(p)) d += "  added " + p + " (" + v + ")\n";
  return d;
}

class CliErrorsBase : public ::testing::Test {
 protected:
  // The scratch folder's paths; the store is made by the real snapfs --init.
  void MakeScratch(const std::string& store) {
    root_ = dir_.path();
    paths_ = {{"{root}", root_},
              {kStore, store},
              {kMissing, root_ + "/missing/store"},
              {kFile, root_ + "/file"},
              {kEmpty, root_ + "/empty"},
              {kNotStore, root_ + "/notstore"},
              {kMnt, root_ + "/mnt"}};
    std::ofstream(root_ + "/file") << "not a store\n";
    fsys::create_directories(root_ + "/empty");
    fsys::create_directories(root_ + "/notstore/db");
    std::ofstream(root_ + "/notstore/CURRENT") << "MANIFEST-000001\n";
    fsys::create_directories(root_ + "/mnt");
  }

  std::string Expand(const std::string& s) const {
    std::string out = s;
    for (const auto& [from, to] : paths_)
      for (size_t at; (at = out.find(from)) != std::string::npos;) out.replace(at, from.size(), to);
    return out;
  }

  // Runs `c` and checks its exit code, message, and that nothing under the
  // scratch folder (and, for a mounted store, the store) changed.
  void Check(const Case& c, const std::string& also_unchanged = "") {
    const Tool& tool = ToolNamed(c.tool);
    std::vector<std::string> argv = {tool.binary};
    for (const std::string& a : c.args) argv.push_back(Expand(a));
    std::string shown = c.tool;
    for (size_t i = 1; i < argv.size(); ++i) shown += " " + c.args[i - 1];
    SCOPED_TRACE(shown);

    const auto before = Snapshot(root_);
    const auto before_also = also_unchanged.empty() ? before : Snapshot(also_unchanged);
    const ProcessResult r = RunProcess(argv, 30'000);
    EXPECT_EQ(r.exit_code, c.exit_code) << r.output;
    EXPECT_NE(r.output.find(c.tool + ": "), std::string::npos)
        << "the message does not start with the program's name:\n" << r.output;
    for (const std::string& m : c.message)
      EXPECT_NE(r.output.find(Expand(m)), std::string::npos)
          << "no '" << Expand(m) << "' in:\n" << r.output;
    EXPECT_EQ(r.output.find("internal error"), std::string::npos) << r.output;
    EXPECT_FALSE(snapfs::testing::IsMountPoint(Expand(kMnt))) << "left a mount behind";
    const auto after = Snapshot(root_);
    EXPECT_TRUE(before == after) << "changed:\n" << Describe(before, after);
    if (!also_unchanged.empty()) {
      const auto after_also = Snapshot(also_unchanged);
      EXPECT_TRUE(before_also == after_also) << "changed:\n" << Describe(before_also, after_also);
    }
    results_.push_back(shown + " -> " + std::to_string(r.exit_code));
  }

  TempDir dir_;
  std::string root_;
  std::vector<std::pair<std::string, std::string>> paths_;
  std::vector<std::string> results_;
};

class CliErrorsTest : public CliErrorsBase {
 protected:
  void SetUp() override {
    const std::string store = dir_.path() + "/store";
    const ProcessResult init = RunProcess({SNAPFS_BINARY, "--init", store});
    ASSERT_EQ(init.exit_code, 0) << init.output;
    MakeScratch(store);
  }
};

// Every program, given something other than a store where a store goes.
TEST_F(CliErrorsTest, EveryToolRefusesWhatIsNotAStoreWithExitThree) {
  for (const Tool& tool : Tools()) {
    for (const char* bad : {kMissing, kFile, kEmpty, kNotStore}) {
      Case c{tool.name, {}, kExitStore, {bad}};
      for (const std::string& a : tool.with_store) c.args.push_back(a == kStore ? bad : a);
      Check(c);
    }
  }
}

// Unknown options, missing and extra arguments: exit 2, naming the problem.
TEST_F(CliErrorsTest, EveryToolRefusesGarbageArgumentsWithExitTwo) {
  for (const Tool& tool : Tools()) {
    Check({tool.name, {}, kExitUsage, {}});
    std::vector<std::string> args = tool.with_store;
    args.push_back("--no-such-option");
    Check({tool.name, args, kExitUsage, {"--no-such-option"}});
    // Two more than the longest valid command line (snapfs-diff takes a PATH).
    args = tool.with_store;
    args.insert(args.end(), {"/", "extra-argument", "another"});
    Check({tool.name, args, kExitUsage, {}});
  }
}

TEST_F(CliErrorsTest, BadWhenIsExitTwoAndListsTheForms) {
  // A few of each kind (when_test.cc and fuzz/when_fuzzer.cc cover the parser).
  for (const char* when : {"yesterday", "2026-02-30", "s0", "-5x", "", "\xff\xfe\x01"}) {
    Check({"snapfs-ls", {kStore, "--at", when}, kExitUsage, {"bad WHEN", "WHEN is one of"}});
    Check({"snapfs-diff", {kStore, when, "now"}, kExitUsage, {"bad WHEN", "WHEN is one of"}});
    Check({"snapfs-diff", {kStore, "now", when}, kExitUsage, {"bad WHEN"}});
    Check({"snapfs-mount-at", {kStore, when, kMnt}, kExitUsage, {"bad WHEN", "WHEN is one of"}});
  }
}

TEST_F(CliErrorsTest, WhenOutsideTheHistoryIsExitOne) {
  Check({"snapfs-ls", {kStore, "--at", "@1"}, kExitRuntime, {"before the store's history"}});
  Check({"snapfs-ls", {kStore, "--at", "g999"}, kExitRuntime, {"g999"}});
  Check({"snapfs-diff", {kStore, "s77", "now"}, kExitRuntime, {"s77"}});
  Check({"snapfs-mount-at", {kStore, "@1", kMnt}, kExitRuntime, {"before the store's history"}});
  Check({"snapfs-mount-at", {kStore, "g999", kMnt}, kExitRuntime, {"g999"}});
}

TEST_F(CliErrorsTest, BadDurationsAndOptionValuesAreExitTwo) {
  Check({"snapfs-ls", {kStore, "--gap", "5x"}, kExitUsage, {"5x"}});
  Check({"snapfs-ls", {kStore, "--at", "now", "-R", "--history", "/"}, kExitUsage, {}});
  Check({"snapfs", {"--init", "{root}/new", "--state-gap", "soon"}, kExitUsage, {"soon"}});
  Check({"snapfs", {"--init", "{root}/new", "--state-gap", "0s"}, kExitUsage, {"at least 1s"}});
  Check({"snapfs", {"--init", "{root}/new", "--zstd-level", "0"}, kExitUsage, {"--zstd-level"}});
  Check({"snapfs", {"--zstd-level", "3", kStore, kMnt}, kExitUsage, {"--init"}});
  Check({"snapfs", {"--init", kStore, kMnt}, kExitUsage, {"--init"}});
  Check({"snapfs", {"-o", "zstd=99", kStore, kMnt}, kExitUsage, {"zstd=99"}});
  Check({"snapfs", {"-o", "cache_mb=0", kStore, kMnt}, kExitUsage, {"cache_mb=0"}});
  Check({"snapfs", {"-o", "defer_mb=-1", kStore, kMnt}, kExitUsage, {"defer_mb=-1"}});
  Check({"snapfs", {"-o", "defer_rate_mb=fast", kStore, kMnt}, kExitUsage, {"defer_rate_mb=fast"}});
  Check({"snapfs", {"--ready-fd", "987", kStore, kMnt}, kExitUsage, {"--ready-fd"}});
  Check({"snapfs-mount-at", {"-o", "rw", kStore, "now", kMnt}, kExitUsage, {"rw"}});
}

TEST_F(CliErrorsTest, InitRefusesAnythingButANewOrEmptyFolder) {
  Check({"snapfs", {"--init", kStore}, kExitRuntime, {"already a snapfs store"}});
  Check({"snapfs", {"--init", kFile}, kExitRuntime, {kFile}});
  Check({"snapfs", {"--init", kNotStore}, kExitRuntime, {"not empty"}});
  Check({"snapfs", {"--init", "{file}/sub"}, kExitRuntime, {"{file}/sub"}});
}

TEST_F(CliErrorsTest, SettleTakesOnlyAStore) {
  for (const char* bad : {kMissing, kFile, kEmpty, kNotStore})
    Check({"snapfs", {"--settle", bad}, kExitStore, {bad}});
  Check({"snapfs", {"--settle", kStore, kMnt}, kExitUsage, {"takes only the store"}});
  Check({"snapfs", {"--settle", kStore, "--init", "{root}/new"}, kExitUsage, {"--init"}});
}

TEST_F(CliErrorsTest, MissingOrUnusableMountPointIsExitFour) {
  for (const char* mnt : {kMissing, kFile}) {
    Check({"snapfs", {kStore, mnt}, kExitMount, {mnt}});
    Check({"snapfs-mount-at", {kStore, "now", mnt}, kExitMount, {mnt}});
  }
}

TEST_F(CliErrorsTest, PathsThatNeverExistedAreExitOne) {
  // The first component that is missing is named.
  Check({"snapfs-ls", {kStore, "--at", "now", "/no/such"}, kExitRuntime, {"/no: no such file"}});
  Check({"snapfs-ls", {kStore, "--history", "/no/such"}, kExitRuntime, {"/no/such"}});
  Check({"snapfs-diff", {kStore, "g1", "now", "/no/such"}, kExitRuntime, {"/no/such"}});
}

// With the store mounted by a live daemon: nothing may take it over, and the
// daemon and its store are untouched.
class CliErrorsMountTest : public CliErrorsBase {
 protected:
  void SetUp() override {
    ASSERT_TRUE(mount_.ok());
    ASSERT_TRUE(mount_.Mount());
    MakeScratch(mount_.store());
  }
  SnapfsMount mount_;
};

TEST_F(CliErrorsMountTest, SecondDaemonOnAMountedStoreIsExitThree) {
  Check({"snapfs", {kStore, kMnt}, kExitStore, {"in use"}}, mount_.store());
  Check({"snapfs", {"-f", kStore, kMnt}, kExitStore, {"in use"}}, mount_.store());
  Check({"snapfs", {"--init", kStore}, kExitRuntime, {"already a snapfs store"}}, mount_.store());
  Check({"snapfs", {kStore, mount_.mountpoint()}, kExitStore, {"in use"}}, mount_.store());
  // The first daemon still serves.
  EXPECT_TRUE(snapfs::testing::IsMountPoint(mount_.mountpoint()));
  std::ofstream(mount_.mountpoint() + "/still-works") << "yes";
  EXPECT_TRUE(fsys::exists(mount_.mountpoint() + "/still-works"));
}

TEST_F(CliErrorsMountTest, UnknownFuseOptionIsExitTwoAndMountsNothing) {
  ASSERT_TRUE(mount_.Unmount());
  Check({"snapfs", {"-o", "no_such_fuse_option", kStore, kMnt}, kExitUsage,
         {"no_such_fuse_option"}});
  Check({"snapfs-mount-at", {"-o", "no_such_fuse_option", kStore, "now", kMnt}, kExitUsage,
         {"no_such_fuse_option"}}, mount_.store());
}

}  // namespace
}  // namespace snapfs::tools
