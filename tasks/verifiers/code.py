"""The code verifier: the answer's Python, run in the sandbox (tasks/verifiers/sandbox.py) with the row's tests.

The program is the answer's last fenced block (```python … ```), else the whole answer; the tests are the row's
reference (assert statements, say, or a unittest case), run after the program in the same file. Right when the
whole exits 0 within the limits. A failure names the limit hit, the network or file access refused, or the
test's error (`AssertionError`).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from tasks.config import Config
from tasks.verifiers.base import Verdict
from tasks.verifiers.sandbox import Limits, run_python

_FENCED = re.compile(r"```(?:python|py)?[^\n]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def program_of(answer: str) -> str:
    """The code in an answer: its last fenced block, else all of it."""
    blocks = _FENCED.findall(answer)
    return blocks[-1] if blocks else answer


class Code(Config):
    """Right when the answer's program passes the row's tests in the sandbox."""

    kind: Literal["code"] = "code"
    limits: Limits = Field(Limits(), description="CPU, memory, processes, file size and time for one run.")

    def verify(self, answer: str, row: dict) -> Verdict:
        program = program_of(answer)
        outcome = run_python(f"{program}\n\n# --- the slice's tests ---\n{row['reference']}\n", self.limits)
        if outcome.passed:
            return Verdict.of(True, "tests pass")
        return Verdict.of(False, outcome.reason(self.limits))
