#include "store/when.h"

#include <cstdio>
#include <ctime>

#include <algorithm>
#include <limits>
#include <optional>

#include "store/store.h"

namespace snapfs::store {

const char kWhenForms[] =
    "  @1779682560[.25]             seconds since 1970-01-01 UTC\n"
    "  2026-05-25                   local time, 00:00 at the start of that day\n"
    "  '2026-05-25 06:16[:05]'      local time\n"
    "  2026-05-25T06:16[:05[.5]]    ISO 8601, local time\n"
    "  2026-05-25T06:16[:05][Z|+02:00|+0200|-05]   with a zone (also after a space)\n"
    "  s1234                        a state id from snapfs-ls (the end of that state)\n"
    "  g1234                        a generation\n"
    "  -90s -15m -2h -3d -1w        that long ago (units combine: -1h30m)\n"
    "  now                          the newest generation\n";

namespace {

constexpr int64_t kNsPerSec = 1'000'000'000;
// The last whole second whose nanoseconds fit an int64_t: 2262-04-11.
constexpr int64_t kMaxSeconds = std::numeric_limits<int64_t>::max() / kNsPerSec - 1;

Status Bad(std::string_view text, const std::string& why) {
  return Status::Invalid("bad WHEN '" + std::string(text) + "': " + why +
                         "; WHEN is one of:\n" + kWhenForms);
}

// Reads a string left to right; every method consumes only on success.
class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}
  bool done() const { return pos_ == s_.size(); }
  std::string_view rest() const { return s_.substr(pos_); }
  bool Eat(char c) {
    if (done() || s_[pos_] != c) return false;
    ++pos_;
    return true;
  }
  bool AtDigit() const { return !done() && s_[pos_] >= '0' && s_[pos_] <= '9'; }
  // Exactly `n` decimal digits.
  bool Fixed(int n, int* out) {
    if (s_.size() - pos_ < static_cast<size_t>(n)) return false;
    int v = 0;
    for (int i = 0; i < n; ++i) {
      const char c = s_[pos_ + i];
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    pos_ += n;
    *out = v;
    return true;
  }
  // One or more digits. nullopt if there are none; *overflow when the number
  // does not fit a uint64_t (the digits are consumed either way).
  std::optional<uint64_t> Number(bool* overflow) {
    *overflow = false;
    if (!AtDigit()) return std::nullopt;
    uint64_t v = 0;
    while (AtDigit()) {
      const uint64_t d = static_cast<uint64_t>(s_[pos_++] - '0');
      if (__builtin_mul_overflow(v, 10u, &v) || __builtin_add_overflow(v, d, &v)) *overflow = true;
    }
    return v;
  }
  // 1..9 digits of a decimal fraction, as nanoseconds.
  std::optional<int64_t> Fraction() {
    int64_t ns = 0;
    int n = 0;
    while (AtDigit() && n < 9) {
      ns = ns * 10 + (s_[pos_++] - '0');
      ++n;
    }
    if (n == 0 || AtDigit()) return std::nullopt;
    for (int i = n; i < 9; ++i) ns *= 10;
    return ns;
  }

 private:
  std::string_view s_;
  size_t pos_ = 0;
};

// A calendar date and time as written, before any zone is applied.
struct Fields {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  int64_t frac_ns = 0;
  bool has_time = false;
  std::optional<int> offset_s;  // Set when a zone was given: seconds east of UTC.
};

struct tm ToTm(const Fields& f) {
  struct tm tm {};
  tm.tm_year = f.year - 1900;
  tm.tm_mon = f.month - 1;
  tm.tm_mday = f.day;
  tm.tm_hour = f.hour;
  tm.tm_min = f.minute;
  tm.tm_sec = f.second;
  return tm;
}

bool SameFields(const struct tm& a, const struct tm& b) {
  return a.tm_year == b.tm_year && a.tm_mon == b.tm_mon && a.tm_mday == b.tm_mday &&
         a.tm_hour == b.tm_hour && a.tm_min == b.tm_min && a.tm_sec == b.tm_sec;
}

// Parses "YYYY-MM-DD[( |T)HH:MM[:SS[.frac]][zone]]" into *f; the message on
// failure says which part is wrong.
Status ParseDateTime(std::string_view text, Fields* f) {
  Cursor c(text);
  const Status shape = Bad(text, "not a date or time in a known form");
  if (!c.Fixed(4, &f->year) || !c.Eat('-') || !c.Fixed(2, &f->month) || !c.Eat('-') ||
      !c.Fixed(2, &f->day))
    return shape;
  if (!c.done()) {
    if (!c.Eat('T') && !c.Eat(' '))
      return Bad(text, "unexpected '" + std::string(c.rest()) + "' at the end");
    f->has_time = true;
    if (!c.Fixed(2, &f->hour) || !c.Eat(':') || !c.Fixed(2, &f->minute)) return shape;
    if (c.Eat(':')) {
      if (!c.Fixed(2, &f->second)) return shape;
      if (c.Eat('.') || c.Eat(',')) {
        std::optional<int64_t> ns = c.Fraction();
        if (!ns) return Bad(text, "a fraction of a second has 1 to 9 digits");
        f->frac_ns = *ns;
      }
    }
    if (c.Eat('Z')) {
      f->offset_s = 0;
    } else if (const bool minus = c.Eat('-'); minus || c.Eat('+')) {
      const int sign = minus ? -1 : 1;
      int hours = 0, minutes = 0;
      if (!c.Fixed(2, &hours)) return shape;
      if (c.Eat(':')) {
        if (!c.Fixed(2, &minutes)) return shape;
      } else if (!c.done() && !c.Fixed(2, &minutes)) {
        return shape;
      }
      if (hours > 23 || minutes > 59)
        return Bad(text, "a zone offset is -23:59 to +23:59");
      f->offset_s = sign * (hours * 3600 + minutes * 60);
    }
  }
  if (!c.done()) return Bad(text, "unexpected '" + std::string(c.rest()) + "' at the end");
  if (f->month < 1 || f->month > 12) return Bad(text, "there is no month " + std::to_string(f->month));
  if (f->hour > 23) return Bad(text, "hours are 00 to 23");
  if (f->minute > 59) return Bad(text, "minutes are 00 to 59");
  if (f->second > 59) return Bad(text, "seconds are 00 to 59");
  // The day exists if the C library maps it to itself (timegm normalizes
  // 02-30 to 03-02).
  struct tm noon = ToTm(*f);
  noon.tm_hour = 12;
  noon.tm_min = noon.tm_sec = 0;
  const time_t t = ::timegm(&noon);
  struct tm back {};
  if (::gmtime_r(&t, &back) == nullptr || back.tm_mday != f->day || back.tm_mon != f->month - 1)
    return Bad(text, "there is no day " + std::to_string(f->day) + " in " +
                         std::string(text.substr(0, 7)));
  return Status::Ok();
}

// Seconds since 1970 of `f` read as local time (TZ); see when.h for skipped
// and repeated times.
Result<int64_t> LocalSeconds(std::string_view text, const Fields& f) {
  ::tzset();
  // Each reading of the wall clock time that maps back to the same fields is
  // a real moment: two on a fall-back night, none in a spring-forward gap.
  std::optional<time_t> first;
  std::optional<time_t> day_start;  // For a date alone: the day's first moment.
  for (int isdst : {-1, 0, 1}) {
    struct tm tm = ToTm(f);
    tm.tm_isdst = isdst;
    const time_t t = ::mktime(&tm);
    struct tm back {};
    if (::localtime_r(&t, &back) == nullptr) continue;
    if (SameFields(back, ToTm(f))) first = first ? std::min(*first, t) : t;
    if (back.tm_year == f.year - 1900 && back.tm_mon == f.month - 1 && back.tm_mday == f.day)
      day_start = day_start ? std::min(*day_start, t) : t;
  }
  if (first) return static_cast<int64_t>(*first);
  // Midnight skipped by a jump at 00:00: the day starts at the jump.
  if (!f.has_time && day_start) return static_cast<int64_t>(*day_start);
  return Bad(text, "that local time does not exist (the clocks skipped it for daylight saving "
                   "time); give a zone offset or another time");
}

Result<WhenSpec> ParseMoment(std::string_view text) {
  Fields f;
  SNAPFS_RETURN_IF_ERROR(ParseDateTime(text, &f));
  int64_t secs = 0;
  if (f.offset_s) {
    struct tm tm = ToTm(f);
    secs = static_cast<int64_t>(::timegm(&tm)) - *f.offset_s;
  } else {
    SNAPFS_ASSIGN_OR_RETURN(secs, LocalSeconds(text, f));
  }
  if (secs < 0 || secs > kMaxSeconds) return Bad(text, "out of range (1970 to 2262)");
  WhenSpec w;
  w.kind = WhenSpec::Kind::kTime;
  w.time_ns = secs * kNsPerSec + f.frac_ns;
  return w;
}

Result<WhenSpec> ParseEpoch(std::string_view text) {
  Cursor c(text.substr(1));
  bool overflow = false;
  std::optional<uint64_t> secs = c.Number(&overflow);
  if (!secs) return Bad(text, "'@' is followed by seconds since 1970");
  int64_t frac = 0;
  if (c.Eat('.')) {
    std::optional<int64_t> ns = c.Fraction();
    if (!ns) return Bad(text, "a fraction of a second has 1 to 9 digits");
    frac = *ns;
  }
  if (!c.done()) return Bad(text, "unexpected '" + std::string(c.rest()) + "' at the end");
  if (overflow || *secs > static_cast<uint64_t>(kMaxSeconds))
    return Bad(text, "out of range (1970 to 2262)");
  WhenSpec w;
  w.kind = WhenSpec::Kind::kTime;
  w.time_ns = static_cast<int64_t>(*secs) * kNsPerSec + frac;
  return w;
}

Result<WhenSpec> ParseId(std::string_view text) {
  Cursor c(text.substr(1));
  bool overflow = false;
  std::optional<uint64_t> id = c.Number(&overflow);
  const char* what = text[0] == 's' ? "a state id" : "a generation";
  if (!id || !c.done()) return Bad(text, std::string(what) + " is a number after '" + text[0] + "'");
  if (overflow || *id == 0) return Bad(text, std::string(what) + " is 1 to 18446744073709551615");
  WhenSpec w;
  w.kind = text[0] == 's' ? WhenSpec::Kind::kState : WhenSpec::Kind::kGeneration;
  w.id = *id;
  return w;
}

}  // namespace

