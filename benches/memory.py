"""Resident memory of server-side session storages, and that their bounds hold.

    make bench-build && PYTHONPATH=target/bench-site .venv/bin/python benches/memory.py

Each scenario runs in a fresh subprocess (so one cannot inherit another's heap), which
reads its resident set size (``VmRSS`` of ``/proc/self/status``; ``ru_maxrss`` as the
peak) before and while it fills a storage through the storage protocol
(``write(id, value, ttl)`` / ``read(id)``) with 64-character ids and ~100-byte values
(105 bytes of compact JSON, each value a distinct string):

* ``memory_1m``: ``MemoryStorage()`` holding 1,000,000 sessions. Its expiry sweep (a
  scan of every entry on every 1,024th write, O(n^2) in all: minutes for 1,000,000
  writes) is skipped by default through a subclass; nothing expires within the run, so
  the entries held, and the memory, are the same. ``--sweep`` keeps it.
* ``memory_bounded``: ``MemoryStorage(max_entries=100_000)`` written 1,000,000 times:
  RSS once the bound is reached, and after the remaining 900,000 writes.
* ``directory_cache_full``: ``DirectoryStorage(cache_max_entries=100_000)`` written and
  read 100,000 times (the cache full), then 50,000 more sessions written and read: RSS
  must not grow past the bound (the cache length stays at most 100,000).

"Bounded" holds when, past the bound, RSS grows by at most 50 % of what the bounded
entries took (allocator slack: the dict's table is reallocated a few times as entries
churn and the freed blocks are kept, then RSS plateaus); unbounded, the same writes
would take ten times as much. The RSS after every tenth of the writes is in the JSON.
Results go to ``benches/results/memory.json``; a Markdown table to stdout; progress to
stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import _harness as h

TTL = 604800
SLACK = 0.50  # growth past the bound allowed, as a fraction of the bounded entries' RSS
# (allocator slack: a dict's table is reallocated a few times as entries churn, and glibc
# keeps the freed blocks; RSS then plateaus, e.g. 88 MiB from 1 to 4 million writes)
SCENARIOS = ("memory_1m", "memory_bounded", "directory_cache_full")


# -- in the child ------------------------------------------------------------------------
def rss_bytes() -> int:
    """Current resident set size (VmRSS), in bytes; the peak (ru_maxrss) off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def session_id(i: int) -> str:
    """A 64-character id (the shape of a 256-bit random id in hex), distinct per ``i``."""
    return f"{i:016x}" + os.urandom(24).hex()


def session_value(i: int) -> str:
    """~100 bytes of session JSON (105 for a 2-digit ``visits``), distinct per ``i``."""
    return (
        '{"user":"ada.lovelace@example.com","items":["sku-10001","sku-10002","sku-10003",'
        f'"sku-10004"],"visits":{i % 90 + 10}}}'
    )


def _fill(storage: Any, start: int, stop: int) -> None:
    for i in range(start, stop):
        storage.write(session_id(i), session_value(i), TTL)


def _fill_ids(storage: Any, start: int, stop: int) -> list[str]:
    ids = []
    for i in range(start, stop):
        sid = session_id(i)
        storage.write(sid, session_value(i), TTL)
        ids.append(sid)
    return ids


def _read_all(storage: Any, ids: list[str]) -> int:
    hits = 0
    for sid in ids:
        if storage.read(sid) is not None:
            hits += 1
    return hits


