"""Per-image importance weights w (regions), v (channels) and the region-matching table
(paper Sec. 3.3: the importance weights and the region alignment between two images).

Fast path (ours; docs/method.md, where we differ): every image's problem is independent, so all images take their
SGD steps together; each image has one FIXED, seeded set of J partners shared with its group
(:mod:`.packing`; the official code redraws 100 partners at every step); regions are padded per
image with a mask, so images may keep different numbers of regions. The argmax search runs once,
at the start, and again at the end only for the images whose returned v it was not run with
(``rematch_every=0``, ours; the official code searches at every step). Per group, the search
r'(r; i, j) = argmax_r' Σ_k v_i^(k) f̂_i^(k,r) f̂_j^(k,r') is ONE matrix product
(G·Rm × K) @ (K × P·Rm) (bfloat16 where the CPU has native bf16 — see
:func:`resolve_match_dtype`); the matched scores that enter the loss are recomputed exactly in
float32 at the chosen r' (a sampled sparse product that addresses the partners' rows in place),
and the gradient with respect to v is one sparse × dense product — no [Rm, J, K] temporaries and
no copy of the partner block between searches.

Softmaxes are taken in log space (the official code exponentiates κ_m·s with κ_m = 1000, which
overflows float32 once v concentrates); the values are the same wherever the official ones are
finite.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import warnings
from collections.abc import Callable

import torch

from patternviz_widget._validate import check_positive_int
from patternviz_widget.engine.method.packing import (
    PackedRegions,
    PartnerGroups,
    masked_kl,
    masked_log_softmax,
    product_mixture,
)
from patternviz_widget.engine.threads import torch_threads
from patternviz_widget.errors import InputError


@functools.lru_cache(maxsize=1)
def _cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_match_dtype(match_dtype: str, device: torch.device) -> torch.dtype:
    """Return the dtype of the argmax search: "float32", "bfloat16", or "auto" (bfloat16 on CPUs
    with native bf16 matrix units — 3–4× faster there — else float32; float32 on GPUs)."""
    if match_dtype == "float32":
        return torch.float32
    if match_dtype == "bfloat16":
        return torch.bfloat16
    if match_dtype == "auto":
        return torch.bfloat16 if device.type == "cpu" and _cpu_has_bf16() else torch.float32
    raise InputError(f"match_dtype must be 'auto', 'float32' or 'bfloat16', got {match_dtype!r}.")


def group_size_for(rm: int, j: int, memory_budget_mb: float, cap: int = 32) -> int:
    """Images per partner group so that one group's score matrix (G·Rm × J·Rm, bf16 + float32
    copies) and its partner block (J·Rm × K) stay within ``memory_budget_mb``."""
    per_image = 6.0 * rm * j * rm + 1.0
    return max(1, min(cap, int(memory_budget_mb * 2**20 * 0.7 // per_image)))


def table_dtype(rm: int) -> torch.dtype:
    """The integer type of a region-matching table: r' < Rm, so int16 for up to 32,767 regions
    per image (a quarter of int64's memory: N·Rm·P entries, ~0.2 GB at 10^6 regions × 100
    partners instead of 0.8 GB), else int32. Index arithmetic promotes it to int64."""
    return torch.int16 if rm <= torch.iinfo(torch.int16).max else torch.int32


#: the most bytes of one score tile of the r' search on a CPU (:meth:`_Group.match`; at least one
#: member image): the speed hardly depends on it (single thread, AMD EPYC, bfloat16, 16 × 196 ×
#: 100 × 512: one image 0.22 s, two 0.21 s, four 0.22 s, the whole group 0.29 s; float32,
#: matching_table, medians of 5, 16 MB → 4 MB: 450 × 64 × 16 0.69 → 0.74 s, 450 × 64 × 64
#: 0.95 → 0.96 s, 100 × 196 × 512 7.47 → 7.78 s), but two fits at once each hold one (the
#: quickstart: 10 images of 64 regions a tile at 16 MB)
MATCH_TILE_BYTES = 4 * 2**20


class _Group:
    """One group's constants: members, the partner block (gathered for the dense search only),
    pattern. The scores and the gradient address the partners' rows in place (global columns of
    ``packed.unit``), so a step with a known table copies no partner block."""

    def __init__(
        self, packed: PackedRegions, members: torch.Tensor, gpart: torch.Tensor, dtype: torch.dtype
    ) -> None:
        n, rm, k = packed.shape
        self.packed, self.gpart = packed, gpart
        self.members, self.rm, self.j = members, rm, gpart.numel()  # j here is the block size P
        self.all_rows = packed.unit.view(n * rm, k)
        self.pmask = packed.mask[gpart]  # [J, Rm]
        self.full = bool(self.pmask.all())
        self.a = packed.unit[members]  # [G, Rm, K]
        self.dtype = dtype

    def match(self, v: torch.Tensor) -> torch.Tensor:
        """Return r' [G, Rm, J] (:func:`table_dtype`) under channel weights v [G, K].

        On a CPU the members are searched a few images at a time, so that each score tile
        (c·Rm × J·Rm, :data:`MATCH_TILE_BYTES`) is still in cache when its max is taken: ~25 %
        faster than one product for the group at 16 × 196 × 100 × 512, and the peak memory of
        a search no longer grows with the group (same values: each row's product and max are
        the same)."""
        g = self.members.numel()
        b = self._block()
        av = (self.a * v[:, None, :]).reshape(g * self.rm, -1).to(self.dtype)
        out = torch.empty((g, self.rm, self.j), dtype=table_dtype(self.rm), device=v.device)
        per_image = self.rm * self.j * self.rm * b.element_size()
        step = g if av.device.type != "cpu" else max(1, MATCH_TILE_BYTES // per_image)
        bt, fill = b.T, None if self.full else ~self.pmask[None, None]
        tile = torch.empty(
            (min(step, g) * self.rm, self.j * self.rm), dtype=b.dtype, device=b.device
        )
        best = torch.empty((min(step, g), self.rm, self.j), dtype=b.dtype, device=b.device)
        where = torch.empty(best.shape, dtype=torch.long, device=b.device)
        for i in range(0, g, step):
            c = min(step, g - i)
            s = torch.mm(av[i * self.rm : (i + c) * self.rm], bt, out=tile[: c * self.rm])
            s = s.view(c, self.rm, self.j, self.rm)
            if fill is not None:
                s.masked_fill_(fill, float("-inf"))
            # (max is ~3× faster than argmax on bf16 CPU tensors)
            torch.max(s, dim=-1, out=(best[:c], where[:c]))
            out[i : i + c] = where[:c]
        return out

    def _block(self) -> torch.Tensor:
        """The partner block's unit rows [P·Rm, K] in the search's dtype (converted a few partner
        images at a time: no float32 copy of the whole block on the way to bfloat16)."""
        unit = self.packed.unit
        k = unit.shape[2]
        if self.dtype == torch.float32:
            return unit[self.gpart].reshape(self.j * self.rm, k)
        b = torch.empty((self.j, self.rm, k), dtype=self.dtype, device=unit.device)
        for i in range(0, self.j, 8):
            b[i : i + 8] = unit[self.gpart[i : i + 8]]
        return b.view(self.j * self.rm, k)

    def pattern(self, rp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CSR pattern of the matched pairs: row (member, r), column = global row of (j, r')."""
        g = self.members.numel()
        col = (self.gpart * self.rm)[None, None, :] + rp
        crow = torch.arange(0, g * self.rm * self.j + 1, self.j, device=rp.device)
        return crow, col.reshape(-1)

    def scores(self, v: torch.Tensor, rp: torch.Tensor) -> torch.Tensor:
        """Return s [G, Rm, J] = Σ_k v_k f̂_i^(k,r) f̂_j^(k,r') in float32 at the matched r'.

        Sampled in the transposed layout — rows are the partners' regions (j, r'), columns the
        members' (i, r) — so each partner row is read once and the columns come from the small
        member block (~1.6× faster on CPU than the row layout, same values). Its row pointer has
        one entry per region of ALL images, so with many images (more regions than matched pairs
        in the group) the row layout is used instead: its cost does not grow with N."""
        g = self.members.numel()
        n_rows = self.all_rows.shape[0]
        crow, col = self.pattern(
            rp
        )  # col: global partner row of every (i, r, j), in (i, r, j) order
        av = (self.a * v[:, None, :]).reshape(g * self.rm, -1)
        if n_rows > col.numel():
            with quiet_sparse():
                pat = torch.sparse_csr_tensor(
                    crow,
                    col,
                    torch.zeros(col.numel(), device=col.device),
                    size=(g * self.rm, n_rows),
                )
                out = torch.sparse.sampled_addmm(pat, av, self.all_rows.T, beta=0.0)
            return out.values().view(g, self.rm, self.j)
        member_col = torch.arange(g * self.rm, device=col.device).repeat_interleave(self.j)
        perm = torch.argsort(col * (g * self.rm) + member_col)
        crow = torch.zeros(n_rows + 1, dtype=torch.long, device=col.device)
        crow[1:] = torch.bincount(col, minlength=n_rows).cumsum(0)
        with quiet_sparse():
            pat = torch.sparse_csr_tensor(
                crow,
                member_col[perm],
                torch.zeros(col.numel(), device=col.device),
                size=(n_rows, g * self.rm),
            )
            vals = torch.sparse.sampled_addmm(pat, self.all_rows, av.T, beta=0.0).values()
        out = torch.empty_like(vals)
        out[perm] = vals
        return out.view(g, self.rm, self.j)

    def grad_v(self, ds: torch.Tensor, rp: torch.Tensor) -> torch.Tensor:
        """Return ∂L/∂v [G, K] = Σ_r f̂_i^(r) ⊙ Σ_j ∂L/∂s_rj f̂_j^(r') (exact, one sparse product)."""
        g = self.members.numel()
        crow, col = self.pattern(rp)
        with quiet_sparse():
            mat = torch.sparse_csr_tensor(
                crow, col, ds.reshape(-1).contiguous(), size=(g * self.rm, self.all_rows.shape[0])
            )
            y = (mat @ self.all_rows).view(g, self.rm, -1)
        return (self.a * y).sum(1)