Result<int64_t> ParseDuration(std::string_view text) {
  const Status bad = Status::Invalid("'" + std::string(text) +
                                     "' is not a duration such as 90s, 15m, 2h, 3d, 1w or 1h30m");
  Cursor c(text);
  int64_t total = 0;
  bool any = false;
  while (!c.done()) {
    bool overflow = false;
    std::optional<uint64_t> n = c.Number(&overflow);
    if (!n) return bad;
    int64_t unit = 0;
    if (c.Eat('s')) unit = 1;
    else if (c.Eat('m')) unit = 60;
    else if (c.Eat('h')) unit = 3600;
    else if (c.Eat('d')) unit = 86400;
    else if (c.Eat('w')) unit = 7 * 86400;
    else return bad;
    int64_t ns = 0;
    if (overflow || *n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        __builtin_mul_overflow(static_cast<int64_t>(*n), unit * kNsPerSec, &ns) ||
        __builtin_add_overflow(total, ns, &total))
      return Status::Invalid("'" + std::string(text) + "' is too long a duration");
    any = true;
  }
  if (!any) return bad;
  return total;
}

Result<WhenSpec> ParseWhen(std::string_view text) {
  if (text.empty()) return Bad(text, "it is empty");
  if (text == "now") return WhenSpec{};
  switch (text[0]) {
    case '@':
      return ParseEpoch(text);
    case 's':
    case 'g':
      return ParseId(text);
    case '-': {
      Result<int64_t> ago = ParseDuration(text.substr(1));
      if (!ago.ok()) return Bad(text, ago.status().message());
      WhenSpec w;
      w.kind = WhenSpec::Kind::kAgo;
      w.ago_ns = *ago;
      return w;
    }
    default:
      return ParseMoment(text);
  }
}

