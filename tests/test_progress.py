"""One line per round: partitions by id, the round's unlearning step, quiet logs."""

from __future__ import annotations

import logging
from typing import Any

from conftest import FakeGrid, set_task_identity
from flwr.app import ConfigRecord, Message, MessageType, RecordDict

from fedup_flwr import UnlearningEvent
from simulations.progress import (
    WatchedGrid,
    compact,
    event_note,
    progress_line,
    quiet_logs,
)


def test_partitions_are_folded_into_runs() -> None:
    assert compact([4, 0, 2, 3]) == "0,2-4"
    assert compact([]) == "-"
    assert compact([7]) == "7"


def test_a_round_line_names_partitions_not_node_ids() -> None:
    pid_of = {3088157153029544725: 0, 3686540774868402528: 1}
    events = [
        UnlearningEvent(3, list(pid_of), "unlearned", rate=0.125),
        UnlearningEvent(2, list(pid_of), "refused", reason="2 flagged of 3 nodes"),
    ]
    line = progress_line(
        "unlearn", "fedup", 3, 5, {"test_acc": 0.631, "mal_acc": 0.4557}, 1.25,
        [2, 3, 4], event_note(events, 3, pid_of),
    )  # fmt: skip
    assert line.split() == [
        "unlearn", "fedup", "round", "3/5", "test", "0.6310", "malicious", "0.4557",
        "1.2s", "partitions", "2-4", "unlearned", "0-1", "(P=0.125)",
    ]  # fmt: skip
    refused = event_note(events, 2, pid_of)
    assert refused == "  REFUSED to unlearn 0-1 (2 flagged of 3 nodes)"
    assert "3088157153029544725" not in line + refused
    assert event_note(events, 4, pid_of) == ""


def test_the_watched_grid_remembers_who_replied_to_training() -> None:
    set_task_identity()  # Flower needs a run id to build messages
    grid = WatchedGrid(FakeGrid(nodes=[5, 6, 7]))

    def messages(kind: str, nodes: list[int]) -> list[Message]:
        content = RecordDict({"config": ConfigRecord({"server-round": 1})})
        return [Message(content, dst_node_id=n, message_type=kind) for n in nodes]

    grid.send_and_receive(messages(MessageType.TRAIN, [5, 7]), timeout=1)
    grid.send_and_receive(messages(MessageType.EVALUATE, []), timeout=1)
    assert sorted(grid.take_trained()) == [5, 7]
    assert grid.take_trained() == []  # read once per round
    assert list(grid.get_node_ids()) == [5, 6, 7]  # the rest is the grid's


def test_flower_info_logs_only_when_verbose(caplog: Any) -> None:
    logger = logging.getLogger("flwr")
    level = logger.level
    try:
        quiet_logs(False)
        assert not logger.isEnabledFor(logging.INFO)
        assert logger.isEnabledFor(logging.WARNING)  # FedUP's warnings still show
        noise = logger.makeRecord(
            "flwr", logging.WARNING, "", 0, "fraction_evaluate is set to 0.0.", (), None
        )
        assert not logger.filter(noise)
        quiet_logs(True)
        assert logger.isEnabledFor(logging.INFO) and logger.filter(noise)
    finally:
        quiet_logs(False)
        logger.setLevel(level)
