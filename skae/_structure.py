"""The structure term: a neighbour-embedding loss on the code.

A k-nearest-neighbour graph of the scaled training rows, weighted as UMAP's
fuzzy simplicial set (McInnes et al. 2018), says which rows belong together.
Training draws edges of that graph in proportion to their weights and pulls the
codes of an edge's two ends together against the other edges of the batch,
with InfoNCE on a Cauchy kernel: the contrastive form of UMAP and t-SNE's
objectives (Damrich et al., "From t-SNE to UMAP with contrastive learning",
ICLR 2023). With in-batch negatives every step compares ``batch_size``
squared pairs, which converged in far fewer steps than UMAP's own
negative-sampling cross-entropy in our measurements (see the docs' page on
structure).

The exact neighbour search costs n² distances; above ``_EXACT_MAX_ROWS`` rows
the graph comes from pynndescent's NN-descent instead, when it is installed
(``pip install "skae[large]"``), as UMAP's does.
"""

import importlib.util

import keras
import numpy as np
import scipy.sparse as sp
from sklearn.neighbors import NearestNeighbors

# Rows queried at a time: the distances of one batch to all rows, never n x n.
_QUERY_ROWS = 2048
# Above this many rows NN-descent is used where installed: the exact search's
# n² cost grows past the training's (100 features, 2 cores: 66 s at 150,000
# rows, 717 s at 500,000; NN-descent 28 s and 42 s). Below it the exact search
# is cheaper than NN-descent's first call in a process, which spends about
# 24 s compiling its numba code.
_EXACT_MAX_ROWS = 100_000
# The attraction of an edge's two ends against the batch's repulsion. InfoNCE
# with many negatives behaves as t-SNE, and UMAP as t-SNE with its attraction
# exaggerated (Böhm, Berens & Kobak, JMLR 2022): more attraction draws each
# cluster tighter and leaves wider gaps between them.
EXAGGERATION = 2.0


class Graph:
    """A symmetric fuzzy k-NN graph over ``n`` rows.

    Attributes
    ----------
    heads, tails : ndarray of int32
        The two ends of each directed edge (each undirected edge appears twice).
    weights : ndarray of float64
        Membership strength of each edge, in (0, 1].
    neighbours : ndarray of shape (n, k), int32
        Each row's k nearest other rows.
    """

    def __init__(self, heads, tails, weights, neighbours):
        self.heads, self.tails = heads, tails
        self.weights, self.neighbours = weights, neighbours
        self.n = neighbours.shape[0]


def neighbour_graph(X, n_neighbors, random_state=None):
    """UMAP's fuzzy union graph of the rows of ``X`` (2-D, in memory).

    The nearest-neighbour search is scikit-learn's ``NearestNeighbors``,
    queried ``_QUERY_ROWS`` rows at a time; for more than ``_EXACT_MAX_ROWS``
    rows it is pynndescent's approximate ``NNDescent`` where that is installed,
    seeded with ``random_state`` (an int). Returns None when X has fewer than
    two rows: there is no neighbour to preserve.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [5.2]])
    >>> graph = neighbour_graph(X, n_neighbors=2)
    >>> graph.neighbours[0].tolist(), graph.neighbours[3].tolist()
    ([1, 2], [4, 5])
    >>> sorted(set(zip(graph.heads.tolist(), graph.tails.tolist())))[:3]
    [(0, 1), (0, 2), (1, 0)]
    """
    n = X.shape[0]
    if n < 2:
        return None
    k = min(n_neighbors, n - 1)
    if n > _EXACT_MAX_ROWS and approximate_search_available():
        dist, ind = _approximate_neighbours(X, k, random_state)
    else:
        dist, ind = _exact_neighbours(X, k, np.arange(n))
    weights = _fuzzy_weights(dist, k)
    P = sp.csr_matrix(
        (weights.ravel(), (np.repeat(np.arange(n), k), ind.ravel())), shape=(n, n)
    )
    # Fuzzy union: an edge is as strong as "a is b's neighbour or b is a's".
    P = (P + P.T - P.multiply(P.T)).tocoo()
    P.eliminate_zeros()
    return Graph(
        P.row.astype(np.int32),
        P.col.astype(np.int32),
        P.data.astype(np.float64),
        ind.astype(np.int32),
    )


