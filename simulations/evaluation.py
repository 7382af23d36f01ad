"""Server-side evaluation of the global model: test and malicious accuracy.

The evaluation code, unlike the defence, knows which clients attack: it needs
their flipped samples (label flipping) to measure what the model still learns
from them.
"""

from __future__ import annotations

import torch

from simulations.attacks import backdoor_success, flip_success
from simulations.data import load_partition, load_test
from simulations.models import get_model, set_arrays
from simulations.scenario import Scenario
from simulations.training import predict, resolve_device


class Evaluator:
    """Measures test accuracy and the attack's effect on a global model.

    Parameters
    ----------
    scenario : Scenario
        The scenario; its malicious partitions and attack define what
        "malicious accuracy" measures.

    Notes
    -----
    ``mal_acc``: label flipping, the share of the malicious clients' flipped
    samples predicted as the flipped label; backdoor, the share of triggered
    test images (true class not the target) predicted as the target; no attack,
    accuracy on the forgotten clients' data is measured elsewhere (0 here).
    ``attack_success`` (label flipping only): clean test samples of the source
    class predicted as the target.
    """

    def __init__(self, scenario: Scenario) -> None:
        cfg = scenario.cfg
        self.scenario = scenario
        self.device = resolve_device("auto")
        self.model = get_model(cfg.model.name, cfg.dataset.name)
        test = load_test(
            cfg.dataset.name, fraction=float(cfg.test_fraction), seed=int(cfg.seed)
        )
        self.x_test, self.y_test = test.x, test.y
        # The flagged clients' own training data (as they hold it, poisoned
        # or not): "accuracy on the forgotten data".
        forgotten = [
            load_partition(
                cfg.dataset.name,
                pid,
                scenario.num_clients,
                **scenario.partition_kwargs(),
            )
            for pid in scenario.flagged_partitions
        ]
        self.x_forget = torch.cat([f.x for f in forgotten]) if forgotten else None
        self.y_forget = torch.cat([f.y for f in forgotten]) if forgotten else None
        self.x_mal: torch.Tensor | None = None
        self.attack = str(cfg.attack.name)
        if self.attack == "label_flip":
            flip = scenario.label_flip()
            self.source, self.target = flip.source, flip.target
            xs, ys = [], []
            for pid in scenario.malicious_partitions:
                part = load_partition(
                    cfg.dataset.name,
                    pid,
                    scenario.num_clients,
                    **scenario.partition_kwargs(),
                )
                _, _, flipped = flip.apply(part.x, part.y)
                xs.append(part.x[flipped])
                ys.append(part.y[flipped])
            if xs:
                self.x_mal = torch.cat(xs)
        elif self.attack == "backdoor":
            backdoor = scenario.backdoor()
            self.target = backdoor.target
            self.x_mal, _ = backdoor.triggered_test_set(self.x_test, self.y_test)

    def evaluate(self, arrays: list) -> dict[str, float]:  # type: ignore[type-arg]
        """Test accuracy, malicious accuracy and attack success of ``arrays``."""
        set_arrays(self.model, arrays)
        preds = predict(self.model, self.x_test, device=self.device)
        out = {"test_acc": float((preds == self.y_test).float().mean())}
        out["mal_acc"] = 0.0
        out["attack_success"] = 0.0
        out["forget_acc"] = 0.0
        if self.x_forget is not None and self.y_forget is not None:
            forget_preds = predict(self.model, self.x_forget, device=self.device)
            out["forget_acc"] = float((forget_preds == self.y_forget).float().mean())
        if self.attack == "label_flip":
            out["attack_success"] = flip_success(
                preds, self.y_test, self.source, self.target
            )
            if self.x_mal is not None and len(self.x_mal):
                mal_preds = predict(self.model, self.x_mal, device=self.device)
                out["mal_acc"] = float((mal_preds == self.target).float().mean())
        elif self.attack == "backdoor" and self.x_mal is not None:
            mal_preds = predict(self.model, self.x_mal, device=self.device)
            out["mal_acc"] = backdoor_success(mal_preds, self.target)
            out["attack_success"] = out["mal_acc"]
        return out
