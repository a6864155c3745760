// Retention planning: which states a prune keeps, and why (docs/retention.md).
//
// Pure functions over a list of states, the store's holds and policy, the
// rules given on the command line and the current time: no store access, so
// every rule is unit-tested with synthetic states and a fixed `now`.
//
// A state is kept if anything protects it or any rule selects it:
//  - protections: the newest state; an active hold ("held ..."); an end younger
//    than the store's minimum retention; the guard ("before a shrinking run":
//    the next state ended with the tree much smaller, and no guard hold for
//    this state was ever recorded, so the daemon's guard did not see it yet);
//  - rules, each independent of the others and of the protections, as in
//    restic: --keep-last N keeps the N newest states; --keep-hourly/daily/
//    weekly/monthly N keep the newest state of each of the N most recent
//    hours/days/ISO weeks/months (local time, by the state's end) that have
//    states; --keep-within D keeps every state that ended within D of the
//    newest state's end (not of now: a dump job that stopped does not let
//    history age away).
// A state no protection and no rule keeps is dropped. With no rules at all,
// PlanRetention refuses (kInvalid) instead of dropping everything.
//
// Local time follows TZ (localtime_r). Thread-safety: as store/when.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "store/key_format.h"
#include "store/status.h"

namespace snapfs::store {

// The guard's default share: a state that ends with more than half of the
// previous state's files or bytes gone holds the previous one.
inline constexpr uint32_t kDefaultGuardSharePercent = 50;

struct RetentionRules {
  int keep_last = 0;
  int keep_hourly = 0;
  int keep_daily = 0;
  int keep_weekly = 0;
  int keep_monthly = 0;
  int64_t keep_within_ns = 0;
  bool empty() const {
    return keep_last <= 0 && keep_hourly <= 0 && keep_daily <= 0 && keep_weekly <= 0 &&
           keep_monthly <= 0 && keep_within_ns <= 0;
  }
};

// What the store itself says (meta keys, docs/format.md).
struct RetentionPolicy {
  int64_t min_retention_ns = 0;                           // 0: none.
  uint32_t guard_share_percent = kDefaultGuardSharePercent;  // 0: the guard is off.
};

struct StateDecision {
  StateRecord state;
  bool keep = false;
  std::vector<std::string> reasons;  // Why it is kept (empty when dropped).
  bool held = false;                 // An active hold pins it.
  bool guarded = false;              // The next state shrank the tree sharply.
};

// If `after` ended with more than `share_percent` of the files or of the
// bytes of `before` gone, says so ("12 -> 3 files, 1.2 GiB -> 6 B"); else
// nullopt. nullopt when either state has no totals or share_percent is 0.
std::optional<std::string> DescribeShrink(const StateRecord& before, const StateRecord& after,
                                          uint32_t share_percent);

// Whether `hold` pins its state at `now_ns` (not released, not expired).
bool HoldActive(const HoldRecord& hold, int64_t now_ns);

// The protections only (no rules): one decision per state, oldest first,
// `keep` set if anything protects it. `states` oldest first.
std::vector<StateDecision> ProtectStates(const std::vector<StateRecord>& states,
                                         const std::vector<HoldRecord>& holds,
                                         const RetentionPolicy& policy, int64_t now_ns);

// The full plan: protections and rules. kInvalid if `rules` is empty or has a
// negative count.
Result<std::vector<StateDecision>> PlanRetention(const std::vector<StateRecord>& states,
                                                 const std::vector<HoldRecord>& holds,
                                                 const RetentionPolicy& policy,
                                                 const RetentionRules& rules, int64_t now_ns);

// "30d", "1h30m", "90s": a duration as ParseDuration reads it.
std::string FormatDuration(int64_t ns);

}  // namespace snapfs::store
