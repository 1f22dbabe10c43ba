"""The decision engine: which measures apply to a subject for a matter, and why.

Pure and deterministic: no I/O, no clock (``today`` is an argument), no
globals. Subjects of the same shape (live list types and their statuses, grade,
commitment) get the same measures, so the work is done once per shape and kept
in the catalog's index (``MatterIndex.memo``); only trigger ids differ.

The rules, as DOMAIN.md §5-§7 and API.md state them:

- Only *live* entries count: status ``active`` or ``objection_pending``, and in
  force on ``today`` (``listed_on <= today <= expires_on``). Repaired, revoked
  and expired entries, and entries not yet in force, yield nothing and are not
  returned as hits.
- A measure triggered only by entries under objection is ``suspended``; if any
  of its triggers is an active entry, a grade or a commitment, it applies.
- Black beats red: a live black entry (active or under objection) withholds
  every incentive. The objection suspends punishments; it does not restore
  incentives while the listing is being verified.
- A returned measure that ``excludes`` incentives (e.g. 不予容缺受理) withholds them.
- A measure triggered several times appears once, with every trigger and the
  basis of every rule that fired.
- Verdict: ``restricted`` if a punishment applies; else ``attention`` if a
  management measure applies or a punishment is suspended; else ``incentive``
  if an incentive applies; else ``clear``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import NamedTuple

from gateway.model import (
    ACTIVE,
    LIVE_STATUSES,
    Decision,
    Grade,
    ListEntry,
    Measure,
    MeasureKind,
    MeasureState,
    Strength,
    Verdict,
)
from measures_catalog import Catalog, MatterIndex, MeasureDefinition, Trigger

COMMITMENT_TRIGGER = "commitment"
_APPLY: MeasureState = "apply"
_SUSPENDED: MeasureState = "suspended"
_CLEAR = Decision("clear", (), (), False)


class UnknownMatter(ValueError):
    """The matter type is not in the catalog; ``valid`` lists the ones that are."""

    def __init__(self, matter: str, valid: Sequence[str]) -> None:
        self.matter = matter
        self.valid = tuple(valid)
        super().__init__(f"unknown matter type {matter!r}; valid: {', '.join(self.valid)}")


#: Distinct subject shapes remembered per matter before the memo starts afresh.
MEMO_LIMIT = 4096


#: (code, name, kind, strength, state, basis, positions of the triggers)
PlannedMeasure = tuple[
    str, str, MeasureKind, Strength, MeasureState, tuple[str, ...], tuple[int, ...]
]


class _Plan(NamedTuple):
    """A decision for one subject shape, with triggers as positions into its trigger ids."""

    verdict: Verdict
    feedback_required: bool
    #: (code, name, kind, strength, state, basis, positions of the triggers)
    measures: tuple[
        tuple[str, str, MeasureKind, Strength, MeasureState, tuple[str, ...], tuple[int, ...]], ...
    ]


def decide(
    hits: Sequence[ListEntry],
    grade: Grade | None,
    matter: str,
    catalog: Catalog,
    today: date,
    *,
    commitment: bool = False,
) -> Decision:
    """Decide the measures for one subject (its entries and grade) and one matter.

    ``hits`` are the subject's entries as the store knows them, whatever their
    status, with distinct ``entry_id``; ``commitment`` says the applicant signed
    a credit commitment.
    """
    index = catalog.index.get(matter)
    if index is None:
        raise UnknownMatter(matter, tuple(catalog.matter_types))
    if not hits and grade is None and not commitment:
        return _CLEAR

    live: list[ListEntry] = []
    shape: list[tuple[str, bool]] = []
    for entry in hits:
        if (
            entry.status not in LIVE_STATUSES
            or entry.listed_on > today
            or (entry.expires_on is not None and entry.expires_on < today)
        ):
            continue
        live.append(entry)
        shape.append((entry.list_type, entry.status == ACTIVE))
    grade_value = grade.value if grade is not None else None
    key = (tuple(shape), grade_value, commitment)
    plan = index.memo.get(key)
    if plan is None:
        plan = _plan(index, catalog, key)
        if len(index.memo) >= MEMO_LIMIT:
            index.memo.clear()
        index.memo[key] = plan
    assert isinstance(plan, _Plan)
    if not plan.measures:
        return Decision("clear", tuple(live), (), False) if live else _CLEAR

    trigger_ids = [entry.entry_id for entry in live]
    if grade_value is not None:
        trigger_ids.append("grade:" + grade_value)
    if commitment:
        trigger_ids.append(COMMITMENT_TRIGGER)
    return Decision(
        plan.verdict,
        tuple(live),
        tuple(
            [
                Measure(
                    code,
                    name,
                    kind,
                    strength,
                    state,
                    basis,
                    (trigger_ids[at[0]],) if len(at) == 1 else tuple(trigger_ids[i] for i in at),
                )
                for code, name, kind, strength, state, basis, at in plan.measures
            ]
        ),
        plan.feedback_required,
    )


def _plan(
    index: MatterIndex,
    catalog: Catalog,
    key: tuple[tuple[tuple[str, bool], ...], str | None, bool],
) -> _Plan:
    """Work out a decision for one shape of subject; triggers are numbered in input order."""
    shape, grade_value, commitment = key
    # measure code -> (definition, basis with duplicates removed, trigger positions, firm)
    found: dict[str, tuple[MeasureDefinition, dict[str, None], dict[int, None], list[bool]]] = {}

    def collect(triggers: tuple[Trigger, ...], position: int, firm: bool) -> None:
        for trigger in triggers:
            slot = found.setdefault(trigger.measure.code, (trigger.measure, {}, {}, [False]))
            slot[1].update(dict.fromkeys(trigger.basis))
            slot[2][position] = None
            slot[3][0] = slot[3][0] or firm

    black = False
    for position, (list_type_code, firm) in enumerate(shape):
        list_type = catalog.list_types.get(list_type_code)
        black = black or (list_type is not None and list_type.kind == "black")
        collect(index.by_list_type.get(list_type_code, ()), position, firm)
    position = len(shape)
    if grade_value is not None:
        collect(index.by_grade.get(grade_value, ()), position, True)
        position += 1
    if commitment:
        collect(index.on_commitment, position, True)

    withheld = {code for d, *_ in found.values() for code in d.excludes}
    measures: list[PlannedMeasure] = [
        (
            d.code,
            d.name,
            d.kind,
            d.strength,
            _APPLY if firm[0] else _SUSPENDED,
            tuple(basis),
            tuple(at),
        )
        for d, basis, at, firm in sorted(found.values(), key=lambda slot: slot[0].ordinal)
        if not (d.kind == "incentive" and (black or d.code in withheld))
    ]
    applied = {kind for _, _, kind, _, state, _, _ in measures if state == "apply"}
    suspended_punishment = any(
        kind == "punishment" and state == "suspended" for _, _, kind, _, state, _, _ in measures
    )
    return _Plan(_verdict(applied, suspended_punishment), bool(applied), tuple(measures))


def _verdict(applied: set[MeasureKind], suspended_punishment: bool) -> Verdict:
    if "punishment" in applied:
        return "restricted"
    if "management" in applied or suspended_punishment:
        return "attention"
    if "incentive" in applied:
        return "incentive"
    return "clear"
