"""GET /metrics: each family present and moving with what the gateway did; labels bounded;
the tally's flush exports what observing one sample at a time would."""

from __future__ import annotations

import functools
from typing import Any

from litestar.testing import TestClient
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import create_app
from gateway.metrics import (
    BATCH_BUCKETS,
    FLUSH_BUCKETS,
    LATENCY_BUCKETS,
    Tally,
    _add_to_histogram,
)
from gateway.settings import Settings
from gateway.store import Maintenance
from tests.api.test_feedback import full_feedback
from tests.fixtures import CLEAR, RESTRICTED, Seeded

Client = TestClient[Any]


def scrape(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_checks_hits_measures_feedback_and_latency_move(client: Client, seeded: Seeded) -> None:
    before = scrape(client)
    for uscc in (RESTRICTED, RESTRICTED, CLEAR):
        response = client.get(
            "/v1/check", params={"uscc": uscc, "matter": "licensing"}, headers=seeded.auth()
        )
        assert response.status_code == 200
    check_id = response.json()["check_id"]  # the clear one: no feedback needed
    restricted = client.get(
        "/v1/check", params={"uscc": RESTRICTED, "matter": "licensing"}, headers=seeded.auth()
    ).json()
    posted = client.post(
        f"/v1/checks/{restricted['check_id']}/feedback",
        json=full_feedback(),
        headers=seeded.auth(),
    )
    assert posted.status_code == 201, posted.text
    again = client.post(  # the same feedback again: a retry, not counted twice
        f"/v1/checks/{restricted['check_id']}/feedback",
        json=full_feedback(),
        headers=seeded.auth(),
    )
    assert again.status_code == 200
    batch = client.post(
        "/v1/check/batch",
        json={"matter": "bidding", "uscc": [CLEAR, RESTRICTED]},
        headers=seeded.auth(),
    )
    assert batch.status_code == 200
    refused = client.get(
        "/v1/check",
        params={"uscc": "91110000600037341X", "matter": "bidding"},
        headers=seeded.auth(),
    )
    assert refused.status_code == 422
    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("gateway_checks_total", matter="licensing", verdict="restricted") == 3
    assert moved("gateway_checks_total", matter="licensing", verdict="clear") == 1
    assert moved("gateway_checks_total", matter="bidding", verdict="restricted") == 1
    assert moved("gateway_hits_total", list_type="court_defaulter") == 4
    assert moved("gateway_measures_total", code="P-LIC-01", state="apply") == 3
    assert moved("gateway_feedback_measures_total", executed="true") == 3
    assert moved("gateway_feedback_measures_total", executed="false") == 1
    assert moved("gateway_check_duration_seconds_count", endpoint="check") == 4
    assert moved("gateway_check_duration_seconds_count", endpoint="batch") == 1
    assert moved("gateway_check_duration_seconds_bucket", endpoint="check", le="+Inf") == 4
    assert moved("gateway_check_duration_seconds_sum", endpoint="check") > 0
    assert moved("gateway_recorder_batch_size_count") >= 1
    assert moved("gateway_recorder_flush_seconds_count") >= 1
    assert moved("gateway_check_problems_total", endpoint="check", status="422") == 1
    assert check_id not in str(after)

    # State of the worker: snapshot, catalog, recorder.
    assert value(after, "gateway_snapshot_entries") >= 3
    assert value(after, "gateway_snapshot_version") >= 1
    assert value(after, "gateway_change_log_lag") == 0
    assert value(after, "gateway_recorder_queue_depth") == 0
    assert value(after, "gateway_recorder_sync_by_thread") == 0  # no thread fsyncs for it
    for counter in ("gateway_record_log_stalls_total", "gateway_record_log_fallbacks_total"):
        assert (counter, ()) in after, f"{counter} not exported"  # value() reads 0 if absent
        assert value(after, counter) == 0  # the store syncer kept up; every frame written
    catalog = client.get("/v1/catalog", headers=seeded.auth()).json()["version"]
    assert value(after, "gateway_catalog_info", version=catalog) == 1


def test_feedback_pending_and_overdue_come_from_the_rolled_up_loop(seeded: Seeded) -> None:
    app = create_app(Settings(db=str(seeded.path)))
    with TestClient(app) as client:
        for _ in range(3):
            client.get(
                "/v1/check", params={"uscc": RESTRICTED, "matter": "bidding"}, headers=seeded.auth()
            )
        client.blocking_portal.call(app.state.runtime.checks_settled)  # in the store
        Maintenance(seeded.path).run_once()  # what the upkeep does in a lull
        client.blocking_portal.call(
            functools.partial(app.state.runtime.publish_metrics, backlog=True)
        )
        samples = scrape(client)
    assert value(samples, "gateway_feedback_pending") == 3
    assert value(samples, "gateway_feedback_overdue") == 0  # made today


def test_no_label_carries_a_code_a_key_or_a_caller(client: Client, seeded: Seeded) -> None:
    client.get("/v1/check", params={"uscc": RESTRICTED, "matter": "bidding"}, headers=seeded.auth())
    text = client.get("/metrics").text
    assert RESTRICTED not in text
    assert seeded.keys["approval"] not in text
    assert "approval system" not in text
    labels = {
        name
        for family in text_string_to_metric_families(text)
        if family.name.startswith("gateway_")
        for sample in family.samples
        for name in sample.labels
    }
    assert labels <= {"matter", "verdict", "list_type", "code", "state", "executed", "endpoint",
                      "status", "le", "version", "pid"}  # fmt: skip


def test_a_flushed_tally_exports_what_observing_each_sample_would() -> None:
    samples = [0.00005, 0.0001, 0.0003, 0.0011, 0.004, 0.02, 0.7, 3.0, 9.0, 0.0001]
    tally = Tally()
    for seconds in samples:
        tally.took("check", seconds)
    flushed_registry, observed_registry = CollectorRegistry(), CollectorRegistry()
    flushed = Histogram("h", "h", ["endpoint"], buckets=LATENCY_BUCKETS, registry=flushed_registry)
    observed = Histogram(
        "h", "h", ["endpoint"], buckets=LATENCY_BUCKETS, registry=observed_registry
    )
    _add_to_histogram(flushed.labels("check"), tally.latency["check"])
    for seconds in samples:
        observed.labels("check").observe(seconds)
    assert exported(flushed_registry) == exported(observed_registry)


def test_the_recorder_batches_tallied_export_what_observing_each_would() -> None:
    batches = [(1, 0.00009), (20, 0.0011), (20, 0.0005), (1000, 0.7), (3000, 2.0)]
    tally = Tally()
    for records, seconds in batches:
        tally.batch(records, seconds)
    for tallied, bounds, pick in (
        (tally.batch_sizes, BATCH_BUCKETS, 0),
        (tally.flush_seconds, FLUSH_BUCKETS, 1),
    ):
        flushed_registry, observed_registry = CollectorRegistry(), CollectorRegistry()
        flushed = Histogram("h", "h", buckets=bounds, registry=flushed_registry)
        observed = Histogram("h", "h", buckets=bounds, registry=observed_registry)
        _add_to_histogram(flushed, tallied)
        for batch in batches:
            observed.observe(batch[pick])
        assert exported(flushed_registry) == exported(observed_registry)


def exported(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
    text = generate_latest(registry).decode()
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.name.endswith("_created")
    ]
