// Retention: the planner's rules with synthetic states and a fixed `now`
// (local-time bucket edges in Europe/Berlin), holds, the minimum retention,
// the bad-dump guard, the tree totals Commit keeps, and the record layouts.
#include <gtest/gtest.h>

#include <ctime>
#include <thread>

#include "store/retention.h"
#include "store/when.h"
#include "tests/store/test_util.h"

namespace snapfs::store::testing {
namespace {

constexpr int64_t kSec = 1'000'000'000;
constexpr int64_t kHour = 3600 * kSec;
constexpr int64_t kDay = 24 * kHour;

class PlannerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("TZ", "Europe/Berlin", 1);
    ::tzset();
  }
  // Local time in Berlin.
  static int64_t Local(int y, int mo, int d, int h, int mi, int s = 0) {
    struct tm tm {};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    tm.tm_isdst = -1;
    return static_cast<int64_t>(std::mktime(&tm)) * kSec;
  }
  // States ending at `ends` (oldest first), ids 10, 20, 30, ...; each with
  // 10 files of 1000 bytes unless changed.
  static std::vector<StateRecord> States(const std::vector<int64_t>& ends) {
    std::vector<StateRecord> out;
    for (size_t i = 0; i < ends.size(); ++i) {
      StateRecord s;
      s.first_gen = 10 * (i + 1);
      s.last_gen = s.first_gen + 5;
      s.start_ns = ends[i] - kSec;
      s.end_ns = ends[i];
      s.has_totals = true;
      s.tree_files = 10;
      s.tree_bytes = 10000;
      out.push_back(s);
    }
    return out;
  }
  static std::vector<bool> Kept(const std::vector<StateDecision>& plan) {
    std::vector<bool> v;
    for (const StateDecision& d : plan) v.push_back(d.keep);
    return v;
  }
  static std::string Reasons(const StateDecision& d) {
    std::string r;
    for (const std::string& s : d.reasons) r += s + "; ";
    return r;
  }
  Result<std::vector<StateDecision>> Plan(const std::vector<StateRecord>& states,
                                          const RetentionRules& rules,
                                          const std::vector<HoldRecord>& holds = {},
                                          RetentionPolicy policy = {}) {
    return PlanRetention(states, holds, policy, rules, now_);
  }
  int64_t now_ = Local(2026, 6, 1, 12, 0);
};

TEST_F(PlannerTest, NoRulesIsRefusedRatherThanDroppingEverything) {
  EXPECT_CODE(Plan(States({Local(2026, 5, 1, 6, 0)}), RetentionRules{}), Code::kInvalid);
  EXPECT_CODE(Plan(States({Local(2026, 5, 1, 6, 0)}), RetentionRules{.keep_last = -1}),
              Code::kInvalid);
}

TEST_F(PlannerTest, KeepLastKeepsTheNewestN) {
  auto states = States({Local(2026, 5, 1, 6, 0), Local(2026, 5, 2, 6, 0), Local(2026, 5, 3, 6, 0),
                        Local(2026, 5, 4, 6, 0)});
  ASSERT_OK_AND_ASSIGN(auto plan, Plan(states, {.keep_last = 2}));
  EXPECT_EQ(Kept(plan), (std::vector<bool>{false, false, true, true}));
  EXPECT_EQ(plan[2].reasons, (std::vector<std::string>{"last 2"}));
  EXPECT_TRUE(plan[0].reasons.empty());
}

TEST_F(PlannerTest, TheNewestStateIsAlwaysKept) {
  auto states = States({Local(2026, 5, 1, 6, 0), Local(2026, 5, 2, 6, 0)});
  // A rule that selects only the older state by its bucket is impossible;
  // but the newest is kept for its own sake too.
  ASSERT_OK_AND_ASSIGN(auto plan, Plan(states, {.keep_last = 1}));
  EXPECT_EQ(Reasons(plan[1]), "newest state; last 1; ");
  ASSERT_OK_AND_ASSIGN(auto protect, Plan(States({Local(2026, 5, 2, 6, 0)}), {.keep_monthly = 1}));
  EXPECT_TRUE(protect[0].keep);
}

