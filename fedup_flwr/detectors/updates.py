"""One round's client updates, read lazily: :class:`RoundUpdates`.

Detectors compare *updates*, ``global - local`` per array (the sign convention
of LFighter and FL-Defender: an update is the local step in gradient
direction). Materialising every node's whole update would cost one model copy
per node (and twice that in float64), so :class:`RoundUpdates` computes only
what a detector asks for:

* :meth:`RoundUpdates.stack`: one array's updates of every node, e.g. the last
  layer (``n`` copies of that layer only);
* :meth:`RoundUpdates.gram`: the ``n x n`` matrix of inner products of the
  whole updates, accumulated over column chunks of a buffer holding about one
  model copy; norms, cosine similarities and squared Euclidean distances
  follow from it.

Updates keep the model's floating dtype, at least float32 (PyTorch models stay
float32; they are never widened to float64). Inner products are accumulated in
float64.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from fedup_flwr.core import last_kernel_index
from fedup_flwr.detector import Arrays

__all__ = ["RoundUpdates", "cosine_from_gram", "last_kernel_index"]

MIN_CHUNK_COLUMNS = 4096
"""Fewest columns of a Gram chunk, so that tiny models are not read in slivers."""

MAX_CHUNK_COLUMNS = 65536
"""Most columns of a Gram chunk: OpenBLAS multiplies ``(n, k) @ (k, n)`` some
ten times slower per element when ``k`` is in the hundreds of thousands."""


def cosine_from_gram(gram: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    """Cosine similarities from inner products ``G[i, j] = <u_i, u_j>``.

    A zero vector has similarity 0 to every vector, itself included. Values
    are clipped to ``[-1, 1]``.

    Examples
    --------
    >>> import numpy as np
    >>> cosine_from_gram(np.array([[4.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0, 0, 0]]))
    array([[1., 1., 0.],
           [1., 1., 0.],
           [0., 0., 0.]])
    """
    gram = np.asarray(gram, dtype=np.float64)
    norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
    outer = np.outer(norms, norms)
    with np.errstate(divide="ignore", invalid="ignore"):
        cosines = np.where(outer > 0.0, gram / outer, 0.0)
    return np.asarray(np.clip(cosines, -1.0, 1.0), dtype=np.float64)


class RoundUpdates:
    """The updates ``global - local`` of one round's replies, computed on demand.

    Parameters
    ----------
    replies : Mapping[int, Sequence[numpy.ndarray]]
        ``{node_id: arrays}``, each node's model in the order and shapes of
        ``global_arrays``. Not copied: the arrays must not change while the
        object is used.
    global_arrays : Sequence[numpy.ndarray]
        The global model's arrays sent that round.

    Attributes
    ----------
    node_ids : list[int]
        The replying nodes, sorted; row ``i`` of every result is
        ``node_ids[i]``.
    global_arrays : list[numpy.ndarray]
        The global arrays (views, not copies).
    dtype : numpy.dtype
        The dtype of the updates: the widest floating dtype of the global
        arrays, at least float32.
    floating : list[int]
        Indices of the floating arrays, the ones :meth:`gram` reads by default
        (integer buffers such as BatchNorm's ``num_batches_tracked`` count
        steps, they are not weights).

    Raises
    ------
    ValueError
        If a reply's arrays do not match ``global_arrays`` in number or shape.

    Examples
    --------
    >>> import numpy as np
    >>> glob = [np.zeros((2, 2), dtype=np.float32), np.zeros(2, dtype=np.float32)]
    >>> replies = {7: [np.ones((2, 2)), np.ones(2)], 3: [-np.ones((2, 2)), np.zeros(2)]}
    >>> updates = RoundUpdates(replies, glob)
    >>> updates.node_ids, updates.dtype
    ([3, 7], dtype('float32'))
    >>> updates.gram()
    array([[ 4., -4.],
           [-4.,  6.]])
    """

    def __init__(self, replies: Mapping[int, Arrays], global_arrays: Arrays) -> None:
        self.node_ids = sorted(int(node) for node in replies)
        self.global_arrays = [np.asarray(a) for a in global_arrays]
        self._replies = {int(node): replies[node] for node in replies}
        for node in self.node_ids:
            local = self._replies[node]
            if len(local) != len(self.global_arrays):
                raise ValueError(
                    f"node {node} replied {len(local)} arrays, the global model "
                    f"has {len(self.global_arrays)}"
                )
            for index, (glob, loc) in enumerate(
                zip(self.global_arrays, local, strict=True)
            ):
                if np.shape(loc) != glob.shape:
                    raise ValueError(
                        f"node {node}: array {index} has shape {np.shape(loc)}, "
                        f"the global one {glob.shape}"
                    )
        self.floating = [
            i
            for i, a in enumerate(self.global_arrays)
            if np.issubdtype(a.dtype, np.floating)
        ]
        self.dtype: np.dtype[Any] = np.result_type(
            np.float32, *(self.global_arrays[i].dtype for i in self.floating)
        )
        self._gram: dict[tuple[int, ...], NDArray[np.float64]] = {}

    def __len__(self) -> int:
        return len(self.node_ids)

    def stack(self, index: int) -> NDArray[np.floating[Any]]:
        """Return array ``index``'s updates, one flattened row per node.

        Parameters
        ----------
        index : int
            The array's index in the model.

        Returns
        -------
        numpy.ndarray
            Shape ``(n, size)``, dtype :attr:`dtype`; a new array.
        """
        glob = self.global_arrays[index].reshape(-1)
        out = np.empty((len(self.node_ids), glob.size), dtype=self.dtype)
        for row, node in enumerate(self.node_ids):
            local = np.asarray(self._replies[node][index]).reshape(-1)
            np.subtract(glob, local, out=out[row], casting="unsafe")
        return out

    def gram(self, indices: Sequence[int] | None = None) -> NDArray[np.float64]:
        """Return the inner products of the nodes' updates (cached).

        Parameters
        ----------
        indices : Sequence[int] or None (default: None)
            The arrays whose updates are concatenated; ``None``:
            :attr:`floating`.

        Returns
        -------
        numpy.ndarray
            ``G[i, j] = <u_i, u_j>``, shape ``(n, n)``, float64.
        """
        key = tuple(self.floating if indices is None else (int(i) for i in indices))
        if key not in self._gram:
            n = len(self.node_ids)
            gram = np.zeros((n, n), dtype=np.float64)
            # One BLAS thread: these products are small, and multithreaded
            # OpenBLAS stalls for up to seconds per product on a busy machine.
            with threadpool_limits(limits=1, user_api="blas"):
                for chunk in self._chunks(key):
                    gram += chunk @ chunk.T
            self._gram[key] = gram
        return self._gram[key].copy()

    def norms(self, indices: Sequence[int] | None = None) -> NDArray[np.float64]:
        """Return each node's update norm (see :meth:`gram` for ``indices``)."""
        return np.sqrt(np.clip(np.diag(self.gram(indices)), 0.0, None))

    def cosine_similarities(
        self, indices: Sequence[int] | None = None
    ) -> NDArray[np.float64]:
        """Return the pairwise cosine similarities of the updates.

        A zero update has similarity 0 to every update, itself included.
        Values are clipped to ``[-1, 1]``.
        """
        return cosine_from_gram(self.gram(indices))

    def squared_distances(
        self, indices: Sequence[int] | None = None
    ) -> NDArray[np.float64]:
        """Return the pairwise squared Euclidean distances of the updates."""
        gram = self.gram(indices)
        diag = np.diag(gram)
        distances = diag[:, np.newaxis] + diag[np.newaxis, :] - 2.0 * gram
        np.fill_diagonal(distances, 0.0)
        return np.asarray(np.clip(distances, 0.0, None), dtype=np.float64)

    def _chunks(self, indices: Sequence[int]) -> Iterator[NDArray[np.floating[Any]]]:
        """Yield ``(n, width)`` blocks of the concatenated updates, in order.

        One buffer of at most about half a model copy (``total / (2 n)``
        columns, at most :data:`MAX_CHUNK_COLUMNS`) is reused, so peak memory
        does not grow with the number of nodes.
        """
        n = len(self.node_ids)
        total = sum(self.global_arrays[i].size for i in indices)
        if n == 0 or total == 0:
            return
        width = min(
            total,
            MAX_CHUNK_COLUMNS,
            max(MIN_CHUNK_COLUMNS, -(-total // (2 * n))),
        )
        buffer = np.empty((n, width), dtype=self.dtype)
        column = 0
        for index in indices:
            glob = self.global_arrays[index].reshape(-1)
            locals_ = [
                np.asarray(self._replies[node][index]).reshape(-1)
                for node in self.node_ids
            ]
            start = 0
            while start < glob.size:
                take = min(width - column, glob.size - start)
                stop = start + take
                for row, local in enumerate(locals_):
                    np.subtract(
                        glob[start:stop],
                        local[start:stop],
                        out=buffer[row, column : column + take],
                        casting="unsafe",
                    )
                column += take
                start = stop
                if column == width:
                    yield buffer
                    column = 0
        if column:
            yield buffer[:, :column]
