"""Validators for the identifiers of credit subjects, one module per standard.

* :mod:`gateway.identifiers.uscc`: 统一社会信用代码 (organisations, GB 32100-2015),
* :mod:`gateway.identifiers.citizen_id`: 公民身份号码 (natural persons, GB 11643-1999).

Each ``validate`` returns the normalised identifier or raises a subclass of
:class:`InvalidIdentifier` whose ``rule`` is one of the module's ``RULES``.

>>> validate_uscc('91110000600037341L')
'91110000600037341L'
>>> mask_citizen_id('11010519491231002X')
'110105********002X'
"""

from __future__ import annotations

from gateway.identifiers import citizen_id, uscc
from gateway.identifiers.errors import InvalidCitizenID, InvalidIdentifier, InvalidUSCC

__all__ = [
    "CITIZEN_ID_RULES",
    "USCC_RULES",
    "InvalidCitizenID",
    "InvalidIdentifier",
    "InvalidUSCC",
    "citizen_id",
    "is_valid_citizen_id",
    "is_valid_uscc",
    "mask_citizen_id",
    "normalize_citizen_id",
    "normalize_uscc",
    "uscc",
    "validate_citizen_id",
    "validate_uscc",
]

validate_uscc = uscc.validate
normalize_uscc = uscc.normalize
is_valid_uscc = uscc.is_valid
USCC_RULES = uscc.RULES

validate_citizen_id = citizen_id.validate
normalize_citizen_id = citizen_id.normalize
is_valid_citizen_id = citizen_id.is_valid
mask_citizen_id = citizen_id.mask
CITIZEN_ID_RULES = citizen_id.RULES
