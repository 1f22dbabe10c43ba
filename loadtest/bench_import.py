"""Import benchmark (``make bench-import``): a generated canonical CSV of N rows through
``python -m gateway import``, timed, with the importer's peak RSS, at two sizes to show
that memory stays flat whatever the file size; the large one also with the bulk-load
chunk (``--chunk 200000``: fewer, longer write transactions, for a store not serving).

    python -m loadtest.bench_import --rows 1000000 --small 100000
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from loadtest.datagen import ENTRY_FIELDS, OTHER_LIST_TYPES, REGIONS, _entry, make_uscc


def write_csv(path: Path, rows: int, seed: int = 11) -> None:
    """``rows`` canonical entries, streamed to disk (never all in memory)."""
    rnd = random.Random(seed)
    today = date.today()
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=ENTRY_FIELDS)
        writer.writeheader()
        for i in range(rows):
            region = rnd.choice(REGIONS)
            list_type = "court_defaulter" if i % 2 == 0 else rnd.choice(OTHER_LIST_TYPES)
            writer.writerow(_entry(rnd, i + 1, make_uscc(rnd, region[0]), region, list_type, today))


def run_import(db: Path, csv_path: Path, chunk: int) -> tuple[float, int, str, float]:
    """Seconds, peak RSS (KiB) of the import process, its summary line, and the seconds
    it spent applying (writing into the store)."""
    env = {**os.environ, "GATEWAY_DB": str(db)}
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "import", "--chunk", str(chunk), str(csv_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"import failed: {output}")
    lines = output.strip().splitlines()
    timings = re.search(r"validated in ([\d.]+) s, applied in ([\d.]+) s", output)
    applying = float(timings.group(2)) if timings else seconds
    summary = next(line for line in reversed(lines) if " rows: " in line)
    return seconds, usage.ru_maxrss, summary, applying


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--bulk", type=int, default=200_000, help="the bulk-load chunk")
    parser.add_argument("--out", type=Path, default=Path("var/bench-import"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for rows, chunk in ((args.small, 10_000), (args.rows, 10_000), (args.rows, args.bulk)):
        csv_path = args.out / f"entries-{rows}.csv"
        if not csv_path.exists():
            print(f"writing {csv_path} ...", file=sys.stderr)
            write_csv(csv_path, rows)
        db = args.out / f"import-{rows}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        seconds, rss_kib, summary, applying = run_import(db, csv_path, chunk)
        print(
            f"{rows:>9,} rows, chunk {chunk:>7,}: {seconds:5.1f} s, {rows / seconds:7,.0f} rows/s "
            f"end to end, {rows / applying:7,.0f} rows/s into the store ({applying:.1f} s), "
            f"peak RSS {rss_kib / 1024:5.1f} MiB  ({summary})",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
