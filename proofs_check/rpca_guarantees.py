"""Robust-PCA guarantees: the setting they read, their registry entries and the verifier of an RPCA run.

A robust-PCA run is an ``RPCATrajectory`` (pairs (L_k, S_k), matrices) on an ``RpcaBatch`` (M, L0, S0 and
the constants theory needs), not a ``Problem`` with vector iterates, so it has its own ``RpcaSetting``; the
``Guarantee.build`` functions here accept only that (a ``TypeError`` otherwise) and their ``Coverage``
entries carry ``setting="rpca"`` and live in ``RPCA_REGISTRY`` (``guarantees.coverage`` answers for them;
``guarantees.REGISTRY`` stays the sparse-recovery registry its consumers iterate).

Targets (the algorithm of an ``RPCATrajectory``: a classical solver's name or a model's family):
``pcp-admm`` (Candes et al. 2011 Thm 1.1, on the PCP minimizer), ``altproj`` (Netrapalli et al. 2014 Thm 1),
``scaledgd`` and ``lrpca`` (Cai, Liu & Yin 2021, LRPCA's recovery theorem; the thresholds are checked
layer by layer against the ground-truth error ||L_k - L0||_inf), and ``rpca-ista``, ``pcp-weighted``,
``scaledgd-correction``, ``corona``: no theorem (the reasons in ``theory.rpca.RPCA_NOT_COVERED``).
Theorems, statuses and constants: ``theory.rpca`` and docs/theory_sources.md ("Robust PCA").
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Sequence

import numpy as np
import torch

from unfoldkit.proofs_check.guarantees import SCHEDULE_RTOL, Coverage, Guarantee, coverage
from unfoldkit.proofs_check.verdict import NOT_APPLICABLE, Verdict, compare_to_bound
from unfoldkit.theory.bound import Bound, Metric
from unfoldkit.theory.rpca import (
    ALTPROJ_SOURCE,
    LRPCA_C_ALPHA,
    LRPCA_SOURCE,
    PCP_SOURCE,
    RPCA_NOT_COVERED,
    altproj_bound,
    lrpca_bound,
    pcp_bound,
)
from unfoldkit.unrolled.problems.rpca import RpcaBatch, RpcaReference
from unfoldkit.unrolled.rpca import RPCATrajectory

#: what the metric ||L - L0||_F is measured on: the run's iterates, or the PCP minimizer (the reference)
GROUND_TRUTH, PCP_MINIMIZER = "ground truth L0", "PCP minimizer vs ground truth L0"


def _array(value: Any) -> np.ndarray:
    """A schedule (floats, 0-d tensors, lists of per-instance values) as float64 numpy."""
    if isinstance(value, torch.Tensor):
        return value.detach().double().cpu().numpy()
    if isinstance(value, (list, tuple)):
        return np.asarray([_array(v) for v in value], dtype=np.float64)
    return np.asarray(value, dtype=np.float64)


@dataclass
class RpcaSetting:
    """Everything an RPCA guarantee reads: the target name, its run, the batch (M, L0, S0, constants), an
    optional PCP reference, and options (``c_alpha``: LRPCA's sparsity constant; ``threshold_rtol``)."""

    target: str
    trajectory: RPCATrajectory
    batch: RpcaBatch
    reference: RpcaReference | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.batch.M.shape[-2]), int(self.batch.M.shape[-1])

    @cached_property
    def constants(self) -> dict[str, np.ndarray]:
        return {k: v.double().cpu().numpy() for k, v in self.batch.constants.items()}

    @cached_property
    def L0(self) -> torch.Tensor:
        return self.batch.L.detach().double().cpu()

    @cached_property
    def L(self) -> torch.Tensor:
        """The run's L_k, (K+1, B, n1, n2), float64."""
        return self.trajectory.L.detach().double().cpu()

    @cached_property
    def eps(self) -> float:
        """Machine epsilon of the run's dtype (a float32 model rounds more)."""
        return float(torch.finfo(self.trajectory.L.dtype).eps)

    @cached_property
    def roundoff(self) -> np.ndarray:
        """Absolute round-off of an entry of L_k, per (k, b): 8 (n1 + n2 + K) eps (||L_k||_inf + ||L0||_inf)."""
        n1, n2 = self.shape
        c = 8.0 * (n1 + n2 + self.trajectory.num_steps) * self.eps
        return c * (self.L.abs().amax(dim=(-2, -1)).numpy() + self.l0_inf[None, :])

    @cached_property
    def l0_inf(self) -> np.ndarray:
        return self.L0.abs().amax(dim=(-2, -1)).numpy()

    @cached_property
    def error_inf(self) -> np.ndarray:
        """||L_k - L0||_inf, (K+1, B): uses the ground truth."""
        return (self.L - self.L0[None]).abs().amax(dim=(-2, -1)).numpy()

    @cached_property
    def error_fro(self) -> np.ndarray:
        """||L_k - L0||_F, (K+1, B): uses the ground truth."""
        return torch.linalg.matrix_norm(self.L - self.L0[None]).numpy()

    @cached_property
    def noise(self) -> tuple[np.ndarray, np.ndarray]:
        """max |M - L0 - S0| per instance and its float round-off allowance."""
        M = self.batch.M.detach().double().cpu()
        S0 = self.batch.S.detach().double().cpu()
        noise = (M - self.L0 - S0).abs().amax(dim=(-2, -1)).numpy()
        eps = float(torch.finfo(self.batch.M.dtype).eps)
        return noise, 8.0 * eps * (M.abs().amax(dim=(-2, -1)).numpy() + self.l0_inf)

    @cached_property
    def sigma_L0(self) -> np.ndarray:
        return torch.linalg.svdvals(self.L0).numpy()

    @cached_property
    def sigma1_M(self) -> np.ndarray:
        return torch.linalg.matrix_norm(self.batch.M.detach().double().cpu(), ord=2).numpy()


