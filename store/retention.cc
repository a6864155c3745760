#include "store/retention.h"

#include <ctime>
#include <map>
#include <set>

#include "store/when.h"

namespace snapfs::store {
namespace {

// More than `share` percent of `before` is gone in `after`:
// (before - after) / before > share / 100 (long double: exact for counts
// below 2^64, no overflow).
bool Shrank(uint64_t before, uint64_t after, uint32_t share) {
  if (before == 0 || after >= before) return false;
  const long double gone = static_cast<long double>(before - after);
  return gone * 100 > static_cast<long double>(before) * share;
}

// The local-time period of a moment, as a label that names it:
// "2026-05-25 06h", "2026-05-25", "2026-W21", "2026-05".
std::string Period(int64_t time_ns, const char* format) {
  time_t t = static_cast<time_t>(time_ns / 1'000'000'000);
  if (time_ns < 0 && time_ns % 1'000'000'000 != 0) --t;  // Floor.
  struct tm tm {};
  ::tzset();
  localtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

}  // namespace

std::string FormatDuration(int64_t ns) {
  if (ns <= 0) return "0s";
  static constexpr std::pair<char, int64_t> kUnits[] = {
      {'w', 604800}, {'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};
  int64_t s = ns / 1'000'000'000;
  if (s == 0) return "0s";
  std::string out;
  for (const auto& [unit, size] : kUnits) {
    if (s >= size) {
      out += std::to_string(s / size) + unit;
      s %= size;
    }
  }
  return out;
}

std::optional<std::string> DescribeShrink(const StateRecord& before, const StateRecord& after,
                                          uint32_t share_percent) {
  if (share_percent == 0 || !before.has_totals || !after.has_totals) return std::nullopt;
  const bool files = Shrank(before.tree_files, after.tree_files, share_percent);
  const bool bytes = Shrank(before.tree_bytes, after.tree_bytes, share_percent);
  if (!files && !bytes) return std::nullopt;
  return "s" + std::to_string(after.first_gen) + " ended with " +
         std::to_string(after.tree_files) + " files, " + FormatSize(after.tree_bytes) + " (was " +
         std::to_string(before.tree_files) + " files, " + FormatSize(before.tree_bytes) + ")";
}

bool HoldActive(const HoldRecord& hold, int64_t now_ns) {
  return hold.released_ns == 0 && (hold.until_ns == 0 || hold.until_ns > now_ns);
}

std::vector<StateDecision> ProtectStates(const std::vector<StateRecord>& states,
                                         const std::vector<HoldRecord>& holds,
                                         const RetentionPolicy& policy, int64_t now_ns) {
  std::map<Generation, std::vector<const HoldRecord*>> by_state;
  std::set<Generation> guard_seen;  // States with a guard hold, active or not.
  for (const HoldRecord& h : holds) {
    by_state[h.state].push_back(&h);
    if (h.kind == HoldKind::kGuard) guard_seen.insert(h.state);
  }
  std::vector<StateDecision> out;
  out.reserve(states.size());
  for (size_t i = 0; i < states.size(); ++i) {
    StateDecision d;
    d.state = states[i];
    const StateRecord& s = states[i];
    if (i + 1 == states.size()) d.reasons.push_back("newest state");
    for (const HoldRecord* h : by_state[s.first_gen]) {
      if (!HoldActive(*h, now_ns)) continue;
      d.held = true;
      std::string r = h->kind == HoldKind::kGuard ? "held by the guard" : "held";
      r += h->until_ns == 0 ? "" : " until " + FormatLocalTime(h->until_ns);
      r += " (hold " + std::to_string(h->id) + (h->reason.empty() ? "" : ": " + h->reason) + ")";
      d.reasons.push_back(std::move(r));
    }
    if (policy.min_retention_ns > 0 && s.end_ns > now_ns - policy.min_retention_ns)
      d.reasons.push_back("younger than the minimum retention (" +
                          FormatDuration(policy.min_retention_ns) + ")");
    if (i + 1 < states.size()) {
      std::optional<std::string> shrink =
          DescribeShrink(s, states[i + 1], policy.guard_share_percent);
      if (shrink) {
        d.guarded = true;
        // A guard hold recorded for it (active: listed above; released: the
        // owner looked and let it go) replaces the computed one.
        if (!guard_seen.count(s.first_gen))
          d.reasons.push_back("guard: before a shrinking run (" + *shrink + ")");
      }
    }
    d.keep = !d.reasons.empty();
    out.push_back(std::move(d));
  }
  return out;
}

Result<std::vector<StateDecision>> PlanRetention(const std::vector<StateRecord>& states,
                                                 const std::vector<HoldRecord>& holds,
                                                 const RetentionPolicy& policy,
                                                 const RetentionRules& rules, int64_t now_ns) {
  if (rules.empty())
    return Status::Invalid(
        "no rule given: name at least one of --keep-last, --keep-hourly, --keep-daily, "
        "--keep-weekly, --keep-monthly, --keep-within (a prune without rules would drop "
        "everything)");
  if (rules.keep_last < 0 || rules.keep_hourly < 0 || rules.keep_daily < 0 ||
      rules.keep_weekly < 0 || rules.keep_monthly < 0 || rules.keep_within_ns < 0)
    return Status::Invalid("a rule's count or duration cannot be negative");
  std::vector<StateDecision> out = ProtectStates(states, holds, policy, now_ns);
  if (out.empty()) return out;

  // Newest first, as the rules count.
  const size_t n = out.size();
  auto at = [&](size_t k) -> StateDecision& { return out[n - 1 - k]; };
  for (size_t k = 0; k < n && k < static_cast<size_t>(rules.keep_last); ++k)
    at(k).reasons.push_back("last " + std::to_string(rules.keep_last));
  struct Bucket {
    int count;
    const char* name;
    const char* format;
  };
  const Bucket buckets[] = {{rules.keep_hourly, "hourly", "%Y-%m-%d %Hh"},
                            {rules.keep_daily, "daily", "%Y-%m-%d"},
                            {rules.keep_weekly, "weekly", "%G-W%V"},
                            {rules.keep_monthly, "monthly", "%Y-%m"}};
  for (const Bucket& b : buckets) {
    if (b.count <= 0) continue;
    std::string last;
    int kept = 0;
    for (size_t k = 0; k < n && kept < b.count; ++k) {
      const std::string period = Period(at(k).state.end_ns, b.format);
      if (k > 0 && period == last) continue;
      last = period;
      at(k).reasons.push_back(std::string(b.name) + " " + period);
      ++kept;
    }
  }
  if (rules.keep_within_ns > 0) {
    const int64_t newest = at(0).state.end_ns;
    for (size_t k = 0; k < n; ++k)
      if (at(k).state.end_ns >= newest - rules.keep_within_ns)
        at(k).reasons.push_back("within " + FormatDuration(rules.keep_within_ns) +
                                " of the newest state");
  }
  for (StateDecision& d : out) d.keep = !d.reasons.empty();
  return out;
}

}  // namespace snapfs::store
