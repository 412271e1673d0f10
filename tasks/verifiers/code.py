"""The code verifier: the answer's Python, run in the sandbox (tasks/verifiers/sandbox.py) with the row's tests.

The program is the answer's last fenced block (```python … ```), else the whole answer; the tests are the row's
reference (assert statements, say), run in the program's namespace after it is loaded. Right when the tests run
to their end within the limits. A failure names the limit hit, the network or file access refused, or the
test's error (`AssertionError`).
"""

from __future__ import annotations

import re
import secrets
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


# The program runs as a module, not as __main__ (its `if __name__ == "__main__":` block stays out), then the tests
# run in its namespace, then the marker (a fresh secret per run) is printed: an answer that exits early, with 0
# or not, never passes by skipping its tests.
HARNESS = """\
import runpy, sys
try:
    namespace = runpy.run_path("solution.py", run_name="solution")
except SystemExit:
    raise SystemExit("the program exited before its tests ran") from None
exec(compile(open("tests.py").read(), "tests.py", "exec"), namespace)
print(sys.argv[1])
"""


class Code(Config):
    """Right when the answer's program passes the row's tests in the sandbox."""

    kind: Literal["code"] = "code"
    limits: Limits = Field(Limits(), description="CPU, memory, processes, file size and time for one run.")

    def verify(self, answer: str, row: dict) -> Verdict:
        marker = secrets.token_hex(12)
        files = {"solution.py": program_of(answer), "tests.py": row["reference"]}
        outcome = run_python(HARNESS, self.limits, files, args=(marker,))
        if outcome.passed and marker in outcome.stdout:
            return Verdict.of(True, "tests pass")
        if outcome.passed:
            return Verdict.of(False, "the tests did not finish")
        return Verdict.of(False, outcome.reason(self.limits))
