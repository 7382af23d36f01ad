"""Local training and evaluation loops on in-memory tensors.

Data are whole tensors (as :mod:`simulations.data` caches them), batched by
indexing rather than through a ``DataLoader``: no worker processes, no per-sample
Python overhead.
"""

from __future__ import annotations

import math
from typing import TypedDict

import torch
from torch import nn

__all__ = ["TrainResult", "accuracy", "predict", "resolve_device", "train"]


class TrainResult(TypedDict):
    """What :func:`train` returns.

    Attributes
    ----------
    loss : float
        Mean cross-entropy over the samples trained on in the last epoch
        (``nan`` when nothing was trained).
    num_examples : int
        Number of local samples ``N``, the weight of the update in federated
        averaging.
    """

    loss: float
    num_examples: int


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"`` into ``"cuda"`` when available, else ``"cpu"``.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"`` or anything :class:`torch.device` accepts.

    Returns
    -------
    torch.device
        The device to use.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    device: str | torch.device = "cpu",
    seed: int | None = None,
) -> TrainResult:
    """Train ``model`` in place with Adam and cross-entropy.

    Parameters
    ----------
    model : torch.nn.Module
        Model to train; it is moved to ``device`` and left there, in training
        mode.
    x : torch.Tensor
        Inputs ``(N, ...)``.
    y : torch.Tensor
        Integer class labels ``(N,)``.
    epochs : int
        Passes over the data (0 trains nothing).
    batch_size : int
        Mini-batch size; the last batch of an epoch may be smaller.
    lr : float
        Adam learning rate. A fresh optimiser is created on every call.
    device : str or torch.device
        Where to train; ``"auto"`` picks CUDA when available.
    seed : int or None
        Seeds the shuffling order (a private ``torch.Generator``); with the same
        seed, model and data, training is deterministic on the CPU. ``None``
        uses torch's global RNG.

    Returns
    -------
    TrainResult
        ``{"loss": ..., "num_examples": N}``. A final batch of a single sample
        is skipped when the model has BatchNorm layers (they cannot normalise
        one sample) and does not count towards ``loss``.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    _check_batch_size(batch_size)
    dev = resolve_device(device)
    model.to(dev)
    model.train()
    xs, ys = x.to(dev), y.to(dev, dtype=torch.long)
    n = xs.shape[0]
    generator = None
    if seed is not None:
        generator = torch.Generator()
        generator.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    criterion = nn.CrossEntropyLoss()
    skip_singletons = _has_batch_norm(model)
    loss = math.nan
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(dev)
        total = torch.zeros((), device=dev)
        seen = 0
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            if idx.numel() == 1 and skip_singletons:
                continue  # BatchNorm cannot normalise a single sample
            optimizer.zero_grad(set_to_none=True)
            batch_loss = criterion(model(xs[idx]), ys[idx])
            batch_loss.backward()
            optimizer.step()
            total += batch_loss.detach() * idx.numel()
            seen += idx.numel()
        loss = float(total) / seen if seen else math.nan
    return {"loss": loss, "num_examples": n}


def _has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@torch.no_grad()
def predict(
    model: nn.Module,
    x: torch.Tensor,
    *,
    batch_size: int = 512,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Predicted classes (arg-max of the logits).

    Parameters
    ----------
    model : torch.nn.Module
        Model; it is moved to ``device`` and put in evaluation mode.
    x : torch.Tensor
        Inputs ``(N, ...)``.
    batch_size : int
        Inference batch size.
    device : str or torch.device
        Where to run; ``"auto"`` picks CUDA when available.

    Returns
    -------
    torch.Tensor
        ``int64`` predictions ``(N,)`` on the CPU.
    """
    _check_batch_size(batch_size)
    dev = resolve_device(device)
    model.to(dev)
    model.eval()
    preds = [
        model(x[start : start + batch_size].to(dev)).argmax(dim=1).cpu()
        for start in range(0, x.shape[0], batch_size)
    ]
    if not preds:
        return torch.zeros(0, dtype=torch.long)
    return torch.cat(preds)


def accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int = 512,
    device: str | torch.device = "cpu",
) -> float:
    """Share of samples whose predicted class equals the label.

    Parameters
    ----------
    model : torch.nn.Module
        Model, evaluated as in :func:`predict`.
    x : torch.Tensor
        Inputs ``(N, ...)``.
    y : torch.Tensor
        Labels ``(N,)``.
    batch_size : int
        Inference batch size.
    device : str or torch.device
        Where to run; ``"auto"`` picks CUDA when available.

    Returns
    -------
    float
        In ``[0, 1]``; ``nan`` for an empty set.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
    if x.shape[0] == 0:
        return math.nan
    preds = predict(model, x, batch_size=batch_size, device=device)
    return float((preds == y.cpu()).float().mean())
