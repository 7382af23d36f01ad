"""The schema of ``results.json``: one typed record per run and per method.

``RunResult`` is the one definition of the file's keys: the writer
(:func:`simulations.results.finish_run`) builds one and saves it, the report
and the tests load it. Loading is strict and explicit:

- a key that every file has carried since the first version (schema 1, files
  without a ``"schema"`` key) is required; a missing one is a ``ValueError``
  naming the file and the key;
- keys added later (schema 2: the adaptive rate's parameters per method) are
  optional and read as ``None`` ("not recorded") from older files;
- an unknown key is a ``ValueError`` too: a new key is added here, once, so
  that no writer or reader keeps a list of its own;
- a value of the wrong type is a ``ValueError`` naming the key.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

SCHEMA_VERSION = 4
"""4: adds ``adaptive``, ``sim_min`` and ``sim_max`` per method (issue 11);
3: adds ``status`` (run and method) and ``flagged``/``nodes`` per method;
2: adds ``p_min``, ``p_max``, ``gamma`` and ``similarity_measure`` per
method and the ``schema`` key itself; 1: files without a ``schema`` key."""

T = TypeVar("T")
# Keys written only when recorded, so older files round-trip as read.
_WRITTEN_WHEN_SET = ("status", "flagged", "nodes", "adaptive", "sim_min", "sim_max")


@dataclass
class MethodResult:
    """One method's outcome: round T (index 0) and the recovery rounds after it.

    Attributes
    ----------
    test_acc_after_unlearning, mal_acc_after_unlearning, forget_acc_after_unlearning
        Accuracies right after unlearning (round T, before any recovery).
    forget_acc_after, test_acc_after, mal_acc_after : float
        Accuracies once recovered (at R_rec, or the last round when never).
    forget_acc_curve, test_acc_curve, mal_acc_curve : list[float]
        Per round, index 0 = right after unlearning.
    recovery_rounds : int or None
        R_rec; None when not reached in ``rounds_run`` rounds.
    rounds_run : int
        Recovery rounds the method was run (its curves have one more point).
    mal_rounds_to_baseline : int or None
        Rounds until malicious accuracy is within 2 points of B's.
    pruning_rate : float or None
        P used (None: no unlearning event; 0 for exclusion without pruning).
    storage_mb, unlearn_seconds : float
        Memory held for the unlearning step and its wall time.
    similarity : float or None
        The benign clients' similarity under ``similarity_measure`` (also
        recorded with a fixed P, so a sweep can mark the adaptive choice).
    p_min, p_max, gamma : float or None
        The adaptive rate's parameters (Eq. 4-5) of this run, whether or not
        P was adaptive; None in files written before schema 2.
    similarity_measure : str or None
        Name of the similarity measure; None before schema 2.
    adaptive : bool or None
        Whether P came from Eq. 4-5 (False: a fixed P, or the fallback to the
        default when the similarity was undefined); None before schema 4.
    sim_min, sim_max : float or None
        The similarity range of Eq. 4 the run was given; None before schema 4.
    status : str or None
        What happened (:mod:`simulations.outcome`): ``unlearned``,
        ``refused`` (``recovery_rounds`` is then None), ``not_flagged``,
        ``kept`` (method ``none``) or ``retrained``; None before schema 3.
    flagged, nodes : int or None
        When refused: clients flagged, and the nodes the guard counted.
    """

    test_acc_after_unlearning: float
    mal_acc_after_unlearning: float
    forget_acc_after_unlearning: float
    forget_acc_after: float
    forget_acc_curve: list[float]
    test_acc_after: float
    mal_acc_after: float
    recovery_rounds: int | None
    rounds_run: int
    test_acc_curve: list[float]
    mal_acc_curve: list[float]
    mal_rounds_to_baseline: int | None
    pruning_rate: float | None
    storage_mb: float
    unlearn_seconds: float
    similarity: float | None
    p_min: float | None = None
    p_max: float | None = None
    gamma: float | None = None
    similarity_measure: str | None = None
    status: str | None = None
    flagged: int | None = None
    nodes: int | None = None
    adaptive: bool | None = None
    sim_min: float | None = None
    sim_max: float | None = None


@dataclass
class Refusal:
    """A detection the guard refused: its round and the flagged partitions."""

    round: int
    partitions: list[int]


@dataclass
class Detection:
    """What real (online) detectors did during a run.

    Attributes
    ----------
    unlearning_rounds : list[int]
        Rounds with an unlearning step.
    unlearned_partitions : list[list[int]]
        Partitions unlearned per step.
    refused : list[Refusal]
        Detections refused by the guard.
    first_unlearning_round : int or None
        First unlearning round (None: never).
    precision, recall : float or None
        Of the unlearned partitions against the attackers (None: undefined).
    """

    unlearning_rounds: list[int]
    unlearned_partitions: list[list[int]]
    refused: list[Refusal]
    first_unlearning_round: int | None
    precision: float | None
    recall: float | None


@dataclass
class RunResult:
    """One run's ``results.json``: its setting, the figures of its main method
    (``method``), every method's :class:`MethodResult`, baseline B and R*.

    Definitions of *before*, *after*, R_rec and R* are in
    :mod:`simulations.results`. Field order is the file's key order.
    """

    name: str
    dataset: str
    model: str
    partition: str
    alpha: float | None
    attack: str
    num_clients: int
    num_malicious: int
    method: str
    pruning_rate: float | None
    test_acc_before: float
    mal_acc_before: float
    forget_acc_before: float
    detector: str
    test_acc_after: float
    mal_acc_after: float
    baseline_test_acc: float | None
    baseline_mal_acc: float | None
    recovery_rounds: int | None
    rounds_from_scratch: int | None
    recovery_bound: int | None
    storage_mb: float
    unlearn_seconds: float
    seed: int
    unlearning_round: int
    tolerance: float
    fraction: float
    local_epochs: int
    methods: dict[str, MethodResult]
    wall_seconds: float
    commit: str
    hardware: str
    detection: Detection | None = None
    status: str | None = None  # the main method's (schema 3)
    schema: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict; ``detection`` only when there is one."""
        out = dataclasses.asdict(self)
        if out["detection"] is None:
            del out["detection"]  # as before schema 2: one-shot runs have none
        for record in (out, *out["methods"].values()):
            for key in _WRITTEN_WHEN_SET:
                if key in record and record[key] is None:
                    del record[key]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "results") -> RunResult:
        """Validate and convert a decoded ``results.json``.

        Parameters
        ----------
        data : dict
            The decoded file.
        source : str
            Where it came from, for error messages.

        Raises
        ------
        ValueError
            On a missing required key, an unknown key, a wrong type, or a
            schema newer than :data:`SCHEMA_VERSION`.
        """
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(data)}")
        data = dict(data)
        version = data.setdefault("schema", 1)
        if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
            raise ValueError(
                f"{source}: schema {version!r} is not one this code reads "
                f"(1..{SCHEMA_VERSION}); update fedup-flwr"
            )
        return _build(cls, data, source)

    def save(self, path: Path) -> None:
        """Write ``path`` (indented JSON, one trailing newline)."""
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> RunResult:
        """Read and validate a ``results.json`` (see :meth:`from_dict`)."""
        return cls.from_dict(json.loads(path.read_text()), source=str(path))

    @classmethod
    def summary_fields(cls) -> list[str]:
        """The scalar keys (everything but ``methods`` and ``detection``)."""
        nested = {"methods", "detection"}
        return [f.name for f in dataclasses.fields(cls) if f.name not in nested]


