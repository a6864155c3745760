// snapfs_dump_gen: the workload generator and writer of the end-to-end dump
// benchmark (bench/dump_bench.sh). Deterministic: the same arguments give the
// same bytes on every machine.
//
//   snapfs_dump_gen sql    --size BYTES --day D [--seed S] [--change F] [--bs N] OUT
//       A PostgreSQL plain dump of about BYTES on day 1; on day D about F of the
//       rows (default 0.01) were rewritten on each of days 2..D, a few were
//       appended and deleted. Written with write() calls of N bytes (default
//       1 MiB), then fsync'd. OUT "-" is stdout (not fsync'd).
//   snapfs_dump_gen folder --size BYTES --day D [--seed S] [--files N] OUTDIR
//       A Python fixture dump (as Django/Lino write): N files (default 200) of
//       mixed sizes, about BYTES in all; 40 % of the files never change.
//   snapfs_dump_gen accounts --scale N [--seed S]
//       pgbench_accounts rows with realistic fillers as COPY text on stdout.
//   snapfs_dump_gen copy   [--bs N] [--no-fsync] SRC DST
//       Copies a file or a tree, writing N bytes per write() (default 1 MiB)
//       and fsyncing each file before close: the benchmark's dump writer.
//   snapfs_dump_gen read   [--bs N] PATH...
//       Reads files and trees with N-byte read() calls.
//
// copy and read print one line: "bytes=B seconds=T MBps=R".
// Exit codes: 0 ok, 1 I/O error, 2 usage.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

// GCC 12 reports a false -Wnull-dereference inside CLI11's inlined string
// code (see tools/snapfs_main.cc).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "bench/dump_data.h"

namespace snapfs::bench {
namespace {

namespace fsys = std::filesystem;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "snapfs_dump_gen: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

// Writes everything it is given in write() calls of exactly `bs` bytes (the
// last one shorter), like a dump tool writing through stdio.
class Writer {
 public:
  Writer(const std::string& path, size_t bs, bool fsync) : path_(path), bs_(bs), fsync_(fsync) {
    if (path == "-") {
      fd_ = STDOUT_FILENO;
      fsync_ = false;
    } else {
      fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd_ < 0) Die("open " + path);
    }
    buf_.reserve(bs_);
  }
  void Append(const char* p, size_t n) {
    while (n > 0) {
      const size_t take = std::min(n, bs_ - buf_.size());
      buf_.append(p, take);
      p += take;
      n -= take;
      if (buf_.size() == bs_) Drain();
    }
  }
  void Close() {
    Drain();
    if (fsync_ && ::fsync(fd_) != 0) Die("fsync " + path_);
    if (fd_ != STDOUT_FILENO && ::close(fd_) != 0) Die("close " + path_);
  }
  uint64_t bytes() const { return bytes_; }

 private:
  void Drain() {
    size_t off = 0;
    while (off < buf_.size()) {
      const ssize_t w = ::write(fd_, buf_.data() + off, buf_.size() - off);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) Die("write " + path_);
      off += static_cast<size_t>(w);
    }
    bytes_ += buf_.size();
    buf_.clear();
  }
  std::string path_;
  size_t bs_;
  bool fsync_;
  int fd_ = -1;
  std::string buf_;
  uint64_t bytes_ = 0;
};

// --- folder: a Python fixture dump ---------------------------------------

void PythonFile(const std::string& path, uint64_t seed, size_t index, uint64_t bytes, int day,
                double change, size_t bs) {
  const Table t = kDumpTables[index % std::size(kDumpTables)];
  Rng rng(Hash(seed, 0xf11e, index));
  // Four files in ten are reference tables that never change.
  const bool frozen = rng.Below(10) < 4;
  History h{.seed = Hash(seed, index), .change = frozen ? 0.0 : change};
  if (frozen) h.delete_rate = 0;
  const int eff_day = frozen ? 1 : day;
  const std::string table =
      "app" + std::to_string(index % 17) + "_" + std::string(InfoOf(t).name) + std::to_string(index);
  // Python lines are about 1.5 times as long as COPY lines.
  const uint64_t base = RowsFor(h.seed, t, static_cast<double>(bytes) / 1.5);
  Writer w(path, bs, false);
  std::string out =
      "# -*- coding: UTF-8 -*-\n"
      "logger.info(\"Loading objects to table " + table + "...\")\n"
      "# fields: " + std::string(InfoOf(t).columns) + "\n"
      "def create_" + table + "(*args):\n"
      "    return create_mti_child(" + table + ", *args)\n\n";
  PySink s(&out, table);
  auto flush = [&w](std::string* o) {
    w.Append(o->data(), o->size());
    o->clear();
  };
  Rows(s, &out, h, t, base, eff_day, 1 << 20, flush);
  out.append("\nloader.flush_deferred_objects()\n");
  flush(&out);
  w.Close();
}

