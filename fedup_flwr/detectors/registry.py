"""A registry of detector factories by name.

Examples
--------
>>> from fedup_flwr.detectors import get_detector
>>> get_detector("krum_score", f=2).f
2
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from fedup_flwr.detector import Detector, OracleDetector

__all__ = [
    "DetectorFactory",
    "UnknownDetectorError",
    "available_detectors",
    "get_detector",
    "register_detector",
]

DetectorFactory = Callable[..., Detector]
"""Anything that builds a detector from keyword arguments (e.g. its class)."""

_F = TypeVar("_F", bound=Callable[..., Detector])

_REGISTRY: dict[str, DetectorFactory] = {}


class UnknownDetectorError(KeyError, ValueError):
    """Raised by :func:`get_detector` for a name that is not registered.

    It is both a :class:`KeyError` and a :class:`ValueError`, so either
    ``except`` clause catches it.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@overload
def register_detector(name: str) -> Callable[[_F], _F]: ...


@overload
def register_detector(name: str, factory: _F) -> _F: ...


def register_detector(name: str, factory: _F | None = None) -> _F | Callable[[_F], _F]:
    """Register a detector factory under ``name``.

    Use it as a decorator, ``@register_detector("mine")`` on a class, or call
    it, ``register_detector("mine", MyDetector)``.

    Parameters
    ----------
    name : str
        The registry name; a non-empty string not registered yet.
    factory : Callable[..., Detector] or None (default: None)
        The factory (usually the class). ``None`` returns a decorator.

    Returns
    -------
    Callable
        ``factory`` itself (unchanged), or a decorator that registers and
        returns its argument.

    Raises
    ------
    ValueError
        If ``name`` is empty or already registered.
    TypeError
        If ``name`` is not a string or the factory is not callable.
    """
    if not isinstance(name, str):
        raise TypeError(f"detector name must be a str, got {name!r}")
    if not name.strip():
        raise ValueError("detector name must not be empty")

    def decorate(obj: _F) -> _F:
        if not callable(obj):
            raise TypeError(f"detector factory for {name!r} is not callable: {obj!r}")
        if name in _REGISTRY:
            raise ValueError(
                f"a detector named {name!r} is already registered ({_REGISTRY[name]!r})"
            )
        _REGISTRY[name] = obj
        return obj

    if factory is None:
        return decorate
    return decorate(factory)


def available_detectors() -> list[str]:
    """Return the registered detector names, sorted.

    Returns
    -------
    list[str]
        The names :func:`get_detector` accepts.
    """
    return sorted(_REGISTRY)


def get_detector(name: str, **kwargs: Any) -> Detector:
    """Build the detector registered under ``name``.

    Parameters
    ----------
    name : str
        A registered name (see :func:`available_detectors`).
    **kwargs : Any
        Passed to the factory (e.g. ``seed=1`` or ``f=2``).

    Returns
    -------
    Detector
        A new detector.

    Raises
    ------
    UnknownDetectorError
        (a :class:`KeyError` and a :class:`ValueError`) if ``name`` is not
        registered; the message lists the available names.
    """
    try:
        factory = _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownDetectorError(
            f"unknown detector {name!r}; available: "
            f"{', '.join(available_detectors()) or '(none)'}"
        ) from None
    return factory(**kwargs)


register_detector("oracle", OracleDetector)
