// snapfs::fs::FuseMount — serves a Vfs through the kernel's FUSE device
// (libfuse3, low-level API). Each FUSE request becomes one Vfs call and gets
// exactly one reply; the Vfs comes from the session's userdata, there are no
// globals of ours. No exception crosses a libfuse callback: one that escapes
// a Vfs call is logged and answered with EIO.
//
// Kernel caching: entries and attributes are cached for 1 s on a writable
// view and for an hour on a read-only one (nothing can change it); file
// pages stay cached across opens because every change goes through the
// mount. Permissions are checked by the kernel from the stored modes
// (default_permissions is always on).
//
// This class neither forks nor opens a store: the caller decides how to
// daemonize (see tools/snapfs_main.cc for why it forks before the store is
// opened).
//
// Thread-safety: Mount() and the destructor from one thread; Serve() runs the
// Vfs on a pool of libfuse worker threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "fs/vfs.h"
#include "store/status.h"

struct fuse_session;

namespace snapfs::fs {

struct MountOptions {
  // Where to mount: an absolute path (the daemon changes directory to "/"),
  // an existing directory.
  std::string mountpoint;
  // The source column of /proc/mounts, e.g. "snapfs:/var/lib/snapfs/site".
  // Commas and backslashes are escaped here. Empty: "snapfs".
  std::string fsname;
  // Options for libfuse and the kernel, one per element, as after "-o"
  // (allow_other, nodev, max_read=N, ...). default_permissions, fsname and
  // subtype=snapfs are always added; "ro" is added when the Vfs is read-only.
  std::vector<std::string> fuse_options;
  // libfuse prints every request and reply to the log (stderr). Default off.
  bool debug = false;
  // Worker threads kept alive while idle. Default 10.
  unsigned max_idle_threads = 10;
  // The kernel's readahead window for files of this mount, in KiB: written to
  // the mount's /sys/class/bdi/<dev>/read_ahead_kb after mounting (root
  // only; otherwise the kernel's 128 KiB stays, and the log says so at info
  // level). 0: leave it. See docs/design.md, "Read path".
  unsigned read_ahead_kb = 4096;
};

class FuseMount {
 public:
  // Mounts `vfs` (not owned; it must outlive the FuseMount) at
  // options.mountpoint and installs handlers that make SIGINT, SIGTERM and
  // SIGHUP end Serve(). libfuse's own messages go to the log (fs/log.h).
  // Errors: kInvalid (an option libfuse does not know; the log names it),
  // kIo (the mount point is unusable or mount(2) failed; the message says
  // why).
  static Result<std::unique_ptr<FuseMount>> Mount(Vfs* vfs, const MountOptions& options);

  // Unmounts if still mounted, restores the signal handlers, and calls
  // Vfs::Shutdown() if the kernel had started the session.
  ~FuseMount();
  FuseMount(const FuseMount&) = delete;
  FuseMount& operator=(const FuseMount&) = delete;

  // Serves requests on a thread pool until the file system is unmounted
  // (umount, fusermount3 -u) or one of the signals above arrives. Errors: kIo
  // (reading the FUSE device failed).
  Status Serve();

 private:
  FuseMount(fuse_session* session, unsigned max_idle_threads)
      : session_(session), max_idle_threads_(max_idle_threads) {}

  fuse_session* const session_;
  const unsigned max_idle_threads_;
};

}  // namespace snapfs::fs
