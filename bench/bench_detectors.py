"""Peak extra memory and time of every registered detector on ResNet-18 replies.

Random arrays with the shapes and dtypes of torchvision's
``resnet18(num_classes=10)`` state_dict (no weights are downloaded): a global
model and ``n`` replies (global plus small float32 noise). For each
registered detector except ``oracle`` and each ``n``, prints the time of one
``detect`` call and the peak memory it allocates beyond the replies and the
global model (:mod:`tracemalloc`, which numpy reports its buffers to), in MB
and in model copies. The replies themselves take ``n`` model copies
(about 47 MB each): 100 clients need about 4.7 GB.

Run: ``python bench/bench_detectors.py`` (or ``--clients 20 --repeats 3``).
"""

from __future__ import annotations

import argparse
import gc
import logging
import platform
import time
import tracemalloc

import numpy as np
import torchvision
from flwr.common.logger import FLOWER_LOGGER

from fedup_flwr.core import model_nbytes
from fedup_flwr.detectors import available_detectors, get_detector


def resnet18_arrays() -> list[np.ndarray]:
    """The state_dict arrays of a freshly initialised ResNet-18 (10 classes)."""
    model = torchvision.models.resnet18(num_classes=10)
    return [t.detach().cpu().numpy().copy() for t in model.state_dict().values()]


def make_replies(
    glob: list[np.ndarray], n: int, rng: np.random.Generator
) -> dict[int, list[np.ndarray]]:
    """``n`` replies: the global arrays plus float32 noise (integers copied)."""
    replies = {}
    for node in range(n):
        reply = []
        for a in glob:
            if a.dtype.kind == "f":
                noise = rng.standard_normal(a.shape, dtype=np.float32)
                noise *= 0.01
                noise += a
                reply.append(noise)
            else:
                reply.append(a.copy())
        replies[node] = reply
    return replies


def measure(
    name: str,
    replies: dict[int, list[np.ndarray]],
    glob: list[np.ndarray],
    repeats: int,
) -> tuple[float, int, int]:
    """Best time over ``repeats`` untraced calls, then one traced call.

    Returns the time (s), the traced peak (bytes) and the number flagged.
    """
    times = []
    flagged: set[int] = set()
    for _ in range(repeats):
        detector = get_detector(name)
        gc.collect()
        start = time.perf_counter()
        flagged = detector.detect(1, replies, glob)
        times.append(time.perf_counter() - start)
    detector = get_detector(name)
    gc.collect()
    tracemalloc.start()
    detector.detect(1, replies, glob)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return min(times), peak, len(flagged)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--detectors", nargs="+", default=None)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    FLOWER_LOGGER.setLevel(logging.WARNING)  # no per-round INFO lines

    names = args.detectors or [d for d in available_detectors() if d != "oracle"]
    glob = resnet18_arrays()
    copy = model_nbytes(glob)
    print(
        f"{platform.machine()}, numpy {np.__version__}; ResNet-18 arrays: "
        f"{len(glob)} arrays, {copy / 1e6:.1f} MB per model copy"
    )
    print(
        f"{'clients':>7} {'detector':<20} {'time_s':>8} {'peak_MB':>9} "
        f"{'copies':>7} {'flagged':>7}"
    )
    rng = np.random.default_rng(0)
    for n in args.clients:
        replies = make_replies(glob, n, rng)
        for name in names:
            seconds, peak, flagged = measure(name, replies, glob, args.repeats)
            print(
                f"{n:>7} {name:<20} {seconds:>8.2f} {peak / 1e6:>9.1f} "
                f"{peak / copy:>7.2f} {flagged:>7}",
                flush=True,
            )
        del replies
        gc.collect()


if __name__ == "__main__":
    main()