int Folder(uint64_t size, int day, uint64_t seed, double change, int files, size_t bs,
           const std::string& dir) {
  std::error_code ec;
  fsys::create_directories(dir, ec);
  if (ec) {
    errno = ec.value();
    Die("mkdir " + dir);
  }
  // Sizes log-uniform over a factor of 4000: many small files, a few big ones.
  std::vector<double> weight(static_cast<size_t>(files));
  double total = 0;
  for (size_t i = 0; i < weight.size(); ++i) {
    Rng r(Hash(seed, 0x512e, i));
    weight[i] = std::exp(static_cast<double>(r.Below(1000000)) / 1e6 * std::log(4000.0));
    total += weight[i];
  }
  std::string main_py = "# Restore script written by dump2py\nimport os\nfrom datetime import "
                        "date, datetime as dt\n\ndef main(loader):\n";
  for (size_t i = 0; i < weight.size(); ++i) {
    const uint64_t bytes = std::max<uint64_t>(
        1024, static_cast<uint64_t>(static_cast<double>(size) * weight[i] / total));
    char name[64];
    std::snprintf(name, sizeof(name), "restore_%03zu.py", i);
    PythonFile(dir + "/" + name, seed, i, bytes, day, change, bs);
    main_py += "    execfile(\"" + std::string(name) + "\")\n";
  }
  Writer w(dir + "/restore.py", bs, false);
  w.Append(main_py.data(), main_py.size());
  w.Close();
  return 0;
}

// --- copy and read --------------------------------------------------------

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

uint64_t CopyFile(const std::string& src, const std::string& dst, size_t bs, bool fsync,
                  std::string* buf) {
  const int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) Die("open " + src);
  Writer w(dst, bs, fsync);
  for (;;) {
    const ssize_t n = ::read(in, buf->data(), buf->size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) Die("read " + src);
    if (n == 0) break;
    w.Append(buf->data(), static_cast<size_t>(n));
  }
  ::close(in);
  w.Close();
  return w.bytes();
}

uint64_t CopyTree(const std::string& src, const std::string& dst, size_t bs, bool fsync,
                  std::string* buf) {
  if (!fsys::is_directory(src)) return CopyFile(src, dst, bs, fsync, buf);
  if (::mkdir(dst.c_str(), 0755) != 0 && errno != EEXIST) Die("mkdir " + dst);
  std::vector<std::string> names;
  for (const auto& e : fsys::directory_iterator(src)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  uint64_t bytes = 0;
  for (const auto& n : names) bytes += CopyTree(src + "/" + n, dst + "/" + n, bs, fsync, buf);
  return bytes;
}

uint64_t ReadTree(const std::string& path, std::string* buf) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) Die("stat " + path);
  if (S_ISDIR(st.st_mode)) {
    std::vector<std::string> names;
    for (const auto& e : fsys::directory_iterator(path)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    uint64_t bytes = 0;
    for (const auto& n : names) bytes += ReadTree(path + "/" + n, buf);
    return bytes;
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) Die("open " + path);
  uint64_t bytes = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buf->data(), buf->size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) Die("read " + path);
    if (n == 0) break;
    bytes += static_cast<uint64_t>(n);
  }
  ::close(fd);
  return bytes;
}

void PrintRate(uint64_t bytes, double seconds) {
  std::printf("bytes=%llu seconds=%.3f MBps=%.1f\n", static_cast<unsigned long long>(bytes),
              seconds, seconds > 0 ? static_cast<double>(bytes) / 1e6 / seconds : 0.0);
}

