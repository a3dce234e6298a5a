"""The README as a script: its shell blocks, their expected outcomes, and a shell to run them.

Conventions (README.md follows them, and so must anyone extending it):

- Every fenced block whose info string starts with ``bash`` in a section is part of that
  section's script; the blocks run in order, in one ``bash`` process, so ``export``\\ s and
  ``source`` carry over from block to block, with ``set -euo pipefail``.
- A block right after a line ``<!-- not-run: why -->`` is left out (say why).
- Lines ``<!-- expect: TEXT -->`` right after a block's closing fence list texts that the
  block's output (standard output and error together) must contain; runs of whitespace
  count as one space, so a table cell wrapped over two lines still matches.

The harness may change exactly one thing in the text, the port of ``127.0.0.1:8000``, so
the test server does not collide with one already running; :func:`run_blocks` says so.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_FENCE = re.compile(r"^```(\S*)")
_EXPECT = re.compile(r"^<!--\s*expect:\s*(.*?)\s*-->\s*$")
_NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(.+?)\s*-->\s*$")
_MARK = "@@readme-block"


@dataclass(frozen=True)
class Block:
    """One shell block of the README: where it starts, its code, what its output holds."""

    line: int
    code: str
    expect: tuple[str, ...] = ()


def section(text: str, heading: str) -> tuple[int, list[str]]:
    """The first line number (1-based) and the lines of the section titled ``heading``
    (a ``##`` heading starting with it), up to the next heading of the same level."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("## ") and line[3:].startswith(heading):
            end = next(
                (i for i in range(index + 1, len(lines)) if lines[i].startswith("## ")),
                len(lines),
            )
            return index + 1, lines[index:end]
    raise AssertionError(f"README has no section '## {heading}'")


def blocks(text: str, heading: str) -> list[Block]:
    """The ``bash`` blocks of the section, without the ``not-run`` ones, with expectations."""
    first, lines = section(text, heading)
    found: list[Block] = []
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if not fence or not fence.group(1):
            index += 1
            continue
        start = index
        index += 1
        body: list[str] = []
        while index < len(lines) and not lines[index].startswith("```"):
            body.append(lines[index])
            index += 1
        index += 1  # the closing fence
        expect: list[str] = []
        while index < len(lines) and (match := _EXPECT.match(lines[index])):
            expect.append(match.group(1))
            index += 1
        previous = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
        if fence.group(1).startswith("bash") and not _NOT_RUN.match(previous):
            found.append(Block(first + start, "\n".join(body), tuple(expect)))
    return found


@dataclass(frozen=True)
class Outcome:
    """What the script did: each block's output, and the first block that failed."""

    outputs: list[str]
    failed: int | None
    returncode: int


def run_blocks(
    script: Sequence[Block], cwd: Path, env: Mapping[str, str], port: int, timeout: float
) -> Outcome:
    """Run the blocks in one ``bash`` with ``127.0.0.1:8000`` moved to ``port``.

    Past ``timeout`` seconds the whole process group is killed and the block running then
    counts as failed (a wait loop whose condition never comes true).
    """
    parts = ["set -euo pipefail"]
    for number, block in enumerate(script):
        code = block.code.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        parts.append(f"printf '\\n{_MARK} {number}\\n'\n{code}")
    parts.append(f"printf '\\n{_MARK} end\\n'")
    with subprocess.Popen(
        ["bash", "-c", "\n".join(parts)],
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as shell:
        try:
            output, _ = shell.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(shell.pid, signal.SIGKILL)
            output, _ = shell.communicate()
            output += f"\n(timed out after {timeout:.0f} s)"
    pieces = re.split(rf"\n{_MARK} (\d+|end)\n", "\n" + output)
    outputs = ["" for _ in script]
    reached, finished = -1, False
    for marker, text in zip(pieces[1::2], pieces[2::2], strict=True):
        if marker == "end":
            finished = True
        else:
            reached = int(marker)
            outputs[reached] = text
    failed = None if shell.returncode == 0 and finished else max(reached, 0)
    return Outcome(outputs, failed, shell.returncode)


__all__ = ["Block", "Outcome", "blocks", "run_blocks", "section"]