TEST_F(PlannerTest, KeepDailyKeepsTheNewestStateOfEachOfTheNMostRecentDays) {
  auto states = States({Local(2026, 5, 20, 6, 0), Local(2026, 5, 20, 23, 30),
                        Local(2026, 5, 21, 0, 30), Local(2026, 5, 22, 6, 0),
                        Local(2026, 5, 22, 7, 0)});
  ASSERT_OK_AND_ASSIGN(auto plan, Plan(states, {.keep_daily = 2}));
  EXPECT_EQ(Kept(plan), (std::vector<bool>{false, false, true, false, true}));
  EXPECT_EQ(Reasons(plan[2]), "daily 2026-05-21; ");
  ASSERT_OK_AND_ASSIGN(auto three, Plan(states, {.keep_daily = 3}));
  EXPECT_EQ(Kept(three), (std::vector<bool>{false, true, true, false, true}));
}

TEST_F(PlannerTest, DaysEndAtLocalMidnightNotUtc) {
  // 23:59:59 and 00:00:00 in Berlin (summer, UTC+2) are the same UTC day
  // but two local days.
  const int64_t before = Local(2026, 5, 21, 23, 59, 59), after = Local(2026, 5, 22, 0, 0, 0);
  ASSERT_EQ(after - before, kSec);
  auto states = States({Local(2026, 5, 21, 12, 0), before, after});
  ASSERT_OK_AND_ASSIGN(auto plan, Plan(states, {.keep_daily = 2}));
  EXPECT_EQ(Kept(plan), (std::vector<bool>{false, true, true}));
}

TEST_F(PlannerTest, BucketsCountOnlyPeriodsThatHaveStates) {
  // Days without states do not use up the count: 2 days back through a gap.
  auto states = States({Local(2026, 5, 1, 6, 0), Local(2026, 5, 10, 6, 0), Local(2026, 5, 20, 6, 0)});
  ASSERT_OK_AND_ASSIGN(auto plan, Plan(states, {.keep_daily = 2}));
  EXPECT_EQ(Kept(plan), (std::vector<bool>{false, true, true}));
}

TEST_F(PlannerTest, KeepHourlyUsesLocalHours) {
  auto states = States({Local(2026, 5, 22, 5, 10), Local(2026, 5, 22, 5, 50),
                        Local(2026, 5, 22, 6, 0), Local(2026, 5, 22, 6, 59)});
  ASSERT_OK_AND_ASSIGN(auto plan, Plan(states, {.keep_hourly = 2}));
  EXPECT_EQ(Kept(plan), (std::vector<bool>{false, true, false, true}));
  EXPECT_EQ(Reasons(plan[1]), "hourly 2026-05-22 05h; ");
}

TEST_F(PlannerTest, KeepWeeklyUsesIsoWeeksFromMondayToSunday) {
  // 2026-05-18 is a Monday, 2026-05-24 a Sunday, 2026-05-25 a Monday.
  auto states = States({Local(2026, 5, 17, 23, 0), Local(2026, 5, 18, 0, 30),
                        Local(2026, 5, 24, 23, 0), Local(2026, 5, 25, 0, 30)});
  ASSERT_OK_AND_ASSIGN(auto plan, Plan(states, {.keep_weekly = 2}));
  EXPECT_EQ(Kept(plan), (std::vector<bool>{false, false, true, true}));
  EXPECT_EQ(Reasons(plan[2]), "weekly 2026-W21; ");
}

TEST_F(PlannerTest, KeepMonthly) {
  auto states = States({Local(2026, 3, 31, 23, 59), Local(2026, 4, 1, 0, 1),
                        Local(2026, 4, 30, 22, 0), Local(2026, 5, 2, 6, 0)});
  ASSERT_OK_AND_ASSIGN(auto plan, Plan(states, {.keep_monthly = 2}));
  EXPECT_EQ(Kept(plan), (std::vector<bool>{false, false, true, true}));
  ASSERT_OK_AND_ASSIGN(auto three, Plan(states, {.keep_monthly = 3}));
  EXPECT_EQ(Kept(three), (std::vector<bool>{true, false, true, true}));
}

TEST_F(PlannerTest, KeepWithinCountsFromTheNewestStateNotFromNow) {
  // The dump job stopped a month ago: keep-within 2d still keeps its last runs.
  auto states = States({Local(2026, 4, 27, 6, 0), Local(2026, 4, 29, 5, 0), Local(2026, 4, 30, 6, 0),
                        Local(2026, 5, 1, 6, 0)});
  ASSERT_OK_AND_ASSIGN(auto plan, Plan(states, {.keep_within_ns = 2 * kDay}));
  EXPECT_EQ(Kept(plan), (std::vector<bool>{false, false, true, true}));
  EXPECT_EQ(Reasons(plan[2]), "within 2d of the newest state; ");
}

