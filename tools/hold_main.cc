// snapfs-hold: pin states against pruning, and raise the store's minimum
// retention.
//
//   snapfs-hold STORE WHEN [--until TIME] [--reason TEXT]   hold the state WHEN is in
//   snapfs-hold STORE --list [--all] [--json]               the holds and the policy
//   snapfs-hold STORE --release ID                          release a hold
//   snapfs-hold STORE --min-retention DURATION              raise the minimum retention
//
// On a mounted store the running daemon does the work (tools/control.h); on
// an unmounted one this process opens the store read-write. Reference:
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
constexpr char kProgram[] = "snapfs-hold";

constexpr char kFooter[] = R"(
A hold pins the state that WHEN falls in (see WHEN below): snapfs-prune and the
daemon's automatic pruning never drop it while the hold is active. --until TIME ends
the hold at TIME: a WHEN time form ('2026-06-01', '2026-06-01 12:00', ISO 8601)
or +DURATION from now (+30d). Without --until it lasts until released.

--release ID ends a hold now (the record stays, shown by --list --all). Releasing
a guard hold tells the guard that the owner has looked: it does not hold that
state again. Only the store's owner or root can do any of this: through the
daemon's control socket (STORE/daemon.sock, checked with SO_PEERCRED) while the
store is mounted, else by opening the store, whose folder is 0700.

--min-retention DURATION raises the store's minimum retention: no state younger
than it is ever pruned. It can only be raised; a lower value is refused.
)";

constexpr char kExitHelp[] =
    "\nExit codes: 0 ok; 1 runtime error (no such state or hold, a WHEN before the\n"
    "store's history, a lower minimum retention, refused by the daemon); 2 usage error\n"
    "(bad option, WHEN, TIME or DURATION); 3 store missing, not a store, damaged,\n"
    "incompatible, or in use by something other than its daemon.\n";

const char* HoldStatus(const json& h) {
  if (h.contains("released_ns")) return "released";
  return h.value("active", false) ? "active" : "expired";
}

void PrintHolds(const json& resp, bool all) {
  const json& p = resp["policy"];
  const uint32_t share = p.value("guard_share_percent", 0u);
  std::printf("minimum retention: %s; guard: %s\n",
              p.value("min_retention_ns", int64_t{0}) > 0
                  ? p.value("min_retention", std::string()).c_str()
                  : "none",
              share == 0 ? "off" : (std::to_string(share) + " % of the files or bytes").c_str());
  std::printf("%5s  %-10s %-6s %-9s %-19s  %-19s  %s\n", "HOLD", "STATE", "KIND", "STATUS",
              "CREATED", "UNTIL", "REASON");
  for (const json& h : resp["holds"]) {
    if (!all && !h.value("active", false)) continue;
    const std::string until = h.contains("until_ns")
                                  ? store::FormatLocalTime(h.value("until_ns", int64_t{0}))
                                  : "-";
    std::printf("%5llu  %-10s %-6s %-9s %-19s  %-19s  %s\n",
                static_cast<unsigned long long>(h.value("id", uint64_t{0})),
                h.value("state", std::string()).c_str(), h.value("kind", std::string()).c_str(),
                HoldStatus(h), store::FormatLocalTime(h.value("created_ns", int64_t{0})).c_str(),
                until.c_str(), h.value("reason", std::string()).c_str());
  }
}

// --until: +DURATION from now, or a moment as a WHEN gives it.
Result<int64_t> ParseUntil(const std::string& text) {
  if (text.starts_with("+")) {
    SNAPFS_ASSIGN_OR_RETURN(int64_t d, store::ParseDuration(std::string_view(text).substr(1)));
    return NowNs() + d;
  }
  SNAPFS_ASSIGN_OR_RETURN(store::WhenSpec w, store::ParseWhen(text));
  if (w.kind != store::WhenSpec::Kind::kTime)
    return Status::Invalid("--until takes a time ('2026-06-01', ISO 8601, @EPOCH) or +DURATION");
  return w.time_ns;
}

