// snapfs::fs::ReadAhead — decodes the chunks a sequential reader will ask for
// next on background threads, so that its next read finds them in the chunk
// store's cache of decoded chunks instead of waiting for pread, zstd and the
// hash check.
//
// Why: the kernel sends the reads of one file through FUSE mostly one at a
// time (128 KiB each: its readahead window, which FUSE_INIT can only lower),
// so without this the FUSE thread serving the read decodes while the other
// cores idle, and the reader waits for every chunk in turn
// (docs/performance.md, "Reading back").
//
// Prefetches are hints: one that fails is dropped (the read that needs the
// chunk fetches it again and reports the error), and beyond kMaxQueued
// queued chunks new hints are dropped too. Each chunk is fetched at most once
// at a time: Claim() takes a queued chunk back from the queue (the caller
// fetches it itself) and waits for one being fetched.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <span>
#include <thread>
#include <unordered_set>
#include <vector>

#include "store/chunk_store.h"

namespace snapfs::fs {

class ReadAhead {
 public:
  static constexpr size_t kMaxQueued = 256;

  // Fetches through `chunks` (not owned; it must outlive this) on `threads`
  // threads (at least 1), started at the first Prefetch().
  ReadAhead(store::ChunkStore* chunks, unsigned threads);
  // Drops what is still queued and waits for the fetches that are running.
  ~ReadAhead();
  ReadAhead(const ReadAhead&) = delete;
  ReadAhead& operator=(const ReadAhead&) = delete;

  // Queues a fetch of each of `ids` that is neither queued nor being fetched.
  void Prefetch(std::span<const store::ChunkId> ids);
  // Call before fetching `ids` yourself: removes those still queued from the
  // queue and waits until none of them is being fetched (it is cached then,
  // unless the fetch failed).
  void Claim(std::span<const store::ChunkId> ids);

 private:
  void Loop();

  store::ChunkStore* const chunks_;
  const unsigned threads_;
  std::mutex mu_;
  std::condition_variable work_cv_;  // Threads wait for work.
  std::condition_variable done_cv_;  // Claim() waits for running fetches.
  std::deque<store::ChunkId> queue_;
  std::unordered_set<store::ChunkId, store::ChunkIdHash> queued_;
  std::unordered_set<store::ChunkId, store::ChunkIdHash> running_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;  // mu_: started lazily.
};

}  // namespace snapfs::fs
