// snapfs-ls: what a store holds, without mounting it.
//
//   snapfs-ls STORE [--gap DURATION] [--json] [--bytes]  the states (bursts of changes)
//   snapfs-ls STORE --all [--json]                       every generation
//   snapfs-ls STORE --at WHEN [PATH] [-R] [-n] [--json]  PATH as it stood at WHEN
//   snapfs-ls STORE --history PATH [--json] [--bytes]    every version of PATH
//
// Works while the daemon writes (a read-only RocksDB secondary). Reference:
// docs/cli.md; exit codes: tools/exit_codes.h.
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "store/store.h"
#include "store/when.h"
#include "tools/exit_codes.h"
#include "tools/time_travel.h"

namespace snapfs::tools {
namespace {

constexpr char kProgram[] = "snapfs-ls";

struct Args {
  std::string store;
  std::string path;
  std::string at;
  std::string history;
  std::string gap;
  bool all = false;
  bool json = false;
  bool recursive = false;
  bool numeric = false;
  bool bytes = false;
};

int ReadFailed(const std::string& what, const Status& st) { return FailRead(kProgram, what, st); }

// --- States ------------------------------------------------------------------

// One row of the listing: one stored state, or several merged by --gap.
struct StateRow {
  store::State sum;            // first_gen of the first state; sums of the counters.
  Generation last_id = 0;      // Id of the newest stored state in the row.
  uint64_t states = 0;
  // Retention marks of the row's states (docs/retention.md).
  bool held = false;           // An active hold pins one of them.
  bool guard = false;          // The state after one of them shrank the tree sharply.
  std::vector<uint64_t> holds = {};  // Ids of the active holds.
};

std::string Flags(const StateRow& r) {
  std::string f = r.held ? "held" : "";
  if (r.guard) f += f.empty() ? "guard" : ",guard";
  return f;
}

void PrintStateRow(const StateRow& r, const Args& args, nlohmann::json* rows) {
  const store::State& s = r.sum;
  const std::string id = "s" + std::to_string(r.last_id);
  if (rows != nullptr) {
    nlohmann::json j = {{"id", id},
                        {"first_gen", s.first_gen},
                        {"last_gen", s.last_gen},
                        {"states", r.states},
                        {"changes", s.changes},
                        {"files_changed", s.files_changed},
                        {"bytes_written", s.bytes_written},
                        {"bytes_stored", s.bytes_stored},
                        {"held", r.held},
                        {"holds", r.holds},
                        {"guard", r.guard}};
    if (s.has_totals) {
      j["tree_files"] = s.tree_files;
      j["tree_bytes"] = s.tree_bytes;
    }
    PutTime(j, "start", s.start_ns);
    PutTime(j, "end", s.end_ns);
    rows->push_back(std::move(j));
    return;
  }
  std::printf("%-10s %-19s  %-19s %8llu %8llu %11s %11s  %s\n", id.c_str(),
              store::FormatLocalTime(s.start_ns).c_str(), store::FormatLocalTime(s.end_ns).c_str(),
              static_cast<unsigned long long>(s.changes),
              static_cast<unsigned long long>(s.files_changed),
              FormatBytes(s.bytes_written, args.bytes).c_str(),
              FormatBytes(s.bytes_stored, args.bytes).c_str(), Flags(r).c_str());
}

// Cost: one record per stored state; the log is not read.
int ListStates(store::Store& store, const Args& args, int64_t gap_ns) {
  nlohmann::json rows = nlohmann::json::array();
  nlohmann::json* out = args.json ? &rows : nullptr;
  // Retention marks: active holds and the guard (one pass over the states
  // and the holds, which are few).
  std::vector<store::State> all;
  Status st = store.ListStates(1, [&](const store::State& s) {
    all.push_back(s);
    return true;
  });
  if (!st.ok()) return ReadFailed("reading states", st);
  Result<std::vector<store::HoldRecord>> holds = store.ListHolds();
  if (!holds.ok()) return ReadFailed("reading holds", holds.status());
  Result<store::RetentionPolicy> policy = store.GetRetentionPolicy();
  if (!policy.ok()) return ReadFailed("reading the retention policy", policy.status());
  const int64_t now = NowNs();
  std::map<Generation, store::StateDecision> marks;
  for (store::StateDecision& d : store::ProtectStates(all, *holds, *policy, now))
    marks.emplace(d.state.first_gen, std::move(d));
  std::map<Generation, std::vector<uint64_t>> hold_ids;
  for (const store::HoldRecord& h : *holds)
    if (store::HoldActive(h, now)) hold_ids[h.state].push_back(h.id);

  if (!args.json)
    std::printf("%-10s %-19s  %-19s %8s %8s %11s %11s  %s\n", "STATE", "START", "END", "CHANGES",
                "FILES", "WRITTEN", "STORED", "FLAGS");
  std::optional<StateRow> row;
  for (const store::State& s : all) {
    if (row && gap_ns > 0 && s.start_ns - row->sum.end_ns <= gap_ns) {
      store::State& sum = row->sum;
      sum.last_gen = s.last_gen;
      sum.end_ns = s.end_ns;
      sum.changes += s.changes;
      sum.files_changed += s.files_changed;
      sum.bytes_written += s.bytes_written;
      sum.bytes_stored += s.bytes_stored;
      sum.has_totals = s.has_totals;  // The row ends with s: its tree totals.
      sum.tree_files = s.tree_files;
      sum.tree_bytes = s.tree_bytes;
    } else {
      if (row) PrintStateRow(*row, args, out);
      row = StateRow{s, 0, 0};
    }
    row->last_id = s.first_gen;
    row->states++;
    if (auto m = marks.find(s.first_gen); m != marks.end()) {
      row->held |= m->second.held;
      row->guard |= m->second.guarded;
    }
    for (uint64_t id : hold_ids[s.first_gen]) row->holds.push_back(id);
  }
  if (row) PrintStateRow(*row, args, out);
  if (args.json) PrintJson(rows);
  return kExitOk;
}

// --- Every generation (--all) ----------------------------------------------

// Paths of inodes as the log is replayed from generation 1: the log names a
// file only where it is created, linked, renamed or removed, and writes name
// just the inode. A removed inode keeps its last path, marked "(deleted)".
class NameTracker {
 public:
  std::string Label(Ino ino) const {
    auto it = names_.find(ino);
    if (ino == store::kRootIno || it == names_.end()) return PathOf(ino);
    return it->second.removed ? PathOf(ino) + " (deleted)" : PathOf(ino);
  }
  std::string PathIn(Ino parent, const std::string& name) const {
    return ChildPath(PathOf(parent), name);
  }
  void Set(Ino ino, Ino parent, const std::string& name) { names_[ino] = {parent, name, false}; }
  void Remove(Ino ino, Ino parent, const std::string& name) {
    auto it = names_.find(ino);
    if (it != names_.end() && it->second.parent == parent && it->second.name == name)
      it->second.removed = true;
  }