def child(
    scenario: str, n: int, bound: int, extra: int, folder: Optional[str], sweep: bool
) -> dict[str, Any]:
    import gc

    import ferrosession as fs

    gc.collect()
    out: dict[str, Any] = {"scenario": scenario, "rss_start": rss_bytes(), "sweep": sweep}
    t0 = time.monotonic()
    samples: list[list[int]] = []
    if scenario == "memory_1m":
        if sweep:
            storage = fs.MemoryStorage()
        else:

            class NoSweep(fs.MemoryStorage):  # type: ignore[misc]
                """MemoryStorage whose expiry sweep (a scan of every entry, every 1,024th
                write) is skipped: nothing expires here (TTL one week), so the entries held
                are the same, only the O(n) scan per 1,024 writes is gone."""

                def gc(self) -> int:
                    return 0

            storage = NoSweep()
        step = max(1, n // 10)
        for start in range(0, n, step):
            t = time.monotonic()
            _fill(storage, start, min(n, start + step))
            samples.append([min(n, start + step), rss_bytes(), time.monotonic() - t])
        if len(storage) != n:
            raise AssertionError(f"MemoryStorage holds {len(storage)}, expected {n}")
        probe = session_id(n)
        storage.write(probe, session_value(n), TTL)
        if storage.read(probe) != session_value(n):
            raise AssertionError("MemoryStorage did not read back a value")
        storage.invalidate(probe)
        gc.collect()
        out.update(entries=len(storage), rss_end=rss_bytes())
        out["per_entry_bytes"] = (out["rss_end"] - out["rss_start"]) / n
    elif scenario == "memory_bounded":
        storage = fs.MemoryStorage(max_entries=bound)
        _fill(storage, 0, bound)
        gc.collect()
        out["rss_at_bound"] = rss_bytes()
        samples.append([bound, out["rss_at_bound"]])
        step = max(1, (n - bound) // 9)
        for start in range(bound, n, step):
            t = time.monotonic()
            _fill(storage, start, min(n, start + step))
            samples.append([min(n, start + step), rss_bytes(), time.monotonic() - t])
        if len(storage) != bound:
            raise AssertionError(f"MemoryStorage holds {len(storage)}, bound {bound}")
        gc.collect()
        out.update(entries=len(storage), writes=n, rss_end=rss_bytes())
    elif scenario == "directory_cache_full":
        assert folder is not None
        storage = fs.DirectoryStorage(folder, cache_max_entries=bound)
        core = storage._core
        ids = _fill_ids(storage, 0, bound)
        hits = _read_all(storage, ids)
        if hits != bound:
            raise AssertionError(f"DirectoryStorage read back {hits} of {bound}")
        del ids
        gc.collect()
        out["cache_len_at_bound"] = core._cache_len()
        out["rss_at_bound"] = rss_bytes()
        samples.append([bound, out["rss_at_bound"]])
        step = max(1, extra // 5)
        for start in range(bound, bound + extra, step):
            stop = min(bound + extra, start + step)
            ids = _fill_ids(storage, start, stop)
            if _read_all(storage, ids) != len(ids):
                raise AssertionError("DirectoryStorage lost a value")
            del ids
            samples.append([stop, rss_bytes()])
        gc.collect()
        out.update(
            entries_written=bound + extra,
            cache_len_end=core._cache_len(),
            rss_end=rss_bytes(),
            io_counts=list(core._io_counts()),
        )
        if out["cache_len_end"] > bound:
            raise AssertionError(f"cache holds {out['cache_len_end']} > bound {bound}")
    else:
        raise ValueError(scenario)
    out["seconds"] = time.monotonic() - t0
    out["rss_peak"] = peak_bytes()
    out["samples"] = samples
    return out


# -- in the parent ---------------------------------------------------------------------------
def _mib(b: float) -> str:
    return f"{b / 2**20:.1f}"


def run_child(scenario: str, args: argparse.Namespace, folder: Optional[str]) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        scenario,
        "--n",
        str(args.n),
        "--bound",
        str(args.bound),
        "--extra",
        str(args.extra),
    ]
    if folder is not None:
        cmd += ["--folder", folder]
    if args.sweep:
        cmd.append("--sweep")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{scenario} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def evaluate(r: dict[str, Any]) -> dict[str, Any]:
    if r["scenario"] == "memory_1m":
        return {"delta": r["rss_end"] - r["rss_start"], "bounded": None}
    at_bound = r["rss_at_bound"] - r["rss_start"]
    growth = r["rss_end"] - r["rss_at_bound"]
    return {
        "delta_at_bound": at_bound,
        "growth_past_bound": growth,
        "growth_fraction": growth / at_bound if at_bound > 0 else float("inf"),
        "bounded": growth <= SLACK * at_bound,
    }


def table(result: dict[str, Any]) -> str:
    rows = []
    for name, r in result["scenarios"].items():
        e = r["evaluation"]
        if name == "memory_1m":
            rows.append(
                [
                    "MemoryStorage()",
                    f"{r['entries']:,} written",
                    _mib(r["rss_start"]),
                    "-",
                    _mib(r["rss_end"]),
                    _mib(e["delta"]),
                    f"{r['per_entry_bytes']:.0f} B/session; written in {r['seconds']:.1f} s "
                    f"(expiry sweep {'on' if r['sweep'] else 'skipped'})",
                    "-",
                ]
            )
            continue
        if name == "memory_bounded":
            label = f"MemoryStorage(max_entries={result['settings']['bound']:,})"
            what = f"{r['writes']:,} written, {r['entries']:,} kept"
        else:
            label = f"DirectoryStorage(cache_max_entries={result['settings']['bound']:,})"
            what = (
                f"{r['entries_written']:,} written+read, cache {r['cache_len_at_bound']:,} → "
                f"{r['cache_len_end']:,}"
            )
        rows.append(
            [
                label,
                what,
                _mib(r["rss_start"]),
                _mib(r["rss_at_bound"]),
                _mib(r["rss_end"]),
                _mib(e["delta_at_bound"]),
                f"+{_mib(e['growth_past_bound'])} MiB past bound ({e['growth_fraction']:+.1%})",
                "yes" if e["bounded"] else "**no**",
            ]
        )
    header = [
        "storage",
        "entries",
        "RSS start MiB",
        "RSS at bound MiB",
        "RSS end MiB",
        "RSS for sessions MiB",
        "note",
        f"bounded (≤ {SLACK:.0%} growth)",
    ]
    env = result["environment"]
    foot = (
        f"\nVmRSS of a fresh subprocess per row; 64-char ids, ~100-byte values "
        f"({result['settings']['value_bytes']} B). ferrosession "
        f"{env['packages']['ferrosession']} ({env['ferrosession_build_profile']}), Python "
        f"{env['python']}, {env['platform']}."
    )
    return h.markdown_table(header, rows) + "\n" + foot


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (1/10 of the sizes)")
    parser.add_argument("--n", type=int, help="MemoryStorage sessions (default 1,000,000)")
    parser.add_argument("--bound", type=int, help="max_entries / cache_max_entries (100,000)")
    parser.add_argument("--extra", type=int, help="DirectoryStorage writes past the bound (50,000)")
    parser.add_argument("--dir", type=Path, help="parent folder of the DirectoryStorage (tmp)")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"subset of {','.join(SCENARIOS)}"
    )
    parser.add_argument("--out", type=Path, help="JSON output (default benches/results/...)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a bound does not hold")
    parser.add_argument(
        "--allow-debug", action="store_true", help="run on a debug build (figures meaningless)"
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="memory_1m with MemoryStorage's own expiry sweep (an O(n) scan every 1,024th "
        "write: minutes at 1,000,000 sessions); the default skips it (same entries held)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    scale = 10 if args.quick else 1
    args.n = args.n or 1_000_000 // scale
    args.bound = args.bound or 100_000 // scale
    args.extra = args.extra or 50_000 // scale

    if args.child:
        print(
            json.dumps(child(args.child, args.n, args.bound, args.extra, args.folder, args.sweep))
        )
        return 0

    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")

    h.require_release(args, "memory")

    progress = h.Progress("memory")
    parent = tempfile.mkdtemp(prefix="fs-bench-memory-", dir=args.dir)
    results: dict[str, Any] = {}
    fs_info: dict[str, str] = {}
    try:
        for name in scenarios:
            progress.note(f"{name} (fresh subprocess) ...")
            folder = None
            if name == "directory_cache_full":
                folder = os.path.join(parent, "sessions")
                fs_info = h.filesystem_of(Path(parent))
            r = run_child(name, args, folder)
            r["evaluation"] = evaluate(r)
            results[name] = r
            progress.note(f"{name}: {_mib(r['rss_end'])} MiB at the end, {r['seconds']:.1f} s")
    except RuntimeError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(parent, ignore_errors=True)

    result = h.result(
        "memory",
        args,
        unit="bytes (resident set size, VmRSS)",
        packages=[],
        settings={
            "n": args.n,
            "bound": args.bound,
            "extra": args.extra,
            "id_chars": len(session_id(0)),
            "value_bytes": len(session_value(0)),
            "ttl": TTL,
            "slack": SLACK,
            "memory_1m_expiry_sweep": args.sweep,
            "directory_filesystem": fs_info,
        },
        scenarios=results,
    )
    h.write_json(args.out, result)
    print(table(result))
    print(f"\nresults: {args.out}", file=sys.stderr)
    bounded = [r["evaluation"]["bounded"] for r in results.values()]
    if args.check and not all(b is not False for b in bounded):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
