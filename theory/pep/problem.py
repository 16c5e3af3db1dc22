"""What a performance-estimation problem (PEP) analyses, and what solving one returns.

A ``PepSpec`` fixes a first-order method with one parameter set per layer k = 0..K-1 (classical or
learned), a function class, a performance metric and an initial condition:

* ``gd``    x_{k+1} = x_k - gamma_k grad f(x_k)                                 f in F_{mu,L}
* ``pgm``   x_{k+1} = prox_{tau_k h}(x_k - gamma_k grad f(x_k))                  f in F_{mu,L}, h closed convex
* ``agd``   y_k = x_k + beta_k (x_k - x_{k-1}),  x_{k+1} = y_k - gamma_k grad f(y_k)
* ``fista`` y_k as above,  x_{k+1} = prox_{tau_k h}(y_k - gamma_k grad f(y_k))

with x_{-1} = x_0 (so beta_0 has no effect) and tau_k = gamma_k unless given. ISTA is ``pgm`` with
h = lambda ||.||_1; learned-step ISTA with per-layer thresholds theta_k is ``pgm`` with tau_k = theta_k / lambda.
If tau_k = c gamma_k with c != 1, a fixed point x of the layer satisfies 0 in grad f(x) + c dh(x): the method
then converges (if at all) to argmin f + c h, not to x* = argmin F = f + h, against which every metric is
measured. Metrics at x_N: F(x_N) - F*, ||x_N - x*||^2 (or ||x_N - x*||) and ||grad f(x_N)||^2 (smooth only);
the initial condition is ||x_0 - x*||^2 <= R^2 or F(x_0) - F* <= initial_gap.

Both engines (``pep.gram``: our Gram-matrix SDP; ``pep.pepit``: PEPit) solve the same spec. The worst case
scales exactly with L, R and initial_gap (change of variables x = s x~, f = L s^2 f~), so the Gram engine solves
the normalized problem (L = 1, unit initial quantity) and multiplies by ``PepSpec.scale``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from unfoldkit.theory.bound import Metric
from unfoldkit.unrolled.steps import fista_momentum
from unfoldkit.unrolled.validation import finite_array, finite_real, positive_real

METHODS = ("gd", "pgm", "agd", "fista")
COMPOSITE_METHODS = ("pgm", "fista")
MOMENTUM_METHODS = ("agd", "fista")
METHOD_ALIASES = {"ista": "pgm", "proximal_gradient": "pgm", "gradient_descent": "gd",
                  "accelerated_gradient": "agd", "momentum": "agd",
                  "accelerated_proximal_gradient": "fista"}
PEP_METRICS = (Metric.OBJECTIVE_GAP, Metric.SQ_DISTANCE, Metric.DISTANCE, Metric.SQ_GRAD_NORM)
INITIAL_CONDITIONS = ("distance", "function", "lyapunov")


def _schedule(name: str, value: Any, length: int | None, *, positive: bool) -> np.ndarray:
    """A 1-D float64 schedule with one finite value per layer (a torch tensor or a sequence is accepted)."""
    try:
        arr = finite_array(name, value)
    except (TypeError, ValueError) as err:
        if isinstance(err, ValueError) and "NaN" in str(err):
            raise ValueError(f"{name} contains NaN or inf: every layer needs a finite value") from None
        raise ValueError(f"{name} must be a 1-D array of real numbers, got {value!r}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array with one value per layer, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: a schedule needs at least one layer")
    if length is not None and arr.size != length:
        raise ValueError(f"{name} must have one value per layer ({length}), got {arr.size}")
    if positive and np.any(arr <= 0):
        bad = int(np.argmin(arr))
        raise ValueError(f"{name} must be > 0 at every layer, got {float(arr[bad])} at layer {bad}")
    return arr


@dataclass(frozen=True)
class PepSpec:
    """A method with per-layer parameters, a function class F_{mu,L} (+ closed convex h when composite),
    a metric at the last layer and an initial condition. Build it with ``make_spec`` (validated)."""

    method: str
    steps: np.ndarray
    momentum: np.ndarray
    prox_steps: np.ndarray
    L: float
    mu: float
    metric: str
    initial: str
    initial_value: float
    #: a general fixed-step method (``pep.methods.LinearMethod``) when ``method`` is "linear", else None
    linear: Any = None

    @property
    def num_layers(self) -> int:
        """K, the number of layers (steps) of the schedule."""
        return int(self.steps.shape[0])

    @property
    def composite(self) -> bool:
        """True for F = f + h with a prox step on h (pgm, fista, composite linear methods)."""
        if self.linear is not None:
            return bool(self.linear.composite)
        return self.method in COMPOSITE_METHODS

    @property
    def has_momentum(self) -> bool:
        """True when the gradient is taken at y_k = x_k + beta_k (x_k - x_{k-1}) (agd, fista)."""
        return self.method in MOMENTUM_METHODS

    def as_linear(self) -> Any:
        """The method in step-matrix form (``pep.methods``): a template becomes its constructor's matrices."""
        from unfoldkit.theory.pep.methods import gradient_method, proximal_gradient_method

        if self.linear is not None:
            return self.linear
        if self.composite:
            return proximal_gradient_method(self.steps, self.prox_steps,
                                            self.momentum if self.has_momentum else None, name=self.method)
        return gradient_method(self.steps, self.momentum if self.has_momentum else None, name=self.method)

    def truncated(self, num_layers: int) -> "PepSpec":
        """The same method stopped after ``num_layers`` layers (0 <= num_layers <= K)."""
        if not 0 <= num_layers <= self.num_layers:
            raise ValueError(f"num_layers must lie in [0, {self.num_layers}], got {num_layers}")
        n = num_layers
        linear = None if self.linear is None else self.linear.truncated(n)
        return replace(self, steps=self.steps[:n], momentum=self.momentum[:n], prox_steps=self.prox_steps[:n],
                       linear=linear)

    def normalized(self) -> "PepSpec":
        """The equivalent problem with L = 1 and unit initial quantity: steps gamma L, tau L, mu / L."""
        linear = None if self.linear is None else self.linear.scaled(self.L)
        return replace(self, steps=self.steps * self.L, prox_steps=self.prox_steps * self.L, mu=self.mu / self.L,
                       L=1.0, initial_value=1.0, linear=linear)

    @property
    def scale(self) -> float:
        """Worst case = scale * (worst case of ``normalized()``), by the change of variables above.

        ||x0 - x*||^2 <= R^2: objective L R^2, squared distance R^2, squared gradient L^2 R^2;
        F(x0) - F* <= D:      objective D, squared distance D / L, squared gradient L D.
        """
        c, L = self.initial_value, self.L
        sq_metric = Metric.SQ_DISTANCE if self.metric == Metric.DISTANCE else self.metric
        if self.initial == "distance":  # "lyapunov" is in function units, like "function"
            return c * {Metric.OBJECTIVE_GAP: L, Metric.SQ_DISTANCE: 1.0, Metric.SQ_GRAD_NORM: L * L}[sq_metric]
        return c * {Metric.OBJECTIVE_GAP: 1.0, Metric.SQ_DISTANCE: 1.0 / L, Metric.SQ_GRAD_NORM: L}[sq_metric]

    @property
    def tau_differs(self) -> bool:
        """True when some prox step tau_k differs from its gradient step gamma_k (composite only)."""
        return self.composite and not np.allclose(self.prox_steps, self.steps, rtol=1e-12, atol=0.0)

    def describe(self) -> str:
        """One line: method, class, metric and initial condition."""
        cls = f"F_{{{self.mu:g},{self.L:g}}}" + (" + closed convex h" if self.composite else "")
        init = {"distance": "||x0 - x*||^2 <= ", "function": "F(x0) - F* <= ",
                "lyapunov": "F(x0) - F* + mu/2 ||x0 - x*||^2 <= "}[self.initial] + f"{self.initial_value:g}"
        name = self.method if self.linear is None else self.linear.name
        return f"{name} with {self.num_layers} layer(s) on {cls}, metric {self.metric}, {init}"


