"""The demo's verdict, read from the logs of the ServerApp and the SuperLink.

FedUP logs, per round, the nodes it trains on and those it excludes, and the
round in which it flags and unlearns nodes (``fedup_flwr.strategy``). From
those lines :func:`check_unlearning` checks that the flagged node was
unlearned and never trained again; :func:`check_restart` checks that a
restarted flagged SuperNode came back under the same node id while rounds
were still being configured (:func:`rounds_configured_after`, from the
SuperLink's log).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from simulations.deploy.common import UNLEARNING_ROUND, DemoError

NODE_LIST = r"\[([0-9, ]*)\]"
TRAIN_RE = re.compile(
    rf"FedUP: round (\d+): training on nodes {NODE_LIST}; excluded {NODE_LIST}"
)
FLAG_RE = re.compile(rf"FedUP: round (\d+): nodes {NODE_LIST} flagged and excluded")
UNLEARN_RE = re.compile(rf"FedUP: round (\d+): unlearned nodes {NODE_LIST}")
PUSH_RE = re.compile(r"\[Fleet\.PushMessages\] Push replies from node_id=(\d+)")
ACTIVATED_RE = re.compile(r"\[Fleet\.ActivateNode\] Activated node_id=(\d+)")


def node_ids(text: str) -> list[int]:
    """Parse the inside of a logged list of node ids, e.g. ``'1, 2'``."""
    return [int(part) for part in text.replace(",", " ").split()]


def was_flagged(lines: Sequence[str], node: int) -> bool:
    """Whether the ServerApp logged that ``node`` was flagged."""
    for line in lines:
        match = FLAG_RE.search(line)
        if match is not None and node in node_ids(match.group(2)):
            return True
    return False


@dataclass(frozen=True)
class TrainLine:
    """One ``FedUP: round N: training on nodes [..]; excluded [..]`` line."""

    index: int
    server_round: int
    nodes: list[int]
    excluded: list[int]


def parse_train_lines(lines: Sequence[str]) -> list[TrainLine]:
    """Every round's sampled and excluded nodes, in log order."""
    out = []
    for index, line in enumerate(lines):
        if m := TRAIN_RE.search(line):
            out.append(
                TrainLine(
                    index, int(m.group(1)), node_ids(m.group(2)), node_ids(m.group(3))
                )
            )
    return out


def check_unlearning(
    lines: Sequence[str], flagged: int, former_ids: Sequence[int] = ()
) -> tuple[int, list[str]]:
    """Check the ServerApp log: ``flagged`` unlearned, never trained again.

    Parameters
    ----------
    lines : Sequence[str]
        The ServerApp's log lines, in order.
    flagged : int
        Node id of the malicious client (partition 0) when it was flagged.
    former_ids : Sequence[int]
        Other node ids the same client had (after a restart): none of them
        may train after the flagging either.

    Returns
    -------
    tuple[int, list[str]]
        Index of the flagging line in ``lines`` and what was found.

    Raises
    ------
    DemoError
        If a check fails.
    """
    flags = [
        (i, int(m.group(1)), node_ids(m.group(2)))
        for i, line in enumerate(lines)
        if (m := FLAG_RE.search(line))
    ]
    unlearned = [
        (int(m.group(1)), node_ids(m.group(2)))
        for line in lines
        if (m := UNLEARN_RE.search(line))
    ]
    if [(r, n) for _, r, n in flags] != [(UNLEARNING_ROUND, [flagged])]:
        raise DemoError(
            f"expected node {flagged} to be flagged in round {UNLEARNING_ROUND}, "
            f"found flaggings {[(r, n) for _, r, n in flags]}"
        )
    if unlearned != [(UNLEARNING_ROUND, [flagged])]:
        raise DemoError(
            f"expected node {flagged} to be unlearned in round {UNLEARNING_ROUND}, "
            f"found unlearnings {unlearned}"
        )
    flag_index = flags[0][0]
    rounds = parse_train_lines(lines)
    before = [t for t in rounds if t.index < flag_index]
    after = [t for t in rounds if t.index > flag_index]
    if not before or flagged not in before[-1].nodes:
        raise DemoError(f"node {flagged} did not train in the round it was flagged in")
    if not after:
        raise DemoError("no round after the unlearning round: nothing to check")
    client_ids = {flagged, *former_ids}
    for t in after:
        again = client_ids & set(t.nodes)
        if again:
            raise DemoError(
                f"round {t.server_round}: the flagged client trained again as "
                f"node(s) {sorted(again)} (training on {t.nodes}, excluded "
                f"{t.excluded})"
            )
        if flagged not in t.excluded:
            raise DemoError(f"round {t.server_round}: node {flagged} not excluded")
    found = [
        f"round {UNLEARNING_ROUND}: node {flagged} flagged, excluded and unlearned",
        f"rounds {[t.server_round for t in after]} after it: trained on "
        f"{len(after[0].nodes)} nodes, node {flagged} excluded in each",
    ]
    return flag_index, found


