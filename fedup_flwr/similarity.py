"""How similar the benign clients are: the SIM of the adaptive pruning rate.

Section IV-C of the paper maps the benign clients' mean pairwise cosine
similarity onto the pruning rate (Eq. 4-5). It measures "cosine similarity on
the last layer of the model" without saying of what: the weights or the
updates. This module offers both readings, each a module-level function with
the signature ``measure(models, global_model=None) -> float`` and a registry by
name (:func:`get_similarity`):

``weights``
    Cosine of the full last-layer weights (the paper-literal reading). The
    global model the clients all start from dominates these vectors, so the
    value stays near 1 whatever the data split.
``last_layer_updates``
    Cosine of the last-layer updates, local minus the global arrays sent that
    round: what each client's data changed.
``model_updates``
    Cosine of the whole model's updates (every floating-point array, flattened).
``kernel_updates``
    Cosine of the updates of every kernel (``ndim >= 2``, the arrays FedUP
    prunes), leaving out biases and normalisation buffers.

A *model* is a sequence of numpy arrays in a fixed order, as
``ArrayRecord.to_numpy_ndarrays()`` returns them. Nothing here imports Flower.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fedup_flwr.averaging import check_same_layout
from fedup_flwr.core import is_prunable, last_kernel_index

Model = Sequence[NDArray[Any]]
Similarity = Callable[[Sequence[Model], "Model | None"], float]

# Elements per block when accumulating the Gram matrix of whole-model updates:
# only one block of every client is ever held in float64.
_BLOCK = 1 << 18

__all__ = [
    "SIMILARITIES",
    "SIM_RANGES",
    "available_similarities",
    "get_similarity",
    "kernel_update_similarity",
    "last_layer_update_similarity",
    "mean_pairwise_cosine",
    "model_update_similarity",
    "similarity_range",
    "weights_similarity",
]


def _check_models(models: Sequence[Model]) -> None:
    if isinstance(models, np.ndarray) or not isinstance(models, Sequence):
        raise TypeError(
            "models must be a sequence of models (each a list of numpy arrays), "
            f"got {type(models).__name__}"
        )
    if len(models) < 2:
        raise ValueError(
            f"need at least two models to compare, got {len(models)}; "
            "the similarity of one client is undefined"
        )
    reference = models[0]
    if len(reference) == 0:
        raise ValueError("models[0] has no arrays")
    for k, model in enumerate(models[1:], start=1):
        check_same_layout(reference, model, f"models[{k}]", ref="models[0]")


def _require_global(
    models: Sequence[Model], global_model: Model | None, name: str
) -> Model:
    if global_model is None:
        raise ValueError(
            f"the {name!r} similarity compares updates: pass global_model, the "
            "arrays the server sent the clients that round"
        )
    check_same_layout(models[0], global_model, "global_model", ref="models[0]")
    return global_model


def _last_kernel_index(model: Model) -> int:
    index = last_kernel_index(model)
    if index is None:
        raise ValueError(
            "the model has no array with ndim >= 2, so it has no last layer "
            "kernel; use the 'model_updates' similarity"
        )
    return index


def _finite_rows(rows: NDArray[np.float64], what: str) -> NDArray[np.float64]:
    if not np.all(np.isfinite(rows)):
        bad = int(np.flatnonzero(~np.isfinite(rows).all(axis=1))[0])
        raise ValueError(f"{what} of models[{bad}] contains NaN or Inf")
    return rows


def _mean_upper(gram: NDArray[np.float64]) -> float:
    """Mean pairwise cosine from a Gram matrix of dot products."""
    norms = np.sqrt(np.maximum(np.diag(gram), 0.0))
    # A zero vector has no direction: its cosine to anything counts as 0.
    safe = np.where(norms > 0, norms, np.inf)
    cosine = gram / safe[:, None] / safe[None, :]
    n = gram.shape[0]
    upper = cosine[np.triu_indices(n, k=1)]
    return float(np.clip(upper.mean(), -1.0, 1.0))


def mean_pairwise_cosine(vectors: NDArray[Any]) -> float:
    """Mean cosine similarity over all pairs of rows.

    Parameters
    ----------
    vectors : numpy.ndarray
        ``(n, d)`` array, ``n >= 2``, one vector per client, finite values.

    Returns
    -------
    float
        Mean over the ``n * (n - 1) / 2`` pairs of ``u . v / (|u| |v|)``, in
        ``[-1, 1]``. A zero row has cosine 0 to every other row (it lowers the
        mean rather than raising an error: a client that did not move is not
        similar to the others).
    """
    rows = np.asarray(vectors)
    if rows.ndim != 2 or rows.shape[0] < 2:
        raise ValueError(
            f"vectors must be a 2-d array with at least two rows, got shape "
            f"{rows.shape}"
        )
    if not np.issubdtype(rows.dtype, np.number) or np.iscomplexobj(rows):
        raise TypeError(f"vectors must be real numbers, got dtype {rows.dtype}")
    rows64 = _finite_rows(rows.astype(np.float64, copy=False), "the vector")
    return _mean_upper(rows64 @ rows64.T)


def weights_similarity(
    models: Sequence[Model], global_model: Model | None = None
) -> float:
    """Mean pairwise cosine of the full last-layer weights (paper-literal).

    Parameters
    ----------
    models : sequence of models
        At least two client models with the same layout.
    global_model : model, optional
        Ignored (accepted so that every measure has the same signature).

    Returns
    -------
    float
        Mean pairwise cosine of the last array with ``ndim >= 2``, flattened.
    """
    _check_models(models)
    return _last_kernel_cosine(models, None, "array {}")


def last_layer_update_similarity(
    models: Sequence[Model], global_model: Model | None = None
) -> float:
    """Mean pairwise cosine of the last-layer updates.

    Parameters
    ----------
    models : sequence of models
        At least two client models with the same layout.
    global_model : model
        The arrays the server sent the clients that round (required).

    Returns
    -------
    float
        Mean pairwise cosine of ``model[i] - global_model[i]`` for the last
        array ``i`` with ``ndim >= 2``.
    """
    _check_models(models)
    start = _require_global(models, global_model, "last_layer_updates")
    return _last_kernel_cosine(models, start, "the update of array {}")


def model_update_similarity(
    models: Sequence[Model], global_model: Model | None = None
) -> float:
    """Mean pairwise cosine of the whole model's updates.

    Parameters
    ----------
    models : sequence of models
        At least two client models with the same layout.
    global_model : model
        The arrays the server sent the clients that round (required).

    Returns
    -------
    float
        Mean pairwise cosine of the updates of every floating-point array,
        flattened and concatenated. Integer arrays (counters such as
        BatchNorm's ``num_batches_tracked``) are not weights and are skipped.
        Float buffers are included: BatchNorm's running statistics move the
        same way on every client and can dominate the value (see
        :func:`kernel_update_similarity`).

    Notes
    -----
    The updates are formed in float32 one block at a time and only the
    ``n x n`` Gram matrix is accumulated in float64, so memory stays at one
    block per client whatever the model size.
    """
    _check_models(models)
    start = _require_global(models, global_model, "model_updates")
    chosen = [
        i
        for i, a in enumerate(start)
        if np.issubdtype(np.asarray(a).dtype, np.floating)
    ]
    if not chosen:
        raise ValueError("the model has no floating-point array to compare")
    return _mean_upper(_update_gram(models, start, chosen))


def kernel_update_similarity(
    models: Sequence[Model], global_model: Model | None = None
) -> float:
    """Mean pairwise cosine of the updates of every kernel (``ndim >= 2``).

    Parameters
    ----------
    models : sequence of models
        At least two client models with the same layout.
    global_model : model
        The arrays the server sent the clients that round (required).

    Returns
    -------
    float
        Mean pairwise cosine of the updates of the arrays with ``ndim >= 2``
        (convolution and linear kernels: the arrays FedUP prunes), flattened
        and concatenated. Biases, normalisation parameters and buffers are left
        out, so running statistics that drift alike on every client cannot
        dominate the value.
    """
    _check_models(models)
    start = _require_global(models, global_model, "kernel_updates")
    chosen = [i for i, a in enumerate(start) if is_prunable(a)]
    if not chosen:
        raise ValueError(
            "the model has no array with ndim >= 2; use the 'model_updates' similarity"
        )
    return _mean_upper(_update_gram(models, start, chosen))


def _last_kernel_cosine(
    models: Sequence[Model], start: Model | None, what: str
) -> float:
    """Mean pairwise cosine of the last kernel, minus ``start``'s when given."""
    idx = _last_kernel_index(models[0])
    rows = np.stack([np.asarray(m[idx], dtype=np.float64).reshape(-1) for m in models])
    if start is not None:
        rows -= np.asarray(start[idx], dtype=np.float64).reshape(-1)
    return _mean_upper(_gram(_finite_rows(rows, what.format(idx))))


def _update_gram(
    models: Sequence[Model], start: Model, indices: Sequence[int]
) -> NDArray[np.float64]:
    """Gram matrix of the clients' updates of the arrays ``indices``, blockwise."""
    n = len(models)
    gram = np.zeros((n, n), dtype=np.float64)
    for i in indices:
        base = np.asarray(start[i], dtype=np.float32).reshape(-1)
        flats = [np.asarray(m[i]).reshape(-1) for m in models]
        for lo in range(0, base.size, _BLOCK):
            hi = min(lo + _BLOCK, base.size)
            block = np.stack([f[lo:hi].astype(np.float32) - base[lo:hi] for f in flats])
            rows = _finite_rows(block.astype(np.float64), f"the update of array {i}")
            gram += rows @ rows.T
    return gram


def _gram(rows: NDArray[np.float64]) -> NDArray[np.float64]:
    return rows @ rows.T


SIMILARITIES: dict[str, Similarity] = {
    "weights": weights_similarity,
    "last_layer_updates": last_layer_update_similarity,
    "model_updates": model_update_similarity,
    "kernel_updates": kernel_update_similarity,
}
"""Similarity measures by name (see the module docstring)."""


SIM_RANGES: dict[str, tuple[float, float]] = {
    "weights": (0.5, 1.0),
    "last_layer_updates": (0.0, 1.0),
    "kernel_updates": (0.0, 1.0),
    "model_updates": (0.0, 1.0),
}
"""Default ``(sim_min, sim_max)`` of Eq. 4 for each measure.

``weights`` keeps the paper's [0.5, 1]. The update measures use their natural
range [0, 1] (a negative mean cosine maps to ``p_min``). These ranges are not
tuned: in our runs no range makes any measure give Dirichlet(0.5) half the IID
rate on both Fashion-MNIST and CIFAR-10 at the unlearning round (see
``docs/notes/similarity.md``).
"""


def similarity_range(name: str) -> tuple[float, float]:
    """The default ``(sim_min, sim_max)`` of Eq. 4 for the measure ``name``.

    Parameters
    ----------
    name : str
        One of :func:`available_similarities`.

    Raises
    ------
    ValueError
        For an unknown name.
    """
    get_similarity(name)  # raises on an unknown name
    return SIM_RANGES[name]


def available_similarities() -> tuple[str, ...]:
    """Names accepted by :func:`get_similarity`, sorted."""
    return tuple(sorted(SIMILARITIES))


def get_similarity(name: str) -> Similarity:
    """The similarity measure called ``name``.

    Parameters
    ----------
    name : str
        One of :func:`available_similarities`.

    Returns
    -------
    callable
        ``measure(models, global_model=None) -> float``.

    Raises
    ------
    ValueError
        For an unknown name.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    try:
        return SIMILARITIES[name]
    except KeyError:
        raise ValueError(
            f"unknown similarity {name!r}; use one of {list(available_similarities())}"
        ) from None
