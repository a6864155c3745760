// WHEN: every accepted form, local time in a fixed zone (daylight-saving
// edges included), every malformed form, and resolution against a real store.
#include "store/when.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <string>
#include <thread>

#include "store/store.h"
#include "tests/store/test_util.h"

namespace snapfs::store {
namespace {

using testing::StoreTestBase;

constexpr int64_t kSec = 1'000'000'000;

// Seconds since 1970 of a UTC calendar time.
int64_t Utc(int year, int month, int day, int hour = 0, int minute = 0, int second = 0) {
  struct tm tm {};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return static_cast<int64_t>(::timegm(&tm));
}

// Sets TZ for one test and restores it afterwards.
class ScopedTz {
 public:
  explicit ScopedTz(const char* zone) {
    if (const char* old = std::getenv("TZ")) old_ = old;
    ::setenv("TZ", zone, 1);
    ::tzset();
  }
  ~ScopedTz() {
    if (old_) ::setenv("TZ", old_->c_str(), 1);
    else ::unsetenv("TZ");
    ::tzset();
  }

 private:
  std::optional<std::string> old_;
};

// A parsed moment, in seconds (whole) since 1970.
int64_t MomentOf(std::string_view text) {
  Result<WhenSpec> w = ParseWhen(text);
  EXPECT_TRUE(w.ok()) << text << ": " << w.status().ToString();
  if (!w.ok()) return -1;
  EXPECT_EQ(w->kind, WhenSpec::Kind::kTime) << text;
  return w->time_ns / kSec;
}

class WhenParseTest : public ::testing::Test {
 protected:
  ScopedTz tz_{"Europe/Berlin"};
};

TEST_F(WhenParseTest, EpochSecondsAreUtc) {
  EXPECT_EQ(ParseWhen("@0")->time_ns, 0);
  EXPECT_EQ(ParseWhen("@1779682560")->time_ns, 1779682560 * kSec);
  EXPECT_EQ(ParseWhen("@1779682560.25")->time_ns, 1779682560 * kSec + 250'000'000);
  EXPECT_EQ(ParseWhen("@1.123456789")->time_ns, kSec + 123456789);
}

TEST_F(WhenParseTest, DateAloneIsLocalMidnightAtTheStartOfTheDay) {
  // Berlin is UTC+2 in May.
  EXPECT_EQ(MomentOf("2026-05-25"), Utc(2026, 5, 24, 22));
  // And UTC+1 in January.
  EXPECT_EQ(MomentOf("2026-01-15"), Utc(2026, 1, 14, 23));
  EXPECT_EQ(MomentOf("2024-02-29"), Utc(2024, 2, 28, 23));  // A leap day.
}

TEST_F(WhenParseTest, LocalDateAndTimeWithSpaceOrT) {
  EXPECT_EQ(MomentOf("2026-05-25 06:16"), Utc(2026, 5, 25, 4, 16));
  EXPECT_EQ(MomentOf("2026-05-25 06:16:05"), Utc(2026, 5, 25, 4, 16, 5));
  EXPECT_EQ(MomentOf("2026-05-25T06:16"), Utc(2026, 5, 25, 4, 16));
  EXPECT_EQ(MomentOf("2026-05-25T06:16:05"), Utc(2026, 5, 25, 4, 16, 5));
  EXPECT_EQ(MomentOf("2026-01-15 12:00"), Utc(2026, 1, 15, 11));
  EXPECT_EQ(ParseWhen("2026-05-25T06:16:05.5")->time_ns, Utc(2026, 5, 25, 4, 16, 5) * kSec + kSec / 2);
  EXPECT_EQ(ParseWhen("2026-05-25 06:16:05,000000001")->time_ns, Utc(2026, 5, 25, 4, 16, 5) * kSec + 1);
}

TEST_F(WhenParseTest, ZoneOffsetsOverrideLocalTime) {
  EXPECT_EQ(MomentOf("2026-05-25T06:16Z"), Utc(2026, 5, 25, 6, 16));
  EXPECT_EQ(MomentOf("2026-05-25T06:16:05Z"), Utc(2026, 5, 25, 6, 16, 5));
  EXPECT_EQ(MomentOf("2026-05-25T06:16+02:00"), Utc(2026, 5, 25, 4, 16));
  EXPECT_EQ(MomentOf("2026-05-25T06:16+0200"), Utc(2026, 5, 25, 4, 16));
  EXPECT_EQ(MomentOf("2026-05-25T06:16-05"), Utc(2026, 5, 25, 11, 16));
  EXPECT_EQ(MomentOf("2026-05-25T06:16:05+05:30"), Utc(2026, 5, 25, 0, 46, 5));
  EXPECT_EQ(MomentOf("2026-05-25 06:16:05-03:00"), Utc(2026, 5, 25, 9, 16, 5));
  EXPECT_EQ(ParseWhen("2026-05-25T06:16:05.25Z")->time_ns, Utc(2026, 5, 25, 6, 16, 5) * kSec + kSec / 4);
}

TEST_F(WhenParseTest, SpringForwardGapIsRejectedAndItsEdgesAccepted) {
  // 2026-03-29: Berlin's clocks jump from 02:00 CET to 03:00 CEST.
  Result<WhenSpec> gap = ParseWhen("2026-03-29 02:30");
  EXPECT_CODE(gap, Code::kInvalid);
  EXPECT_NE(gap.status().message().find("does not exist"), std::string::npos);
  EXPECT_EQ(MomentOf("2026-03-29 01:59:59"), Utc(2026, 3, 29, 0, 59, 59));
  EXPECT_EQ(MomentOf("2026-03-29 03:00"), Utc(2026, 3, 29, 1));
  EXPECT_EQ(MomentOf("2026-03-29 02:30+01:00"), Utc(2026, 3, 29, 1, 30));  // A zone makes it real.
  EXPECT_EQ(MomentOf("2026-03-29"), Utc(2026, 3, 28, 23));
}

TEST_F(WhenParseTest, FallBackRepeatedTimeMeansItsFirstOccurrence) {
  // 2026-10-25: 03:00 CEST becomes 02:00 CET, so 02:30 happens twice.
  EXPECT_EQ(MomentOf("2026-10-25 02:30"), Utc(2026, 10, 25, 0, 30));  // CEST, the first.
  EXPECT_EQ(MomentOf("2026-10-25 02:30+01:00"), Utc(2026, 10, 25, 1, 30));  // The second.
  EXPECT_EQ(MomentOf("2026-10-25 01:59"), Utc(2026, 10, 24, 23, 59));
  EXPECT_EQ(MomentOf("2026-10-25 03:00"), Utc(2026, 10, 25, 2));
  EXPECT_EQ(MomentOf("2026-10-25"), Utc(2026, 10, 24, 22));
}

TEST(WhenParseZoneTest, DateWhoseMidnightIsSkippedStartsAtTheJump) {
  // Santiago, 2026-09-06: 00:00 -04 is 01:00 -03, so the day starts then.
  ScopedTz tz("America/Santiago");
  EXPECT_EQ(MomentOf("2026-09-06"), Utc(2026, 9, 6, 4));
  EXPECT_CODE(ParseWhen("2026-09-06 00:30"), Code::kInvalid);
  EXPECT_EQ(MomentOf("2026-09-06 01:00"), Utc(2026, 9, 6, 4));
}

TEST(WhenParseZoneTest, LocalTimeFollowsTz) {
  ScopedTz tz("UTC");
  EXPECT_EQ(MomentOf("2026-05-25 06:16"), Utc(2026, 5, 25, 6, 16));
}

TEST_F(WhenParseTest, StateIdsAndGenerations) {
  Result<WhenSpec> s = ParseWhen("s1234");
  ASSERT_OK(s);
  EXPECT_EQ(s->kind, WhenSpec::Kind::kState);
  EXPECT_EQ(s->id, 1234u);
  Result<WhenSpec> g = ParseWhen("g7");
  ASSERT_OK(g);
  EXPECT_EQ(g->kind, WhenSpec::Kind::kGeneration);
  EXPECT_EQ(g->id, 7u);
  EXPECT_EQ(ParseWhen("g18446744073709551615")->id, UINT64_MAX);
}

TEST_F(WhenParseTest, RelativeTimesAreDurationsAgo) {
  auto ago = [](std::string_view text) {
    Result<WhenSpec> w = ParseWhen(text);
    EXPECT_TRUE(w.ok()) << text << ": " << w.status().ToString();
    EXPECT_EQ(w.ok() ? w->kind : WhenSpec::Kind::kNow, WhenSpec::Kind::kAgo) << text;
    return w.ok() ? w->ago_ns / kSec : -1;
  };
  EXPECT_EQ(ago("-90s"), 90);
  EXPECT_EQ(ago("-15m"), 15 * 60);
  EXPECT_EQ(ago("-2h"), 2 * 3600);
  EXPECT_EQ(ago("-3d"), 3 * 86400);
  EXPECT_EQ(ago("-1w"), 7 * 86400);
  EXPECT_EQ(ago("-1h30m"), 5400);
  EXPECT_EQ(ago("-0s"), 0);
}

TEST_F(WhenParseTest, NowIsTheNewestGeneration) {
  Result<WhenSpec> w = ParseWhen("now");
  ASSERT_OK(w);
  EXPECT_EQ(w->kind, WhenSpec::Kind::kNow);
}

TEST_F(WhenParseTest, MalformedFormsAreRejectedWithTheAcceptedForms) {
  for (const char* bad : {
           "", " 2026-05-25", "2026-05-25 ", "2026-5-25", "26-05-25", "2026/05/25",
           "2026-02-30", "2025-02-29", "2026-04-31", "2026-13-01", "2026-00-10", "2026-05-00",
           "2026-05-25 24:00", "2026-05-25 25:00", "2026-05-25 06:60", "2026-05-25 06:16:60",
           "2026-05-25T06", "2026-05-25T6:16", "2026-05-25T06:16:", "2026-05-25T06:16:05.",
           "2026-05-25T06:16:05.1234567891", "2026-05-25T06:16.5", "2026-05-25Z",
           "2026-05-25T06:16+24:00", "2026-05-25T06:16+02:60", "2026-05-25T06:16+2",
           "2026-05-25T06:16+02:0", "2026-05-25T06:16Zjunk", "2026-05-25x", "2026-05-25  06:16",
           "1969-12-31", "2263-01-01", "9999-12-31",
           "@", "@x", "@-1", "@1.", "@1.1234567890", "@1e9", "@ 5", "@9223372037",
           "@99999999999999999999999", "s", "s0", "sx", "s12x", "S12", "g", "g0", "g-1",
           "g18446744073709551616", "-", "-5", "-5x", "--5s", "-5s5", "-s",
           "-99999999999999999999w", "-15251w", "yesterday", "Now", "today", "t1234",
       }) {
    Result<WhenSpec> w = ParseWhen(bad);
    EXPECT_CODE(w, Code::kInvalid);
    if (w.ok()) continue;
    const std::string& m = w.status().message();
    EXPECT_NE(m.find("WHEN is one of"), std::string::npos) << bad << ": " << m;
    EXPECT_NE(m.find("s1234"), std::string::npos) << m;
    EXPECT_NE(m.find("2026-05-25T06:16"), std::string::npos) << m;
    EXPECT_NE(m.find("-90s"), std::string::npos) << m;
  }
}

TEST_F(WhenParseTest, MessagesSayWhatIsWrong) {
  EXPECT_NE(ParseWhen("2026-02-30").status().message().find("no day 30 in 2026-02"),
            std::string::npos);
  EXPECT_NE(ParseWhen("2026-05-25 25:00").status().message().find("hours are 00 to 23"),
            std::string::npos);
  EXPECT_NE(ParseWhen("2026-05-25x").status().message().find("'x' at the end"), std::string::npos);
  EXPECT_NE(ParseWhen("@99999999999").status().message().find("out of range"), std::string::npos);
  EXPECT_NE(ParseWhen("").status().message().find("empty"), std::string::npos);
}

TEST(DurationTest, UnitsCombineAndJunkIsRejected) {
  EXPECT_EQ(*ParseDuration("10m"), 600 * kSec);
  EXPECT_EQ(*ParseDuration("1h30m"), 5400 * kSec);
  EXPECT_EQ(*ParseDuration("1w1d1h1m1s"), (8 * 86400 + 3661) * kSec);
  for (const char* bad : {"", "10", "m", "10x", "1.5h", "-1h", "10m ", "99999999999999999999s",
                          "9223372037s", "15251w"})
    EXPECT_CODE(ParseDuration(bad), Code::kInvalid);
}

TEST(FormatTimeTest, LocalAndIso) {
  ScopedTz tz("Europe/Berlin");
  const int64_t t = Utc(2026, 5, 25, 4, 16, 3) * kSec;
  EXPECT_EQ(FormatLocalTime(t), "2026-05-25 06:16:03");
  EXPECT_EQ(FormatIsoTime(t), "2026-05-25T06:16:03+02:00");
  EXPECT_EQ(FormatIsoTime(t + 250'000'000), "2026-05-25T06:16:03.250000000+02:00");
  EXPECT_EQ(FormatIsoTime(Utc(2026, 1, 1) * kSec), "2026-01-01T01:00:00+01:00");
  // What the tools print can be given back as a WHEN.
  EXPECT_EQ(ParseWhen(FormatLocalTime(t))->time_ns, t);
  EXPECT_EQ(ParseWhen(FormatIsoTime(t + 250'000'000))->time_ns, t + 250'000'000);
}

// --- Resolution against a store --------------------------------------------

class ResolveWhenTest : public StoreTestBase {
 protected:
  void SetUp() override {}  // Each test picks its InitOptions.

