"""`python -m gateway keys rotate|limit` and `audit`, as an operator runs them."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

from tests.fixtures import run_gateway


def created_key(db: Path, *extra: str) -> str:
    result = run_gateway(
        db, "keys", "create", "--caller", "审批系统", "--department", "政务中心",
        "--scopes", "check", *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()[-1]


def test_rotate_limit_and_the_audit_log_from_the_command_line(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    key = created_key(db, "--rate", "50", "--expires-in-days", "90")
    key_id = key.split("_")[1]

    rotated = run_gateway(db, "keys", "rotate", key_id, "--overlap-hours", "2")
    assert rotated.returncode == 0, rotated.stderr
    new_key = rotated.stdout.splitlines()[-1]
    assert new_key.startswith("gw_")
    assert new_key != key
    assert f"key {key_id} works until" in rotated.stdout

    limited = run_gateway(db, "keys", "limit", new_key.split("_")[1], "--rate", "5")
    assert limited.returncode == 0, limited.stderr
    assert "rate 5.0/s" in limited.stdout
    assert "expires never" in limited.stdout
    old_limited = run_gateway(db, "keys", "limit", key_id, "--burst", "7")
    assert old_limited.returncode == 0, old_limited.stderr
    assert "rate 50.0/s, burst 7" in old_limited.stdout  # the rate it had stays
    assert "expires never" not in old_limited.stdout  # and its end (from the rotation)

    listing = run_gateway(db, "keys", "list").stdout.splitlines()
    assert listing[0].split("\t")[-2:] == ["expires_at", "rate_per_second"]
    rows = {r.split("\t")[0]: r.split("\t") for r in listing[1:]}
    assert rows[key_id][6]  # the old key now has an end
    assert rows[new_key.split("_")[1]][7] == "5.0"

    audit = run_gateway(db, "audit")
    assert audit.returncode == 0, audit.stderr
    lines = [json.loads(line) for line in audit.stdout.splitlines()]
    assert [line["action"] for line in lines] == [
        "key.create", "key.rotate", "key.create", "key.limits", "key.limits",
    ]  # fmt: skip
    assert {line["actor"] for line in lines} == {f"cli:{getpass.getuser()}"}
    assert key not in audit.stdout
    assert new_key not in audit.stdout

    missing = run_gateway(db, "keys", "rotate", "nosuchid")
    assert missing.returncode == 1
    assert "no key in force" in missing.stderr
    bad = run_gateway(db, "keys", "limit", key_id, "--rate", "0")
    assert bad.returncode == 2
    assert "--rate must be more than 0" in bad.stderr
