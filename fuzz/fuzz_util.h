// Shared by the libFuzzer targets (fuzz/*_fuzzer.cc): a property check that
// crashes loudly, so that libFuzzer records the input that broke it.
// Fuzz-only; nothing here is part of snapfs.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

// Aborts (libFuzzer then saves the input as crash-*) when `cond` is false.
#define FUZZ_CHECK(cond)                                                        \
  do {                                                                          \
    if (!(cond)) {                                                              \
      std::fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, \
                   #cond);                                                      \
      std::abort();                                                             \
    }                                                                           \
  } while (0)

namespace snapfs::fuzz {

inline std::string_view AsView(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace snapfs::fuzz
