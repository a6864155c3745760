// Logging for the snapfs daemon and the layers it runs.
//
// Messages go to stderr ("snapfs: <message>") until LogToSyslog() is called,
// which the daemon does once it has detached from the terminal; from then on
// they go to syslog (ident "snapfs", LOG_PID, facility LOG_DAEMON). A message
// needs no trailing newline. SetLogName() replaces "snapfs" in both.
//
// Thread-safety: every function may be called from any thread at any time;
// each message is written whole.
#pragma once

namespace snapfs::fs {

// The program name that prefixes messages and is the syslog ident, e.g.
// "snapfs-mount-at"; `name` must outlive the process (a string literal).
// Default "snapfs". Call it first thing in main(), before any other thread
// logs.
void SetLogName(const char* name);

// Sends every later message to syslog instead of stderr.
void LogToSyslog();

// Something failed: a request got an error the user should know about.
void LogError(const char* format, ...) __attribute__((format(printf, 1, 2)));
// Something unusual but handled.
void LogWarning(const char* format, ...) __attribute__((format(printf, 1, 2)));
// Start, stop, and other events worth a line.
void LogInfo(const char* format, ...) __attribute__((format(printf, 1, 2)));

}  // namespace snapfs::fs
