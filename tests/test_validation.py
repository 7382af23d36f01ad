"""Tests for fedup_flwr.validation: reply checks and dtype repair, no strategy."""

from __future__ import annotations

from typing import Any

import numpy as np
from conftest import make_reply
from flwr.app import ArrayRecord

from fedup_flwr.validation import (
    DEFAULT_MAX_ABS,
    DEFAULT_MAX_EXAMPLES,
    ask_detector,
    check_flagged,
    check_scores,
    restore_dtypes,
    unexpected_reply,
    validate_train_replies,
)


# ------------------------------------------------------------- restore_dtypes
def test_restore_dtypes_casts_back_and_rounds_integers() -> None:
    reference: list[np.ndarray] = [
        np.ones((2, 2), np.float32),
        np.array(7, np.int64),
        np.array([True, False]),
    ]
    aggregate = ArrayRecord(
        [
            np.full((2, 2), 0.5, np.float64),
            np.array(10.5, np.float64),  # FedAvg's mean of an int64 buffer
            np.array([0.75, 0.25], np.float64),
        ]
    )
    out = restore_dtypes(aggregate, reference)
    assert out is not None
    values = out.to_numpy_ndarrays()
    assert [v.dtype for v in values] == [np.float32, np.int64, np.bool_]
    np.testing.assert_array_equal(values[0], np.full((2, 2), 0.5, np.float32))
    assert int(values[1]) == 10  # np.rint rounds half to even
    assert values[2].tolist() == [True, False]
    assert list(out.keys()) == list(aggregate.keys())


def test_restore_dtypes_returns_input_when_nothing_to_do() -> None:
    reference: list[np.ndarray] = [np.ones(3, np.float32), np.array(1, np.int64)]
    matching = ArrayRecord([np.zeros(3, np.float32), np.array(2, np.int64)])
    assert restore_dtypes(matching, reference) is matching
    assert restore_dtypes(None, reference) is None
    # A different number of arrays is left to the next round's validation.
    shorter = ArrayRecord([np.zeros(3, np.float64)])
    assert restore_dtypes(shorter, reference) is shorter


# ------------------------------------------------------- validate_train_replies
def glob() -> list[np.ndarray]:
    return [np.ones((2, 3), np.float32), np.zeros(3, np.float32)]


def test_validate_train_replies_sorts_valid_failed_and_rejected() -> None:
    good = glob()
    replies = [
        make_reply(1, good, 10),
        make_reply(2, error="ClientApp raised"),
        make_reply(3, [good[0] * DEFAULT_MAX_ABS * 10, good[1]], 10),
        make_reply(4, good, DEFAULT_MAX_EXAMPLES + 1),
        make_reply(1, good, 10),  # a second reply from node 1
        make_reply(5, good, 10),  # excluded
        make_reply(6, good, 10),  # not sent a message
        make_reply(7, good, metrics={"num-examples": 7, "own": 1.0}),
    ]
    checked = validate_train_replies(
        replies,
        global_arrays=glob(),
        global_keys=list(ArrayRecord(glob()).keys()),
        excluded={5},
        sent_to={1, 2, 3, 4, 5, 7},
    )
    assert [(r.node_id, r.num_examples) for r in checked.valid] == [(1, 10), (7, 7)]
    # Node 7's extra metric is trimmed to the keys every valid reply has.
    assert list(checked.valid[1].message.content["metrics"].keys()) == ["num-examples"]
    assert [int(m.metadata.src_node_id) for m in checked.failed] == [2]
    reasons = dict(checked.rejected)
    assert [n for n, _ in checked.rejected] == [2, 3, 4, 1, 5, 6]
    assert "ClientApp failed" in reasons[2]
    assert "above 1e+08" in reasons[3]
    assert "exceeds the limit 1000000000" in reasons[4]
    assert reasons[1] == "a second reply from the same node this round"
    assert reasons[5] == "the node is excluded"
    assert "late or unsolicited" in reasons[6]


def test_unexpected_reply_accepts_anyone_without_a_sent_set() -> None:
    assert unexpected_reply(9) is None
    assert unexpected_reply(9, sent_to=None, answered={1}) is None
    assert unexpected_reply(9, sent_to={1}) is not None


# ------------------------------------------------------------ detector answers
class Detector:
    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def detect(self, server_round: int, replies: Any, global_arrays: Any) -> Any:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_check_flagged_and_ask_detector() -> None:
    replied = {1: glob(), 2: glob()}
    assert check_flagged({np.int64(2)}, replied) == {2}
    assert check_flagged(frozenset(), replied) == set()
    assert "not a set of node ids" in str(check_flagged([2], replied))
    assert "not a set of node ids" in str(check_flagged({"2"}, replied))
    assert check_flagged({3}, replied) == "flagged nodes [3] that did not reply"
    assert ask_detector(Detector({1}), 1, replied, glob()) == {1}
    answer = ask_detector(Detector(RuntimeError("bug")), 1, replied, glob())
    assert answer == "raised RuntimeError: bug"
    assert "not a set" in str(ask_detector(Detector(None), 1, replied, glob()))


def test_check_scores_and_ask_detector_on_malformed_scores() -> None:
    assert check_scores(None) == {} and check_scores({}) == {}
    assert check_scores({np.int64(2): np.float32(0.5), 3: 1}) == {2: 0.5, 3: 1.0}
    assert "not a mapping" in str(check_scores([1, 2]))
    assert "not a node id" in str(check_scores({True: 1.0}))
    assert "not a real number" in str(check_scores({1: "high"}))
    assert "too large" in str(check_scores({1: 10**400}))
    detector = Detector({1})
    detector.scores = {1: None}  # type: ignore[attr-defined]
    replied = {1: glob(), 2: glob()}
    assert "not a real number" in str(ask_detector(detector, 1, replied, glob()))
