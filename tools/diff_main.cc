// snapfs-diff: what changed in a store between two moments, like zfs diff.
//
//   snapfs-diff STORE WHEN1 WHEN2 [PATH] [--json]
//
// One line per change, sorted by path:
//   + /dump/new.sql (1048576 bytes)          added
//   - /dump/old.sql (524288 bytes)           removed
//   M /dump/db.sql (524288 -> 1048576 bytes) modified: content, size, mode, owner, target
//   R /dump/a.sql -> /dump/b.sql             renamed or moved (same inode)
// Folders end in "/". Reference: docs/cli.md; exit codes: tools/exit_codes.h.
#include <sys/stat.h>

// GCC 12 warns about a null dereference inside CLI11's own string splitting
// (a false positive of -Wnull-dereference in std::vector's reallocation).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop
#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "store/store.h"
#include "store/when.h"
#include "tools/exit_codes.h"
#include "tools/time_travel.h"

namespace snapfs::tools {
namespace {

constexpr char kProgram[] = "snapfs-diff";

// One name of an inode in one of the two trees.
struct Entry {
  Ino parent = 0;
  std::string name;
  std::string path;
  InodeRecord rec;
};
// Every inode under PATH in one tree, with all of its names there.
using Tree = std::map<Ino, std::vector<Entry>>;

// Adds `node` at `path` and everything below it. Cost: one listing and one
// inode read per entry.
Status Collect(store::Store& store, Generation g, const Node& node, const std::string& path,
               int depth, Tree* tree) {
  if (depth > 4096) return Status(Code::kLoop, path + ": directories nested too deep");
  (*tree)[node.ino].push_back(Entry{node.parent, node.name, path, node.rec});
  if (!S_ISDIR(node.rec.mode)) return Status::Ok();
  SNAPFS_ASSIGN_OR_RETURN(std::vector<Node> children, ListChildren(store, node.ino, g));
  for (const Node& c : children)
    SNAPFS_RETURN_IF_ERROR(Collect(store, g, c, ChildPath(path, c.name), depth + 1, tree));
  return Status::Ok();
}

struct Change {
  char kind = '?';  // + - M R
  const Entry* before = nullptr;
  const Entry* after = nullptr;
  std::vector<std::string> details;  // For M: what changed.
  const std::string& path() const { return after != nullptr ? after->path : before->path; }
};

std::string Shown(const Entry& e) { return S_ISDIR(e.rec.mode) ? ChildPath(e.path, "") : e.path; }

// What differs between two versions of one inode, in words; empty if nothing
// that diff reports (times and link counts are not reported).
Result<std::vector<std::string>> Differences(store::Store& store, Ino ino, const InodeRecord& a,
                                             const InodeRecord& b) {
  std::vector<std::string> out;
  if (S_ISREG(a.mode) && S_ISREG(b.mode)) {
    if (a.size != b.size) {
      out.push_back(std::to_string(a.size) + " -> " + std::to_string(b.size) + " bytes");
    } else if (a.content_gen != b.content_gen) {
      // Rewritten: the same chunks in the same places mean the same bytes.
      SNAPFS_ASSIGN_OR_RETURN(std::vector<store::Extent> ea, store.GetExtents(ino, a));
      SNAPFS_ASSIGN_OR_RETURN(std::vector<store::Extent> eb, store.GetExtents(ino, b));
      if (ea != eb) out.push_back("content changed, " + std::to_string(b.size) + " bytes");
    }
  }
  if ((a.mode & S_IFMT) != (b.mode & S_IFMT))
    out.push_back(std::string("type ") + TypeName(a.mode) + " -> " + TypeName(b.mode));
  if ((a.mode & 07777) != (b.mode & 07777))
    out.push_back("mode " + OctalMode(a.mode) + " -> " + OctalMode(b.mode));
  if (a.uid != b.uid || a.gid != b.gid)
    out.push_back("owner " + std::to_string(a.uid) + ":" + std::to_string(a.gid) + " -> " +
                  std::to_string(b.uid) + ":" + std::to_string(b.gid));
  if (a.symlink != b.symlink) out.push_back("target " + a.symlink + " -> " + b.symlink);
  if (a.rdev != b.rdev) out.push_back("device number");
  return out;
}

// The changes from tree `a` to tree `b`. Entries are matched by inode, so a
// renamed file is one R, not a - and a +; a name is its (folder inode, name),
// so the files in a renamed folder are not renamed themselves.
Result<std::vector<Change>> Compare(store::Store& store, const Tree& a, const Tree& b) {
  std::vector<Change> changes;
  auto key = [](const Entry& e) { return std::make_pair(e.parent, e.name); };
  for (const auto& [ino, before] : a) {
    auto it = b.find(ino);
    if (it == b.end()) {
      for (const Entry& e : before) changes.push_back(Change{'-', &e, nullptr, {}});
      continue;
    }
    const std::vector<Entry>& after = it->second;
    std::vector<const Entry*> gone, came;
    for (const Entry& e : before)
      if (std::none_of(after.begin(), after.end(), [&](const Entry& x) { return key(x) == key(e); }))
        gone.push_back(&e);
    for (const Entry& e : after)
      if (std::none_of(before.begin(), before.end(), [&](const Entry& x) { return key(x) == key(e); }))
        came.push_back(&e);
    if (gone.size() == 1 && came.size() == 1) {
      changes.push_back(Change{'R', gone[0], came[0], {}});
    } else {
      for (const Entry* e : gone) changes.push_back(Change{'-', e, nullptr, {}});
      for (const Entry* e : came) changes.push_back(Change{'+', nullptr, e, {}});
    }
    SNAPFS_ASSIGN_OR_RETURN(std::vector<std::string> diff,
                            Differences(store, ino, before[0].rec, after[0].rec));
    if (!diff.empty()) changes.push_back(Change{'M', &before[0], &after[0], std::move(diff)});
  }
  for (const auto& [ino, after] : b)
    if (a.find(ino) == a.end())
      for (const Entry& e : after) changes.push_back(Change{'+', nullptr, &e, {}});
  auto order = [](char kind) { return std::string_view("-+RM").find(kind); };
  std::sort(changes.begin(), changes.end(), [&](const Change& x, const Change& y) {
    return std::make_tuple(x.path(), order(x.kind)) < std::make_tuple(y.path(), order(y.kind));
  });
  return changes;
}

std::string SizeNote(const Entry& e) {
  if (S_ISREG(e.rec.mode)) return " (" + std::to_string(e.rec.size) + " bytes)";
  if (S_ISLNK(e.rec.mode)) return " -> " + e.rec.symlink;
  return "";
}

void PrintChange(const Change& c) {
  switch (c.kind) {
    case '+':
      std::printf("+ %s%s\n", Shown(*c.after).c_str(), SizeNote(*c.after).c_str());
      break;
    case '-':
      std::printf("- %s%s\n", Shown(*c.before).c_str(), SizeNote(*c.before).c_str());
      break;
    case 'R':
      std::printf("R %s -> %s\n", Shown(*c.before).c_str(), Shown(*c.after).c_str());
      break;
    case 'M': {
      std::string details;
      for (const std::string& d : c.details) details += (details.empty() ? "" : ", ") + d;
      std::printf("M %s (%s)\n", Shown(*c.after).c_str(), details.c_str());
      break;
    }
  }
}

nlohmann::json ChangeJson(const Change& c) {
  static const std::map<char, const char*> kNames = {
      {'+', "added"}, {'-', "removed"}, {'M', "modified"}, {'R', "renamed"}};
  const Entry& e = c.after != nullptr ? *c.after : *c.before;
  nlohmann::json j = {{"change", kNames.at(c.kind)}, {"path", e.path}, {"type", TypeName(e.rec.mode)},
                      {"size", e.rec.size}};
  if (c.kind == 'R') j["old_path"] = c.before->path;
  if (c.kind == 'M') {
    j["old_size"] = c.before->rec.size;
    j["old_mode"] = OctalMode(c.before->rec.mode);
    j["mode"] = OctalMode(c.after->rec.mode);
    j["details"] = c.details;
  }
  if (S_ISLNK(e.rec.mode)) j["target"] = e.rec.symlink;
  return j;
}

// PATH as of `g` and everything below it; an empty tree if PATH is absent.
Status CollectAt(store::Store& store, const std::vector<std::string>& parts, Generation g,
                 Tree* tree, bool* found) {
  Result<Node> node = LookupPath(store, parts, g);
  if (!node.ok()) {
    const Code code = node.status().code();
    *found = false;
    return code == Code::kNotFound || code == Code::kNotDir ? Status::Ok() : node.status();
  }
  *found = true;
  return Collect(store, g, *node, JoinPath(parts), 0, tree);
}

constexpr char kFooter[] = R"(
Prints one line per change between the two states, sorted by path:
  + PATH (SIZE bytes)          added
  - PATH (SIZE bytes)          removed
  M PATH (WHAT)                modified: size, content, mode, owner or symlink target
  R OLD -> NEW                 renamed or moved (the same file under another name)
Folders end in "/". Differences are not an error: the exit code is 0 either way.
)";

struct Args {
  std::string store;
  std::string when[2];
  std::string path;
  bool json = false;
};

// Parses the command line into *args; returns an exit code when the program
// is done (--help, a usage error).
std::optional<int> ParseArgs(int argc, char** argv, Args* args) {
  CLI::App app("snapfs-diff: what was added, removed, modified and renamed between two states "
               "of a snapfs store.",
               kProgram);
  app.footer(std::string(kFooter) + WhenHelp() + kExitCodesHelp);
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string(kProgram) + ": " + e.what() + "\nRun with --help for more information.\n";
  });
  app.add_option("store", args->store, "The store (a folder made by snapfs --init)")
      ->required()
      ->option_text(" ");
  app.add_option("when1", args->when[0], "The earlier state (see WHEN below)")
      ->required()
      ->option_text(" ");
  app.add_option("when2", args->when[1], "The later state")->required()->option_text(" ");
  app.add_option("path", args->path, "Compare only this file or folder (default /)")
      ->option_text(" ");
  app.add_flag("--json", args->json, "Print JSON for scripts");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  return std::nullopt;
}

