"""FedUP's maths as pure numpy functions (Algorithms 1-2, Eq. 4-6 of the paper).

A *model* is a sequence of numpy arrays in a fixed order, as
``ArrayRecord.to_numpy_ndarrays()`` returns them. Nothing here imports Flower.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import NDArray

Model = Sequence[NDArray[np.generic]]
Mask = list[NDArray[np.bool_]]

# Elements per block when accumulating averages: the temporary of a weighted
# add then stays in the CPU cache instead of doubling memory traffic.
_BLOCK = 1 << 16

__all__ = [
    "apply_mask",
    "last_layer_similarity",
    "model_nbytes",
    "prune_count",
    "pruning_rate",
    "recovery_rounds_bound",
    "unlearning_mask",
    "weighted_average",
]


def _check_rate(rate: float, name: str = "rate") -> float:
    rate = float(rate)
    if not 0.0 <= rate <= 1.0 or math.isnan(rate):
        raise ValueError(f"{name} must be in [0, 1], got {rate!r}")
    return rate


def _check_same_layout(reference: Model, model: Model, what: str) -> None:
    if len(model) != len(reference):
        raise ValueError(
            f"{what} has {len(model)} arrays but the global model has "
            f"{len(reference)}; every model must have the same arrays in the "
            "same order"
        )
    for i, (ref, arr) in enumerate(zip(reference, model)):
        if np.shape(arr) != np.shape(ref):
            raise ValueError(
                f"{what}: array {i} has shape {np.shape(arr)} but the global "
                f"model's array {i} has shape {np.shape(ref)}"
            )


def _check_finite(model: Model, what: str) -> None:
    for i, arr in enumerate(model):
        if not np.all(np.isfinite(arr)):
            raise ValueError(
                f"{what}: array {i} contains NaN or Inf; drop that model "
                "before unlearning"
            )


def _check_weights(
    weights: Sequence[float] | None, count: int, what: str
) -> NDArray[np.float64]:
    if weights is None:
        return np.ones(count, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape[0] != count:
        raise ValueError(
            f"{what} has {w.shape[0]} entries for {count} models; give one "
            "weight (example count) per model"
        )
    if not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError(f"{what} must be finite and positive, got {w.tolist()}")
    return w


def _group_weights(
    models: Sequence[Model],
    weights: Sequence[float] | None,
    reference: Model,
    what: str,
) -> NDArray[np.float64]:
    """Validate a group of models and return its normalised weights."""
    if len(models) == 0:
        raise ValueError(f"{what} is empty; at least one model is needed")
    for k, model in enumerate(models):
        _check_same_layout(reference, model, f"{what}[{k}]")
    w = _check_weights(weights, len(models), f"weights of {what}")
    normalised: NDArray[np.float64] = w / w.sum()
    return normalised


def _block_mean(
    flats: list[NDArray[Any]],
    w: NDArray[np.float64],
    start: int,
    out: NDArray[np.floating],
    tmp: NDArray[np.floating],
) -> None:
    """``out = sum_k w_k * flats[k][start:start + len(out)]``.

    Called on cache-sized blocks so that the weighted add's temporary never
    leaves the CPU cache; with equal weights the plain sum is scaled once.
    """
    stop = start + out.size
    uniform = bool(np.all(w == w[0]))
    out[...] = 0
    with np.errstate(over="ignore", invalid="ignore"):
        for flat, wk in zip(flats, w):
            if uniform:
                out += flat[start:stop]
            else:
                np.multiply(flat[start:stop], wk, out=tmp[: out.size])
                out += tmp[: out.size]
        if uniform:
            out *= w[0]


def _raise_non_finite(models: Sequence[Model], i: int, what: str) -> None:
    # NaN and Inf propagate through sums, so a non-finite block sum is checked
    # once and the culprit looked up only then.
    for k, model in enumerate(models):
        _check_finite([model[i]], f"{what}[{k}]")
    raise ValueError(
        f"{what}: averaging array {i} overflowed to Inf; the values are too large "
        "for their dtype"
    )


def _float_dtype(arr: Any) -> np.dtype[Any]:
    return np.result_type(np.asarray(arr).dtype, np.float32)


def weighted_average(
    models: Sequence[Model],
    weights: Sequence[float] | None = None,
    *,
    reference: Model | None = None,
    what: str = "models",
) -> list[NDArray[np.floating]]:
    """Average models array by array, weighted by ``weights``.

    Parameters
    ----------
    models : Sequence[Model]
        At least one model; all with the same arrays.
    weights : Sequence[float] | None
        One positive weight per model (e.g. example counts); equal when None.
    reference : Model | None
        Model whose layout every model must match (defaults to the first).
    what : str
        Name of the group, used in error messages.

    Returns
    -------
    list[NDArray]
        One array per input array, in the input's floating dtype (float64 for
        integer inputs). The inputs are read once and not copied.

    Raises
    ------
    ValueError
        Empty group, mismatched layouts, bad weights, or NaN/Inf in a model.
    """
    if len(models) == 0:
        raise ValueError(f"{what} is empty; at least one model is needed")
    ref = models[0] if reference is None else reference
    w = _group_weights(models, weights, ref, what)
    averages: list[NDArray[np.floating]] = []
    for i in range(len(ref)):
        flats = [np.asarray(model[i]).reshape(-1) for model in models]
        acc = np.empty(flats[0].size, dtype=_float_dtype(flats[0]))
        tmp = np.empty(min(_BLOCK, acc.size), dtype=acc.dtype)
        for start in range(0, acc.size, _BLOCK):
            block = acc[start : start + _BLOCK]
            _block_mean(flats, w, start, block, tmp)
            if not np.all(np.isfinite(block)):
                _raise_non_finite(models, i, what)
        averages.append(acc.reshape(np.shape(ref[i])))
    return averages


def _top_k_mask(score: NDArray[np.floating], k: int) -> NDArray[np.bool_]:
    """Boolean mask of the ``k`` largest entries of a flat score (ties: first)."""
    n = score.size
    threshold = np.partition(score, n - k)[n - k]
    mask: NDArray[np.bool_] = score > threshold
    need = k - int(np.count_nonzero(mask))
    if need > 0:
        mask[np.flatnonzero(score == threshold)[:need]] = True
    return mask


def _score_array(
    i: int,
    benign: tuple[Sequence[Model], NDArray[np.float64]],
    malicious: tuple[Sequence[Model], NDArray[np.float64]],
    glob: NDArray[Any],
) -> NDArray[np.floating]:
    """``(avg_malicious - avg_benign)**2 * |glob|`` for array ``i``, block by block.

    Only block-sized buffers hold the averages; the full-size result is the
    score itself.
    """
    ben_flats = [np.asarray(m[i]).reshape(-1) for m in benign[0]]
    mal_flats = [np.asarray(m[i]).reshape(-1) for m in malicious[0]]
    g = np.asarray(glob).reshape(-1)
    dtype = np.result_type(_float_dtype(ben_flats[0]), _float_dtype(g))
    score = np.empty(g.size, dtype=dtype)
    size = min(_BLOCK, g.size)
    ben, mal, tmp = (np.empty(size, dtype=dtype) for _ in range(3))
    for start in range(0, g.size, _BLOCK):
        s = score[start : start + _BLOCK]
        n = s.size
        _block_mean(ben_flats, benign[1], start, ben[:n], tmp)
        _block_mean(mal_flats, malicious[1], start, mal[:n], tmp)
        if not np.all(np.isfinite(ben[:n])):
            _raise_non_finite(benign[0], i, "benign_models")
        if not np.all(np.isfinite(mal[:n])):
            _raise_non_finite(malicious[0], i, "malicious_models")
        np.subtract(mal[:n], ben[:n], out=s)
        np.square(s, out=s)
        np.abs(g[start : start + n], out=tmp[:n])
        s *= tmp[:n]
    return score


def prune_count(rate: float, size: int) -> int:
    """``ceil(rate * size)`` with the rate taken as the decimal it prints as.

    Binary floating point makes ``0.1 * 30`` slightly above 3; reading the rate
    as its shortest decimal (``Fraction("0.1")``) gives the 3 a user expects.
    """
    rate = _check_rate(rate)
    if size < 0:
        raise ValueError(f"size must be non-negative, got {size}")
    return math.ceil(Fraction(repr(rate)) * size)


def _default_prunable(model: Model) -> list[bool]:
    return [np.ndim(a) >= 2 for a in model]


def unlearning_mask(
    benign_models: Sequence[Model],
    malicious_models: Sequence[Model],
    global_model: Model,
    rate: float,
    *,
    benign_weights: Sequence[float] | None = None,
    malicious_weights: Sequence[float] | None = None,
    prunable: Sequence[bool] | None = None,
) -> Mask:
    """Compute FedUP's unlearning mask (Algorithm 1).

    Each weight is scored by ``(avg_malicious - avg_benign)**2 * |global|``;
    in every prunable array the ``ceil(rate * size)`` highest scores are
    selected.

    Parameters
    ----------
    benign_models, malicious_models : Sequence[Model]
        The last round's models of the retained and of the flagged clients.
    global_model : Model
        The global model those clients started the round from.
    rate : float
        Pruning rate P in [0, 1].
    benign_weights, malicious_weights : Sequence[float] | None
        Example counts for weighted averages; equal weights when None.
    prunable : Sequence[bool] | None
        One flag per array; by default arrays with ``ndim >= 2`` (convolution
        and linear kernels) are prunable, biases and norm parameters are not.

    Returns
    -------
    list[NDArray[np.bool_]]
        One mask per array, shaped like it; True marks a weight to zero.

    Raises
    ------
    ValueError
        Rate outside [0, 1], empty group, mismatched layouts, bad weights,
        a ``prunable`` of the wrong length, or NaN/Inf in any input.
    """
    rate = _check_rate(rate)
    _check_finite(global_model, "global_model")
    if prunable is None:
        flags = _default_prunable(global_model)
    else:
        flags = [bool(p) for p in prunable]
        if len(flags) != len(global_model):
            raise ValueError(
                f"prunable has {len(flags)} flags for {len(global_model)} arrays"
            )
    benign = (
        benign_models,
        _group_weights(benign_models, benign_weights, global_model, "benign_models"),
    )
    malicious = (
        malicious_models,
        _group_weights(
            malicious_models, malicious_weights, global_model, "malicious_models"
        ),
    )
    masks: Mask = []
    unranked: list[int] = []
    for i, (glob, flag) in enumerate(zip(global_model, flags)):
        size = int(np.size(glob))
        k = prune_count(rate, size) if flag else 0
        if 0 < k < size:
            mask = _top_k_mask(_score_array(i, benign, malicious, glob), k)
        else:
            unranked.append(i)
            mask = np.full(size, k == size and size > 0, dtype=bool)
        masks.append(mask.reshape(np.shape(glob)))
    # Arrays that were not ranked still must not hold NaN/Inf.
    _check_group_finite(benign_models, unranked, "benign_models")
    _check_group_finite(malicious_models, unranked, "malicious_models")
    return masks


def _check_group_finite(models: Sequence[Model], indices: list[int], what: str) -> None:
    """Check arrays ``indices`` of every model with one sum per group.

    Biases and norm parameters are many small arrays: one concatenation per
    model avoids a Python call per array and model.
    """
    if not indices:
        return
    total: NDArray[np.float64] | None = None
    with np.errstate(over="ignore", invalid="ignore"):
        for model in models:
            flat = np.concatenate(
                [np.asarray(model[i], dtype=np.float64).reshape(-1) for i in indices]
            )
            total = flat if total is None else total + flat
    if total is not None and not np.all(np.isfinite(total)):
        for i in indices:
            for j, model in enumerate(models):
                _check_finite([model[i]], f"{what}[{j}]")


def apply_mask(
    model: Model, mask: Sequence[NDArray[np.bool_]]
) -> list[NDArray[np.generic]]:
    """Zero the masked weights of a model (Algorithm 2).

    Parameters
    ----------
    model : Model
        Arrays to prune (in FedUP: the average of the benign replies).
    mask : Sequence[NDArray[np.bool_]]
        One boolean array per model array, same shapes.

    Returns
    -------
    list[NDArray]
        New arrays, zero where the mask is True; ``model`` is left untouched.

    Raises
    ------
    ValueError
        When the mask's array count or shapes differ from the model's.
    """
    if len(mask) != len(model):
        raise ValueError(f"mask has {len(mask)} arrays for a model of {len(model)}")
    out: list[NDArray[np.generic]] = []
    for i, (arr, m) in enumerate(zip(model, mask)):
        arr = np.asarray(arr)
        m = np.asarray(m)
        if m.shape != arr.shape:
            raise ValueError(
                f"mask array {i} has shape {m.shape}, model array {i} has {arr.shape}"
            )
        if m.dtype != np.bool_:
            raise ValueError(f"mask array {i} has dtype {m.dtype}; masks must be bool")
        out.append(_zero_where(arr, m))
    return out


def _zero_where(arr: NDArray[Any], mask: NDArray[np.bool_]) -> NDArray[Any]:
    if arr.dtype.kind in "fiu" and (arr.dtype.kind != "f" or np.isfinite(arr).all()):
        # Multiplying by the kept flags is branch-free, several times faster than
        # np.where on a scattered mask; adding 0 turns -0.0 into 0.0.
        out: NDArray[Any] = np.asarray(np.multiply(arr, ~mask, dtype=arr.dtype))
        if arr.dtype.kind == "f":
            out += 0
        return out
    return np.where(mask, np.zeros((), dtype=arr.dtype), arr)


def pruning_rate(
    similarity: float,
    *,
    p_min: float = 0.01,
    p_max: float = 0.15,
    gamma: float = 5.0,
    sim_min: float = 0.5,
    sim_max: float = 1.0,
) -> float:
    """Adaptive pruning rate from the clients' similarity (Eq. 4 and 5).

    ``z = clip((similarity - sim_min) / (sim_max - sim_min), 0, 1)`` and
    ``P = (p_max - p_min) * z**gamma + p_min``.

    Parameters
    ----------
    similarity : float
        Mean cosine similarity of the benign clients' last layers.
    p_min, p_max : float
        Rates for ``z = 0`` and ``z = 1``; ``0 <= p_min <= p_max <= 1``.
    gamma : float
        Steepness (> 0); the paper uses 5.
    sim_min, sim_max : float
        Range of the similarity mapped onto [0, 1]; ``sim_min < sim_max``.

    Returns
    -------
    float
        The pruning rate P in ``[p_min, p_max]``.
    """
    if not math.isfinite(similarity):
        raise ValueError(f"similarity must be finite, got {similarity!r}")
    _check_rate(p_min, "p_min")
    _check_rate(p_max, "p_max")
    if p_min > p_max:
        raise ValueError(f"p_min ({p_min}) must not exceed p_max ({p_max})")
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be positive, got {gamma!r}")
    if not (math.isfinite(sim_min) and math.isfinite(sim_max) and sim_min < sim_max):
        raise ValueError(f"need sim_min < sim_max, got {sim_min} and {sim_max}")
    z = min(max((similarity - sim_min) / (sim_max - sim_min), 0.0), 1.0)
    return float((p_max - p_min) * z**gamma + p_min)


def _last_kernel_index(model: Model) -> int:
    for i in range(len(model) - 1, -1, -1):
        if np.ndim(model[i]) >= 2:
            return i
    raise ValueError("the model has no array with ndim >= 2 (no kernel layer)")


def last_layer_similarity(models: Sequence[Model]) -> float:
    """Mean pairwise cosine similarity of the models' last kernel.

    Parameters
    ----------
    models : Sequence[Model]
        At least two models with the same layout.

    Returns
    -------
    float
        Mean over all pairs of the cosine similarity of the last array with
        ``ndim >= 2``, flattened. A zero vector has similarity 0 to anything.
    """
    if len(models) < 2:
        raise ValueError(f"need at least two models, got {len(models)}")
    idx = _last_kernel_index(models[0])
    for k, model in enumerate(models):
        _check_same_layout(models[0], model, f"models[{k}]")
    vectors = np.stack(
        [np.asarray(m[idx], dtype=np.float64).reshape(-1) for m in models]
    )
    if not np.all(np.isfinite(vectors)):
        raise ValueError(f"array {idx} of some model contains NaN or Inf")
    norms = np.linalg.norm(vectors, axis=1)
    safe = np.where(norms > 0, norms, 1.0)
    unit = vectors / safe[:, None]
    gram = unit @ unit.T
    n = len(models)
    upper = gram[np.triu_indices(n, k=1)]
    return float(np.clip(upper.mean(), -1.0, 1.0))


def recovery_rounds_bound(rounds_from_scratch: int, rate: float) -> int:
    """Upper bound on recovery rounds, ``ceil(R* * P)`` (Eq. 6).

    Parameters
    ----------
    rounds_from_scratch : int
        R*, rounds a retrain from scratch needs (>= 0).
    rate : float
        Pruning rate P in [0, 1].
    """
    if int(rounds_from_scratch) != rounds_from_scratch or rounds_from_scratch < 0:
        raise ValueError(
            "rounds_from_scratch must be a non-negative integer, "
            f"got {rounds_from_scratch!r}"
        )
    return prune_count(rate, int(rounds_from_scratch))


def model_nbytes(model: Model) -> int:
    """Bytes held by a model's arrays."""
    return int(sum(np.asarray(a).nbytes for a in model))
