"""The ServerApp: find the nodes, then run the scenario's phases on them.

The phases (train, unlearn with each method, retrain baseline B, or the
online flow) are in :mod:`simulations.experiment`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from importlib.metadata import distributions
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from flwr.app import Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid, ServerApp
from omegaconf import DictConfig

from simulations.config import validate
from simulations.experiment import Experiment
from simulations.progress import quiet_logs
from simulations.scenario import Scenario, compose


def identify_nodes(grid: Grid, num_nodes: int, timeout: float = 600) -> dict[int, int]:
    """Map partition ids to node ids by asking every node (a QUERY message).

    Parameters
    ----------
    grid : Grid
        The ServerApp's Grid.
    num_nodes : int
        How many nodes to wait for.
    timeout : float (default: 600)
        Seconds to wait for the nodes, then for their replies.

    Returns
    -------
    dict[int, int]
        The node id of every partition id.

    Raises
    ------
    RuntimeError
        If fewer than ``num_nodes`` connect in time, or a node replies an error.
    """
    deadline = time.monotonic() + timeout
    nodes = list(grid.get_node_ids())
    said = time.monotonic()  # first word after 30 s: nodes may still be starting
    while len(nodes) < num_nodes:
        now = time.monotonic()
        if now > deadline:
            raise RuntimeError(
                f"only {len(nodes)} of {num_nodes} nodes connected; the federation "
                f"needs num_clients={num_nodes} nodes (`flwr run`: "
                f"--federation-config num-supernodes={num_nodes})"
            )
        if now - said >= 30:  # say what it waits for, not silence
            print(f"waiting for nodes: {len(nodes)} of {num_nodes}", flush=True)
            said = now
        time.sleep(0.5)
        nodes = list(grid.get_node_ids())
    queries = [
        Message(RecordDict(), dst_node_id=n, message_type=MessageType.QUERY)
        for n in nodes
    ]
    node_of: dict[int, int] = {}
    for reply in grid.send_and_receive(queries, timeout=timeout):
        if reply.has_error():
            raise RuntimeError(
                f"node {reply.metadata.src_node_id}: {reply.error.reason}"
            )
        pid = int(reply.content["info"]["partition-id"])  # type: ignore[arg-type]
        node_of[pid] = int(reply.metadata.src_node_id)
    return node_of


def project_dir() -> Path:
    """The checkout whose ``outputs/`` a ``flwr run`` writes into.

    ``flwr run`` runs a copy of the app in the SuperLink's folders, from the
    SuperLink's working directory; the project is where this code comes from
    when run from a checkout, else where ``fedup-flwr`` is installed from in
    editable mode (``make install``), else the working directory.

    Returns
    -------
    Path
        The project's folder.
    """
    here = Path(__file__).resolve().parents[1]
    if (here / ".git").exists():
        return here
    # Every copy of the metadata (a build's egg-info may shadow the install's).
    for dist in distributions(name="fedup-flwr"):
        try:
            url = json.loads(dist.read_text("direct_url.json") or "{}")
        except ValueError:
            continue
        link = str(url.get("url", ""))
        if url.get("dir_info", {}).get("editable") and link.startswith("file://"):
            return Path(unquote(urlparse(link).path))
    return Path.cwd()


def make_server_app(
    cfg: DictConfig | None = None,
    out_dir: Path | None = None,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> ServerApp:
    """Build the ServerApp for a composed config (None: from the run config).

    Parameters
    ----------
    cfg : DictConfig | None (default: None)
        The composed config; None composes it from the run config's
        ``overrides`` (``flwr run``).
    out_dir : Path | None (default: None)
        Where results go; None: ``output_dir``, or ``outputs/flwr-run/<name>``
        in the project (:func:`project_dir`), printed at the end.
    on_done : Callable | None (default: None)
        Called with the results when the run finishes.

    Returns
    -------
    ServerApp
        The app.
    """
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        config = cfg
        if config is None:  # `flwr run`: check everything before the first round
            config = compose(str(context.run_config.get("overrides", "")))
            quiet_logs(bool(config.get("verbose", False)))
            validate(config)
        scenario = Scenario(config)
        default = project_dir() / "outputs" / "flwr-run" / str(config.name)
        folder = out_dir or Path(config.get("output_dir") or default)
        folder.mkdir(parents=True, exist_ok=True)
        resume = bool(config.get("resume", False))
        experiment = Experiment(scenario, folder, resume=resume)
        node_of = identify_nodes(grid, scenario.num_clients)
        results = experiment.run(grid, node_of)
        if cfg is None:
            print(f"results: {folder.resolve()}", flush=True)
        if on_done is not None:
            on_done(results)

    return app


app = make_server_app()