 private:
  struct Name {
    Ino parent;
    std::string name;
    bool removed;
  };
  std::string PathOf(Ino ino) const {
    if (ino == store::kRootIno) return "/";
    auto it = names_.find(ino);
    if (it == names_.end()) return "<inode " + std::to_string(ino) + ">";
    return PathIn(it->second.parent, it->second.name);
  }

  std::unordered_map<Ino, Name> names_;
};

// Cost: one log record per generation (this lists them all).
int ListGenerations(store::Store& store, const Args& args) {
  NameTracker names;
  if (args.json) std::printf("[");
  else std::printf("%8s  %-19s  %-8s %12s  %s\n", "GEN", "TIME", "OP", "SIZE", "PATH");
  for (Generation g = 1; g <= store.latest(); ++g) {
    Result<store::LogRecord> rec = store.GetLog(g);
    if (!rec.ok()) return ReadFailed("reading generation " + std::to_string(g), rec.status());
    const store::LogRecord& log = *rec;
    std::string path, new_path;
    switch (log.op) {
      case store::Op::kCreate:
      case store::Op::kMkdir:
      case store::Op::kSymlink:
      case store::Op::kMknod:
        names.Set(log.ino, log.parent, log.name);
        path = names.Label(log.ino);
        break;
      case store::Op::kLink:
        path = names.PathIn(log.parent, log.name);
        break;
      case store::Op::kUnlink:
      case store::Op::kRmdir:
        path = names.PathIn(log.parent, log.name);
        names.Remove(log.ino, log.parent, log.name);
        break;
      case store::Op::kRename:
        path = names.PathIn(log.parent, log.name);
        new_path = names.PathIn(log.parent2, log.name2);
        names.Set(log.ino, log.parent2, log.name2);
        break;
      default:
        path = names.Label(log.ino);
    }
    if (args.json) {
      nlohmann::json j = {{"generation", g}, {"op", store::OpName(log.op)}, {"ino", log.ino},
                          {"path", path}, {"size", log.size}, {"bytes_written", log.bytes_written},
                          {"bytes_stored", log.bytes_stored}};
      if (!new_path.empty()) j["new_path"] = new_path;
      if (store.IsDropped(g)) j["pruned"] = true;
      PutTime(j, "time", log.time_ns);
      std::printf("%s\n%s", g > 1 ? "," : "", JsonText(j).c_str());
    } else {
      if (!new_path.empty()) path += " -> " + new_path;
      // The log keeps what pruned states did; their trees are gone.
      if (store.IsDropped(g)) path += "  (pruned)";
      std::printf("%8llu  %-19s  %-8s %12llu  %s\n", static_cast<unsigned long long>(g),
                  store::FormatLocalTime(log.time_ns).c_str(), store::OpName(log.op),
                  static_cast<unsigned long long>(log.size), path.c_str());
    }
  }
  if (args.json) std::printf("]\n");
  return kExitOk;
}

// --- A past tree (--at) ----------------------------------------------------

std::string UserName(uint32_t uid, bool numeric) {
  if (!numeric) {
    struct passwd pw, *found = nullptr;
    char buf[4096];
    if (::getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found != nullptr) return pw.pw_name;
  }
  return std::to_string(uid);
}

std::string GroupName(uint32_t gid, bool numeric) {
  if (!numeric) {
    struct group gr, *found = nullptr;
    char buf[4096];
    if (::getgrgid_r(gid, &gr, buf, sizeof buf, &found) == 0 && found != nullptr) return gr.gr_name;
  }
  return std::to_string(gid);
}

std::string SizeColumn(const InodeRecord& r) {
  if (S_ISCHR(r.mode) || S_ISBLK(r.mode))
    return std::to_string(major(r.rdev)) + ", " + std::to_string(minor(r.rdev));
  return std::to_string(r.size);
}

nlohmann::json EntryJson(const Node& n, const std::string& path, const Args& args) {
  const InodeRecord& r = n.rec;
  nlohmann::json j = {{"path", path}, {"name", n.name.empty() ? "/" : n.name}, {"ino", n.ino},
                      {"type", TypeName(r.mode)}, {"mode", OctalMode(r.mode)},
                      {"mode_string", ModeString(r.mode)}, {"uid", r.uid}, {"gid", r.gid},
                      {"owner", UserName(r.uid, args.numeric)},
                      {"group", GroupName(r.gid, args.numeric)}, {"nlink", r.nlink},
                      {"size", r.size}};
  PutTime(j, "mtime", r.mtime_ns);
  if (S_ISLNK(r.mode)) j["target"] = r.symlink;
  if (S_ISCHR(r.mode) || S_ISBLK(r.mode)) j["rdev"] = r.rdev;
  return j;
}

// Prints `nodes` like ls -l, columns sized to fit; `paths` are the names shown.
void PrintLong(const std::vector<Node>& nodes, const std::vector<std::string>& shown,
               const Args& args) {
  size_t wu = 0, wg = 0, ws = 0;
  for (const Node& n : nodes) {
    wu = std::max(wu, UserName(n.rec.uid, args.numeric).size());
    wg = std::max(wg, GroupName(n.rec.gid, args.numeric).size());
    ws = std::max(ws, SizeColumn(n.rec).size());
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    const InodeRecord& r = nodes[i].rec;
    std::string name = shown[i];
    if (S_ISLNK(r.mode)) name += " -> " + r.symlink;
    std::printf("%s %-*s %-*s %*s %s %s\n", ModeString(r.mode).c_str(), static_cast<int>(wu),
                UserName(r.uid, args.numeric).c_str(), static_cast<int>(wg),
                GroupName(r.gid, args.numeric).c_str(), static_cast<int>(ws),
                SizeColumn(r).c_str(), store::FormatLocalTime(r.mtime_ns).c_str(), name.c_str());
  }
}

// Lists directory `dir` (at `path`) and, with -R, every directory below it.
// Cost: one listing and one inode read per entry shown.
Status ListTree(store::Store& store, Generation g, const Node& dir, const std::string& path,
                const Args& args, bool first, nlohmann::json* entries) {
  SNAPFS_ASSIGN_OR_RETURN(std::vector<Node> children, ListChildren(store, dir.ino, g));
  if (entries != nullptr) {
    for (const Node& c : children) entries->push_back(EntryJson(c, ChildPath(path, c.name), args));
  } else {
    if (args.recursive && !first) std::printf("\n%s:\n", path.c_str());
    std::vector<std::string> names;
    for (const Node& c : children) names.push_back(c.name);
    PrintLong(children, names, args);
  }
  if (!args.recursive) return Status::Ok();
  for (const Node& c : children)
    if (S_ISDIR(c.rec.mode))
      SNAPFS_RETURN_IF_ERROR(ListTree(store, g, c, ChildPath(path, c.name), args, false, entries));
  return Status::Ok();
}

int ListAt(store::Store& store, const store::WhenSpec& when, const Args& args) {
  Result<Generation> g = store::ResolveWhen(store, when, NowNs());
  if (!g.ok()) return ReadFailed("--at " + args.at, g.status());
  Result<std::vector<std::string>> parts = SplitPath(args.path.empty() ? "/" : args.path);
  if (!parts.ok()) return Fail(kProgram, kExitUsage, args.path, parts.status().message());
  const std::string path = JoinPath(*parts);
  Result<Node> node = LookupPath(store, *parts, *g);
  if (!node.ok()) {
    const Status& st = node.status();
    const bool missing = st.code() == Code::kNotFound || st.code() == Code::kNotDir;
    return missing ? Fail(kProgram, kExitRuntime, "--at " + args.at, st.message())
                   : ReadFailed(path, st);
  }
  Result<store::LogRecord> log = store.GetLog(*g);
  if (!log.ok()) return ReadFailed("reading generation " + std::to_string(*g), log.status());

  nlohmann::json entries = nlohmann::json::array();
  Status st;
  if (!S_ISDIR(node->rec.mode)) {
    if (args.json) entries.push_back(EntryJson(*node, path, args));
    else PrintLong({*node}, {path}, args);
  } else {
    if (!args.json)
      std::printf("%s at g%llu (%s):\n", path.c_str(), static_cast<unsigned long long>(*g),
                  store::FormatLocalTime(log->time_ns).c_str());
    st = ListTree(store, *g, *node, path, args, true, args.json ? &entries : nullptr);
  }
  if (!st.ok()) return ReadFailed("listing " + path, st);
  if (args.json) {
    nlohmann::json j = {{"generation", *g}, {"path", path}, {"entries", std::move(entries)}};
    PutTime(j, "time", log->time_ns);
    PrintJson(j);
  }
  return kExitOk;
}

// --- The history of one path (--history) -----------------------------------

// One version of an inode that was at the path at some time.
struct Version {
  Generation gen = 0;
  Ino ino = 0;
  InodeRecord rec;
  std::optional<InodeRecord> prev;  // The inode's version before this one.
};

// Describes versions in words, computing the paths of directories on demand.
class Describer {
 public:
  Describer(store::Store& store, std::string path, bool bytes)
      : store_(store), path_(std::move(path)), bytes_(bytes) {}

