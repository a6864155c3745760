// A store with a Vfs over it, opened as the daemon opens it, for tests that
// drive whole dump runs and reopen the store as a restarted daemon would
// (gc_test.cc, delta_test.cc).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "fs/vfs.h"
#include "store/gc.h"
#include "store/store.h"
#include "tests/store/test_util.h"

namespace snapfs::store::testing {

class VfsStoreTest : public ::testing::Test {
 protected:
  // `state_gap_ns` of quiet ends a state (EndState waits one and a half).
  explicit VfsStoreTest(int64_t state_gap_ns) : state_gap_ns_(state_gap_ns) {}

  void SetUp() override {
    InitOptions init;
    init.state_gap_ns = state_gap_ns_;
    ASSERT_OK(Store::Init(path_, init));
    ASSERT_NO_FATAL_FAILURE(Open());
  }
  void TearDown() override {
    gc_testing::SetCrashHook(nullptr);
    Close();
  }
  void Open() {
    OpenOptions o;
    o.compress_threads = 2;
    ASSERT_OK_AND_ASSIGN(store_, Store::Open(path_, o));
    vfs_ = std::make_unique<fs::Vfs>(store_.get(), fs::VfsOptions{});
  }
  void Close() {
    vfs_.reset();
    store_.reset();
  }
  void Reopen() {
    Close();
    ASSERT_NO_FATAL_FAILURE(Open());
  }
  // Ends the current state: the next change starts a new one.
  void EndState() const {
    std::this_thread::sleep_for(std::chrono::nanoseconds(state_gap_ns_ * 3 / 2));
  }

  const int64_t state_gap_ns_;
  TempDir dir_;
  const std::string path_ = dir_.path() + "/store";
  std::unique_ptr<Store> store_;
  std::unique_ptr<fs::Vfs> vfs_;
};

}  // namespace snapfs::store::testing
