"""Log lines that clients can trigger, bounded: at most N an interval, then a count.

Anyone who can open a TCP connection can send a malformed request, and without
a key. If each one wrote a line (aiohttp's own is a traceback of a few hundred
bytes), an unauthenticated client could fill the node's disk or drown the lines
that matter. A :class:`ThrottledLog` lets ``per_interval`` lines through in each
``interval`` seconds and counts the rest; the first line of a later interval is
preceded by one summary (``N similar lines suppressed in the last Ts``), so
nothing is silently lost. The clock is injected, so tests need no sleeping.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

#: Lines let through per interval, and the interval in seconds.
PER_INTERVAL = 10
INTERVAL = 60.0


class ThrottledLog:
    """A logger front that lets ``per_interval`` lines through every ``interval`` seconds."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        per_interval: int = PER_INTERVAL,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``what`` names the lines in the summary (``malformed requests``)."""
        self.logger = logger
        self.what = what
        self.per_interval = per_interval
        self.interval = interval
        self._clock = clock
        self._started = clock()
        self._logged = 0
        self.suppressed = 0

    def log(self, level: int, msg: str, *args: Any, exc_info: Any = None) -> bool:
        """Log a line unless this interval's share is used up; True when it was logged."""
        now = self._clock()
        if now - self._started >= self.interval:
            if self.suppressed:
                self.logger.log(
                    level,
                    "%d more %s not logged in the last %.0fs",
                    self.suppressed,
                    self.what,
                    now - self._started,
                )
            self._started, self._logged, self.suppressed = now, 0, 0
        if self._logged >= self.per_interval:
            self.suppressed += 1
            return False
        self._logged += 1
        self.logger.log(level, msg, *args, exc_info=exc_info)
        return True