  Result<std::string> Describe(const Version& v, const store::LogRecord& log) {
    using store::Op;
    const InodeRecord& r = v.rec;
    if (log.ino != v.ino) return DescribeOther(v, log);
    switch (log.op) {
      case Op::kInit:
        return std::string("created (the store's root)");
      case Op::kCreate:
      case Op::kMkdir:
      case Op::kSymlink:
      case Op::kMknod: {
        SNAPFS_ASSIGN_OR_RETURN(std::string where, PathIn(log.parent, log.name, v.gen));
        std::string what = where == path_ ? "created" : "created as " + where;
        if (S_ISLNK(r.mode)) what += " -> " + r.symlink;
        return what;
      }
      case Op::kLink: {
        SNAPFS_ASSIGN_OR_RETURN(std::string where, PathIn(log.parent, log.name, v.gen));
        return "hard link added: " + where;
      }
      case Op::kWrite:
        return "written (" + FormatBytes(log.bytes_written, bytes_) + " written, " +
               FormatBytes(log.bytes_stored, bytes_) + " newly stored)";
      case Op::kTruncate:
        return "truncated to " + FormatBytes(r.size, bytes_);
      case Op::kSetattr:
        return DescribeSetattr(v);
      case Op::kUnlink:
      case Op::kRmdir: {
        SNAPFS_ASSIGN_OR_RETURN(std::string where, PathIn(log.parent, log.name, v.gen));
        std::string what = r.nlink == 0 ? "deleted" : "unlinked (" + std::to_string(r.nlink) +
                                                          " links left)";
        return where == path_ ? what : what + ": " + where;
      }
      case Op::kRename: {
        SNAPFS_ASSIGN_OR_RETURN(std::string from, PathIn(log.parent, log.name, v.gen));
        SNAPFS_ASSIGN_OR_RETURN(std::string to, PathIn(log.parent2, log.name2, v.gen));
        if (to == path_) return "renamed from " + from;
        if (from == path_) return "renamed to " + to;
        return "renamed " + from + " -> " + to;
      }
    }
    return std::string(store::OpName(log.op));
  }