Result<Generation> ResolveWhen(Store& store, const WhenSpec& when, int64_t now_ns) {
  switch (when.kind) {
    case WhenSpec::Kind::kNow:
      return store.latest();
    case WhenSpec::Kind::kGeneration:
      if (when.id == 0 || when.id > store.latest())
        return Status::NotFound("there is no generation g" + std::to_string(when.id) +
                                "; the newest is g" + std::to_string(store.latest()));
      // A generation of a dropped (pruned) state: the kept one before it.
      if (store.KeptAtOrBefore(when.id) == 0)
        return Status::NotFound("g" + std::to_string(when.id) +
                                " was pruned and no older state is kept");
      return store.KeptAtOrBefore(when.id);
    case WhenSpec::Kind::kState: {
      std::optional<State> found;
      SNAPFS_RETURN_IF_ERROR(store.ListStates(when.id, [&](const State& s) {
        if (s.first_gen == when.id) found = s;
        return false;
      }));
      if (!found && store.IsDropped(when.id))
        return Status::NotFound("state s" + std::to_string(when.id) +
                                " was pruned (snapfs-ls STORE lists the states kept)");
      if (!found)
        return Status::NotFound("there is no state s" + std::to_string(when.id) +
                                " (snapfs-ls STORE lists the states)");
      return found->last_gen;
    }
    case WhenSpec::Kind::kTime:
    case WhenSpec::Kind::kAgo:
      break;
  }
  const int64_t t = when.kind == WhenSpec::Kind::kAgo ? now_ns - when.ago_ns : when.time_ns;
  SNAPFS_ASSIGN_OR_RETURN(LogRecord first, store.GetLog(1));
  if (t < first.time_ns)
    return Status::NotFound(FormatLocalTime(t) + " is before the store's history, which starts at " +
                            FormatLocalTime(first.time_ns));
  return store.GenerationAt(t);
}

