// History-length benchmark (issue 3, point 2): the cost of what snapfs-ls,
// snapfs-ls --at / --history and snapfs-mount-at do must grow with what they
// list or mount, not with how long the store's history is. Each benchmark
// runs on a store with 10 and one with 1,000 dump runs (Arg), each run
// replacing the same three dump files (rm, create, write), as a cron job does.
//
// Run (Release build):
//   cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release
//   cmake --build build-release --target snapfs_history_bench
//   build-release/bench/snapfs_history_bench
// Compare the /10 and /1000 rows of each benchmark: time per iteration (or
// per item, for listings whose output grows with the runs) should match.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "fs/vfs.h"
#include "store/store.h"
#include "store/when.h"

namespace snapfs {
namespace {

struct History {
  std::string path;
  store::Generation middle_gen = 0;
  int64_t middle_time_ns = 0;
};

void Check(const Status& st) {
  if (!st.ok()) {
    std::fprintf(stderr, "history_bench: %s\n", st.ToString().c_str());
    std::exit(1);
  }
}

// Builds (once per run count and naming) a store with `runs` dump runs, each
// its own state. Fixed names: every run replaces the same three dump files
// (rm, create, write), as a cron job does. Dated names: every run writes
// site-<run>.sql and deletes the one from seven runs before (a rotation), so
// the directory held a new name in every run.
const History& StoreWithRuns(int runs, bool dated) {
  static std::map<std::pair<int, bool>, History> cache;
  auto it = cache.find({runs, dated});
  if (it != cache.end()) return it->second;
  char tmpl[] = "/tmp/snapfs-history-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) std::exit(1);
  History h;
  h.path = std::string(tmpl) + "/store";
  store::InitOptions init;
  init.state_gap_ns = 1'000'000;  // 1 ms of quiet ends a state (a run).
  Check(store::Store::Init(h.path, init));
  {
    auto opened = store::Store::Open(h.path, {});
    Check(opened.status());
    auto s = std::move(opened).value();
    fs::Vfs vfs(s.get(), {});
    auto write = [&](const std::string& name, int run) {
      auto c = vfs.Create(store::kRootIno, name, 0644, O_WRONLY, fs::Caller{});
      Check(c.status());
      std::string data(8192, 'x');
      std::snprintf(data.data(), data.size(), "-- dump run %d of %s\n", run, name.c_str());
      Check(vfs.Write(c->fh, 0, data.data(), data.size()).status());
      Check(vfs.Release(c->fh));
      vfs.Forget(c->attr.ino, 1);
    };
    for (int run = 0; run < runs; ++run) {
      if (dated) {
        if (run >= 7) Check(vfs.Unlink(store::kRootIno, "site-" + std::to_string(run - 7) + ".sql"));
        write("site-" + std::to_string(run) + ".sql", run);
      } else {
        for (const char* name : {"site.sql", "media.sql", "site.zip"}) {
          if (run > 0) Check(vfs.Unlink(store::kRootIno, name));
          write(name, run);
        }
      }
      if (run == runs / 2) {
        h.middle_gen = s->latest();
        h.middle_time_ns = s->latest_time_ns();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  std::atexit([] {
    for (auto& [n, hist] : cache) {
      std::error_code ec;
      std::filesystem::remove_all(std::filesystem::path(hist.path).parent_path(), ec);
    }
  });
  return cache.emplace(std::make_pair(runs, dated), h).first->second;
}

const History& StoreFor(const benchmark::State& state) {
  return StoreWithRuns(static_cast<int>(state.range(0)), state.range(1) != 0);
}

std::unique_ptr<store::Store> OpenReadOnly(const History& h) {
  store::OpenOptions o;
  o.read_only = true;
  auto s = store::Store::Open(h.path, o);
  Check(s.status());
  return std::move(s).value();
}

// snapfs-mount-at's start: open a secondary, catch up, resolve WHEN, read
// the root and list it.
void BM_MountAtStart(benchmark::State& state) {
  const History& h = StoreFor(state);
  for (auto _ : state) {
    auto s = OpenReadOnly(h);
    Check(s->CatchUp());
    auto when = store::ParseWhen("g" + std::to_string(h.middle_gen));
    auto g = store::ResolveWhen(*s, *when, 0);
    Check(g.status());
    fs::Vfs vfs(s.get(), {.at = *g, .read_only = true});
    Check(vfs.GetAttr(store::kRootIno).status());
    auto dir = vfs.OpenDir(store::kRootIno);
    Check(dir.status());
    benchmark::DoNotOptimize(vfs.DirEntries(*dir).size());
    vfs.ReleaseDir(*dir);
  }
}
BENCHMARK(BM_MountAtStart)->ArgsProduct({{10, 1000}, {0, 1}})->ArgNames({"runs", "dated"})->Unit(benchmark::kMillisecond);

// snapfs-ls --at TIME /: find the generation by time, list the root then.
void BM_ListAtTime(benchmark::State& state) {
  const History& h = StoreFor(state);
  auto s = OpenReadOnly(h);
  for (auto _ : state) {
    auto g = s->GenerationAt(h.middle_time_ns);
    Check(g.status());
    int entries = 0;
    Check(s->ListDir(store::kRootIno, *g, [&](std::string_view, const store::DirentRecord& d) {
      auto rec = s->GetInode(d.child, *g);
      Check(rec.status());
      ++entries;
      return true;
    }));
    benchmark::DoNotOptimize(entries);
  }
}
BENCHMARK(BM_ListAtTime)->ArgsProduct({{10, 1000}, {0, 1}})->ArgNames({"runs", "dated"})->Unit(benchmark::kMicrosecond);

// snapfs-ls --history /site.sql: every version of the name; the output has
// one row per run, so compare the time per item.
void BM_HistoryOfOneFile(benchmark::State& state) {
  const History& h = StoreFor(state);
  auto s = OpenReadOnly(h);
  int64_t items = 0;
  for (auto _ : state) {
    Check(s->DirentVersions(store::kRootIno, "site.sql",
                            [&](store::Generation, const store::DirentRecord& d) {
                              if (d.child != 0) {
                                Check(s->InodeVersions(d.child, [&](store::Generation,
                                                                    const store::InodeRecord&) {
                                  ++items;
                                  return true;
                                }));
                              }
                              return true;
                            }));
  }
  state.SetItemsProcessed(items);
}
BENCHMARK(BM_HistoryOfOneFile)->ArgsProduct({{10, 1000}, {0}})->ArgNames({"runs", "dated"})->Unit(benchmark::kMicrosecond);

// snapfs-ls: one row per state; compare the time per item.
void BM_ListStates(benchmark::State& state) {
  const History& h = StoreFor(state);
  auto s = OpenReadOnly(h);
  int64_t items = 0;
  for (auto _ : state) {
    Check(s->ListStates(0, [&](const store::State&) {
      ++items;
      return true;
    }));
  }
  state.SetItemsProcessed(items);
}
BENCHMARK(BM_ListStates)->ArgsProduct({{10, 1000}, {0}})->ArgNames({"runs", "dated"})->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace snapfs
