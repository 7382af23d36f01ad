"""The unlearning methods a scenario can compare, parsed in one place.

A method name is one of :func:`available_methods`; ``fedup-<P>``: FedUP
with a fixed pruning rate ``P`` in [0, 1]; or ``fedup-adaptive``: FedUP with
the adaptive rate of Eq. 4-5 (the library's default before issue 11). Plain
``fedup`` uses ``unlearning.pruning_rate`` (:func:`parse_pruning_rate`), so one
run can compare the configured rate, the adaptive one and fixed rates from the
same trained model. Every part of the harness (config check, server, report)
reads a name through :func:`parse_method`, so the syntax and the rate checks
live only here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fedup_flwr.rates import DEFAULT_PRUNING_RATE

# kind -> what it does; the order is the order tables list methods in.
_KINDS: dict[str, str] = {
    "fedup": "FedUP: exclude the flagged clients and prune (adaptive or fixed P)",
    "natural": "natural forgetting: exclude the flagged clients, no pruning",
    "none": "no unlearning: the flagged clients keep training",
    "random_prune": "ablation: exclude and prune P random weights per layer",
    "malicious_magnitude": "ablation: exclude and prune the flagged clients' "
    "largest weights",
    "not": "NoT: exclude and negate the leading kernels",
    "federaser": "FedEraser: replay history without the flagged clients",
    "retrain": "baseline B: retrain from the initial model without them",
}
# Kinds that prune P weights per layer (FedUP's P, shared by the ablations so
# they prune the same counts).
_PRUNING = frozenset({"fedup", "random_prune", "malicious_magnitude"})
_FIXED_PREFIX = "fedup-"
ADAPTIVE = "fedup-adaptive"
FIXED_RATE_SYNTAX = "fedup-<P> (FedUP with a fixed rate P in [0, 1])"
RATE_WORDS = {"default": DEFAULT_PRUNING_RATE, "adaptive": None}
"""The words ``unlearning.pruning_rate`` accepts besides a number."""


def parse_pruning_rate(value: Any) -> float | None:
    """Read ``unlearning.pruning_rate``: the P FedUP is given.

    Parameters
    ----------
    value : str or float
        ``"default"`` (:data:`fedup_flwr.rates.DEFAULT_PRUNING_RATE`, a fixed
        P), ``"adaptive"`` (Eq. 4-5 on ``unlearning.similarity``) or a number
        in [0, 1] (a fixed P).

    Returns
    -------
    float or None
        The fixed P, or None for the adaptive rate (FedUP's ``pruning_rate``).

    Raises
    ------
    ValueError
        For anything else, null included (it meant "adaptive" before issue 11;
        write ``adaptive``).
    """
    if isinstance(value, str) and value in RATE_WORDS:
        return RATE_WORDS[value]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and 0.0 <= value <= 1.0:  # also rejects NaN
        return float(value)
    raise ValueError(
        f"unlearning.pruning_rate must be 'default' (P = {DEFAULT_PRUNING_RATE}), "
        f"'adaptive' (Eq. 4-5) or a number in [0, 1], got {value!r}"
        + ("; null no longer means adaptive: write 'adaptive'" if value is None else "")
    )


@dataclass(frozen=True)
class Method:
    """One unlearning method, parsed from its name.

    Attributes
    ----------
    name : str
        The name as written in the config (e.g. ``"fedup-0.05"``).
    kind : str
        The method it runs, one of :func:`available_methods`
        (``"fedup"`` for ``fedup-<P>``).
    rate : float | None
        The fixed pruning rate of ``fedup-<P>``; None for every other name.
    adaptive : bool
        True for ``fedup-adaptive`` (Eq. 4-5 whatever the config says).
    """

    name: str
    kind: str
    rate: float | None = None
    adaptive: bool = False

    def pruning_rate(self, configured: Any) -> float | None:
        """FedUP's ``pruning_rate`` for this method (None: adaptive).

        Parameters
        ----------
        configured : str or float
            ``unlearning.pruning_rate``, read by :func:`parse_pruning_rate`
            unless the name fixes the rate (``fedup-<P>``, ``fedup-adaptive``).
        """
        if self.adaptive:
            return None
        if self.rate is not None:
            return self.rate
        return parse_pruning_rate(configured)

    @property
    def prunes(self) -> bool:
        """Whether the method prunes P weights per layer (FedUP and ablations)."""
        return self.kind in _PRUNING

    @property
    def description(self) -> str:
        """One line saying what the method does."""
        return _KINDS[self.kind]


def available_methods() -> list[str]:
    """The method names (``fedup-<P>`` and ``fedup-adaptive`` are accepted as
    well, see the module doc)."""
    return list(_KINDS)


def parse_method(name: str) -> Method:
    """Parse a method name, checking a fixed rate once.

    Parameters
    ----------
    name : str
        A name from :func:`available_methods`, ``fedup-<P>`` or
        ``fedup-adaptive``.

    Returns
    -------
    Method
        The parsed method.

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    ValueError
        If the name is unknown, or ``P`` is not a number in [0, 1].
    """
    if not isinstance(name, str):
        raise TypeError(f"a method name must be a str, got {type(name).__name__}")
    if name in _KINDS:
        return Method(name, name)
    if name == ADAPTIVE:
        return Method(name, "fedup", adaptive=True)
    if name.startswith(_FIXED_PREFIX):
        text = name.removeprefix(_FIXED_PREFIX)
        try:
            rate = float(text)
        except ValueError:
            rate = float("nan")
        if not 0.0 <= rate <= 1.0:  # also rejects nan
            raise ValueError(
                f"unlearning method {name!r}: use {FIXED_RATE_SYNTAX}, got P={text!r}"
            )
        return Method(name, "fedup", rate)
    raise ValueError(
        f"unknown unlearning method {name!r}; use one of {available_methods()}, "
        f"{ADAPTIVE} or {FIXED_RATE_SYNTAX}"
    )
