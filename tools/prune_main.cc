// snapfs-prune: drop the states that no rule, hold, minimum retention or
// guard keeps, then reclaim their space.
//
//   snapfs-prune STORE [--keep-last N] [--keep-hourly N] [--keep-daily N]
//                [--keep-weekly N] [--keep-monthly N] [--keep-within DURATION]
//                [--dry-run] [--json] [--bytes]
//
// On a mounted store the running daemon does the work (tools/control.h);
// on an unmounted one this process opens the store read-write. Reference:
// docs/cli.md and docs/retention.md; exit codes: tools/exit_codes.h.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "store/retention.h"
#include "store/when.h"
#include "tools/control.h"
#include "tools/exit_codes.h"
#include "tools/time_travel.h"

namespace snapfs::tools {
namespace {

using nlohmann::json;
constexpr char kProgram[] = "snapfs-prune";

constexpr char kFooter[] = R"(
Rules (at least one; each is independent, a state kept by any rule stays):
  --keep-last N        the N newest states
  --keep-hourly N      the newest state of each of the N most recent hours that have states
  --keep-daily N       ... of each of the N most recent days (local time)
  --keep-weekly N      ... of each of the N most recent ISO weeks (Monday to Sunday)
  --keep-monthly N     ... of each of the N most recent months
  --keep-within D      every state that ended within D of the newest state (30d, 12h, 1w2d)
Always kept, whatever the rules: the newest state; held states (snapfs-hold); states
younger than the store's minimum retention; the state before a run that shrank the
tree sharply (the bad-dump guard). See docs/retention.md for worked examples.

Exit codes: 0 ok (also when nothing is dropped); 1 runtime error (refused by the
daemon, I/O); 2 usage error (no rule, a bad count or DURATION); 3 store missing,
not a store, damaged, incompatible, or in use by something other than its daemon.
)";

void PrintPlan(const json& resp, bool bytes) {
  std::printf("%-10s %-19s  %-6s %s\n", "STATE", "END", "ACTION", "WHY");
  for (const json& s : resp["states"]) {
    std::string why;
    for (const json& r : s["reasons"]) why += (why.empty() ? "" : "; ") + r.get<std::string>();
    std::printf("%-10s %-19s  %-6s %s\n", s.value("id", std::string()).c_str(),
                store::FormatLocalTime(s.value("end_ns", int64_t{0})).c_str(),
                s.value("keep", true) ? "keep" : "drop", why.c_str());
  }
  const uint64_t dropped = resp.value("dropped", uint64_t{0});
  const uint64_t total = resp["states"].size();
  const std::string stored = FormatBytes(resp.value("dropped_bytes_stored", uint64_t{0}), bytes);
  if (resp.value("dry_run", true)) {
    std::printf("would drop %llu of %llu states (they newly stored %s; garbage collection frees "
                "what no kept state still uses); nothing was changed (--dry-run)\n",
                static_cast<unsigned long long>(dropped), static_cast<unsigned long long>(total),
                stored.c_str());
    return;
  }
  std::printf("dropped %llu of %llu states (they newly stored %s)\n",
              static_cast<unsigned long long>(dropped), static_cast<unsigned long long>(total),
              stored.c_str());
  if (resp.contains("gc")) {
    const json& g = resp["gc"];
    const uint64_t before = g.value("pack_bytes_before", uint64_t{0});
    const uint64_t after = g.value("pack_bytes_after", uint64_t{0});
    std::printf("garbage collection: %llu chunks deleted, %llu kept; %llu packs deleted (%llu "
                "rewritten); packs %s -> %s (%s freed)\n",
                static_cast<unsigned long long>(g.value("chunks_deleted", uint64_t{0})),
                static_cast<unsigned long long>(g.value("chunks_live", uint64_t{0})),
                static_cast<unsigned long long>(g.value("packs_deleted", uint64_t{0})),
                static_cast<unsigned long long>(g.value("packs_rewritten", uint64_t{0})),
                FormatBytes(before, bytes).c_str(), FormatBytes(after, bytes).c_str(),
                FormatBytes(before > after ? before - after : 0, bytes).c_str());
  }
}

int Main(int argc, char** argv) {
  CLI::App app("snapfs-prune: drop old states of a snapfs store and reclaim their space.",
               kProgram);
  app.footer(kFooter);
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string(kProgram) + ": " + e.what() + "\nRun with --help for more information.\n";
  });
  std::string store_path, within;
  store::RetentionRules rules;
  bool dry_run = false, json_out = false, bytes = false;
  app.add_option("store", store_path, "The store (a folder made by snapfs --init)")
      ->required()
      ->option_text(" ");
  const auto count = CLI::Range(1, 1'000'000);
  app.add_option("--keep-last", rules.keep_last, "Keep the N newest states")->check(count)->option_text("N");
  app.add_option("--keep-hourly", rules.keep_hourly, "Keep one state per hour, N hours")->check(count)->option_text("N");
  app.add_option("--keep-daily", rules.keep_daily, "Keep one state per day, N days")->check(count)->option_text("N");
  app.add_option("--keep-weekly", rules.keep_weekly, "Keep one state per week, N weeks")->check(count)->option_text("N");
  app.add_option("--keep-monthly", rules.keep_monthly, "Keep one state per month, N months")->check(count)->option_text("N");
  app.add_option("--keep-within", within, "Keep every state within DURATION of the newest")
      ->option_text("DURATION");
  app.add_flag("-n,--dry-run", dry_run, "Print what would be dropped and why; change nothing");
  app.add_flag("--json", json_out, "Print the plan and the result as JSON");
  app.add_flag("--bytes", bytes, "Print byte counts exactly");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  if (!within.empty()) {
    Result<int64_t> d = store::ParseDuration(within);
    if (!d.ok()) return Fail(kProgram, kExitUsage, "--keep-within", d.status().message());
    if (*d == 0) return Fail(kProgram, kExitUsage, "--keep-within", "must be at least 1s");
    rules.keep_within_ns = *d;
  }
  if (rules.empty())
    return Fail(kProgram, kExitUsage, "no rule",
                "give at least one of --keep-last, --keep-hourly, --keep-daily, --keep-weekly, "
                "--keep-monthly, --keep-within (a prune without rules would drop everything)");

  const json request = {{"op", "prune"}, {"rules", RulesToJson(rules)}, {"dry_run", dry_run}};
  RequestRoute route;
  Result<json> resp = SendRequest(store_path, request, &route);
  if (!resp.ok())
    return Fail(kProgram, ExitCodeForRequest(resp.status(), route),
                route.open_failed ? "cannot open store" : "prune", resp.status().message());
  if (json_out) {
    json out = *resp;
    out.erase("ok");
    out["via_daemon"] = route.via_daemon;
    PrintJson(out);
  } else {
    PrintPlan(*resp, bytes);
  }
  return kExitOk;
}

}  // namespace
}  // namespace snapfs::tools

int main(int argc, char** argv) {
  return snapfs::tools::RunMain("snapfs-prune", snapfs::tools::Main, argc, argv);
}
