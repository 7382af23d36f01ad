"""One detection run on Flower's Ray simulation engine.

:func:`run_detection` trains FedAvg with every client for ``rounds.train``
rounds (the malicious partitions attacking) under :class:`DetectingFedAvg`,
which shows each round to every detector of the registry except ``oracle``
(or to ``detection.detectors``), then scores and writes the run. A run whose
``detection.json`` exists is skipped (``resume=true``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from logging import WARNING
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Context, MetricRecord
from flwr.common.logger import log
from flwr.serverapp import Grid, ServerApp
from numpy.typing import NDArray
from omegaconf import DictConfig, OmegaConf

from fedup_flwr.detector import Detector
from fedup_flwr.detectors import available_detectors, get_detector
from simulations.detection.harness import DetectingFedAvg, DetectionLog
from simulations.detection.outputs import write_outputs
from simulations.detection.separability import GRAM_FILE, write_grams
from simulations.scenario import Scenario

__all__ = [
    "RESUME_KEYS",
    "build_detectors",
    "detector_names",
    "label_counts",
    "make_detection_server_app",
    "make_evaluator",
    "run_detection",
    "split_label",
]


def split_label(partition: str, alpha: float | None) -> str:
    """``"iid"``, ``"dirichlet1"``, ``"dirichlet0.5"``: a partition in run names.

    Registered as the OmegaConf resolver ``detection_split`` that
    ``conf/detection.yaml`` uses in ``name``, so that runs differing only in
    the Dirichlet α get different folders.

    Examples
    --------
    >>> split_label("dirichlet", 0.5), split_label("iid", None)
    ('dirichlet0.5', 'iid')
    """
    return partition if alpha is None else f"{partition}{float(alpha):g}"


OmegaConf.register_new_resolver("detection_split", split_label, replace=True)


def boost_label(boost: float | None) -> str:
    """``""`` unboosted, ``"-b2.5"`` with ``attack.boost=2.5``: in run names."""
    return "" if boost is None or float(boost) == 1.0 else f"-b{float(boost):g}"


OmegaConf.register_new_resolver("detection_boost", boost_label, replace=True)


def detector_names(cfg: DictConfig) -> list[str]:
    """The detectors a run measures.

    ``detection.detectors`` null: every registered detector except the oracle
    (which needs ground truth); otherwise that list, each name checked
    against the registry.

    Raises
    ------
    ValueError
        If a name is not registered (the message lists the registered ones)
        or is ``oracle``.
    """
    registered = available_detectors()
    chosen = cfg.detection.get("detectors")
    if chosen is None:
        return [n for n in registered if n != "oracle"]
    names = [str(n) for n in chosen]
    if "oracle" in names:
        raise ValueError("the oracle needs ground truth; it is not measured here")
    unknown = [n for n in names if n not in registered]
    if unknown:
        raise ValueError(
            f"detection.detectors: unknown {unknown}; registered: {registered}"
        )
    return names


def _build(name: str, kwargs: dict[str, Any], seed: int) -> Detector:
    """``get_detector(name, seed=seed, **kwargs)``, or without the seed.

    The seed is only a default: a detector that takes no ``seed`` (a
    deterministic one) is built without it.
    """
    if "seed" not in kwargs:
        try:
            return get_detector(name, seed=seed, **kwargs)
        except TypeError:
            pass  # no seed parameter (or bad kwargs: the call below says so)
    try:
        return get_detector(name, **kwargs)
    except TypeError as err:
        raise ValueError(f"detector {name!r} rejected {kwargs}: {err}") from err


def build_detectors(cfg: DictConfig) -> dict[str, Detector]:
    """Build each detector with ``detection.params.<name>`` (seeded).

    Every detector whose factory takes ``seed`` gets ``seed=cfg.seed`` unless
    its parameters set one.

    Raises
    ------
    ValueError
        If ``detection.params`` names a detector that is not measured, or a
        detector rejects its parameters.
    """
    raw = cfg.detection.get("params")
    params = {} if raw is None else OmegaConf.to_container(raw, resolve=True)
    if not isinstance(params, dict):
        raise ValueError(f"detection.params must be a mapping, got {params!r}")
    names = detector_names(cfg)
    extra = sorted(set(map(str, params)) - set(names))
    if extra:
        raise ValueError(f"detection.params: {extra} not measured (run: {names})")
    out: dict[str, Detector] = {}
    for name in names:
        kwargs = dict(params.get(name) or {})
        out[name] = _build(name, kwargs, int(cfg.seed))
    return out


def make_evaluator(
    scenario: Scenario,
) -> Callable[[list[NDArray[Any]]], dict[str, float]]:
    """The experiments' :class:`~simulations.evaluation.Evaluator`, or test accuracy.

    The Evaluator needs clients to forget; without them (``num_malicious=0``)
    only the test accuracy is measured (``attack_success`` is then 0).
    """
    from simulations.evaluation import Evaluator

    try:
        return Evaluator(scenario).evaluate
    except ValueError as err:
        log(WARNING, "Evaluator unavailable (%s); measuring test accuracy only", err)
    import torch

    from simulations.data import load_test
    from simulations.models import get_model, set_arrays
    from simulations.training import predict, resolve_device

    cfg = scenario.cfg
    model = get_model(cfg.model.name, cfg.dataset.name)
    test = load_test(
        cfg.dataset.name, fraction=float(cfg.test_fraction), seed=int(cfg.seed)
    )
    device = resolve_device("auto")

    def evaluate(arrays: list[NDArray[Any]]) -> dict[str, float]:
        set_arrays(model, arrays)
        preds: torch.Tensor = predict(model, test.x, device=device)
        accuracy = float((preds == test.y).float().mean())
        return {"test_acc": accuracy, "mal_acc": 0.0, "attack_success": 0.0}

    return evaluate


def _header(cfg: DictConfig, scenario: Scenario, command: str) -> dict[str, Any]:
    """The run's name, settings and command (the first fields of the JSON)."""
    boost = cfg.attack.get("boost")
    settings = {
        **scenario.setting(),
        # 1.0: not boosted, like runs recorded without the key (PlannedRun.matches)
        "boost": 1.0 if boost is None else float(boost),
        "fraction": float(cfg.fraction),
        "local_epochs": int(cfg.train.local_epochs),
        "rounds": int(cfg.rounds.train),
        "seed": int(cfg.seed),
    }
    return {"name": str(cfg.name), "settings": settings, "command": command}


