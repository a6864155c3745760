// Test hooks of the retention mechanism (store/gc.cc: Store::DropStates and
// Store::CollectGarbage). Only tests call these; production code never does.
#pragma once

#include <cstddef>
#include <functional>
#include <string_view>

namespace snapfs::store::gc_testing {

// Called with the name of each step DropStates and CollectGarbage reach, in
// order: "drop-intent" (the intent and the dropped ranges are durable),
// "drop-batch" (after each batch of deletions), "drop-done" (the intent is
// gone); "gc-epoch" (fence up, snapshot taken), "gc-swept" (dead index
// entries deleted), "gc-copied" (a pack's live records copied and synced),
// "gc-repointed" (their index entries point at the copies),
// "gc-unlinked" (a pack file removed), "gc-done". A crash test's hook
// _exit()s at a chosen step. Set it before starting the operation; nullptr
// clears it.
void SetCrashHook(std::function<void(std::string_view step)> hook);

// Keys per write batch of DropStates (default 10000); tests set it small so
// a drop takes many batches.
void SetDropBatchKeys(size_t keys);

}  // namespace snapfs::store::gc_testing