 private:
  // A change made by an operation on another inode: an entry of this
  // directory, or this file replaced by a rename over it.
  Result<std::string> DescribeOther(const Version& v, const store::LogRecord& log) {
    using store::Op;
    const bool in_parent = log.parent == v.ino, in_parent2 = log.parent2 == v.ino;
    if (S_ISDIR(v.rec.mode) && (in_parent || in_parent2)) {
      switch (log.op) {
        case Op::kCreate:
        case Op::kMkdir:
        case Op::kSymlink:
        case Op::kMknod:
          return "entry " + log.name + " created";
        case Op::kLink:
          return "entry " + log.name + " added (hard link)";
        case Op::kUnlink:
        case Op::kRmdir:
          return "entry " + log.name + " deleted";
        case Op::kRename:
          if (in_parent && in_parent2) return "entry " + log.name + " renamed to " + log.name2;
          if (in_parent) {
            SNAPFS_ASSIGN_OR_RETURN(std::string to, PathIn(log.parent2, log.name2, v.gen));
            return "entry " + log.name + " moved to " + to;
          }
          {
            SNAPFS_ASSIGN_OR_RETURN(std::string from, PathIn(log.parent, log.name, v.gen));
            return "entry " + log.name2 + " moved in from " + from;
          }
        default:
          break;
      }
    }
    if (log.op == Op::kRename) {
      SNAPFS_ASSIGN_OR_RETURN(std::string from, PathIn(log.parent, log.name, v.gen));
      if (v.prev && v.rec.nlink < v.prev->nlink)
        return std::string(v.rec.nlink == 0 ? "deleted: " : "unlinked: ") + "replaced by " + from +
               " (renamed over it)";
      return "exchanged with " + from;
    }
    return std::string(store::OpName(log.op)) + " of inode " + std::to_string(log.ino);
  }

