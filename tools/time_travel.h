// What snapfs-ls and snapfs-diff share: opening a store for reading while the
// daemon may be writing it, reading a WHEN from the command line, finding a
// path in the tree as of a generation, and printing inodes.
//
// Every function that reads the store costs a few RocksDB seeks per path
// component or listed entry, never a scan of the store's history.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/key_format.h"
#include "store/paths.h"
#include "store/status.h"
#include "store/store.h"
#include "store/when.h"

namespace snapfs::tools {

using store::Generation;
using store::Ino;
using store::InodeRecord;

// Prints "<program>: <what>: <why>" on stderr; returns `code`.
int Fail(std::string_view program, int code, std::string_view what, std::string_view why);

// Returns main(argc, argv); an exception that escapes it is printed as
// "<program>: internal error: <what>" and gives kExitRuntime, never a crash
// through std::terminate.
int RunMain(std::string_view program, int (*main)(int, char**), int argc, char** argv);

// For an error met while reading an open store: prints "<program>: <what>:
// <why>" and returns kExitStore when the store is damaged or of another
// version, else kExitRuntime (e.g. a WHEN before the store's history).
int FailRead(std::string_view program, std::string_view what, const Status& st);

// Opens the store at `path` read-only (a RocksDB secondary: safe while the
// daemon writes; it sees the daemon's commits up to this call). Errors as
// store::Store::Open.
Result<std::unique_ptr<store::Store>> OpenStoreForReading(const std::string& path);

// The current time, for relative WHENs.
int64_t NowNs();

// "/dump//a.sql/" -> {"dump", "a.sql"}; a relative path is taken from the
// store's root. kInvalid for "." or ".." components.
Result<std::vector<std::string>> SplitPath(std::string_view path);
// {"dump", "a.sql"} -> "/dump/a.sql"; {} -> "/".
std::string JoinPath(const std::vector<std::string>& components);
// `dir` + "/" + name, without doubling the root's slash.
std::string ChildPath(std::string_view dir, std::string_view name);

// An inode found by name in the tree as of some generation.
struct Node {
  Ino ino = 0;
  Ino parent = 0;    // 0 for the root.
  std::string name;  // Empty for the root.
  InodeRecord rec;
};

// The inode at `path` (from SplitPath) as of `at`. kNotFound / kNotDir with a
// message naming the first missing component.
Result<Node> LookupPath(store::Store& store, const std::vector<std::string>& path, Generation at);
// The entries of directory `dir` as of `at` ("..": left out), in byte order
// of names, each with its inode record. kCorruption if an entry names an
// inode that has no record.
Result<std::vector<Node>> ListChildren(store::Store& store, Ino dir, Generation at);
// The path of directory `dir` as of `at`, found through its ".." entries
// (cost: one listing of each ancestor).
using store::DirPath;

// "drwxr-xr-x", "-rw-r--r--", "lrwxrwxrwx", with s/S/t/T as ls(1) prints them.
std::string ModeString(uint32_t mode);
// "0644": the permission bits in octal.
std::string OctalMode(uint32_t mode);
// "file", "dir", "symlink", "fifo", "socket", "chardev", "blockdev", "?".
const char* TypeName(uint32_t mode);
// "0 B", "10.0 KiB", "1.5 GiB"; with `exact`, the plain number of bytes.
std::string FormatBytes(uint64_t bytes, bool exact);
// Both forms of a moment for JSON: {"<key>_ns": 123, "<key>": "2026-...+02:00"}.
void PutTime(nlohmann::json& obj, const std::string& key, int64_t time_ns);
// Writes `value` and a newline to stdout; bytes that are not UTF-8 (names
// can hold any byte) become U+FFFD.
void PrintJson(const nlohmann::json& value);
std::string JsonText(const nlohmann::json& value);

// Footer text for --help: the WHEN forms and the exit codes.
std::string WhenHelp();
extern const char kExitCodesHelp[];

}  // namespace snapfs::tools
