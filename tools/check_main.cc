// snapfs-check: verifies a store and says exactly what is damaged.
//
//   snapfs-check STORE [--quick] [--json] [--no-progress]
//
// Opens the store read-only (a RocksDB secondary), so it runs on an unmounted
// store and while the daemon writes, and never changes anything. Reference:
// docs/cli.md; the checks: store/check.h; exit codes: tools/exit_codes.h.
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <set>
#include <string>

#include "store/check.h"
#include "store/store.h"
#include "tools/exit_codes.h"
#include "tools/time_travel.h"

namespace snapfs::tools {
namespace {

constexpr char kProgram[] = "snapfs-check";

struct Args {
  std::string store;
  bool quick = false;
  bool json = false;
  bool no_progress = false;
};

// A single line on the terminal, rewritten at most ten times a second.
class ProgressLine {
 public:
  explicit ProgressLine(bool enabled) : enabled_(enabled) {}
  ~ProgressLine() { Clear(); }

  void Show(const store::CheckProgress& p) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (shown_ && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    std::string line;
    if (p.chunks_total > 0 && std::string_view(p.phase) == "chunks") {
      char buf[160];
      std::snprintf(buf, sizeof buf, "chunks %llu/%llu, %s/%s (%.0f %%)",
                    static_cast<unsigned long long>(p.chunks_done),
                    static_cast<unsigned long long>(p.chunks_total),
                    FormatBytes(p.bytes_done, false).c_str(),
                    FormatBytes(p.bytes_total, false).c_str(),
                    p.bytes_total ? 100.0 * static_cast<double>(p.bytes_done) /
                                        static_cast<double>(p.bytes_total)
                                  : 100.0);
      line = buf;
    } else {
      line = std::string(p.phase) + " " + std::to_string(p.records) + " records";
    }
    std::fprintf(stderr, "\r\033[K%s: %s", kProgram, line.c_str());
    std::fflush(stderr);
    shown_ = true;
  }
  void Clear() {
    if (!shown_) return;
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    shown_ = false;
  }