namespace {
// Whole seconds (rounded down) and the nanoseconds after them.
std::pair<time_t, int64_t> SplitNs(int64_t time_ns) {
  int64_t secs = time_ns / kNsPerSec;
  int64_t ns = time_ns % kNsPerSec;
  if (ns < 0) {
    secs -= 1;
    ns += kNsPerSec;
  }
  return {static_cast<time_t>(secs), ns};
}

std::string Strftime(const char* format, const struct tm& tm) {
  char buf[64];
  const size_t n = std::strftime(buf, sizeof buf, format, &tm);
  return std::string(buf, n);
}
}  // namespace

std::string FormatLocalTime(int64_t time_ns) {
  const auto [secs, ns] = SplitNs(time_ns);
  struct tm tm {};
  if (::localtime_r(&secs, &tm) == nullptr) return "@" + std::to_string(secs);
  return Strftime("%Y-%m-%d %H:%M:%S", tm);
}

std::string FormatIsoTime(int64_t time_ns) {
  const auto [secs, ns] = SplitNs(time_ns);
  struct tm tm {};
  if (::localtime_r(&secs, &tm) == nullptr) return "@" + std::to_string(secs);
  std::string out = Strftime("%Y-%m-%dT%H:%M:%S", tm);
  if (ns != 0) {
    char frac[16];
    std::snprintf(frac, sizeof frac, ".%09lld", static_cast<long long>(ns));
    out += frac;
  }
  std::string zone = Strftime("%z", tm);  // "+0200"
  if (zone.size() == 5) zone.insert(3, ":");
  return out + zone;
}

std::string FormatSize(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024 && unit < 6) {
    v /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[unit]);
  return buf;
}

}  // namespace snapfs::store
