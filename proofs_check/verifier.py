"""The verifier: run a target (a classical algorithm or an unfolded model) on a batch and hold every
iterate against each guarantee the registry lists for it.

A measured objective gap uses a reference minimizer, so F(x_k) - F* lies in
[measured, measured + reference gap]; the verifier compares the *upper* end with the bound (a pass is
certified up to the stated tolerances). For the distance-based R in a bound it uses ||x0 - x_ref||,
enlarged by the certified ||x_ref - x*|| <= sqrt(2 gap / mu) when mu > 0. Bounds on the error to the true
signal (the LISTA family) are measured against the ground truth ``x``.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from unfoldkit.proofs_check.guarantees import MINIMIZER, Setting, coverage
from unfoldkit.proofs_check.lista_bounds import roundoff_gain
from unfoldkit.proofs_check.measure import measure, reference_distance_slack, roundoff_floor  # noqa: F401
from unfoldkit.proofs_check.targets import RUNNERS, Target, as_target, classical
from unfoldkit.proofs_check.verdict import Verdict, compare_to_bound
from unfoldkit.theory.rates import CLASSICAL_RATES
from unfoldkit.unrolled.problems.base import Problem, Reference


def verify(target: Target | Any, problem: Problem, y: torch.Tensor, bounds: Sequence[str] | None = None, *,
           x: torch.Tensor | None = None, reference: Reference | None = None, num_steps: int | None = None,
           step: Any = None, rel_tol: float = 1e-6, abs_tol: float | None = None, s: int | None = None,
           B: float | None = None, sigma: float | None = None, float64: bool = True) -> list[Verdict]:
    """Run ``target`` (an algorithm name with ``num_steps``/``step``, an ``UnfoldedModel`` or a ``Target``) on
    the batch ``y`` and check every iterate against each named guarantee (default: those the registry lists
    for it, ``coverage(target).default``: for a classical algorithm the PEP worst case, one SDP per step,
    only when named; an empty list for a target no theorem covers: ``coverage(target).reason`` says why).

    measured[k, b] <= bound[k(, b)] (1 + rel_tol) + abs_tol is checked for every layer k and instance b;
    ``abs_tol`` None (default) is the float64 round-off floor of each measured entry (``measure.roundoff_floor``:
    8 (n + K) eps times the magnitude of what is subtracted), so that exact, tight instances are not flagged.
    ``x``: the ground-truth signals (B, n), needed by bounds on the error to the signal (the LISTA family,
    on the class X(B, s) with noise ||eps||_1 <= sigma; s, B, sigma default to the batch's own values).
    ``reference``: a precomputed ``problem.reference(y)``. Models run in float64 unless ``float64=False``.
    """
    tgt = as_target(target, num_steps, step, float64)
    cov = coverage(tgt)
    chosen = cov.default if bounds is None else tuple(cov.get(n) for n in bounds)
    if not chosen:
        return []
    traj = tgt.run(problem, y)
    setting = Setting(tgt, problem, y, traj, x, reference, {"s": s, "B": B, "sigma": sigma})
    verdicts = []
    for g in chosen:
        bound = g.build(setting)
        if g.against == MINIMIZER:
            ref = setting.reference
            meas = measure(problem, y, traj, ref, bound.metric)
            floor = roundoff_floor(problem, y, traj, ref.x, bound.metric, ref) if abs_tol is None else abs_tol
        else:
            meas = traj.distance(x).double().cpu().numpy()
            gain = roundoff_gain(tgt.model) if tgt.model is not None and hasattr(tgt.model, "layer_weights") else 1
            floor = roundoff_floor(problem, y, traj, x, bound.metric, gain=gain) if abs_tol is None else abs_tol
        verdicts.append(compare_to_bound(meas, bound, rel_tol=rel_tol, abs_tol=floor))
    return verdicts


def verify_classical(problem: Problem, y: torch.Tensor, algorithm: str, num_steps: int,
                     bounds: tuple[str, ...] | None = None, step: float | None = None,
                     reference: Reference | None = None, rel_tol: float = 1e-6,
                     abs_tol: float = 0.0) -> list[Verdict]:
    """``verify`` for GD, ISTA or FISTA run for ``num_steps`` with a constant ``step`` (default 1/L), held
    against the classical rates of that algorithm (all of ``theory.rates.CLASSICAL_RATES`` by default)."""
    if algorithm not in RUNNERS or algorithm == "admm":
        raise ValueError(f"algorithm must be one of ['fista', 'gd', 'ista'], got {algorithm!r}")
    for name in bounds or ():
        alg = CLASSICAL_RATES[name][1] if name in CLASSICAL_RATES else None
        if alg is not None and alg != algorithm:
            raise ValueError(f"bound {name!r} governs {alg}, not {algorithm}")
    names = bounds or tuple(n for n, (_, alg, _) in CLASSICAL_RATES.items() if alg == algorithm)
    return verify(classical(algorithm, num_steps, step), problem, y, names, reference=reference,
                  rel_tol=rel_tol, abs_tol=abs_tol)
