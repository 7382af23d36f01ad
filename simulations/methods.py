"""The unlearning methods a scenario can compare, parsed in one place.

A method name is one of :func:`available_methods`, or ``fedup-<P>``: FedUP
with a fixed pruning rate ``P`` in [0, 1] instead of the adaptive one. Every
part of the harness (config check, server, report) reads a name through
:func:`parse_method`, so the syntax and the rate check live only here.
"""

from __future__ import annotations

from dataclasses import dataclass

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
FIXED_RATE_SYNTAX = "fedup-<P> (FedUP with a fixed rate P in [0, 1])"


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
        The fixed pruning rate of ``fedup-<P>``; None for every other name
        (FedUP then uses ``unlearning.pruning_rate``, null = adaptive).
    """

    name: str
    kind: str
    rate: float | None = None

    @property
    def prunes(self) -> bool:
        """Whether the method prunes P weights per layer (FedUP and ablations)."""
        return self.kind in _PRUNING

    @property
    def description(self) -> str:
        """One line saying what the method does."""
        return _KINDS[self.kind]


def available_methods() -> list[str]:
    """The method names (``fedup-<P>`` is accepted as well, see module doc)."""
    return list(_KINDS)


def parse_method(name: str) -> Method:
    """Parse a method name, checking a fixed rate once.

    Parameters
    ----------
    name : str
        A name from :func:`available_methods` or ``fedup-<P>``.

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
        f"unknown unlearning method {name!r}; use one of {available_methods()} "
        f"or {FIXED_RATE_SYNTAX}"
    )