def label_counts(scenario: Scenario) -> dict[int, list[int]]:
    """Each partition's training labels per class, as its client loads them.

    Ground truth for the separability measurement
    (:mod:`simulations.detection.separability`); no detector sees it.
    """
    from simulations.data import load_partition
    from simulations.dataset_specs import get_spec

    cfg = scenario.cfg
    classes = get_spec(str(cfg.dataset.name)).num_classes
    out = {}
    for partition in range(scenario.num_clients):
        data = load_partition(
            str(cfg.dataset.name),
            partition,
            scenario.num_clients,
            **scenario.partition_kwargs(),
        )
        counts = np.bincount(data.y.numpy(), minlength=classes)
        out[partition] = [int(c) for c in counts]
    return out


def make_detection_server_app(
    cfg: DictConfig,
    out_dir: Path,
    command: str,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> ServerApp:
    """Build the ServerApp: identify nodes, train ``rounds.train`` rounds, score.

    Parameters
    ----------
    cfg : DictConfig
        The composed ``conf/detection.yaml``.
    out_dir : Path
        Where ``detection.csv`` and ``detection.json`` are written.
    command : str
        The command that reproduces the run (stored in ``detection.json``).
    on_done : Callable or None
        Called with the content of ``detection.json``.
    """
    from simulations.models import get_arrays, get_model
    from simulations.server_app import identify_nodes

    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        del context
        import torch

        wall = time.perf_counter()
        scenario = Scenario(cfg)
        torch.manual_seed(int(cfg.seed))
        initial = ArrayRecord(get_arrays(get_model(cfg.model.name, cfg.dataset.name)))
        node_of = identify_nodes(grid, scenario.num_clients)
        record = DetectionLog()
        detectors = build_detectors(cfg)
        record_gram = bool(cfg.get("record_gram", False))
        strategy = DetectingFedAvg(detectors, record, record_gram=record_gram)
        evaluate_fn = None
        if bool(cfg.detection.evaluate):
            evaluator = make_evaluator(scenario)

            def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
                metrics = evaluator(arrays.to_numpy_ndarrays())
                record.evaluations[server_round] = metrics
                values: dict[str, int | float | list[int] | list[float]] = {
                    k: float(v) for k, v in metrics.items()
                }
                return MetricRecord(values)

            evaluate_fn = evaluate
        strategy.start(
            grid,
            initial,
            num_rounds=int(cfg.rounds.train),
            evaluate_fn=evaluate_fn,
            timeout=3600,
        )
        attacked = cfg.attack.name != "none"
        header = _header(cfg, scenario, command)
        header["wall_seconds"] = round(time.perf_counter() - wall, 1)
        result = write_outputs(
            out_dir,
            record,
            node_of,
            malicious=set(scenario.malicious_partitions) if attacked else set(),
            detectors=detectors,
            from_round=int(cfg.detection.from_round),
            header=header,
        )
        if record_gram:
            write_grams(
                out_dir,
                record.grams,
                node_of,
                label_counts(scenario),
                sorted(scenario.malicious_partitions) if attacked else [],
            )
        if on_done is not None:
            on_done(result)

    return app


RESUME_KEYS = (
    "dataset",
    "model",
    "partition",
    "attack",
    "num_clients",
    "num_malicious",
    "seed",
    "fraction",
    "test_fraction",
    "train",
    "detection",
)
"""Config keys that define a detection run (compared when resuming)."""


def _relevant(cfg: Any) -> dict[str, Any]:
    """The resolved :data:`RESUME_KEYS` of a config, and ``rounds.train``."""
    data = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(data, dict)
    out = {k: data.get(k) for k in RESUME_KEYS}
    out["rounds.train"] = (data.get("rounds") or {}).get("train")
    return out


def run_detection(cfg: DictConfig, out_dir: Path, command: str) -> dict[str, Any]:
    """Run one scenario into ``out_dir``; skip it when its results exist.

    Parameters
    ----------
    cfg : DictConfig
        The composed ``conf/detection.yaml``.
    out_dir : Path
        The run's folder.
    command : str
        The command that reproduces the run.

    Returns
    -------
    dict[str, Any]
        The content of ``detection.json`` (``run_seconds``: the whole run,
        Ray's start included; ``wall_seconds``: inside the ServerApp).

    Raises
    ------
    RuntimeError
        If ``resume`` finds results of a different config, or without the
        Gram matrices ``record_gram=true`` asks for, or the simulation ends
        without results.
    """
    from flwr.simulation import run_simulation

    from simulations.client_app import make_client_app
    from simulations.run import backend_config

    started = time.perf_counter()
    # Resolved once here: Ray's workers rebuild the config without this
    # module's resolver (``detection_split``).
    resolved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    if not isinstance(resolved, DictConfig):
        raise TypeError(f"the detection config must be a mapping, got {cfg!r}")
    cfg = resolved
    scenario = Scenario(cfg)  # validate before starting Ray
    build_detectors(cfg)
    done = out_dir / "detection.json"
    stored = out_dir / "config.yaml"
    if cfg.resume and done.exists():
        if stored.exists() and _relevant(OmegaConf.load(stored)) != _relevant(cfg):
            raise RuntimeError(
                f"{done} exists for a different config; use resume=false or "
                "another hydra.run.dir"
            )
        if bool(cfg.get("record_gram", False)) and not (out_dir / GRAM_FILE).exists():
            raise RuntimeError(
                f"{done} exists without {GRAM_FILE}: record_gram=true needs the "
                "run itself; use resume=false or another hydra.run.dir"
            )
        print(f"{done} exists; skipping (resume=true)")
        results: dict[str, Any] = json.loads(done.read_text())
        return results
    out_dir.mkdir(parents=True, exist_ok=True)
    stored.write_text(scenario.to_yaml())
    captured: dict[str, Any] = {}
    run_simulation(
        server_app=make_detection_server_app(cfg, out_dir, command, captured.update),
        client_app=make_client_app(cfg),
        num_supernodes=scenario.num_clients,
        backend_config=backend_config(cfg),
    )
    if not captured:
        raise RuntimeError(f"the simulation ended without results; see {out_dir}")
    captured["run_seconds"] = round(time.perf_counter() - started, 1)
    done.write_text(json.dumps(captured, indent=2) + "\n")
    for name, s in captured["detectors"].items():
        print(
            f"{name:20s} run P/R/F1={s['run_precision']}/{s['run_recall']}/"
            f"{s['run_f1']} first={s['first_correct_round']} "
            f"flagged-round rate={s['flagged_round_rate']}"
        )
    print(f"results: {out_dir.resolve()}", flush=True)
    return captured