  std::string DescribeSetattr(const Version& v) {
    const InodeRecord& r = v.rec;
    if (!v.prev) return "attributes set";
    std::vector<std::string> parts;
    if ((r.mode & 07777) != (v.prev->mode & 07777))
      parts.push_back("chmod " + OctalMode(v.prev->mode) + " -> " + OctalMode(r.mode));
    if (r.uid != v.prev->uid || r.gid != v.prev->gid)
      parts.push_back("chown " + std::to_string(v.prev->uid) + ":" + std::to_string(v.prev->gid) +
                      " -> " + std::to_string(r.uid) + ":" + std::to_string(r.gid));
    if (parts.empty()) parts.push_back("times set");
    std::string out;
    for (const std::string& p : parts) out += (out.empty() ? "" : ", ") + p;
    return out;
  }

  // The path of `name` in directory `parent` as of `g`.
  Result<std::string> PathIn(Ino parent, const std::string& name, Generation g) {
    auto key = std::make_pair(parent, g);
    auto it = dir_paths_.find(key);
    if (it == dir_paths_.end()) {
      SNAPFS_ASSIGN_OR_RETURN(std::string dir, DirPath(store_, parent, g));
      it = dir_paths_.emplace(key, std::move(dir)).first;
    }
    return ChildPath(it->second, name);
  }

