"""Can the server tell the attackers apart at all? Update similarity vs label skew.

A detector on updates can only flag the attackers if their updates resemble
each other more than benign updates do. Under non-IID data the benign clients'
updates differ by their label mix as well, so this module measures, per round,
how much of the pairwise cosine similarity of the updates the clients' label
mixes explain, and how far the attackers' pairs stand above that:

- ``cos_mm``, ``cos_mb``, ``cos_bb``: mean cosine similarity of the updates
  over attacker-attacker, attacker-benign and benign-benign pairs;
- ``r2_bb``: the share of the variance of the benign pairs' cosine explained
  by a line in the cosine similarity of their label histograms (the label
  skew; 0 when the histograms hardly differ, as under IID);
- ``excess_z``: the attacker pairs' mean residual from that line, in standard
  deviations of the benign pairs' residuals. A coordinated minority that a
  detector could single out needs a large positive value; near 0 the
  attackers are no more alike than their label mixes make them;
- ``pair_precision``: of the ``m (m - 1) / 2`` most similar pairs (``m``
  attackers), the share that are attacker pairs; ``chance`` is that share
  for a random ranking.

The label histograms come from the partitions (ground truth the server does
not have); they are used only to explain the measurement, never to detect.
Runs record their Gram matrices with ``record_gram=true``
(``python -m simulations.detection record_gram=true ...``) into
``updates_gram.json``; ``python -m simulations.detection separability``
summarises every recorded run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from simulations.detection.harness import RoundGram

__all__ = [
    "GRAM_FILE",
    "RoundSeparability",
    "cosine_from_gram",
    "load_grams",
    "round_separability",
    "write_grams",
]

GRAM_FILE = "updates_gram.json"
"""The file, in a run's folder, holding its per-round Gram matrices."""


@dataclass(frozen=True)
class RoundSeparability:
    """How separable the attackers' updates were in one round.

    Attributes
    ----------
    cos_mm, cos_mb, cos_bb : float
        Mean cosine similarity over attacker-attacker, attacker-benign and
        benign-benign pairs (``nan`` without such a pair).
    r2_bb : float
        Variance of the benign pairs' cosine explained by their label
        histograms' cosine (least-squares line); ``nan`` with fewer than three
        benign pairs or no spread in the label similarity.
    excess_z : float
        Mean residual of the attacker pairs from that line, divided by the
        benign pairs' residual standard deviation; ``nan`` without attacker
        pairs or with a zero benign spread.
    pair_precision : float
        Share of attacker pairs among the ``k`` most similar pairs, ``k`` the
        number of attacker pairs (ties broken by pair order); ``nan`` without
        attacker pairs.
    chance : float
        ``k`` over the number of pairs: the expected ``pair_precision`` of a
        random ranking.
    """

    cos_mm: float
    cos_mb: float
    cos_bb: float
    r2_bb: float
    excess_z: float
    pair_precision: float
    chance: float


def cosine_from_gram(gram: NDArray[np.float64]) -> NDArray[np.float64]:
    """Cosine similarities from inner products (0 for a zero vector).

    Examples
    --------
    >>> import numpy as np
    >>> cosine_from_gram(np.array([[4.0, 2.0], [2.0, 1.0]]))
    array([[1., 1.],
           [1., 1.]])
    """
    gram = np.asarray(gram, dtype=np.float64)
    norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
    outer = np.outer(norms, norms)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(outer > 0, gram / np.where(outer > 0, outer, 1.0), 0.0)
    return np.asarray(np.clip(cos, -1.0, 1.0), dtype=np.float64)


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def round_separability(
    cos: NDArray[np.float64],
    malicious: Sequence[bool],
    label_cos: NDArray[np.float64],
) -> RoundSeparability:
    """Measure one round (see the module docstring for each value).

    Parameters
    ----------
    cos : numpy.ndarray
        ``(n, n)`` cosine similarities of the updates.
    malicious : Sequence[bool]
        Whether node ``i`` is an attacker.
    label_cos : numpy.ndarray
        ``(n, n)`` cosine similarities of the nodes' label histograms.

    Returns
    -------
    RoundSeparability

    Raises
    ------
    ValueError
        If the shapes do not agree.

    Examples
    --------
    Two attackers alike beyond their label mixes, three benign nodes whose
    similarity follows theirs exactly:

    >>> import numpy as np
    >>> labels = np.array([[1, .5, .5, .2, .9], [.5, 1, .5, .4, .3],
    ...                    [.5, .5, 1, .6, .7], [.2, .4, .6, 1, .8],
    ...                    [.9, .3, .7, .8, 1]])
    >>> cos = labels * 0.5
    >>> cos[0, 1] = cos[1, 0] = 0.9
    >>> s = round_separability(cos, [True, True, False, False, False], labels)
    >>> round(s.cos_mm, 2), round(s.r2_bb, 2), s.pair_precision, s.chance
    (0.9, 1.0, 1.0, 0.1)
    """
    cos = np.asarray(cos, dtype=np.float64)
    label_cos = np.asarray(label_cos, dtype=np.float64)
    mal = np.asarray(malicious, dtype=bool)
    n = mal.size
    if cos.shape != (n, n) or label_cos.shape != (n, n):
        raise ValueError(
            f"cos {cos.shape} and label_cos {label_cos.shape} must both be "
            f"({n}, {n}) for {n} nodes"
        )
    rows, cols = np.triu_indices(n, k=1)
    both = mal[rows] & mal[cols]
    neither = ~mal[rows] & ~mal[cols]
    values, labels = cos[rows, cols], label_cos[rows, cols]
    r2 = excess = math.nan
    if neither.sum() >= 3 and np.ptp(labels[neither]) > 1e-9:
        slope, intercept = np.polyfit(labels[neither], values[neither], 1)
        residual = values - (slope * labels + intercept)
        bb = residual[neither]
        total = float(np.var(values[neither]))
        r2 = 1.0 - float(np.var(bb)) / total if total > 0 else math.nan
        spread = float(np.std(bb))
        if both.any() and spread > 0:
            excess = float(np.mean(residual[both])) / spread
    k = int(both.sum())
    precision = math.nan
    if k:
        top = np.argsort(-values, kind="stable")[:k]
        precision = float(both[top].mean())
    return RoundSeparability(
        cos_mm=_mean(values[both].tolist()),
        cos_mb=_mean(values[mal[rows] != mal[cols]].tolist()),
        cos_bb=_mean(values[neither].tolist()),
        r2_bb=r2,
        excess_z=excess,
        pair_precision=precision,
        chance=k / values.size if values.size else math.nan,
    )