def rounds_configured_after(
    superlink_log: str, rounds: Sequence[TrainLine], node: int
) -> list[TrainLine]:
    """The rounds the ServerApp configured after ``node`` last (re)activated.

    The SuperLink logs, in order, every node activation and every reply it
    receives. The replies of the rounds in ``rounds`` (the last rounds of the
    run, in order) are its last replies, one per node sampled; a round is
    configured only once every reply of the round before it arrived. So a
    round was configured after the activation if the last reply of the round
    before it comes after the activation in the SuperLink's log.

    Raises
    ------
    DemoError
        If the replies do not match the rounds (e.g. a failed reply).
    """
    events = [
        ("push" if m.re is PUSH_RE else "activate", int(m.group(1)))
        for line in superlink_log.splitlines()
        if (m := PUSH_RE.search(line) or ACTIVATED_RE.search(line))
    ]
    activations = [
        i for i, (kind, n) in enumerate(events) if kind == "activate" and n == node
    ]
    if not activations:
        raise DemoError(f"the SuperLink never activated node {node}")
    activated = activations[-1]
    pushes = [(i, n) for i, (kind, n) in enumerate(events) if kind == "push"]
    blocks: list[list[tuple[int, int]]] = []
    end = len(pushes)
    for t in reversed(rounds):
        block = pushes[end - len(t.nodes) : end]
        if end < len(t.nodes) or sorted(n for _, n in block) != sorted(t.nodes):
            raise DemoError(
                f"the SuperLink's replies do not match round {t.server_round} "
                f"(nodes {t.nodes}): cannot tell which rounds followed the restart"
            )
        blocks.insert(0, block)
        end -= len(t.nodes)
    return [
        t for t, previous in zip(rounds[1:], blocks[:-1]) if previous[-1][0] > activated
    ]


def check_restart(
    ids: tuple[int, int],
    lines: Sequence[str],
    flag_index: int,
    superlink_log: str,
    restarted_log: str,
) -> str:
    """The restarted flagged SuperNode: same id, and rounds ran while it was back.

    That it was excluded in every round after the flagging is checked by
    :func:`check_unlearning`.

    Parameters
    ----------
    ids : tuple[int, int]
        The flagged SuperNode's node id before and after its restart.
    lines : Sequence[str]
        The ServerApp's log lines, in order.
    flag_index : int
        Index of the flagging line in ``lines`` (from :func:`check_unlearning`).
    superlink_log : str
        The SuperLink's log.
    restarted_log : str
        The log of the restarted SuperNode.

    Returns
    -------
    str
        What was found.

    Raises
    ------
    DemoError
        If a check fails.
    """
    old_id, new_id = ids
    if new_id != old_id:
        raise DemoError(
            f"the restarted flagged SuperNode came back as node {new_id}, not "
            f"{old_id}: to FedUP it is a new client"
        )
    train_lines = parse_train_lines(lines)
    rounds = [t for t in train_lines if t.index > flag_index]
    flag_round = [t for t in train_lines if t.index < flag_index][-1:]
    later = rounds_configured_after(superlink_log, flag_round + rounds, new_id)
    if not later:
        raise DemoError(
            "no round was configured after the flagged SuperNode came back, so "
            "the restart proves nothing; raise rounds.max_recovery"
        )
    if "Receiving: train message" in restarted_log:
        raise DemoError("the restarted flagged SuperNode received a train message")
    return (
        f"restarted flagged SuperNode came back as the same node {new_id}; rounds "
        f"{[t.server_round for t in later]} were configured while it was back "
        f"online and it stayed excluded (no train message reached it)"
    )