TEST_F(PlannerTest, RulesAreIndependentAndEveryReasonIsListed) {
  auto states = States({Local(2026, 5, 20, 6, 0), Local(2026, 5, 21, 6, 0), Local(2026, 5, 21, 7, 0)});
  ASSERT_OK_AND_ASSIGN(auto plan, Plan(states, {.keep_last = 1, .keep_daily = 2}));
  EXPECT_EQ(Kept(plan), (std::vector<bool>{true, false, true}));
  EXPECT_EQ(Reasons(plan[2]), "newest state; last 1; daily 2026-05-21; ");
  EXPECT_EQ(Reasons(plan[0]), "daily 2026-05-20; ");
}

TEST_F(PlannerTest, AHeldStateIsKeptUntilItsHoldEndsOrIsReleased) {
  auto states = States({Local(2026, 5, 1, 6, 0), Local(2026, 5, 2, 6, 0), Local(2026, 5, 3, 6, 0)});
  HoldRecord forever{.id = 1, .state = 10, .reason = "audit"};
  HoldRecord until{.id = 2, .state = 20, .until_ns = now_ + kHour, .reason = ""};
  ASSERT_OK_AND_ASSIGN(auto plan, Plan(states, {.keep_last = 1}, {forever, until}));
  EXPECT_EQ(Kept(plan), (std::vector<bool>{true, true, true}));
  EXPECT_TRUE(plan[0].held);
  EXPECT_EQ(Reasons(plan[0]), "held (hold 1: audit); ");
  EXPECT_EQ(Reasons(plan[1]), "held until " + FormatLocalTime(now_ + kHour) + " (hold 2); ");
  // An hour later the second hold has expired; a released hold pins nothing.
  until.until_ns = now_ - 1;
  forever.released_ns = now_ - kHour;
  ASSERT_OK_AND_ASSIGN(auto later, Plan(states, {.keep_last = 1}, {forever, until}));
  EXPECT_EQ(Kept(later), (std::vector<bool>{false, false, true}));
  EXPECT_FALSE(later[0].held);
}

TEST_F(PlannerTest, TheMinimumRetentionKeepsYoungStatesWhateverTheRules) {
  auto states = States({now_ - 10 * kDay, now_ - 3 * kDay, now_ - kDay, now_ - kHour});
  ASSERT_OK_AND_ASSIGN(auto plan,
                       Plan(states, {.keep_last = 1}, {}, {.min_retention_ns = 7 * kDay}));
  EXPECT_EQ(Kept(plan), (std::vector<bool>{false, true, true, true}));
  EXPECT_EQ(Reasons(plan[1]), "younger than the minimum retention (1w); ");
}

TEST_F(PlannerTest, TheGuardKeepsTheStateBeforeASharpShrink) {
  auto states = States({Local(2026, 5, 20, 6, 0), Local(2026, 5, 21, 6, 0), Local(2026, 5, 22, 6, 0)});
  states[2].tree_files = 2;  // The 22nd's run deleted 8 of 10 files.
  states[2].tree_bytes = 9000;
  ASSERT_OK_AND_ASSIGN(auto plan, Plan(states, {.keep_last = 1}));
  EXPECT_EQ(Kept(plan), (std::vector<bool>{false, true, true}));
  EXPECT_TRUE(plan[1].guarded);
  EXPECT_EQ(Reasons(plan[1]),
            "guard: before a shrinking run (s30 ended with 2 files, 8.8 KiB (was 10 files, "
            "9.8 KiB)); ");
  // The guard off: nothing keeps it.
  ASSERT_OK_AND_ASSIGN(auto off, Plan(states, {.keep_last = 1}, {}, {.guard_share_percent = 0}));
  EXPECT_EQ(Kept(off), (std::vector<bool>{false, false, true}));
  // The daemon's guard hold replaces the computed reason; once the owner
  // released it, the guard lets the state go.
  HoldRecord guard{.id = 4, .state = 20, .kind = HoldKind::kGuard, .reason = "shrank"};
  ASSERT_OK_AND_ASSIGN(auto held, Plan(states, {.keep_last = 1}, {guard}));
  EXPECT_EQ(Reasons(held[1]), "held by the guard (hold 4: shrank); ");
  guard.released_ns = now_ - kSec;
  ASSERT_OK_AND_ASSIGN(auto released, Plan(states, {.keep_last = 1}, {guard}));
  EXPECT_EQ(Kept(released), (std::vector<bool>{false, false, true}));
  EXPECT_TRUE(released[1].guarded);
}

