"""A small ICD-10-CM code table: normalise, check the format, check membership.

The table holds the codes the synthetic warehouse uses plus common ones a researcher is
likely to ask for; it is not the full classification (about 74,000 codes). Three-character
categories that are not billable on their own (``E11``) match every code below them in a
cohort query; see :func:`app.agents.research.cohort.code_filter`.

Codes follow ICD-10-CM FY2024 (for example ``N18.30`` rather than the retired ``N18.3``,
``M54.50`` rather than ``M54.5``, ``F32.A`` for "Depression, unspecified").
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class Icd10FormatError(ValueError):
    """The text is not shaped like an ICD-10-CM code (letter, digit, alphanumeric, ...)."""


@dataclass(frozen=True)
class Icd10Code:
    """One entry of the table: the dotted code, its title, and whether it is billable."""

    code: str
    description: str
    billable: bool = True

    @property
    def is_category(self) -> bool:
        """True for a non-billable heading whose children a query should include."""
        return not self.billable


#: ICD-10-CM format after normalisation: letter, digit, alphanumeric, then up to four
#: alphanumerics after the dot (``E11``, ``E11.9``, ``J45.909``, ``F32.A``, ``O24.410``).
_FORMAT = re.compile(r"^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$")

_ENTRIES: tuple[Icd10Code, ...] = (
    # Categories (headings): matched with everything below them.
    Icd10Code("C34", "Malignant neoplasm of bronchus and lung", billable=False),
    Icd10Code("C50", "Malignant neoplasm of breast", billable=False),
    Icd10Code("E10", "Type 1 diabetes mellitus", billable=False),
    Icd10Code("E11", "Type 2 diabetes mellitus", billable=False),
    Icd10Code("E66", "Overweight and obesity", billable=False),
    Icd10Code("E78", "Disorders of lipoprotein metabolism and other lipidemias", billable=False),
    Icd10Code("E84", "Cystic fibrosis", billable=False),
    Icd10Code("F32", "Major depressive disorder, single episode", billable=False),
    Icd10Code("F41", "Other anxiety disorders", billable=False),
    Icd10Code("I25", "Chronic ischemic heart disease", billable=False),
    Icd10Code("I48", "Atrial fibrillation and flutter", billable=False),
    Icd10Code("I50", "Heart failure", billable=False),
    Icd10Code("J44", "Other chronic obstructive pulmonary disease", billable=False),
    Icd10Code("J45", "Asthma", billable=False),
    Icd10Code("N18", "Chronic kidney disease (CKD)", billable=False),
    # Billable codes.
    Icd10Code("C34.90", "Malignant neoplasm of unspecified part of unspecified bronchus or lung"),
    Icd10Code("C50.911", "Malignant neoplasm of unspecified site of right female breast"),
    Icd10Code("C50.912", "Malignant neoplasm of unspecified site of left female breast"),
    Icd10Code("D64.9", "Anemia, unspecified"),
    Icd10Code("E03.9", "Hypothyroidism, unspecified"),
    Icd10Code("E10.9", "Type 1 diabetes mellitus without complications"),
    Icd10Code("E11.22", "Type 2 diabetes mellitus with diabetic chronic kidney disease"),
    Icd10Code("E11.40", "Type 2 diabetes mellitus with diabetic neuropathy, unspecified"),
    Icd10Code("E11.65", "Type 2 diabetes mellitus with hyperglycemia"),
    Icd10Code("E11.9", "Type 2 diabetes mellitus without complications"),
    Icd10Code("E28.2", "Polycystic ovarian syndrome"),
    Icd10Code("E55.9", "Vitamin D deficiency, unspecified"),
    Icd10Code("E66.01", "Morbid (severe) obesity due to excess calories"),
    Icd10Code("E66.9", "Obesity, unspecified"),
    Icd10Code("E78.00", "Pure hypercholesterolemia, unspecified"),
    Icd10Code("E78.5", "Hyperlipidemia, unspecified"),
    Icd10Code("E84.0", "Cystic fibrosis with pulmonary manifestations"),
    Icd10Code("E84.9", "Cystic fibrosis, unspecified"),
    Icd10Code("F17.210", "Nicotine dependence, cigarettes, uncomplicated"),
    Icd10Code("F32.9", "Major depressive disorder, single episode, unspecified"),
    Icd10Code("F32.A", "Depression, unspecified"),
    Icd10Code("F41.1", "Generalized anxiety disorder"),
    Icd10Code("F41.9", "Anxiety disorder, unspecified"),
    Icd10Code("G30.9", "Alzheimer's disease, unspecified"),
    Icd10Code("G43.909", "Migraine, unspecified, not intractable, without status migrainosus"),
    Icd10Code("G47.33", "Obstructive sleep apnea (adult) (pediatric)"),
    Icd10Code("I10", "Essential (primary) hypertension"),
    Icd10Code(
        "I25.10",
        "Atherosclerotic heart disease of native coronary artery without angina pectoris",
    ),
    Icd10Code("I48.91", "Unspecified atrial fibrillation"),
    Icd10Code("I50.9", "Heart failure, unspecified"),
    Icd10Code("I63.9", "Cerebral infarction, unspecified"),
    Icd10Code("J06.9", "Acute upper respiratory infection, unspecified"),
    Icd10Code("J18.9", "Pneumonia, unspecified organism"),
    Icd10Code("J44.1", "Chronic obstructive pulmonary disease with (acute) exacerbation"),
    Icd10Code("J44.9", "Chronic obstructive pulmonary disease, unspecified"),
    Icd10Code("J45.20", "Mild intermittent asthma, uncomplicated"),
    Icd10Code("J45.909", "Unspecified asthma, uncomplicated"),
    Icd10Code("K21.9", "Gastro-esophageal reflux disease without esophagitis"),
    Icd10Code("M17.11", "Unilateral primary osteoarthritis, right knee"),
    Icd10Code("M54.50", "Low back pain, unspecified"),
    Icd10Code("M81.0", "Age-related osteoporosis without current pathological fracture"),
    Icd10Code("N18.30", "Chronic kidney disease, stage 3 unspecified"),
    Icd10Code("N18.4", "Chronic kidney disease, stage 4 (severe)"),
    Icd10Code("N18.6", "End stage renal disease"),
    Icd10Code("N39.0", "Urinary tract infection, site not specified"),
    Icd10Code("R51.9", "Headache, unspecified"),
    Icd10Code("U07.1", "COVID-19"),
    Icd10Code("Z79.4", "Long term (current) use of insulin"),
)

#: The table, keyed by normalised code.
ICD10_CODES: dict[str, Icd10Code] = {entry.code: entry for entry in _ENTRIES}


def normalise(raw: str) -> str:
    """Upper-case, strip spaces and put the dot after the third character (``e119`` → ``E11.9``).

    Raises :class:`Icd10FormatError` when the result is not shaped like an ICD-10-CM code.
    """
    text = "".join(raw.split()).upper()
    if "." not in text and len(text) > 3:
        text = f"{text[:3]}.{text[3:]}"
    if not _FORMAT.fullmatch(text):
        raise Icd10FormatError(f"{raw!r} is not an ICD-10-CM code (expected e.g. E11.9)")
    return text


def lookup(code: str) -> Icd10Code | None:
    """The table entry for an already normalised ``code``, or None when it is not in the table."""
    return ICD10_CODES.get(code)


def billable_codes() -> tuple[Icd10Code, ...]:
    """Every billable code of the table, in table order (what the seeder draws from)."""
    return tuple(entry for entry in _ENTRIES if entry.billable)


__all__ = [
    "ICD10_CODES",
    "Icd10Code",
    "Icd10FormatError",
    "billable_codes",
    "lookup",
    "normalise",
]
