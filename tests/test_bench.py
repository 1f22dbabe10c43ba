"""``make bench``'s script (``loadtest.bench``, with the scale profile) and the housekeeping
shared by the load tools (``loadtest.harness``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest import bench, bench_scale
from loadtest.harness import BenchError, remove_record_logs


def test_a_fresh_runs_database_starts_without_the_last_stores_record_logs(tmp_path: Path) -> None:
    """A run's new database is another store: the record log of the one it replaces (its
    slots, its lock, any log moved aside) goes; another database's stays."""
    db = tmp_path / "gateway.db"
    (tmp_path / "gateway.db.records").mkdir()
    (tmp_path / "gateway.db.records" / "slot-0.log").write_bytes(b"\0" * 4096)
    (tmp_path / "gateway.db.records.lock").touch()
    (tmp_path / "gateway.db.records.5f3a").mkdir()  # moved aside by a worker
    (tmp_path / "other.db.records").mkdir()
    db.touch()

    remove_record_logs(db)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["gateway.db", "other.db.records"]


def test_make_bench_is_one_run_with_the_batch_and_the_scale_profile(tmp_path: Path) -> None:
    """``make bench``'s script end to end, small: the gateway loaded round after round with
    wrk, paced, a batch, then the scale profile (its stores generated, both gateways
    started from the store and from the snapshot file, then loaded in turn), all in one
    ``result.json``. (The floor and the limit are left out: they live beside the repo.)"""
    out, scale_out = tmp_path / "bench", tmp_path / "bench-scale"
    argv = ["--apps", "gateway", "--rounds", "1", "--duration", "1", "--warmup", "1"]
    argv += ["--subjects", "3000", "--codes", "500", "--batch-runs", "2", "--batch-size", "100"]
    argv += ["--scale-sizes", "1000", "3000", "--scale-out", str(scale_out), "--out", str(out)]

    assert bench.main(argv) == 0

    result = json.loads((out / "result.json").read_text())
    (gateway_round,) = result["apps"]["gateway"]["rounds"]
    assert gateway_round["rps"] > 0
    assert gateway_round["non_2xx"] == 0
    assert result["paced"]["rps"] > 0
    assert result["batch"]["codes"] == 100
    assert result["batch"]["server_median_ms"] > 0
    assert set(result["scale"]) == {"1000", "3000"}
    for size, profile in result["scale"].items():
        for origin in ("store", "file"):
            assert profile[origin]["ready"]["entries"] == int(size)
            assert profile[origin]["cold_start_s"] > 0
            assert profile[origin]["memory_mb"]
        assert profile["rounds"][0]["rps"] > 0
    assert result["scale"]["1000"]["round_ratio_median"] == 1.0
    assert (scale_out / "store-3000.db").exists()  # kept for the next run


def test_a_scale_store_the_disk_cannot_hold_is_refused_before_it_is_begun(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="no-scale"):
        bench_scale.prepare(tmp_path, 10**15)
    assert list(tmp_path.iterdir()) == []