TEST_F(PlannerTest, ShrinkNeedsMoreThanTheShareOfFilesOrBytes) {
  StateRecord before{.first_gen = 1, .has_totals = true, .tree_files = 10, .tree_bytes = 1000};
  StateRecord after = before;
  after.first_gen = 2;
  after.tree_files = 5;  // Exactly half gone: not more than 50 %.
  after.tree_bytes = 500;
  EXPECT_FALSE(DescribeShrink(before, after, 50));
  after.tree_files = 4;
  EXPECT_TRUE(DescribeShrink(before, after, 50));
  EXPECT_FALSE(DescribeShrink(before, after, 60));
  after.tree_files = 10;
  after.tree_bytes = 499;  // Bytes alone.
  EXPECT_TRUE(DescribeShrink(before, after, 50));
  EXPECT_FALSE(DescribeShrink(before, after, 0));  // Off.
  after.has_totals = false;  // A record version 1 state: unknown.
  EXPECT_FALSE(DescribeShrink(before, after, 50));
  before.tree_files = before.tree_bytes = 0;  // Nothing to lose.
  after.has_totals = true;
  EXPECT_FALSE(DescribeShrink(before, after, 50));
}

TEST(RetentionFormatTest, StateRecordVersion2AddsTheTreeTotals) {
  const StateRecord v1{4, 9, 100, 200, 6, 2, 0x1000, 0x800};
  StateRecord v2 = v1;
  v2.has_totals = true;
  v2.tree_files = 3;
  v2.tree_bytes = 0x10000;
  EXPECT_EQ(EncodeStateRecord(v2),
            Unhex("02 0000000000000009 0000000000000064 00000000000000c8 0000000000000006 "
                  "0000000000000002 0000000000001000 0000000000000800 0000000000000003 "
                  "0000000000010000"));
  ASSERT_OK_AND_ASSIGN(StateRecord back, DecodeStateRecord(EncodeStateRecord(v2), keys::State(4)));
  EXPECT_EQ(back, v2);
  ASSERT_OK_AND_ASSIGN(StateRecord old, DecodeStateRecord(EncodeStateRecord(v1), keys::State(4)));
  EXPECT_FALSE(old.has_totals);
  EXPECT_EQ(old, v1);
  std::string short2 = EncodeStateRecord(v2);
  short2.pop_back();
  EXPECT_CODE(DecodeStateRecord(short2, keys::State(4)), Code::kCorruption);
  std::string rv3 = EncodeStateRecord(v2);
  rv3[0] = 3;
  EXPECT_CODE(DecodeStateRecord(rv3, keys::State(4)), Code::kCorruption);
}

TEST(RetentionFormatTest, HoldRecordLayout) {
  const HoldRecord h{.id = 7, .state = 0x20, .kind = HoldKind::kGuard, .created_ns = 0x100,
                     .until_ns = 0x200, .released_ns = 0, .reason = "ab"};
  EXPECT_EQ(keys::Hold(7), std::string("hold:") + Unhex("0000000000000007"));
  EXPECT_EQ(EncodeHoldRecord(h),
            Unhex("01 0000000000000020 02 0000000000000100 0000000000000200 0000000000000000 "
                  "02 6162"));
  ASSERT_OK_AND_ASSIGN(HoldRecord back, DecodeHoldRecord(EncodeHoldRecord(h), keys::Hold(7)));
  EXPECT_EQ(back, h);
  std::string bad = EncodeHoldRecord(h);
  bad[9] = 9;  // Unknown kind.
  EXPECT_CODE(DecodeHoldRecord(bad, keys::Hold(7)), Code::kCorruption);
  EXPECT_CODE(DecodeHoldRecord(EncodeHoldRecord(h) + "x", keys::Hold(7)), Code::kCorruption);
  EXPECT_CODE(keys::DecodeHold("hold:12"), Code::kCorruption);
}

