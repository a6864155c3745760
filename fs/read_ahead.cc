#include "fs/read_ahead.h"

#include <algorithm>
#include <system_error>

namespace snapfs::fs {

ReadAhead::ReadAhead(store::ChunkStore* chunks, unsigned threads)
    : chunks_(chunks), threads_(std::max(threads, 1u)) {}

ReadAhead::~ReadAhead() {
  std::vector<std::thread> workers;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    queue_.clear();
    queued_.clear();
    workers.swap(workers_);
  }
  work_cv_.notify_all();
  for (auto& t : workers) t.join();
}

void ReadAhead::Prefetch(std::span<const store::ChunkId> ids) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    size_t added = 0;
    for (const store::ChunkId& id : ids) {
      if (queue_.size() >= kMaxQueued) break;
      if (queued_.count(id) || running_.count(id)) continue;
      queue_.push_back(id);
      queued_.insert(id);
      ++added;
    }
    if (added == 0) return;
    try {
      while (workers_.size() < threads_) workers_.emplace_back([this] { Loop(); });
    } catch (const std::system_error&) {
      // No thread to spare: what stays queued is claimed by the reads.
    }
  }
  work_cv_.notify_all();
}

void ReadAhead::Claim(std::span<const store::ChunkId> ids) {
  std::unique_lock lock(mu_);
  for (const store::ChunkId& id : ids) {
    if (queued_.erase(id)) queue_.erase(std::find(queue_.begin(), queue_.end(), id));
  }
  done_cv_.wait(lock, [&] {
    return std::none_of(ids.begin(), ids.end(),
                        [&](const store::ChunkId& id) { return running_.count(id) > 0; });
  });
}

void ReadAhead::Loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    store::ChunkId id = queue_.front();
    queue_.pop_front();
    queued_.erase(id);
    running_.insert(id);
    lock.unlock();
    // Fills the cache; an error is the reader's to report when it reads the
    // chunk, and nothing may escape this thread.
    try {
      (void)chunks_->Get(id);
    } catch (...) {
    }
    lock.lock();
    running_.erase(id);
    done_cv_.notify_all();
  }
}

}  // namespace snapfs::fs
