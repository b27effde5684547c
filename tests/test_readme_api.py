"""The README's "Python API" example runs as written (doctest)."""

from __future__ import annotations

import doctest
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_api_example() -> str:
    section = README.read_text().split("## Python API", 1)[1]
    return section.split("```python", 1)[1].split("```", 1)[0]


def test_python_api_section_is_a_passing_doctest() -> None:
    test = doctest.DocTestParser().get_doctest(python_api_example(), {}, "README Python API", str(README), 0)
    assert len(test.examples) >= 5
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
