"""Import benchmark (``make bench-import``): a generated canonical CSV of N rows through
``python -m gateway import``, timed, with the importer's peak RSS, at two sizes to show
that memory stays flat whatever the file size.

    python -m loadtest.bench_import --rows 1000000 --small 100000
"""

from __future__ import annotations

import argparse
import csv
import os
import random
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


def run_import(db: Path, csv_path: Path) -> tuple[float, int, str]:
    """Seconds, peak RSS (KiB) of the import process, and its summary line."""
    env = {**os.environ, "GATEWAY_DB": str(db)}
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "import", str(csv_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"import failed: {output}")
    return seconds, usage.ru_maxrss, output.strip().splitlines()[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("var/bench-import"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for rows in (args.small, args.rows):
        csv_path = args.out / f"entries-{rows}.csv"
        if not csv_path.exists():
            print(f"writing {csv_path} ...", file=sys.stderr)
            write_csv(csv_path, rows)
        db = args.out / f"import-{rows}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        seconds, rss_kib, summary = run_import(db, csv_path)
        print(
            f"{rows:>9,} rows: {seconds:6.1f} s, {rows / seconds:9,.0f} rows/s, "
            f"peak RSS {rss_kib / 1024:6.1f} MiB  ({summary})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
