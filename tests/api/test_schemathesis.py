"""Schemathesis against the live OpenAPI document of a real server (granian, one worker).

Every operation of ``/schema/openapi.json`` is called with generated requests, valid and
invalid (the examples, coverage, fuzzing and stateful phases), by a key holding every
scope. No answer may be a 5xx or take over 5 s, and every answer must conform to the
document: status code documented, content type, body schema, headers; invalid requests
must be refused and undocumented methods answered 405.

Run through schemathesis' own command line (``schemathesis run``) in a subprocess: its
pytest integration does not work with this pytest (``Function._nodeid``), and the command
line reports each failure with a curl line to reproduce it. Bounded: a fixed number of
examples per operation and a fixed seed (the same requests every run), under a minute.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.model import SCOPES
from tests.fixtures import Seeded
from tests.server.conftest import Server

#: Examples per operation and phase: about 15 s of requests.
EXAMPLES = 40
SEED = 2026
#: The whole run, server start included, is refused past this (a hang, not a finding).
TIMEOUT = 120

CONFIG = """
seed = {seed}
request-timeout = 10

[headers]
Authorization = "Bearer {key}"
X-API-Key = "{key}"

[generation]
max-examples = {examples}
database = "none"
with-security-parameters = false

[checks]
max_response_time = 5.0
# schemathesis' own list, and 413: a body over its operation's limit is refused too.
negative_data_rejection.expected-statuses = [
    "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"
]
# Schema-valid requests that the API refuses on purpose: a USCC's check digits, a matter
# type of the catalog in force, an entry's status, are not expressible in a schema (they
# are documented 422s and 409s).
positive_data_acceptance.enabled = false

# Litestar 2 answers OPTIONS on a path with two handlers (GET and POST) with only the
# first one's method in Allow (litestar-org/litestar#4169, fixed in Litestar 3).
[[operations]]
include-path = "/v1/admin/keys"
checks.allow_header_conformance.enabled = false
"""


@pytest.mark.slow
def test_every_answer_conforms_to_the_live_openapi_document(seeded: Seeded, tmp_path: Path) -> None:
    _, key = seeded.run(lambda store: store.create_key("schemathesis", "测试部门", list(SCOPES)))
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.format(seed=SEED, key=key, examples=EXAMPLES), encoding="utf-8")
    server = Server(seeded.path).start()
    started = time.monotonic()
    try:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "--config-file",
                str(config),
                "--no-color",
                "run",
                f"{server.url}/schema/openapi.json",
            ],
            cwd=tmp_path,  # its reports and caches stay out of the checkout
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    finally:
        server.stop()
    failures = run.stdout.find("= FAILURES =")
    output = run.stdout[failures:][:30_000] if failures >= 0 else run.stdout[-10_000:]
    output += run.stderr[-5_000:]
    assert run.returncode == 0, f"schemathesis found problems:\n{output}"
    assert time.monotonic() - started < TIMEOUT
    # The examples reached the success paths too: checks of valid codes were answered
    # (and their 200s validated against the document).
    with contextlib.closing(sqlite3.connect(f"file:{seeded.path}?mode=ro", uri=True)) as db:
        assert db.execute("SELECT count(*) FROM checks").fetchone()[0] > 0
