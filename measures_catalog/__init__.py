"""The measures catalog: list types, matter types, grades and measures as data.

``load(path=None)`` reads a directory of TOML files (the packaged one by
default), refuses it with every problem named if anything is wrong, and
returns an immutable :class:`Catalog` whose ``version`` (declared version +
content hash) every check records.
"""

from measures_catalog.loader import DEFAULT_DIR, CatalogError, CatalogProblem, load
from measures_catalog.model import (
    Catalog,
    Document,
    GradeLevel,
    LegalBasis,
    ListType,
    MatterIndex,
    MatterType,
    MeasureDefinition,
    Rule,
    Trigger,
)

__all__ = [
    "DEFAULT_DIR",
    "Catalog",
    "CatalogError",
    "CatalogProblem",
    "Document",
    "GradeLevel",
    "LegalBasis",
    "ListType",
    "MatterIndex",
    "MatterType",
    "MeasureDefinition",
    "Rule",
    "Trigger",
    "load",
]
