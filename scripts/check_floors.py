"""Check that every floor in pyproject.toml is the version the lowest resolution installs.

Usage: ``python scripts/check_floors.py REQUIREMENTS`` with REQUIREMENTS written by
``uv pip compile pyproject.toml --extra dev --resolution lowest-direct`` (what
``scripts/test_lowest.sh`` does). A floor that another dependency forces higher is never
tested, so it is reported (exit 1) with the version to raise it to.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
USAGE = "usage: python scripts/check_floors.py REQUIREMENTS"


def floors(pyproject: Path) -> dict[str, Version]:
    """Each direct dependency (runtime and ``dev``) → the version after its ``>=``."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    found: dict[str, Version] = {}
    for text in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        requirement = Requirement(text)
        for spec in requirement.specifier:
            if spec.operator == ">=":
                found[canonicalize_name(requirement.name)] = Version(spec.version)
    return found


def pins(requirements: Path) -> dict[str, Version]:
    """Each ``name==version`` line of a compiled requirements file."""
    found: dict[str, Version] = {}
    for line in requirements.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line)
        if match:
            found[canonicalize_name(match.group(1))] = Version(match.group(2))
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(USAGE, file=sys.stderr)
        return 2
    installed = pins(Path(argv[0]))
    wrong = [
        f"{name}: the floor is {floor}, the lowest resolution installs "
        f"{installed.get(name, 'nothing')}; raise the floor to what is tested"
        for name, floor in sorted(floors(ROOT / "pyproject.toml").items())
        if installed.get(name) != floor
    ]
    for line in wrong:
        print(f"error: {line}", file=sys.stderr)
    if not wrong:
        print("floors: each is the version the lowest resolution installs")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