  store::Store& store_;
  const std::string path_;
  const bool bytes_;
  std::map<std::pair<Ino, Generation>, std::string> dir_paths_;
};

// Every inode that was ever at `path`: the names along the path are followed
// through every inode that ever held them (a folder deleted and made again is
// two inodes). Cost: the versions of each name along the path.
Result<std::set<Ino>> InodesEverAt(store::Store& store, const std::vector<std::string>& path) {
  std::set<Ino> current{store::kRootIno};
  for (size_t i = 0; i < path.size(); ++i) {
    const bool last = i + 1 == path.size();
    std::set<Ino> next;
    for (Ino dir : current) {
      SNAPFS_RETURN_IF_ERROR(store.DirentVersions(dir, path[i], [&](Generation, const store::DirentRecord& d) {
        if (d.child != 0 && (last || d.type == (S_IFDIR >> 12))) next.insert(d.child);
        return true;
      }));
    }
    current = std::move(next);
  }
  return current;
}

int ListHistory(store::Store& store, const Args& args) {
  Result<std::vector<std::string>> parts = SplitPath(args.history);
  if (!parts.ok()) return Fail(kProgram, kExitUsage, args.history, parts.status().message());
  const std::string path = JoinPath(*parts);
  Result<std::set<Ino>> inodes = InodesEverAt(store, *parts);
  if (!inodes.ok()) return ReadFailed("--history " + path, inodes.status());
  if (inodes->empty())
    return Fail(kProgram, kExitRuntime, path, "no such file or directory at any time in the store");

  std::vector<Version> versions;
  for (Ino ino : *inodes) {
    std::optional<InodeRecord> prev;
    Status st = store.InodeVersions(ino, [&](Generation g, const InodeRecord& rec) {
      versions.push_back(Version{g, ino, rec, prev});
      prev = rec;
      return true;
    });
    if (!st.ok()) return ReadFailed("--history " + path, st);
  }
  std::sort(versions.begin(), versions.end(),
            [](const Version& a, const Version& b) { return std::tie(a.gen, a.ino) < std::tie(b.gen, b.ino); });

  Describer describer(store, path, args.bytes);
  nlohmann::json rows = nlohmann::json::array();
  if (!args.json)
    std::printf("%8s  %-19s  %8s %12s  %s\n", "GEN", "TIME", "INODE", "SIZE", "WHAT");
  for (const Version& v : versions) {
    Result<store::LogRecord> log = store.GetLog(v.gen);
    if (!log.ok()) return ReadFailed("reading generation " + std::to_string(v.gen), log.status());
    // A version made in a pruned state that a later kept state still shows:
    // paths are those of the first kept generation that shows it, and
    // --at gN (N its generation) names the kept state before it, so say so.
    Version shown = v;
    const bool pruned = store.IsDropped(v.gen);
    if (pruned) shown.gen = store.KeptAtOrAfter(v.gen);
    Result<std::string> what = describer.Describe(shown, *log);
    if (!what.ok()) return ReadFailed("--history " + path, what.status());
    if (pruned)
      *what += " (made in a pruned state; shown from g" + std::to_string(shown.gen) + ")";
    if (args.json) {
      nlohmann::json j = {{"generation", v.gen}, {"ino", v.ino}, {"type", TypeName(v.rec.mode)},
                          {"op", store::OpName(log->op)}, {"what", *what}, {"size", v.rec.size},
                          {"mode", OctalMode(v.rec.mode)}, {"uid", v.rec.uid}, {"gid", v.rec.gid},
                          {"nlink", v.rec.nlink}};
      PutTime(j, "time", log->time_ns);
      rows.push_back(std::move(j));
    } else {
      std::printf("%8llu  %-19s  %8llu %12llu  %s\n", static_cast<unsigned long long>(v.gen),
                  store::FormatLocalTime(log->time_ns).c_str(),
                  static_cast<unsigned long long>(v.ino),
                  static_cast<unsigned long long>(v.rec.size), what->c_str());
    }
  }
  if (args.json) PrintJson(rows);
  return kExitOk;
}

constexpr char kDescription[] =
    "snapfs-ls: list a snapfs store's states, a past tree, or the history of one path.\n"
    "Reads the store while the daemon writes it; nothing is changed.";

constexpr char kModes[] = R"(
  snapfs-ls STORE                  one row per state (a burst of changes, e.g. a dump run),
                                   newest last; its id (sN) names it as a WHEN
  snapfs-ls STORE --all            every generation: number, time, operation, size, path
  snapfs-ls STORE --at WHEN [PATH] PATH (default /) as it stood at WHEN, like ls -l
  snapfs-ls STORE --history PATH   every version of the file or folder at PATH, renames
                                   and deletes included

--gap DURATION merges states separated by at most DURATION of quiet into one row,
named by the id of its newest state (so the id still names the row's end). The
store cuts states at its own gap (5 minutes unless set at --init): a shorter
DURATION cannot split them. DURATION: 90s, 15m, 2h, 3d, 1w, 1h30m.
)";

int Main(int argc, char** argv) {
  CLI::App app(kDescription, kProgram);
  app.footer(std::string(kModes) + WhenHelp() + kExitCodesHelp);
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string(kProgram) + ": " + e.what() + "\nRun with --help for more information.\n";
  });
  Args args;
  app.add_option("store", args.store, "The store (a folder made by snapfs --init)")
      ->required()
      ->option_text(" ");
  app.add_option("path", args.path, "With --at: the file or folder to list (default /)")
      ->option_text(" ");
  CLI::Option* at = app.add_option("--at", args.at, "List PATH as it stood at WHEN")
                        ->option_text("WHEN");
  CLI::Option* history =
      app.add_option("--history", args.history, "List every version of PATH")->option_text("PATH");
  CLI::Option* all = app.add_flag("--all", args.all, "List every generation, not states");
  CLI::Option* gap =
      app.add_option("--gap", args.gap, "Merge states at most DURATION apart (see below)")
          ->option_text("DURATION");
  app.add_flag("-R,--recursive", args.recursive, "With --at: list folders below PATH too")
      ->needs(at);
  app.add_flag("-n,--numeric-uid-gid", args.numeric, "With --at: print owners as numbers");
  app.add_flag("--bytes", args.bytes, "Print byte counts exactly, not in KiB/MiB/GiB");
  app.add_flag("--json", args.json, "Print JSON for scripts (the same data; times as ns and ISO)");
  at->excludes(history)->excludes(all)->excludes(gap);
  history->excludes(all)->excludes(gap);
  all->excludes(gap);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  if (!args.path.empty() && args.at.empty())
    return Fail(kProgram, kExitUsage, args.path,
                "a PATH is listed with --at WHEN (or use --history PATH)");

