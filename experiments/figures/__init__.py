"""The figures `unfoldkit reproduce` can produce: FIGURES maps each name to a `Figure`.

A `Figure` stands where its module stood (``NAME``, ``DESCRIPTION``, ``reproduce(...)``) but imports the
module, and with it torch, cvxpy, PEPit and matplotlib, only when the figure is reproduced, so that
`unfoldkit --help` and `unfoldkit list` start without them (benchmarks/startup.py, tests/test_startup.py).

Each figure module exposes NAME, DESCRIPTION and ``reproduce(out_dir, quick, seed, progress) -> dict``; a
new figure is one module plus one line below (tests/test_startup.py checks that each line repeats its
module's NAME and DESCRIPTION). Beside them a line states ``paper``, which paper's figure, theorem or study
the entry corresponds to (`unfoldkit list` prints it; where the figure is our own study in the spirit of a
paper it says so, and "no single published figure" where no figure number could be confirmed), and
``caption``, the one paragraph the index page of `unfoldkit reproduce all` shows under the figure.
`unfoldkit reproduce all` runs every entry of FIGURES in this order, so a new line is all it takes.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

#: the word `unfoldkit reproduce all` reserves: no figure may take it as its name
ALL = "all"


@dataclass(frozen=True)
class Figure:
    """A reproducible figure: its name, its one-line description, the module that computes it, the paper's
    figure or study it corresponds to, and its caption.

    The upper-case names are those of the figure module itself, so a Figure can be used where the module
    was (``FIGURES[name].DESCRIPTION``, ``FIGURES[name].reproduce(...)``); ``paper`` and ``caption`` belong
    to the registry (the module's docstring has the details).
    """

    NAME: str
    DESCRIPTION: str
    module_name: str
    #: which paper and which figure / theorem / study the entry reproduces, or "our own study in the spirit
    #: of ..."; never a figure number that could not be confirmed
    paper: str = ""
    #: one paragraph: what the figure shows and how to read it (the index page prints it under the figure)
    caption: str = ""

    def __post_init__(self) -> None:
        if self.NAME == ALL:
            raise ValueError(f"a figure cannot be named {ALL!r}: `unfoldkit reproduce {ALL}` runs every figure")

    @property
    def module(self) -> ModuleType:
        """The figure's module, imported on first use."""
        return importlib.import_module(self.module_name)

    def reproduce(self, out_dir: str | Path, quick: bool = False, seed: int = 0,
                  progress: bool = True) -> dict[str, Any]:
        """``module.reproduce(out_dir, quick=..., seed=..., progress=...)``: the figure's result dict."""
        return self.module.reproduce(out_dir, quick=quick, seed=seed, progress=progress)


_PACKAGE = __name__

FIGURES: dict[str, Figure] = {figure.NAME: figure for figure in (
    Figure("classical-rates",
           "GD / ISTA / FISTA: empirical worst case per iteration vs classical bounds (with tight instances)",
           f"{_PACKAGE}.classical_rates",
           paper="our own study of the classical bounds: Beck & Teboulle 2009 (ISTA, FISTA), Drori & Teboulle "
                 "2014 (GD, tight on a Huber function), Taylor, Hendrickx & Glineur 2017/2018, Nesterov 2004; "
                 "no single published figure",
           caption="The baseline every unfolded model is measured against. Over random least-squares and LASSO "
                   "problems, the worst normalized error of GD (convex and strongly convex, steps 1/L and "
                   "2/(L+mu)), ISTA and FISTA after each iteration is drawn beside each classical bound "
                   "(objective gaps divided by L R^2, distances by R, so every bound is one universal curve). "
                   "The measured gap is the upper end of what the reference solution certifies, so a curve "
                   "under its bound is a certified pass. The known worst cases (Drori and Teboulle's Huber "
                   "function for GD with step 1/L, an extreme eigenvector for the strongly convex contraction) "
                   "land on their tight bounds, which shows the check is sharp. Theorem numbers and their "
                   "status: docs/theory_sources.md."),
    Figure("lista-theory",
           "LISTA-CP / ALISTA: linear-convergence bound vs measured error, and where the theorem stops",
           f"{_PACKAGE}.lista_theory",
           paper="Chen et al. 2018 (LISTA-CP, NeurIPS, arXiv 1808.10038) Thm 2 and Liu et al. 2019 (ALISTA, "
                 "ICLR) Thm 1: their linear-convergence bound against measurements; our own study of the "
                 "theorems, no single published figure",
           caption="(a) In the theorem's regime (ALISTA layers with the Frobenius weight and the exact "
                   "generalized-coherence weight, gamma = 1, certified thresholds), the worst error over "
                   "signals of the class X(B, s) stays under the bound s B ((2s - 1) mu)^k for every admissible "
                   "sparsity s < (1 + 1/mu)/2. (b) In the practical regime (Bernoulli(0.1) signals) trained "
                   "ALISTA and LISTA-CPSS beat ISTA and FISTA by far, but the sparsity assumption fails and no "
                   "bound is drawn: the JSON names the failed assumption with its numbers. (c) The reach of "
                   "the guarantee: the last-layer worst error against s, with the theorem's region shaded."),
    Figure("lipschitz",
           "LISTA/ALISTA Lipschitz per layer: naive, LipLT, ECLipsE-Fast, SDP bounds vs attained lower, init vs trained",
           f"{_PACKAGE}.lipschitz",
           paper="our own study with published certificates: LipSDP-Neuron (Fazlyab et al. 2019), LipLT "
                 "(Fazlyab et al. 2023), ECLipsE-Fast (Xu & Sivaranjani 2024) applied to LISTA / ALISTA; "
                 "no single published figure",
           caption="How sensitive the map from the measurement y to the k-th layer's estimate is, for LISTA "
                   "and ALISTA at their classical initialisation and after training. Per layer, four certified "
                   "upper bounds (the naive product of layer norms, LipLT, ECLipsE-Fast and the LipSDP-Neuron "
                   "certificate) are drawn beside the attained lower bound (the largest Jacobian norm or "
                   "finite-difference ratio found); the true constant lies between the best upper and the "
                   "lower bound, and their ratio is the headline. Each verdict checks that every certified "
                   "upper bound stays above the attained lower bound. A trained model whose map is "
                   "discontinuous (a negative learned threshold) has no finite constant and only the local "
                   "lower estimate is drawn, with the reason."),
    Figure("pep-learned-steps",
           "learned GD step schedule: exact (PEP) worst case vs classical schedules vs its average case",
           f"{_PACKAGE}.pep_learned_steps",
           paper="our own study in the spirit of the survey's learned-hyperparameter paradigm, with performance "
                 "estimation (Drori & Teboulle 2014; Taylor, Hendrickx & Glineur 2017); no single published "
                 "figure",
           caption="A gradient-descent unfolding with one learned step per layer is trained on least-squares "
                   "problems of condition number kappa. Performance estimation gives the exact worst case of "
                   "f(x_k) - f* over the whole function class for its schedule, per layer, beside the constant "
                   "steps 1/L and 2/(L + mu), and beside the average case of each schedule on the training "
                   "distribution (all divided by L R^2). A learned schedule can win on average and lose in the "
                   "worst case (steps above 2/L are common in learned schedules); growth of the worst case from "
                   "one layer to the next is flagged."),
    Figure("generalization",
           "risk bounds (PAC-Bayes-kl, covering, trivial) vs measured test risk over m and K, per paradigm",
           f"{_PACKAGE}.generalization",
           paper="our own study in the spirit of the covering-number analyses of unfolded networks (Behboodi, "
                 "Rauhut & Schnoor 2020; Schnoor, Behboodi & Rauhut 2021; Shultzman et al. 2023; their "
                 "statements not encoded) and PAC-Bayes-kl; no single published figure",
           caption="How far the test error of an unfolded model can be trusted, and how many examples it needs. "
                   "Per family (paradigm), the PAC-Bayes-kl certificate, the covering-number bound and the "
                   "trivial bound on the risk (clipped NMSE, c = 1) are drawn against the training-set size m "
                   "(top row) and the depth K (bottom row), beside the measured test risk with its Hoeffding "
                   "95 % interval and the training risk, on a log scale; everything at or above c is vacuous "
                   "(shaded). Each verdict checks that a bound stays above the measured risk at every "
                   "configuration; a bound that does not apply to a family is not applicable, with the "
                   "reason."),
    Figure("rpca-paradigms",
           "robust PCA: the survey's four paradigms (LRPCA, learned PCP weights, ScaledGD + correction, "
           "CORONA-style) vs classical solvers: error per layer, cost, mismatch",
           f"{_PACKAGE}.rpca_paradigms",
           paper="Shlezinger et al. 2025 survey (arXiv 2512.03768), the paradigm comparison on robust PCA; its "
                 "sizes and metrics could not be read, so sizes follow the co-author code "
                 "dviravra/Unfolded_Approximated_Optimization (Robust_PCA/synthetic), scaled to 2 CPU cores; "
                 "models after Cai, Liu & Yin 2021 (LRPCA) and Solomon et al. 2019 (CORONA)",
           caption="One unfolded robust-PCA model per design paradigm of the survey, each starting as its "
                   "classical solver (checked in float64) and trained on the same samples: LRPCA (learned "
                   "thresholds and steps of ScaledGD), learned PCP objective weights (ADMM), ScaledGD with a "
                   "learned entrywise correction, and CORONA-style learned convolutions (ISTA on relaxed PCP). "
                   "Per layer, the error of L and S beside the classical solvers at equal depth and at "
                   "convergence; the training curves; the error under model mismatch at test time (rank, "
                   "outlier fraction, noise); and a table of the qualitative axes measured: learned "
                   "parameters, FLOPs and time per layer, the share of learned parameters that keep a classical "
                   "meaning, and the worst error growth under mismatch. The recovery theorems (LRPCA, AltProj) "
                   "are checked on these instances and reported as not applicable where their assumptions fail."),
    Figure("certified-training",
           "training that keeps its guarantee: certified PEP schedules, safeguarded unfolding, certified "
           "LISTA-CP / ALISTA, each vs unconstrained training and the classical algorithm",
           f"{_PACKAGE}.certified_training",
           paper="our own study (issue 18): safeguarding after Heaton, Chen, Wang & Yin 2023 (Safe-L2O, AAAI; "
                 "scheme recalled), the LISTA-CP / ALISTA certificate of Chen et al. 2018 Thm 2 and Liu et al. "
                 "2019 Thm 1, performance estimation (Drori & Teboulle 2014; Taylor, Hendrickx & Glineur 2017); "
                 "no single published figure",
           caption="Three ways to train an unfolded model so that a guarantee still holds afterwards, one column "
                   "each, with the classical algorithm, the model trained without constraint and the model "
                   "trained with the mechanism. Left: a learned gradient-descent schedule projected after every "
                   "step onto the schedules whose exact worst case (PEP) stays below the best classical "
                   "schedule's at every layer; top the average case, bottom the certified worst case beside the "
                   "envelope. Middle: a trained LISTA-CP wrapped by a safeguard that keeps a learned layer only "
                   "when the ISTA fixed-point residual falls enough, in distribution and under a dictionary "
                   "mismatch; top the NMSE, bottom the largest residual, which the safeguard keeps below its "
                   "initial value. Right: ALISTA and LISTA-CP trained with thresholds and steps projected into "
                   "the region where the linear-convergence certificate holds on a declared class X(B, s); top "
                   "the NMSE on X(B, s), bottom the largest measured error beside the certified bound. Every "
                   "certificate is recomputed from scratch after training."),
)}
