"""The paper's numbers (percent; rounds), typed from its Tables II-VII.

For the side-by-side comparison in ``docs/results.md``. Attack tables: (test
before, test after, B malicious, malicious before, malicious after, R*, R_rec,
P_opt) per mix, IID and non-IID.
"""

from __future__ import annotations

from typing import Any

PaperTable = dict[str, dict[tuple[int, int], tuple[Any, ...]]]

PAPER_LF_FMNIST: PaperTable = {
    "iid": {
        (5, 2): (84, 88, 4, 73, 5, 22, 1, 10),
        (10, 3): (85, 87, 4, 65, 3, 34, 1, 10),
        (10, 4): (84, 88, 5, 72, 3, 19, 1, 10),
        (20, 6): (86, 88, 6, 58, 8, 51, 1, 10),
        (20, 9): (83, 82, 5, 69, 6, 35, 1, 11),
    },
    "dirichlet": {
        (5, 2): (83, 82, 21, 54, 20, 19, 2, 6),
        (10, 3): (89, 88, 9, 22, 7, 36, 1, 5),
        (10, 4): (86, 87, 11, 36, 12, 19, 1, 5),
        (20, 6): (90, 89, 5, 16, 4, 64, 2, 5),
        (20, 9): (89, 88, 5, 24, 6, 41, 2, 5),
    },
}
PAPER_LF_CIFAR: PaperTable = {
    "iid": {
        (5, 2): (78, 79, 4, 57, 5, 24, 1, 10),
        (10, 3): (79, 77, 3, 51, 2, 26, 1, 11),
        (10, 4): (78, 78, 4, 59, 3, 27, 1, 11),
        (20, 6): (80, 78, 4, 60, 5, 42, 2, 11),
        (20, 9): (79, 79, 5, 42, 4, 67, 2, 10),
    },
    "dirichlet": {
        (5, 2): (79, 80, 4, 44, 4, 32, 1, 5),
        (10, 3): (78, 78, 8, 30, 6, 37, 2, 4),
        (10, 4): (77, 77, 10, 23, 9, 43, 2, 4),
        (20, 6): (79, 77, 11, 37, 11, 75, 4, 3),
        (20, 9): (79, 79, 7, 29, 8, 66, 2, 3),
    },
}
PAPER_BD_CIFAR: PaperTable = {
    "iid": {
        (5, 2): (75, 75, 1, 88, 2, 33, 2, 10),
        (10, 3): (76, 75, 3, 81, 4, 31, 2, 10),
        (10, 4): (75, 73, 1, 89, 2, 26, 1, 10),
        (20, 6): (75, 73, 3, 83, 4, 46, 3, 10),
        (20, 9): (75, 74, 2, 93, 3, 37, 3, 12),
    },
    "dirichlet": {
        (5, 2): (75, 73, 4, 93, 5, 40, 2, 5),
        (10, 3): (75, 74, 2, 82, 2, 32, 2, 4),
        (10, 4): (74, 73, 3, 90, 3, 23, 1, 5),
        (20, 6): (73, 73, 2, 73, 3, 56, 2, 3),
        (20, 9): (73, 71, 2, 90, 3, 47, 2, 3),
    },
}
# Table V: (test before, test after, forgetting before, forgetting after, R_rec)
PAPER_FP = {
    "iid": {(10, 4): (76, 76, 99, 86, 2), (20, 9): (75, 74, 98, 83, 3)},
    "dirichlet": {(10, 4): (75, 74, 91, 80, 2), (20, 9): (75, 73, 87, 82, 5)},
}
# Table VI: method -> (test before, test after, R_rec) per mix, IID and non-IID.
PAPER_NOT = {
    "iid": {
        (5, 2): {"fedup": (75, 75, 2), "not": (75, 75, 10)},
        (10, 4): {"fedup": (75, 75, 1), "not": (75, 75, 6)},
        (20, 9): {"fedup": (75, 74, 3), "not": (75, 73, 10)},
    },
    "dirichlet": {
        (5, 2): {"fedup": (75, 73, 2), "not": (75, 71, 20)},
        (10, 4): {"fedup": (74, 73, 1), "not": (74, 72, 20)},
        (20, 9): {"fedup": (71, 71, 2), "not": (71, 71, 12)},
    },
}
# Table VII: method -> (test before, test after, forget before, forget after,
# R_rec, storage MB).
PAPER_BENIGN = {
    "federaser": (56, 56, 76, 56, 20, 54),
    "not": (56, 50, 74, 50, 20, 0.2),
    "fedup": (56, 56, 74, 56, 3, 2.7),
}
PART_LABEL = {"iid": "IID", "dirichlet": "Dirichlet(1)"}