  // Usage errors first, before the store is opened.
  std::optional<store::WhenSpec> when;
  if (at->count() > 0) {
    Result<store::WhenSpec> w = store::ParseWhen(args.at);
    if (!w.ok()) return Fail(kProgram, kExitUsage, "--at", w.status().message());
    when = *w;
  }
  int64_t gap_ns = 0;
  if (gap->count() > 0) {
    Result<int64_t> d = store::ParseDuration(args.gap);
    if (!d.ok()) return Fail(kProgram, kExitUsage, "--gap", d.status().message());
    gap_ns = *d;
  }
  if (history->count() > 0 && args.history.empty())
    return Fail(kProgram, kExitUsage, "--history", "needs a PATH");

  Result<std::unique_ptr<store::Store>> opened = OpenStoreForReading(args.store);
  if (!opened.ok())
    return Fail(kProgram, ExitCodeForStoreError(opened.status()), "cannot open store",
                opened.status().message());
  store::Store& store = **opened;
  if (when) return ListAt(store, *when, args);
  if (history->count() > 0) return ListHistory(store, args);
  if (args.all) return ListGenerations(store, args);
  return ListStates(store, args, gap_ns);
}

}  // namespace
}  // namespace snapfs::tools

int main(int argc, char** argv) {
  return snapfs::tools::RunMain("snapfs-ls", snapfs::tools::Main, argc, argv);
}
