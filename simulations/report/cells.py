"""Markdown cells and rows of the report's tables, and the notes under them."""

from __future__ import annotations

import statistics
from typing import Any

from simulations.report.recovery import Reach
from simulations.report.runs import NOTES_DIR


def pct(value: float | None) -> str:
    """A fraction as a percentage with one decimal; ``–`` for none."""
    return "–" if value is None else f"{100 * value:.1f}"


def rounds(value: int | None, cap: int | None = None) -> str:
    """A round count; ``>cap`` when not reached in ``cap`` rounds."""
    if value is None:
        return "–" if cap is None else f">{cap}"
    return str(value)


def partition_label(partition: str, alpha: float | None) -> str:
    """How every report names a partition: ``IID`` or ``Dir(0.5)``."""
    if partition == "iid":
        return "IID"
    if alpha is None:
        raise ValueError(f"partition {partition!r} needs its alpha to be labelled")
    return f"Dir({float(alpha):g})"


def partition_order(partition: str, alpha: float | None) -> float:
    """Sort key of a partition: IID first, then Dirichlet by decreasing alpha."""
    if partition == "iid":
        return 0.0
    if alpha is None:
        raise ValueError(f"partition {partition!r} needs its alpha to be ordered")
    return 1.0 / float(alpha)


ATTACK_ORDER = ("backdoor", "label_flip", "none")  # FedUP's headline use first


def attack_order(attack: str) -> int:
    """Sort key of an attack in every report's rows: :data:`ATTACK_ORDER`,
    then any other attack."""
    return ATTACK_ORDER.index(attack) if attack in ATTACK_ORDER else len(ATTACK_ORDER)


def row(*cells: Any) -> str:
    """One Markdown table row."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def header(*cells: str) -> list[str]:
    """A Markdown table's header and separator rows."""
    return [row(*cells), "|" + "---|" * len(cells)]


def mean_sd(values: list[float]) -> str:
    """Percent mean ± sample standard deviation (one value: the value)."""
    if not values:
        return "–"
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    mean, sd = statistics.mean(values), statistics.stdev(values)
    return f"{100 * mean:.1f} ± {100 * sd:.1f}"


def note(name: str) -> str:
    """The hand-written note ``docs/notes/<name>.md`` ("" when none)."""
    path = NOTES_DIR / f"{name}.md"
    return path.read_text().strip() + "\n" if path.exists() else ""


def seeds(count: int) -> str:
    """``"1 seed"`` / ``"3 seeds"``."""
    return f"{count} seed" + ("" if count == 1 else "s")


def reach_cell(reach: Reach, stopped_early: bool | None = None) -> str:
    """A :class:`~simulations.report.recovery.Reach` as ``first / stays``.

    ``>k``: not within the mark (first: in any round; stays: at the end of
    the ``k``-round window). ``≥k`` (stays): within from round ``k`` on, but
    the window saw fewer than ``MIN_HOLD`` rounds after it, too short to tell.
    A cell that is not conclusive says why: the method stopped early (once
    recovered, in a window that was not fixed) or the window ended.
    """
    k = reach.rounds_run
    if reach.stays is None:
        stays = f">{k}"
    else:
        stays = str(reach.stays) if reach.conclusive else f"≥{reach.stays}"
    text = f"{rounds(reach.first, k)} / {stays}"
    if not reach.conclusive and stopped_early:
        return f"{text} (stopped early at {k})"
    if reach.stays is not None and not reach.conclusive:
        return f"{text} (window ended at {k})"
    return text


ATTACK_NOT_HELD = "attack did not take hold"


def hold_mark(took_hold: list[bool | None]) -> str:
    """The attack-strength mark of a row of runs ("" when every run's attack
    took hold or none can be judged)."""
    failed = sum(1 for held in took_hold if held is False)
    if failed == 0:
        return ""
    if failed == len(took_hold):
        return ATTACK_NOT_HELD
    return f"{ATTACK_NOT_HELD} in {failed} of {len(took_hold)} seeds"
