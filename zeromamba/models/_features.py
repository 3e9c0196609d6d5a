"""Which layers or stages ``forward_intermediates`` returns: timm's ``indices`` convention, shared by
the model files."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["take_indices"]


def take_indices(count: int, indices: int | Sequence[int] | None, unit: str = "layer") -> tuple[list[int], int]:
    """``(the indices taken, the largest)`` out of ``count`` layers (or stages: ``unit``).

    ``None`` takes all of them, an int ``n`` the last ``n``, a sequence the ones it names (negative
    ones counted from the end).

    Raises:
        ValueError: ``n`` is not in ``1..count``, or a named index is out of range.
    """
    if indices is None:
        take = list(range(count))
    elif isinstance(indices, int):
        if not 0 < indices <= count:
            raise ValueError(f"indices must take between 1 and {count} {unit}s, got {indices}")
        take = list(range(count - indices, count))
    else:
        take = [count + int(i) if i < 0 else int(i) for i in indices]
        if not take or not all(0 <= i < count for i in take):
            raise ValueError(f"{unit} indices {list(indices)} out of range 0..{count - 1}")
    return take, max(take)
