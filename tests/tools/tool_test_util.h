// Helpers for the tests of snapfs-ls and snapfs-diff: a store whose history
// is written through the Vfs (exactly the records the live daemon writes),
// and a way to run the real programs on it while the store stays open
// read-write, as it is under a running daemon. Test-only.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fs/vfs.h"
#include "tests/fs/vfs_test_util.h"
#include "tests/store/test_util.h"

namespace snapfs::tools::testing {

using fs::testing::kUser;
using store::Generation;
using store::Ino;
using store::kRootIno;

// What a program printed and how it exited.
struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
  std::vector<std::string> lines() const {
    std::vector<std::string> v;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) v.push_back(line);
    return v;
  }
};

// Runs `binary` with `args`; stdout and stderr go through files in `dir`.
inline RunResult RunProgram(const std::string& dir, const std::string& binary,
                     const std::vector<std::string>& args) {
  const std::string out_path = dir + "/stdout", err_path = dir + "/stderr";
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(binary.c_str()));
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  RunResult r;
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (out < 0 || err < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) ::_exit(127);
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid) return r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = store::testing::ReadWholeFile(out_path);
  r.err = store::testing::ReadWholeFile(err_path);
  return r;
}

inline bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A store with a live Vfs, in the Europe/Berlin time zone (inherited by the
// programs run), whose states are cut after 200 ms of quiet.
class ToolTestBase : public fs::testing::VfsTestBase {
 protected:
  static constexpr int64_t kGapNs = 200'000'000;

  void SetUp() override {
    ::setenv("TZ", "Europe/Berlin", 1);
    ::tzset();
    ASSERT_NO_FATAL_FAILURE(InitAndOpen(store::InitOptions{.state_gap_ns = kGapNs}));
    vfs_ = std::make_unique<fs::Vfs>(store_.get(), fs::VfsOptions{});
  }

  RunResult Ls(const std::vector<std::string>& args) {
    std::vector<std::string> all{path_};
    all.insert(all.end(), args.begin(), args.end());
    return RunProgram(dir_.path(), SNAPFS_LS_BINARY, all);
  }
  RunResult Diff(const std::vector<std::string>& args) {
    std::vector<std::string> all{path_};
    all.insert(all.end(), args.begin(), args.end());
    return RunProgram(dir_.path(), SNAPFS_DIFF_BINARY, all);
  }

  // Ends the current state: waits longer than the store's gap.
  static void Quiet() { std::this_thread::sleep_for(std::chrono::nanoseconds(kGapNs * 3 / 2)); }

  Ino Mkdir(Ino parent, const std::string& name) {
    Result<fs::Attr> a = vfs_->Mkdir(parent, name, 0755, kUser);
    EXPECT_TRUE(a.ok()) << name << ": " << a.status().ToString();
    if (!a.ok()) return 0;
    vfs_->Forget(a->ino, 1);
    return a->ino;
  }
  Ino Write(Ino parent, const std::string& name, const std::string& data) {
    Result<Ino> ino = fs::testing::WriteFile(*vfs_, parent, name, data);
    EXPECT_TRUE(ino.ok()) << name << ": " << ino.status().ToString();
    return ino.ok() ? *ino : 0;
  }
  // open(O_WRONLY|O_TRUNC), write, close: a truncate and a write generation.
  void Overwrite(Ino ino, const std::string& data) {
    Result<fs::FileHandle> fh = vfs_->Open(ino, O_WRONLY | O_TRUNC);
    ASSERT_TRUE(fh.ok()) << fh.status().ToString();
    ASSERT_TRUE(vfs_->Write(*fh, 0, data.data(), data.size()).ok());
    ASSERT_OK(vfs_->Release(*fh));
  }
  void Symlink(Ino parent, const std::string& name, const std::string& target) {
    Result<fs::Attr> a = vfs_->Symlink(parent, name, target, kUser);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    vfs_->Forget(a->ino, 1);
  }
  void Rename(Ino parent, const std::string& name, Ino new_parent, const std::string& new_name) {
    ASSERT_OK(vfs_->Rename(parent, name, new_parent, new_name, 0));
  }
  void Unlink(Ino parent, const std::string& name) { ASSERT_OK(vfs_->Unlink(parent, name)); }
  void Chmod(Ino ino, uint32_t mode) {
    fs::SetAttrRequest req;
    req.mode = mode;
    ASSERT_TRUE(vfs_->SetAttr(ino, req).ok());
  }

  // The state whose last generation is `last`, from the store itself.
  store::State StateEndingAt(Generation last) {
    store::State found;
    EXPECT_OK(store_->ListStates(1, [&](const store::State& s) {
      if (s.last_gen == last) found = s;
      return true;
    }));
    EXPECT_EQ(found.last_gen, last) << "no state ends at g" << last;
    return found;
  }
  // The id snapfs-ls prints for `s`.
  static std::string Id(const store::State& s) { return "s" + std::to_string(s.first_gen); }
  std::vector<store::State> States() {
    std::vector<store::State> out;
    EXPECT_OK(store_->ListStates(1, [&](const store::State& s) {
      out.push_back(s);
      return true;
    }));
    return out;
  }
};

// The story the tools exist for, in three states after the store's first:
//  A  the good dump: /dump/site.sql (300000 bytes), /dump/users.csv,
//     /dump/latest -> site.sql, /dump/old/
//  B  the cron job moves site.sql to old/site.sql.1, deletes users.csv,
//     writes a broken /dump/site.sql (6 bytes), chmods old/ to 0700 and
//     rewrites old/site.sql.1 with 100 bytes
//  C  old/site.sql.1 is deleted
class DumpStoryTest : public ToolTestBase {
 protected:
  static constexpr size_t kGoodSize = 300000;
  const std::string kUsers = "id,name\n1,ann\n";  // 14 bytes

  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(ToolTestBase::SetUp());
    Quiet();
    dump_ = Mkdir(kRootIno, "dump");
    good_ = Write(dump_, "site.sql", store::testing::SeededBytes(kGoodSize, 1));
    Write(dump_, "users.csv", kUsers);
    ASSERT_NO_FATAL_FAILURE(Symlink(dump_, "latest", "site.sql"));
    old_ = Mkdir(dump_, "old");
    a_ = StateEndingAt(latest());
    Quiet();
    ASSERT_NO_FATAL_FAILURE(Rename(dump_, "site.sql", old_, "site.sql.1"));
    ASSERT_NO_FATAL_FAILURE(Unlink(dump_, "users.csv"));
    broken_ = Write(dump_, "site.sql", "broken");
    ASSERT_NO_FATAL_FAILURE(Chmod(old_, 0700));
    ASSERT_NO_FATAL_FAILURE(Overwrite(good_, store::testing::SeededBytes(100, 2)));
    b_ = StateEndingAt(latest());
    Quiet();
    ASSERT_NO_FATAL_FAILURE(Unlink(old_, "site.sql.1"));
    c_ = StateEndingAt(latest());
  }

  Ino dump_ = 0, good_ = 0, broken_ = 0, old_ = 0;
  store::State a_, b_, c_;
};

}  // namespace snapfs::tools::testing
