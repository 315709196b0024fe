"""Polling a condition with a deadline: one helper for the fail-safe tests and benchmarks.

It lives beside the TCP simulator whose state they poll, so `benchmarks/` (which may not import
`tests/`) and `tests/` share it without breaking the layering.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll_until(condition: Callable[[], T], timeout: float, step: float = 0.02) -> T | None:
    """Call `condition` every `step` s until it returns something truthy; None after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    return None


__all__ = ["poll_until"]