 private:
  const bool enabled_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point last_;
};

std::string Where(const store::DamagedChunk& d) {
  if (!d.loc) return "";
  return " (pack " + std::to_string(d.loc->pack) + " offset " + std::to_string(d.loc->offset) + ")";
}

std::string Plural(uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// The states and files hit, for the summary.
struct Radius {
  std::set<Generation> states;
  std::set<std::string> files;
  bool live = false;
};

Radius RadiusOf(const store::CheckReport& r) {
  Radius out;
  for (const store::AffectedVersion& v : r.affected) {
    for (const store::AffectedState& s : v.states) {
      out.states.insert(s.state);
      out.files.insert(s.paths.begin(), s.paths.end());
    }
    out.files.insert(v.live_paths.begin(), v.live_paths.end());
    if (!v.live_paths.empty()) out.live = true;
  }
  return out;
}

void PrintText(const Args& args, const store::CheckReport& r, double seconds) {
  std::printf("%s (%s check): %s, %s, %s, %s (%s stored, %s raw)", args.store.c_str(),
              r.quick ? "quick" : "full", Plural(r.states, "state", "states").c_str(),
              Plural(r.generations, "generation", "generations").c_str(),
              Plural(r.inodes, "inode", "inodes").c_str(),
              Plural(r.chunks, "chunk", "chunks").c_str(), FormatBytes(r.stored_bytes, false).c_str(),
              FormatBytes(r.raw_bytes, false).c_str());
  if (r.unreferenced_chunks > 0)
    std::printf(", %s unused", Plural(r.unreferenced_chunks, "chunk", "chunks").c_str());
  std::printf("; %.2f s", seconds);
  if (!r.quick && seconds > 0)
    std::printf(", %.1f MB/s", static_cast<double>(r.stored_bytes) / 1e6 / seconds);
  std::printf("\n");
  for (const store::DamagedChunk& d : r.damaged)
    std::printf("%s chunk %s%s: %s\n", d.loc ? "damaged" : "missing", d.id.Hex().c_str(),
                Where(d).c_str(), d.reason.c_str());
  for (const store::MetadataProblem& p : r.problems)
    std::printf("damaged metadata: %s%s%s: %s\n", p.family.c_str(), p.key.empty() ? "" : " key ",
                p.key.c_str(), p.reason.c_str());
  if (!r.affected.empty()) {
    std::printf("affected files:\n%-12s %s\n", "STATE", "PATH");
    for (const store::AffectedVersion& v : r.affected) {
      const std::string what = "(inode " + std::to_string(v.ino) + ", content of g" +
                               std::to_string(v.content_gen) + ", " +
                               Plural(v.chunks.size(), "damaged chunk", "damaged chunks") + ")";
      for (const store::AffectedState& s : v.states)
        for (const std::string& p : s.paths)
          std::printf("%-12s %s  %s\n", ("s" + std::to_string(s.state)).c_str(), p.c_str(),
                      what.c_str());
      for (const std::string& p : v.live_paths)
        std::printf("%-12s %s  %s\n", "live", p.c_str(), what.c_str());
      if (v.states.empty() && v.live_paths.empty()) {
        const std::string to = v.current_to == store::kLatest ? "" : std::to_string(v.current_to);
        std::printf("%-12s (in no state's tree: generations %llu..%s) %s\n", "-",
                    static_cast<unsigned long long>(v.current_from), to.c_str(), what.c_str());
      }
    }
  }
  if (r.clean()) {
    std::printf("no damage found\n");
    return;
  }
  const Radius radius = RadiusOf(r);
  std::printf("DAMAGE FOUND: %s, %s; %s in %s affected%s\n",
              Plural(r.damaged.size(), "damaged chunk", "damaged chunks").c_str(),
              Plural(r.problems.size(), "metadata problem", "metadata problems").c_str(),
              Plural(radius.files.size(), "path", "paths").c_str(),
              Plural(radius.states.size(), "state", "states").c_str(),
              radius.live ? ", the live tree too" : "");
}

void PrintJsonReport(const Args& args, const store::CheckReport& r, double seconds) {
  nlohmann::json damaged = nlohmann::json::array();
  for (const store::DamagedChunk& d : r.damaged) {
    nlohmann::json j = {{"id", d.id.Hex()}, {"reason", d.reason}, {"missing", !d.loc.has_value()}};
    if (d.loc) {
      j["pack"] = d.loc->pack;
      j["offset"] = d.loc->offset;
      j["raw_length"] = d.loc->raw_len;
      j["stored_length"] = d.loc->stored_len;
    }
    damaged.push_back(std::move(j));
  }
  nlohmann::json problems = nlohmann::json::array();
  for (const store::MetadataProblem& p : r.problems)
    problems.push_back({{"family", p.family}, {"key", p.key}, {"reason", p.reason}});
  nlohmann::json affected = nlohmann::json::array();
  for (const store::AffectedVersion& v : r.affected) {
    nlohmann::json chunks = nlohmann::json::array();
    for (const store::ChunkId& id : v.chunks) chunks.push_back(id.Hex());
    nlohmann::json states = nlohmann::json::array();
    for (const store::AffectedState& s : v.states)
      states.push_back({{"id", "s" + std::to_string(s.state)}, {"generation", s.at}, {"paths", s.paths}});
    nlohmann::json j = {{"ino", v.ino}, {"content_gen", v.content_gen},
                        {"from_gen", v.current_from}, {"chunks", chunks}, {"states", states},
                        {"live_paths", v.live_paths}};
    j["to_gen"] = v.current_to == store::kLatest ? nlohmann::json() : nlohmann::json(v.current_to);
    affected.push_back(std::move(j));
  }
  const Radius radius = RadiusOf(r);
  nlohmann::json state_ids = nlohmann::json::array();
  for (Generation s : radius.states) state_ids.push_back("s" + std::to_string(s));
  nlohmann::json out = {
      {"store", args.store}, {"mode", r.quick ? "quick" : "full"}, {"clean", r.clean()},
      {"seconds", seconds}, {"latest_gen", r.latest}, {"generations", r.generations},
      {"states", r.states}, {"inodes", r.inodes}, {"inode_records", r.inode_records},
      {"dirent_records", r.dirent_records}, {"extent_pages", r.extent_pages},
      {"extents", r.extents}, {"chunks", r.chunks}, {"chunks_verified", r.chunks_verified},
      {"stored_bytes", r.stored_bytes}, {"raw_bytes", r.raw_bytes},
      {"unreferenced_chunks", r.unreferenced_chunks}, {"damaged_chunks", damaged},
      {"problems", problems}, {"affected", affected}, {"affected_states", state_ids},
      {"affected_paths", radius.files}, {"live_affected", radius.live}};
  PrintJson(out);
}

// Every pack may be read: allow as many open files as the hard limit does.
void RaiseFileLimit() {
  rlimit rl {};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

constexpr char kDescription[] =
    "snapfs-check: verify a snapfs store. Every chunk is read back, decoded and hashed to its\n"
    "id; every file version's chunk references and the metadata invariants are checked. On\n"
    "damage it names each damaged chunk and the files, in which states, that use it.\n"
    "Read-only: runs on an unmounted store or while the store is mounted.";

constexpr char kFooter[] =
    "\nExit codes: 0 no damage found; 1 runtime error (I/O); 2 usage error; 3 store missing,\n"
    "not a store, of an incompatible version, or its database unreadable (RocksDB reports\n"
    "its own files corrupt); 5 damage found (the report names it).\n";

int Main(int argc, char** argv) {
  CLI::App app(kDescription, kProgram);
  app.footer(kFooter);
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string(kProgram) + ": " + e.what() + "\nRun with --help for more information.\n";
  });
  Args args;
  app.add_option("store", args.store, "The store (a folder made by snapfs --init)")
      ->required()
      ->option_text(" ");
  app.add_flag("--quick", args.quick,
               "References and invariants only: do not read the chunks (fast)");
  app.add_flag("--json", args.json, "Print the report as JSON for scripts");
  app.add_flag("--no-progress", args.no_progress, "No progress line, even on a terminal");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }

  RaiseFileLimit();
  Result<std::unique_ptr<store::Store>> opened = OpenStoreForReading(args.store);
  if (!opened.ok())
    return Fail(kProgram, ExitCodeForStoreError(opened.status()), "cannot open store",
                opened.status().message());
  store::Store& store = **opened;

  ProgressLine progress(!args.no_progress && ::isatty(STDERR_FILENO));
  store::CheckOptions options;
  options.quick = args.quick;
  options.progress = [&](const store::CheckProgress& p) { progress.Show(p); };
  const auto start = std::chrono::steady_clock::now();
  Result<store::CheckReport> report = store::CheckStore(store, options);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  progress.Clear();
  if (!report.ok()) return FailRead(kProgram, "checking " + args.store, report.status());
  if (args.json) PrintJsonReport(args, *report, seconds);
  else PrintText(args, *report, seconds);
  std::fflush(stdout);
  return report->clean() ? kExitOk : kExitDamage;
}

}  // namespace
}  // namespace snapfs::tools

int main(int argc, char** argv) {
  return snapfs::tools::RunMain("snapfs-check", snapfs::tools::Main, argc, argv);
}