def approximate_search_available():
    """Whether pynndescent, for the graphs of large data, is installed."""
    return importlib.util.find_spec("pynndescent") is not None


def _exact_neighbours(X, k, rows):
    """The k nearest other rows of X[rows], in batches of ``_QUERY_ROWS``."""
    nn = NearestNeighbors(n_neighbors=k + 1).fit(X)
    dist = np.empty((len(rows), k))
    ind = np.empty((len(rows), k), dtype=np.int64)
    for start in range(0, len(rows), _QUERY_ROWS):
        batch = rows[start : start + _QUERY_ROWS]
        d, i = nn.kneighbors(X[batch])
        stop = start + len(batch)
        dist[start:stop], ind[start:stop] = _without_self(d, i, batch, k)
    return dist, ind


def _approximate_neighbours(X, k, random_state):
    from pynndescent import NNDescent

    ind, dist = NNDescent(
        X, n_neighbors=k + 1, random_state=random_state
    ).neighbor_graph
    dist, ind = _without_self(dist, ind, np.arange(X.shape[0]), k)
    # NN-descent marks with -1 the neighbours it did not find; those rows
    # (rare) are searched exactly rather than trained on made-up edges.
    missing = np.flatnonzero((ind < 0).any(axis=1))
    if len(missing):
        dist[missing], ind[missing] = _exact_neighbours(X, k, missing)
    return dist, ind


def _without_self(dist, ind, rows, k):
    # A row is its own nearest neighbour, unless duplicates tie with it: drop
    # its own index where found, else the farthest.
    own = ind == rows[:, None]
    own[~own.any(axis=1), -1] = True
    keep = ~own
    return dist[keep].reshape(-1, k), ind[keep].reshape(-1, k)


def _fuzzy_weights(dist, k):
    # UMAP: exp(-(d - rho) / sigma), rho the nearest distance and sigma set by
    # bisection so each row's weights sum to log2(k); a local scale, so dense
    # and sparse regions weigh their neighbours alike. As in UMAP, rho is the
    # nearest non-zero distance: a duplicate of the row (distance 0) must not
    # push its nearest distinct neighbour down to a weight below 1.
    positive = np.where(dist > 0, dist, np.inf).min(axis=1, keepdims=True)
    rho = np.where(np.isfinite(positive), positive, 0.0)
    gap = np.maximum(dist - rho, 0.0)
    target = np.log2(k) if k > 1 else 1.0
    lo = np.zeros(len(dist))
    hi = np.full(len(dist), np.inf)
    sigma = np.ones(len(dist))
    for _ in range(64):
        total = np.exp(-gap / sigma[:, None]).sum(axis=1)
        big = total > target
        hi = np.where(big, sigma, hi)
        lo = np.where(big, lo, sigma)
        sigma = np.where(np.isinf(hi), sigma * 2, (lo + hi) / 2)
    # UMAP's floor on sigma, against rows whose neighbours are all equidistant.
    sigma = np.maximum(sigma, 1e-3 * max(float(dist.mean()), 1e-12))
    return np.exp(-gap / sigma[:, None])


def contrastive_loss(z_heads, z_tails, exaggeration=1.0):
    """Symmetric InfoNCE of paired codes on a Cauchy kernel.

    Row i of ``z_heads`` and of ``z_tails`` are the two ends of one edge; every
    other row of the batch is a negative. The kernel 1 / (1 + d²) is
    t-SNE's and (for its default spread) close to UMAP's. ``exaggeration``
    multiplies the attraction of the pairs, as t-SNE's exaggeration does.
    """
    ops = keras.ops
    sq = ops.sum(ops.square(z_heads[:, None, :] - z_tails[None, :, :]), axis=-1)
    log_q = -ops.log1p(sq)
    positive = exaggeration * ops.diagonal(log_q)
    rows = ops.logsumexp(log_q, axis=1) - positive
    cols = ops.logsumexp(log_q, axis=0) - positive
    return ops.mean(rows + cols) / 2
