// WHEN: how every snapfs tool names a moment in a store's history
// (snapfs-ls --at, snapfs-diff, snapfs-mount-at, .snapfs/at/<WHEN>/).
//
// WHEN means "the latest committed state at or before that moment". The
// accepted forms (docs/cli.md, "WHEN"; kWhenForms below):
//   @1779682560[.25]          seconds since 1970-01-01 UTC, optionally fractional
//   2026-05-25                local time, 00:00 at the start of that day
//   2026-05-25 06:16[:05]     local time (quote the space in a shell)
//   2026-05-25T06:16[:05[.5]] ISO 8601; either separator may end in a zone:
//                             Z, +02:00, +0200 or -05 (then it is not local time)
//   s1234                     a state id as printed by snapfs-ls: that state's end
//   g1234                     a generation
//   -90s -15m -2h -3d -1w     that long before now; units combine: -1h30m
//   now                       the newest generation
//
// A time given to the minute or second means the start of that minute or
// second, and a date means 00:00 local at the start of that day (as in
// ISO 8601 and date(1)): `2026-05-25` is the tree as the day began, so it
// shows the night's dumps of the 24th, not the 25th's. To name a state
// exactly, use its id.
//
// Local times follow the TZ environment variable (POSIX mktime/localtime_r).
// A local time that a daylight-saving jump skipped (02:30 on a spring-forward
// night) is rejected; one that occurred twice (02:30 on a fall-back night)
// means its first occurrence. A zone offset avoids both.
//
// Thread-safety: ParseWhen and the formatters call tzset()/localtime_r, which
// are safe to call concurrently; changing TZ while they run is not.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "store/key_format.h"
#include "store/status.h"

namespace snapfs::store {

class Store;

// A parsed WHEN; ResolveWhen turns it into a generation.
struct WhenSpec {
  enum class Kind : uint8_t {
    kTime,        // time_ns: a moment (ns since 1970 UTC).
    kAgo,         // ago_ns: that long before `now` (>= 0).
    kState,       // id: the state whose first generation is id.
    kGeneration,  // id: that generation.
    kNow,         // The newest generation.
  };
  Kind kind = Kind::kNow;
  int64_t time_ns = 0;
  int64_t ago_ns = 0;
  uint64_t id = 0;
  bool operator==(const WhenSpec&) const = default;
};

// The accepted forms, one per line, for --help and error messages.
extern const char kWhenForms[];

// Parses `text` (no leading or trailing space). kInvalid, with a message
// that says what is wrong and then lists kWhenForms, for anything else: an
// empty string, an impossible date or time (2026-02-30, 25:00), a number out
// of range (a moment outside 1970..2262, an offset past 23:59), trailing
// characters, a skipped local time.
Result<WhenSpec> ParseWhen(std::string_view text);

// A duration: one or more <integer><unit> with unit s, m, h, d or w
// ("90s", "1h30m"); returns nanoseconds. kInvalid for anything else or on
// overflow.
Result<int64_t> ParseDuration(std::string_view text);

// The latest generation at or before `when` (`now_ns`: the current time, for
// kAgo). A state id resolves to that state's last generation. Errors:
// kNotFound when the moment is before the store's first generation ("the
// store's history starts at ..."), or the state or generation does not exist;
// store read errors (kCorruption, kIo).
Result<Generation> ResolveWhen(Store& store, const WhenSpec& when, int64_t now_ns);

// `time_ns` in local time: "2026-05-25 06:16:03".
std::string FormatLocalTime(int64_t time_ns);
// `time_ns` as ISO 8601 in local time with its offset:
// "2026-05-25T06:16:03+02:00" (a fraction is added when it is not zero:
// "...:03.250000000+02:00").
std::string FormatIsoTime(int64_t time_ns);
// A byte count in binary units as the tools print it: "512 B", "1.5 MiB".
std::string FormatSize(uint64_t bytes);

}  // namespace snapfs::store
