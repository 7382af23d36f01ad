"""The runs behind ``docs/results.md``, in priority order, resumable.

    python -m simulations.reproduce --list         # todo / done / stale, and why
    python -m simulations.reproduce                # every run not done
    python -m simulations.reproduce --only t4-     # runs whose name starts so
    python -m simulations.reproduce --window 5     # another recovery window

Each run is ``python -m simulations.run <overrides>`` into ``results/<name>/``.

What every run of the plan has (:func:`plan`):

- a fixed recovery window: ``rounds.min_recovery=W rounds.max_recovery=W``
  (W = :data:`WINDOW`, or ``--window``), so that no method stops early;
- ``rounds.retrain_after=1`` when it retrains (``rounds.max_retrain > 0``):
  B runs one round past R*, so that B can be read over a 3-round window
  around R*;
- the seeds :data:`SEEDS` for every measured row of Tables II-VII, Figure 5
  (the ``t4-`` runs of 10 (4)) and the pruning-rate sweep, and every mix of
  :data:`MIXES`, IID and Dirichlet, in Tables II-V. The end-to-end and DoS
  runs have seed 42 only.

Names: ``<table>-<partition>-<clients>-<malicious>[-<variant>]-s<seed>``. Seed
42 drops the ``-s42`` (those are the names the runs had before seeds were
added, e.g. ``t4-iid-10-4`` is seed 42, ``t4-iid-10-4-s1`` seed 1), except in
Table III (``t3-``) and the label-flipping rate sweeps (``sweep-lf-``), whose
runs carried ``-s42`` from the start. The report
groups a setting's seeds by dropping a trailing ``-s<seed>``.

Order: seed by seed (every run of seed 42 before any of seed 1); within a
seed, the tables' main mixes (10 (3), 10 (4)), Table VII and the sweep first,
then the other sections' single settings, then the other mixes.

A run is *done* when ``results/<name>/results.json`` exists and the config the
run recorded (``results/<name>/config.yaml``) has every value the plan sets
(the window included); *stale* when a value differs (``--list`` says which);
else *todo*. A todo run continues from its checkpoint when the folder's
config matches the plan. A stale run is re-run in a staging folder
(``outputs/rerun/<name>/``, not committed) and its files replace the old ones
only once it has finished, so the committed results stay until then.
``python -m simulations.report`` then builds the tables from the results.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulations.config import registry_detectors

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
STAGING = ROOT / "outputs" / "rerun"  # git-ignored: a stale run's new files

WINDOW = 10
"""Recovery rounds every method runs (no early stop)."""
RETRAIN_AFTER = 1
"""Retrain rounds B runs past R* (the report averages R*-1 .. R*+1)."""
SEEDS = (42, 1, 2)
MIXES = ((5, 2), (10, 3), (10, 4), (20, 6), (20, 9))
"""Every mix (clients, malicious) of Tables II-V."""
PARTITIONS = ("iid", "dirichlet")

# Fashion-MNIST label flipping (Table III): the paper's model and optimiser, a
# stratified 20% of the training set and 15 training rounds (CPU budget).
FMNIST_LF = (
    "dataset=fashion_mnist",
    "model=fmnist_cnn",
    "attack=label_flip",
    "train.local_epochs=1",
    "fraction=0.2",
    "test_fraction=0.5",
    "rounds.train=15",
    "rounds.max_retrain=30",
)
# CIFAR-10 backdoor (Tables IV-VI, Fig. 5) with LeNet-5 instead of ResNet-18
# (no GPU here), 60% of the training set, 3 local epochs, 20 rounds.
CIFAR_BD = (
    "dataset=cifar10",
    "model=lenet5",
    "attack=backdoor",
    "train.local_epochs=3",
    "fraction=0.6",
    "test_fraction=0.5",
    "rounds.train=20",
    "rounds.max_retrain=25",
)
# CIFAR-10 label flipping (Table II) with LeNet-5 instead of the paper's CNN.
CIFAR_LF = (
    "dataset=cifar10",
    "model=lenet5",
    "attack=label_flip",
    "train.local_epochs=1",
    "fraction=0.6",
    "test_fraction=0.5",
    "rounds.train=20",
    "rounds.max_retrain=30",
)
# Figure 5 (Table IV's 10 (4) runs): FedUP beside its ablations and NoT.
ABLATION = ("compare=[natural,random_prune,malicious_magnitude,not]",)
# Tables IV and VI (NoT) at the other mixes.
WITH_NOT = ("compare=[natural,not]",)
# Table V: one benign client flagged by mistake; the table has no B.
FALSE_POSITIVE = (
    "detector=false_positive",
    "compare=[natural]",
    "rounds.max_retrain=0",
)
# Table VII: no attack; forget one client (partition 0) with FedUP (P = 0.3),
# natural forgetting, FedEraser and NoT; LeNet-5, 30% of CIFAR-10, 5 local
# epochs, 10 rounds. B gets twice the training rounds to reach R*.
BENIGN = (
    "dataset=cifar10",
    "model=lenet5",
    "attack=none",
    "train.local_epochs=5",
    "fraction=0.3",
    "test_fraction=0.5",
    "rounds.train=10",
    "rounds.max_retrain=20",
    "unlearning.pruning_rate=0.3",
    "compare=[natural,federaser,not]",
)
SWEEP = (
    "compare=[natural,fedup-0.01,fedup-0.05,fedup-0.1,fedup-0.15,fedup-0.2,fedup-0.3]",
)
# Issue 11's pruning-rate sweeps: one trained model, then natural
# forgetting, fixed P and the old adaptive default (the `weights` similarity).
RATE_SWEEP = ("compare=[natural,fedup-0.01,fedup-0.05,fedup-0.1,fedup-adaptive]",)
# Issue 14 end to end: the detector the measurements favour under the backdoor
# (docs/detectors.md), on CIFAR-10 and Fashion-MNIST with 4 of 10 attackers.
E2E_BD_DETECTOR = "cosine_outlier"
FMNIST_BD = (*FMNIST_LF, "attack=backdoor")
_IID, _DIR1 = ("partition=iid",), ("partition=dirichlet",)
_DIR05 = ("partition=dirichlet", "partition.alpha=0.5")
Splits = tuple[tuple[str, tuple[str, ...]], ...]
E2E_BD_SETTINGS: tuple[tuple[str, tuple[str, ...], Splits], ...] = (
    ("cifar10", CIFAR_BD,
     (("iid", _IID), ("dirichlet", _DIR1), ("dirichlet0.5", _DIR05))),
    ("fmnist", FMNIST_BD, (("iid", _IID), ("dirichlet0.5", _DIR05))),
)  # fmt: skip
SWEPT = {("cifar10", "iid"), ("cifar10", "dirichlet")}
"""Settings whose oracle run is the backdoor rate sweep (``sweep-bd-*``)."""
SUFFIX_42 = ("t3-", "sweep-lf-")
"""Name prefixes whose seed-42 runs are named with ``-s42``."""
_MAIN, _SINGLE, _OTHER = 0, 1, 2  # tiers within a seed (see the docstring)


@dataclass(frozen=True)
class Run:
    """One run: a name (its folder under results/) and its Hydra overrides."""

    name: str
    overrides: tuple[str, ...]


@dataclass(frozen=True)
class Status:
    """Where a run of the plan stands in a results folder.

    Attributes
    ----------
    state : str
        ``todo`` (no results yet), ``done`` (results with the plan's config)
        or ``stale`` (results with another config).
    why : str
        What differs from the plan, or why a todo run starts over or
        resumes ("" when there is nothing to say).
    resume : bool
        Whether the run may continue from the checkpoint in the folder it
        runs in (its config matches the plan).
    """

    state: str
    why: str
    resume: bool


# ---------------------------------------------------------------- the plan
def merge(*parts: Iterable[str]) -> tuple[str, ...]:
    """``key=value`` overrides in order, each key once: a later value
    replaces an earlier one in its place."""
    out: dict[str, str] = {}
    for item in (x for part in parts for x in part):
        key, _, _ = item.partition("=")
        out[key] = item
    return tuple(out.values())


def setting(overrides: Sequence[str], key: str) -> str | None:
    """The value ``overrides`` give ``key`` (the last one; None: not set)."""
    found = None
    for item in overrides:
        k, _, value = item.partition("=")
        if k == key:
            found = value
    return found


def finish(overrides: Iterable[str], seed: int, window: int) -> tuple[str, ...]:
    """A run's overrides with the seed, the fixed recovery window and, when it
    retrains, ``rounds.retrain_after``.

    Raises
    ------
    ValueError
        If ``window`` is negative.
    """
    if window < 0:
        raise ValueError(f"window must be >= 0 recovery rounds, got {window}")
    out = merge(
        overrides,
        (
            f"seed={seed}",
            f"rounds.min_recovery={window}",
            f"rounds.max_recovery={window}",
        ),
    )
    if int(setting(out, "rounds.max_retrain") or 0) > 0:
        out = merge(out, (f"rounds.retrain_after={RETRAIN_AFTER}",))
    return out


def run_name(base: str, seed: int) -> str:
    """``base`` with its seed: ``-s<seed>``, none for seed 42 outside
    :data:`SUFFIX_42` (see the module docstring)."""
    return base if seed == 42 and not base.startswith(SUFFIX_42) else f"{base}-s{seed}"


def _mix(clients: int, malicious: int) -> tuple[str, ...]:
    return (f"num_clients={clients}", f"num_malicious={malicious}")


def _part(partition: str) -> tuple[str, ...]:
    return (f"partition={partition}",)


def _settings() -> list[tuple[int, str, tuple[str, ...], tuple[int, ...]]]:
    """``(tier, name without seed, overrides, seeds)`` of every setting, in
    table order."""
    out: list[tuple[int, str, tuple[str, ...], tuple[int, ...]]] = []

    def tier(mix: tuple[int, int], main: tuple[int, int]) -> int:
        return _MAIN if mix == main else _OTHER

    for clients, mal in MIXES:
        for p in PARTITIONS:
            mix, where = _mix(clients, mal), _part(p)
            ends = f"{p}-{clients}-{mal}"
            t = tier((clients, mal), (10, 3))
            natural = ("compare=[natural]",)
            out.append((t, f"t2-{ends}", CIFAR_LF + mix + where + natural, SEEDS))
            out.append((t, f"t3-{ends}", FMNIST_LF + mix + where + natural, SEEDS))
            t = tier((clients, mal), (10, 4))
            methods = ABLATION if (clients, mal) == (10, 4) else WITH_NOT
            out.append((t, f"t4-{ends}", CIFAR_BD + mix + where + methods, SEEDS))
            fp = CIFAR_BD + mix + where + FALSE_POSITIVE
            out.append((t, f"t5-{ends}-fp", fp, SEEDS))
    out.append((_MAIN, "t7-benign-iid-10", BENIGN + _mix(10, 1) + _part("iid"), SEEDS))
    for p in PARTITIONS:
        where = _part(p)
        out.append((_MAIN, f"sweep-bd-{p}-10-4",
                    CIFAR_BD + _mix(10, 4) + where + RATE_SWEEP, SEEDS))  # fmt: skip
        for data, base in (("fmnist", FMNIST_LF), ("cifar10", CIFAR_LF)):
            out.append((_MAIN, f"sweep-lf-{data}-{p}-10-3",
                        base + _mix(10, 3) + where + RATE_SWEEP, SEEDS))  # fmt: skip
        # Table IV with all of CIFAR-10 (R* defined, the attack at full
        # strength): one seed, about 30 s a round here.
        out.append((_SINGLE, f"t4full-{p}-10-4",
                    CIFAR_BD + _mix(10, 4) + where + ("fraction=1.0",) + WITH_NOT,
                    (42,)))  # fmt: skip
    # A strong backdoor (95-97% success): Fashion-MNIST's CNN, 4 of 10.
    for split, where in (("iid", _IID), ("dirichlet0.5", _DIR05)):
        out.append((_MAIN, f"sweep-bd-fmnist-{split}-10-4",
                    FMNIST_BD + _mix(10, 4) + where + RATE_SWEEP, SEEDS))  # fmt: skip
    fmnist_main = FMNIST_LF + _mix(10, 3) + _part("iid")
    out.append((_MAIN, "sweep-p-iid-10-3", fmnist_main + SWEEP, SEEDS))
    for p in PARTITIONS:
        strong = ("compare=[natural]", "attack.extra_epochs=4")
        out.append((_SINGLE, f"t3strong-{p}-10-3",
                    FMNIST_LF + _mix(10, 3) + _part(p) + strong, SEEDS))  # fmt: skip
    # Issue 5 end to end: every registered detector, every round from round 3,
    # beside the oracle run t3-iid-10-3-s42; and a DoS detector against the
    # rate limit.
    for det in registry_detectors():
        out.append((_SINGLE, f"e2e-{det}-iid-10-3",
                    (*fmnist_main, f"detector={det}"), (42,)))  # fmt: skip
    dos = ("detector=dos", "unlearning.rate_limit=5", "rounds.max_retrain=0")
    out.append((_SINGLE, "dos-iid-10-3", fmnist_main + dos, (42,)))
    # Issue 14 end to end under the backdoor: the detector every round (FedUP
    # and natural forgetting, each a pass with it) and FedUP with the oracle
    # where no rate sweep of the same setting gives one; no B needed.
    no_b = ("compare=[natural]", "rounds.max_retrain=0")
    for data, scenario, splits in E2E_BD_SETTINGS:
        for split, where in splits:
            ends = f"{data}-{split}-10-4"
            common = scenario + _mix(10, 4) + where + no_b
            out.append((_SINGLE, f"e2e-bd-{E2E_BD_DETECTOR}-{ends}",
                        (*common, f"detector={E2E_BD_DETECTOR}"), SEEDS))  # fmt: skip
            if (data, split) not in SWEPT:
                out.append((_SINGLE, f"e2e-bd-oracle-{ends}", common, SEEDS))
    return out


def plan(window: int = WINDOW) -> list[Run]:
    """Every run, most important first (see the module docstring).

    Parameters
    ----------
    window : int
        Recovery rounds of every method (``rounds.min_recovery`` and
        ``rounds.max_recovery``).

    Raises
    ------
    ValueError
        If ``window`` is negative.
    """
    ranked: list[tuple[tuple[int, int, int], Run]] = []
    for order, (tier, base, overrides, seeds) in enumerate(_settings()):
        for seed in seeds:
            run = Run(run_name(base, seed), finish(overrides, seed, window))
            ranked.append(((SEEDS.index(seed), tier, order), run))
    return [run for _, run in sorted(ranked, key=lambda x: x[0])]


# ---------------------------------------------------------------- status
_ABSENT = object()


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "absent"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return str(value)


def differences(overrides: Sequence[str], recorded: Path) -> list[str]:
    """Each value of ``overrides`` that the config a run recorded
    (``config.yaml``) does not have, as ``key: recorded → planned``.

    A config group (``dataset=cifar10``) is compared with its option's
    ``name``; a key the recorded config lacks reads ``absent``.

    Parameters
    ----------
    overrides : sequence of str
        Hydra overrides (``key=value``).
    recorded : Path
        The run's ``config.yaml``.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(recorded)
    out = []
    for item in OverridesParser.create().parse_overrides(list(overrides)):
        key, want = item.key_or_group, item.value()
        have: Any = OmegaConf.select(cfg, key, default=_ABSENT)
        if OmegaConf.is_config(have):
            have = OmegaConf.to_container(have)
        if isinstance(have, dict) and "name" in have:
            have = have["name"]  # a config group: the option chosen
        if have != want:
            out.append(f"{key}: {_show(have)} → {_show(want)}")
    return out


def status(run: Run, results: Path, staging: Path = STAGING) -> Status:
    """Whether ``run`` is todo, done or stale in ``results`` (see
    :class:`Status`); a stale run's checkpoint is looked for in ``staging``."""
    folder = results / run.name
    config = folder / "config.yaml"
    if not (folder / "results.json").exists():
        # The folder's config.yaml is the one of its last start (if any).
        return _start(run, folder, todo=True)
    if not config.exists():
        return Status("stale", "no config.yaml recorded", False)
    diffs = differences(run.overrides, config)
    if not diffs:
        return Status("done", "", False)
    rerun = _start(run, staging / run.name, todo=False)
    why = "; ".join(diffs) + (f" (re-run {rerun.why})" if rerun.why else "")
    return Status("stale", why, rerun.resume)


def _start(run: Run, folder: Path, *, todo: bool) -> Status:
    """How a run that has no results in ``folder`` starts there."""
    state = "todo" if todo else "stale"
    if not (folder / "checkpoint.pkl").exists():
        return Status(state, "", False)
    config = folder / "config.yaml"
    diffs = differences(run.overrides, config) if config.exists() else ["unknown"]
    if diffs:
        return Status(state, "its checkpoint has another config; starts over", False)
    return Status(state, "interrupted; resumes from its checkpoint", True)


# ---------------------------------------------------------------- CPU time
_PREFIX = re.compile(r"^(.*?)-(?:iid|dirichlet)-")


def prefix_of(name: str) -> str:
    """A run's prefix: its name up to the partition (``t4``, ``t7-benign``,
    ``e2e-krum_score``); the whole name when it has no partition."""
    found = _PREFIX.match(name)
    return name if found is None else found.group(1)


def run_seconds(folder: Path) -> float | None:
    """CPU time a finished run took: ``wall_seconds`` of its ``results.json``,
    or the sum of its ``rounds.csv`` round times when larger (a resumed run's
    ``wall_seconds`` counts its last start only). None: no results, or no
    time recorded in them."""
    path = folder / "results.json"
    if not path.exists():
        return None
    wall = float(json.loads(path.read_text()).get("wall_seconds") or 0.0)
    rounds = folder / "rounds.csv"
    if rounds.exists():
        import csv

        with rounds.open(newline="") as fh:
            wall = max(wall, sum(float(r["seconds"] or 0) for r in csv.DictReader(fh)))
    return wall or None


def estimates(results: Path) -> dict[str, tuple[float, int]]:
    """``{prefix: (median seconds, runs)}`` over the finished runs in
    ``results`` (:func:`prefix_of`, :func:`run_seconds`)."""
    seen: dict[str, list[float]] = {}
    for path in sorted(results.glob("*/results.json")):
        seconds = run_seconds(path.parent)
        if seconds is not None:
            seen.setdefault(prefix_of(path.parent.name), []).append(seconds)
    return {k: (statistics.median(v), len(v)) for k, v in seen.items()}


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def cost(name: str, known: Mapping[str, tuple[float, int]]) -> tuple[float | None, str]:
    """A run's CPU time estimate from :func:`estimates` and how it reads:
    ``(seconds, "~20 min: median of 2 t4 runs")``; ``(None, "no estimate:
    no committed t4full run")`` when no run of its prefix is committed."""
    prefix = prefix_of(name)
    guess = known.get(prefix)
    if guess is None:
        return None, f"no estimate: no committed {prefix} run"
    return guess[0], f"~{_minutes(guess[0])}: median of {guess[1]} {prefix} runs"


def total_cost(seconds: Iterable[float | None]) -> str:
    """The sum of :func:`cost` estimates, and how many runs had none:
    ``"~3.5 h of CPU time (2 runs without an estimate)"``."""
    seconds = list(seconds)
    unknown = sum(1 for s in seconds if s is None)
    text = f"~{_minutes(sum(s for s in seconds if s is not None))} of CPU time"
    return text + (f" ({unknown} runs without an estimate)" if unknown else "")


# ---------------------------------------------------------------- running
def adopt(staged: Path, folder: Path) -> None:
    """Move a finished re-run's files from ``staged`` into ``folder``
    (replacing the old ones), then remove ``staged``."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(staged.iterdir()):
        if path.is_file() and path.name not in ("checkpoint.pkl", "checkpoint.tmp"):
            shutil.move(str(path), str(folder / path.name))
    shutil.rmtree(staged)


def run_one(run: Run, results: Path | None = None, staging: Path | None = None) -> bool:
    """Run ``run`` unless it is done; True when it succeeded or was done.

    A todo run runs in ``results/<name>/``; a stale one in
    ``staging/<name>/``, whose files replace the old ones once it succeeded
    (:func:`adopt`).
    """
    results = RESULTS if results is None else results
    staging = STAGING if staging is None else staging
    state = status(run, results, staging)
    if state.state == "done":
        return True
    stale = state.state == "stale"
    folder = (staging if stale else results) / run.name
    print(f"{run.name}: starting ({state.state}{'; ' if state.why else ''}"
          f"{state.why})", flush=True)  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "simulations.run",
        *run.overrides,
        f"name={run.name}",
        f"hydra.run.dir={folder}",
        # Continue from the checkpoint of a killed run of the same config;
        # resume=false also runs over old results (a stale run's staging).
        f"resume={str(state.resume).lower()}",
    ]
    (folder / "command.txt").write_text(
        "python -m simulations.run " + " ".join(cmd[3:-2]) + "\n"
    )
    started = time.time()
    with (folder / "run.log").open("w") as log:
        proc = subprocess.run(
            cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=False
        )
    ok = proc.returncode == 0
    if ok and stale:
        adopt(folder, results / run.name)
    print(
        f"{run.name}: {'ok' if ok else 'FAILED'} in {time.time() - started:.0f}s; "
        f"results in {(results / run.name).resolve()}, run.log in {folder.resolve()}",
        flush=True,
    )
    return ok


def listing(runs: Sequence[Run], results: Path, staging: Path = STAGING) -> list[str]:
    """The lines of ``--list``: per run its state, CPU time estimate, what
    differs and its overrides; then the totals."""
    known = estimates(results)
    lines = []
    counts = {"todo": 0, "done": 0, "stale": 0}
    left: list[float | None] = []
    for r in runs:
        state = status(r, results, staging)
        counts[state.state] += 1
        seconds, text = cost(r.name, known)
        if state.state != "done":
            left.append(seconds)
        estimate = "" if seconds is None else f" [{text}]"
        lines.append(f"{state.state:5}  {r.name}{estimate}: {' '.join(r.overrides)}")
        if state.why:
            lines.append(f"       {state.why}")
    lines.append(
        f"{len(runs)} runs: {counts['done']} done, {counts['todo']} todo, "
        f"{counts['stale']} stale; to run, estimated from committed runs of "
        f"the same prefix: {total_cost(left)}"
    )
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--list", action="store_true", help="print the plan")
    parser.add_argument("--only", default="", help="run names starting with this")
    parser.add_argument(
        "--window",
        type=int,
        default=WINDOW,
        help=f"recovery rounds of every method (default {WINDOW})",
    )
    args = parser.parse_args(argv)
    if args.window < 0:
        parser.error(f"--window must be >= 0 recovery rounds, got {args.window}")
    runs = [r for r in plan(args.window) if r.name.startswith(args.only)]
    if args.list:
        print("\n".join(listing(runs, RESULTS, STAGING)))
        return
    for r in runs:
        run_one(r, RESULTS, STAGING)


if __name__ == "__main__":
    main()
