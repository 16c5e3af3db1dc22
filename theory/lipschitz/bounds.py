"""``lipschitz_bounds(model)``: every certified upper bound and the attained lower bound, per layer.

For the map y -> x_k of an unfolded model, in the l2 norm, for every layer k = 1..K:

- upper bounds by method (``cheap.py``: "naive", "liplt", "eclipse-fast"; ``certificate.py``: "sdp", the
  LipSDP-Neuron certificate solved along the layer chain, its value recomputed from the data);
- the attained lower bound (``lower.py``: the largest Jacobian norm and finite-difference ratio found);
- the best upper / lower ratio (the truth lies in [lower, best upper]), the certified flag, wall times and
  the solver evidence.

A discontinuous model (support selection, negative thresholds) has no finite global constant: the result
says so (``finite = False`` with the reason) and its lower-bound search is reported as a *local* estimate
only. A plain torch callable (no structure to certify) gets the lower bound only (``certified = False``).
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from unfoldkit.theory.lipschitz import certificate as cert
from unfoldkit.theory.lipschitz.cheap import eclipse_fast_bound, liplt_bound, naive_bound
from unfoldkit.theory.lipschitz.lower import lipschitz_lower_bound
from unfoldkit.theory.lipschitz.structure import Chain, NoFiniteConstant, NotCovered, chain_of
from unfoldkit.unrolled.io import jsonable
from unfoldkit.unrolled.models import UnfoldedModel
from unfoldkit.unrolled.training.threads import limit_threads

Array = np.ndarray

#: the cheap methods, in the order they are reported
CHEAP = {"naive": naive_bound, "liplt": liplt_bound, "eclipse-fast": eclipse_fast_bound}
METHODS = (*CHEAP, "sdp")
SDP_SOLVERS = ("structured", "clarabel", "scs")
#: largest monolithic LMI (m + neurons) handed to cvxpy
CVXPY_MAX_SIZE = 600


@dataclass
class LipschitzBounds:
    """Per-layer Lipschitz bounds of y -> x_k (arrays of shape (K,), index k - 1), with provenance."""

    family: str
    num_layers: int
    finite: bool
    reason: str
    upper: dict[str, Array]
    lower: Array
    local: bool
    lower_detail: dict[str, Any]
    seconds: dict[str, float]
    evidence: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def certified(self) -> bool:
        """True when some certified finite upper bound exists for every layer."""
        return self.finite and bool(self.upper) and bool(np.all(np.isfinite(self.best_upper())))

    def best_upper(self) -> Array:
        """The smallest certified upper bound per layer (NaN where none; inf for no finite constant)."""
        if not self.finite:
            return np.full(self.num_layers, np.inf)
        if not self.upper:
            return np.full(self.num_layers, np.nan)
        stack = np.vstack(list(self.upper.values()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmin(stack, axis=0)

    def best_method(self) -> list[str | None]:
        """The method attaining ``best_upper`` per layer."""
        if not self.finite or not self.upper:
            return [None] * self.num_layers
        names = list(self.upper)
        stack = np.vstack([self.upper[n] for n in names])
        stack = np.where(np.isnan(stack), np.inf, stack)
        return [names[i] if np.isfinite(stack[i, k]) else None for k, i in enumerate(np.argmin(stack, axis=0))]

    def ratio(self) -> Array:
        """best upper / lower per layer: 1 means the constant is known exactly; inf when not finite."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.best_upper() / self.lower

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (NaN and inf as None / "inf")."""
        def arr(a: Array) -> list[Any]:
            return jsonable(np.asarray(a, dtype=np.float64))
        return {"family": self.family, "num_layers": self.num_layers, "finite": self.finite, "reason": self.reason,
                "certified": self.certified, "local": self.local,
                "upper": {k: arr(v) for k, v in self.upper.items()}, "best_upper": arr(self.best_upper()),
                "best_method": self.best_method(), "lower": arr(self.lower), "ratio": arr(self.ratio()),
                "lower_detail": self.lower_detail, "seconds": self.seconds, "evidence": self.evidence,
                "warnings": self.warnings}


def _layers(spec: str | Iterable[int], num_layers: int) -> list[int]:
    if spec == "all":
        return list(range(1, num_layers + 1))
    if spec == "last":
        return [num_layers]
    if spec == "none":
        return []
    if isinstance(spec, str):
        raise ValueError(f"sdp_layers must be 'all', 'last', 'none' or layer numbers, got {spec!r}")
    out = sorted({int(k) for k in spec})
    if any(k < 1 or k > num_layers for k in out):
        raise ValueError(f"sdp_layers must lie in 1..{num_layers}, got {out}")
    return out


def sdp_bound(chain: Chain, layer: int, *, solver: str = "structured", optimize: bool = True, iters: int = 300,
              time_limit: float | None = None, threads: int | None = 1) -> cert.Certificate:
    """The LipSDP-Neuron certificate of layer ``layer`` (certificate.py), its bound recomputed from the data.

    Multipliers: ECLipsE-Fast's (always feasible) refined by first-order descent ("structured"), or cvxpy's
    monolithic solve ("clarabel" / "scs", chains up to CVXPY_MAX_SIZE). Raises CertificateError on failure.
    ``threads`` as in ``lipschitz_bounds``."""
    with limit_threads(threads):
        return _sdp_bound(chain, layer, solver, optimize, iters, time_limit)


def _sdp_bound(chain: Chain, layer: int, solver: str, optimize: bool, iters: int,
               time_limit: float | None) -> cert.Certificate:
    sub = chain.truncated(layer)
    c = sub.readouts[-1]
    evidence: dict[str, Any] = {"solver": solver, "lmi_size": cert.monolithic_size(sub)}
    if solver == "structured":
        starts = {"eclipse-fast multipliers": lambda: cert.eclipse_multipliers(chain, layer),
                  "naive-recursion multipliers": lambda: cert.naive_multipliers(chain, layer),
                  "greedy diagonal-dominance multipliers": lambda: cert.initial_multipliers(sub, c)}
        candidates = {}
        for name, make in starts.items():
            try:
                cand = make()
                if cand is not None:
                    candidates[name] = (cert.certificate_value(sub, c, cand)[0], cand)
            except (cert.CertificateError, np.linalg.LinAlgError):
                continue
        if not candidates:
            raise cert.CertificateError("no starting multipliers certify")
        name = min(candidates, key=lambda k: candidates[k][0])
        rho0, lam = candidates[name]
        evidence["init"] = name
        evidence["start_bounds"] = {k: math.sqrt(v[0]) for k, v in candidates.items()}
        evidence["init_bound"] = math.sqrt(rho0)
        if optimize and sub.num_neurons:
            lam, info = cert.optimize_multipliers(sub, c, iters=iters, init=lam, time_limit=time_limit)
            evidence.update({"status": "optimised", **info})
        else:
            evidence["status"] = "not optimised (initial multipliers)"
    elif solver in ("clarabel", "scs"):
        if cert.monolithic_size(sub) > CVXPY_MAX_SIZE:
            raise cert.CertificateError(f"the monolithic LMI has size {cert.monolithic_size(sub)} > "
                                        f"{CVXPY_MAX_SIZE}: use solver='structured'")
        lam, info = cert.cvxpy_multipliers(sub, c, solver=solver.upper())
        evidence.update(info)
    else:
        raise ValueError(f"sdp solver must be one of {SDP_SOLVERS}, got {solver!r}")
    rho, check = cert.certificate_value(sub, c, lam)
    evidence.update(check)
    if cert.monolithic_size(sub) <= 800:
        evidence["lmi_min_eigenvalue"] = cert.lmi_min_eigenvalue(sub, c, lam, rho)
        if evidence["lmi_min_eigenvalue"] < -1e-9 * max(rho, 1.0):
            raise cert.CertificateError(f"the recomputed LMI has eigenvalue {evidence['lmi_min_eigenvalue']:.3g} < 0")
    if "solver_rho" in evidence:
        evidence["relative_gap_to_solver"] = (rho - evidence["solver_rho"]) / max(abs(rho), 1e-300)
    return cert.Certificate(math.sqrt(rho), rho, lam, "sdp", evidence)


def lipschitz_bounds(model: Any, *, methods: Sequence[str] = METHODS, sdp_solver: str = "structured",
                     sdp_layers: str | Iterable[int] = "all", sdp_optimize: str | Iterable[int] = "last",
                     sdp_iters: int = 300, sdp_time_limit: float | None = None, lower: bool = True,
                     lower_options: dict[str, Any] | None = None, seed: int = 0,
                     input_dim: int | None = None, threads: int | None = 1) -> LipschitzBounds:
    """Upper bounds by method, the attained lower bound and their ratio, for every layer k of y -> x_k.

    ``model``: an ``UnfoldedModel`` (white box: every method), or a torch callable y (B, m) -> (K, B, n)
    (black box: lower bound only; give ``input_dim``). ``methods``: any of "naive", "liplt",
    "eclipse-fast", "sdp". The SDP certificate is computed for ``sdp_layers`` ("all", "last", "none" or
    layer numbers), its multipliers optimised for ``sdp_optimize`` (the others keep ECLipsE-Fast's
    multipliers, still a certificate recomputed from the data) with ``sdp_iters`` descent steps (or
    ``sdp_time_limit`` seconds per layer). A failed SDP warns and leaves that layer to the cheap bounds.
    ``lower_options`` go to ``lower.lipschitz_lower_bound`` (seeded by ``seed``). ``threads``: torch and
    BLAS threads for the computation (default 1: the matrices are small and several threads contending on
    a shared machine were measured 10-40x slower; None leaves the settings alone).
    """
    with limit_threads(threads):
        return _lipschitz_bounds(model, methods, sdp_solver, sdp_layers, sdp_optimize, sdp_iters, sdp_time_limit,
                                 lower, lower_options, seed, input_dim)


def _lipschitz_bounds(model: Any, methods: Sequence[str], sdp_solver: str, sdp_layers: Any, sdp_optimize: Any,
                      sdp_iters: int, sdp_time_limit: float | None, lower: bool,
                      lower_options: dict[str, Any] | None, seed: int, input_dim: int | None) -> LipschitzBounds:
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown Lipschitz method(s) {unknown}; known: {', '.join(METHODS)}")
    if sdp_solver not in SDP_SOLVERS:
        raise ValueError(f"sdp_solver must be one of {SDP_SOLVERS}, got {sdp_solver!r}")
    lower_options = dict(lower_options or {})
    white = isinstance(model, UnfoldedModel)
    k_layers = model.num_layers if white else None
    upper: dict[str, Array] = {}
    seconds: dict[str, float] = {}
    evidence: dict[str, Any] = {}
    notes: list[str] = []
    finite, reason, chain = True, "", None
    if white:
        try:
            chain = chain_of(model)
        except NoFiniteConstant as err:
            finite, reason = False, err.reason
        except NotCovered as err:
            reason = f"not covered: {err}"
    else:
        reason = "black box (a callable without declared structure): no certified upper bound"
    if chain is not None:
        for name in methods:
            if name in CHEAP:
                start = time.perf_counter()
                upper[name] = CHEAP[name](chain)
                seconds[name] = time.perf_counter() - start
        if "sdp" in methods:
            start = time.perf_counter()
            values = np.full(chain.num_layers, np.nan)
            per_layer = {}
            opt = set(_layers(sdp_optimize, chain.num_layers))
            for k in _layers(sdp_layers, chain.num_layers):
                try:
                    c = _sdp_bound(chain, k, sdp_solver, k in opt, sdp_iters, sdp_time_limit)
                    values[k - 1] = c.bound
                    per_layer[k] = c.evidence
                except cert.CertificateError as err:
                    cheap = [float(v[k - 1]) for v in upper.values()]
                    msg = (f"layer {k}: the SDP certificate failed ({err}); falling back to the best cheap bound"
                           f"{f' {min(cheap):.6g}' if cheap else ' (none computed)'}")
                    warnings.warn(msg, RuntimeWarning, stacklevel=2)
                    notes.append(msg)
                    per_layer[k] = {"failed": str(err)}
            upper["sdp"] = values
            evidence["sdp"] = per_layer
            seconds["sdp"] = time.perf_counter() - start
    lower_detail: dict[str, Any] = {}
    lower_values = np.full(k_layers or 0, np.nan)
    if lower:
        start = time.perf_counter()
        lb = lipschitz_lower_bound(model, input_dim=input_dim, seed=seed, **lower_options)
        lower_values = lb.best
        lower_detail = lb.to_dict()
        seconds["lower"] = time.perf_counter() - start
        k_layers = len(lower_values)
    if k_layers is None:
        raise ValueError("a black-box callable needs lower=True (its layers are counted from its output)")
    result = LipschitzBounds(getattr(model, "family", "callable"), int(k_layers), finite, reason, upper,
                             lower_values, not finite, lower_detail, seconds, evidence, notes)
    if finite and upper and lower:
        bad = lower_values > result.best_upper() * (1 + 1e-6)
        if np.any(bad):  # a bug somewhere: never report an inconsistent sandwich silently
            raise RuntimeError(f"lower bound above a certified upper bound at layers {list(np.flatnonzero(bad) + 1)}: "
                               f"lower {lower_values[bad]}, upper {result.best_upper()[bad]}")
    if not finite:
        result.warnings.append(f"no finite global Lipschitz constant ({reason}); the lower-bound search is a "
                               "local estimate only")
    return result
