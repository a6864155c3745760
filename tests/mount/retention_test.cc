// Retention on a live mount: the story ends with the good dump held. A good
// dump (a folder and a zip of it) is written; after the state gap a cron-like
// job wipes it and writes a broken, much smaller one; the guard holds the
// good state, snapfs-ls flags it, and snapfs-prune --keep-last 1, which goes
// through the daemon's control socket while the store is mounted, keeps it.
// A process that is not the store's owner cannot reach the socket.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "tests/mount/mount_fixture.h"

namespace snapfs::testing {
namespace {

using nlohmann::json;

ProcessResult Prune(const std::vector<std::string>& args) {
  std::vector<std::string> argv{SNAPFS_PRUNE_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv);
}
ProcessResult Hold(const std::vector<std::string>& args) {
  std::vector<std::string> argv{SNAPFS_HOLD_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv);
}

// snapfs-ls --json of the states.
json LsStates(const std::string& store) {
  const ProcessResult r = RunLs({store, "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return json::parse(r.output, nullptr, false);
}

// Waits out the 1 s state gap after the newest change.
void WaitOutGap() { std::this_thread::sleep_for(std::chrono::milliseconds(1600)); }

// Connects to `socket_path` as uid/gid 65534 in a child process and sends a
// hold request; returns what happened: "connect: <errno text>" or the
// daemon's response line.
std::string TryAsNobody(const std::string& socket_path) {
  int pipefd[2];
  if (::pipe(pipefd) != 0) return "pipe failed";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pipefd[0]);
    std::string out;
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) {
      out = "setuid failed";
    } else {
      const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::strncpy(addr.sun_path, socket_path.c_str(), sizeof addr.sun_path - 1);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        out = std::string("connect: ") + std::strerror(errno);
      } else {
        const std::string req = R"({"op":"set-min-retention","ns":1})" "\n";
        if (::write(fd, req.data(), req.size()) < 0) out = "write failed";
        char buf[4096];
        ssize_t n;
        while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
      }
    }
    if (::write(pipefd[1], out.data(), out.size()) < 0) ::_exit(1);
    ::_exit(0);
  }
  ::close(pipefd[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(pipefd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return out;
}

TEST(RetentionStoryTest, TheGoodDumpIsHeldAndPruneThroughTheDaemonKeepsIt) {
  SnapfsMount live({"--state-gap", "1s"});
  ASSERT_TRUE(live.ok());
  ASSERT_TRUE(live.Mount());
  const std::string mnt = live.mountpoint();

  // 1. Two good runs (the older one is what --keep-last 1 may drop).
  for (int run = 0; run < 2; ++run) {
    WaitOutGap();  // Also after --init, whose state would take in the first run.
    const std::string dir = mnt + "/mysite";
    ::mkdir(dir.c_str(), 0755);
    for (int i = 0; i < 4; ++i)
      ASSERT_TRUE(WriteFile(dir + "/table" + std::to_string(i) + ".sql", SeededBytes(200000, 10 * run + i)));
    const ProcessResult zip = RunProcess({"sh", "-c", "cd \"$1\" && rm -f mysite.zip && zip -q -r mysite.zip mysite", "sh", mnt});
    ASSERT_EQ(zip.exit_code, 0) << zip.output;
  }
  const std::string good_zip = ReadFile(mnt + "/mysite.zip");
  json states = LsStates(live.store());
  ASSERT_GE(states.size(), 3u);
  const std::string good_id = states.back()["id"];

  // 2. The cron job wipes the folder and writes a broken, much smaller dump.
  WaitOutGap();
  const ProcessResult bad = RunProcess(
      {"sh", "-c",
       "cd \"$1\" && rm -rf mysite mysite.zip && mkdir mysite && echo broken > mysite/users.sql "
       "&& zip -q -r mysite.zip mysite",
       "sh", mnt});
  ASSERT_EQ(bad.exit_code, 0) << bad.output;

  // 3. snapfs-ls flags the good state before the broken run (the planner's
  // guard, even before the daemon held it).
  states = LsStates(live.store());
  ASSERT_GE(states.size(), 4u);
  const json& good_row = states[states.size() - 2];
  EXPECT_EQ(good_row["id"], good_id);
  EXPECT_TRUE(good_row["guard"]) << states.dump();
  EXPECT_FALSE(states.back()["guard"]);

  // 4. The next run closes the broken state: the daemon's guard holds the
  // good one and snapfs-ls shows it held.
  WaitOutGap();
  ASSERT_TRUE(WriteFile(mnt + "/next-run.txt", "x"));
  states = LsStates(live.store());
  bool held = false;
  for (const json& s : states)
    if (s["id"] == good_id) held = s["held"];
  EXPECT_TRUE(held) << states.dump();
  const ProcessResult listed = RunLs({live.store()});
  EXPECT_NE(listed.output.find("held,guard"), std::string::npos) << listed.output;
  const ProcessResult holds = Hold({live.store(), "--list"});
  EXPECT_EQ(holds.exit_code, 0) << holds.output;
  EXPECT_NE(holds.output.find(good_id), std::string::npos) << holds.output;
  EXPECT_NE(holds.output.find("guard"), std::string::npos) << holds.output;

  // 5. snapfs-prune --keep-last 1 while mounted: through the daemon.
  const ProcessResult dry = Prune({live.store(), "--keep-last", "1", "--dry-run", "--json"});
  ASSERT_EQ(dry.exit_code, 0) << dry.output;
  const json plan = json::parse(dry.output, nullptr, false);
  ASSERT_TRUE(plan.is_object()) << dry.output;
  EXPECT_TRUE(plan["via_daemon"]);
  EXPECT_GE(plan["dropped"].get<int>(), 2);  // s1 and the first good run at least.
  const ProcessResult pruned = Prune({live.store(), "--keep-last", "1"});
  ASSERT_EQ(pruned.exit_code, 0) << pruned.output << live.DaemonOutput();
  EXPECT_NE(pruned.output.find(good_id), std::string::npos) << pruned.output;
  EXPECT_NE(pruned.output.find("dropped "), std::string::npos) << pruned.output;
  states = LsStates(live.store());
  bool still_there = false;
  for (const json& s : states) still_there |= s["id"] == good_id;
  EXPECT_TRUE(still_there) << states.dump();

  // The good dump, byte for byte, from the live mount's past.
  const std::string past = mnt + "/.snapfs/at/" + good_id;
  for (int i = 0; i < 4; ++i)
    EXPECT_TRUE(FileHasBytes(past + "/mysite/table" + std::to_string(i) + ".sql", SeededBytes(200000, 10 + i)));
  EXPECT_TRUE(FileHasBytes(past + "/mysite.zip", good_zip));
  const ProcessResult t = RunProcess({"unzip", "-t", past + "/mysite.zip"});
  EXPECT_EQ(t.exit_code, 0) << t.output;
  EXPECT_TRUE(FileHasBytes(mnt + "/mysite/users.sql", "broken\n"));

  // 6. Nobody else reaches the control socket: the store folder is 0700...
  const std::string sock = live.store() + "/daemon.sock";
  struct stat st {};
  ASSERT_EQ(::stat(sock.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(TryAsNobody(sock), "connect: Permission denied");
  // ...and even with the folder and socket opened up, the daemon checks the
  // peer's uid (SO_PEERCRED) and refuses.
  const std::string temp = live.store().substr(0, live.store().rfind('/'));
  struct stat temp_st {};
  ASSERT_EQ(::stat(temp.c_str(), &temp_st), 0);
  ASSERT_EQ(::chmod(temp.c_str(), 0711), 0);
  ASSERT_EQ(::chmod(live.store().c_str(), 0711), 0);
  ASSERT_EQ(::chmod(sock.c_str(), 0666), 0);
  const std::string refused = TryAsNobody(sock);
  ::chmod(sock.c_str(), 0600);
  ::chmod(live.store().c_str(), 0700);
  ::chmod(temp.c_str(), temp_st.st_mode & 07777);
  EXPECT_NE(refused.find("\"ok\":false"), std::string::npos)
      << "[" << refused << "] " << live.DaemonOutput();
  EXPECT_NE(refused.find("only the store's owner"), std::string::npos) << refused;
  // The minimum retention it asked for was not set.
  const ProcessResult policy = Hold({live.store(), "--list", "--json"});
  EXPECT_NE(policy.output.find("\"min_retention_ns\":0"), std::string::npos) << policy.output;

  EXPECT_TRUE(live.Unmount());
  EXPECT_NE(::access(sock.c_str(), F_OK), 0);  // The socket goes with the daemon.
}

TEST(RetentionMountTest, HoldAndMinRetentionThroughTheDaemonAndOnAnUnmountedStore) {
  SnapfsMount live({"--state-gap", "1s", "--min-retention", "1h"});
  ASSERT_TRUE(live.ok());
  ASSERT_TRUE(live.Mount());
  ASSERT_TRUE(WriteFile(live.mountpoint() + "/a", "a"));
  ProcessResult r = Hold({live.store(), "s1", "--reason", "the empty store"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("hold 1 on s1: active"), std::string::npos) << r.output;
  r = Hold({live.store(), "--min-retention", "30m"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("never lowered"), std::string::npos) << r.output;
  r = Hold({live.store(), "--min-retention", "2h"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(live.Unmount());
  // Unmounted: the tools open the store themselves.
  r = Hold({live.store(), "--list"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("minimum retention: 2h"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("the empty store"), std::string::npos) << r.output;
  r = Hold({live.store(), "--release", "1"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = Prune({live.store(), "--keep-last", "1", "--dry-run"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("younger than the minimum retention (2h)"), std::string::npos) << r.output;
}

TEST(RetentionMountTest, AutomaticPruneFromMountOptionsKeepsHeldStates) {
  SnapfsMount live({"--state-gap", "1s"});
  ASSERT_TRUE(live.ok());
  ASSERT_TRUE(live.Mount());
  for (int i = 0; i < 3; ++i) {
    WaitOutGap();
    ASSERT_TRUE(WriteFile(live.mountpoint() + "/f", SeededBytes(1000, i)));
  }
  EXPECT_EQ(LsStates(live.store()).size(), 4u);
  ASSERT_EQ(Hold({live.store(), "s1"}).exit_code, 0);
  // A bad option value is a usage error.
  ASSERT_TRUE(live.Unmount());
  ProcessResult bad = RunSnapfs({"-f", "-o", "keep_last=x", live.store(), live.mountpoint()});
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  // Remount with keep_last=1: the daemon prunes right after the mount.
  ASSERT_TRUE(live.Mount({"-o", "keep_last=1,prune_interval=1h"}));
  json states;
  for (int i = 0; i < 100; ++i) {
    states = LsStates(live.store());
    if (states.size() == 2u) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(states.size(), 2u) << states.dump() << live.DaemonOutput();
  EXPECT_EQ(states[0]["id"], "s1");  // Held.
  EXPECT_TRUE(FileHasBytes(live.mountpoint() + "/f", SeededBytes(1000, 2)));
}

}  // namespace
}  // namespace snapfs::testing
