"""The recorder with a record log (SQLite, durable: the default): a turn's records are
committed without an fsync and acknowledged once their frame is written; SQLite's log is
fsynced behind, by the log's store syncer, not for each batch; and a worker that died
leaves nothing unrecovered — the real app, started again, answers for checks only its
record log held."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.ids import uuid7
from gateway.model import CheckRecord
from gateway.recorder import Recorder
from gateway.recordframes import decode_frame, directory_for, recover, whole_frames
from gateway.settings import Settings
from gateway.store import CheckWriter
from gateway.store.backend import record_log_opener
from tests.fixtures import RESTRICTED, Seeded, run_gateway
from tests.store.helpers import check, submit_in_turns
from tests.store.test_checks import make_caller
from tests.test_recorder import stored_ids
from tests.test_recorder_inline import TracedWriter
from tests.test_recordlog import Store, crash_after_writing


def test_records_are_acknowledged_once_in_the_log_without_fsyncing_the_store(
    tmp_path: Path,
) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id
    events: list[tuple[str, int]] = []
    slot: list[Path] = []
    in_log_when_acknowledged: list[bool] = []

    async def scenario() -> None:
        recorder = Recorder(
            lambda: CheckWriter(db),
            inline_factory=lambda: TracedWriter(db, events).open(),
            sync_command=None,
            # the store syncer's fsync once (after the first frame), then not for a minute
            record_log_factory=record_log_opener(str(db), 1 << 20, sync_interval=60),
        )
        await recorder.start()
        assert recorder.record_log is not None
        slot.append(recorder.record_log.path)

        def logged(check_id: str) -> bool:
            frames = whole_frames(slot[0].read_bytes())
            return any(
                c.check_id == check_id
                for *_, records in frames
                for c in decode_frame(records).checks
            )

        await submit_in_turns(
            recorder,
            caller,
            lambda cid: in_log_when_acknowledged.append(logged(cid)),
            watch_every=10,  # the first of each turn: reading the log is slow
        )

    asyncio.run(scenario())
    assert len(stored_ids(db)) == 300
    assert in_log_when_acknowledged == [True] * 30
    commits = sum(1 for kind, _ in events if kind == "commit")
    syncs = sum(1 for kind, _ in events if kind == "sync-start")
    assert commits == 300  # all went inline
    assert syncs <= 2  # the store syncer's first, and at the close: none per batch
    assert recover(slot[0], Store().restore)[0] == 0  # closed: a marker covers every frame


def test_checks_only_a_crashed_workers_log_held_are_answered_after_a_restart(
    seeded: Seeded,
) -> None:
    settings = Settings(db=str(seeded.path), poll_interval=0.05, keys_refresh=0.2)
    with TestClient(create_app(settings)) as client:
        answered = client.get(
            "/v1/check", params={"uscc": RESTRICTED, "matter": "bidding"}, headers=seeded.auth()
        )
        assert answered.status_code == 200
    stored = seeded.run(lambda store: store.get_check(answered.json()["check_id"]))
    assert stored is not None
    # Checks its store lost (as a power cut loses what SQLite had not fsynced) and its
    # record log kept: a worker that wrote them and was killed.
    fields: dict[str, Any] = msgspec.structs.asdict(stored)
    kept = {name: fields[name] for name in CheckRecord.__struct_fields__}
    lost = [CheckRecord(**{**kept, "check_id": uuid7()}) for _ in range(3)]
    with CheckWriter(seeded.path) as writer:
        store_id = writer.store_identity()
    crash_after_writing(directory_for(seeded.path), [lost[:2], lost[2:]], store_id)

    with TestClient(create_app(settings)) as client:
        for record in lost:
            got = client.get(f"/v1/checks/{record.check_id}", headers=seeded.auth())
            assert got.status_code == 200, got.text
            assert got.json()["verdict"] == "restricted"


def test_the_recover_records_command_gives_the_store_what_a_killed_worker_left(
    tmp_path: Path,
) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id
    with CheckWriter(db) as writer:
        store_id = writer.store_identity()
    left = [check(n, caller) for n in (1, 2, 3)]
    crash_after_writing(directory_for(db), [left[:1], left[1:]], store_id)
    assert stored_ids(db) == set()

    done = run_gateway(db, "recover-records")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("3 records recovered into"), done.stdout
    assert stored_ids(db) == {c.check_id for c in left}
    again = run_gateway(db, "recover-records")
    assert again.stdout.startswith("0 records recovered"), again.stdout