// Prints the change list as JSON, with the two generations compared.
int PrintJsonChanges(store::Store& store, const std::string& path, const Generation (&g)[2],
                     const std::vector<Change>& changes) {
  nlohmann::json out = {{"path", path}};
  for (int i = 0; i < 2; ++i) {
    Result<store::LogRecord> log = store.GetLog(g[i]);
    if (!log.ok()) return FailRead(kProgram, "reading the log", log.status());
    nlohmann::json side = {{"generation", g[i]}};
    PutTime(side, "time", log->time_ns);
    out[i == 0 ? "from" : "to"] = side;
  }
  out["changes"] = nlohmann::json::array();
  for (const Change& c : changes) out["changes"].push_back(ChangeJson(c));
  PrintJson(out);
  return kExitOk;
}

int Main(int argc, char** argv) {
  Args args;
  if (std::optional<int> done = ParseArgs(argc, argv, &args)) return *done;
  // Usage errors first, before the store is opened.
  store::WhenSpec when[2];
  for (int i = 0; i < 2; ++i) {
    Result<store::WhenSpec> w = store::ParseWhen(args.when[i]);
    if (!w.ok()) return Fail(kProgram, kExitUsage, i == 0 ? "WHEN1" : "WHEN2", w.status().message());
    when[i] = *w;
  }
  Result<std::vector<std::string>> parts = SplitPath(args.path.empty() ? "/" : args.path);
  if (!parts.ok()) return Fail(kProgram, kExitUsage, args.path, parts.status().message());
  const std::string path = JoinPath(*parts);

  Result<std::unique_ptr<store::Store>> opened = OpenStoreForReading(args.store);
  if (!opened.ok())
    return Fail(kProgram, ExitCodeForStoreError(opened.status()), "cannot open store",
                opened.status().message());
  store::Store& store = **opened;
  const int64_t now = NowNs();
  Generation g[2];
  Tree tree[2];
  bool found[2];
  for (int i = 0; i < 2; ++i) {
    Result<Generation> r = store::ResolveWhen(store, when[i], now);
    if (!r.ok()) return FailRead(kProgram, args.when[i], r.status());
    g[i] = *r;
    Status st = CollectAt(store, *parts, g[i], &tree[i], &found[i]);
    if (!st.ok()) return FailRead(kProgram, path + " at g" + std::to_string(g[i]), st);
  }
  if (!found[0] && !found[1])
    return Fail(kProgram, kExitRuntime, path,
                "no such file or directory at g" + std::to_string(g[0]) + " or g" +
                    std::to_string(g[1]));
  Result<std::vector<Change>> changes = Compare(store, tree[0], tree[1]);
  if (!changes.ok()) return FailRead(kProgram, "comparing " + path, changes.status());
  if (args.json) return PrintJsonChanges(store, path, g, *changes);
  for (const Change& c : *changes) PrintChange(c);
  return kExitOk;
}

}  // namespace
}  // namespace snapfs::tools

int main(int argc, char** argv) {
  return snapfs::tools::RunMain("snapfs-diff", snapfs::tools::Main, argc, argv);
}