def _metric_and_initial(metric: str, composite: bool, initial: str, R: float, initial_gap: float) -> float:
    """Check the metric (no gradient norm for a composite method) and the initial condition; return the initial
    quantity (R^2 for "distance", else initial_gap). ValueError naming the argument."""
    if metric not in PEP_METRICS:
        raise ValueError(f"metric must be one of {PEP_METRICS}, got {metric!r}")
    if metric == Metric.SQ_GRAD_NORM and composite:
        raise ValueError("metric sq_grad_norm is defined for smooth methods (gd, agd, smooth step matrices) only; "
                         "F = f + h has no gradient (use objective_gap or sq_distance)")
    if initial not in INITIAL_CONDITIONS:
        raise ValueError(f"initial must be one of {INITIAL_CONDITIONS}, got {initial!r}")
    return positive_real("R", R) ** 2 if initial == "distance" else positive_real("initial_gap", initial_gap)


def make_spec(steps: Any, *, L: float, mu: float = 0.0, method: str = "gd", momentum: Any = None,
              prox_steps: Any = None, metric: str = Metric.OBJECTIVE_GAP, initial: str = "distance",
              R: float = 1.0, initial_gap: float = 1.0) -> PepSpec:
    """Validate the inputs of a PEP and return its ``PepSpec``.

    steps: gamma_k > 0, one per layer (numpy array, sequence or torch tensor; K >= 1).
    momentum: beta_k for ``agd``/``fista`` (finite, any sign; default the Beck-Teboulle FISTA sequence of
    ``unrolled.steps.fista_momentum``); must be None for ``gd``/``pgm``.
    prox_steps: tau_k > 0 for ``pgm``/``fista`` (default tau_k = gamma_k); must be None for smooth methods.
    L > 0, 0 <= mu < L (mu = L is the single quadratic (L/2)||x - x*||^2, where the interpolation
    inequality degenerates). ``metric`` in PEP_METRICS (no gradient norm for composite methods).
    ``initial``: "distance" (||x0 - x*|| <= R) or "function" (F(x0) - F* <= initial_gap).
    Raises ValueError naming the offending argument.
    """
    if not isinstance(method, str):
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    method = METHOD_ALIASES.get(method.lower(), method.lower())
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS} (aliases {sorted(METHOD_ALIASES)}), got {method!r}")
    L = positive_real("L", L)
    mu = finite_real("mu", mu)
    if mu < 0:
        raise ValueError(f"mu must be >= 0 (0 for convex f), got {mu!r}")
    if mu > L:
        raise ValueError(f"mu must be <= L (strong convexity cannot exceed smoothness), got mu={mu!r} > L={L!r}")
    if mu == L:
        raise ValueError(f"mu = L = {L!r} is the single quadratic (L/2)||x - x*||^2, where the interpolation "
                         "condition degenerates; use mu < L")
    gam = _schedule("steps", steps, None, positive=True)
    K = gam.size
    if method in MOMENTUM_METHODS:
        beta = fista_momentum(K) if momentum is None else _schedule("momentum", momentum, K, positive=False)
    else:
        if momentum is not None:
            raise ValueError(f"momentum is only used by methods {MOMENTUM_METHODS}; method {method!r} takes none")
        beta = np.zeros(K)
    if method in COMPOSITE_METHODS:
        tau = gam.copy() if prox_steps is None else _schedule("prox_steps", prox_steps, K, positive=True)
    else:
        if prox_steps is not None:
            raise ValueError(f"prox_steps are only used by composite methods {COMPOSITE_METHODS}, not {method!r}")
        tau = np.zeros(K)
    init_val = _metric_and_initial(metric, method in COMPOSITE_METHODS, initial, R, initial_gap)
    for arr in (gam, beta, tau):
        arr.setflags(write=False)
    return PepSpec(method, gam, beta, tau, L, mu, metric, initial, init_val)


