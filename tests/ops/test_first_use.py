"""First-use verdicts on fast operators: checked once per key, and said at the right level."""

from __future__ import annotations

import logging

from zeromamba.ops.first_use import FirstUseCheck

LOG = logging.getLogger("zeromamba.tests.first_use")


def test_each_key_is_checked_once_and_each_outcome_logged_as_its_kind(caplog):
    calls: list[str] = []
    outcomes = {"agrees": True, "disagrees": False, "off": None}

    def check(key: str) -> bool | None:
        calls.append(key)
        if key == "broken":
            raise RuntimeError("no such operator")
        return outcomes[key]

    available = FirstUseCheck(check, "fast op", "slow op", LOG)
    with caplog.at_level(logging.INFO, logger=LOG.name):
        verdicts = {key: available(key) for key in ("agrees", "disagrees", "off", "broken")}
        again = {key: available(key) for key in verdicts}
    assert verdicts == again == {"agrees": True, "disagrees": False, "off": False, "broken": False}
    assert calls == ["agrees", "disagrees", "off", "broken"]  # the second round came from the cache
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert said == [
        (logging.WARNING, "zeromamba: fast op disagrees with slow op for disagrees; not using it"),
        (logging.INFO, "zeromamba: fast op unavailable for broken (no such operator)"),
    ]
