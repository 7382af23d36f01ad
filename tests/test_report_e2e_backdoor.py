"""The end-to-end backdoor section (issue 14) on tiny fake runs."""

from __future__ import annotations

from typing import Any

from test_report import _method, _row_of, _run
from test_report_pruning import OLD_ADAPTIVE_P, _curves

from simulations.report import e2e_backdoor
from simulations.schema import Detection, Refusal, RunResult

NAME = "e2e-bd-foolsgold-cifar10-iid-10-4"
FLAT, TENTH = [0.05] * 7, [0.1] * 7
SETTING = {"dataset": "cifar10", "model": "lenet5", "attack": "backdoor",
           "num_malicious": 4, "partition": "iid", "seed": 42}  # fmt: skip


def _online(**kw: Any) -> RunResult:
    detection = Detection(
        unlearning_rounds=[6, 9], unlearned_partitions=[[0, 1, 2], [3, 7]],
        refused=[Refusal(round=4, partitions=[0, 5, 6, 7, 8])],
        first_unlearning_round=6, precision=0.8, recall=1.0,
    )  # fmt: skip
    methods = {
        "fedup": _method(**_curves(pruning_rate=0.01, adaptive=False,
                                   mal_acc_curve=[0.05, 0.06, 0.07, 0.065, *FLAT])),
        "natural": _method(**_curves(pruning_rate=0.0, adaptive=False,
                                     mal_acc_curve=[0.4, 0.3, 0.2, 0.2, *TENTH])),
    }  # fmt: skip
    values = {**SETTING, "name": NAME, "detector": "foolsgold",
              "detection": detection, "methods": methods}  # fmt: skip
    values.update(kw)
    return _run(**values)


def _oracle(name: str, **kw: Any) -> RunResult:
    methods = {
        # The old adaptive default is not the reference ...
        "fedup": _method(**_curves(pruning_rate=OLD_ADAPTIVE_P)),
        # ... FedUP at the default fixed P is.
        "fedup-0.01": _method(**_curves(pruning_rate=0.01, adaptive=False,
                                        mal_acc_curve=[0.04] * 11)),
    }  # fmt: skip
    return _run(**{**SETTING, "name": name, "detector": "oracle", "methods": methods,
                   **kw})  # fmt: skip


def test_a_row_per_detector_run_beside_the_oracle_of_its_setting() -> None:
    runs = {
        NAME: _online(),
        "sweep-bd-iid-10-4": _oracle("sweep-bd-iid-10-4"),
        "sweep-bd-iid-10-4-s1": _oracle("sweep-bd-iid-10-4-s1", seed=1),
    }
    lines = e2e_backdoor.e2e_backdoor(runs)
    cells = _row_of("\n".join(lines), f"`{NAME}` (oracle: `sweep-bd-iid-10-4`)")
    assert cells[1:6] == ["foolsgold", "6", "[0, 1, 2]; [3, 7]", "1", "1"]
    assert cells[6] == "6.0 / 6.5 / 5.0"  # FedUP + detector, rounds 1, 3, 10
    assert cells[7] == "30.0 / 20.0 / 10.0"  # natural + detector
    assert cells[8] == "4.0 / 4.0 / 4.0"  # FedUP + oracle at P = 0.01
    assert cells[11] == "yes"  # 6.5 <= 4.0 + 3


def test_no_oracle_of_the_same_setting_says_so() -> None:
    runs = {
        NAME: _online(),
        "other-fraction": _oracle("other-fraction", fraction=0.5),
    }
    line = e2e_backdoor.e2e_backdoor(runs)[2]
    assert "(no oracle run)" in line and line.endswith("| – | – |")


def test_no_e2e_run_reads_not_run() -> None:
    assert e2e_backdoor.e2e_backdoor({"sweep-bd-iid-10-4": _oracle("x")}) == [
        "Not run."
    ]


def test_a_run_that_never_unlearned_keeps_its_trained_backdoor() -> None:
    nothing = Detection(
        unlearning_rounds=[], unlearned_partitions=[], refused=[],
        first_unlearning_round=None, precision=None, recall=0.0,
    )  # fmt: skip
    one_point = {"pruning_rate": None, "adaptive": False,
                 "mal_acc_curve": [0.9], "test_acc_curve": [0.8]}  # fmt: skip
    methods = {"fedup": _method(**_curves(**one_point)),
               "natural": _method(**_curves(**one_point))}  # fmt: skip
    runs = {
        NAME: _online(
            detection=nothing, methods=methods, mal_acc_before=0.9, test_acc_before=0.8
        ),
        "sweep-bd-iid-10-4": _oracle("sweep-bd-iid-10-4"),
    }
    cells = _row_of("\n".join(e2e_backdoor.e2e_backdoor(runs)),
                    f"`{NAME}` (oracle: `sweep-bd-iid-10-4`)")  # fmt: skip
    assert cells[2:4] == ["never", "–"]
    assert cells[6:8] == ["never unlearned: 90.0 at the end", "–"]
    assert cells[9] == "never unlearned: 80.0 at the end"
    assert cells[11] == "no (nothing unlearned)"  # 90 against the oracle's 4
