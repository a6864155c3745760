// The WHEN and DURATION parsers (store/when.h) on arbitrary text, in a zone
// with daylight saving time (Europe/Berlin). Properties: never a crash, an
// overflow or an out-of-range result; failures are kInvalid with a message;
// "-D" parses as WHEN exactly when D parses as a DURATION, to the same
// value; every moment parsed prints (FormatIsoTime, with its offset) as text
// that parses back to the same nanosecond.
#include <cstdlib>
#include <limits>
#include <string>

#include "fuzz/fuzz_util.h"
#include "store/when.h"

using namespace snapfs::store;
using snapfs::Result;
using snapfs::fuzz::AsView;

namespace {
constexpr int64_t kMaxNs = std::numeric_limits<int64_t>::max();
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ::setenv("TZ", "Europe/Berlin", 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = AsView(data, size);

  Result<int64_t> d = ParseDuration(text);
  if (d.ok()) {
    FUZZ_CHECK(*d > 0 || (*d == 0 && text.find_first_not_of("0smhdw") == std::string::npos));
  } else {
    FUZZ_CHECK(d.status().code() == snapfs::Code::kInvalid && !d.status().message().empty());
  }

  Result<WhenSpec> w = ParseWhen(text);
  if (!w.ok()) {
    FUZZ_CHECK(w.status().code() == snapfs::Code::kInvalid);
    FUZZ_CHECK(w.status().message().find("WHEN is one of") != std::string::npos);
  } else {
    switch (w->kind) {
      case WhenSpec::Kind::kNow:
        FUZZ_CHECK(text == "now");
        break;
      case WhenSpec::Kind::kState:
      case WhenSpec::Kind::kGeneration:
        FUZZ_CHECK(w->id > 0);
        FUZZ_CHECK(text == (w->kind == WhenSpec::Kind::kState ? "s" : "g") + std::to_string(w->id) ||
                   text[1] == '0');  // Leading zeros are allowed.
        break;
      case WhenSpec::Kind::kAgo: {
        FUZZ_CHECK(text[0] == '-' && w->ago_ns >= 0);
        Result<int64_t> again = ParseDuration(text.substr(1));
        FUZZ_CHECK(again.ok() && *again == w->ago_ns);
        break;
      }
      case WhenSpec::Kind::kTime: {
        FUZZ_CHECK(w->time_ns >= 0 && w->time_ns <= kMaxNs);
        const std::string iso = FormatIsoTime(w->time_ns);
        Result<WhenSpec> back = ParseWhen(iso);
        if (!back.ok() || back->time_ns != w->time_ns) {
          std::fprintf(stderr, "'%.*s' -> %lld -> '%s' -> %s\n", static_cast<int>(size), text.data(),
                       static_cast<long long>(w->time_ns), iso.c_str(),
                       back.ok() ? std::to_string(back->time_ns).c_str()
                                 : back.status().ToString().c_str());
        }
        FUZZ_CHECK(back.ok() && back->kind == WhenSpec::Kind::kTime &&
                   back->time_ns == w->time_ns);
        break;
      }
    }
  }
  if (!text.empty() && text[0] == '-') {
    Result<int64_t> dur = ParseDuration(text.substr(1));
    FUZZ_CHECK(dur.ok() == w.ok());
  }
  return 0;
}
