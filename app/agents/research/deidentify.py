"""De-identification rules (HIPAA Safe Harbor style), as pure functions of one value each.

- Patient identifiers become a pseudonym: HMAC-SHA256 keyed by the request id, so the
  same patient has the same ``person_id`` in every file of one delivery but different ones
  across deliveries (no linkage between studies).
- Dates become years (Safe Harbor) or stay whole (limited data set).
- Ages over 89 are reported as ``90+``, and the birth year of such a patient is withheld
  (it would reveal the age).
- ZIP codes keep their first three digits, or ``000`` for the three-digit areas with
  20,000 people or fewer (the HHS list from the 2000 census).

Names, MRNs, street addresses, phone numbers and e-mail addresses are never read into a
delivery row at all; see :mod:`app.agents.research.extraction`.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import date

from app.agents.research.payload import PhiLevel

#: Ages above this are grouped (Safe Harbor: "all ages over 89").
MAX_REPORTED_AGE = 89
#: How ages above :data:`MAX_REPORTED_AGE` are written.
AGE_GROUP_OVER_89 = "90+"
#: Three-digit ZIP areas with 20,000 or fewer inhabitants: reported as ``000``.
RESTRICTED_ZIP3 = frozenset(
    {
        "036",
        "059",
        "063",
        "102",
        "203",
        "556",
        "692",
        "790",
        "821",
        "823",
        "830",
        "831",
        "878",
        "879",
        "884",
        "890",
        "893",
    }
)
_PSEUDONYM_CONTEXT = b"ledgerflow/research/person_id/v1:"


def pseudonym(request_id: uuid.UUID, patient_id: str, secret: bytes = b"") -> str:
    """A 16-hex-digit pseudonym of ``patient_id``, stable within ``request_id``.

    ``secret`` (a deployment-wide key, if one is configured) is mixed into the HMAC key so
    that knowing a request id is not enough to recompute the mapping.
    """
    key = _PSEUDONYM_CONTEXT + secret + request_id.bytes
    return hmac.new(key, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def age_at(birth_date: date, on: date) -> int:
    """Age in whole years on ``on`` (a birthday counts from its day)."""
    before_birthday = (on.month, on.day) < (birth_date.month, birth_date.day)
    return on.year - birth_date.year - int(before_birthday)


def age_group(age: int) -> str:
    """The age as written in a delivery: the number, or ``90+`` above 89."""
    if age < 0:
        raise ValueError("age cannot be negative")
    return AGE_GROUP_OVER_89 if age > MAX_REPORTED_AGE else str(age)


def birth_year(birth_date: date, age: int) -> str:
    """The birth year, or an empty string when it would reveal an age over 89."""
    return "" if age > MAX_REPORTED_AGE else str(birth_date.year)


def zip3(zip_code: str) -> str:
    """The first three digits of a US ZIP code; ``000`` for restricted or malformed ones."""
    digits = zip_code.strip()[:5]
    if len(digits) != 5 or not digits.isdigit():
        return "000"
    prefix = digits[:3]
    return "000" if prefix in RESTRICTED_ZIP3 else prefix


@dataclass(frozen=True)
class Deidentifier:
    """The de-identification of one request: its pseudonym key, PHI level and reference date."""

    request_id: uuid.UUID
    level: PhiLevel
    reference_date: date
    secret: bytes = b""

    def person_id(self, patient_id: str) -> str:
        """The patient's pseudonym in this delivery."""
        return pseudonym(self.request_id, patient_id, self.secret)

    def event_date(self, day: date) -> str:
        """An event date as delivered: the year (Safe Harbor) or ISO date (limited)."""
        return str(day.year) if self.level is PhiLevel.deidentified else day.isoformat()

    def demographics(
        self,
        patient_id: str,
        sex: str,
        birth_date: date,
        city: str,
        state: str,
        zip_code: str,
    ) -> list[str]:
        """One demographics row in the column order of the catalogue for this level."""
        age = age_at(birth_date, self.reference_date)
        person = self.person_id(patient_id)
        if self.level is PhiLevel.deidentified:
            return [
                person,
                sex,
                birth_year(birth_date, age),
                age_group(age),
                state,
                zip3(zip_code),
            ]
        return [
            person,
            sex,
            birth_date.isoformat(),
            age_group(age),
            city,
            state,
            zip_code.strip()[:5],
        ]


__all__ = [
    "AGE_GROUP_OVER_89",
    "MAX_REPORTED_AGE",
    "RESTRICTED_ZIP3",
    "Deidentifier",
    "age_at",
    "age_group",
    "birth_year",
    "pseudonym",
    "zip3",
]
