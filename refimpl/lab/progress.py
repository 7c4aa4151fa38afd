"""Progress lines on stderr for long work: quiet for the first ``after``
seconds, then at most one line every ``every`` seconds."""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    """Callable reporter ``progress(label, done, total, extra="")``.

    Nothing is printed for work that ends within ``after`` seconds, so short
    runs stay quiet; ``enabled=False`` silences it completely.
    """

    def __init__(self, stream=None, after=1.0, every=1.0, enabled=True):
        self.stream = sys.stderr if stream is None else stream
        self.after, self.every, self.enabled = after, every, enabled
        self.start = time.monotonic()
        self.last = None

    def __call__(self, label, done, total, extra=""):
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.start < self.after:
            return
        if self.last is not None and now - self.last < self.every and done < total:
            return
        self.last = now
        pct = 100.0 * done / total if total else 100.0
        tail = f"  {extra}" if extra else ""
        print(f"[refimpl] {label}: {done}/{total} ({pct:.0f}%){tail}", file=self.stream, flush=True)

    def note(self, text):
        """One line now (an estimate before long work), unless disabled."""
        if self.enabled:
            print(f"[refimpl] {text}", file=self.stream, flush=True)

    def stage(self, name, step, cap, loss):
        """Adapter for :func:`refimpl.transfer.run_experiment`'s progress."""
        self(f"stage {name}", step, cap, f"loss {loss:.4g}")