def make_linear_spec(method: Any, *, L: float, mu: float = 0.0, metric: str = Metric.OBJECTIVE_GAP,
                     initial: str = "distance", R: float = 1.0, initial_gap: float = 1.0) -> PepSpec:
    """The ``PepSpec`` of a general fixed-step method (``pep.methods.LinearMethod``: a smooth step matrix, or
    the composite form with proximal steps) on F_{mu,L} (+ closed convex h when composite), with the same
    metrics and initial conditions as ``make_spec`` plus ``initial="lyapunov"``:
    F(x_0) - F* + mu/2 ||x_0 - x*||^2 <= initial_gap. ``spec.steps`` holds, per layer, the step applied to the
    layer's own gradient (informational). Raises ValueError naming the argument."""
    from unfoldkit.theory.pep.methods import LinearMethod

    if not isinstance(method, LinearMethod):
        raise ValueError(f"method must be a pep.methods.LinearMethod (see its constructors), got "
                         f"{type(method).__name__}")
    L = positive_real("L", L)
    mu = finite_real("mu", mu)
    if mu < 0 or mu >= L:
        raise ValueError(f"mu must satisfy 0 <= mu < L, got mu={mu!r}, L={L!r}")
    init_val = _metric_and_initial(metric, method.composite, initial, R, initial_gap)
    K = method.num_layers
    if method.composite:
        own, tau = np.array(method.gammas, dtype=float), np.array(method.taus, dtype=float)
    else:
        own, tau = np.array([method.O[k + 1, k] for k in range(K)], dtype=float), np.zeros(K)
    beta = np.zeros(K)
    for arr in (own, beta, tau):
        arr.setflags(write=False)
    return PepSpec("linear", own, beta, tau, L, mu, metric, initial, init_val, linear=method)


