"""Progress bars that suit where the output goes.

On a terminal a `tqdm` bar redraws in place. In a log file, a pipe or CI (no tty) those
redraws would become one line per step, so there `progress_bar` prints one line when the loop
ends instead: what it was, how many steps, how long, and the last postfix (e.g. the loss).
"""

from __future__ import annotations

import sys
import time
from typing import Iterable, Optional, TextIO

from tqdm import tqdm


def is_interactive(stream: Optional[TextIO] = None) -> bool:
    """True when ``stream`` (default stderr, where the bars go) is a terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class LineProgress:
    """The part of tqdm's interface the engine uses, printing one line at `close`.

    Counts steps (iteration or `update`), keeps the last postfix, and on close writes
    ``"<desc>: <n>[/<total>] <unit>s in <s> s (<rate>/s)[, postfix]"`` to ``stream``.
    """

    def __init__(self, iterable: Optional[Iterable] = None, *, desc: str = "", total: Optional[int] = None,
                 initial: int = 0, unit: str = "it", stream: Optional[TextIO] = None):
        self.iterable, self.desc, self.unit = iterable, desc, unit
        self.total = total if total is not None else _length(iterable)
        self.n, self.initial = initial, initial
        self.postfix = ""
        self.stream = stream
        self.start = time.perf_counter()
        self.closed = False

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.n += 1
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, refresh: bool = True, **values) -> None:
        self.postfix = ", ".join(f"{key}={value}" for key, value in values.items())

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        seconds = time.perf_counter() - self.start
        done = self.n - self.initial
        count = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        rate = f" ({done / seconds:.2f} {self.unit}/s)" if seconds > 0 and done else ""
        line = f"{self.desc + ': ' if self.desc else ''}{count} {self.unit}s in {seconds:.1f} s{rate}"
        stream = sys.stderr if self.stream is None else self.stream
        print(line + (f", {self.postfix}" if self.postfix else ""), file=stream, flush=True)


class _Disabled(LineProgress):
    """Counts like a bar and prints nothing."""

    def close(self) -> None:
        self.closed = True


def progress_bar(iterable: Optional[Iterable] = None, *, enabled: bool = True, desc: str = "",
                 total: Optional[int] = None, initial: int = 0, unit: str = "it",
                 interactive: Optional[bool] = None, **tqdm_options):
    """A tqdm bar on a terminal, one `LineProgress` line per loop elsewhere, nothing when not
    ``enabled``.

    Args:
        iterable: what the loop walks (None: call ``update`` yourself).
        interactive: force the choice (None: whether stderr is a terminal).
        tqdm_options: passed to tqdm on a terminal only (e.g. ``leave``, ``dynamic_ncols``).
    """
    if not enabled:
        return _Disabled(iterable, desc=desc, total=total, initial=initial, unit=unit)
    if is_interactive() if interactive is None else interactive:
        return tqdm(iterable, desc=desc, total=total, initial=initial, unit=unit, **tqdm_options)
    return LineProgress(iterable, desc=desc, total=total, initial=initial, unit=unit)


def _length(iterable) -> Optional[int]:
    try:
        return len(iterable)
    except TypeError:
        return None
