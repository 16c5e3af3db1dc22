"""The safeguard's guarantee as a verdict (issue 18, mechanism 2): for a ``SafeguardedModel`` run on a batch,
r(x^{k+1}) <= bound_k = max(r(x^k), (1 - delta) mu_k) at every layer and sample, r the ISTA fixed-point
residual (proof: ``unrolled.safeguard``; docs/certified.md). Used by `unfoldkit stress` on a checkpoint trained
with ``--certify safeguard``, which hunts for a counterexample over batches and dictionary mismatches."""
from __future__ import annotations

import numpy as np

from unfoldkit.proofs_check.verdict import Verdict, compare_to_bound
from unfoldkit.theory.bound import Bound, Metric
from unfoldkit.unrolled.safeguard import BOUND_RTOL, SafeguardTrace

#: the framework; its update rules are recalled (docs/certified.md), the bound is proved from the construction
SAFE_L2O = "Heaton, Chen, Wang & Yin 2023, Safeguarded learned convex optimization, AAAI (arXiv 2003.01880)"


def safeguard_verdict(trace: SafeguardTrace, label: str = "") -> Verdict:
    """Verdict of r(x^{k+1}) <= max(r(x^k), (1 - delta) mu_k) for k = 0..K-1 and every sample of ``trace``,
    with the tolerance ``BOUND_RTOL`` of its dtype times r(x^0) per sample (round-off of the residuals)."""
    res = trace.residuals.detach().double().cpu().numpy()
    bound = Bound.build("safeguard-residual", np.arange(1, res.shape[0]), trace.bound.detach().double().cpu().numpy(),
                        metric=Metric.FIXED_POINT_RESIDUAL,
                        theorem="safeguard bound (derived from the construction and the averagedness of ISTA)",
                        source=SAFE_L2O, status="derived",
                        extra={"rule": trace.rule, "delta": trace.delta, "theta": trace.theta})
    tol = BOUND_RTOL.get(trace.residuals.dtype, 1e-4) * res[0][None, :]
    return compare_to_bound(res[1:], bound, rel_tol=0.0, abs_tol=np.broadcast_to(tol, res[1:].shape), label=label)
