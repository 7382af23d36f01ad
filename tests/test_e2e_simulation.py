"""End to end: FedUP inside a real Flower simulation on the Ray backend."""

from __future__ import annotations

import e2e_app
import numpy as np
import pytest
from flwr.simulation import run_simulation

from fedup_flwr import prune_count


@pytest.mark.slow
def test_fedup_in_ray_simulation() -> None:
    run_simulation(
        server_app=e2e_app.server,
        client_app=e2e_app.client,
        num_supernodes=e2e_app.NUM_NODES,
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {"num_cpus": 2, "include_dashboard": False},
        },
    )
    rec = e2e_app.RECORD
    node_of, sent, models = rec["node_of"], rec["sent"], rec["models"]
    flagged_in = {2: node_of[9], 3: node_of[8], 4: node_of[7], 5: node_of[6]}

    # A flagged node never trains again after the round it was flagged in.
    for rnd, node in flagged_in.items():
        later = [r for r, nodes in sent.items() if r > rnd and node in nodes]
        assert later == [], f"node {node} trained again in rounds {later}"
    assert set(sent[1]) == set(node_of.values())

    # Rate limit 3: detections in rounds 2..5 give unlearnings in rounds 2 and 5.
    events = [e for e in rec["events"] if e.status == "unlearned"]
    assert [e.server_round for e in events] == [2, 5]
    assert events[0].node_ids == [node_of[9]]
    assert events[1].node_ids == sorted(node_of[p] for p in (8, 7, 6))

    # After the unlearning round, exactly ceil(P * size) kernel weights are zero.
    kernel = models[2][0]
    assert int((kernel == 0).sum()) == prune_count(0.25, kernel.size)
    assert int((models[1][0] == 0).sum()) == 0

    # The NaN reply of round 3 did not stop the run or reach the model, and
    # start() ran rounds 7 and 8 so that 3 recovery rounds follow round 5.
    assert sorted(models) == list(range(0, 9))
    assert all(np.isfinite(a).all() for m in models.values() for a in m)
    assert rec["result"].train_metrics_clientapp[3]["fedup-rejected-replies"] == 1