@contextlib.contextmanager
def quiet_sparse():
    """Silence torch's "sparse CSR is beta / invariant checks" notices for our internal use."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
        yield


def importance_loss_from_scores(
    s: torch.Tensor, w: torch.Tensor, log_t: torch.Tensor, pmask: torch.Tensor, kappa_m: float
) -> torch.Tensor:
    """Return KL(P(X2|x_i) ‖ P_i) per image i, a [c] vector (paper Sec. 3.3), from matched scores s [c, Rm, P], region
    weights w [c, Rm] (0 on padding), target log-similarities log_t [c, P] and the partner mask
    pmask [c, P]: P_i^(r)(j) = softmax_j(κ_m s_rj), P_i(j) ∝ Π_r P_i^(r)(j)^(w_r)."""
    log_pr = masked_log_softmax(kappa_m * s, pmask)
    return masked_kl(log_t, product_mixture(log_pr, w, pmask), pmask, per_row=True)


def importance_grad(
    packed: PackedRegions,
    pg: PartnerGroups,
    log_t: torch.Tensor,
    v: torch.Tensor,
    w: torch.Tensor,
    kappa_m: float,
    dtype: torch.dtype = torch.float32,
    table: torch.Tensor | None = None,
    cache: dict | None = None,
    search_threads: int = 1,
    workers: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (loss_i per image [N], ∂/∂v [N, K], ∂/∂w [N, Rm], r' table [N, Rm, P]) at (v, w).

    ``table``: score with these matches instead of searching (the steps between two searches of
    :func:`fit_importance`); it is returned as is. ``cache``: a dict kept by the caller across
    steps that share one table (the sparse patterns of the matched pairs are built once).

    The gradients are in closed form (no autograd). With ℓ_rj = log softmax_j(κ_m s_rj),
    log Q = log softmax_j(Σ_r w_r ℓ_rj) and T the target: ∂KL/∂w_r = Σ_j (Q_j − T_j) ℓ_rj and
    ∂KL/∂s_rj = κ_m w_r (Q_j − T_j) (the softmax term Σ_j w_r (Q_j − T_j) vanishes because Q and T
    both sum to one), so ∂KL/∂v = κ_m Σ_r w_r f̂_i^(r) ⊙ Σ_j (Q_j − T_j) f̂_j^(r'). Images are
    processed in chunks of whole partner groups, each chunk a few large operations; ``workers``
    2 or more on a CPU: at least that many chunks, run at once on as many threads (each torch op
    on its calling thread; each image's terms are its chunk's alone, so the values do not change).
    """
    n, rm, k = packed.shape
    if table is None:
        table = torch.zeros((n, rm, pg.p), dtype=table_dtype(rm), device=v.device)
        with torch.no_grad(), torch_threads(search_threads):
            for members, gpart in zip(pg.groups, pg.blocks):
                table[members] = _Group(packed, members, gpart, dtype).match(v[members])
        if cache is not None:
            cache.clear()
    cache = {} if cache is None else cache
    gv, gw = torch.zeros_like(v), torch.zeros_like(w)
    losses = torch.zeros(n, dtype=torch.float64, device=v.device)
    all_rows = packed.unit.view(n * rm, k)
    parallel = workers > 1 and v.device.type == "cpu"
    chunks = _chunks(pg, rm, parts=workers if parallel else 1)

    def chunk(ci: int, idx: torch.Tensor) -> None:
        with torch.no_grad():  # (grad mode is per thread)
            if ci not in cache:
                cache[ci] = _matched_pattern(pg, table, idx, rm)
            crow, col = cache[ci]
            c, p = idx.numel(), pg.p
            a = packed.unit[idx]  # [c, Rm, K]
            av = (a * v[idx, None, :]).reshape(c * rm, k)
            pat = torch.sparse_csr_tensor(
                crow, col, torch.zeros(col.numel(), device=col.device), size=(c * rm, n * rm)
            )
            sc = torch.sparse.sampled_addmm(pat, av, all_rows.T, beta=0.0).values().view(c, rm, p)
            losses[idx], gw[idx], ds = _step_terms(
                sc, pg.pmask[idx], w[idx], log_t[idx], packed.mask[idx], kappa_m
            )
            mat = torch.sparse_csr_tensor(
                crow, col, ds.reshape(-1).contiguous(), size=(c * rm, n * rm)
            )
            y = (mat @ all_rows).view(c, rm, k)
            gv[idx] = (a * y).sum(1)

    # (the warning filters are process-wide: set once here, not in the workers)
    with quiet_sparse():
        if parallel and len(chunks) > 1:
            with concurrent.futures.ThreadPoolExecutor(
                min(workers, len(chunks)) - 1, thread_name_prefix="pv-importance"
            ) as pool:
                later = [pool.submit(chunk, ci, idx) for ci, idx in enumerate(chunks) if ci > 0]
                chunk(0, chunks[0])
                for f in later:
                    f.result()
        else:
            for ci, idx in enumerate(chunks):
                chunk(ci, idx)
    return losses, gv, gw, table


