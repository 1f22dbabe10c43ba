"""The Locust run's verdict (``loadtest.locust_verdict``): what the gateway recorded is
read back from its SQLite file for the run's time range only, single checks apart from
batches' and GET apart from POST; importing the module leaves gevent alone."""

from __future__ import annotations

import doctest
import subprocess
import sys
from pathlib import Path

from gateway.ids import uuid7_ms
from gateway.store import CheckWriter
from loadtest import locust_verdict
from loadtest.locust_verdict import server_latencies
from tests.store.helpers import check
from tests.store.test_checks import make_caller

REPO = Path(__file__).resolve().parents[1]


def test_doctests() -> None:
    result = doctest.testmod(locust_verdict)
    assert result.attempted > 0
    assert result.failed == 0


def test_server_latencies_of_the_run_by_kind(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id
    # the helper's check ids all carry one millisecond: the run is the second around it
    ms = uuid7_ms(check(1, caller).check_id)
    assert ms is not None
    run = [
        *(check(n, caller, case_ref=f"SPG-{n}", latency_us=100 * n) for n in range(1, 101)),
        *(check(n, caller, case_ref=f"SPP-{n}", latency_us=5_000) for n in range(101, 111)),
        *(check(n, caller, batch_id="b1", latency_us=9_000) for n in range(111, 131)),
    ]
    before = check(131, caller, check_id="0193b6c1-0000-7000-8000-000000000131")
    writer = CheckWriter(db)
    try:
        writer.write([*run, before], [])
    finally:
        writer.close()

    out = server_latencies(str(db), ms / 1000 - 0.5, ms / 1000 + 0.5)

    assert out["single"]["checks"] == 110  # not the batch's, not the check of before
    assert out["single"]["max_us"] == 10_000
    assert out["single_get"] == {"checks": 100, "p50_us": 5_000, "p99_us": 9_900, "max_us": 10_000}
    assert out["single_post"]["checks"] == 10
    assert out["single_post"]["p99_us"] == 5_000
    assert out["batch_item"]["checks"] == 20


def test_importing_the_verdict_leaves_the_process_unpatched() -> None:
    """Locust patches the whole process with gevent when imported: the tests import this
    module, so it must not."""
    code = (
        "import sys, loadtest.locust_verdict\n"
        "print('locust' in sys.modules, 'gevent' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split() == ["False", "False"]
