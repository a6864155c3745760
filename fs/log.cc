#include "fs/log.h"

#include <syslog.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>

namespace snapfs::fs {
namespace {

std::atomic<bool> to_syslog{false};
std::atomic<const char*> log_name{"snapfs"};

void Log(int priority, const char* format, va_list args) {
  if (to_syslog.load(std::memory_order_acquire)) {
    vsyslog(priority, format, args);
    return;
  }
  // One fprintf call per message, so lines from concurrent threads do not
  // interleave (stdio locks the stream for each call).
  char line[2048];
  vsnprintf(line, sizeof(line), format, args);
  std::fprintf(stderr, "%s: %s\n", log_name.load(std::memory_order_relaxed), line);
}

}  // namespace

void SetLogName(const char* name) { log_name.store(name, std::memory_order_relaxed); }

void LogToSyslog() {
  openlog(log_name.load(std::memory_order_relaxed), LOG_PID, LOG_DAEMON);
  to_syslog.store(true, std::memory_order_release);
}

#define SNAPFS_DEFINE_LOG(name, priority)   \
  void name(const char* format, ...) {      \
    va_list args;                           \
    va_start(args, format);                 \
    Log(priority, format, args);            \
    va_end(args);                           \
  }

SNAPFS_DEFINE_LOG(LogError, LOG_ERR)
SNAPFS_DEFINE_LOG(LogWarning, LOG_WARNING)
SNAPFS_DEFINE_LOG(LogInfo, LOG_INFO)

#undef SNAPFS_DEFINE_LOG

}  // namespace snapfs::fs
