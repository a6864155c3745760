// Security through real mounts (issue 5, point 7): every file snapfs makes in
// a store is owner-only, whatever the umask it was started with, while files
// made through the mount keep the modes asked for; past states, through
// snapfs-mount-at and .snapfs/at/, show the owners and modes recorded then.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "store/store.h"
#include "tests/mount/mount_fixture.h"

namespace snapfs::testing {
namespace {

// Every path under `root` (itself included) with group or other bits.
std::vector<std::string> OpenToOthers(const std::string& root) {
  std::vector<std::string> out;
  auto check = [&](const std::string& p) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) == 0 && (st.st_mode & 077) != 0 && !S_ISLNK(st.st_mode)) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
      out.push_back(p + " " + mode);
    }
  };
  check(root);
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) check(e.path());
  return out;
}

struct Owner {
  uint32_t mode = 0, uid = 0, gid = 0;
  bool operator==(const Owner&) const = default;
};
std::ostream& operator<<(std::ostream& os, const Owner& o) {
  return os << std::oct << o.mode << std::dec << " " << o.uid << ":" << o.gid;
}
Owner OwnerOf(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return {};
  return {st.st_mode & 07777, st.st_uid, st.st_gid};
}

store::Generation Latest(const std::string& store_path) {
  store::OpenOptions options;
  options.read_only = true;
  options.compress_threads = 1;
  Result<std::unique_ptr<store::Store>> s = store::Store::Open(store_path, options);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? (*s)->latest() : 0;
}

TEST(SecurityTest, StoreFilesAreOwnerOnlyWhateverTheUmaskAndMountedFilesKeepTheirModes) {
  const mode_t old = ::umask(0);  // The most open umask: snapfs must not rely on it.
  SnapfsMount m;
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(m.Mount());
  ::umask(022);  // For the files made through the mount below.
  const std::string mnt = m.mountpoint();
  ASSERT_EQ(::mkdir((mnt + "/d").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(mnt + "/d/dump.sql", SeededBytes(3'000'000, 90), /*fsync=*/true));
  ASSERT_TRUE(WriteFile(mnt + "/public", "for all"));
  // The daemon's umask (077 in the store) does not touch what the caller asked for.
  EXPECT_EQ(OwnerOf(mnt + "/d"), (Owner{0755, 0, 0}));
  EXPECT_EQ(OwnerOf(mnt + "/d/dump.sql"), (Owner{0644, 0, 0}));
  EXPECT_EQ(OwnerOf(mnt + "/public").mode, 0644u);
  EXPECT_EQ(OpenToOthers(m.store()), std::vector<std::string>{}) << "while mounted";
  ASSERT_TRUE(m.Unmount());
  ASSERT_TRUE(m.Mount());  // A second pack, RocksDB's files rewritten.
  ASSERT_TRUE(WriteFile(mnt + "/second", SeededBytes(500'000, 91)));
  ASSERT_TRUE(m.Unmount());
  ::umask(old);
  EXPECT_EQ(OpenToOthers(m.store()), std::vector<std::string>{});
}

TEST(SecurityTest, PastStatesShowTheOwnersAndModesRecordedThen) {
  SnapfsMount m;
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(m.Mount());
  const std::string mnt = m.mountpoint();
  ASSERT_EQ(::mkdir((mnt + "/dir").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(mnt + "/dir/f", "secret dump"));
  ASSERT_EQ(::chmod((mnt + "/dir/f").c_str(), 0644), 0);
  const store::Generation before = Latest(m.store());
  ASSERT_EQ(::chown((mnt + "/dir/f").c_str(), 1234, 5678), 0);
  ASSERT_EQ(::chmod((mnt + "/dir/f").c_str(), 0600), 0);
  ASSERT_EQ(::chmod((mnt + "/dir").c_str(), 0700), 0);
  ASSERT_EQ(::chown((mnt + "/dir").c_str(), 4321, 8765), 0);
  const store::Generation after = Latest(m.store());
  ASSERT_GT(after, before);
  const Owner f_before{0644, 0, 0}, f_after{0600, 1234, 5678};
  const Owner d_before{0755, 0, 0}, d_after{0700, 4321, 8765};

  const std::string at = mnt + "/.snapfs/at/";
  EXPECT_EQ(OwnerOf(at + "g" + std::to_string(before) + "/dir/f"), f_before);
  EXPECT_EQ(OwnerOf(at + "g" + std::to_string(before) + "/dir"), d_before);
  EXPECT_EQ(OwnerOf(at + "g" + std::to_string(after) + "/dir/f"), f_after);
  EXPECT_EQ(OwnerOf(at + "g" + std::to_string(after) + "/dir"), d_after);
  {
    PastMount past(m.store(), "g" + std::to_string(before), m.Scratch("before"));
    ASSERT_TRUE(past.Mount());
    EXPECT_EQ(OwnerOf(past.mountpoint() + "/dir/f"), f_before);
    EXPECT_EQ(OwnerOf(past.mountpoint() + "/dir"), d_before);
    ASSERT_TRUE(past.Unmount());
  }
  {
    PastMount past(m.store(), "g" + std::to_string(after), m.Scratch("after"));
    ASSERT_TRUE(past.Mount());
    EXPECT_EQ(OwnerOf(past.mountpoint() + "/dir/f"), f_after);
    EXPECT_EQ(OwnerOf(past.mountpoint() + "/dir"), d_after);
    ASSERT_TRUE(past.Unmount());
  }
}

}  // namespace
}  // namespace snapfs::testing
