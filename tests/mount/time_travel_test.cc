// Time travel through real mounts: snapfs-mount-at, the hidden .snapfs folder
// of the live mount, and snapfs-ls, as an admin would use them after a cron
// job overwrote the good dump. Everything goes through system calls and the
// programs' command lines.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <random>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/mount/mount_fixture.h"

namespace snapfs::testing {
namespace {

namespace fsys = std::filesystem;

constexpr int64_t kNsPerSec = 1'000'000'000;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// --- The dump -----------------------------------------------------------------

// About `bytes` of a mysqldump-like file for `table`, the same for the same
// seed: a header, CREATE TABLE, INSERT rows, and the trailer a complete dump
// ends with.
std::string SqlDump(const std::string& table, size_t bytes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  static constexpr const char* kWords[] = {"alpha", "bravo", "charlie", "delta", "echo",
                                           "foxtrot", "golf", "hotel", "india", "juliett"};
  std::string out =
      "-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)\n"
      "-- Host: localhost    Database: mysite\n"
      "SET NAMES utf8mb4;\n"
      "DROP TABLE IF EXISTS `" + table + "`;\n"
      "CREATE TABLE `" + table + "` (\n"
      "  `id` int NOT NULL AUTO_INCREMENT,\n"
      "  `name` varchar(64) NOT NULL,\n"
      "  `email` varchar(128) DEFAULT NULL,\n"
      "  `created` datetime NOT NULL,\n"
      "  PRIMARY KEY (`id`)\n"
      ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n"
      "LOCK TABLES `" + table + "` WRITE;\n";
  for (uint64_t id = 1; out.size() < bytes; ++id) {
    const uint64_t r = rng();
    out += "INSERT INTO `" + table + "` VALUES (" + std::to_string(id) + ",'" +
           kWords[r % 10] + "-" + std::to_string(r % 100000) + "','" + kWords[(r >> 8) % 10] +
           std::to_string((r >> 16) % 10000) + "@example.org','2026-05-" +
           std::to_string(10 + (r >> 32) % 15) + " 0" + std::to_string((r >> 40) % 10) + ":" +
           std::to_string(10 + (r >> 44) % 50) + ":00');\n";
  }
  out += "UNLOCK TABLES;\n-- Dump completed on 2026-05-25  6:16:03\n";
  return out;
}

// The good dump: a folder of several files of a few MB.
const std::map<std::string, std::string>& GoodDump() {
  static const std::map<std::string, std::string> files = {
      {"schema.sql", SqlDump("schema_migrations", 64 << 10, 1)},
      {"users.sql", SqlDump("users", 3 << 20, 2)},
      {"orders.sql", SqlDump("orders", 4 << 20, 3)},
      {"posts.sql", SqlDump("posts", 2 << 20, 4)},
  };
  return files;
}

// What the broken 06:25 run leaves: one short file, cut off mid-row.
std::string BrokenDump() {
  std::string s = SqlDump("users", 20 << 10, 2);
  s.resize(s.size() / 2);
  return s + "\nmysqldump: Error 2013: Lost connection to MySQL server during query\n";
}

// --- Helpers ----------------------------------------------------------------

ProcessResult Shell(const std::string& script, const std::vector<std::string>& args = {}) {
  std::vector<std::string> argv{"sh", "-c", script, "sh"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv);
}

// snapfs-ls STORE ARGS... --json, parsed; a failure is reported to gtest and
// gives a discarded value.
nlohmann::json LsJson(const std::string& store, std::vector<std::string> args = {}) {
  args.insert(args.begin(), store);
  args.push_back("--json");
  const ProcessResult r = RunLs(args);
  EXPECT_EQ(r.exit_code, 0) << "snapfs-ls " << store << ": " << r.output;
  return nlohmann::json::parse(r.output, nullptr, /*allow_exceptions=*/false);
}

struct StateRow {
  uint64_t id = 0;  // As in "s<id>".
  uint64_t last_gen = 0;
  int64_t start_ns = 0;
  int64_t end_ns = 0;
};

std::vector<StateRow> States(const std::string& store) {
  std::vector<StateRow> out;
  const nlohmann::json rows = LsJson(store);
  if (!rows.is_array()) return out;
  for (const auto& r : rows) {
    out.push_back(StateRow{std::stoull(r.at("id").get<std::string>().substr(1)),
                           r.at("last_gen").get<uint64_t>(), r.at("start_ns").get<int64_t>(),
                           r.at("end_ns").get<int64_t>()});
  }
  return out;
}

// Every generation the store holds.
size_t GenerationCount(const std::string& store) {
  const nlohmann::json rows = LsJson(store, {"--all"});
  return rows.is_array() ? rows.size() : 0;
}

// Sleeps until more than the store's state gap (`gap_ns`) has passed since
// its newest change, so that the next change starts a new state.
void WaitOutStateGap(const std::string& store, int64_t gap_ns) {
  const std::vector<StateRow> states = States(store);
  ASSERT_FALSE(states.empty());
  const int64_t until = states.back().end_ns + gap_ns + 300'000'000;
  const int64_t now = NowNs();
  if (until > now) std::this_thread::sleep_for(std::chrono::nanoseconds(until - now));
}

// The tree below `root`: for each path (relative), its type, permissions,
// owner, size, mtime and content (regular files) or target (symlinks).
// FIFOs are described, never opened.
std::map<std::string, std::string> TreeOf(const std::string& root) {
  std::map<std::string, std::string> tree;
  std::error_code ec;
  for (auto it = fsys::recursive_directory_iterator(root, ec); !ec && it != fsys::end(it);
       it.increment(ec)) {
    const std::string path = it->path().string();
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
      tree[path] = std::string("lstat: ") + std::strerror(errno);
      continue;
    }
    std::string d = std::to_string(st.st_mode) + " " + std::to_string(st.st_uid) + ":" +
                    std::to_string(st.st_gid) + " " + std::to_string(st.st_size) + " " +
                    std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
    if (S_ISREG(st.st_mode)) d += " " + ReadFile(path);
    if (S_ISLNK(st.st_mode)) d += " -> " + fsys::read_symlink(path, ec).string();
    tree[path.substr(root.size())] = d;
  }
  if (ec) tree["<error>"] = ec.message();
  return tree;
}

// The names readdir(3) returns for `dir`, "." and ".." included.
std::vector<std::string> ReadDirNames(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return names;
  while (const dirent* e = ::readdir(d)) names.emplace_back(e->d_name);
  ::closedir(d);
  return names;
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// Writes the good dump into `root`/mysite and zips it to `root`/mysite.zip
// with zip(1), as the nightly job would.
void WriteGoodDump(const std::string& root) {
  ASSERT_EQ(::mkdir((root + "/mysite").c_str(), 0755), 0) << std::strerror(errno);
  for (const auto& [name, bytes] : GoodDump())
    ASSERT_TRUE(WriteFile(root + "/mysite/" + name, bytes));
  const ProcessResult zip = Shell("cd \"$1\" && zip -q -r mysite.zip mysite", {root});
  ASSERT_EQ(zip.exit_code, 0) << zip.output;
}

// Checks that `root` holds the good dump byte for byte and that its zip
// (whose bytes must be `zip_bytes`) passes unzip -t.
void ExpectGoodDump(const std::string& root, const std::string& zip_bytes) {
  EXPECT_EQ(ReadDirNames(root + "/mysite").size(), GoodDump().size() + 2);
  for (const auto& [name, bytes] : GoodDump())
    EXPECT_TRUE(FileHasBytes(root + "/mysite/" + name, bytes));
  EXPECT_TRUE(FileHasBytes(root + "/mysite.zip", zip_bytes));
  const ProcessResult t = RunProcess({"unzip", "-t", root + "/mysite.zip"});
  EXPECT_EQ(t.exit_code, 0) << t.output;
  EXPECT_NE(t.output.find("No errors detected"), std::string::npos) << t.output;
  // And the files unpacked from the zip are the dump.
  const ProcessResult p = RunProcess({"unzip", "-p", root + "/mysite.zip", "mysite/orders.sql"});
  EXPECT_EQ(p.exit_code, 0);
  EXPECT_TRUE(p.output == GoodDump().at("orders.sql")) << "unzip -p mysite/orders.sql differs";
}

// --- The story ----------------------------------------------------------------

constexpr int64_t kTestGapNs = kNsPerSec;  // --state-gap 1s

// A good dump is written into the live mount; a cron-like job then wipes the
// folder and writes a broken, much smaller dump. snapfs-ls shows both runs as
// states, and both snapfs-mount-at and .snapfs/at/ give back the good dump
// byte for byte, with a zip that unzip -t passes, while the live mount stays
// up and writable.
TEST(TimeTravelStoryTest, GoodDumpComesBackAfterTheCronJobWipedIt) {
  SnapfsMount live({"--state-gap", "1s"});
  ASSERT_TRUE(live.ok());
  ASSERT_TRUE(live.Mount());
  const std::string mnt = live.mountpoint();

  // 1. The good run.
  ASSERT_NO_FATAL_FAILURE(WriteGoodDump(mnt));
  const std::string good_zip = ReadFile(mnt + "/mysite.zip");
  ASSERT_GT(good_zip.size(), 100u << 10);
  const std::vector<StateRow> after_good = States(live.store());
  ASSERT_FALSE(after_good.empty());
  const StateRow good = after_good.back();
  const std::string good_id = "s" + std::to_string(good.id);

  // 2. The broken run, after the quiet gap that ends a run.
  ASSERT_NO_FATAL_FAILURE(WaitOutStateGap(live.store(), kTestGapNs));
  const ProcessResult rm = Shell("cd \"$1\" && rm -rf mysite mysite.zip", {mnt});
  ASSERT_EQ(rm.exit_code, 0) << rm.output;
  ASSERT_EQ(::mkdir((mnt + "/mysite").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(mnt + "/mysite/users.sql", BrokenDump()));
  const ProcessResult zip = Shell("cd \"$1\" && zip -q -r mysite.zip mysite", {mnt});
  ASSERT_EQ(zip.exit_code, 0) << zip.output;
  EXPECT_LT(ReadFile(mnt + "/mysite.zip").size() * 20, good_zip.size());

  // 3. snapfs-ls shows both: the good state unchanged, then the broken one.
  const std::vector<StateRow> states = States(live.store());
  ASSERT_GE(states.size(), after_good.size() + 1);
  EXPECT_EQ(states[after_good.size() - 1].id, good.id);
  EXPECT_EQ(states[after_good.size() - 1].last_gen, good.last_gen);
  const StateRow broken = states.back();
  EXPECT_GT(broken.id, good.last_gen);
  const ProcessResult listing = RunLs({live.store()});
  EXPECT_EQ(listing.exit_code, 0) << listing.output;
  EXPECT_NE(listing.output.find(good_id + " "), std::string::npos) << listing.output;
  EXPECT_NE(listing.output.find("s" + std::to_string(broken.id) + " "), std::string::npos)
      << listing.output;

  // 4. snapfs-mount-at the good state, while the live mount is up.
  {
    PastMount past(live.store(), good_id, live.Scratch("good"));
    ASSERT_TRUE(past.Mount());
    ExpectGoodDump(past.mountpoint(), good_zip);
    // The live mount is still up, writable, and shows the broken run.
    EXPECT_TRUE(IsMountPoint(mnt));
    EXPECT_TRUE(FileHasBytes(mnt + "/mysite/users.sql", BrokenDump()));
    EXPECT_TRUE(WriteFile(mnt + "/restore-note.txt", "restoring from " + good_id + "\n"));
    // Copy the good dump back out, as the admin would.
    const std::string restore = live.Scratch("restore");
    const ProcessResult cp = RunProcess({"cp", "-a", past.mountpoint() + "/mysite", restore});
    ASSERT_EQ(cp.exit_code, 0) << cp.output;
    for (const auto& [name, bytes] : GoodDump())
      EXPECT_TRUE(FileHasBytes(restore + "/" + name, bytes));
    EXPECT_TRUE(past.Unmount());
  }

  // 5. The same through .snapfs/at/<WHEN>/ of the live mount: by state id and
  // by the moment the good run ended.
  ExpectGoodDump(mnt + "/.snapfs/at/" + good_id, good_zip);
  ExpectGoodDump(mnt + "/.snapfs/states/" + good_id, good_zip);
  char at[32];
  std::snprintf(at, sizeof at, "@%lld.%09lld", static_cast<long long>(good.end_ns / kNsPerSec),
                static_cast<long long>(good.end_ns % kNsPerSec));
  ExpectGoodDump(mnt + "/.snapfs/at/" + at, good_zip);

  // Nothing of this touched the live tree.
  EXPECT_TRUE(FileHasBytes(mnt + "/mysite/users.sql", BrokenDump()));
  EXPECT_TRUE(FileHasBytes(mnt + "/restore-note.txt", "restoring from " + good_id + "\n"));
  EXPECT_TRUE(IsMountPoint(mnt));
}

// --- EROFS everywhere in the past -------------------------------------------

// The result of one system call and the errno it left.
struct Outcome {
  int ret;
  int err;
};

template <typename Call>
Outcome Try(Call call) {
  errno = 0;
  const int ret = call();
  return Outcome{ret, errno};
}

// open(2) that closes what it opened, for Try.
int OpenAndClose(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC | O_NONBLOCK, 0644);
  if (fd >= 0) ::close(fd);
  return fd < 0 ? -1 : 0;
}

::testing::AssertionResult FailsWith(const std::string& what, Outcome o,
                                     std::initializer_list<int> errnos) {
  if (o.ret != -1) return ::testing::AssertionFailure() << what << " succeeded";
  for (int e : errnos)
    if (o.err == e) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << " failed with " << std::strerror(o.err)
                                       << ", not " << std::strerror(*errnos.begin());
}

// Makes the tree every EROFS test works on: the folder `root` and six
// entries in it.
void MakeTree(const std::string& root) {
  ASSERT_EQ(::mkdir(root.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((root + "/d").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((root + "/d/empty").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(root + "/d/f", SeededBytes(200'000, 11)));
  ASSERT_TRUE(WriteFile(root + "/top", "top\n"));
  ASSERT_EQ(::symlink("d/f", (root + "/l").c_str()), 0);
  ASSERT_EQ(::mkfifo((root + "/fifo").c_str(), 0644), 0);
}

// Runs every mutating system call on the tree MakeTree made in `root` (read
// only) and checks each fails with EROFS. `outside` is a writable folder of
// the live tree holding a file "outside-file", for renames and links into
// and out of `root`; `cross` are the errnos allowed for those (EXDEV when
// `root` is another mount).
void ExpectEveryMutationFails(const std::string& root, const std::string& outside,
                              std::initializer_list<int> cross) {
  const std::string d = root + "/d", f = root + "/d/f";
  const std::string out_file = outside + "/outside-file";

  EXPECT_TRUE(FailsWith("open O_WRONLY", Try([&] { return OpenAndClose(f, O_WRONLY); }), {EROFS}));
  EXPECT_TRUE(FailsWith("open O_RDWR", Try([&] { return OpenAndClose(f, O_RDWR); }), {EROFS}));
  EXPECT_TRUE(FailsWith("open O_WRONLY|O_TRUNC",
                        Try([&] { return OpenAndClose(f, O_WRONLY | O_TRUNC); }), {EROFS}));
  EXPECT_TRUE(FailsWith("open O_WRONLY|O_APPEND",
                        Try([&] { return OpenAndClose(f, O_WRONLY | O_APPEND); }), {EROFS}));
  EXPECT_TRUE(FailsWith("open O_CREAT new",
                        Try([&] { return OpenAndClose(d + "/new", O_CREAT | O_WRONLY); }),
                        {EROFS}));
  EXPECT_TRUE(FailsWith("open O_CREAT|O_EXCL new",
                        Try([&] { return OpenAndClose(d + "/new", O_CREAT | O_EXCL | O_RDWR); }),
                        {EROFS}));
  EXPECT_TRUE(FailsWith("open O_CREAT existing",
                        Try([&] { return OpenAndClose(f, O_CREAT | O_WRONLY); }), {EROFS}));
  EXPECT_TRUE(FailsWith("creat", Try([&] {
                          const int fd = ::creat((d + "/created").c_str(), 0644);
                          if (fd >= 0) ::close(fd);
                          return fd < 0 ? -1 : 0;
                        }),
                        {EROFS}));
  EXPECT_TRUE(FailsWith("mkdir", Try([&] { return ::mkdir((d + "/newdir").c_str(), 0755); }),
                        {EROFS}));
  EXPECT_TRUE(FailsWith("rmdir", Try([&] { return ::rmdir((d + "/empty").c_str()); }), {EROFS}));
  EXPECT_TRUE(FailsWith("unlink", Try([&] { return ::unlink(f.c_str()); }), {EROFS}));
  EXPECT_TRUE(FailsWith("unlink symlink", Try([&] { return ::unlink((root + "/l").c_str()); }),
                        {EROFS}));
  EXPECT_TRUE(FailsWith("unlink fifo", Try([&] { return ::unlink((root + "/fifo").c_str()); }),
                        {EROFS}));
  EXPECT_TRUE(FailsWith("rename in folder",
                        Try([&] { return ::rename(f.c_str(), (d + "/g").c_str()); }), {EROFS}));
  EXPECT_TRUE(FailsWith("rename across folders",
                        Try([&] { return ::rename(f.c_str(), (root + "/f").c_str()); }),
                        {EROFS}));
  EXPECT_TRUE(FailsWith("rename over a file",
                        Try([&] { return ::rename((root + "/top").c_str(), f.c_str()); }),
                        {EROFS}));
  EXPECT_TRUE(FailsWith(
      "rename folder", Try([&] { return ::rename((d + "/empty").c_str(), (root + "/e").c_str()); }),
      {EROFS}));
  EXPECT_TRUE(FailsWith("rename out of",
                        Try([&] { return ::rename(f.c_str(), (outside + "/f-out").c_str()); }),
                        cross));
  EXPECT_TRUE(FailsWith("rename into",
                        Try([&] { return ::rename(out_file.c_str(), (d + "/in").c_str()); }),
                        cross));
  EXPECT_TRUE(FailsWith("link", Try([&] { return ::link(f.c_str(), (d + "/f2").c_str()); }),
                        {EROFS}));
  EXPECT_TRUE(FailsWith("link out of",
                        Try([&] { return ::link(f.c_str(), (outside + "/f-link").c_str()); }),
                        cross));
  EXPECT_TRUE(FailsWith("link into",
                        Try([&] { return ::link(out_file.c_str(), (d + "/in-link").c_str()); }),
                        cross));
  EXPECT_TRUE(FailsWith("symlink", Try([&] { return ::symlink("f", (d + "/s").c_str()); }),
                        {EROFS}));
  EXPECT_TRUE(FailsWith("chmod", Try([&] { return ::chmod(f.c_str(), 0600); }), {EROFS}));
  EXPECT_TRUE(FailsWith("chmod folder", Try([&] { return ::chmod(d.c_str(), 0700); }), {EROFS}));
  EXPECT_TRUE(FailsWith("chown", Try([&] { return ::chown(f.c_str(), 1, 1); }), {EROFS}));
  EXPECT_TRUE(FailsWith("lchown symlink",
                        Try([&] { return ::lchown((root + "/l").c_str(), 1, 1); }), {EROFS}));
  EXPECT_TRUE(FailsWith("utimensat now",
                        Try([&] { return ::utimensat(AT_FDCWD, f.c_str(), nullptr, 0); }),
                        {EROFS}));
  const timespec times[2] = {{1, 0}, {2, 0}};
  EXPECT_TRUE(FailsWith("utimensat",
                        Try([&] { return ::utimensat(AT_FDCWD, f.c_str(), times, 0); }), {EROFS}));
  EXPECT_TRUE(FailsWith("truncate 0", Try([&] { return ::truncate(f.c_str(), 0); }), {EROFS}));
  EXPECT_TRUE(FailsWith("truncate grow", Try([&] { return ::truncate(f.c_str(), 1 << 20); }),
                        {EROFS}));
  EXPECT_TRUE(FailsWith("mknod regular",
                        Try([&] { return ::mknod((d + "/node").c_str(), S_IFREG | 0644, 0); }),
                        {EROFS}));
  EXPECT_TRUE(FailsWith("mknod char device",
                        Try([&] {
                          return ::mknod((d + "/null").c_str(), S_IFCHR | 0644, makedev(1, 3));
                        }),
                        {EROFS}));
  EXPECT_TRUE(FailsWith("mkfifo", Try([&] { return ::mkfifo((d + "/fifo2").c_str(), 0644); }),
                        {EROFS}));
  // Extended attributes are not supported at all; whatever the errno, the
  // call must fail and change nothing.
  EXPECT_EQ(::setxattr(f.c_str(), "user.snapfs-test", "x", 1, 0), -1);
  EXPECT_EQ(::removexattr(f.c_str(), "user.snapfs-test"), -1);
  char value[8];
  EXPECT_EQ(::getxattr(f.c_str(), "user.snapfs-test", value, sizeof value), -1);
}

// The tree MakeTree made is at generation `gen`: show it through `root`
// after trying every mutating call, and check that nothing changed there, in
// the live tree, or in the store's history.
void CheckEveryMutationFailsAndChangesNothing(SnapfsMount& live, const std::string& root,
                                              std::initializer_list<int> cross) {
  const std::string outside = live.mountpoint() + "/outside";
  ASSERT_EQ(::mkdir(outside.c_str(), 0755), 0);
  const auto past_before = TreeOf(root);
  ASSERT_EQ(past_before.size(), 6u);  // d d/empty d/f top l fifo
  ASSERT_TRUE(WriteFile(outside + "/outside-file", "outside\n"));
  const auto live_before = TreeOf(live.mountpoint());
  const size_t generations = GenerationCount(live.store());

  ExpectEveryMutationFails(root, outside, cross);

  EXPECT_EQ(TreeOf(root), past_before);
  EXPECT_EQ(TreeOf(live.mountpoint()), live_before);
  EXPECT_EQ(GenerationCount(live.store()), generations);
  // The tree read back by a fresh mount is the same too.
  EXPECT_TRUE(FileHasBytes(root + "/d/f", SeededBytes(200'000, 11)));
}

// The live tree's newest generation.
uint64_t Latest(const std::string& store) {
  const std::vector<StateRow> states = States(store);
  return states.empty() ? 0 : states.back().last_gen;
}

class PastStateTest : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_NO_FATAL_FAILURE(MakeTree(Path("tree")));
    gen_ = Latest(mount().store());
    ASSERT_GT(gen_, 0u);
  }
  std::string Gen() const { return "g" + std::to_string(gen_); }
  uint64_t gen_ = 0;
};

TEST_F(PastStateTest, EveryMutatingCallInAPastMountFailsWithErofsAndChangesNothing) {
  PastMount past(mount().store(), Gen(), mount().Scratch("past"));
  ASSERT_TRUE(past.Mount());
  // Renames and links between two mounts are EXDEV before the file system is
  // asked; they must still change nothing.
  CheckEveryMutationFailsAndChangesNothing(mount(), past.mountpoint() + "/tree", {EROFS, EXDEV});
  EXPECT_TRUE(FailsWith("rmdir of the past root's folder",
                        Try([&] { return ::rmdir((past.mountpoint() + "/tree").c_str()); }),
                        {EROFS}));
  // A past mount has no .snapfs folder of its own.
  struct stat st {};
  EXPECT_EQ(::stat((past.mountpoint() + "/.snapfs").c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);
}

TEST_F(PastStateTest, EveryMutatingCallUnderSnapfsFailsWithErofsAndChangesNothing) {
  // The same mount: renames and links into and out of .snapfs reach snapfs.
  CheckEveryMutationFailsAndChangesNothing(mount(), Path(".snapfs/at/" + Gen() + "/tree"),
                                           {EROFS});
}

TEST_F(PastStateTest, SnapfsFolderItselfCannotBeChanged) {
  const std::string snap = Path(".snapfs");
  const std::string view = snap + "/at/" + Gen();
  const auto before = TreeOf(view);
  const size_t generations = GenerationCount(mount().store());
  EXPECT_TRUE(FailsWith("rmdir .snapfs", Try([&] { return ::rmdir(snap.c_str()); }), {EROFS}));
  EXPECT_TRUE(FailsWith("unlink .snapfs", Try([&] { return ::unlink(snap.c_str()); }),
                        {EROFS, EISDIR}));
  EXPECT_TRUE(FailsWith("rename .snapfs",
                        Try([&] { return ::rename(snap.c_str(), Path("x").c_str()); }), {EROFS}));
  EXPECT_TRUE(FailsWith("rename over .snapfs",
                        Try([&] { return ::rename(Path("tree/top").c_str(), snap.c_str()); }),
                        {EROFS, EISDIR}));
  EXPECT_TRUE(FailsWith("rename a folder over .snapfs",
                        Try([&] { return ::rename(Path("tree/d").c_str(), snap.c_str()); }),
                        {EROFS}));
  EXPECT_TRUE(FailsWith("mkdir .snapfs", Try([&] { return ::mkdir(snap.c_str(), 0755); }),
                        {EEXIST}));
  EXPECT_TRUE(FailsWith("chmod .snapfs", Try([&] { return ::chmod(snap.c_str(), 0777); }),
                        {EROFS}));
  EXPECT_TRUE(FailsWith("mkdir .snapfs/at/x",
                        Try([&] { return ::mkdir((snap + "/at/x").c_str(), 0755); }), {EROFS}));
  EXPECT_TRUE(FailsWith("create .snapfs/states/x",
                        Try([&] { return OpenAndClose(snap + "/states/x", O_CREAT | O_WRONLY); }),
                        {EROFS}));
  EXPECT_TRUE(FailsWith("rmdir a view", Try([&] { return ::rmdir(view.c_str()); }), {EROFS}));
  EXPECT_TRUE(FailsWith("rename a view",
                        Try([&] { return ::rename(view.c_str(), (snap + "/at/g1").c_str()); }),
                        {EROFS}));
  EXPECT_TRUE(FailsWith("chmod a view", Try([&] { return ::chmod(view.c_str(), 0700); }),
                        {EROFS}));
  // rm -rf of it by name walks into every state and fails on each entry.
  const ProcessResult rm = RunProcess({"rm", "-rf", snap});
  EXPECT_NE(rm.exit_code, 0) << rm.output;
  EXPECT_EQ(TreeOf(view), before);
  EXPECT_EQ(GenerationCount(mount().store()), generations);
}

// --- Hidden, yet there --------------------------------------------------------

TEST_F(PastStateTest, SnapfsIsNotListedButOpensByName) {
  ASSERT_TRUE(WriteFile(Path(".hidden"), "dot file\n"));
  const std::vector<std::string> names = ReadDirNames(mount().mountpoint());
  EXPECT_TRUE(Contains(names, ".hidden"));
  EXPECT_TRUE(Contains(names, "tree"));
  EXPECT_FALSE(Contains(names, ".snapfs"));

  const ProcessResult find = RunProcess({"find", mount().mountpoint()});
  EXPECT_EQ(find.exit_code, 0) << find.output;
  EXPECT_NE(find.output.find("/tree/d/f"), std::string::npos) << find.output;
  EXPECT_EQ(find.output.find(".snapfs"), std::string::npos) << find.output;
  const ProcessResult ls = RunProcess({"ls", "-a", mount().mountpoint()});
  EXPECT_EQ(ls.exit_code, 0) << ls.output;
  EXPECT_NE(ls.output.find(".hidden"), std::string::npos) << ls.output;
  EXPECT_EQ(ls.output.find(".snapfs"), std::string::npos) << ls.output;

  struct stat st {};
  ASSERT_EQ(::stat(Path(".snapfs").c_str(), &st), 0) << std::strerror(errno);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  const std::vector<std::string> inside = ReadDirNames(Path(".snapfs"));
  EXPECT_TRUE(Contains(inside, "at"));
  EXPECT_TRUE(Contains(inside, "states"));
  const std::vector<std::string> states = ReadDirNames(Path(".snapfs/states"));
  EXPECT_GE(states.size(), 3u);  // ".", "..", and at least one state.
  EXPECT_TRUE(FileHasBytes(Path(".snapfs/at/" + Gen() + "/tree/d/f"), SeededBytes(200'000, 11)));
}

TEST_F(PastStateTest, RmRfOfEverythingVisibleLeavesHistoryIntact) {
  ASSERT_TRUE(WriteFile(Path(".hidden"), "dot file\n"));
  ASSERT_EQ(::mkdir(Path(".dotdir").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(Path(".dotdir/x"), "x\n"));
  const std::string before = "g" + std::to_string(Latest(mount().store()));
  const auto history = TreeOf(Path(".snapfs/at/" + before));
  ASSERT_EQ(history.size(), 10u) << ::testing::PrintToString(history);

  ProcessResult rm = Shell("rm -rf \"$1\"/*", {mount().mountpoint()});
  EXPECT_EQ(rm.exit_code, 0) << rm.output;
  rm = Shell("rm -rf \"$1\"/.[!.]*", {mount().mountpoint()});
  EXPECT_EQ(rm.exit_code, 0) << rm.output;
  EXPECT_EQ(ReadDirNames(mount().mountpoint()).size(), 2u);  // Only "." and "..".

  EXPECT_EQ(TreeOf(Path(".snapfs/at/" + before)), history);
  EXPECT_TRUE(FileHasBytes(Path(".snapfs/at/" + before + "/.hidden"), "dot file\n"));
  EXPECT_TRUE(FileHasBytes(Path(".snapfs/at/" + Gen() + "/tree/d/f"), SeededBytes(200'000, 11)));
}

// --- Every WHEN form through .snapfs/at/ ------------------------------------

std::string FormatTime(const char* format, time_t secs, bool utc) {
  struct tm tm {};
  if (utc) ::gmtime_r(&secs, &tm);
  else ::localtime_r(&secs, &tm);
  char buf[64];
  return std::string(buf, std::strftime(buf, sizeof buf, format, &tm));
}

TEST(SnapfsAtTest, EveryWhenFormOpensTheRightState) {
  SnapfsMount live({"--state-gap", "1s"});
  ASSERT_TRUE(live.ok());
  ASSERT_TRUE(live.Mount());
  const std::string mnt = live.mountpoint();
  ASSERT_TRUE(WriteFile(mnt + "/a", "one"));
  const StateRow first = States(live.store()).back();
  // Three seconds of quiet: a whole second, and the relative form's
  // rounding, fit between the two states.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  ASSERT_TRUE(WriteFile(mnt + "/a", "two"));
  const StateRow second = States(live.store()).back();
  ASSERT_GT(second.id, first.last_gen);
  ASSERT_GT(second.start_ns - first.end_ns, 2 * kNsPerSec);

  // The first whole second after the first state ended.
  const time_t sec = static_cast<time_t>(first.end_ns / kNsPerSec + 1);
  char epoch[48];
  std::snprintf(epoch, sizeof epoch, "@%lld.%09lld",
                static_cast<long long>(first.end_ns / kNsPerSec),
                static_cast<long long>(first.end_ns % kNsPerSec));
  const std::map<std::string, std::string> expected = {
      {"g" + std::to_string(first.last_gen), "one"},
      {"g" + std::to_string(second.last_gen), "two"},
      {"s" + std::to_string(first.id), "one"},
      {"s" + std::to_string(second.id), "two"},
      {epoch, "one"},
      {"@" + std::to_string(sec), "one"},
      {FormatTime("%Y-%m-%d %H:%M:%S", sec, false), "one"},
      {FormatTime("%Y-%m-%dT%H:%M:%S", sec, false), "one"},
      {FormatTime("%Y-%m-%dT%H:%M:%SZ", sec, true), "one"},
      {FormatTime("%Y-%m-%dT%H:%M:%S+02:00", sec + 7200, true), "one"},
      {FormatTime("%Y-%m-%d %H:%M:%S-0500", sec - 5 * 3600, true), "one"},
      {FormatTime("%Y-%m-%d", sec + 86400, false), "two"},  // Tomorrow, 00:00.
      {"now", "two"},
  };
  for (const auto& [when, bytes] : expected)
    EXPECT_TRUE(FileHasBytes(mnt + "/.snapfs/at/" + when + "/a", bytes)) << "WHEN " << when;

  // Relative: that many whole seconds ago lands between the two states.
  const int64_t ago = (NowNs() - first.end_ns) / kNsPerSec;
  const std::string relative = "-" + std::to_string(ago) + "s";
  EXPECT_TRUE(FileHasBytes(mnt + "/.snapfs/at/" + relative + "/a", "one")) << relative;

  // Before the store's history, malformed, or not a state: not there.
  struct stat st {};
  for (const std::string& name :
       {FormatTime("%Y-%m-%d", sec - 86400, false), std::string("@1"), std::string("-1h1m"),
        std::string("yesterday"), std::string("g999999"), std::string("2026-02-30")}) {
    EXPECT_EQ(::stat((mnt + "/.snapfs/at/" + name).c_str(), &st), -1) << name;
    EXPECT_EQ(errno, ENOENT) << name;
  }
  EXPECT_EQ(::stat((mnt + "/.snapfs/states/g" + std::to_string(first.last_gen)).c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_TRUE(FileHasBytes(mnt + "/.snapfs/states/s" + std::to_string(first.id) + "/a", "one"));
}

// --- snapfs-mount-at while the live daemon writes ------------------------------

TEST(MountAtTest, MountsAStoreTheLiveDaemonIsWritingThenAnUnmountedOne) {
  SnapfsMount live;
  ASSERT_TRUE(live.ok());
  ASSERT_TRUE(live.Mount());
  const std::string mnt = live.mountpoint();
  for (int i = 0; i < 8; ++i)
    ASSERT_TRUE(WriteFile(mnt + "/old-" + std::to_string(i), SeededBytes(300'000, 100 + i)));
  const std::string gen = "g" + std::to_string(Latest(live.store()));

  // A writer keeps changing the live tree: new files, and rewrites of the
  // ones the past state holds.
  ASSERT_EQ(::mkdir((mnt + "/w").c_str(), 0755), 0);
  const std::string daemon_mnt = live.Scratch("past-daemon");
  ASSERT_EQ(::mkdir(daemon_mnt.c_str(), 0755), 0);
  std::atomic<int> written{0};
  std::string writer_error;
  // A jthread: stopped and joined on every way out of the test.
  std::jthread writer([&](std::stop_token stop) {
    for (int i = 0; !stop.stop_requested() && i < 2000; ++i) {
      const std::string bytes = SeededBytes(100'000 + 1000 * (i % 50), 1000 + i);
      const std::string path = i % 3 == 0 ? mnt + "/old-" + std::to_string(i % 8)
                                          : mnt + "/w/new-" + std::to_string(i);
      ::testing::AssertionResult r = WriteFile(path, bytes);
      if (r) r = FileHasBytes(path, bytes);
      if (!r) {
        writer_error = r.message();
        return;
      }
      written.fetch_add(1);
    }
  });

  // Daemon mode: exit 0 means mounted.
  {
    ScopedUnmount guard(daemon_mnt);
    PastMount foreground(live.store(), gen, live.Scratch("past-fg"));
    const int written_before = written.load();
    const ProcessResult r = RunMountAt({live.store(), gen, daemon_mnt});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_TRUE(IsMountPoint(daemon_mnt));
    EXPECT_TRUE(foreground.Mount());
    for (const std::string& root : {daemon_mnt, foreground.mountpoint()}) {
      EXPECT_EQ(ReadDirNames(root).size(), 8u + 2);
      for (int i = 0; i < 8; ++i) {
        EXPECT_TRUE(
            FileHasBytes(root + "/old-" + std::to_string(i), SeededBytes(300'000, 100 + i)));
      }
    }
    EXPECT_GT(written.load(), written_before) << "the live mount was not written meanwhile";
    const pid_t daemon = FindProcessByLastArg(daemon_mnt);
    EXPECT_GT(daemon, 0);
    const ProcessResult u = RunProcess({"fusermount3", "-u", daemon_mnt});
    EXPECT_EQ(u.exit_code, 0) << u.output;
    if (daemon > 0) {
      EXPECT_TRUE(WaitForProcessEnd(daemon, 20'000)) << "snapfs-mount-at still runs";
    }
    EXPECT_TRUE(foreground.Unmount());
  }
  writer.request_stop();
  writer.join();
  EXPECT_EQ(writer_error, "");
  EXPECT_GT(written.load(), 0);
  EXPECT_TRUE(IsMountPoint(mnt));
  ASSERT_TRUE(live.Unmount());

  // The store is not mounted now: it mounts the same past state.
  PastMount past(live.store(), gen, live.Scratch("past-unmounted"));
  ASSERT_TRUE(past.Mount());
  for (int i = 0; i < 8; ++i)
    EXPECT_TRUE(FileHasBytes(past.mountpoint() + "/old-" + std::to_string(i),
                             SeededBytes(300'000, 100 + i)));
  EXPECT_TRUE(past.Unmount());
  EXPECT_FALSE(IsMountPoint(past.mountpoint()));
}

// --- The command line -----------------------------------------------------------

TEST(MountAtCommandTest, ExitCodesAndMessages) {
  SnapfsMount m;
  ASSERT_TRUE(m.ok());
  const std::string mnt = m.mountpoint();

  ProcessResult r = RunMountAt({m.store(), "yesterday", mnt});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("snapfs-mount-at: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("@1779682560"), std::string::npos) << "lists the forms: " << r.output;
  EXPECT_NE(r.output.find("s1234"), std::string::npos) << r.output;

  r = RunMountAt({m.store(), "@1000000000", mnt});  // 2001, before the store.
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("before the store's history"), std::string::npos) << r.output;

  r = RunMountAt({m.store(), "s999999", mnt});
  EXPECT_EQ(r.exit_code, 1) << r.output;

  r = RunMountAt({m.Scratch("no-such-store"), "now", mnt});
  EXPECT_EQ(r.exit_code, 3) << r.output;
  const std::string empty = m.Scratch("empty");
  ASSERT_EQ(::mkdir(empty.c_str(), 0755), 0);
  r = RunMountAt({empty, "now", mnt});  // An empty folder is no store.
  EXPECT_EQ(r.exit_code, 3) << r.output;

  r = RunMountAt({m.store(), "now", m.Scratch("no-such-dir")});
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_NE(r.output.find("snapfs-mount-at: mount point"), std::string::npos) << r.output;

  r = RunMountAt({"-o", "rw", m.store(), "now", mnt});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = RunMountAt({"-o", "no_such_option", m.store(), "now", mnt});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = RunMountAt({m.store(), "now"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_FALSE(IsMountPoint(mnt));

  r = RunMountAt({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("WHEN"), std::string::npos) << r.output;
  r = RunMountAt({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output, "snapfs-mount-at " SNAPFS_VERSION "\n");
}

TEST(MountAtCommandTest, InitChecksTheStateGap) {
  SnapfsMount m;
  for (const char* bad : {"0s", "5", "1x", ""}) {
    const std::string store = m.Scratch(std::string("s") + bad);
    const ProcessResult r = RunSnapfs({"--init", store, "--state-gap", bad});
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.output;
    EXPECT_FALSE(fsys::exists(store)) << bad;
  }
  ProcessResult r = RunSnapfs({"--state-gap", "1s", m.store(), m.mountpoint()});
  EXPECT_EQ(r.exit_code, 2) << "--state-gap without --init: " << r.output;
  r = RunSnapfs({"--init", m.Scratch("s90"), "--state-gap", "1m30s"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(MountAtCommandTest, StoreNeverMountedShowsItsEmptyRoot) {
  SnapfsMount m;
  ASSERT_TRUE(m.ok());
  PastMount past(m.store(), "now", m.Scratch("past"));
  ASSERT_TRUE(past.Mount({"-o", "cache_mb=8,noatime"}));
  EXPECT_EQ(ReadDirNames(past.mountpoint()).size(), 2u);
  struct stat st {};
  ASSERT_EQ(::stat(past.mountpoint().c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(::mkdir((past.mountpoint() + "/x").c_str(), 0755), -1);
  EXPECT_EQ(errno, EROFS);
}

}  // namespace
}  // namespace snapfs::testing
