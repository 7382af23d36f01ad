"""simulations.data: Flower Datasets partitions decoded once into tensors."""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from simulations import dataset_specs
from simulations.data import load_partition, load_test
from simulations.dataset_specs import DATASETS

torch.set_num_threads(1)

_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DS = "fashion_mnist"
FRACTION = 0.05  # 300 training images per class, 3000 in all
PER_CLASS = round(FRACTION * 6000)


@pytest.fixture(autouse=True)
def data_dir(monkeypatch: pytest.MonkeyPatch) -> Path:
    root = Path(os.environ.get("FEDUP_DATA_DIR") or _SHARED)
    wanted = [root / DS / name for name in ("train.parquet", "test.parquet")]
    missing = [str(p) for p in wanted if not p.is_file()]
    if missing:
        pytest.fail(
            f"Fashion-MNIST parquet files missing: {missing}. Set FEDUP_DATA_DIR to "
            "the directory holding fashion_mnist/{train,test}.parquet (see "
            "simulations/data_source.py)."
        )
    monkeypatch.setenv("FEDUP_DATA_DIR", str(root))
    return root


def _rows(x: torch.Tensor) -> Counter[bytes]:
    return Counter(row.numpy().tobytes() for row in x.reshape(x.shape[0], -1))


def test_partition_shapes_dtypes_and_normalisation() -> None:
    part = load_partition(DS, 0, 4, fraction=FRACTION)
    spec = DATASETS[DS]
    assert isinstance(part, torch.utils.data.TensorDataset)
    assert part.x.shape == (10 * PER_CLASS // 4, 1, 28, 28)
    assert part.x.dtype == torch.float32 and part.y.dtype == torch.int64
    assert part.x.is_contiguous()
    assert len(part) == part.y.shape[0]
    lo, hi = -spec.mean[0] / spec.std[0], (1 - spec.mean[0]) / spec.std[0]
    assert part.x.min() >= lo - 1e-5 and part.x.max() <= hi + 1e-5
    assert abs(part.x.mean().item()) < 0.15
    assert 0.85 < part.x.std().item() < 1.15
    assert set(part.y.tolist()) <= set(range(10))
    img, label = part[3]
    assert img.shape == (1, 28, 28) and label.dtype == torch.int64


def test_iid_partitions_are_disjoint_and_cover_the_subset() -> None:
    whole = load_partition(DS, 0, 1, fraction=FRACTION)
    parts = [load_partition(DS, i, 4, fraction=FRACTION) for i in range(4)]
    assert sum(len(p) for p in parts) == len(whole) == 10 * PER_CLASS
    union: Counter[bytes] = Counter()
    for p in parts:
        union += _rows(p.x)
    assert union == _rows(whole.x)
    assert torch.equal(
        torch.bincount(torch.cat([p.y for p in parts]), minlength=10),
        torch.bincount(whole.y, minlength=10),
    )
    # IID: every partition sees every class in roughly equal shares.
    for p in parts:
        share = torch.bincount(p.y, minlength=10).float() / len(p)
        assert share.min() > 0.04 and share.max() < 0.17


def test_dirichlet_partitions_are_label_skewed() -> None:
    kwargs = {"partitioner": "dirichlet", "alpha": 0.2, "fraction": FRACTION}
    parts = [load_partition(DS, i, 4, **kwargs) for i in range(4)]  # type: ignore[arg-type]
    whole = load_partition(DS, 0, 1, fraction=FRACTION)
    assert sum(len(p) for p in parts) == len(whole)
    union: Counter[bytes] = Counter()
    for p in parts:
        union += _rows(p.x)
    assert union == _rows(whole.x)
    shares = [torch.bincount(p.y, minlength=10).float() / len(p) for p in parts]
    # Balanced data would give 0.1 per class; alpha = 0.2 concentrates labels.
    assert max(s.max().item() for s in shares) > 0.3
    assert any((s == 0).any() for s in shares)
    # Seeded: a different seed draws a different split.
    other = load_partition(DS, 0, 4, seed=7, **kwargs)  # type: ignore[arg-type]
    assert not torch.equal(
        torch.bincount(other.y, minlength=10), torch.bincount(parts[0].y, minlength=10)
    )


def test_fraction_is_stratified_and_seeded() -> None:
    whole = load_partition(DS, 0, 1, fraction=FRACTION)
    assert torch.bincount(whole.y, minlength=10).tolist() == [PER_CLASS] * 10
    test = load_test(DS, fraction=0.1)
    assert torch.bincount(test.y, minlength=10).tolist() == [100] * 10
    other = load_test(DS, fraction=0.1, seed=1)
    assert _rows(other.x) != _rows(test.x)


def test_full_test_set() -> None:
    test = load_test(DS)
    assert test.x.shape == (10_000, 1, 28, 28)
    assert torch.bincount(test.y).tolist() == [1000] * 10
    # Original order (PROVENANCE.md: first test labels).
    assert test.y[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]


def test_cached_objects_are_reused() -> None:
    a = load_partition(DS, 1, 4, fraction=FRACTION)
    b = load_partition(DS, 1, 4, fraction=FRACTION)
    assert a is b
    assert load_test(DS, fraction=0.1) is load_test(DS, fraction=0.1)
    assert load_test(DS) is load_test(DS, seed=5)  # the full set ignores the seed
    # Dirichlet-only knobs do not split the IID cache.
    assert load_partition(DS, 1, 4, fraction=FRACTION, alpha=5.0) is a


def test_missing_files_raise_clear_error_without_network(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FEDUP_DATA_DIR", str(tmp_path))
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="FEDUP_DATA_DIR") as info:
        load_partition(DS, 0, 2)
    assert str(tmp_path / "fashion_mnist") in str(info.value)
    with pytest.raises(RuntimeError, match="FEDUP_DATA_DIR"):
        load_test("cifar10")
    assert time.monotonic() - start < 2.0


def test_unreachable_hub_raises_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.delenv("FEDUP_DATA_DIR")
    # Hub offline and an empty cache: the Hub "cannot be reached".
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "ds")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="FEDUP_DATA_DIR"):
        load_test(DS)
    assert time.monotonic() - start < 10.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dataset": "mnist"}, "unknown dataset"),
        ({"partition_id": 4}, "partition_id"),
        ({"partition_id": -1}, "partition_id"),
        ({"num_partitions": 0, "partition_id": 0}, "num_partitions"),
        ({"fraction": 0.0}, "fraction"),
        ({"fraction": 1.5}, "fraction"),
        ({"fraction": math.nan}, "fraction"),
        ({"partitioner": "shards"}, "unknown partitioner"),
        ({"partitioner": "dirichlet", "alpha": 0.0}, "alpha"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"dataset": DS, "partition_id": 0, "num_partitions": 4}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        load_partition(**args)  # type: ignore[arg-type]
    if "fraction" in kwargs:
        with pytest.raises(ValueError, match="fraction"):
            load_test(DS, fraction=kwargs["fraction"])  # type: ignore[arg-type]


def test_unknown_dataset_lists_names() -> None:
    with pytest.raises(ValueError, match=r"cifar10.*fashion_mnist"):
        load_test("svhn")
    with pytest.raises(ValueError, match=r"cifar10.*fashion_mnist"):
        dataset_specs.get_spec("svhn")