def initial_worst_case(spec: PepSpec) -> float:
    """Worst case of the metric at x_0 itself (N = 0), in closed form (each value is attained, or approached,
    in F_{mu,L} by a quadratic (mu or L)/2 ||x - x*||^2, or by an h whose domain excludes x_0):

    * objective gap: L R^2 / 2 (smoothness) for f alone, +inf with h (x_0 may lie outside dom h), D under
      F(x_0) - F* <= D;
    * squared distance: R^2, or 2 D / mu under F(x_0) - F* <= D (strong convexity; +inf when mu = 0);
    * squared gradient norm: L^2 R^2, or 2 L D (||grad f||^2 <= 2 L (f - f*));
    * under the Lyapunov condition f(x0) - f* + mu/2 ||x0 - x*||^2 <= D (f alone): objective L D/(L + mu),
      squared distance D / mu, squared gradient 2 L^2 D/(L + mu) (the quadratic L/2 ||x - x*||^2 attains the
      first and third, mu/2 ||x - x*||^2 the second); with h, objective D (h can carry the whole gap);
    * distance: the square root of the squared distance.
    """
    c, L, mu = spec.initial_value, spec.L, spec.mu
    metric = Metric.SQ_DISTANCE if spec.metric == Metric.DISTANCE else spec.metric
    if spec.initial == "distance":
        v = {Metric.OBJECTIVE_GAP: float("inf") if spec.composite else 0.5 * L * c,
             Metric.SQ_DISTANCE: c, Metric.SQ_GRAD_NORM: L * L * c}[metric]
    elif spec.initial == "function":
        v = {Metric.OBJECTIVE_GAP: c, Metric.SQ_DISTANCE: 2.0 * c / mu if mu > 0 else float("inf"),
             Metric.SQ_GRAD_NORM: 2.0 * L * c}[metric]
    else:  # lyapunov: F(x0) - F* + mu/2 R^2 <= c with mu/2 R^2 <= f(x0) - f* <= L/2 R^2 (attained by quadratics)
        if spec.composite:
            v = {Metric.OBJECTIVE_GAP: c, Metric.SQ_DISTANCE: c / mu if mu > 0 else float("inf"),
                 Metric.SQ_GRAD_NORM: float("nan")}[metric]
        else:
            v = {Metric.OBJECTIVE_GAP: c * L / (L + mu), Metric.SQ_DISTANCE: c / mu if mu > 0 else float("inf"),
                 Metric.SQ_GRAD_NORM: 2.0 * L * L * c / (L + mu)}[metric]
    return float(np.sqrt(v)) if spec.metric == Metric.DISTANCE else float(v)


@dataclass(frozen=True)
class PepSolution:
    """One solved PEP (one layer count N): the worst case and the evidence for it.

    ``value`` is the worst case of the metric in the spec's units (+inf when the SDP is unbounded: no finite
    bound exists). ``dual_value`` is the dual certificate (the multiplier of the initial condition, scaled
    like ``value``): an upper bound whenever the dual is feasible. ``duality_gap`` is |primal - dual| / |primal|.
    ``primal_residual``: max(interpolation or initial-condition violation, -lambda_min(G)) / max(1, max G_ii);
    ``dual_residual``: max(-lambda_min(S), |stationarity in F|, -min multiplier) / max(1, largest multiplier),
    S the dual slack matrix. All three are recomputed from the data in the solved (normalized, possibly
    preconditioned) units, independently of the solver's own report; NaN where not available. Times in
    seconds: ``solve_time`` wall clock including model construction, ``solver_time`` as reported by the solver.
    ``attempts`` lists every solver tried with its status.
    """

    value: float
    num_layers: int
    engine: str
    solver: str
    status: str
    solve_time: float
    solver_time: float
    dual_value: float
    duality_gap: float
    primal_residual: float
    dual_residual: float
    gram_size: int
    num_constraints: int
    attempts: tuple[str, ...] = ()
    gram: np.ndarray | None = field(default=None, repr=False)
    multipliers: np.ndarray | None = field(default=None, repr=False)

    def summary(self) -> dict[str, Any]:
        """Scalars only (for JSON and Bound.extra)."""
        return {"value": self.value, "num_layers": self.num_layers, "engine": self.engine, "solver": self.solver,
                "status": self.status, "solve_time": self.solve_time, "solver_time": self.solver_time,
                "dual_value": self.dual_value, "duality_gap": self.duality_gap,
                "primal_residual": self.primal_residual, "dual_residual": self.dual_residual,
                "gram_size": self.gram_size, "num_constraints": self.num_constraints,
                "attempts": list(self.attempts)}
