"""Shared test helpers: real Flower Messages built without a running SuperLink."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import (
    ArrayRecord,
    Error,
    Message,
    Metadata,
    MetricRecord,
    RecordDict,
)

_CANDIDATES = [
    Path(__file__).resolve().parents[1].parent / "shared" / "data",
    Path("/work/shared/data"),
]
if "FEDUP_DATA_DIR" not in os.environ:
    for _folder in _CANDIDATES:
        if _folder.is_dir():
            os.environ["FEDUP_DATA_DIR"] = str(_folder)
            break


def _metadata(src: int, dst: int, message_type: str = "train") -> Metadata:
    return Metadata(
        run_id=1,
        message_id=f"m{src}",
        src_node_id=src,
        dst_node_id=dst,
        reply_to_message_id="",
        group_id="",
        created_at=time.time(),
        ttl=3600.0,
        message_type=message_type,
    )


def make_reply(
    node_id: int,
    arrays: list[np.ndarray] | None = None,
    num_examples: Any = 10,
    *,
    metrics: dict[str, Any] | None = None,
    record: RecordDict | None = None,
    error: str | None = None,
    message_type: str = "train",
) -> Message:
    """A reply from ``node_id`` as the SuperLink would deliver it."""
    meta = _metadata(node_id, 0, message_type)
    if error is not None:
        return Message(Error(code=1, reason=error), metadata=meta)
    if record is None:
        m = {"num-examples": num_examples} if metrics is None else metrics
        content: dict[str, Any] = {"metrics": MetricRecord(m)}
        if arrays is not None:
            content["arrays"] = ArrayRecord(arrays)
        record = RecordDict(content)
    return Message(record, metadata=meta)


@pytest.fixture
def reply_factory() -> Any:
    return make_reply
