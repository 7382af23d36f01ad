"""FedUP's maths as pure numpy functions (Algorithms 1-2, Eq. 4-6 of the paper).

A *model* is a sequence of numpy arrays in a fixed order, as
``ArrayRecord.to_numpy_ndarrays()`` returns them. Nothing here imports Flower.
This module holds the mask (Algorithms 1-2); weighted averages live in
:mod:`fedup_flwr.averaging` and rates (Eq. 4-6) in :mod:`fedup_flwr.rates`,
both re-exported here, so ``from fedup_flwr.core import X`` finds every name.

Conventions, defined once here:

* **Prunable** arrays are those with ``ndim >= 2`` (convolution and linear
  kernels): :func:`is_prunable`, :func:`prunable_flags`. Biases and
  normalisation parameters and buffers are never pruned.
* **Masks** are lists of boolean arrays shaped like the model's, where
  **True marks a weight to zero** (to prune). This is the opposite of
  ``torch.nn.utils.prune``, whose masks are *keep*-masks (1 = kept); convert
  with ``~mask`` before handing a FedUP mask to torch.
* **Top-k** selection (:func:`top_k_mask`) breaks ties by position: among
  equal scores, the entries with the lowest flat (C-order) index are chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fedup_flwr.averaging import (
    BLOCK,
    Model,
    block_mean,
    check_finite,
    float_dtype,
    group_weights,
    model_nbytes,
    weighted_average,
)
from fedup_flwr.rates import (
    adaptive_pruning_rate,
    check_rate,
    prune_count,
    pruning_rate,
    recovery_rounds_bound,
)

Mask = list[NDArray[np.bool_]]

__all__ = [
    "adaptive_pruning_rate",
    "apply_mask",
    "is_prunable",
    "last_kernel_index",
    "last_layer_similarity",
    "model_nbytes",
    "prunable_flags",
    "prune_count",
    "pruning_rate",
    "recovery_rounds_bound",
    "top_k_mask",
    "unlearning_mask",
    "weighted_average",
]


def _top_k_flat(score: NDArray[Any], k: int) -> NDArray[np.bool_]:
    """:func:`top_k_mask` on a flat score with ``0 < k < score.size``, unchecked."""
    n = score.size
    threshold = np.partition(score, n - k)[n - k]
    mask: NDArray[np.bool_] = score > threshold
    need = k - int(np.count_nonzero(mask))
    if need > 0:
        mask[np.flatnonzero(score == threshold)[:need]] = True
    return mask


def top_k_mask(score: NDArray[Any], k: int) -> NDArray[np.bool_]:
    """Boolean mask of the ``k`` largest entries of ``score``.

    Ties are broken by position: among entries equal to the k-th largest
    score, those with the lowest flat (C-order) index are selected, so the
    result is deterministic and does not depend on numpy's partition order.

    Parameters
    ----------
    score : NDArray
        Real-valued scores, any shape; NaN is not allowed.
    k : int
        How many entries to select, ``0 <= k <= score.size``.

    Returns
    -------
    NDArray[np.bool_]
        Shaped like ``score``; True at the ``k`` selected entries (the
        package's mask convention: True = to zero).

    Raises
    ------
    ValueError
        ``k`` is not an integer in ``[0, score.size]``, or ``score`` holds NaN.
    """
    score = np.asarray(score)
    if isinstance(k, bool) or int(k) != k or not 0 <= k <= score.size:
        raise ValueError(f"k must be an integer in [0, {score.size}], got {k!r}")
    if score.dtype.kind not in "biuf":
        raise ValueError(f"score must be real numbers, got dtype {score.dtype}")
    flat = score.reshape(-1)
    if flat.dtype.kind == "f" and np.isnan(flat).any():
        raise ValueError("score contains NaN; scores must be comparable")
    k = int(k)
    if k == 0 or k == flat.size:
        return np.full(score.shape, k > 0, dtype=bool)
    return _top_k_flat(flat, k).reshape(score.shape)


def _score_array(
    i: int,
    benign: tuple[Sequence[Model], NDArray[np.float64]],
    malicious: tuple[Sequence[Model], NDArray[np.float64]],
    glob: NDArray[Any],
) -> NDArray[np.floating]:
    """``(avg_malicious - avg_benign)**2 * |glob|`` for array ``i``, block by block.

    Only block-sized buffers hold the averages; the full-size result is the
    score itself. A block that overflows the models' dtype (finite values near
    its limit) is computed again in float64 and its scores capped at the
    dtype's largest value.
    """
    ben_flats = [np.asarray(m[i]).reshape(-1) for m in benign[0]]
    mal_flats = [np.asarray(m[i]).reshape(-1) for m in malicious[0]]
    g = np.asarray(glob).reshape(-1)
    dtype = np.result_type(float_dtype(ben_flats[0]), float_dtype(g))
    score = np.empty(g.size, dtype=dtype)
    size = min(BLOCK, g.size)
    bufs = tuple(np.empty(size, dtype=dtype) for _ in range(3))
    wide: tuple[NDArray[np.float64], ...] = ()
    for start in range(0, g.size, BLOCK):
        s = score[start : start + BLOCK]
        _score_block(ben_flats, mal_flats, (benign[1], malicious[1]), g, start, s, bufs)
        if np.all(np.isfinite(s)):
            continue
        # NaN/Inf in a model is the caller's error; otherwise the dtype overflowed.
        for models, what in (
            (benign[0], "benign_models"),
            (malicious[0], "malicious_models"),
        ):
            for k, model in enumerate(models):
                check_finite([model[i]], f"{what}[{k}]")
        wide = wide or tuple(np.empty(size, dtype=np.float64) for _ in range(4))
        out = wide[3][: s.size]
        _score_block(
            ben_flats, mal_flats, (benign[1], malicious[1]), g, start, out, wide[:3]
        )
        top = float(np.finfo(dtype).max)
        s[...] = np.nan_to_num(np.minimum(out, top), nan=top, posinf=top)
    return score


def _score_block(
    ben_flats: list[NDArray[Any]],
    mal_flats: list[NDArray[Any]],
    weights: tuple[NDArray[np.float64], NDArray[np.float64]],
    g: NDArray[Any],
    start: int,
    out: NDArray[np.floating],
    bufs: tuple[NDArray[np.floating], ...],
) -> None:
    """One block of :func:`_score_array`'s score, in ``out``'s dtype."""
    n = out.size
    ben, mal, tmp = (b[:n] for b in bufs)
    block_mean(ben_flats, weights[0], start, ben, tmp)
    block_mean(mal_flats, weights[1], start, mal, tmp)
    with np.errstate(over="ignore", invalid="ignore"):
        np.subtract(mal, ben, out=out)
        np.square(out, out=out)
        np.abs(g[start : start + n], out=tmp)
        out *= tmp


def is_prunable(array: Any) -> bool:
    """Whether FedUP may prune an array: kernels yes, biases and norms no.

    The one definition of "prunable" in the package: an array with
    ``ndim >= 2`` (convolution and linear kernels). Vectors and scalars
    (biases, BatchNorm parameters and buffers) are never pruned.

    Parameters
    ----------
    array : array_like
        One model array.

    Returns
    -------
    bool
        True when ``np.ndim(array) >= 2``.
    """
    return bool(np.ndim(array) >= 2)


def last_kernel_index(arrays: Sequence[Any]) -> int | None:
    """Return the index of the last prunable array (the last kernel).

    For a classifier ending in a ``Linear`` layer this is its kernel, of shape
    ``(num_classes, features)`` (PyTorch convention: one row per output).
    "Kernel" is :func:`is_prunable` (``ndim >= 2``).

    Parameters
    ----------
    arrays : Sequence[array_like]
        The model's arrays, in order.

    Returns
    -------
    int or None
        The index, or ``None`` when no array is a kernel.

    Examples
    --------
    >>> import numpy as np
    >>> arrays = [np.zeros((3, 2)), np.zeros(3), np.zeros((10, 3)), np.zeros(10)]
    >>> last_kernel_index(arrays)
    2
    """
    for index in range(len(arrays) - 1, -1, -1):
        if is_prunable(arrays[index]):
            return index
    return None


def prunable_flags(model: Model) -> list[bool]:
    """:func:`is_prunable` for every array of a model, in order.

    Parameters
    ----------
    model : Model
        The model's arrays.

    Returns
    -------
    list[bool]
        One flag per array.
    """
    return [is_prunable(a) for a in model]


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
    selected (:func:`top_k_mask`, ties to the lowest index).

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
        One mask per array, shaped like it; **True marks a weight to zero**
        (the opposite of ``torch.nn.utils.prune``'s keep-masks).

    Raises
    ------
    ValueError
        Rate outside [0, 1], empty group, mismatched layouts, bad weights,
        a ``prunable`` of the wrong length, or NaN/Inf in any input.
    """
    rate = check_rate(rate)
    check_finite(global_model, "global_model")
    if prunable is None:
        flags = prunable_flags(global_model)
    else:
        flags = [bool(p) for p in prunable]
        if len(flags) != len(global_model):
            raise ValueError(
                f"prunable has {len(flags)} flags for {len(global_model)} arrays"
            )
    benign = (
        benign_models,
        group_weights(benign_models, benign_weights, global_model, "benign_models"),
    )
    malicious = (
        malicious_models,
        group_weights(
            malicious_models, malicious_weights, global_model, "malicious_models"
        ),
    )
    masks: Mask = []
    unranked: list[int] = []
    for i, (glob, flag) in enumerate(zip(global_model, flags)):
        size = int(np.size(glob))
        k = prune_count(rate, size) if flag else 0
        if 0 < k < size:
            mask = _top_k_flat(_score_array(i, benign, malicious, glob), k)
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
                check_finite([model[i]], f"{what}[{j}]")


def apply_mask(
    model: Model, mask: Sequence[NDArray[np.bool_]]
) -> list[NDArray[np.generic]]:
    """Zero the masked weights of a model (Algorithm 2).

    Parameters
    ----------
    model : Model
        Arrays to prune (in FedUP: the average of the benign replies).
    mask : Sequence[NDArray[np.bool_]]
        One boolean array per model array, same shapes; **True = zero this
        weight** (as :func:`unlearning_mask` returns it). A
        ``torch.nn.utils.prune`` keep-mask must be inverted first (``~mask``).

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


def last_layer_similarity(models: Sequence[Model]) -> float:
    """Mean pairwise cosine similarity of the models' last kernel.

    The paper-literal similarity of Eq. 4: an alias of
    :func:`fedup_flwr.similarity.weights_similarity`, which documents it.

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
    # Imported here: fedup_flwr.similarity builds on this module's is_prunable.
    from fedup_flwr.similarity import weights_similarity

    return weights_similarity(models)
