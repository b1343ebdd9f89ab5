"""Keep embeddings of consecutive epochs in one frame (paper Sec. 3.2, across training checkpoints).

Two pieces, both pure numpy:

* :func:`procrustes_rotation` — the two-pass orthogonal Procrustes alignment of step 3: first on raw
  coordinates (L2), then on unit-normalised coordinates after dropping the points that moved most.
* :class:`WeightBuffer` — the warm start of step 1: the mean of the last ≤3 projection matrices.

Applying an alignment ``R`` (3×3, orthogonal) to an epoch's results::

    g <- g @ R      mu <- mu @ R      h <- h @ R      M <- R.T @ M      Lambda <- R.T @ Lambda

Orthogonal maps keep every norm and every cosine, so the posterior Q (paper Sec. 3.2) and the
knowledge points (Sec. 3.4) are unchanged: only the frame in which the points are drawn moves.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from patternviz_widget.errors import InputError

__all__ = ["WeightBuffer", "apply_rotation", "procrustes_rotation"]

_EPS = 1e-12


def _check_pair(current: np.ndarray, previous: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(current, dtype=np.float64)
    b = np.asarray(previous, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape != b.shape:
        raise InputError(
            f"procrustes_rotation needs two arrays of the same shape N×d (the same points at two "
            f"epochs, rows in the same order); got {a.shape} and {b.shape}."
        )
    if a.shape[0] == 0:
        raise InputError("procrustes_rotation needs at least one point; got 0 rows.")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise InputError(
            "procrustes_rotation got NaN or Inf coordinates. Check both epochs' embedding fits."
        )
    return a, b


def _orthogonal_procrustes(a: np.ndarray, b: np.ndarray, proper: bool) -> np.ndarray:
    """Return the orthogonal R minimising ||a R - b||_F (det +1 when ``proper``)."""
    cross = a.T @ b
    d = cross.shape[0]
    if np.linalg.norm(cross) < _EPS:  # nothing to align on (all points at the origin)
        return np.eye(d)
    u, _, vt = np.linalg.svd(cross)
    r = u @ vt
    if proper and np.linalg.det(r) < 0:
        fix = np.ones(d)
        fix[-1] = -1.0  # flip the axis of the smallest singular value
        r = (u * fix) @ vt
    return r


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), _EPS)


def procrustes_rotation(
    current: np.ndarray,
    previous: np.ndarray,
    drop_outliers: float = 0.1,
    proper: bool = False,
) -> np.ndarray:
    """Return the orthogonal d×d matrix ``R`` such that ``current @ R`` ≈ ``previous``.

    Paper Sec. 3.2, step 3 of the per-checkpoint fit (official code): orthogonal Procrustes, SVD of
    ``G_curᵀ G_prev = U S Vᵀ``, ``R = U Vᵀ``, done twice —

    1. on the raw coordinates (least squares in L2), giving ``R1``;
    2. on unit-normalised coordinates of ``current @ R1`` and ``previous``, after dropping the
       ``drop_outliers`` share of points with the largest displacement
       ``||current @ R1 - previous||`` (so points that really moved between epochs do not drag
       the frame), giving ``R2``;

    and returns ``R = R1 @ R2``.

    Reflections: the paper's ``R = U Vᵀ`` is any orthogonal matrix, so it may be a reflection
    (det −1). We follow the paper by default (``proper=False``): the embedding objective is
    invariant to every orthogonal map, so a fit may come out mirrored, and only a reflection can
    undo that — which is exactly the "flip" alignment is meant to remove. Norms and cosines (hence Q and the
    knowledge points) are kept either way. ``proper=True`` forces a rotation (det +1).

    Args:
        current: float[N, d] embedding of the new epoch (g or h rows).
        previous: float[N, d] the same points (same row order) at the previous epoch, aligned.
        drop_outliers: share of points ignored in pass 2 (paper: 0.1 = the 10 % that moved most);
            0 keeps all.
        proper: force det(R) = +1 (no reflection).

    Returns:
        float64[d, d] orthogonal matrix; apply it as ``g @ R``, ``mu @ R``, ``h @ R``, ``R.T @ M``,
        ``R.T @ Lambda`` (see :func:`apply_rotation`).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> prev = rng.normal(size=(50, 3))
        >>> q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        >>> R = procrustes_rotation(prev @ q.T, prev)
        >>> bool(np.allclose(prev @ q.T @ R, prev))
        True
    """
    a, b = _check_pair(current, previous)
    try:
        share = float(drop_outliers)
    except (TypeError, ValueError):
        raise InputError(
            f"drop_outliers must be a number in [0, 1), got {drop_outliers!r}."
        ) from None
    if not 0.0 <= share < 1.0:
        raise InputError(f"drop_outliers must be in [0, 1) (paper: 0.1), got {share}.")

    r1 = _orthogonal_procrustes(a, b, proper)
    moved = a @ r1
    n = a.shape[0]
    n_keep = max(1, n - int(np.floor(share * n)))
    if n_keep < n:
        displacement = np.linalg.norm(moved - b, axis=1)
        keep = np.argsort(displacement, kind="stable")[:n_keep]
    else:
        keep = np.arange(n)
    r2 = _orthogonal_procrustes(_unit(moved[keep]), _unit(b[keep]), proper)
    r = r1 @ r2
    if proper and np.linalg.det(r) < 0:  # cannot happen (product of rotations); guard anyway
        r = _orthogonal_procrustes(a, b, True)
    return r


def apply_rotation(r: np.ndarray, **arrays: np.ndarray | None) -> dict[str, np.ndarray | None]:
    """Return the arrays expressed in the aligned frame of ``R`` (from :func:`procrustes_rotation`).

    Row-point arrays (``g``, ``mu``, ``h``: float[*, d]) become ``x @ R``; projection matrices
    (``M``, ``Lambda``: float[d, D]) become ``Rᵀ x`` so that ``x_new f = (x f) R`` still holds as a
    row. None values pass through. The output keeps each input's dtype.

    Args:
        r: float[d, d] orthogonal matrix.
        **arrays: name=array; names ``M`` and ``Lambda`` (any case) are treated as projections.

    Returns:
        dict name -> rotated array (or None).
    """
    out: dict[str, np.ndarray | None] = {}
    for name, x in arrays.items():
        if x is None:
            out[name] = None
            continue
        x = np.asarray(x)
        if name.lower() in ("m", "lambda", "lam", "projection"):
            out[name] = (r.T @ x).astype(x.dtype, copy=False)
        else:
            out[name] = (x @ r).astype(x.dtype, copy=False)
    return out


class WeightBuffer:
    """The last ``size`` projection matrices of one layer; :meth:`mean` is the next warm start.

    Paper Sec. 3.2, step 1 of the per-checkpoint fit: "initialise M with the mean of the M's of the
    last ≤3 checkpoints" (official code ``WeightBuffer(3)``). Push the *aligned* matrix of each
    epoch so that the mean is taken in one frame.

    Args:
        size: how many matrices to keep (paper: 3).

    Example:
        >>> buf = WeightBuffer(3)
        >>> for k in range(5):
        ...     buf.push(np.full((3, 2), float(k)))
        >>> float(buf.mean()[0, 0])  # mean of 2, 3, 4
        3.0
    """

    def __init__(self, size: int = 3) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InputError(f"WeightBuffer size must be an integer >= 1 (paper: 3), got {size!r}.")
        self.size = size
        self._items: deque[np.ndarray] = deque(maxlen=size)

    def push(self, weight: np.ndarray) -> None:
        """Add one projection matrix (dropping the oldest beyond ``size``)."""
        w = np.array(weight, dtype=np.float32, copy=True)
        if self._items and w.shape != self._items[-1].shape:
            raise InputError(
                f"WeightBuffer holds matrices of shape {self._items[-1].shape}, got {w.shape}. "
                "Use one buffer per layer (and per model)."
            )
        self._items.append(w)

    def mean(self) -> np.ndarray | None:
        """Return the float32 element-wise mean of the held matrices, or None when empty."""
        if not self._items:
            return None
        return np.mean(np.stack(self._items), axis=0).astype(np.float32)

    def clear(self) -> None:
        """Forget every held matrix."""
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        shape = self._items[-1].shape if self._items else None
        return f"WeightBuffer(size={self.size}, held={len(self)}, shape={shape})"
