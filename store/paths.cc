#include "store/paths.h"

#include <algorithm>
#include <optional>
#include <set>

namespace snapfs::store {
namespace {
std::string Child(const std::string& dir, std::string_view name) {
  return (dir == "/" ? "" : dir) + "/" + std::string(name);
}
}  // namespace

Result<std::string> DirPath(Store& store, Ino dir, Generation at) {
  std::vector<std::string> names;  // Leaf first.
  for (Ino cur = dir; cur != kRootIno;) {
    if (names.size() > 4096)
      return Status(Code::kLoop, "directory " + std::to_string(dir) + ": '..' loop");
    SNAPFS_ASSIGN_OR_RETURN(std::optional<DirentRecord> up, store.Lookup(cur, "..", at));
    if (!up)
      return Status::Corruption("directory " + std::to_string(cur) + " has no '..' at g" +
                                std::to_string(at));
    std::optional<std::string> name;
    SNAPFS_RETURN_IF_ERROR(store.ListDir(up->child, at, [&](std::string_view n, const DirentRecord& d) {
      if (d.child != cur || n == "..") return true;
      name = std::string(n);
      return false;
    }));
    if (!name)
      return Status::Corruption("directory " + std::to_string(cur) + " is not listed in its parent " +
                                std::to_string(up->child) + " at g" + std::to_string(at));
    names.push_back(std::move(*name));
    cur = up->child;
  }
  std::string out;
  for (auto it = names.rbegin(); it != names.rend(); ++it) out += "/" + *it;
  return out.empty() ? std::string("/") : out;
}

Result<std::string> PathFinder::DirPathAt(Ino dir, Generation at) {
  auto key = std::make_pair(dir, at);
  auto it = dirs_.find(key);
  if (it != dirs_.end()) return it->second;
  SNAPFS_ASSIGN_OR_RETURN(std::string path, DirPath(store_, dir, at));
  return dirs_.emplace(key, std::move(path)).first->second;
}

Result<std::vector<std::string>> PathFinder::Paths(Ino ino, Generation at) {
  if (ino == kRootIno) return std::vector<std::string>{"/"};
  auto known = names_.find(ino);
  if (known == names_.end()) {
    // Every name the inode was ever given: the log record of each of its
    // versions names the parent and name of a create or link, and both sides
    // of a rename (an exchange moves this inode to the first one).
    std::set<std::pair<Ino, std::string>> names;
    std::vector<Generation> gens;
    SNAPFS_RETURN_IF_ERROR(store_.InodeVersions(ino, [&](Generation g, const InodeRecord&) {
      gens.push_back(g);
      return true;
    }));
    for (Generation g : gens) {
      Result<LogRecord> log = store_.GetLog(g);
      if (!log.ok()) {
        if (log.status().code() == Code::kNotFound) continue;  // Reported by snapfs-check.
        return log.status();
      }
      if (log->parent != 0 && !log->name.empty()) names.emplace(log->parent, log->name);
      if (log->parent2 != 0 && !log->name2.empty()) names.emplace(log->parent2, log->name2);
    }
    known = names_.emplace(ino, std::vector<std::pair<Ino, std::string>>(names.begin(), names.end()))
                .first;
  }
  std::vector<std::string> out;
  for (const auto& [parent, name] : known->second) {
    SNAPFS_ASSIGN_OR_RETURN(std::optional<DirentRecord> d, store_.Lookup(parent, name, at));
    if (!d || d->child != ino) continue;
    SNAPFS_ASSIGN_OR_RETURN(std::string dir, DirPathAt(parent, at));
    out.push_back(Child(dir, name));
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace snapfs::store