def _step_terms(
    sc: torch.Tensor,
    pmask: torch.Tensor,
    wi: torch.Tensor,
    log_t: torch.Tensor,
    mask: torch.Tensor,
    kappa_m: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (KL per image [c] float64, ∂KL/∂w [c, Rm], ∂KL/∂s [c, Rm, P]) from the matched scores
    sc [c, Rm, P] (closed form; see :func:`importance_grad`)."""
    log_pr = masked_log_softmax(kappa_m * sc, pmask)
    safe = torch.where(pmask[:, None, :], log_pr, torch.zeros_like(log_pr))
    mix = (wi[:, :, None] * safe).sum(1).masked_fill(~pmask, float("-inf"))
    log_q = torch.log_softmax(mix, dim=1)
    lt = log_t.to(sc.dtype)
    t = lt.exp()
    diff = torch.where(pmask, lt - log_q, torch.zeros_like(log_q))
    loss = (t * diff).sum(-1).double()
    e = torch.where(pmask, log_q.exp() - t, torch.zeros_like(t))  # Q − T, 0 off the partners
    gw = torch.einsum("crp,cp->cr", safe, e) * mask
    return loss, gw, (kappa_m * wi)[:, :, None] * e[:, None, :]


#: channels from which the CPU group path's ∂/∂v reads the partner rows in bfloat16 (where the
#: search does): importance CPU time at 2 cores, side by side, float32 → bf16: K = 512 (500 × 196)
#: 36.4-40.5 → 33.5-34.0 s; K = 256 (300 × 196) 13.4-13.5 → 12.4-13.2 s; K = 128 (2,000 × 64)
#: 9.9 → 10.1-10.6 s (no gain), so float32 below
BF16_GRAD_MIN_CHANNELS = 512


class _LocalGroup:
    """One partner group's importance problem on a CPU, with the partner rows its members are
    matched to gathered once per table ([U, K], U ≈ 70 % of the block at 500 × 196 × 512) so that
    all of its steps read them while they are in cache. The scores are sampled in the transposed
    layout (each partner row read once per step; ~1.4× faster than the row layout on the global
    rows) and ∂/∂v is one weighted ``embedding_bag`` — the same dot products as
    :func:`importance_grad`, so the same values."""

    def __init__(
        self, packed: PackedRegions, members: torch.Tensor, gpart: torch.Tensor, dtype: torch.dtype
    ) -> None:
        self.grp = _Group(packed, members, gpart, dtype)
        self.packed, self.members, self.gpart = packed, members, gpart

    def set_table(self, rp: torch.Tensor) -> None:
        """Score with the matches rp [G, Rm, P] from now on (gathers their rows, builds the patterns)."""
        g, rm, p = rp.shape
        glob = (self.gpart * rm)[None, None, :] + rp.long()
        rows, inv = torch.unique(glob.reshape(-1), return_inverse=True)
        self.b_u = self.grp.all_rows.index_select(0, rows)
        # with K >= BF16_GRAD_MIN_CHANNELS, ∂/∂v reads them in the search's dtype (bfloat16 where
        # the CPU has it, float32 sums; the scores that enter the loss stay float32)
        low = self.grp.dtype != torch.float32 and self.b_u.shape[1] >= BF16_GRAD_MIN_CHANNELS
        self.b_g = self.b_u.to(self.grp.dtype) if low else self.b_u
        n_u, gr = rows.numel(), g * rm
        member_col = torch.arange(gr, device=rp.device).repeat_interleave(p)
        perm = torch.argsort(inv * gr + member_col)
        # where each (i, r, j) lands in the transposed layout: the scores are read back with one
        # gather (~5× faster than scattering them with out[perm] = vals)
        self.unperm = torch.empty_like(perm)
        self.unperm[perm] = torch.arange(perm.numel(), device=rp.device)
        crow = torch.zeros(n_u + 1, dtype=torch.long, device=rp.device)
        crow[1:] = torch.bincount(inv, minlength=n_u).cumsum(0)
        self.t_crow, self.t_col, self.t_size = crow, member_col[perm], (n_u, gr)
        self.inv, self.offsets = inv, torch.arange(0, gr * p, p, device=rp.device)

    def scores(self, v: torch.Tensor) -> torch.Tensor:
        """Return s [G, Rm, P] in float32 at the table's r' under channel weights v [G, K]."""
        g, rm, k = self.grp.a.shape
        av = (self.grp.a * v[:, None, :]).reshape(g * rm, k)
        pat = torch.sparse_csr_tensor(
            self.t_crow, self.t_col, torch.zeros(self.t_col.numel()), size=self.t_size
        )
        vals = torch.sparse.sampled_addmm(pat, self.b_u, av.T, beta=0.0).values()
        return vals.index_select(0, self.unperm).view(g, rm, -1)

    def grad_v(self, ds: torch.Tensor) -> torch.Tensor:
        """Return ∂L/∂v [G, K] = Σ_r f̂_i^(r) ⊙ Σ_j ∂L/∂s_rj f̂_j^(r') (with K ≥
        :data:`BF16_GRAD_MIN_CHANNELS`, partner rows and ∂L/∂s rounded to the search's dtype:
        bfloat16 where the CPU has it, a relative error of ~2⁻⁸ in the gradient; else float32)."""
        g, rm, k = self.grp.a.shape
        y = torch.nn.functional.embedding_bag(
            self.inv,
            self.b_g,
            self.offsets,
            mode="sum",
            per_sample_weights=ds.reshape(-1).to(self.b_g.dtype),
        )
        return (self.grp.a * y.view(g, rm, k).float()).sum(1)


def _fit_group(
    packed: PackedRegions,
    pg: PartnerGroups,
    gi: int,
    log_t: torch.Tensor,
    steps: int,
    lr: float,
    momentum: float,
    weight_decay: float,
    kappa_m: float,
    dtype: torch.dtype,
    every: int,
    tol: float | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[float]]:
    """The importance fit of one partner group (CPU path of :func:`fit_importance`): return its
    members' best (w, v), their table under the returned v, and the group's summed loss per step
    taken (fewer than ``steps`` when ``tol`` stopped it)."""
    members, gpart = pg.groups[gi], pg.blocks[gi]
    _, rm, k = packed.shape
    g = members.numel()
    mask, pmask, lt = packed.mask[members], pg.pmask[members], log_t[members]
    grp = _LocalGroup(packed, members, gpart, dtype)
    v = torch.full((g, k), 1.0 / k)
    w = mask.float() / mask.sum(1, keepdim=True).clamp(min=1)
    buf_v, buf_w = torch.zeros_like(v), torch.zeros_like(w)
    best_loss = torch.full((g,), float("inf"), dtype=torch.float64)
    best_w, best_v = w.clone(), v.clone()
    best_table = torch.zeros((g, rm, pg.p), dtype=table_dtype(rm))
    best_fresh = torch.zeros(g, dtype=torch.bool)
    table, history = None, []
    for step in range(int(steps)):
        fresh = table is None or (every > 0 and step % every == 0)
        if fresh:
            table = grp.grp.match(v)
            grp.set_table(table)
        loss, gw, ds = _step_terms(grp.scores(v), pmask, w, lt, mask, kappa_m)
        gv = grp.grad_v(ds)
        better = loss < best_loss
        best_loss = torch.where(better, loss, best_loss)
        best_w[better], best_v[better] = w[better], v[better]
        best_fresh[better] = fresh
        if fresh:
            assert table is not None  # searched at this step
            best_table[better] = table[better]
        for x, gr, buf in ((v, gv, buf_v), (w, gw, buf_w)):
            gr = torch.nan_to_num(gr, nan=0.0, posinf=0.0, neginf=0.0) + weight_decay * x
            buf.mul_(momentum).add_(gr)
            x.sub_(lr * buf)
        project_simplex(v)
        project_simplex(w, mask)
        history.append(float(loss.sum()))
        if (
            tol is not None
            and step > 0
            and abs(history[-1] - history[-2]) <= tol * abs(history[-2])
        ):
            break
    stale = ~best_fresh
    if bool(stale.any()):
        best_table[stale] = _Group(packed, members[stale], gpart, dtype).match(best_v[stale])
    return best_w, best_v, best_table, history


#: the most matched pairs (c·Rm·P) of one chunk of the importance step: its temporaries take about
#: 70 bytes a pair (the quickstart's embed on 2 cores, two layers fitted at once: peak RSS 833 MB at
#: 4·10^6, 626 MB at 10^6, 5.5 s and 5.9 s)
CHUNK_PAIRS = 1_000_000


#: the most matched pairs (N·Rm·P) for which :func:`fit_importance` steps all images in chunks on a
#: CPU (with fewer than 128 channels): its patterns, kept for all the pairs, and its chunk's
#: temporaries take ~60 bytes a pair, the group path's memory does not grow with N
SMALL_PAIRS = 250_000


def _groups_pay(n: int, rm: int, k: int, pg: PartnerGroups, tol: float | None) -> bool:
    """Whether ``path="auto"`` fits the partner groups one by one on a CPU (:func:`_fit_groups`).

    Yes with K ≥ 128 channels: a partner row is then 512 B or more, and the group path takes 10 %
    less CPU at 500 × 196 × 512. Yes beyond :data:`SMALL_PAIRS` matched pairs, for memory: the
    quickstart's embed (450 × 64 × 16 / 32 / 64, 2.9·10^6 pairs a layer, two layers at once;
    process peak RSS, 2 runs each) peaked at 471-472 MB with chunks and 388-391 MB with groups,
    at about the same CPU time (importance, 1 thread, medians of 5: K = 16 3.3 s chunks / 3.6 s
    groups, K = 32 3.6 / 3.9 s, K = 64 4.8 / 4.2 s). Below, the group path's overhead per group
    loses (300 × 16 × 32: 0.60 s chunks, 0.78 s groups; 40 × 4 × 64: 0.033 / 0.065 s). And with
    ``tol`` (early stopping is the group path's)."""
    return k >= 128 or tol is not None or n * rm * max(pg.p, 1) > SMALL_PAIRS


def _chunks(
    pg: PartnerGroups, rm: int, max_pairs: int | None = None, parts: int = 1
) -> list[torch.Tensor]:
    """Image indices in chunks of whole partner groups with at most ``max_pairs`` matched pairs
    (c·Rm·P) each (at least one group per chunk), and at least ``parts`` chunks where there are
    that many groups (about equal in size); ``max_pairs`` None: :data:`CHUNK_PAIRS`."""
    max_pairs = CHUNK_PAIRS if max_pairs is None else max_pairs
    out: list[torch.Tensor] = []
    cur: list[torch.Tensor] = []
    size = 0
    per = rm * max(pg.p, 1)
    if parts > 1:
        total = sum(m.numel() for m in pg.groups) * per
        max_pairs = min(max_pairs, -(-total // parts))
    for members in pg.groups:
        if cur and size + members.numel() * per > max_pairs:
            out.append(torch.cat(cur))
            cur, size = [], 0
        cur.append(members)
        size += members.numel() * per
    if cur:
        out.append(torch.cat(cur))
    return out


def _matched_pattern(
    pg: PartnerGroups, table: torch.Tensor, idx: torch.Tensor, rm: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """CSR pattern of the matched pairs of images ``idx``: row (i, r), P entries per row whose
    columns are the global rows (j, r'(r; i, j)) of ``packed.unit``."""
    c, p = idx.numel(), pg.p
    col = (pg.partners[idx] * rm)[:, None, :] + table[idx].long()
    crow = torch.arange(0, c * rm * p + 1, p, device=table.device)
    return crow, col.reshape(-1)


def project_simplex(x: torch.Tensor, mask: torch.Tensor | None = None) -> None:
    """In place: abs, zero outside ``mask``, L1-normalise each row (the official projection).
    Rows that sum to 0 become uniform over their mask."""
    with torch.no_grad():
        x.abs_()
        if mask is not None:
            x.mul_(mask)
        tot = x.sum(dim=1, keepdim=True)
        ref = mask.to(x.dtype) if mask is not None else torch.ones_like(x)
        uni = ref / ref.sum(dim=1, keepdim=True).clamp(min=1)
        x.copy_(torch.where(tot > 0, x / tot.clamp(min=1e-30), uni))


def fit_importance(
    packed: PackedRegions,
    pg: PartnerGroups,
    log_t: torch.Tensor,
    *,
    steps: int = 20,
    lr: float = 0.05,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    kappa_m: float = 1000.0,
    match_dtype: str = "auto",
    rematch_every: int = 0,
    callback: Callable[[int], None] | None = None,
    search_threads: int = 1,
    workers: int = 1,
    tol: float | None = None,
    stats: dict | None = None,
    path: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, list[float], torch.Tensor]:
    """Return (w [N, Rm], v [N, K], loss per step, r' table [N, Rm, P]): per-image importance of
    regions and channels, and the region-matching table searched under the returned v.

    Minimises KL(P(X2|x_i) ‖ P_i) per image i (paper Sec. 3.3) with P_i(j) ∝ Π_r P_i^(r)(j)^(w_r),
    P_i^(r)(j) ∝ exp(κ_m Σ_k v_k f̂_i^(k,r) f̂_j^(k,r')), from w = 1/R_i, v = 1/K; after every
    SGD step w and v are projected back onto the simplex (abs + L1 normalisation).

    Ours: per image, the (w_i, v_i) returned are the evaluated iterate with the LOWEST loss (the
    uniform start included). With κ_m = 1000 the gradients reach the hundreds, so the paper's lr 0.05 steps far
    past the simplex scale (entries ~1/K) and the abs projection makes the walk non-monotone — on
    small cases the loss then rises from the start; keeping the best iterate never returns
    weights worse than uniform. ``history`` still records every step's loss as it was.

    The table returned is always r' under the returned v: the search done at that iterate when it
    was fresh, else searched again for those images only (so no final search over all images).

    Args:
        packed, pg, log_t: from :func:`pack_regions`, :func:`draw_partners`,
            :func:`target_log_similarity`.
        steps: SGD steps per image (paper: 20). lr / momentum / weight_decay: SGD (paper: 0.05,
            0.9, 5e-4). kappa_m: κ_m (paper: 1000).
        match_dtype: see :func:`resolve_match_dtype`.
        rematch_every: 0 (default, ours: the table is searched once) = search r' at the
            start (v = 1/K: plain cosine matching) and score every step with that table; k > 0 =
            search again with the current v every k steps (1 = the official code, which searches
            at every step: the O(N·J·R²·K) search then costs ~20× everything else — 507 s vs
            126 s for 500 images × 196 regions × 512 channels on 2 CPU cores). Either way the
            table returned is searched under the v returned.
        callback: called with the step index after every step (on a CPU: as the groups finish,
            each step index once, in order).
        search_threads: torch threads for the r' searches (see :mod:`.threads`; chunked path).
        workers: on a CPU, partner groups fitted at once, each on one thread; on the chunked
            path, chunks of whole groups stepped at once (every image's problem is independent,
            so this changes no value; see :mod:`.threads`).
        tol: stop a partner group early once its summed loss changes by at most ``tol`` times
            its previous value between two steps (ours; ``steps`` stays the maximum). None
            (default): always ``steps`` steps, as the paper.
        stats: a dict to receive ``steps_taken`` (one count per partner group).
        path: "auto" (on a CPU groups, except for small problems with K < 128 and no ``tol``:
            see :func:`_groups_pay`; chunks on a GPU), "groups" (CPU only) or "chunks".

    On the group path every partner group runs all its steps (and its searches) before the next
    one starts, with its matched partner rows gathered once (:class:`_LocalGroup`); on the chunk
    path all images step together in chunks (:func:`importance_grad`). Both compute the same values;
    ``history`` is the mean loss per image at each step (a stopped group counts with its last).
    """
    every = check_positive_int(
        rematch_every, "rematch_every (0: search r' once; k: every k steps)", minimum=0
    )
    n, rm, k = packed.shape
    dev = packed.unit.device
    v = torch.full((n, k), 1.0 / k, device=dev)
    w = packed.mask.float() / packed.mask.sum(1, keepdim=True).clamp(min=1)
    history: list[float] = []
    if pg.j == 0 or steps == 0:
        with torch_threads(search_threads):
            return w, v, history, matching_table(packed, pg, v, match_dtype)
    dtype = resolve_match_dtype(match_dtype, dev)
    if tol is not None and not tol >= 0:
        raise InputError(f"tol must be None or a number >= 0, got {tol!r}.")
    if path not in ("auto", "groups", "chunks") or (path == "groups" and dev.type != "cpu"):
        raise InputError(f"path must be 'auto', 'chunks' or (on a CPU) 'groups', got {path!r}.")
    if path == "groups" or (
        path == "auto" and dev.type == "cpu" and _groups_pay(n, rm, k, pg, tol)
    ):
        return _fit_groups(
            packed,
            pg,
            log_t,
            int(steps),
            lr,
            momentum,
            weight_decay,
            kappa_m,
            dtype,
            every,
            tol,
            callback,
            max(1, int(workers)),
            stats,
        )
    if tol is not None:
        raise InputError(
            "tol (early stopping) is implemented on the CPU path (path='groups') only; pass tol=None."
        )
    if stats is not None:
        stats["steps_taken"] = [int(steps)] * len(pg.groups)
    buf_v, buf_w = torch.zeros_like(v), torch.zeros_like(w)
    table = None
    cache: dict = {}
    best_loss = torch.full((n,), float("inf"), dtype=torch.float64, device=dev)
    best_w, best_v = w.clone(), v.clone()
    best_table = torch.zeros((n, rm, pg.p), dtype=table_dtype(rm), device=dev)
    best_fresh = torch.zeros(n, dtype=torch.bool, device=dev)  # best_table searched at best_v
    for step in range(int(steps)):
        fresh = table is None or (every > 0 and step % every == 0)
        loss, gv, gw, table = importance_grad(
            packed,
            pg,
            log_t,
            v,
            w,
            kappa_m,
            dtype,
            None if fresh else table,
            cache,
            search_threads,
            workers,
        )
        better = loss < best_loss  # per image: the iterate just evaluated (before this update)
        best_loss = torch.where(better, loss, best_loss)
        best_w[better], best_v[better] = w[better], v[better]
        best_fresh[better] = fresh
        if fresh:  # (a stale table is not kept: those images are searched again at the end)
            best_table[better] = table[better]
        for x, g, buf in ((v, gv, buf_v), (w, gw, buf_w)):
            g = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0) + weight_decay * x
            buf.mul_(momentum).add_(g)
            x.sub_(lr * buf)
        project_simplex(v)
        project_simplex(w, packed.mask)
        history.append(float(loss.sum()) / max(n, 1))
        if callback is not None:
            callback(step)
    if not bool(best_fresh.all()):
        with torch_threads(search_threads):
            matching_table(packed, pg, best_v, match_dtype, only=~best_fresh, out=best_table)
    return best_w, best_v, history, best_table


def _fit_groups(
    packed: PackedRegions,
    pg: PartnerGroups,
    log_t: torch.Tensor,
    steps: int,
    lr: float,
    momentum: float,
    weight_decay: float,
    kappa_m: float,
    dtype: torch.dtype,
    every: int,
    tol: float | None,
    callback: Callable[[int], None] | None,
    workers: int,
    stats: dict | None,
) -> tuple[torch.Tensor, torch.Tensor, list[float], torch.Tensor]:
    """The CPU path of :func:`fit_importance`: :func:`_fit_group` for every partner group, on
    ``workers`` threads (each torch op on the calling thread)."""
    n, rm, k = packed.shape
    w = torch.zeros((n, rm))
    v = torch.zeros((n, k))
    table = torch.zeros((n, rm, pg.p), dtype=table_dtype(rm))
    sums: list[list[float]] = [[] for _ in pg.groups]
    reported = 0

    def store(gi: int, res) -> None:
        nonlocal reported
        members = pg.groups[gi]
        w[members], v[members], table[members], sums[gi] = res
        done = sum(1 for x in sums if x)
        while callback is not None and reported < (done * steps) // len(pg.groups):
            callback(reported)
            reported += 1

    args = (log_t, steps, lr, momentum, weight_decay, kappa_m, dtype, every, tol)
    with torch.no_grad(), quiet_sparse(), torch_threads(1):
        if workers <= 1 or len(pg.groups) <= 1:
            for gi in range(len(pg.groups)):
                store(gi, _fit_group(packed, pg, gi, *args))
        else:
            with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
                futures = {
                    pool.submit(_fit_group, packed, pg, gi, *args): gi
                    for gi in range(len(pg.groups))
                }
                for fut in concurrent.futures.as_completed(futures):
                    store(futures[fut], fut.result())
    while callback is not None and reported < steps:
        callback(reported)
        reported += 1
    taken = [len(x) for x in sums]
    history = [
        sum(x[min(t, len(x) - 1)] for x in sums if x) / max(n, 1)
        for t in range(max(taken, default=0))
    ]
    if stats is not None:
        stats["steps_taken"] = taken
    return w, v, history, table


def matching_table(
    packed: PackedRegions,
    pg: PartnerGroups,
    v: torch.Tensor,
    match_dtype: str = "auto",
    only: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Return the region-matching table r'(r; i, j) as integers [N, Rm, P] (paper Sec. 3.3;
    :func:`table_dtype`), searched with the channel weights v, one partner group at a time;
    ``only`` (bool[N]): search these images only; ``out``: write into this table (the rows not
    searched keep their values) instead of a new one whose other rows are 0."""
    n, rm, _ = packed.shape
    dtype = resolve_match_dtype(match_dtype, packed.unit.device)
    if out is None:
        out = torch.zeros((n, rm, pg.p), dtype=table_dtype(rm), device=v.device)
    if pg.j == 0:
        return out
    with torch.no_grad():
        for members, gpart in zip(pg.groups, pg.blocks):
            if only is not None:
                members = members[only[members]]
                if members.numel() == 0:
                    continue
            out[members] = _Group(packed, members, gpart, dtype).match(v[members])
    return out
