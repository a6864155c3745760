#!/usr/bin/env python3
"""The end-to-end dump benchmark of snapfs (issue 4). Run it through
bench/dump_bench.sh, which builds what it needs first; docs/performance.md has
the commands and a real run's results.

For each workload it writes the same dumps, day after day, to every target
side by side, and measures ingest speed (including the final fsync), bytes
stored after each day, read-back speed of today's tree and of day 1, the
daemons' peak RSS and the CPU time per GB ingested.

Workloads (generated deterministically by snapfs_dump_gen, seeded):
  sql          a PostgreSQL plain dump of --size bytes, rewritten daily with
               about 1 % of its rows changed at scattered places (1 MiB writes)
  folder       a Python fixture dump: 200 files of mixed sizes, --size / 2 bytes
               in all, rewritten daily after `rm -rf`
  smallwrites  the sql workload written with 8 KiB write() calls
  pgdump       a real pg_dump of a pgbench database (realistic fillers) in a
               throwaway PostgreSQL cluster; each day pgbench updates ~1 % of
               the accounts. Skipped when PostgreSQL is not installed.
Targets:
  plain        a folder on the same disk; one folder per day ("keep every day")
  passthrough  libfuse's passthrough_ll example, -o writeback: the FUSE ceiling
  snapfs       the snapfs daemon (Release build)
  borg         borg create --compression zstd,3 of the day's tree (-e none)
  restic       restic backup of the day's tree (repository v2, compression auto)

Everything lives under --work (default /tmp/snapfs-bench); results go to
--out (default WORK/results). Every mount is unmounted and every daemon
stopped on exit, also on errors and Ctrl-C.
"""

import argparse
import atexit
import csv
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time

PG_BIN = "/usr/lib/postgresql/15/bin"
PASSTHROUGH_SRC = "/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c"
ALL_TARGETS = ["plain", "passthrough", "snapfs", "borg", "restic"]
ALL_WORKLOADS = ["sql", "folder", "smallwrites", "pgdump"]
FS_TARGETS = {"plain", "passthrough", "snapfs"}
MB = 1e6
MiB = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_size(text):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgG]?)", text)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (use 512M, 1G, ...)")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    return int(float(m.group(1)) * mult)


def run(cmd, **kw):
    """Runs cmd, raising with its output if it fails."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    p = subprocess.run(cmd, text=True, **kw)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({p.returncode}): "
                           f"{(p.stderr or '')[-2000:]}{(p.stdout or '')[-500:]}")
    return p


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def proc_cpu(pid):
    """utime + stime of a live process (all its threads), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except OSError:
        return 0.0


