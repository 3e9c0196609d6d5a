"""One cached verdict per key on whether a fast operator may be used: its check runs on first use
only, a disagreement with the plain path is logged as a warning, an operator that cannot run at
all (an older PyTorch, an unsupported CPU) as info, one turned off says nothing. Thread-safe."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable

__all__ = ["FirstUseCheck"]


class FirstUseCheck:
    """``check(key)`` decides once per key whether ``what`` may stand in for ``reference``: True (it
    agrees), False (it disagrees), None (not to be used here: turned off), or an exception (it cannot
    run). Later calls return the cached verdict. Logged to ``logger`` (the caller's)."""

    def __init__(self, check: Callable[[Hashable], bool | None], what: str, reference: str, logger: logging.Logger):
        self._check, self._what, self._reference, self._log = check, what, reference, logger
        self._lock = threading.Lock()
        self._verdicts: dict[Hashable, bool] = {}

    def __call__(self, key: Hashable) -> bool:
        with self._lock:
            if key in self._verdicts:
                return self._verdicts[key]
        ok = False  # the check runs outside the lock: it computes, and may consult other checks
        try:
            verdict = self._check(key)
            ok = verdict is True
            if verdict is False:
                what, reference = self._what, self._reference
                self._log.warning("zeromamba: %s disagrees with %s for %s; not using it", what, reference, key)
        except Exception as e:
            self._log.info("zeromamba: %s unavailable for %s (%s)", self._what, key, e)
        with self._lock:  # a thread that checked at the same time may have come first
            return self._verdicts.setdefault(key, ok)