  // Commits a new empty directory entry in the root; returns its generation.
  Generation CommitOne() {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    Mutation m;
    const Ino ino = store_->AllocateIno();
    InodeRecord rec;
    rec.op = Op::kMkdir;
    rec.mode = S_IFDIR | 0755;
    rec.nlink = 2;
    m.PutInode(ino, rec);
    m.PutDirent(kRootIno, "d" + std::to_string(ino), DirentRecord{ino, S_IFDIR >> 12});
    m.PutDirent(ino, "..", DirentRecord{kRootIno, S_IFDIR >> 12});
    return CommitOp(m, Op::kMkdir, ino);
  }
  int64_t TimeOf(Generation g) {
    Result<LogRecord> log = store_->GetLog(g);
    EXPECT_TRUE(log.ok()) << log.status().ToString();
    return log.ok() ? log->time_ns : 0;
  }
  Result<Generation> Resolve(std::string_view text, int64_t now_ns = 0) {
    SNAPFS_ASSIGN_OR_RETURN(WhenSpec w, ParseWhen(text));
    return ResolveWhen(*store_, w, now_ns);
  }
  Result<Generation> ResolveAt(int64_t time_ns) {
    WhenSpec w;
    w.kind = WhenSpec::Kind::kTime;
    w.time_ns = time_ns;
    return ResolveWhen(*store_, w, 0);
  }
};

TEST_F(ResolveWhenTest, MomentGivesTheNewestGenerationAtOrBeforeIt) {
  ASSERT_NO_FATAL_FAILURE(InitAndOpen(InitOptions{.state_gap_ns = 1}));
  for (int i = 0; i < 3; ++i) CommitOne();  // Generations 2, 3, 4.
  ASSERT_GT(TimeOf(3), TimeOf(2));
  EXPECT_EQ(*ResolveAt(TimeOf(1)), 1u);
  EXPECT_EQ(*ResolveAt(TimeOf(3)), 3u);
  EXPECT_EQ(*ResolveAt(TimeOf(3) - 1), 2u);
  EXPECT_EQ(*ResolveAt(TimeOf(4) + 1000 * kSec), 4u);
  EXPECT_EQ(*Resolve("@" + std::to_string(TimeOf(4) / kSec + 1)), 4u);
}

TEST_F(ResolveWhenTest, MomentBeforeTheFirstGenerationIsNotFoundAndSaysWhenHistoryStarts) {
  ASSERT_NO_FATAL_FAILURE(InitAndOpen());
  ScopedTz tz("Europe/Berlin");
  Result<Generation> g = ResolveAt(TimeOf(1) - 1);
  EXPECT_CODE(g, Code::kNotFound);
  EXPECT_NE(g.status().message().find("the store's history, which starts at " +
                                      FormatLocalTime(TimeOf(1))),
            std::string::npos)
      << g.status().message();
  EXPECT_CODE(Resolve("2000-01-01"), Code::kNotFound);
}

TEST_F(ResolveWhenTest, AgoCountsBackFromNow) {
  ASSERT_NO_FATAL_FAILURE(InitAndOpen(InitOptions{.state_gap_ns = 1}));
  CommitOne();
  CommitOne();
  const int64_t now = TimeOf(3) + 90 * kSec;
  EXPECT_EQ(*Resolve("-90s", now), 3u);
  EXPECT_EQ(*Resolve("-0s", now), 3u);
  WhenSpec just_before;
  just_before.kind = WhenSpec::Kind::kAgo;
  just_before.ago_ns = 90 * kSec + 1;
  EXPECT_EQ(*ResolveWhen(*store_, just_before, now), 2u);
  EXPECT_CODE(Resolve("-1w", now), Code::kNotFound);
}

TEST_F(ResolveWhenTest, StateIdGivesTheLastGenerationOfThatState) {
  // One state per commit.
  ASSERT_NO_FATAL_FAILURE(InitAndOpen(InitOptions{.state_gap_ns = 1}));
  CommitOne();
  CommitOne();
  EXPECT_EQ(*Resolve("s1"), 1u);
  EXPECT_EQ(*Resolve("s2"), 2u);
  EXPECT_EQ(*Resolve("s3"), 3u);
  Result<Generation> missing = Resolve("s4");
  EXPECT_CODE(missing, Code::kNotFound);
  EXPECT_NE(missing.status().message().find("no state s4"), std::string::npos);
}

TEST_F(ResolveWhenTest, StateIdOfABurstGivesItsEnd) {
  ASSERT_NO_FATAL_FAILURE(InitAndOpen());  // Default gap: everything is one burst.
  CommitOne();
  CommitOne();
  CommitOne();
  EXPECT_EQ(*Resolve("s1"), 4u);
  EXPECT_CODE(Resolve("s2"), Code::kNotFound);  // Inside s1, not a state's first generation.
}

TEST_F(ResolveWhenTest, GenerationAndNow) {
  ASSERT_NO_FATAL_FAILURE(InitAndOpen());
  CommitOne();
  CommitOne();
  EXPECT_EQ(*Resolve("g2"), 2u);
  EXPECT_EQ(*Resolve("now"), 3u);
  Result<Generation> missing = Resolve("g4");
  EXPECT_CODE(missing, Code::kNotFound);
  EXPECT_NE(missing.status().message().find("the newest is g3"), std::string::npos);
}

TEST_F(ResolveWhenTest, ReadOnlyStoreResolvesTheDaemonsCommits) {
  ASSERT_NO_FATAL_FAILURE(InitAndOpen(InitOptions{.state_gap_ns = 1}));
  OpenOptions ro;
  ro.read_only = true;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> reader, Store::Open(path_, ro));
  CommitOne();
  ASSERT_OK(reader->CatchUp());
  ASSERT_OK_AND_ASSIGN(WhenSpec now, ParseWhen("now"));
  EXPECT_EQ(*ResolveWhen(*reader, now, 0), 2u);
  ASSERT_OK_AND_ASSIGN(WhenSpec s2, ParseWhen("s2"));
  EXPECT_EQ(*ResolveWhen(*reader, s2, 0), 2u);
}

}  // namespace
}  // namespace snapfs::store
