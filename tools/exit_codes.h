// Exit codes of every snapfs program: a stable contract for scripts and
// supervisors (systemd, mount(8)). Messages go to stderr as
// "<program>: <what>: <why>".
#pragma once

#include "store/status.h"

namespace snapfs::tools {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntime = 1;  // Anything else that failed (I/O, store exists on --init).
inline constexpr int kExitUsage = 2;    // Bad command line or option.
inline constexpr int kExitStore = 3;    // Store missing, corrupt, incompatible or in use.
inline constexpr int kExitMount = 4;    // The mount itself failed.
inline constexpr int kExitDamage = 5;   // snapfs-check found damage (the report names it).

// The exit code for a failure to open a store.
inline int ExitCodeForStoreError(const Status& st) {
  switch (st.code()) {
    case Code::kNotFound:
    case Code::kInvalid:
    case Code::kVersion:
    case Code::kBusy:
    case Code::kCorruption:
      return kExitStore;
    default:
      return kExitRuntime;
  }
}

}  // namespace snapfs::tools
