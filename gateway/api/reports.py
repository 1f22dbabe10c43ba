"""``GET /v1/reports/loop`` (scope ``reports``): the loop's effect, grouped, JSON or CSV.

What each count means is in :mod:`gateway.store.reports`; days are China Standard Time
days of the check, and feedback counts on the day of its check.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from litestar import Request, Response, get
from litestar.params import QueryParameter

from gateway.api.auth import key_guard
from gateway.clock import CST
from gateway.problems import invalid
from gateway.store.reports import COUNTS, GroupBy, overdue_until

if TYPE_CHECKING:
    from gateway.runtime import Runtime

#: The longest range a report covers.
MAX_DAYS = 366


def _day(field: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise invalid(field, "a date as YYYY-MM-DD, e.g. 2026-11-01", "format") from None


@get(
    "/v1/reports/loop",
    tags=["reports"],
    summary="The loop's effect: checks, hits, measures, feedback, pending and overdue, grouped",
    guards=[key_guard("reports")],
)
async def loop_report(
    request: Request[Any, Any, Any],
    first: Annotated[str, QueryParameter(name="from", max_length=10)],
    last: Annotated[str, QueryParameter(name="to", max_length=10)],
    group_by: Annotated[GroupBy, QueryParameter(name="group_by")] = "authority",
    format: Annotated[Literal["json", "csv"], QueryParameter(name="format")] = "json",
) -> Response[Any]:
    """For the checks made from ``from`` to ``to`` (inclusive, at most 366 days), one
    row per authority, caller, list type or measure, most checks first:
    ``checks, hits, measures_applied, feedback_received, executed, not_executed,
    feedback_pending, feedback_overdue``. Feedback is overdue once
    ``GATEWAY_FEEDBACK_DUE_DAYS`` (5) whole days have passed since the day of the check.
    ``format=csv`` answers the same rows as CSV (UTF-8, a header line)."""
    rt: Runtime = request.app.state.runtime
    start, end = _day("from", first), _day("to", last)
    if end < start:
        raise invalid("to", "must not be before from", "minimum")
    if (end - start).days >= MAX_DAYS:
        raise invalid("to", f"a report covers at most {MAX_DAYS} days", "maximum")
    due = rt.settings.feedback_due_days
    today = datetime.now(CST).date()
    await rt.checks_settled()  # every check answered so far counted
    rows = await rt.store.loop_report(start, end, group_by, today, due)
    if format == "csv":
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow([group_by, *COUNTS])
        for row in rows:
            writer.writerow([row["key"], *(row[c] for c in COUNTS)])
        name = f"loop-{group_by}-{start.isoformat()}-{end.isoformat()}.csv"
        return Response(
            text.getvalue().encode(),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )
    return Response(
        {
            "from": start.isoformat(),
            "to": end.isoformat(),
            "group_by": group_by,
            "feedback_due_days": due,
            "overdue_if_checked_on_or_before": overdue_until(today, due).isoformat(),
            "rows": rows,
        }
    )