def _build(cls: type[T], data: Any, where: str) -> T:
    """Instantiate dataclass ``cls`` from ``data``, checking keys and types."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(
            f"{where}: unknown keys {unknown}; add them to "
            f"simulations.schema.{cls.__name__} first"
        )
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in data:
            optional = (
                f.default is not dataclasses.MISSING
                or f.default_factory is not dataclasses.MISSING
            )
            if not optional:
                raise ValueError(f"{where}: missing required key {name!r}")
            continue
        kwargs[name] = _convert(data[name], hints[name], f"{where}: {name}")
    return cls(**kwargs)


def _convert(value: Any, tp: Any, where: str) -> Any:
    """``value`` checked against annotation ``tp`` (ints accepted as floats)."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(value, inner, where)
    if origin is list:
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object, got {value!r}")
        _, item = typing.get_args(tp)
        return {str(k): _convert(v, item, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)  # type: ignore[arg-type]
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str) and isinstance(value, tp) and not isinstance(value, bool):
        return value
    if tp is bool and isinstance(value, bool):
        return value
    raise ValueError(f"{where}: expected {tp.__name__}, got {value!r}")


__all__ = [
    "SCHEMA_VERSION",
    "Detection",
    "MethodResult",
    "Refusal",
    "RunResult",
]
