"""Poisoning attacks of malicious clients, and their success metrics.

Both attacks work on tensors as :mod:`simulations.data` returns them (images
``float32`` ``(N, C, H, W)``, normalised; labels ``int64`` ``(N,)``) and never
modify their inputs, which may be the process-wide cached partitions: they
return new tensors. Which samples are poisoned is drawn with
``numpy.random.default_rng(seed)``, so the same attack on the same data poisons
the same samples.

:func:`boost_update` is the model-replacement step a malicious client may add
after training on poisoned data (Bagdasaryan et al., "How to backdoor
federated learning", AISTATS 2020): it scales its update so that the update
survives averaging with the benign ones.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from simulations.dataset_specs import DATASETS, get_spec

__all__ = [
    "DEFAULT_FLIP",
    "POSITIONS",
    "Backdoor",
    "LabelFlip",
    "backdoor_success",
    "boost_update",
    "flip_success",
]

DEFAULT_FLIP: dict[str, tuple[int, int]] = {
    "cifar10": (5, 3),  # dog -> cat
    "fashion_mnist": (6, 0),  # shirt -> T-shirt/top
}
"""Default ``(source, target)`` classes of the label-flipping attack."""

POSITIONS = ("bottom-right", "bottom-left", "top-right", "top-left", "center")
"""Where :class:`Backdoor` can stamp its trigger."""

Labels = torch.Tensor | NDArray[Any]


def _check_class(value: int, name: str, num_classes: int) -> int:
    value = operator.index(value)
    if not 0 <= value < num_classes:
        raise ValueError(f"{name} must be a class in [0, {num_classes}), got {value}")
    return value


def _check_fraction(fraction: float) -> float:
    fraction = float(fraction)
    if not 0.0 < fraction <= 1.0:  # also rejects NaN
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return fraction


def _choose(candidates: NDArray[np.int64], fraction: float, seed: int) -> Any:
    """``round(fraction * len(candidates))`` of ``candidates``, seeded."""
    k = round(fraction * candidates.size)
    chosen = np.random.default_rng(seed).choice(candidates, size=k, replace=False)
    return torch.from_numpy(np.sort(chosen).astype(np.int64))


def _normalised_white(dataset: str) -> torch.Tensor:
    spec = get_spec(dataset)
    white = [(1.0 - m) / s for m, s in zip(spec.mean, spec.std)]
    return torch.tensor(white, dtype=torch.float32)


def _infer_white(channels: int) -> torch.Tensor:
    names = [name for name, spec in DATASETS.items() if spec.channels == channels]
    if len(names) != 1:
        raise ValueError(
            f"cannot infer the dataset of {channels}-channel images; pass "
            "Backdoor(dataset=...) or Backdoor(white=...)"
        )
    return _normalised_white(names[0])


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.ndim != 4 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"expected x of shape (N, C, H, W) and y of shape (N,), got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )


class LabelFlip:
    """Relabel a share of one class as another class.

    Parameters
    ----------
    source : int
        Class whose samples are relabelled.
    target : int
        Label they receive; must differ from ``source``.
    fraction : float
        Share of the ``source`` samples to relabel, in ``(0, 1]``; exactly
        ``round(fraction * n_source)`` samples are flipped.
    seed : int
        Seeds which ``source`` samples are flipped.
    num_classes : int
        Number of classes, to validate ``source`` and ``target``.

    Raises
    ------
    ValueError
        For classes out of range, equal classes or a fraction outside ``(0, 1]``.
    """

    def __init__(
        self,
        source: int,
        target: int,
        fraction: float = 1.0,
        seed: int = 0,
        *,
        num_classes: int = 10,
    ) -> None:
        self.source = _check_class(source, "source", num_classes)
        self.target = _check_class(target, "target", num_classes)
        if self.source == self.target:
            raise ValueError(f"source and target must differ, both are {source}")
        self.fraction = _check_fraction(fraction)
        self.seed = operator.index(seed)

    @classmethod
    def for_dataset(
        cls, dataset: str, fraction: float = 1.0, seed: int = 0
    ) -> LabelFlip:
        """The paper's flip for ``dataset`` (:data:`DEFAULT_FLIP`).

        Parameters
        ----------
        dataset : str
            ``"cifar10"`` (dog → cat) or ``"fashion_mnist"`` (shirt → T-shirt).
        fraction, seed
            As for the constructor.

        Returns
        -------
        LabelFlip
            The attack.
        """
        spec = get_spec(dataset)
        source, target = DEFAULT_FLIP[dataset]
        return cls(source, target, fraction, seed, num_classes=spec.num_classes)

    def apply(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Flip the labels.

        Parameters
        ----------
        x : torch.Tensor
            Images ``(N, C, H, W)``; returned unchanged (the same object).
        y : torch.Tensor
            Labels ``(N,)``; not modified.

        Returns
        -------
        x : torch.Tensor
            The input images.
        y : torch.Tensor
            A new label tensor with the chosen ``source`` labels set to ``target``.
        flipped : torch.Tensor
            Boolean mask ``(N,)`` of the relabelled samples.
        """
        _check_pair(x, y)
        candidates = np.flatnonzero(y.cpu().numpy() == self.source)
        chosen = _choose(candidates, self.fraction, self.seed).to(y.device)
        flipped = torch.zeros(y.shape[0], dtype=torch.bool, device=y.device)
        flipped[chosen] = True
        y2 = y.clone()
        y2[flipped] = self.target
        return x, y2, flipped


