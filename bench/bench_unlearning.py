"""Time one FedUP unlearning step against the memory-bandwidth floor.

ResNet-18-sized model (torchvision ``resnet18(num_classes=10)`` arrays), 20
clients of which 9 are flagged. Prints the time of mask + apply, the time of one
pass that only sums the 20 client models, their ratio, and the peak memory the
step allocates beyond the stored client models, in model copies.

Run: ``make bench`` (or ``python bench/bench_unlearning.py --repeats 5``).
"""

from __future__ import annotations

import argparse
import platform
import time
import tracemalloc

import numpy as np
import torchvision

from fedup_flwr import apply_mask, unlearning_mask
from fedup_flwr.core import model_nbytes


def resnet18_arrays() -> list[np.ndarray]:
    model = torchvision.models.resnet18(num_classes=10)
    return [t.detach().cpu().numpy().copy() for t in model.state_dict().values()]


def sum_all(models: list[list[np.ndarray]]) -> list[np.ndarray]:
    out = [np.zeros_like(a) for a in models[0]]
    for m in models:
        for acc, a in zip(out, m):
            acc += a
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--flagged", type=int, default=9)
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    glob = resnet18_arrays()
    clients = [
        [
            a + rng.normal(scale=0.01, size=a.shape).astype(a.dtype)
            if a.dtype.kind == "f"
            else a.copy()
            for a in glob
        ]
        for _ in range(args.clients)
    ]
    benign, flagged = clients[args.flagged :], clients[: args.flagged]
    size_mb = model_nbytes(glob) / 2**20

    floor, step = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        sum_all(clients)
        floor.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        mask = unlearning_mask(benign, flagged, glob, args.rate)
        apply_mask(benign[0], mask)
        step.append(time.perf_counter() - t0)

    tracemalloc.start()
    mask = unlearning_mask(benign, flagged, glob, args.rate)
    apply_mask(benign[0], mask)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    best_floor, best_step = min(floor), min(step)
    print(
        f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
        f"numpy {np.__version__}"
    )
    print(
        f"model: resnet18(num_classes=10), {len(glob)} arrays, {size_mb:.1f} MB; "
        f"{args.clients} clients, {args.flagged} flagged, P={args.rate}"
    )
    print(
        f"sum of all client arrays (floor): {best_floor * 1e3:8.1f} ms (best of "
        f"{args.repeats})"
    )
    print(
        f"unlearning step (mask + apply):   {best_step * 1e3:8.1f} ms (best of "
        f"{args.repeats})"
    )
    print(f"ratio step / floor: {best_step / best_floor:.2f} (target <= 2)")
    print(
        f"peak extra memory: {peak / 2**20:.1f} MB = "
        f"{peak / model_nbytes(glob):.2f} model copies (target <= 3)"
    )


if __name__ == "__main__":
    main()