int Main(int argc, char** argv) {
  CLI::App app("snapfs-hold: pin states of a snapfs store against pruning.", kProgram);
  app.footer(std::string(kFooter) + WhenHelp() + kExitHelp);
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string(kProgram) + ": " + e.what() + "\nRun with --help for more information.\n";
  });
  std::string store_path, when, until, reason, min_retention;
  uint64_t release = 0;
  bool list = false, all = false, json_out = false;
  app.add_option("store", store_path, "The store (a folder made by snapfs --init)")
      ->required()
      ->option_text(" ");
  app.add_option("when", when, "The state to hold: a WHEN (s1234, '2026-05-25 06:16', -1d)")
      ->option_text(" ");
  CLI::Option* until_opt =
      app.add_option("--until", until, "End the hold at TIME or +DURATION")->option_text("TIME");
  CLI::Option* reason_opt = app.add_option("--reason", reason, "Why (shown by --list)")->option_text("TEXT");
  CLI::Option* list_opt = app.add_flag("--list", list, "List the active holds and the policy");
  CLI::Option* all_opt = app.add_flag("--all", all, "With --list: released and expired holds too");
  CLI::Option* release_opt =
      app.add_option("--release", release, "Release hold ID")->option_text("ID");
  CLI::Option* min_opt = app.add_option("--min-retention", min_retention,
                                        "Raise the store's minimum retention to DURATION")
                             ->option_text("DURATION");
  app.add_flag("--json", json_out, "Print the response as JSON");
  all_opt->needs(list_opt);
  list_opt->excludes(release_opt)->excludes(min_opt)->excludes(until_opt)->excludes(reason_opt);
  release_opt->excludes(min_opt)->excludes(until_opt)->excludes(reason_opt);
  min_opt->excludes(until_opt)->excludes(reason_opt);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }

  json request;
  const bool other = list || release_opt->count() > 0 || min_opt->count() > 0;
  if (other && !when.empty())
    return Fail(kProgram, kExitUsage, when, "a WHEN is given only to make a hold");
  if (list) {
    request = {{"op", "holds"}};
  } else if (release_opt->count() > 0) {
    request = {{"op", "release"}, {"id", release}};
  } else if (min_opt->count() > 0) {
    Result<int64_t> d = store::ParseDuration(min_retention);
    if (!d.ok()) return Fail(kProgram, kExitUsage, "--min-retention", d.status().message());
    request = {{"op", "set-min-retention"}, {"ns", *d}};
  } else {
    if (when.empty())
      return Fail(kProgram, kExitUsage, "usage",
                  "snapfs-hold STORE WHEN | --list | --release ID | --min-retention DURATION");
    Result<store::WhenSpec> w = store::ParseWhen(when);
    if (!w.ok()) return Fail(kProgram, kExitUsage, when, w.status().message());
    int64_t until_ns = 0;
    if (until_opt->count() > 0) {
      Result<int64_t> u = ParseUntil(until);
      if (!u.ok()) return Fail(kProgram, kExitUsage, "--until", u.status().message());
      until_ns = *u;
    }
    request = {{"op", "hold"}, {"when", when}, {"until_ns", until_ns}, {"reason", reason}};
  }

  RequestRoute route;
  Result<json> resp = SendRequest(store_path, request, &route);
  if (!resp.ok())
    return Fail(kProgram, ExitCodeForRequest(resp.status(), route),
                route.open_failed ? "cannot open store" : request["op"].get<std::string>(),
                resp.status().message());
  if (json_out) {
    json out = *resp;
    out.erase("ok");
    PrintJson(out);
  } else if (list) {
    PrintHolds(*resp, all);
  } else if (resp->contains("hold")) {
    const json& h = (*resp)["hold"];
    std::printf("hold %llu on %s: %s\n", static_cast<unsigned long long>(h.value("id", uint64_t{0})),
                h.value("state", std::string()).c_str(), HoldStatus(h));
  } else {
    std::printf("minimum retention: %s\n",
                (*resp)["policy"].value("min_retention", std::string()).c_str());
  }
  return kExitOk;
}

}  // namespace
}  // namespace snapfs::tools

int main(int argc, char** argv) {
  return snapfs::tools::RunMain("snapfs-hold", snapfs::tools::Main, argc, argv);
}
