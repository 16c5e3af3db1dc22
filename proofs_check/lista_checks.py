"""Does a (trained) LISTA-CP / LISTA-CPSS / ALISTA model still carry the linear-convergence guarantee?

``check_lista_model`` reads the model's per-layer weights and thresholds, checks every hypothesis of the
theorems (coupling W_2 = I - W_1 A, sparsity s < (1 + 1/mu)/2, no-false-positive thresholds, the ALISTA
step range), builds the bounds the guarantee registry lists for the family (the certified per-layer
recursion; for ALISTA also the theorem's own bound), measures the model on the class X(B, s), fits the measured per-layer decay rate
and reports it beside the theoretical c. A bound is reported only where its assumptions hold.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from unfoldkit.proofs_check.guarantees import SIGNAL, Setting, coverage
from unfoldkit.proofs_check.lista_bounds import (  # noqa: F401  (layer_constants, COUPLING_TOL public here too)
    COUPLING_TOL,
    coupling_assumption,
    layer_constants,
    model_sparsity_assumption,
)
from unfoldkit.proofs_check.targets import as_target
from unfoldkit.proofs_check.verdict import compare_to_bound, verdicts_dict
from unfoldkit.theory.bound import Assumption, Bound
from unfoldkit.theory.lista import fit_decay_rate
from unfoldkit.unrolled.problems import BoundedSparseRecovery
from unfoldkit.unrolled.problems.linear import LinearInverseProblem
from unfoldkit.unrolled.trajectory import Trajectory
from unfoldkit.unrolled.validation import as_generator, nonnegative_real, positive_int, positive_real

@dataclass
class ListaReport:
    """Everything `check_lista_model` found, per layer where it applies."""

    family: str
    s: int
    B: float
    sigma: float
    assumptions: list[Assumption]
    constants: dict[str, list[float]]
    bounds: list[Bound]
    measured_max_error: np.ndarray
    false_positives: np.ndarray
    fitted_rate: float
    theoretical_rate: float | None
    verdicts: dict[str, Any] = field(default_factory=dict)

    @property
    def guarantee(self) -> bool:
        """True when some bound applies (all its assumptions hold) and every layer meets it."""
        return any(v.get("holds") for v in self.verdicts.values())

    def summary(self) -> str:
        lines = [f"{self.family}: s = {self.s}, B = {self.B:g}, sigma = {self.sigma:g}"]
        lines += [f"  {a}" for a in self.assumptions]
        for b in self.bounds:
            lines.append(f"  {b.summary()}")
        rate = "n/a" if self.theoretical_rate is None else f"{self.theoretical_rate:.4g}"
        lines.append(f"  measured decay per layer {self.fitted_rate:.4g} vs theoretical {rate}")
        lines.append("  guarantee: " + ("yes" if self.guarantee else "none (see failed assumptions)"))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "s": self.s, "B": self.B, "sigma": self.sigma,
                "assumptions": [a.to_dict() for a in self.assumptions], "constants": self.constants,
                "bounds": [b.to_dict() for b in self.bounds],
                "measured_max_error": self.measured_max_error.tolist(),
                "false_positives": self.false_positives.tolist(), "fitted_rate": self.fitted_rate,
                "theoretical_rate": self.theoretical_rate, "verdicts": self.verdicts,
                "guarantee": self.guarantee}


def sample_class(model: Any, s: int, B: float, num_samples: int = 512,
                 rng: np.random.Generator | int | None = 0) -> tuple[Any, Any, Trajectory]:
    """(the class problem X(B, s) with the model's own dictionary, a noiseless batch of it, the model's
    float64 trajectory on it); the model's dtype is restored afterwards."""
    p = model.problem
    if not isinstance(p, LinearInverseProblem):
        raise ValueError("the LISTA theorems need a linear inverse problem (SparseRecovery)")
    cls = BoundedSparseRecovery(m=p.m, n=p.n, support_size=s, amplitude=B, seed=0)
    cls.A = p.A  # same dictionary as the model's problem (any seed or custom matrix)
    batch = cls.sample(num_samples, rng=as_generator(rng))
    traj = as_target(model).run(cls, batch.y)
    traj.iterates = traj.iterates.cpu()
    return cls, batch, traj


