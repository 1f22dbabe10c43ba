"""`python -m gateway import` and `keys`: exit codes, the summary, rejected rows, key handling."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
from pathlib import Path
from typing import Any

from gateway.model import Caller
from gateway.store import Store, key_id_of, matches
from tests.fixtures import run_gateway as gateway

HEADER = "uscc,subject_name,list_type,authority,document_no,listed_on,expires_on,source,source_id"
GOOD = [
    "91110000600037341L,北京某某建设有限公司,court_defaulter,北京市第一中级人民法院,"
    "(2026)京01执123号,2026-03-01,2028-03-01,court,C-001",
    "91310000631696382C,上海某某贸易有限公司,tax_grade_a,国家税务总局上海市税务局,"
    "沪税信〔2026〕1号,2026-04-01,2027-03-31,tax,T-001",
]
BAD_USCC = (
    "91120224064012553X,天津某某物流有限公司,business_abnormal,天津市市场监督管理局,"
    ",2026-05-10,,market,M-001"
)
BAD_DATE = "92340602MA2PBMEM24,六安某某商贸部,focus,六安市市场监督管理局,,2026/13/01,,market,M-002"
Completed = subprocess.CompletedProcess[str]
KEY = re.compile(r"gw_([A-Za-z0-9]{8})_[A-Za-z0-9_-]{43}")


def create_key(db: Path, caller: str, department: str, scopes: str) -> Completed:
    return gateway(
        db, "keys", "create", "--caller", caller, "--department", department, "--scopes", scopes
    )


def write(path: Path, *lines: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def entries_of(db: Path, *usccs: str) -> dict[str, list[str]]:
    """Each subject's entries in the store, as their source ids."""

    async def go() -> dict[str, list[str]]:
        async with await Store.open(db) as store:
            return {u: [e.source_id for e in await store.subject_entries(u)] for u in usccs}

    return asyncio.run(go())


def active_keys(db: Path) -> dict[str, Caller]:
    """The keys in force, by id."""

    async def go() -> dict[str, Caller]:
        async with await Store.open(db) as store:
            return {k: v.caller for k, v in (await store.keys_in_force()).items()}

    return asyncio.run(go())


def stored_digest(db: Path, key: str) -> str | None:
    """What the store keeps of ``key``, if it is in force."""

    async def go() -> str | None:
        async with await Store.open(db) as store:
            found = (await store.keys_in_force()).get(key_id_of(key) or "")
        return found.digest if found and matches(key, found.salt, found.digest) else None

    return asyncio.run(go())


def rejected_pairs(stderr: str) -> list[tuple[int, str]]:
    return [(int(n), f) for n, f in re.findall(r"^  row (\d+): ([^:]+): .+$", stderr, re.M)]


SUBJECTS = ("91110000600037341L", "91310000631696382C", "92340602MA2PBMEM24")


