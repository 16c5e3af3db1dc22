"""Any fixed-step first-order method, given by its step matrices, and the classical methods as constructors.

Smooth form (Drori & Teboulle 2014, Math. Program. 145, Sec. 2, "fixed-step first-order methods"; Taylor,
Hendrickx & Glineur 2017, Math. Program. 161, Sec. 4): the gradient is queried at y_0 = x_0 and

    y_k = x_0 - sum_{i<k} H[k, i] grad f(y_i),      k = 1..N-1,
    x_n = x_0 - sum_{i<n} O[n, i] grad f(y_i),      n = 0..N   (the output after n layers),

H strictly lower triangular (N x N), O (N+1) x N with O[n, i] = 0 for i >= n. H and O are in absolute
units (they multiply grad f); the usual normalized step matrix is L H. The output after n layers is what
the metric measures (x_n; for OGM the secondary sequence y_n, for triple momentum its third sequence).

Composite form, with a proximal step per layer (Taylor, Hendrickx & Glineur 2017, SIAM J. Optim. 27): the
gradient of f is queried at y_k, the proximal step gives p_{k+1} = prox_{tau_k h}(y_k - gamma_k grad f(y_k))
= y_k - gamma_k grad f(y_k) - tau_k s_{k+1} with s_{k+1} in dh(p_{k+1}), and every query is an affine
combination of x_0 = p_0 and the previous proximal outputs,

    y_k = sum_{j<=k} C[k, j] p_j,   rows of C summing to 1,      output after n layers: p_n.

ISTA is C = shift (y_k = p_k), FISTA y_k = p_k + beta_k (p_k - p_{k-1}); a learned momentum matrix is any C.

Every method here is written as its recurrence run on coefficient vectors (``_Tracer``), never by copying a
matrix by hand; the constructors cite the paper each recurrence is from.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from unfoldkit.unrolled.validation import finite_array, positive_int, positive_real

SMOOTH, COMPOSITE = "smooth", "composite"


@dataclass(frozen=True)
class LinearMethod:
    """A fixed-step method in one of the two forms of the module docstring.

    smooth: ``H`` (N, N) query coefficients, ``O`` (N + 1, N) output coefficients.
    composite: ``C`` (N, N + 1) combination of p_0..p_k for y_k, ``gammas`` and ``taus`` (N,) the gradient
    and proximal steps of each layer. ``name`` is for reports.
    """

    form: str
    H: np.ndarray | None = None
    O: np.ndarray | None = None
    C: np.ndarray | None = None
    gammas: np.ndarray | None = None
    taus: np.ndarray | None = None
    name: str = "linear"

    @property
    def num_layers(self) -> int:
        return int((self.H if self.form == SMOOTH else self.C).shape[0])

    @property
    def composite(self) -> bool:
        return self.form == COMPOSITE

    def truncated(self, n: int) -> "LinearMethod":
        """The first n layers, with the output after n layers."""
        if not 0 <= n <= self.num_layers:
            raise ValueError(f"num_layers must lie in [0, {self.num_layers}], got {n}")
        if self.form == SMOOTH:
            return replace(self, H=self.H[:n, :n], O=self.O[:n + 1, :n])
        return replace(self, C=self.C[:n, :n + 1], gammas=self.gammas[:n], taus=self.taus[:n])

    def scaled(self, L: float) -> "LinearMethod":
        """The same method in normalized units (every step multiplied by L)."""
        if self.form == SMOOTH:
            return replace(self, H=self.H * L, O=self.O * L)
        return replace(self, gammas=self.gammas * L, taus=self.taus * L)

    def describe(self) -> str:
        return f"{self.name} ({self.form} step-matrix form, {self.num_layers} layer(s))"


def smooth_method(H: object, O: object | None = None, name: str = "linear") -> LinearMethod:
    """Validate a smooth step-matrix method: H (N, N) strictly lower triangular, O (N + 1, N) with
    O[n, i] = 0 for i >= n (default: outputs = queries, and the last output x_N = x_0 - sum H_N g, i.e. O = H
    with a final row that the caller must then give: without O, H must be (N + 1, N) and serves for both)."""
    Hm = finite_array("H", H)
    if Hm.ndim != 2:
        raise ValueError(f"H must be a 2-D step matrix, got shape {Hm.shape}")
    if O is None:
        if Hm.shape[0] != Hm.shape[1] + 1:
            raise ValueError(f"without O, H must have shape (N + 1, N) (queries x_0..x_N), got {Hm.shape}")
        Om, Hm = Hm, Hm[:-1]
    else:
        Om = finite_array("O", O)
    N = Hm.shape[1]
    if Hm.shape != (N, N) or N < 1:
        raise ValueError(f"H must be square (N, N) with N >= 1, got shape {Hm.shape}")
    if Om.shape != (N + 1, N):
        raise ValueError(f"O must have shape (N + 1, N) = ({N + 1}, {N}), got {Om.shape}")
    if np.any(np.triu(Hm) != 0):
        raise ValueError("H must be strictly lower triangular: y_k may use only the gradients at y_0..y_{k-1}")
    if np.any(np.triu(Om) != 0):
        raise ValueError("O must satisfy O[n, i] = 0 for i >= n: the output after n layers uses gradients i < n")
    return LinearMethod(SMOOTH, H=Hm, O=Om, name=name)


def composite_method(C: object, gammas: object, taus: object | None = None, name: str = "linear") -> LinearMethod:
    """Validate a composite method: C (N, N + 1) with C[k, j] = 0 for j > k and rows summing to 1 (within
    1e-12), gammas > 0 (N,), taus > 0 (N,) (default taus = gammas)."""
    Cm = finite_array("C", C)
    if Cm.ndim != 2 or Cm.shape[1] != Cm.shape[0] + 1 or Cm.shape[0] < 1:
        raise ValueError(f"C must have shape (N, N + 1) with N >= 1, got {Cm.shape}")
    N = Cm.shape[0]
    if np.any(np.triu(Cm, 1) != 0):
        raise ValueError("C must satisfy C[k, j] = 0 for j > k: y_k combines p_0..p_k only")
    if np.any(np.abs(Cm.sum(axis=1) - 1.0) > 1e-12):
        raise ValueError("every row of C must sum to 1 (y_k is an affine combination of p_0..p_k)")
    g = finite_array("gammas", gammas).reshape(-1)
    t = g.copy() if taus is None else finite_array("taus", taus).reshape(-1)
    for nm, v in (("gammas", g), ("taus", t)):
        if v.shape != (N,):
            raise ValueError(f"{nm} must have one value per layer ({N}), got shape {v.shape}")
        if np.any(v <= 0):
            raise ValueError(f"{nm} must be > 0 at every layer")
    return LinearMethod(COMPOSITE, C=Cm, gammas=g, taus=t, name=name)


class _Tracer:
    """Runs a smooth recurrence on coefficient vectors over the basis (x_0, g_0, ..., g_{N-1}) (column 0 is
    x_0's coefficient), recording each query point's gradient coefficients: the step matrices of a method
    written as its own recurrence."""

    def __init__(self, N: int) -> None:
        self.N = N
        self.queries: list[np.ndarray] = []

    def x0(self) -> np.ndarray:
        v = np.zeros(self.N + 1)
        v[0] = 1.0
        return v

    def grad(self, y: np.ndarray) -> np.ndarray:
        """The gradient basis vector at y (a new query, in order)."""
        k = len(self.queries)
        self.queries.append(y.copy())
        g = np.zeros(self.N + 1)
        g[k + 1] = 1.0
        return g

    def method(self, outputs: list[np.ndarray], name: str) -> LinearMethod:
        N = self.N
        if len(self.queries) != N or len(outputs) != N + 1:
            raise AssertionError("a recurrence must query N gradients and give N + 1 outputs")
        for v in self.queries + outputs:
            if abs(v[0] - 1.0) > 1e-12:
                raise AssertionError("points must be x_0 plus gradient terms")
        H = -np.array([q[1:] for q in self.queries])
        O = -np.array([o[1:] for o in outputs])
        H[np.abs(H) < 1e-300] = 0.0
        O[np.abs(O) < 1e-300] = 0.0
        return smooth_method(np.tril(H, -1), np.tril(O, -1), name=name)


# ---------------------------------------------------------------------------------------- constructors
def gradient_method(steps: object, momentum: object | None = None, name: str = "gd") -> LinearMethod:
    """GD x_{k+1} = y_k - gamma_k grad f(y_k) with y_k = x_k + beta_k (x_k - x_{k-1}) (beta = 0: plain GD;
    the ``gd`` and ``agd`` templates of ``pep.problem``), outputs x_n."""
    gam = finite_array("steps", steps).reshape(-1)
    N = gam.size
    beta = np.zeros(N) if momentum is None else finite_array("momentum", momentum).reshape(-1)
    t = _Tracer(N)
    x_prev = x = t.x0()
    outs = [x]
    for k in range(N):
        y = x + beta[k] * (x - x_prev) if beta[k] != 0 else x
        x_prev, x = x, y - gam[k] * t.grad(y)
        outs.append(x)
    return t.method(outs, name)


def proximal_gradient_method(steps: object, prox_steps: object | None = None, momentum: object | None = None,
                             name: str = "pgm") -> LinearMethod:
    """ISTA / FISTA in the composite form: y_k = p_k + beta_k (p_k - p_{k-1}) (beta = 0: ISTA), the
    ``pgm`` and ``fista`` templates of ``pep.problem``."""
    gam = finite_array("steps", steps).reshape(-1)
    N = gam.size
    beta = np.zeros(N) if momentum is None else finite_array("momentum", momentum).reshape(-1)
    C = np.zeros((N, N + 1))
    C[0, 0] = 1.0  # x_{-1} = x_0: beta_0 has no effect
    for k in range(1, N):
        C[k, k] = 1.0 + beta[k]
        C[k, k - 1] = -beta[k]
    return composite_method(C, gam, prox_steps, name=name)


def ogm_thetas(N: int) -> np.ndarray:
    """theta_0 = 1, theta_{i+1} = (1 + sqrt(1 + 4 theta_i^2)) / 2 for i < N - 1, and the last one
    theta_N = (1 + sqrt(1 + 8 theta_{N-1}^2)) / 2 (Kim & Fessler 2016, Math. Program. 159, Eq. (6.3))."""
    th = [1.0]
    for i in range(N):
        c = 8.0 if i == N - 1 else 4.0
        th.append((1.0 + math.sqrt(1.0 + c * th[-1] ** 2)) / 2.0)
    return np.array(th)


def ogm(N: int, L: float) -> LinearMethod:
    """Optimized gradient method (Kim & Fessler 2016, Math. Program. 159, OGM1): x_{i+1} = y_i - grad f(y_i)/L,
    y_{i+1} = x_{i+1} + (theta_i - 1)/theta_{i+1} (x_{i+1} - x_i) + theta_i/theta_{i+1} (x_{i+1} - y_i), with
    ``ogm_thetas``. The output after N layers is y_N, where OGM's bound f(y_N) - f* <= L R^2 / (2 theta_N^2)
    holds (Kim & Fessler 2016, Thm 2; tight: Drori 2017)."""
    N, L = positive_int("N", N), positive_real("L", L)
    th = ogm_thetas(N)
    t = _Tracer(N)
    x = y = t.x0()
    outs = [y]
    for i in range(N):
        x_new = y - t.grad(y) / L
        y = x_new + (th[i] - 1.0) / th[i + 1] * (x_new - x) + th[i] / th[i + 1] * (x_new - y)
        x = x_new
        outs.append(y)
    return t.method(outs, f"ogm (N = {N})")


def ogm_g(N: int, L: float) -> LinearMethod:
    """OGM-G (Kim & Fessler 2021, J. Optim. Theory Appl. 188, "Optimizing the efficiency of first-order
    methods for decreasing the gradient of smooth convex functions", Eq. (6.1)): with the reversed sequence
    theta~_N = 1, theta~_i = (1 + sqrt(1 + 4 theta~_{i+1}^2))/2 for i >= 1 and theta~_0 = (1 + sqrt(1 + 8
    theta~_1^2))/2,  y_{i+1} = x_i - grad f(x_i)/L,
    x_{i+1} = y_{i+1} + (theta~_i - 1)(2 theta~_{i+1} - 1) / (theta~_i (2 theta~_i - 1)) (y_{i+1} - y_i)
              + (2 theta~_{i+1} - 1)/(2 theta~_i - 1) (y_{i+1} - x_i).
    Output x_N; bound ||grad f(x_N)||^2 <= 2 L (f(x_0) - f*) / theta~_0^2 (their Thm 6.1)."""
    N, L = positive_int("N", N), positive_real("L", L)
    rev = ogm_thetas(N)            # the same recursion, read backwards: theta~_i = rev[N - i]
    tt = rev[::-1]
    t = _Tracer(N)
    x = y = t.x0()
    outs = [x]
    for i in range(N):
        y_new = x - t.grad(x) / L
        x = (y_new + (tt[i] - 1.0) * (2 * tt[i + 1] - 1.0) / (tt[i] * (2 * tt[i] - 1.0)) * (y_new - y)
             + (2 * tt[i + 1] - 1.0) / (2 * tt[i] - 1.0) * (y_new - x))
        y = y_new
        outs.append(x)
    return t.method(outs, f"ogm-g (N = {N})")


def heavy_ball(alpha: float, beta: float, N: int) -> LinearMethod:
    """Heavy-ball momentum (Polyak 1964): x_{k+1} = x_k - alpha grad f(x_k) + beta (x_k - x_{k-1}),
    x_{-1} = x_0; output x_n. (Gradients at the iterates: y_k = x_k.)"""
    N = positive_int("N", N)
    t = _Tracer(N)
    x_prev = x = t.x0()
    outs = [x]
    for _ in range(N):
        x_prev, x = x, x - alpha * t.grad(x) + beta * (x - x_prev)
        outs.append(x)
    return t.method(outs, f"heavy-ball (alpha = {alpha:g}, beta = {beta:g})")


def triple_momentum_parameters(mu: float, L: float) -> dict[str, float]:
    """Van Scoy, Freeman & Lynch 2018 (IEEE Control Syst. Lett. 2, "The fastest known globally convergent
    first-order method for minimizing strongly convex functions"): rho = 1 - 1/sqrt(kappa), alpha = (1 + rho)/L,
    beta = rho^2/(2 - rho), gamma = rho^2/((1 + rho)(2 - rho)), delta = rho^2/(1 - rho^2)."""
    rho = 1.0 - 1.0 / math.sqrt(L / mu)
    return {"rho": rho, "alpha": (1 + rho) / L, "beta": rho ** 2 / (2 - rho),
            "gamma": rho ** 2 / ((1 + rho) * (2 - rho)), "delta": rho ** 2 / (1 - rho ** 2)}


def triple_momentum(mu: float, L: float, N: int) -> LinearMethod:
    """Triple momentum method (Van Scoy, Freeman & Lynch 2018): xi_{k+1} = (1 + beta) xi_k - beta xi_{k-1}
    - alpha grad f(y_k), y_k = (1 + gamma) xi_k - gamma xi_{k-1}, output x_k = (1 + delta) xi_k - delta xi_{k-1}
    (xi_{-1} = xi_0 = x_0), parameters ``triple_momentum_parameters``. Written in the same order as PEPit's
    example (``wc_triple_momentum``): the gradient at layer k+1 is taken at y computed from the new xi."""
    N, mu, L = positive_int("N", N), positive_real("mu", mu), positive_real("L", L)
    p = triple_momentum_parameters(mu, L)
    t = _Tracer(N)
    xi_prev = xi = y = t.x0()
    outs = [xi]
    for _ in range(N):
        xi_new = (1 + p["beta"]) * xi - p["beta"] * xi_prev - p["alpha"] * t.grad(y)
        y = (1 + p["gamma"]) * xi_new - p["gamma"] * xi
        outs.append((1 + p["delta"]) * xi_new - p["delta"] * xi)
        xi_prev, xi = xi, xi_new
    return t.method(outs, "triple momentum")


def agd_strongly_convex(mu: float, L: float, N: int) -> LinearMethod:
    """Nesterov's accelerated gradient for strongly convex f (Nesterov 2004, Introductory Lectures, constant
    step scheme III, (2.2.22)): x_{k+1} = y_k - grad f(y_k)/L, y_{k+1} = x_{k+1} + (1 - sqrt(q))/(1 + sqrt(q))
    (x_{k+1} - x_k), q = mu/L, y_0 = x_0; output x_n. Its guarantee (d'Aspremont, Scieur & Taylor 2021,
    "Acceleration methods", Thm 4.10 / Cor. 4.15) is stated with the initial condition
    f(x_0) - f* + mu/2 ||x_0 - x*||^2 (``initial="lyapunov"``)."""
    N, mu, L = positive_int("N", N), positive_real("mu", mu), positive_real("L", L)
    q = math.sqrt(mu / L)
    b = (1 - q) / (1 + q)
    t = _Tracer(N)
    x = y = t.x0()
    outs = [x]
    for _ in range(N):
        x_new = y - t.grad(y) / L
        y = x_new + b * (x_new - x)
        x = x_new
        outs.append(x)
    return t.method(outs, "agd (strongly convex)")


def silver_strongly_convex_steps(N: int, mu: float, L: float) -> tuple[np.ndarray, float]:
    """The strongly convex silver step schedule of Altschuler & Parrilo (2024, "Acceleration by stepsize
    hedging I: multi-step descent and the silver stepsize schedule", J. ACM; Sec. 3), normalized steps h_i
    (the step is h_i / L), with its rate on ||x_N - x*||^2 / ||x_0 - x*||^2.

    For n = 2^m: y_0 = z_0 = kappa^-1 = mu/L, and for j = 0..m-1 with eta = 1 - z_j,
    y_{j+1} = z_j / (eta + sqrt(1 + eta^2)), z_{j+1} = z_j (eta + sqrt(1 + eta^2)); a_j = psi(y_j),
    b_j = psi(z_j) with psi(t) = (1 + kappa t)/(1 + t); the schedule is built recursively,
    h^(0) = [b_0], h^(j+1) = [h^(j) without its last step, a_{j+1}, h^(j) without its last step, b_{j+1}],
    and its rate is ((1 - z_m)/(1 + z_m))^2. For n not a power of two, the schedules of the powers of two in
    its binary expansion are concatenated (lowest first) and the rates multiplied (as PEPit's example
    ``wc_gradient_descent_silver_stepsize_strongly_convex`` does; the rate is then a valid bound but the
    schedule is not the optimized one)."""
    N, mu, L = positive_int("N", N), positive_real("mu", mu), positive_real("L", L)
    if mu >= L:
        raise ValueError(f"mu must be < L, got mu = {mu!r}, L = {L!r}")
    kappa = L / mu

    def psi(t: float) -> float:
        return (1 + kappa * t) / (1 + t)

    steps: list[float] = []
    rate = 1.0
    for m in (i for i in range(N.bit_length()) if N >> i & 1):
        z = mu / L
        h = [psi(z)]
        for _ in range(m):
            eta = 1 - z
            root = eta + math.sqrt(1 + eta * eta)
            y, z = z / root, z * root
            head = h[:-1]
            h = head + [psi(y)] + head + [psi(z)]
        steps += h
        rate *= ((1 - z) / (1 + z)) ** 2
    return np.array(steps), rate


def method_worst_case(method: LinearMethod, *, L: float, mu: float = 0.0, metric: str = "objective_gap",
                      initial: str = "distance", R: float = 1.0, initial_gap: float = 1.0,
                      layers: object = "final", engine: str = "gram", solver: str | None = None,
                      name: str | None = None):  # noqa: ANN201 - a theory.bound.Bound (imported lazily)
    """Exact worst case of any fixed-step method (a ``LinearMethod``) by performance estimation, as a Bound:
    ``pep_bound(make_linear_spec(method, ...), layers, engine, solver)``. ``layers`` defaults to "final"
    (methods such as OGM are defined for one horizon N; "all" gives the outputs of every prefix).
    ``initial`` is "distance" (||x_0 - x*|| <= R), "function" (F(x_0) - F* <= initial_gap) or "lyapunov"
    (F(x_0) - F* + mu/2 ||x_0 - x*||^2 <= initial_gap)."""
    from unfoldkit.theory.pep.problem import make_linear_spec
    from unfoldkit.theory.pep.worst_case import pep_bound

    spec = make_linear_spec(method, L=L, mu=mu, metric=metric, initial=initial, R=R, initial_gap=initial_gap)
    return pep_bound(spec, layers=layers, engine=engine, solver=solver, name=name or f"pep-{method.name}")
