"""Rewrite the README's measured blocks from committed outputs.

A measured block is the text between ``<!-- measured: NAME -->`` and
``<!-- /measured: NAME -->`` in ``README.md``; each is generated from one
committed output (:data:`BLOCKS`), so the README's figures are those of the
files it cites and ``tests/test_readme_figures.py`` can check them::

    python -m simulations.readme_figures             # rewrite README.md
    python -m simulations.readme_figures --check     # exit 1 when stale
    python -m simulations.readme_figures --from DIR  # first take a fresh
        # `make run`'s results.json, rounds.csv and curves.png from DIR

A block whose source file is not committed is left as it is, and the command
says so (the bench figures: neither bench script saves its output yet).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from simulations.report.assess import RunRecovery, assess_run
from simulations.report.cells import pct, reach_cell
from simulations.report.runs import (
    FIGURES_DIR,
    RESULTS_DIR,
    ROOT,
    read_retrain,
    read_window,
)
from simulations.report.sections import detector_summary
from simulations.schema import RunResult

README = ROOT / "README.md"
MAIN_RESULTS = FIGURES_DIR / "main_results.json"
MAIN_ROUNDS = FIGURES_DIR / "main_rounds.csv"
MAIN_CURVES = FIGURES_DIR / "main_curves.png"
MAIN_CONFIG = FIGURES_DIR / "main_config.yaml"


@dataclass(frozen=True)
class Block:
    """One measured block: its name, the committed file it is generated
    from, and how."""

    name: str
    source: Path
    render: Callable[[Path], str]

    @property
    def start(self) -> str:
        """The marker line that opens the block."""
        return f"<!-- measured: {self.name} -->"

    @property
    def end(self) -> str:
        """The marker line that closes the block."""
        return f"<!-- /measured: {self.name} -->"


def _rel(path: Path) -> str:
    """``path`` as the README cites it: relative to the checkout."""
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def main_recovery(run: RunResult) -> RunRecovery:
    """The main run's robust figures: B's window from ``main_rounds.csv`` and
    the recovery window from ``main_config.yaml``, when committed."""
    curves = read_retrain(MAIN_ROUNDS) if MAIN_ROUNDS.exists() else None
    return assess_run(run, curves, read_window(MAIN_CONFIG))


def render_make_run(path: Path) -> str:
    """The table ``make run`` prints for the committed run at ``path``, where
    and when it was measured, and its key figures."""
    from simulations.results_table import format_table

    run = RunResult.load(path)
    rec = main_recovery(run)
    minutes, seconds = divmod(round(run.wall_seconds), 60)
    lines = [
        f"Measured with `make run` at commit {run.commit} ({run.hardware}); "
        f"the run took {minutes} min {seconds} s (`wall_seconds` in "
        f"`{_rel(path)}`). The table it prints:",
        "",
        "```",
        format_table(run),
        "```",
        "",
    ]
    for name, m in run.methods.items():
        if name == "retrain":
            continue
        r = rec.methods[name]
        lines.append(
            f"- {name}: malicious accuracy {pct(run.mal_acc_before)}% before, "
            f"{pct(m.mal_acc_curve[0])}% right after unlearning, "
            f"{pct(m.mal_acc_curve[-1])}% after {m.rounds_run} rounds; "
            f"R_rec (first / stays) {reach_cell(r.r_rec, r.stopped_early)}."
        )
    if rec.baseline is not None:
        where = (
            f"R* = {rec.baseline.centre}"
            if rec.baseline.at_r_star
            else f"R* not reached; best round {rec.baseline.centre}"
        )
        b = f"{pct(rec.baseline.test_mean)}% test, {pct(rec.baseline.mal_mean)}% "
        lines.append(f"- B: {b}malicious (3-round mean, {where}).")
    else:
        r_star = run.rounds_from_scratch
        at = "its last round, R* not reached" if r_star is None else f"R* = {r_star}"
        lines.append(
            f"- B ({at}; `{_rel(MAIN_ROUNDS)}` is not committed, so no 3-round "
            f"window): {pct(run.baseline_test_acc)}% test, "
            f"{pct(run.baseline_mal_acc)}% malicious."
        )
    if rec.took_hold is False:
        lines.append("- **The attack did not take hold in this run.**")
    return "\n".join(lines)


def render_output(command: str) -> Callable[[Path], str]:
    """A block that quotes a committed output of ``command`` as printed."""

    def render(path: Path) -> str:
        return f"`{command}`, as saved in `{_rel(path)}`:\n\n```\n" + (
            path.read_text().strip() + "\n```"
        )

    return render


def render_detectors(path: Path) -> str:
    """The detector summary of ``docs/results.md`` (from ``path``)."""
    return "\n".join(detector_summary(path))


BLOCKS = [
    Block("make-run", MAIN_RESULTS, render_make_run),
    Block("bench", FIGURES_DIR / "bench_unlearning.txt", render_output("make bench")),
    Block("bench-sim", FIGURES_DIR / "bench_sim.txt", render_output("make bench-sim")),
    Block(
        "bench-detectors",
        FIGURES_DIR / "bench_detectors.txt",
        render_output("python bench/bench_detectors.py"),
    ),
    Block("detectors", RESULTS_DIR / "detection", render_detectors),
]


def find_block(text: str, block: Block) -> tuple[int, int]:
    """Start and end offsets of ``block``'s body in ``text`` (between its
    marker lines, which stay).

    Raises
    ------
    ValueError
        If a marker is missing, repeated, or the end comes first.
    """
    for marker in (block.start, block.end):
        if text.count(marker) != 1:
            raise ValueError(
                f"README: expected the marker {marker!r} once, found "
                f"{text.count(marker)}; put the block between its two markers"
            )
    begin = text.index(block.start) + len(block.start)
    end = text.index(block.end)
    if end < begin:
        raise ValueError(f"README: {block.end!r} comes before {block.start!r}")
    return begin, end


def block_body(text: str, block: Block) -> str:
    """The text of ``block`` in ``text``, without the markers and the blank
    lines around it."""
    begin, end = find_block(text, block)
    return text[begin:end].strip("\n")


def rewrite(text: str) -> tuple[str, list[str]]:
    """``text`` (the README) with every block whose source is committed
    regenerated, and one notice per block left as it was."""
    notices = []
    for block in BLOCKS:
        find_block(text, block)  # fail early on bad markers, source or not
        if not block.source.exists():
            notices.append(
                f"{block.name}: no committed output at {_rel(block.source)}; "
                "the README block is left as written (not checked by a test)"
            )
            continue
        begin, end = find_block(text, block)
        body = "\n" + block.render(block.source).strip("\n") + "\n"
        text = text[:begin] + body + text[end:]
    return text, notices


def import_run(run_dir: Path) -> None:
    """Copy a fresh ``make run``'s outputs (``results.json``, ``rounds.csv``,
    ``curves.png``, ``config.yaml``) from ``run_dir`` into
    ``docs/figures/main_*``.

    Raises
    ------
    ValueError
        If ``run_dir`` lacks one of them or its run is not ``main``.
    """
    pairs = [
        (run_dir / "results.json", MAIN_RESULTS),
        (run_dir / "rounds.csv", MAIN_ROUNDS),
        (run_dir / "curves.png", MAIN_CURVES),
        (run_dir / "config.yaml", MAIN_CONFIG),
    ]
    missing = [str(src) for src, _ in pairs if not src.exists()]
    if missing:
        raise ValueError(f"{run_dir}: missing {missing}; pass a `make run` folder")
    name = RunResult.load(run_dir / "results.json").name
    if name != "main":
        raise ValueError(f"{run_dir}: run {name!r} is not `make run`'s (main)")
    for src, dst in pairs:
        shutil.copyfile(src, dst)


def main(argv: list[str] | None = None) -> int:
    """Command line; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if README.md is stale"
    )
    parser.add_argument(
        "--from", dest="run_dir", type=Path, help="a fresh `make run` folder"
    )
    args = parser.parse_args(argv)
    if args.run_dir is not None:
        if args.check:
            parser.error("--from and --check do not go together")
        import_run(args.run_dir)
    text = README.read_text()
    new, notices = rewrite(text)
    for notice in notices:
        print(notice)
    if args.check:
        if new != text:
            print("README.md is stale: run `make readme-figures`")
            return 1
        print("README.md measured blocks are up to date")
        return 0
    if new != text:
        README.write_text(new)
    print(f"wrote {_rel(README)}" if new != text else "README.md unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