def _require(st: Any, name: str) -> RpcaSetting:
    if not isinstance(st, RpcaSetting):
        raise TypeError(f"the robust-PCA guarantee {name!r} reads an RpcaSetting (proofs_check.rpca_guarantees), "
                        f"got {type(st).__name__}: use verify_rpca")
    return st


def _params(st: RpcaSetting, *keys: str) -> dict[str, Any]:
    missing = [k for k in keys if k not in st.trajectory.params]
    if missing:
        raise ValueError(f"{st.target}: the trajectory's params lack {missing} (have {sorted(st.trajectory.params)})")
    return st.trajectory.params


def _lrpca() -> Guarantee:
    def build(st: Any) -> Bound:
        st = _require(st, "lrpca-thm1")
        p = _params(st, "rank", "zeta", "eta")
        c, (noise, tol) = st.constants, st.noise
        rank = int(p["rank"])
        sig = st.sigma_L0[:, rank - 1] if rank <= st.sigma_L0.shape[1] else np.zeros(len(st.batch))
        return lrpca_bound(
            rank=c["rank"], model_rank=rank, incoherence=c["incoherence"], condition=c["condition"],
            sparsity_max=c["sparsity_max"], sigma_r=sig, zeta=_array(p["zeta"]), eta=_array(p["eta"]),
            l0_inf=st.l0_inf, error_inf=st.error_inf, noise=noise, noise_tol=tol,
            c_alpha=float(st.options.get("c_alpha") or LRPCA_C_ALPHA),
            threshold_rtol=float(st.options.get("threshold_rtol") or SCHEDULE_RTOL),
            threshold_atol=np.vstack([np.zeros((1, len(st.batch))), st.roundoff[:-1]]).max(axis=0))

    return Guarantee("lrpca-thm1", Metric.LOWRANK_ERROR, GROUND_TRUTH,
                     f"LRPCA recovery guarantee (Theorem 1, recalled), {LRPCA_SOURCE}", build)


def _altproj() -> Guarantee:
    def build(st: Any) -> Bound:
        st = _require(st, "altproj-thm1")
        p = _params(st, "rank", "beta")
        c, (noise, tol) = st.constants, st.noise
        n1, n2 = st.shape
        return altproj_bound(n1=n1, n2=n2, rank=c["rank"], model_rank=int(p["rank"]), incoherence=c["incoherence"],
                             sparsity_max=c["sparsity_max"], beta=float(p["beta"]), sigma1_M=st.sigma1_M,
                             num_steps=st.trajectory.num_steps, noise=noise, noise_tol=tol)

    return Guarantee("altproj-thm1", Metric.LOWRANK_ERROR, GROUND_TRUTH,
                     f"AltProj exact recovery (Theorem 1, recalled), {ALTPROJ_SOURCE}", build)


def _pcp() -> Guarantee:
    def build(st: Any) -> Bound:
        st = _require(st, "pcp-thm1.1")
        p = _params(st, "lam")
        c, (noise, tol) = st.constants, st.noise
        n1, n2 = st.shape
        return pcp_bound(n1=n1, n2=n2, rank=c["rank"], incoherence=c["incoherence"], sparsity=c["sparsity"],
                         lam=float(p["lam"]), noise=noise, noise_tol=tol)

    return Guarantee("pcp-thm1.1", Metric.LOWRANK_ERROR, PCP_MINIMIZER,
                     f"PCP exact recovery of the minimizer (Theorem 1.1, recalled), {PCP_SOURCE}", build)