// "512M", "1G", "4096": bytes (K, M, G are powers of 1024).
uint64_t ParseSize(const std::string& s) {
  size_t pos = 0;
  const double v = std::stod(s, &pos);
  double mult = 1;
  if (pos < s.size()) {
    switch (s[pos]) {
      case 'k': case 'K': mult = 1024.0; break;
      case 'm': case 'M': mult = 1024.0 * 1024; break;
      case 'g': case 'G': mult = 1024.0 * 1024 * 1024; break;
      default: throw std::invalid_argument("bad size " + s);
    }
  }
  return static_cast<uint64_t>(v * mult);
}

int Main(int argc, char** argv) {
  CLI::App app("snapfs_dump_gen: dump workloads for the snapfs benchmark", "snapfs_dump_gen");
  app.require_subcommand(1);
  std::string size_text = "1G", bs_text = "1M", out;
  int day = 1, files = 200, scale = 1;
  uint64_t seed = 1;
  double change = 0.01;
  bool no_fsync = false;
  std::vector<std::string> paths;

  CLI::App* sql = app.add_subcommand("sql", "A PostgreSQL plain dump");
  CLI::App* folder = app.add_subcommand("folder", "A Python fixture dump folder");
  for (CLI::App* c : {sql, folder}) {
    c->add_option("--size", size_text, "Bytes on day 1 (K, M, G suffixes)");
    c->add_option("--day", day, "Day (1: the first dump)")->check(CLI::Range(1, 10000));
    c->add_option("--seed", seed, "Seed");
    c->add_option("--change", change, "Share of rows rewritten per day")->check(CLI::Range(0.0, 1.0));
    c->add_option("--bs", bs_text, "Bytes per write() call");
    c->add_option("OUT", out, "Output file ('-': stdout) or folder")->required();
  }
  folder->add_option("--files", files, "Number of files")->check(CLI::Range(1, 100000));
  CLI::App* accounts = app.add_subcommand("accounts", "pgbench_accounts COPY rows on stdout");
  accounts->add_option("--scale", scale, "pgbench scale")->check(CLI::Range(1, 100000));
  accounts->add_option("--seed", seed, "Seed");
  CLI::App* copy = app.add_subcommand("copy", "Copy a file or tree, fsync each file");
  copy->add_option("--bs", bs_text, "Bytes per write() call");
  copy->add_flag("--no-fsync", no_fsync, "Do not fsync");
  copy->add_option("SRC DST", paths)->expected(2)->required();
  CLI::App* read = app.add_subcommand("read", "Read files and trees");
  read->add_option("--bs", bs_text, "Bytes per read() call");
  read->add_option("PATH", paths)->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  uint64_t size = 0;
  size_t bs = 0;
  try {
    size = ParseSize(size_text);
    bs = static_cast<size_t>(ParseSize(bs_text));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "snapfs_dump_gen: %s\n", e.what());
    return 2;
  }
  if (bs == 0) bs = 1;

  if (*sql) {
    Writer w(out, bs, true);
    History h{.seed = seed, .change = change};
    SqlDump(size, day, h, 1 << 20, [&w](std::string* o) {
      w.Append(o->data(), o->size());
      o->clear();
    });
    w.Close();
    return 0;
  }
  if (*folder) return Folder(size, day, seed, change, files, bs, out);
  if (*accounts) {
    Writer w("-", 1 << 20, false);
    std::string text;
    CopySink s(&text);
    const uint64_t rows = static_cast<uint64_t>(scale) * 100000;
    for (uint64_t id = 1; id <= rows; ++id) {
      Row(s, seed, Table::kAccounts, id, 0);
      if (text.size() >= (1u << 20)) {
        w.Append(text.data(), text.size());
        text.clear();
      }
    }
    w.Append(text.data(), text.size());
    w.Close();
    return 0;
  }
  std::string buf(bs, '\0');
  const double t0 = Now();
  uint64_t bytes = 0;
  if (*copy) {
    bytes = CopyTree(paths[0], paths[1], bs, !no_fsync, &buf);
  } else {
    for (const auto& p : paths) bytes += ReadTree(p, &buf);
  }
  PrintRate(bytes, Now() - t0);
  return 0;
}

}  // namespace
}  // namespace snapfs::bench

int main(int argc, char** argv) { return snapfs::bench::Main(argc, argv); }