def test_import_prints_the_summary_and_exits_0(tmp_path: Path) -> None:
    db, path = tmp_path / "gateway.db", write(tmp_path / "entries.csv", HEADER, *GOOD)
    result = gateway(db, "import", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == (
        "2 rows: 2 inserted, 0 updated, 0 unchanged, 0 rejected; applied"
    )
    assert f"importing entries from {path}" in result.stderr
    assert entries_of(db, *SUBJECTS) == {
        "91110000600037341L": ["C-001"],
        "91310000631696382C": ["T-001"],
        "92340602MA2PBMEM24": [],
    }
    again = gateway(db, "import", str(path))
    assert again.returncode == 0, again.stderr
    assert "2 rows: 0 inserted, 0 updated, 2 unchanged, 0 rejected; applied" in again.stdout


def test_chunk_sets_rows_per_transaction_and_the_phases_are_timed(tmp_path: Path) -> None:
    db, path = tmp_path / "gateway.db", write(tmp_path / "entries.csv", HEADER, *GOOD)
    refused = gateway(db, "import", str(path), "--chunk", "0")
    assert refused.returncode == 2
    assert "--chunk must be at least 1" in refused.stderr
    assert entries_of(db, *SUBJECTS)["91110000600037341L"] == []

    result = gateway(db, "import", str(path), "--chunk", "1")
    assert result.returncode == 0, result.stderr
    assert "2 rows: 2 inserted, 0 updated, 0 unchanged, 0 rejected; applied" in result.stdout
    # One progress line per chunk of one row, then how long each phase took.
    assert re.findall(r"applied: (\d) rows", result.stderr) == ["1", "2"]
    assert re.search(r"validated in \d+\.\d s, applied in \d+\.\d s", result.stderr)


def test_rejected_rows_are_listed_and_nothing_is_applied(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    path = write(tmp_path / "entries.csv", HEADER, GOOD[0], BAD_USCC, BAD_DATE, GOOD[1])
    result = gateway(db, "import", str(path))
    assert result.returncode == 1
    assert rejected_pairs(result.stderr) == [(2, "uscc"), (3, "listed_on")]
    assert "  row 2: uscc: " in result.stderr
    assert "[rule: check_digit]" in result.stderr
    assert "  row 3: listed_on: '2026/13/01' is not a date YYYY-MM-DD" in result.stderr
    assert result.stdout.splitlines()[-1] == (
        "4 rows: 0 inserted, 0 updated, 0 unchanged, 2 rejected; "
        "NOTHING APPLIED (use --allow-partial to apply the valid rows)"
    )
    assert entries_of(db, *SUBJECTS) == {u: [] for u in SUBJECTS}


def test_allow_partial_applies_the_valid_rows(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    path = write(tmp_path / "entries.csv", HEADER, GOOD[0], BAD_USCC, BAD_DATE, GOOD[1])
    result = gateway(db, "import", str(path), "--allow-partial")
    assert result.returncode == 0, result.stderr
    assert rejected_pairs(result.stderr) == [(2, "uscc"), (3, "listed_on")]
    assert result.stdout.splitlines()[-1] == (
        "4 rows: 2 inserted, 0 updated, 0 unchanged, 2 rejected; applied"
    )
    assert entries_of(db, *SUBJECTS) == {
        "91110000600037341L": ["C-001"],
        "91310000631696382C": ["T-001"],
        "92340602MA2PBMEM24": [],
    }


def test_a_gb18030_csv_imports_like_utf8(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    path = write(tmp_path / "gb.csv", HEADER, *GOOD, encoding="gb18030")
    result = gateway(db, "import", str(path))
    assert result.returncode == 0, result.stderr
    assert entries_of(db, *SUBJECTS)["91110000600037341L"] == ["C-001"]


def test_an_undecodable_file_exits_2_with_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    jsonl = write(tmp_path / "gb.jsonl", '{"subject_name": "北京某某公司"}', encoding="gb18030")
    garbage = tmp_path / "bad.csv"
    garbage.write_bytes(HEADER.encode() + b"\n\xff\xff\xff\x80\x80\n")
    for path in (jsonl, garbage):
        result = gateway(db, "import", str(path))
        assert result.returncode == 2, result.stdout
        assert re.search(rf"^error: {re.escape(path.name)}: ", result.stderr, re.M)
        assert "Traceback" not in result.stderr
        assert result.stdout == ""
    assert entries_of(db, *SUBJECTS) == {u: [] for u in SUBJECTS}


def test_format_option_overrides_the_extension(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    line = (
        '{"uscc": "91110000600037341L", "list_type": "court_defaulter", '
        '"listed_on": "2026-03-01", "source": "court", "source_id": "C-009"}'
    )
    path = write(tmp_path / "export.txt", line)
    refused = gateway(db, "import", str(path))
    assert refused.returncode == 2
    assert "export.txt: cannot tell the format from the extension; pass --format" in refused.stderr
    result = gateway(db, "import", str(path), "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    assert "1 rows: 1 inserted" in result.stdout
    assert entries_of(db, "91110000600037341L") == {"91110000600037341L": ["C-009"]}


def test_import_of_grades_applies_them_and_rejects_an_unknown_grade(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    good = write(
        tmp_path / "grades.csv",
        "uscc,grade,source,as_of",
        "91310115MA1K3BTP2B,poor,评价,2026-10-01",
    )
    result = gateway(db, "import", str(good), "--kind", "grades")
    assert result.returncode == 0, result.stderr
    assert "importing grades from" in result.stderr
    bad = write(
        tmp_path / "bad.csv",
        "uscc,grade,source,as_of",
        "121200004013590816,good,评价,",
        "913101127033980359,B,评价,",
    )
    refused = gateway(db, "import", str(bad), "--kind", "grades")
    assert refused.returncode == 1
    assert rejected_pairs(refused.stderr) == [(2, "grade")]
    assert "NOTHING APPLIED" in refused.stdout

    async def grades() -> list[Any]:
        async with await Store.open(db) as store:
            return [await store.get_grade(u) for u in ("91310115MA1K3BTP2B", "121200004013590816")]

    poor, untouched = asyncio.run(grades())
    assert (poor.value, poor.source, str(poor.as_of)) == ("poor", "评价", "2026-10-01")
    assert untouched is None


def test_keys_create_prints_the_key_alone_last_and_stores_only_its_hash(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    result = create_key(db, "省政务服务网审批系统", "省政务服务中心", "check,feedback")
    assert result.returncode == 0, result.stderr
    key = result.stdout.splitlines()[-1]
    match = KEY.fullmatch(key)
    assert match is not None, result.stdout
    assert result.stdout.count(key) == 1
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(db.name))
    assert key.encode() not in stored
    assert key.split("_", 2)[2].encode() not in stored
    digest = stored_digest(db, key)
    assert digest is not None
    assert digest.encode() in stored  # the grep does see what the store keeps
    (caller,) = active_keys(db).values()
    assert (caller.name, caller.department) == ("省政务服务网审批系统", "省政务服务中心")
    assert caller.key_id == match.group(1)
    assert caller.scopes == frozenset({"check", "feedback"})


def test_keys_list_shows_ids_never_keys_or_hashes_and_revoke_takes_keys_out(
    tmp_path: Path,
) -> None:
    db = tmp_path / "gateway.db"
    keys = []
    for caller in ("审批系统", "招投标系统"):
        created = create_key(db, caller, "政务中心", "check")
        keys.append(created.stdout.splitlines()[-1])
    first_id, second_id = (k.split("_")[1] for k in keys)
    listing = gateway(db, "keys", "list")
    assert listing.returncode == 0, listing.stderr
    assert first_id in listing.stdout
    assert second_id in listing.stdout
    assert "审批系统" in listing.stdout
    rows = [line.split("\t") for line in listing.stdout.splitlines()[1:]]
    assert [(r[0], r[1], r[3]) for r in rows] == [
        (first_id, "审批系统", "check"),
        (second_id, "招投标系统", "check"),
    ]
    for key in keys:
        assert key not in listing.stdout
        assert key.split("_", 2)[2] not in listing.stdout
        assert str(stored_digest(db, key)) not in listing.stdout
    revoked = gateway(db, "keys", "revoke", first_id)
    assert revoked.returncode == 0, revoked.stderr
    assert first_id in revoked.stdout
    assert set(active_keys(db)) == {second_id}
    assert stored_digest(db, keys[0]) is None
    again = gateway(db, "keys", "revoke", first_id)
    assert again.returncode == 1
    assert f"no active key {first_id!r}" in again.stderr


def test_keys_create_with_a_bad_scope_fails_clearly_and_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    result = create_key(db, "审批系统", "政务中心", "check,bogus")
    assert result.returncode != 0
    assert "unknown scope 'bogus'" in result.stderr
    assert "valid scopes: check, feedback, lists, reports, admin" in result.stderr
    assert "Traceback" not in result.stderr
    assert not KEY.search(result.stdout)
    assert active_keys(db) == {}
    assert gateway(db, "keys", "list").stdout.splitlines() == [
        "key_id\tcaller\tdepartment\tscopes\tcreated_at\trevoked_at\texpires_at\trate_per_second"
    ]


def test_a_store_that_cannot_be_opened_is_one_line_without_its_password(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://gateway:s3cret-pw@127.0.0.1:{port}/gateway"
    for command in (["keys", "list"], ["import", str(tmp_path / "none.csv")], ["audit"]):
        done = gateway(tmp_path / "unused.db", *command, GATEWAY_DB=url)
        assert done.returncode == 1, done.stderr
        assert done.stderr.startswith("error: cannot open the store postgresql://gateway:***@"), (
            done.stderr
        )
        assert "Traceback" not in done.stderr
        assert "s3cret-pw" not in done.stderr + done.stdout


def test_an_empty_store_setting_is_refused_naming_the_variable(tmp_path: Path) -> None:
    done = gateway(tmp_path / "unused.db", "keys", "list", GATEWAY_DB="")
    assert done.returncode == 2
    assert done.stderr.startswith("error: GATEWAY_DB:"), done.stderr
    assert not list(tmp_path.iterdir())


def test_serve_on_a_store_that_cannot_be_opened_says_so_and_exits(tmp_path: Path) -> None:
    url = "postgresql://gateway:s3cret-pw@127.0.0.1:1/gateway"
    done = gateway(tmp_path / "unused.db", "serve", "--port", "1", GATEWAY_DB=url, timeout=30)
    assert done.returncode == 1
    assert done.stderr.startswith(
        "error: cannot open the store postgresql://gateway:***@127.0.0.1:1/gateway: "
        "ConnectionRefusedError"
    )
    assert done.stderr.count("\n") == 1, "one line, no traceback"