def _uncovered(name: str) -> Coverage:
    return Coverage(name, (), RPCA_NOT_COVERED[name], setting="rpca")


RPCA_REGISTRY: dict[str, Coverage] = {c.target: c for c in (
    Coverage("pcp-admm", (_pcp(),), setting="rpca"),
    Coverage("altproj", (_altproj(),), setting="rpca"),
    Coverage("scaledgd", (_lrpca(),), setting="rpca"),
    _uncovered("rpca-ista"),
    Coverage("lrpca", (_lrpca(),), setting="rpca"),
    _uncovered("pcp-weighted"),
    _uncovered("scaledgd-correction"),
    _uncovered("corona"),
)}


def target_name(trajectory: RPCATrajectory) -> str:
    """The registry name of a run: its algorithm (a classical solver or a model family), '_' read as '-'."""
    return str(trajectory.algorithm).replace("_", "-")


def verify_rpca(trajectory: RPCATrajectory, batch: RpcaBatch, bounds: Sequence[str] | None = None, *,
                target: str | None = None, reference: RpcaReference | None = None, rel_tol: float = 1e-6,
                abs_tol: float | np.ndarray | None = None, c_alpha: float | None = None,
                threshold_rtol: float | None = None) -> list[Verdict]:
    """Hold a robust-PCA run against each guarantee the registry lists for it (or the named ``bounds``), as
    ``verify`` does for sparse recovery: one ``Verdict`` per bound, "holds", "violated" or "not applicable"
    (an assumption fails, or cannot be checked), with margins and tightness; [] for a target no theorem
    covers (``coverage(name).reason`` says why).

    The metric ||L_k - L0||_F is measured against the ground truth ``batch.L`` for every k and instance; the
    PCP theorem bounds the minimizer instead, measured on ``reference.L`` when a reference is given (else
    NaN: the theorem's constants make it unchecked anyway). ``abs_tol`` None is the round-off floor
    8 (n1 + n2 + K) eps (||L_k||_F + ||L0||_F) (eps of the run's dtype). ``target`` overrides the run's
    algorithm name; ``c_alpha`` and ``threshold_rtol`` tune LRPCA's checks (``theory.rpca.lrpca_bound``).
    """
    name = target or target_name(trajectory)
    cov = coverage(name)
    if cov.guarantees and cov.setting != "rpca":
        raise ValueError(f"{name!r} is a sparse-recovery target: use proofs_check.verify")
    chosen = cov.default if bounds is None else tuple(cov.get(n) for n in bounds)
    if not chosen:
        return []
    if trajectory.L.shape[1:] != batch.L.shape:
        raise ValueError(f"trajectory iterates have shape {tuple(trajectory.L.shape[1:])} per layer but the batch's "
                         f"L0 has shape {tuple(batch.L.shape)}")
    setting = RpcaSetting(name, trajectory, batch, reference,
                          {"c_alpha": c_alpha, "threshold_rtol": threshold_rtol})
    verdicts = []
    for g in chosen:
        bound = g.build(setting)
        if g.against == PCP_MINIMIZER:
            if reference is None:
                meas = np.full((1, len(batch)), np.nan)
            else:
                ref_L = reference.L.detach().double().cpu()
                meas = torch.linalg.matrix_norm(ref_L - setting.L0).numpy()[None, :]
            floor = 0.0 if abs_tol is None else abs_tol
        else:
            meas = setting.error_fro[bound.iterations]
            if abs_tol is None:
                n1, n2 = setting.shape
                c = 8.0 * (n1 + n2 + trajectory.num_steps) * setting.eps
                norms = torch.linalg.matrix_norm(setting.L).numpy() + torch.linalg.matrix_norm(setting.L0).numpy()[None]
                floor = c * norms[bound.iterations]
            else:
                floor = abs_tol
        v = compare_to_bound(meas, bound, rel_tol=rel_tol, abs_tol=floor)
        unchecked = [a for a in bound.assumptions if a.holds is None]
        if v.state == NOT_APPLICABLE and not bound.failed and unchecked:
            reason = "bound not applicable: unchecked: " + "; ".join(str(a) for a in unchecked)
            v = replace(v, details={**v.details, "reason": reason})
        verdicts.append(v)
    return verdicts