class Backdoor:
    """Stamp a white square trigger into images and relabel them.

    Parameters
    ----------
    target : int
        Label given to triggered images.
    size : int
        Side of the square trigger, in pixels.
    position : str
        One of :data:`POSITIONS`.
    fraction : float
        Share of the images to poison, in ``(0, 1]``; exactly
        ``round(fraction * N)`` images, drawn from all classes.
    seed : int
        Seeds which images are poisoned.
    dataset : str or None
        Images are normalised with this dataset's mean/std (as
        :mod:`simulations.data` returns them), so "white" is
        ``(1 - mean) / std`` per channel; ``target`` is validated against its
        number of classes. When ``None`` (and ``white`` is not given), the
        dataset is inferred when stamping from the number of channels: the
        only entry of :data:`~simulations.dataset_specs.DATASETS` with that many
        channels (3: CIFAR-10, 1: Fashion-MNIST).
    white : float or sequence of float or None
        Explicit trigger value(s), one or one per channel, e.g. ``1.0`` for
        raw pixels in ``[0, 1]``. Exclusive with ``dataset``.
    num_classes : int
        Number of classes when ``dataset`` is ``None``.

    Raises
    ------
    ValueError
        For a target out of range, a non-positive size, an unknown position,
        an unknown dataset, both ``dataset`` and ``white``, or a fraction
        outside ``(0, 1]``.
    """

    def __init__(
        self,
        target: int = 0,
        size: int = 3,
        position: str = "bottom-right",
        fraction: float = 0.1,
        seed: int = 0,
        *,
        dataset: str | None = None,
        white: float | Sequence[float] | None = None,
        num_classes: int = 10,
    ) -> None:
        if dataset is not None and white is not None:
            raise ValueError("give either dataset or white, not both")
        self.white: torch.Tensor | None = None
        if dataset is not None:
            spec = get_spec(dataset)
            num_classes = spec.num_classes
            self.white = _normalised_white(dataset)
        elif white is not None:
            self.white = torch.tensor(white, dtype=torch.float32).reshape(-1)
        self.target = _check_class(target, "target", num_classes)
        self.size = operator.index(size)
        if self.size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if position not in POSITIONS:
            raise ValueError(
                f"unknown position {position!r}; choose one of {list(POSITIONS)}"
            )
        self.position = position
        self.fraction = _check_fraction(fraction)
        self.seed = operator.index(seed)

    def _window(self, height: int, width: int) -> tuple[slice, slice]:
        s = self.size
        if s > height or s > width:
            raise ValueError(
                f"trigger of size {s} does not fit images of size {height}x{width}"
            )
        if self.position == "center":
            top, left = (height - s) // 2, (width - s) // 2
        else:
            vertical, horizontal = self.position.split("-")
            top = 0 if vertical == "top" else height - s
            left = 0 if horizontal == "left" else width - s
        return slice(top, top + s), slice(left, left + s)

    def stamp(self, x: torch.Tensor) -> torch.Tensor:
        """Return a copy of ``x`` with the trigger stamped into every image.

        Parameters
        ----------
        x : torch.Tensor
            Images ``(N, C, H, W)``.

        Returns
        -------
        torch.Tensor
            Stamped copy.
        """
        if x.ndim != 4:
            raise ValueError(f"expected x of shape (N, C, H, W), got {tuple(x.shape)}")
        return self._stamp_rows(x, torch.arange(x.shape[0], device=x.device))

    def _stamp_rows(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        white = self.white if self.white is not None else _infer_white(channels)
        if white.numel() not in (1, channels):
            raise ValueError(
                f"images have {channels} channel(s) but the trigger colour has "
                f"{white.numel()}"
            )
        rs, cs = self._window(x.shape[2], x.shape[3])
        out = x.clone()
        white = white.to(device=x.device, dtype=x.dtype).view(-1, 1, 1)
        out[rows.to(x.device), :, rs, cs] = white  # broadcasts to (k, C, s, s)
        return out

    def apply(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Poison ``fraction`` of the samples.

        Parameters
        ----------
        x : torch.Tensor
            Images ``(N, C, H, W)``; not modified.
        y : torch.Tensor
            Labels ``(N,)``; not modified.

        Returns
        -------
        x : torch.Tensor
            New images, the chosen ones stamped with the trigger.
        y : torch.Tensor
            New labels, the chosen ones set to ``target``.
        poisoned : torch.Tensor
            Boolean mask ``(N,)`` of the poisoned samples.
        """
        _check_pair(x, y)
        chosen = _choose(np.arange(y.shape[0]), self.fraction, self.seed)
        poisoned = torch.zeros(y.shape[0], dtype=torch.bool, device=y.device)
        poisoned[chosen.to(y.device)] = True
        x2 = self._stamp_rows(x, chosen)
        y2 = y.clone()
        y2[poisoned] = self.target
        return x2, y2, poisoned

    def triggered_test_set(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Test images for measuring the attack success rate.

        Parameters
        ----------
        x : torch.Tensor
            Test images ``(N, C, H, W)``; not modified.
        y : torch.Tensor
            Their true labels ``(N,)``.

        Returns
        -------
        x : torch.Tensor
            Every image whose true class is not ``target``, stamped.
        y : torch.Tensor
            Their true labels. Feed the model's predictions on ``x`` to
            :func:`backdoor_success`.
        """
        _check_pair(x, y)
        keep = y != self.target
        return self.stamp(x[keep.to(x.device)]), y[keep]


def boost_update(
    local: Sequence[NDArray[Any]], global_: Sequence[NDArray[Any]], factor: float
) -> list[NDArray[Any]]:
    """Scale an update: ``global + factor * (local - global)`` (model replacement).

    With ``factor = N / M`` (``N`` clients averaged, ``M`` of them malicious),
    the malicious updates survive FedAvg's averaging at their full size.

    Parameters
    ----------
    local : Sequence[numpy.ndarray]
        The arrays after local training (:func:`simulations.models.get_arrays`).
    global_ : Sequence[numpy.ndarray]
        The global arrays the round started from, same shapes and order.
    factor : float
        The boost, finite and ``>= 1``; ``1`` sends ``local`` as it is.

    Returns
    -------
    list[numpy.ndarray]
        One array per entry: floating arrays boosted (computed in at least
        float64, returned in the ``local`` array's dtype); the others (integer
        or boolean, e.g. BatchNorm's ``num_batches_tracked``) and every array
        when ``factor`` is 1 are the ``local`` objects themselves.

    Raises
    ------
    ValueError
        For a factor below 1, infinite or NaN, or arrays whose number or
        shapes differ.

    Examples
    --------
    >>> boost_update([np.array([2.0])], [np.array([1.0])], 2.5)
    [array([3.5])]
    """
    factor = float(factor)
    if not (math.isfinite(factor) and factor >= 1.0):
        raise ValueError(f"the boost must be a finite number >= 1, got {factor}")
    if len(local) != len(global_):
        raise ValueError(
            f"got {len(local)} local arrays but {len(global_)} global arrays"
        )
    out: list[NDArray[Any]] = []
    for i, (mine, start) in enumerate(zip(local, global_)):
        if np.shape(mine) != np.shape(start):
            raise ValueError(
                f"array {i}: local shape {np.shape(mine)} differs from the "
                f"global shape {np.shape(start)}"
            )
        if factor == 1.0 or not np.issubdtype(np.asarray(mine).dtype, np.floating):
            out.append(mine)  # counters and flags are not part of the update
            continue
        dtype = np.asarray(mine).dtype
        work = np.promote_types(dtype, np.float64)
        base = np.asarray(start, dtype=work)
        boosted = base + factor * (np.asarray(mine, dtype=work) - base)
        out.append(boosted.astype(dtype))
    return out


def _as_tensor(values: Labels) -> torch.Tensor:
    return torch.as_tensor(values).reshape(-1).cpu()


def flip_success(preds: Labels, y_true: Labels, source: int, target: int) -> float:
    """Share of the ``source``-class samples predicted as ``target``.

    Parameters
    ----------
    preds : torch.Tensor or numpy.ndarray
        Predicted classes ``(N,)``.
    y_true : torch.Tensor or numpy.ndarray
        True classes ``(N,)``.
    source, target : int
        The flipped classes.

    Returns
    -------
    float
        In ``[0, 1]``; ``nan`` when no sample is of class ``source``.
    """
    p, t = _as_tensor(preds), _as_tensor(y_true)
    if p.shape != t.shape:
        raise ValueError(f"preds {tuple(p.shape)} and y_true {tuple(t.shape)} differ")
    of_source = t == source
    n = int(of_source.sum())
    if n == 0:
        return math.nan
    return float((p[of_source] == target).sum()) / n


def backdoor_success(preds: Labels, target: int) -> float:
    """Share of triggered samples predicted as ``target``.

    Parameters
    ----------
    preds : torch.Tensor or numpy.ndarray
        Predicted classes on :meth:`Backdoor.triggered_test_set` images.
    target : int
        The backdoor's target class.

    Returns
    -------
    float
        In ``[0, 1]``; ``nan`` for no predictions.
    """
    p = _as_tensor(preds)
    if p.numel() == 0:
        return math.nan
    return float((p == target).sum()) / p.numel()