def write_grams(
    out_dir: Path,
    grams: Mapping[int, RoundGram],
    node_of: Mapping[int, int],
    label_counts: Mapping[int, Sequence[int]],
    malicious: Sequence[int],
) -> Path:
    """Write a run's Gram matrices, by partition, to ``updates_gram.json``.

    Parameters
    ----------
    out_dir : Path
        The run's folder.
    grams : Mapping[int, RoundGram]
        ``DetectionLog.grams``: round -> Gram matrices over node ids.
    node_of : Mapping[int, int]
        Node id of every partition id.
    label_counts : Mapping[int, Sequence[int]]
        Each partition's training labels per class (before any attack).
    malicious : Sequence[int]
        The attacking partitions (empty without an attack).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ValueError
        If a round has a node that is no partition's.
    """
    partition_of = {int(node): int(p) for p, node in node_of.items()}
    rounds: dict[str, Any] = {}
    for server_round, gram in sorted(grams.items()):
        unknown = [n for n in gram.nodes if n not in partition_of]
        if unknown:
            raise ValueError(f"round {server_round}: nodes {unknown} have no partition")
        rounds[str(server_round)] = {
            "partitions": [partition_of[n] for n in gram.nodes],
            "model": gram.model,
            "last_layer": gram.last_layer,
        }
    path = out_dir / GRAM_FILE
    data = {
        "malicious_partitions": sorted(int(p) for p in malicious),
        "label_counts": {str(p): [int(c) for c in v] for p, v in label_counts.items()},
        "rounds": rounds,
    }
    path.write_text(json.dumps(data) + "\n")
    return path


def load_grams(path: Path, *, which: str = "model") -> list[dict[str, Any]]:
    """Read ``updates_gram.json`` and measure every round.

    Parameters
    ----------
    path : Path
        The file (:data:`GRAM_FILE` in a run's folder).
    which : {"model", "last_layer"}
        The Gram matrices to use.

    Returns
    -------
    list[dict]
        Per round in order: ``{"round": r, **RoundSeparability fields}``.

    Raises
    ------
    ValueError
        For an unknown ``which``.
    """
    if which not in ("model", "last_layer"):
        raise ValueError(f"which must be 'model' or 'last_layer', got {which!r}")
    data = json.loads(path.read_text())
    mal = {int(p) for p in data["malicious_partitions"]}
    counts = {int(p): np.asarray(v, float) for p, v in data["label_counts"].items()}
    out = []
    for key, entry in sorted(data["rounds"].items(), key=lambda kv: int(kv[0])):
        parts = [int(p) for p in entry["partitions"]]
        hist = np.stack([counts[p] for p in parts])
        label_cos = cosine_from_gram(hist @ hist.T)
        cos = cosine_from_gram(np.asarray(entry[which], dtype=np.float64))
        measured = round_separability(cos, [p in mal for p in parts], label_cos)
        out.append({"round": int(key), **measured.__dict__})
    return out
