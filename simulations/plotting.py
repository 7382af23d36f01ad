"""The style every figure shares: whole-round ticks, legends outside the data.

Used by the run's ``curves.png`` (:mod:`simulations.results`) and the report's
figures (:mod:`simulations.report.figures`, :mod:`simulations.report.sweep`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def subplots(nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Any, Any]:
    """A figure and a 2-D array of axes, laid out so that an outside legend
    (:func:`legend_outside`) gets its own room."""
    return pyplot().subplots(  # type: ignore[no-any-return]
        nrows, ncols, squeeze=False, layout="constrained", **kwargs
    )


def integer_ticks(axis: Any) -> None:
    """Ticks only at whole numbers on ``axis`` (``ax.xaxis`` / ``ax.yaxis``):
    rounds have no halves. One integer in view is enough (a flat line of
    equal round counts still gets its tick)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def legend_outside(
    fig: Any, axes: list[Any], *, where: str = "right upper", fontsize: int = 7
) -> None:
    """One legend for ``axes`` (twin axes included) outside every plot area.

    Entries are collected from all ``axes`` and deduplicated by label;
    ``where`` is a ``fig.legend`` "outside" location ("right upper",
    "lower center", ...).
    """
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        ncol = len(entries) if where.startswith(("lower", "upper")) else 1
        fig.legend(
            list(entries.values()),
            list(entries),
            loc=f"outside {where}",
            fontsize=fontsize,
            ncol=min(ncol, 4),
        )


def save(fig: Any, path: Path, *, dpi: int = 90) -> None:
    """Write ``fig`` to ``path`` (creating its folder) and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
