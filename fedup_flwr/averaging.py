"""Weighted averages of models, computed in cache-sized blocks, and their checks.

A *model* is a sequence of numpy arrays in a fixed order, as
``ArrayRecord.to_numpy_ndarrays()`` returns them. These are the averages both
sides of FedUP's score need (Algorithm 1) and the checks of the models that go
into them; :mod:`fedup_flwr.core` re-exports the public names. Nothing here
imports Flower.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

Model = Sequence[NDArray[np.generic]]

# Elements per block when accumulating averages: the temporary of a weighted
# add then stays in the CPU cache instead of doubling memory traffic.
BLOCK = 1 << 16

__all__ = ["BLOCK", "Model", "model_nbytes", "weighted_average"]


def check_same_layout(
    reference: Model, model: Model, what: str, *, ref: str = "the global model"
) -> None:
    """ValueError unless ``model`` has ``reference``'s array count and shapes.

    ``what`` and ``ref`` name ``model`` and ``reference`` in the message.
    """
    if len(model) != len(reference):
        raise ValueError(
            f"{what} has {len(model)} arrays but {ref} has {len(reference)}; "
            "every model must have the same arrays in the same order"
        )
    for i, (want, arr) in enumerate(zip(reference, model)):
        if np.shape(arr) != np.shape(want):
            raise ValueError(
                f"{what}: array {i} has shape {np.shape(arr)} but {ref}'s "
                f"array {i} has shape {np.shape(want)}"
            )


def check_finite(model: Model, what: str) -> None:
    """ValueError naming the array when ``model`` holds NaN or Inf."""
    for i, arr in enumerate(model):
        if not np.all(np.isfinite(arr)):
            raise ValueError(
                f"{what}: array {i} contains NaN or Inf; drop that model "
                "before unlearning"
            )


def check_weights(
    weights: Sequence[float] | None, count: int, what: str
) -> NDArray[np.float64]:
    """``count`` finite positive weights as float64 (all ones when None)."""
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


def group_weights(
    models: Sequence[Model],
    weights: Sequence[float] | None,
    reference: Model,
    what: str,
) -> NDArray[np.float64]:
    """Validate a group of models and return its normalised weights."""
    if len(models) == 0:
        raise ValueError(f"{what} is empty; at least one model is needed")
    for k, model in enumerate(models):
        check_same_layout(reference, model, f"{what}[{k}]")
    w = check_weights(weights, len(models), f"weights of {what}")
    normalised: NDArray[np.float64] = w / w.sum()
    return normalised


def block_mean(
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


def raise_non_finite(models: Sequence[Model], i: int, what: str) -> None:
    """Raise ValueError for array ``i``: the model holding NaN/Inf, or overflow."""
    # NaN and Inf propagate through sums, so a non-finite block sum is checked
    # once and the culprit looked up only then.
    for k, model in enumerate(models):
        check_finite([model[i]], f"{what}[{k}]")
    raise ValueError(
        f"{what}: averaging array {i} overflowed to Inf; the values are too large "
        "for their dtype"
    )


def float_dtype(arr: Any) -> np.dtype[Any]:
    """The floating dtype an average of ``arr`` is computed in."""
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
    w = group_weights(models, weights, ref, what)
    averages: list[NDArray[np.floating]] = []
    for i in range(len(ref)):
        flats = [np.asarray(model[i]).reshape(-1) for model in models]
        acc = np.empty(flats[0].size, dtype=float_dtype(flats[0]))
        tmp = np.empty(min(BLOCK, acc.size), dtype=acc.dtype)
        for start in range(0, acc.size, BLOCK):
            block = acc[start : start + BLOCK]
            block_mean(flats, w, start, block, tmp)
            if not np.all(np.isfinite(block)):
                raise_non_finite(models, i, what)
        averages.append(acc.reshape(np.shape(ref[i])))
    return averages


def model_nbytes(model: Model) -> int:
    """Bytes held by a model's arrays."""
    return int(sum(np.asarray(a).nbytes for a in model))