def proc_status(pid, key):
    """A kB field of /proc/pid/status (VmHWM, VmRSS) in bytes, or 0."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def du(path):
    """Apparent bytes of everything under path. du fails when a file goes
    away while it counts (RocksDB compacting in a live store): count again."""
    if not os.path.exists(path):
        return 0
    for attempt in range(10):
        try:
            return int(run(["du", "-sb", path]).stdout.split()[0])
        except RuntimeError:
            if attempt == 9:
                raise
            time.sleep(0.1)


def tree_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.lstat(os.path.join(root, f)).st_size
    return total


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/mounts") as f:
        return any(line.split()[1] == path for line in f)


def drop_caches(enabled):
    os.sync()
    if enabled:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")


def clear_dir(path):
    """rm -rf path/* (the dump job's way), keeping path itself."""
    names = [os.path.join(path, n) for n in os.listdir(path)]
    if names:
        run(["rm", "-rf", "--"] + names)


class Cleanup:
    """Unmounts and stops everything started, in reverse order, at exit."""

    def __init__(self):
        self.actions = []
        atexit.register(self.run_all)

    def push(self, name, fn):
        self.actions.append((name, fn))
        return (name, fn)

    def pop(self, entry):
        if entry in self.actions:
            self.actions.remove(entry)
            entry[1]()

    def run_all(self):
        while self.actions:
            name, fn = self.actions.pop()
            try:
                fn()
            except Exception as e:  # Keep cleaning up.
                log(f"cleanup {name}: {e}")


CLEANUP = Cleanup()


class FuseDaemon:
    """A FUSE daemon run in the foreground as our child, so we know its pid."""

    live = set()  # Started and not stopped yet.

    def __init__(self, name, cmd, mnt, logfile, ready_fd=False, env=None):
        self.name, self.mnt = name, mnt
        os.makedirs(mnt, exist_ok=True)
        self.log = open(logfile, "a")
        pass_fds = ()
        rfd = wfd = None
        if ready_fd:
            rfd, wfd = os.pipe()
            cmd = cmd[:1] + ["--ready-fd", str(wfd)] + cmd[1:]
            pass_fds = (wfd,)
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, pass_fds=pass_fds,
                                     start_new_session=True, env=env)
        self.entry = CLEANUP.push(f"unmount {mnt}", self.stop)
        FuseDaemon.live.add(self)
        deadline = time.monotonic() + 60
        if ready_fd:
            os.close(wfd)
            ok = os.read(rfd, 1) == b"1"
            os.close(rfd)
            if not ok:
                raise RuntimeError(f"{name} did not mount {mnt}; see {logfile}")
        while not is_mounted(mnt):  # Not ours to change: passthrough_ll has no ready signal.
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not mount {mnt}; see {logfile}")
            time.sleep(0.05)
        self.cpu0 = proc_cpu(self.proc.pid)

    def cpu(self):
        return proc_cpu(self.proc.pid)

    def hwm(self):
        return proc_status(self.proc.pid, "VmHWM")

    def stop(self):
        FuseDaemon.live.discard(self)
        if self.proc.poll() is None:
            if is_mounted(self.mnt):
                subprocess.run(["fusermount3", "-u", self.mnt], stderr=subprocess.DEVNULL)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                self.proc.wait(timeout=30)
        if is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-uz", self.mnt], stderr=subprocess.DEVNULL)
        self.log.close()

    def unmount(self):
        """Returns the peak RSS (read just before unmounting)."""
        peak = self.hwm()
        CLEANUP.pop(self.entry)
        return peak


# --- Workloads ---------------------------------------------------------------

class Workload:
    """Produces day d's tree under src, and writes it to a file system target."""

    def __init__(self, name, b):
        self.name, self.b = name, b
        self.src = os.path.join(b.work, "src", name)

    def setup(self):
        os.makedirs(self.src, exist_ok=True)

    def generate(self, day):
        raise NotImplementedError

    def write_cmd(self, dest):
        """The command that writes today's tree into folder dest."""
        raise NotImplementedError

    def clears(self):
        return False  # True: the dump job does rm -rf first.

    def teardown(self):
        pass


class SqlWorkload(Workload):
    def __init__(self, name, b, bs):
        super().__init__(name, b)
        self.bs = bs

    def generate(self, day):
        run([self.b.gen, "sql", "--size", str(self.b.size), "--day", str(day), "--seed",
             str(self.b.seed), os.path.join(self.src, "dump.sql")])

    def write_cmd(self, dest):
        return [self.b.gen, "copy", "--bs", str(self.bs), os.path.join(self.src, "dump.sql"),
                os.path.join(dest, "dump.sql")]


class FolderWorkload(Workload):
    def generate(self, day):
        out = os.path.join(self.src, "dump")
        shutil.rmtree(out, ignore_errors=True)
        run([self.b.gen, "folder", "--size", str(self.b.size // 2), "--day", str(day), "--seed",
             str(self.b.seed), out])

    def write_cmd(self, dest):
        return [self.b.gen, "copy", "--bs", "1M", os.path.join(self.src, "dump"),
                os.path.join(dest, "dump")]

    def clears(self):
        return True


class PgWorkload(Workload):
    """pg_dump of a pgbench database in a throwaway cluster (unix socket only)."""

    @staticmethod
    def available():
        return all(os.access(os.path.join(PG_BIN, p), os.X_OK)
                   for p in ("initdb", "pg_ctl", "pg_dump", "pgbench", "psql"))

    def setup(self):
        super().setup()
        b = self.b
        self.pgdir = os.path.join(b.work, "pg")
        shutil.rmtree(self.pgdir, ignore_errors=True)
        os.makedirs(self.pgdir)
        shutil.chown(self.pgdir, "postgres", "postgres")
        self.data = os.path.join(self.pgdir, "data")
        self.sock = self.pgdir
        pg = ["runuser", "-u", "postgres", "--"]
        run(pg + [f"{PG_BIN}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--locale=C"])
        opts = (f"-c listen_addresses='' -c unix_socket_directories='{self.sock}' "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c shared_buffers=256MB -c max_wal_size=4GB")
        run(pg + [f"{PG_BIN}/pg_ctl", "-D", self.data, "-l", os.path.join(self.pgdir, "log"),
                  "-o", opts, "-w", "start"])
        self.stop_entry = CLEANUP.push("stop postgres", lambda: subprocess.run(
            pg + [f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", "immediate", "stop"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.conn = ["-h", self.sock, "-U", "postgres"]
        # pgbench's own data has blank fillers (char(84) of spaces: 90x with zstd);
        # accounts get realistic fillers from snapfs_dump_gen instead.
        self.scale = max(1, round(b.size / 10e6))
        log(f"pgdump: pgbench scale {self.scale}")
        run([f"{PG_BIN}/createdb"] + self.conn + ["bench"])
        run([f"{PG_BIN}/pgbench", "-i", "-I", "dt", "-s", str(self.scale)] + self.conn + ["bench"])
        s = self.scale
        self.psql(f"INSERT INTO pgbench_branches(bid, bbalance) "
                  f"SELECT b, 0 FROM generate_series(1, {s}) b; "
                  f"INSERT INTO pgbench_tellers(tid, bid, tbalance) "
                  f"SELECT t, (t - 1) / 10 + 1, 0 FROM generate_series(1, {10 * s}) t;")
        gen = subprocess.Popen([b.gen, "accounts", "--scale", str(s), "--seed", str(b.seed)],
                               stdout=subprocess.PIPE)
        run([f"{PG_BIN}/psql", "-q", "-v", "ON_ERROR_STOP=1"] + self.conn +
            ["-d", "bench", "-c", "COPY pgbench_accounts FROM STDIN"], stdin=gen.stdout)
        gen.stdout.close()
        if gen.wait() != 0:
            raise RuntimeError("snapfs_dump_gen accounts failed")
        run([f"{PG_BIN}/pgbench", "-i", "-I", "vp", "-s", str(s)] + self.conn + ["bench"])

    def psql(self, sql):
        run([f"{PG_BIN}/psql", "-q", "-v", "ON_ERROR_STOP=1"] + self.conn +
            ["-d", "bench", "-c", sql])

    def generate(self, day):
        if day > 1:
            # About 1 % of the accounts change (each transaction updates one
            # account, teller and branch and inserts one history row).
            tx = 1000 * self.scale
            run([f"{PG_BIN}/pgbench", "-n", "-c", "2", "-j", "2", "-t", str(tx // 2),
                 "--random-seed", str(self.b.seed * 1000 + day)] + self.conn + ["bench"])
            self.psql("VACUUM ANALYZE")
        run(self.dump_cmd(self.src))

    def dump_cmd(self, dest):
        return [f"{PG_BIN}/pg_dump"] + self.conn + ["-f", os.path.join(dest, "pgbench.sql"),
                                                    "bench"]

    def write_cmd(self, dest):
        return self.dump_cmd(dest)

    def teardown(self):
        CLEANUP.pop(self.stop_entry)
        shutil.rmtree(self.pgdir, ignore_errors=True)


# --- Targets -----------------------------------------------------------------

class Target:
    """One way of keeping the dumps. ingest() writes day d; stored() is the
    bytes it keeps on disk after that day."""

    def __init__(self, name, b, w):
        self.name, self.b, self.w = name, b, w
        self.dir = os.path.join(b.work, "t", name, w.name)
        self.daemon = None

    def setup(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)

    def cpu(self):
        return self.daemon.cpu() if self.daemon else 0.0

    def ingest(self, day):
        raise NotImplementedError

    def stored(self):
        raise NotImplementedError

    def settle(self):
        """Finishes work deferred past the end of ingest; returns seconds."""
        return 0.0

    def read_today(self):
        """Read-back of today's tree: (bytes, seconds)."""
        return None

    def read_past(self, day, when):
        return None

    def teardown(self):
        """Returns the daemon's peak RSS (0 if none) and removes the data."""
        peak = self.daemon.unmount() if self.daemon else 0
        if not self.b.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        return peak


class ReadThrottle:
    """--read-disk MBPS[:IOPS]: reads from the disk under --work limited to
    MBPS MB/s (and IOPS requests/s) for the processes put in it, through a
    blkio (cgroup v1) or io (cgroup v2) throttle. In a VM whose host caches the
    virtual disk, a read after drop_caches often comes from the host's RAM
    (docs/performance.md): this gives every target the same, slower disk."""

    NAME = "snapfs-bench-read"

    def __init__(self, work, spec):
        mbps, _, iops = spec.partition(":")
        self.bps, self.iops = int(float(mbps) * MB), int(iops or 0)
        dev = os.stat(work).st_dev
        sysdev = os.path.realpath(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
        if os.path.exists(os.path.join(sysdev, "partition")):
            sysdev = os.path.dirname(sysdev)  # Throttles apply to the whole disk.
        with open(os.path.join(sysdev, "dev")) as f:
            self.dev = f.read().strip()
        if os.path.isdir("/sys/fs/cgroup/blkio"):
            self.root = "/sys/fs/cgroup/blkio"
            self.dir = os.path.join(self.root, self.NAME)
            os.makedirs(self.dir, exist_ok=True)
            self.write("blkio.throttle.read_bps_device", f"{self.dev} {self.bps}")
            if self.iops:
                self.write("blkio.throttle.read_iops_device", f"{self.dev} {self.iops}")
        elif os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            self.root = "/sys/fs/cgroup"
            with open(os.path.join(self.root, "cgroup.subtree_control"), "w") as f:
                f.write("+io")
            self.dir = os.path.join(self.root, self.NAME)
            os.makedirs(self.dir, exist_ok=True)
            limit = f"{self.dev} rbps={self.bps}" + (f" riops={self.iops}" if self.iops else "")
            self.write("io.max", limit)
        else:
            sys.exit("dump_bench: --read-disk needs cgroup v1 blkio or cgroup v2 io")
        CLEANUP.push(f"remove cgroup {self.dir}", self.remove)

    def write(self, name, value):
        with open(os.path.join(self.dir, name), "w") as f:
            f.write(value + "\n")

    def move(self, into, pids):
        for pid in pids:
            try:
                with open(os.path.join(self.dir if into else self.root, "cgroup.procs"), "w") as f:
                    f.write(f"{pid}\n")
            except (ProcessLookupError, OSError):
                pass  # Gone meanwhile.

    def enter(self):
        """This process (so every reader and daemon it starts from now on) and
        the daemons already running."""
        self.move(True, [os.getpid()] + [d.proc.pid for d in FuseDaemon.live])

    def leave(self):
        try:
            with open(os.path.join(self.dir, "cgroup.procs")) as f:
                pids = [int(x) for x in f.read().split()]
        except OSError:
            return
        self.move(False, pids)

    def remove(self):
        self.leave()
        try:
            os.rmdir(self.dir)
        except OSError:
            pass


def timed_write(cmd, pre=None):
    """Runs the writer (and pre, e.g. rm -rf) and returns wall seconds."""
    t0 = time.monotonic()
    if pre:
        pre()
    run(cmd)
    return time.monotonic() - t0


def read_tree(b, path):
    out = run([b.gen, "read", "--bs", "1M", path]).stdout
    m = re.search(r"bytes=(\d+) seconds=([\d.]+)", out)
    return int(m.group(1)), float(m.group(2))


class PlainTarget(Target):
    def day_dir(self, day):
        return os.path.join(self.dir, f"day{day}")

    def ingest(self, day):
        d = self.day_dir(day)
        os.makedirs(d, exist_ok=True)
        secs = timed_write(self.w.write_cmd(d))
        self.last = d
        return secs

    def stored(self):
        return du(self.dir)

    def read_today(self):
        return read_tree(self.b, self.last)

    def read_past(self, day, when):
        return read_tree(self.b, self.day_dir(day))


class MountedTarget(Target):
    def mount(self):
        raise NotImplementedError

    def setup(self):
        super().setup()
        self.mnt = os.path.join(self.dir, "mnt")
        self.mount()

    def ingest(self, day):
        pre = (lambda: clear_dir(self.mnt)) if self.w.clears() else None
        return timed_write(self.w.write_cmd(self.mnt), pre)

    def read_today(self):
        return read_tree(self.b, self.mnt)


class PassthroughTarget(MountedTarget):
    def mount(self):
        self.backing = os.path.join(self.dir, "backing")
        os.makedirs(self.backing)
        # With glibc's default malloc settings passthrough_ll gets fresh,
        # page-faulting memory for every 128 KiB read reply (about one page
        # fault per 4 KiB read) and reads at a fraction of the disk's speed;
        # these settings make it the FUSE ceiling it is meant to be.
        env = None
        if self.b.tune_passthrough:
            env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(4 * MiB),
                       MALLOC_TOP_PAD_=str(16 * MiB))
        self.daemon = FuseDaemon("passthrough_ll", [
            self.b.passthrough, "-f", "-o", f"writeback,source={self.backing}", self.mnt],
            self.mnt, os.path.join(self.b.out, f"passthrough-{self.w.name}.log"), env=env)
        if self.b.tune_passthrough:
            # The kernel's readahead window snapfs sets for its own mount
            # (fs/fuse_bridge.h, MountOptions::read_ahead_kb): the same for
            # the baseline. Root only, as for snapfs.
            st = os.stat(self.mnt)
            knob = f"/sys/class/bdi/{os.major(st.st_dev)}:{os.minor(st.st_dev)}/read_ahead_kb"
            try:
                with open(knob, "w") as f:
                    f.write("4096")
            except OSError as e:
                log(f"passthrough_ll keeps the kernel's readahead: {knob}: {e}")

    def stored(self):
        return du(self.backing)  # One copy: it keeps no history.


class SnapfsTarget(MountedTarget):
    def mount(self):
        self.store = os.path.join(self.dir, "store")
        run([self.b.snapfs, "--init", self.store])
        self.daemon = FuseDaemon("snapfs", [self.b.snapfs, "-f", self.store, self.mnt],
                                 self.mnt, os.path.join(self.b.out, f"snapfs-{self.w.name}.log"),
                                 ready_fd=True)

    def stored(self):
        return du(self.store)

    def settle(self):
        # Chunks stored uncompressed to keep up with the writer (deferred
        # compression) are compressed when the mount is idle; settle now, so
        # that stored bytes are final and the CPU of it is counted.
        t0 = time.monotonic()
        run([self.b.snapfs, "--settle", self.store])
        return time.monotonic() - t0

    def read_past(self, day, when):
        return read_tree(self.b, os.path.join(self.mnt, ".snapfs", "at", when))


class BorgTarget(Target):
    def env(self):
        e = dict(os.environ)
        e.update(BORG_BASE_DIR=os.path.join(self.dir, "home"),
                 BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes",
                 BORG_RELOCATED_REPO_ACCESS_IS_OK="yes", BORG_PASSPHRASE="")
        return e

    def setup(self):
        super().setup()
        self.repo = os.path.join(self.dir, "repo")
        run(["borg", "init", "-e", "none", self.repo], env=self.env())

    def ingest(self, day):
        self.last_day = day
        t0 = time.monotonic()
        run(["borg", "create", "--compression", "zstd,3", f"{self.repo}::day{day}", "."],
            cwd=self.w.src, env=self.env())
        return time.monotonic() - t0

    def stored(self):
        return du(self.repo)

    def _extract(self, day):
        dest = os.path.join(self.dir, "restore")
        shutil.rmtree(dest, ignore_errors=True)
        os.makedirs(dest)
        t0 = time.monotonic()
        run(["borg", "extract", f"{self.repo}::day{day}"], cwd=dest, env=self.env())
        secs = time.monotonic() - t0
        n = tree_bytes(dest)
        shutil.rmtree(dest, ignore_errors=True)
        return n, secs

    def read_today(self):
        return self._extract(self.last_day)

    def read_past(self, day, when):
        return self._extract(day)


class ResticTarget(Target):
    def env(self):
        e = dict(os.environ)
        e.update(RESTIC_PASSWORD="snapfs-bench", RESTIC_REPOSITORY=self.repo,
                 RESTIC_CACHE_DIR=os.path.join(self.dir, "cache"))
        return e

    def setup(self):
        super().setup()
        self.repo = os.path.join(self.dir, "repo")
        self.snapshots = {}
        run(["restic", "init"], env=self.env())

    def ingest(self, day):
        self.last_day = day
        t0 = time.monotonic()
        out = run(["restic", "backup", "--json", "--host", "bench", "--tag", f"day{day}", "."],
                  cwd=self.w.src, env=self.env()).stdout
        secs = time.monotonic() - t0
        for line in out.splitlines():
            if '"summary"' in line:
                self.snapshots[day] = json.loads(line)["snapshot_id"]
        return secs

    def stored(self):
        return du(self.repo)

    def _restore(self, day):
        dest = os.path.join(self.dir, "restore")
        shutil.rmtree(dest, ignore_errors=True)
        t0 = time.monotonic()
        run(["restic", "restore", self.snapshots[day], "--target", dest], env=self.env())
        secs = time.monotonic() - t0
        n = tree_bytes(dest)
        shutil.rmtree(dest, ignore_errors=True)
        return n, secs

    def read_today(self):
        return self._restore(self.last_day)

    def read_past(self, day, when):
        return self._restore(day)


TARGET_CLASSES = {"plain": PlainTarget, "passthrough": PassthroughTarget,
                  "snapfs": SnapfsTarget, "borg": BorgTarget, "restic": ResticTarget}


# --- The run -----------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.__dict__.update(vars(args))
        self.work = os.path.abspath(args.work)
        self.out = os.path.abspath(args.out or os.path.join(self.work, "results"))
        self.gen = os.path.join(args.build, "bench", "snapfs_dump_gen")
        self.snapfs = os.path.join(args.build, "tools", "snapfs")
        self.passthrough = os.path.join(self.work, "bin", "passthrough_ll")
        self.days_rows = []      # One row per workload, target, day.
        self.summary = []        # One row per workload, target.
        self.notes = []

    def prepare(self):
        os.makedirs(self.out, exist_ok=True)
        os.makedirs(os.path.join(self.work, "bin"), exist_ok=True)
        for p in (self.gen, self.snapfs):
            if not os.access(p, os.X_OK):
                sys.exit(f"dump_bench: {p} is missing; build first (bench/dump_bench.sh does)")
        if "passthrough" in self.targets and not os.access(self.passthrough, os.X_OK):
            cflags = run(["pkg-config", "--cflags", "--libs", "fuse3"]).stdout.split()
            run(["gcc", "-O2", "-Wall", PASSTHROUGH_SRC, "-o", self.passthrough] + cflags)
        for tool in ("borg", "restic"):
            if tool in self.targets and shutil.which(tool) is None:
                self.notes.append(f"{tool} is not installed: skipped "
                                  "(apt-get install borgbackup restic)")
                self.targets.remove(tool)
        if "pgdump" in self.workloads and not PgWorkload.available():
            self.notes.append("pgdump skipped: PostgreSQL 15 (Debian package postgresql) is "
                              "not installed")
            self.workloads.remove("pgdump")
        if os.geteuid() != 0:
            self.drop_caches = False
            self.notes.append("not root: page caches were not dropped before read-back")

    def make_workload(self, name):
        if name == "sql":
            return SqlWorkload(name, self, "1M")
        if name == "smallwrites":
            return SqlWorkload(name, self, "8K")
        if name == "folder":
            return FolderWorkload(name, self)
        return PgWorkload(name, self)

    def run_workload(self, wname):
        w = self.make_workload(wname)
        log(f"== workload {wname}")
        w.setup()
        targets = [TARGET_CLASSES[t](t, self, w) for t in self.targets]
        for t in targets:
            t.setup()
        stats = {t.name: dict(secs=[], settle=[], cpu=[], logical=[], stored=[], ended=[])
                 for t in targets}
        logical_total = 0
        for day in range(1, self.days + 1):
            t0 = time.monotonic()
            w.generate(day)
            log(f"{wname} day {day}: generated in {time.monotonic() - t0:.1f}s")
            logical = tree_bytes(w.src)
            logical_total += logical
            for t in targets:
                self.before_ingest(w)
                prof = self.start_profile(t, wname, day)
                cpu0, c0 = t.cpu(), children_cpu()
                secs = t.ingest(day)
                self.stop_profile(prof)
                settle = t.settle()
                cpu = (t.cpu() - cpu0) + (children_cpu() - c0)
                st = stats[t.name]
                st["secs"].append(secs)
                st["settle"].append(settle)
                st["cpu"].append(cpu)
                st["logical"].append(logical)
                st["ended"].append(time.time())
                st["stored"].append(t.stored())
                log(f"{wname} day {day} {t.name:12s} {logical / MB / secs:8.1f} MB/s  "
                    f"stored {st['stored'][-1] / MiB:9.1f} MiB  cpu {cpu:6.1f}s"
                    + (f"  settled in {settle:.1f}s" if settle else ""))
                self.days_rows.append(dict(
                    workload=wname, target=t.name, day=day, logical_bytes=logical,
                    logical_total=logical_total, seconds=round(secs, 3),
                    mbps=round(logical / MB / secs, 1), settle_s=round(settle, 3),
                    cpu_s=round(cpu, 2),
                    stored_bytes=st["stored"][-1]))
        # Read-back of today's tree, and of day 1, from cold caches,
        # `read_rounds` times, the targets alternating within each round: one
        # cold read varies by up to 2x between runs on this kind of machine.
        samples = {t.name: ([], []) for t in targets}
        if self.throttle:
            self.throttle.enter()
        for r in range(1, self.read_rounds + 1):
            for t in targets:
                drop_caches(self.drop_caches)
                today = t.read_today()
                past = None
                if self.days > 1:
                    drop_caches(self.drop_caches)
                    when = "@%.3f" % stats[t.name]["ended"][0]
                    try:
                        past = t.read_past(1, when)
                    except RuntimeError as e:
                        self.notes.append(f"{wname}/{t.name}: reading day 1 failed: {e}")
                samples[t.name][0].append(today)
                if past:
                    samples[t.name][1].append(past)
                log(f"{wname} read {r} {t.name:12s} today {fmt_rate(today)} "
                    f"day1 {fmt_rate(past)}")
        if self.throttle:
            self.throttle.leave()
        reads = {name: (median_read(todays), median_read(pasts))
                 for name, (todays, pasts) in samples.items()}
        if self.read_rounds > 1:
            self.write_read_rounds(wname, samples, reads)
        for t in targets:
            peak = t.teardown()
            self.summarize(wname, t.name, stats[t.name], reads[t.name], peak)
        w.teardown()
        shutil.rmtree(w.src, ignore_errors=True)

    def before_ingest(self, w):
        """Every target starts from the same state: the disk idle (no target
        pays for the dirty pages of the generator or of the target before
        it), the sources in the page cache, and (as root, unless
        --no-drop-caches) the page cache dropped first. Without the drop the
        target after another came out at about half speed on day 1, whichever
        it was: on this VM a page the guest has not used for a while costs a
        host fault when it is first written (free page reporting is on), so
        a target that cannot reuse pages freed just before pays that for
        every page it fills (docs/performance.md, session 13)."""
        drop_caches(self.drop_caches)
        run([self.gen, "read", w.src])
        os.sync()

    def run_day1_rounds(self, wname):
        """Day 1 only, `day1_rounds` times, the file-system targets alternating,
        each on a fresh mount, the dump generated once before: several
        figures per target in the same minutes, against the noise of the
        host."""
        w = self.make_workload(wname)
        log(f"== workload {wname}: day 1, {self.day1_rounds} rounds")
        w.setup()
        w.generate(1)
        logical = tree_bytes(w.src)
        names = [t for t in self.targets if t in FS_TARGETS]
        rates = {t: [] for t in names}
        for r in range(1, self.day1_rounds + 1):
            for name in names:
                t = TARGET_CLASSES[name](name, self, w)
                t.setup()
                self.before_ingest(w)
                rates[name].append(logical / MB / t.ingest(1))
                t.teardown()
                log(f"{wname} round {r} {name:12s} {rates[name][-1]:8.1f} MB/s")
        lines = [f"{wname}, day 1, {self.day1_rounds} rounds alternating "
                 f"(MB/s, median; ÷pt: ratio of the medians):", ""]
        pt = statistics.median(rates["passthrough"]) if "passthrough" in rates else None
        for name in names:
            med = statistics.median(rates[name])
            ratio = f"  ÷pt {med / pt:.2f}" if pt else ""
            runs = " ".join(f"{x:.1f}" for x in rates[name])
            lines.append(f"  {name:12s} {med:8.1f}{ratio}   runs: {runs}")
        self.report_rounds(f"day1-{wname}.txt", lines)
        shutil.rmtree(w.src, ignore_errors=True)

    def write_read_rounds(self, wname, samples, reads):
        pt = reads.get("passthrough", (None, None))
        lines = [f"{wname}, read-back, {self.read_rounds} rounds alternating "
                 f"(MB/s, median; ÷pt: ratio of the medians):", ""]
        for name, (todays, pasts) in samples.items():
            for label, runs, med, base in (("today", todays, reads[name][0], pt[0]),
                                           ("day 1", pasts, reads[name][1], pt[1] or pt[0])):
                if not med:
                    continue
                ratio = f"  ÷pt {rate_of(med) / rate_of(base):.2f}" if base else ""
                lines.append(f"  {name:12s} {label}  {rate_of(med):8.1f}{ratio}   runs: "
                             + " ".join(f"{rate_of(x):.1f}" for x in runs))
        self.report_rounds(f"read-{wname}.txt", lines)

    def report_rounds(self, name, lines):
        """Prints the lines of a rounds report and writes them to `name` in --out."""
        text = "\n".join(lines) + "\n"
        print(text)
        with open(os.path.join(self.out, name), "w") as f:
            f.write(text)

    def start_profile(self, t, wname, day):
        if not (self.perf and t.name == "snapfs" and wname == "sql" and day <= 2):
            return None
        data = os.path.join(self.out, f"perf-sql-day{day}.data")
        p = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "499", "-g",
                              "-p", str(t.daemon.proc.pid), "-o", data],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        return (p, data, day)

    def stop_profile(self, prof):
        if prof is None:
            return
        p, data, day = prof
        p.send_signal(signal.SIGINT)
        p.wait(timeout=60)
        for sort, name in (("dso,symbol", "symbols"), ("dso", "dso")):
            rep = subprocess.run(["perf", "report", "--stdio", "--no-children", "-g", "none",
                                  "--percent-limit", "0.5", "--sort", sort, "-i", data],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            with open(os.path.join(self.out, f"perf-sql-day{day}-{name}.txt"), "w") as f:
                f.write(rep.stdout)

    def summarize(self, wname, tname, st, reads, peak):
        def rate(i):
            return st["logical"][i] / MB / st["secs"][i]
        later = range(1, len(st["secs"]))
        later_rate = (sum(st["logical"][i] for i in later) / MB /
                      sum(st["secs"][i] for i in later)) if later else None
        later_growth = ((st["stored"][-1] - st["stored"][0]) / len(later)) if later else None
        later_logical = (sum(st["logical"][i] for i in later) / len(later)) if later else None
        cpu_d1 = st["cpu"][0] / (st["logical"][0] / 1e9)
        cpu_later = (sum(st["cpu"][i] for i in later) /
                     (sum(st["logical"][i] for i in later) / 1e9)) if later else None
        today, past = reads
        if tname == "passthrough":
            later = range(0)  # It keeps one copy: no history to measure.
        self.summary.append(dict(
            workload=wname, target=tname, day1_mbps=round(rate(0), 1),
            later_mbps=round(later_rate, 1) if later_rate else "",
            day1_logical_mib=round(st["logical"][0] / MiB, 1),
            stored_day1_mib=round(st["stored"][0] / MiB, 1),
            stored_per_later_day_mib=round(later_growth / MiB, 1) if later else "",
            later_day_stored_pct=round(100 * later_growth / later_logical, 1) if later else "",
            stored_total_mib=round(st["stored"][-1] / MiB, 1),
            logical_total_mib=round(sum(st["logical"]) / MiB, 1),
            read_today_mbps=round(rate_of(today), 1) if today else "",
            read_day1_mbps=round(rate_of(past), 1) if past else "",
            peak_rss_mib=round(peak / MiB, 1) if peak else "",
            settle_s_day1=round(st["settle"][0], 1) if st["settle"][0] else "",
            cpu_s_per_gb_day1=round(cpu_d1, 2),
            cpu_s_per_gb_later=round(cpu_later, 2) if cpu_later is not None else ""))

    def rss_check(self):
        """Streams one --rss-check sized dump into a fresh snapfs store and
        samples the daemon's memory as the file grows."""
        size = self.rss_check_size
        d = os.path.join(self.work, "t", "rss")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        store, mnt = os.path.join(d, "store"), os.path.join(d, "mnt")
        run([self.snapfs, "--init", store])
        daemon = FuseDaemon("snapfs", [self.snapfs, "-f", store, mnt], mnt,
                            os.path.join(self.out, "snapfs-rss.log"), ready_fd=True)
        out = os.path.join(mnt, "big.sql")
        t0 = time.monotonic()
        p = subprocess.Popen([self.gen, "sql", "--size", str(size), "--day", "1", "--seed",
                              str(self.seed + 1), out])
        samples = []
        while p.poll() is None:
            time.sleep(0.5)
            try:
                written = os.stat(out).st_size
            except OSError:
                written = 0
            samples.append((written, proc_status(daemon.proc.pid, "VmRSS"), daemon.hwm()))
        if p.returncode != 0:
            raise RuntimeError("rss check: the writer failed")
        secs = time.monotonic() - t0
        peak = daemon.unmount()
        shutil.rmtree(d, ignore_errors=True)
        marks = []
        for frac in (0.25, 0.5, 0.75, 1.0):
            s = next((s for s in samples if s[0] >= frac * size * 0.98), samples[-1])
            marks.append(f"{s[0] / MiB:.0f} MiB written: RSS {s[1] / MiB:.0f} MiB, "
                         f"peak {s[2] / MiB:.0f} MiB")
        self.rss_result = dict(size_mib=round(size / MiB), seconds=round(secs, 1),
                               mbps=round(size / MB / secs, 1), peak_rss_mib=round(peak / MiB, 1),
                               marks=marks)
        log(f"rss check: {self.rss_result}")

    def write_results(self, started, load_before):
        with open(os.path.join(self.out, "days.csv"), "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=list(self.days_rows[0].keys()))
            wr.writeheader()
            wr.writerows(self.days_rows)
        # Ratios to passthrough_ll on the same workload.
        pt = {r["workload"]: r for r in self.summary if r["target"] == "passthrough"}
        for r in self.summary:
            p = pt.get(r["workload"])
            for k in ("day1_mbps", "later_mbps", "read_today_mbps"):
                ratio = ""
                if p and r[k] != "" and p[k]:
                    ratio = round(r[k] / p[k], 2)
                r[k.replace("_mbps", "_vs_pt")] = ratio
        with open(os.path.join(self.out, "results.csv"), "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=list(self.summary[0].keys()))
            wr.writeheader()
            wr.writerows(self.summary)
        md = markdown(self, started, load_before)
        with open(os.path.join(self.out, "results.md"), "w") as f:
            f.write(md)
        print(md)
        plot(self)


def rate_of(r):
    """MB/s of one read-back sample (bytes, seconds)."""
    return r[0] / MB / r[1]


def fmt_rate(r):
    return f"{rate_of(r):8.1f} MB/s" if r else "       -"


def median_read(samples):
    """The sample with the median rate (the lower one of an even count), or
    None when there is none."""
    if not samples:
        return None
    ordered = sorted(samples, key=rate_of)
    return ordered[(len(ordered) - 1) // 2]


def machine_info():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return model


def versions(b):
    out = []
    for cmd in (["borg", "--version"], ["restic", "version"], [f"{PG_BIN}/pg_dump", "--version"]):
        if shutil.which(cmd[0]):
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            out.append(p.stdout.strip().split(" compiled")[0])
    return "; ".join(out)


def disk(path):
    p = subprocess.run(["df", "-hT", path], stdout=subprocess.PIPE, text=True)
    lines = p.stdout.strip().splitlines()
    return " ".join(lines[-1].split()) if lines else "?"


def markdown(b, started, load_before):
    cols = [("workload", "workload"), ("target", "target"),
            ("day1_mbps", "day 1 MB/s"), ("day1_vs_pt", "÷pt"),
            ("later_mbps", "later MB/s"), ("later_vs_pt", "÷pt"),
            ("stored_day1_mib", "stored day 1 MiB"),
            ("stored_per_later_day_mib", "+MiB per later day"),
            ("later_day_stored_pct", "% of a day's bytes"),
            ("stored_total_mib", f"stored after {b.days} days MiB"),
            ("logical_total_mib", "written MiB"),
            ("read_today_mbps", "read today MB/s"), ("read_today_vs_pt", "÷pt"),
            ("read_day1_mbps", "read day 1 MB/s"),
            ("peak_rss_mib", "peak RSS MiB"), ("settle_s_day1", "settle s day 1"),
            ("cpu_s_per_gb_day1", "CPU s/GB day 1"), ("cpu_s_per_gb_later", "CPU s/GB later")]
    lines = [f"# snapfs dump benchmark, {time.strftime('%Y-%m-%d %H:%M', time.localtime(started))}",
             "",
             f"size {b.size / MiB:.0f} MiB (folder: half), {b.days} days, seed {b.seed}; "
             f"machine: {os.cpu_count()} cores, {machine_info()}; "
             f"load average before {load_before}, after {os.getloadavg()[0]:.2f}; "
             f"run took {(time.time() - started) / 60:.1f} min",
             "",
             f"disk (df -hT of --work): {disk(b.work)}; kernel {os.uname().release}; "
             f"{versions(b)}",
             "",
             "| " + " | ".join(c[1] for c in cols) + " |",
             "|" + "---|" * len(cols)]
    for r in b.summary:
        lines.append("| " + " | ".join(str(r.get(c[0], "")) for c in cols) + " |")
    lines.append("")
    lines.append("÷pt: ratio to passthrough_ll on the same workload. Stored: du -sb of the "
                 "store / repository / daily copies, after snapfs --settle (compression "
                 "deferred past the dump's end; its time is the settle column, not in MB/s). "
                 "CPU: daemon + writer (or borg/restic), settling included.")
    if b.read_disk:
        mbps, _, iops = b.read_disk.partition(":")
        lines.append(f"Read-back through a disk throttled to {mbps} MB/s"
                     + (f" and {iops} requests/s" if iops else "")
                     + f" for every target (cgroup read throttle on {b.throttle.dev}).")
    if "passthrough" in b.targets:
        lines.append("passthrough_ll ran with " + (
            "MALLOC_MMAP_THRESHOLD_=4194304 MALLOC_TOP_PAD_=16777216 and read_ahead_kb 4096, "
            "as snapfs sets for its mount (see dump_bench.py)."
            if b.tune_passthrough else "glibc's default malloc settings and the kernel's "
            "readahead (--untuned-passthrough)."))
    if getattr(b, "rss_result", None):
        r = b.rss_result
        lines += ["", f"RSS check: one {r['size_mib']} MiB dump streamed into snapfs at "
                      f"{r['mbps']} MB/s; daemon peak RSS {r['peak_rss_mib']} MiB. "
                      + "; ".join(r["marks"])]
    for n in b.notes:
        lines.append(f"\nNote: {n}")
    return "\n".join(lines) + "\n"


def plot(b):
    if shutil.which("gnuplot") is None:
        return
    for wname in sorted({r["workload"] for r in b.days_rows}):
        rows = [r for r in b.days_rows if r["workload"] == wname]
        series = [t for t in ("plain", "borg", "restic", "snapfs")
                  if any(r["target"] == t for r in rows)]
        if not series:
            continue
        dat = os.path.join(b.out, f"stored-{wname}.dat")
        with open(dat, "w") as f:
            f.write("# day logical_total_MiB " + " ".join(series) + "\n")
            for day in range(1, b.days + 1):
                vals = [next((r["stored_bytes"] / MiB for r in rows
                              if r["target"] == t and r["day"] == day), 0) for t in series]
                logical = next(r["logical_total"] for r in rows if r["day"] == day) / MiB
                f.write(f"{day} {logical:.1f} " + " ".join(f"{v:.1f}" for v in vals) + "\n")
        png = os.path.join(b.out, f"stored-{wname}.png")
        labels = {"plain": "plain copy per day", "borg": "borg (zstd,3)",
                  "restic": "restic", "snapfs": "snapfs"}
        plots = [f"'{dat}' using 1:2 with lines dashtype 2 lc rgb '#888888' "
                 "title 'bytes written'"]
        colors = {"plain": "#1b9e77", "borg": "#7570b3", "restic": "#e6ab02",
                  "snapfs": "#d95f02"}
        for i, t in enumerate(series):
            plots.append(f"'{dat}' using 1:{i + 3} with linespoints lw 2 pt 7 "
                         f"lc rgb '{colors[t]}' title '{labels[t]}'")
        script = (f"set terminal pngcairo size 640,400 font ',10'\nset output '{png}'\n"
                  f"set title 'Bytes stored after each day: {wname} workload'\n"
                  "set xlabel 'day'\nset ylabel 'MiB on disk'\nset key top left\n"
                  "set grid\nset xtics 1\nset yrange [0:*]\n"
                  "plot " + ", ".join(plots) + "\n")
        p = subprocess.run(["gnuplot"], input=script, text=True, stderr=subprocess.PIPE)
        if p.returncode != 0:
            script = script.replace("pngcairo", "png")
            subprocess.run(["gnuplot"], input=script, text=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=parse_size, default=parse_size("1G"),
                    help="bytes of the SQL dump on day 1 (default 1G; folder: half)")
    ap.add_argument("--days", type=int, default=7, help="days to run (default 7)")
    ap.add_argument("--targets", default=",".join(ALL_TARGETS))
    ap.add_argument("--workloads", default=",".join(ALL_WORKLOADS))
    ap.add_argument("--work", default="/tmp/snapfs-bench", help="scratch folder")
    ap.add_argument("--out", default=None, help="results folder (default WORK/results)")
    ap.add_argument("--build", default="/tmp/build-bench", help="Release build folder")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--day1-rounds", type=int, default=0, metavar="N",
                    help="instead of the days: day 1 only, N times, the plain, passthrough and "
                         "snapfs targets alternating, each on a fresh mount")
    ap.add_argument("--read-rounds", type=int, default=1, metavar="N",
                    help="read today's tree and day 1 back N times, the targets alternating "
                         "within each round, and report the medians (default 1)")
    ap.add_argument("--read-disk", default=None, metavar="MBPS[:IOPS]",
                    help="read back through a disk limited to MBPS MB/s (and IOPS requests/s), "
                         "for every target (a cgroup read throttle on the disk under --work): "
                         "e.g. 125:3000, a cloud volume's baseline")
    ap.add_argument("--no-drop-caches", dest="drop_caches", action="store_false")
    ap.add_argument("--keep", action="store_true", help="keep stores and copies")
    ap.add_argument("--untuned-passthrough", dest="tune_passthrough", action="store_false",
                    help="run passthrough_ll with glibc's default malloc settings (its reads "
                         "are then several times slower) and the kernel's 128 KiB readahead "
                         "(snapfs raises its own mount's to 4 MiB)")
    ap.add_argument("--perf", action="store_true",
                    help="perf-record the snapfs daemon during sql days 1 and 2")
    ap.add_argument("--rss-check", dest="rss_check_size", type=parse_size, default=0,
                    help="also stream one dump of this size into snapfs and sample its RSS")
    args = ap.parse_args()
    args.targets = [t for t in args.targets.split(",") if t]
    args.workloads = [w for w in args.workloads.split(",") if w]
    for t in args.targets:
        if t not in ALL_TARGETS:
            ap.error(f"unknown target {t}; known: {','.join(ALL_TARGETS)}")
    for w in args.workloads:
        if w not in ALL_WORKLOADS:
            ap.error(f"unknown workload {w}; known: {','.join(ALL_WORKLOADS)}")
    if args.days < 1:
        ap.error("--days must be >= 1")
    if args.read_rounds < 1:
        ap.error("--read-rounds must be >= 1")
    if args.read_disk and not re.fullmatch(r"[0-9]+(\.[0-9]+)?(:[0-9]+)?", args.read_disk):
        ap.error("--read-disk takes MBPS or MBPS:IOPS, e.g. 125:3000")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))
    b = Bench(args)
    b.prepare()
    b.throttle = ReadThrottle(b.work, args.read_disk) if args.read_disk else None
    started = time.time()
    load_before = "%.2f %.2f %.2f" % os.getloadavg()
    log(f"load average {load_before}; work {b.work}; out {b.out}")
    for w in list(b.workloads):
        if b.day1_rounds:
            b.run_day1_rounds(w)
        else:
            b.run_workload(w)
    if b.rss_check_size:
        b.rss_check()
    if b.days_rows:
        b.write_results(started, load_before)


if __name__ == "__main__":
    main()
