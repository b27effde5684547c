"""A progress bar for long runs: shown on a terminal, silent otherwise."""

from __future__ import annotations

import sys
from typing import Any


def progress_wanted(json_mode: bool) -> bool:
    """Show progress only for people: not with ``--json`` and only when stderr is a terminal."""
    return not json_mode and sys.stderr.isatty()


class Progress:
    """Cases done / total, elapsed time and ETA on stderr (``tqdm``); a no-op when disabled."""

    def __init__(self, total: int, *, enabled: bool, desc: str = "cases"):
        self._bar: Any = None
        if enabled and total > 0:
            from tqdm import tqdm

            # No monitor thread: the process pool forks while the bar is open.
            tqdm.monitor_interval = 0
            self._bar = tqdm(total=total, desc=desc, unit="case", file=sys.stderr, dynamic_ncols=True,
                             leave=False)

    def update(self, note: str | None = None) -> None:
        if self._bar is not None:
            if note:
                self._bar.set_postfix_str(note, refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            # tqdm redraws at most every 0.1 s: fast last cases would otherwise never show the final count.
            self._bar.refresh()
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
