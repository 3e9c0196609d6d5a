"""When an answer should not be trusted: the low-confidence rule of every classification result.

A zero-shot model always names some class, also for an image unlike all of them (a grey circle for
a model that knows red, green, blue and yellow) or one it cannot decide (a circle drawn smaller than
any it saw, scored a hair below a triangle). An answer is **low confidence** when either

* **near chance**: the top class's probability is below :data:`NEAR_CHANCE_FACTOR` (5) times chance,
  ``5 / number of classes`` (at most 0.5): the image's predicted attributes fit no class much
  better than the others, which is what an image outside the classes' vocabulary looks like; or
* **ambiguous**: the top class leads the second by less than :data:`MIN_MARGIN` (0.05) in the value
  that ranks them (the calibrated probability ``probability - gamma x seen`` under GZSL calibrated
  stacking, else the probability): a coin toss between two classes.

Measured on the shipped ``shapes-zsl`` model (``benchmarks/confidence.py``; MODEL_CARD.md has the
figures): on its own kind of images 2% of answers are flagged and those are right far less often
than the rest; on objects drawn smaller than its training range, and on colours it does not know,
most answers are flagged and the flagged ones are mostly wrong. The thresholds were chosen there;
other models' probabilities have other scales, so read the flag as a hint, not a guarantee.

A leaf: plain numbers in, a note out.
"""

from __future__ import annotations

__all__ = ["MIN_MARGIN", "NEAR_CHANCE_FACTOR", "confidence_note", "near_chance_threshold"]

#: the top probability must be at least this many times chance (1 / number of classes)
NEAR_CHANCE_FACTOR = 5.0
#: the top class must lead the second by at least this much (probability units)
MIN_MARGIN = 0.05


def near_chance_threshold(num_classes: int) -> float:
    """The top probability under which an answer is near chance: ``5 / num_classes``, at most 0.5
    (with few classes five times chance would be out of reach)."""
    return min(NEAR_CHANCE_FACTOR / max(1, num_classes), 0.5)


def confidence_note(
    top_probability: float, top_value: float, second_value: float | None, num_classes: int, second_name: str = ""
) -> str:
    """Why an answer is low confidence (see the module docs), or ``""`` when it is not.

    Args:
        top_probability: the top-ranked class's probability (softmax over all candidates).
        top_value, second_value: the ranking values (calibrated probabilities, or probabilities)
            of the first and second class; ``second_value`` is ``None`` with a single candidate.
        num_classes: how many classes were candidates.
        second_name: the second class's name, for the note.
    """
    notes = []
    threshold = near_chance_threshold(num_classes)
    if top_probability < threshold:
        notes.append(
            f"near chance (probability {top_probability:.3f} < {NEAR_CHANCE_FACTOR:g} x chance = {threshold:.3f} "
            f"for {num_classes} classes): the image fits none of the classes well"
        )
    if second_value is not None and top_value - second_value < MIN_MARGIN:
        runner_up = f" {second_name!r}" if second_name else " the second class"
        notes.append(f"ambiguous (ahead of{runner_up} by {top_value - second_value:.3f} < {MIN_MARGIN:g})")
    return "; ".join(notes)