// --- The store: totals, holds, minimum retention, guard ----------------------

class RetentionStoreTest : public StoreTestBase {
 protected:
  static constexpr int64_t kGap = 100'000'000;  // 100 ms.
  void SetUp() override {
    InitOptions init;
    init.state_gap_ns = kGap;
    init.min_retention_ns = kDay;
    ASSERT_NO_FATAL_FAILURE(InitAndOpen(init));
  }
  static void Quiet() { std::this_thread::sleep_for(std::chrono::nanoseconds(kGap * 2)); }
  static InodeRecord File(uint64_t size, uint32_t nlink = 1) {
    InodeRecord r;
    r.mode = 0100644;
    r.nlink = nlink;
    r.size = size;
    return r;
  }
  Generation Put(Ino ino, const InodeRecord& rec, Op op = Op::kWrite) {
    Mutation m;
    m.PutInode(ino, rec);
    return CommitOp(m, op, ino);
  }
  State Newest() {
    State last;
    EXPECT_OK(store_->ListStates(1, [&](const State& s) {
      last = s;
      return true;
    }));
    return last;
  }
};

TEST_F(RetentionStoreTest, CommitKeepsTheTreeTotalsOfEachState) {
  EXPECT_TRUE(Newest().has_totals);
  EXPECT_EQ(Newest().tree_files, 0u);
  Put(2, File(100), Op::kCreate);
  Put(3, File(1000), Op::kCreate);
  EXPECT_EQ(Newest().tree_files, 2u);
  EXPECT_EQ(Newest().tree_bytes, 1100u);
  Put(3, File(40), Op::kTruncate);       // Shrinks.
  Put(2, File(100, 2), Op::kLink);       // A second name is not a second file.
  InodeRecord dir;
  dir.mode = 0040755;
  dir.nlink = 2;
  Put(4, dir, Op::kMkdir);               // Folders do not count.
  EXPECT_EQ(Newest().tree_files, 2u);
  EXPECT_EQ(Newest().tree_bytes, 140u);
  Quiet();
  Put(2, File(100, 0), Op::kUnlink);     // A new state starts from the old totals.
  EXPECT_EQ(Newest().tree_files, 1u);
  EXPECT_EQ(Newest().tree_bytes, 40u);
  ASSERT_NO_FATAL_FAILURE(Reopen());     // And they survive a reopen.
  Put(5, File(7), Op::kCreate);
  EXPECT_EQ(Newest().tree_files, 2u);
  EXPECT_EQ(Newest().tree_bytes, 47u);
}

TEST_F(RetentionStoreTest, TheGuardHoldsTheStateBeforeAShrinkWhenTheNextStateStarts) {
  std::vector<HoldRecord> heard;
  store_->SetGuardListener([&](const HoldRecord& h) { heard.push_back(h); });
  Quiet();
  for (Ino ino = 2; ino < 6; ++ino) Put(ino, File(1000), Op::kCreate);  // The good dump.
  const State good = Newest();
  Quiet();
  for (Ino ino = 2; ino < 5; ++ino) Put(ino, File(1000, 0), Op::kUnlink);  // Wiped...
  Put(6, File(6), Op::kCreate);                                              // ...a broken one.
  EXPECT_TRUE(heard.empty());  // The bad state has not closed yet.
  Quiet();
  Put(6, File(7));  // The next state closes it: the guard runs.
  ASSERT_EQ(heard.size(), 1u);
  EXPECT_EQ(heard[0].state, good.first_gen);
  EXPECT_EQ(heard[0].kind, HoldKind::kGuard);
  ASSERT_OK_AND_ASSIGN(std::vector<HoldRecord> holds, store_->ListHolds());
  ASSERT_EQ(holds.size(), 1u);
  EXPECT_EQ(holds[0], heard[0]);
  EXPECT_TRUE(HoldActive(holds[0], holds[0].created_ns + kDay));
  // Running it again at unmount holds nothing more.
  ASSERT_OK_AND_ASSIGN(std::optional<HoldRecord> again, store_->CheckGuard());
  EXPECT_FALSE(again);
}