def false_positives(traj: Trajectory, x: torch.Tensor, s: int, B: float) -> np.ndarray:
    """Entries outside supp(x*) above a round-off floor of 64 ulps of s B, per layer (summed over the batch):
    below the floor they are round-off where the theorem is tight (|z_i| -> theta^k), not supports."""
    floor = 64 * torch.finfo(torch.float64).eps * s * B
    return ((traj.iterates.abs() > floor) & (x == 0)[None]).sum(dim=(1, 2)).numpy()


def measure_on_class(model: Any, s: int, B: float, num_samples: int = 512,
                     rng: np.random.Generator | int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """Max l2 error per layer and the number of false positives per layer over ``num_samples`` noiseless
    samples of X(B, s) with the model's own dictionary, in float64."""
    _, batch, traj = sample_class(model, s, B, num_samples, rng)
    err = traj.distance(batch.x).max(dim=1).values.double().numpy()
    return err, false_positives(traj, batch.x, s, B)


def check_lista_model(model: Any, s: int, B: float = 1.0, sigma: float = 0.0, num_samples: int = 512,
                      rng: np.random.Generator | int | None = 0) -> ListaReport:
    """Check a LISTA-CP / LISTA-CPSS / ALISTA (or LISTA) model against the linear-convergence theory.

    ``s`` and ``B`` define the signal class X(B, s); ``sigma`` bounds ||eps||_1 (the noisy variant).
    Assumptions reported (name, holds, measured, required): coupling W_2^k = I - W_1^k A (max relative
    residual, Chen et al. 2018 Thm 1), sparsity s < (1 + 1/mu)/2 with mu the largest generalized coherence
    of the layers' weights rescaled to unit diagonal (``WeightConstants.mu_normalized``), and the threshold
    rule (inside the recursion bound). The bounds are those the guarantee registry lists for the model's
    family (``proofs_check.guarantees``), built only when the coupling holds. The measured max error per
    layer is compared with each; ``fitted_rate`` is the measured per-layer contraction and
    ``theoretical_rate`` the theorem's (2s - 1) mu (None when the sparsity assumption fails).
    """
    s = positive_int("s", s)
    B = positive_real("B", B)
    sigma = nonnegative_real("sigma", sigma)
    const = layer_constants(model)
    coupling = coupling_assumption(const)
    sparsity = model_sparsity_assumption(const, s)
    cls, batch, traj = sample_class(model, s, B, num_samples, rng)
    err = traj.distance(batch.x).max(dim=1).values.double().numpy()
    fp = false_positives(traj, batch.x, s, B)
    assumptions = [coupling, sparsity]
    bounds, verdicts = [], []
    if coupling.holds:
        setting = Setting(as_target(model), cls, batch.y, traj, batch.x, options={"s": s, "B": B, "sigma": sigma})
        for g in coverage(model.family).guarantees:
            if g.against != SIGNAL:
                continue
            b = g.build(setting)
            bounds.append(b)
            assumptions.extend(a for a in b.assumptions if a.name not in {x.name for x in assumptions})
            # float64 model evaluation: 1e-6 relative + 1e-12 absolute covers round-off (see tests)
            verdicts.append(compare_to_bound(err, b, rel_tol=1e-6, abs_tol=1e-12))
    rho, _ = fit_decay_rate(err)
    theo = (2 * s - 1) * float(np.max(const["mu_normalized"])) if sparsity.holds else None
    return ListaReport(model.family, s, B, sigma, assumptions, {k: v.tolist() for k, v in const.items()},
                       bounds, err, fp, rho, theo, verdicts_dict(verdicts))
