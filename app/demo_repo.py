"""The small repository `coder demo` creates: a bug, a failing test, and a scripted agent.

The agent here is the `script` backend: a deterministic program, not an AI, so the demo runs
offline and the same way every time. Everything else on the path (the app, GitHub's API, the
Actions run, git, the tests) is the real thing.
"""

from __future__ import annotations

from pathlib import Path

WORKFLOW_TEMPLATE = Path(__file__).resolve().parent.parent / "workflows-templates/coder.yml"

CALC = '''\
"""Arithmetic for the widgets shop."""


def add(a: int, b: int) -> int:
    """Return the sum of a and b."""
    return a - b
'''

TEST_CALC = """\
import unittest

from calc import add


class AddTest(unittest.TestCase):
    def test_adds(self) -> None:
        self.assertEqual(add(2, 3), 5)


if __name__ == "__main__":
    unittest.main()
"""

# The scripted "agent": it speaks the STATUS:/COST: protocol of the command backend and, as the
# implementer, makes the one-line fix the issue asks for. A real team would use `claude`.
FIX_SCRIPT = '''\
"""A scripted stand-in for an AI agent (coder's `script` backend): not an AI, for the demo."""

import os
import pathlib

role = os.environ["CODER_ROLE"]
briefing = pathlib.Path(os.environ["CODER_BRIEFING_FILE"]).read_text()
print(f"STATUS: {role}: read the briefing ({len(briefing.splitlines())} lines)", flush=True)
if role == "architect":
    print("STATUS: architect: the bug is in calc.add, which subtracts", flush=True)
elif role == "implementer" and "add() takes ints" in briefing:
    # A fix run: the failing CI check's log, in the briefing, says floats are rejected.
    source = pathlib.Path("calc.py")
    text = source.read_text()
    source.write_text(text.replace("a: int, b: int) -> int", "a: float, b: float) -> float"))
    print("STATUS: implementer: calc.add takes floats too", flush=True)
elif role == "implementer":
    source = pathlib.Path("calc.py")
    source.write_text(source.read_text().replace("return a - b", "return a + b"))
    print("STATUS: implementer: calc.add now adds", flush=True)
elif role == "tester":
    print("STATUS: tester: test_calc covers add(2, 3) == 5", flush=True)
print("COST: 0.00 0", flush=True)
'''

CONFIG = """\
# coder's configuration for this repository (docs/configuration.md).
agent:
  backend: script          # deterministic, for demos and tests; real teams use claude
  script: tools/fix_bug.py
tests:
  command: python3 -m unittest -q
limits:
  run_minutes: 5
  idle_minutes: 2
"""

ISSUE_TITLE = "add() subtracts instead of adding"
ISSUE_BODY = """\
`calc.add(2, 3)` returns `-1`; it should return `5`. `python3 -m unittest` fails on
`test_calc.AddTest.test_adds`.
<!-- hidden text like this never reaches the agent -->
"""


def demo_files() -> dict[str, str]:
    """Return the demo repository's files by path."""
    return {
        "calc.py": CALC,
        "test_calc.py": TEST_CALC,
        "tools/fix_bug.py": FIX_SCRIPT,
        ".github/coder.yml": CONFIG,
        ".github/workflows/coder.yml": WORKFLOW_TEMPLATE.read_text(),
    }
