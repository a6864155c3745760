#include "tools/time_travel.h"

#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <iostream>
#include <optional>

#include "tools/exit_codes.h"

namespace snapfs::tools {

int Fail(std::string_view program, int code, std::string_view what, std::string_view why) {
  std::cout.flush();
  while (!why.empty() && why.back() == '\n') why.remove_suffix(1);
  std::cerr << program << ": " << what << ": " << why << "\n";
  return code;
}

int RunMain(std::string_view program, int (*main)(int, char**), int argc, char** argv) {
  try {
    return main(argc, argv);
  } catch (const std::exception& e) {
    return Fail(program, kExitRuntime, "internal error", e.what());
  }
}

int FailRead(std::string_view program, std::string_view what, const Status& st) {
  const bool damaged = st.code() == Code::kCorruption || st.code() == Code::kVersion;
  return Fail(program, damaged ? kExitStore : kExitRuntime, what, st.message());
}

Result<std::unique_ptr<store::Store>> OpenStoreForReading(const std::string& path) {
  store::OpenOptions options;
  options.read_only = true;
  options.compress_threads = 1;  // Reading never compresses.
  SNAPFS_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> s, store::Store::Open(path, options));
  SNAPFS_RETURN_IF_ERROR(s->CatchUp());
  return s;
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<std::vector<std::string>> SplitPath(std::string_view path) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(pos, end - pos);
    if (part == "." || part == "..")
      return Status::Invalid("'" + std::string(path) +
                             "': give the path from the store's root, without . or ..");
    if (!part.empty()) out.emplace_back(part);
    pos = end + 1;
  }
  return out;
}

std::string JoinPath(const std::vector<std::string>& components) {
  std::string out;
  for (const std::string& c : components) out += "/" + c;
  return out.empty() ? "/" : out;
}

std::string ChildPath(std::string_view dir, std::string_view name) {
  std::string out(dir);
  if (out.empty() || out.back() != '/') out += '/';
  return out + std::string(name);
}

namespace {
Result<InodeRecord> InodeAt(store::Store& store, Ino ino, Generation at, std::string_view path) {
  SNAPFS_ASSIGN_OR_RETURN(std::optional<InodeRecord> rec, store.GetInode(ino, at));
  if (!rec)
    return Status::Corruption(std::string(path) + " names inode " + std::to_string(ino) +
                              ", which has no record at g" + std::to_string(at));
  return std::move(*rec);
}
}  // namespace

Result<Node> LookupPath(store::Store& store, const std::vector<std::string>& path, Generation at) {
  Node node;
  node.ino = store::kRootIno;
  SNAPFS_ASSIGN_OR_RETURN(node.rec, InodeAt(store, node.ino, at, "/"));
  std::vector<std::string> walked;
  for (const std::string& name : path) {
    if (!S_ISDIR(node.rec.mode))
      return Status(Code::kNotDir, JoinPath(walked) + " is not a directory at g" +
                                       std::to_string(at));
    walked.push_back(name);
    SNAPFS_ASSIGN_OR_RETURN(std::optional<store::DirentRecord> d, store.Lookup(node.ino, name, at));
    if (!d)
      return Status::NotFound(JoinPath(walked) + ": no such file or directory at g" +
                              std::to_string(at));
    node.parent = node.ino;
    node.name = name;
    node.ino = d->child;
    SNAPFS_ASSIGN_OR_RETURN(node.rec, InodeAt(store, node.ino, at, JoinPath(walked)));
  }
  return node;
}

Result<std::vector<Node>> ListChildren(store::Store& store, Ino dir, Generation at) {
  std::vector<Node> out;
  SNAPFS_RETURN_IF_ERROR(store.ListDir(dir, at, [&](std::string_view name, const store::DirentRecord& d) {
    if (name != "..") out.push_back(Node{d.child, dir, std::string(name), {}});
    return true;
  }));
  for (Node& n : out) {
    SNAPFS_ASSIGN_OR_RETURN(
        n.rec, InodeAt(store, n.ino, at, "directory " + std::to_string(dir) + " entry '" + n.name + "'"));
  }
  return out;
}

std::string ModeString(uint32_t mode) {
  std::string s = "?---------";
  switch (mode & S_IFMT) {
    case S_IFREG: s[0] = '-'; break;
    case S_IFDIR: s[0] = 'd'; break;
    case S_IFLNK: s[0] = 'l'; break;
    case S_IFIFO: s[0] = 'p'; break;
    case S_IFSOCK: s[0] = 's'; break;
    case S_IFCHR: s[0] = 'c'; break;
    case S_IFBLK: s[0] = 'b'; break;
  }
  static constexpr char kRwx[] = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i)
    if (mode & (0400u >> i)) s[1 + i] = kRwx[i];
  auto special = [&](uint32_t bit, int pos, char set_x, char set_no_x) {
    if (mode & bit) s[pos] = s[pos] == '-' ? set_no_x : set_x;
  };
  special(S_ISUID, 3, 's', 'S');
  special(S_ISGID, 6, 's', 'S');
  special(S_ISVTX, 9, 't', 'T');
  return s;
}

std::string OctalMode(uint32_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", mode & 07777);
  return buf;
}

const char* TypeName(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "dir";
    case S_IFLNK: return "symlink";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "socket";
    case S_IFCHR: return "chardev";
    case S_IFBLK: return "blockdev";
    default: return "?";
  }
}

std::string FormatBytes(uint64_t bytes, bool exact) {
  return exact ? std::to_string(bytes) : store::FormatSize(bytes);
}

void PutTime(nlohmann::json& obj, const std::string& key, int64_t time_ns) {
  obj[key + "_ns"] = time_ns;
  obj[key] = store::FormatIsoTime(time_ns);
}

std::string JsonText(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void PrintJson(const nlohmann::json& value) { std::cout << JsonText(value) << "\n"; }

std::string WhenHelp() {
  return std::string(
             "\nWHEN is the newest state at or before a moment, given as one of:\n") +
         store::kWhenForms +
         "A date alone is 00:00 local time at the start of that day. To name exactly a\n"
         "state listed by snapfs-ls, use its id.\n";
}

const char kExitCodesHelp[] =
    "\nExit codes: 0 ok; 1 runtime error (WHEN before the store's history, no such\n"
    "PATH, I/O); 2 usage error (bad option or WHEN); 3 store missing, not a store,\n"
    "damaged or of an incompatible version.\n";

}  // namespace snapfs::tools