TEST_F(RetentionStoreTest, CheckGuardAtUnmountAndAReleasedGuardHoldIsNotRemade) {
  Quiet();
  for (Ino ino = 2; ino < 6; ++ino) Put(ino, File(1000), Op::kCreate);
  const State good = Newest();
  Quiet();
  for (Ino ino = 2; ino < 6; ++ino) Put(ino, File(0), Op::kTruncate);  // Bytes gone, files not.
  ASSERT_OK_AND_ASSIGN(std::optional<HoldRecord> h, store_->CheckGuard());
  ASSERT_TRUE(h);
  EXPECT_EQ(h->state, good.first_gen);
  ASSERT_OK(store_->ReleaseHold(h->id));
  EXPECT_CODE(store_->ReleaseHold(h->id), Code::kInvalid);
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ASSERT_OK_AND_ASSIGN(std::optional<HoldRecord> again, store_->CheckGuard());
  EXPECT_FALSE(again);
  Quiet();
  Put(2, File(1));  // Closing the state does not hold it again either.
  ASSERT_OK_AND_ASSIGN(std::vector<HoldRecord> holds, store_->ListHolds());
  ASSERT_EQ(holds.size(), 1u);
  EXPECT_NE(holds[0].released_ns, 0);
}

TEST_F(RetentionStoreTest, TheGuardShareComesFromInitAndTheMountCanOverrideIt) {
  ASSERT_OK_AND_ASSIGN(RetentionPolicy p, store_->GetRetentionPolicy());
  EXPECT_EQ(p.guard_share_percent, 50u);
  store_->SetGuardShareOverride(0);
  Quiet();
  Put(2, File(1000), Op::kCreate);
  Quiet();
  Put(2, File(0), Op::kTruncate);
  ASSERT_OK_AND_ASSIGN(std::optional<HoldRecord> h, store_->CheckGuard());
  EXPECT_FALSE(h);  // Off for this mount.
  store_->SetGuardShareOverride(-1);
  ASSERT_OK_AND_ASSIGN(h, store_->CheckGuard());
  EXPECT_TRUE(h);
}

TEST_F(RetentionStoreTest, TheMinimumRetentionIsNeverLowered) {
  ASSERT_OK_AND_ASSIGN(RetentionPolicy p, store_->GetRetentionPolicy());
  EXPECT_EQ(p.min_retention_ns, kDay);
  Status lower = store_->RaiseMinRetention(kHour);
  EXPECT_CODE(lower, Code::kInvalid);
  EXPECT_NE(lower.message().find("never lowered"), std::string::npos) << lower.message();
  EXPECT_OK(store_->RaiseMinRetention(kDay));  // Equal: nothing to do.
  EXPECT_OK(store_->RaiseMinRetention(30 * kDay));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ASSERT_OK_AND_ASSIGN(p, store_->GetRetentionPolicy());
  EXPECT_EQ(p.min_retention_ns, 30 * kDay);
  EXPECT_CODE(store_->RaiseMinRetention(7 * kDay), Code::kInvalid);
  ASSERT_NO_FATAL_FAILURE(Reopen(OpenOptions{.read_only = true}));
  EXPECT_CODE(store_->RaiseMinRetention(60 * kDay), Code::kReadOnly);
}

TEST_F(RetentionStoreTest, HoldsNameExistingStatesAndSurviveAReopen) {
  EXPECT_CODE(store_->AddHold(999, 0, "x"), Code::kNotFound);
  ASSERT_OK_AND_ASSIGN(HoldRecord a, store_->AddHold(1, 0, "first"));
  ASSERT_OK_AND_ASSIGN(HoldRecord b, store_->AddHold(1, a.created_ns + kDay, ""));
  EXPECT_EQ(a.id, 1u);
  EXPECT_EQ(b.id, 2u);
  ASSERT_OK(store_->ReleaseHold(1));
  EXPECT_CODE(store_->ReleaseHold(3), Code::kNotFound);
  ASSERT_NO_FATAL_FAILURE(Reopen(OpenOptions{.read_only = true}));
  ASSERT_OK_AND_ASSIGN(std::vector<HoldRecord> holds, store_->ListHolds());
  ASSERT_EQ(holds.size(), 2u);
  EXPECT_EQ(holds[0].reason, "first");
  EXPECT_NE(holds[0].released_ns, 0);
  EXPECT_EQ(holds[1], b);
  EXPECT_CODE(store_->AddHold(1, 0, ""), Code::kReadOnly);
}

}  // namespace
}  // namespace snapfs::store::testing
