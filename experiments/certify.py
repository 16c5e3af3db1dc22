"""`unfoldkit train ... --certify schedule|safeguard|lista` (issue 18): the problem, the constraint, the training
and the certificate of each mechanism, recomputed from scratch after training (docs/certified.md).

* ``schedule``: ``theory.certified.train_certified_schedule`` (projections onto the PEP envelope), then
  ``certify_schedule`` of the trained steps;
* ``lista``: the trainer with ``proofs_check.certified_lista.ListaRegion`` as its constraint, on data of the
  declared class X(B, s), then ``certify_lista``;
* ``safeguard``: ordinary training, then ``unrolled.safeguard.safeguard_report`` of the safeguarded model on
  fresh in-distribution data and under a dictionary mismatch (the bound must hold on every sample).
"""
from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch

from unfoldkit.unrolled.io import jsonable
from unfoldkit.unrolled.problems import BoundedSparseRecovery, Problem, SparseRecovery, perturbed_dictionary

#: the problem family each mechanism trains on ("any" = whatever --problem says)
SCHEDULE_MODELS = {"gd-unfolded": "least-squares", "ista-learned-step": "sparse", "fista-unfolded": "sparse"}
#: the PEP method of each model's schedule (theory.certified.CERTIFIABLE_MODELS)
SCHEDULE_METHODS = {"gd-unfolded": "gd", "ista-learned-step": "pgm", "fista-unfolded": "fista"}


def prepare(args: argparse.Namespace, problem: Problem) -> Problem:
    """The training problem of ``--certify`` (ValueError, one line, for a model or problem it does not cover):
    ``lista`` trains on X(B, s) with ``problem``'s dictionary (noiseless: the certificate is for sigma = 0)."""
    mech = args.certify
    if mech == "schedule":
        if args.model not in SCHEDULE_MODELS:
            raise ValueError(f"--certify schedule covers {', '.join(SCHEDULE_MODELS)} (a step schedule that "
                             f"performance estimation analyses exactly), not {args.model!r}")
        if args.resume:
            raise ValueError("--certify schedule: --resume is not supported (the certified loop has no checkpoints)")
        if args.envelope_factor <= 0 or not np.isfinite(args.envelope_factor):
            raise ValueError(f"--envelope-factor must be a positive number, got {args.envelope_factor!r}")
        return problem
    if mech == "lista":
        if not isinstance(problem, SparseRecovery):
            raise ValueError("--certify lista needs --problem sparse (the LISTA theorems are about sparse recovery)")
        if problem.snr_db is not None:
            raise ValueError("--certify lista certifies the noiseless class X(B, s): drop --snr-db")
        if not args.class_b > 0 or not np.isfinite(args.class_b):
            raise ValueError(f"--class-b must be a positive number, got {args.class_b!r}")
        if args.class_s > problem.n:
            raise ValueError(f"--class-s must be <= n = {problem.n}, got {args.class_s}")
        out = BoundedSparseRecovery(m=problem.m, n=problem.n, support_size=args.class_s, amplitude=args.class_b,
                                    lam=problem.lam, seed=problem.seed)
        return out
    if mech == "safeguard":
        if not isinstance(problem, SparseRecovery):
            raise ValueError("--certify safeguard needs --problem sparse (its classical step is ISTA on the LASSO)")
        if not 0.0 < args.safeguard_delta < 1.0:
            raise ValueError(f"--safeguard-delta must be in (0, 1), got {args.safeguard_delta!r}")
        if not args.mismatch_eps >= 0 or not np.isfinite(args.mismatch_eps):
            raise ValueError(f"--mismatch-eps must be a non-negative number, got {args.mismatch_eps!r}")
        return problem
    raise ValueError(f"--certify must be one of schedule, safeguard, lista, got {mech!r}")


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """Constructor arguments the mechanism needs: ista-learned-step without learned thresholds (schedule)."""
    if args.certify == "schedule" and args.model == "ista-learned-step":
        return {"learn_threshold": False}
    return {}


def check_model(args: argparse.Namespace, model: Any) -> None:
    """Refuse early (before any training) a model the mechanism cannot certify (ValueError, one line)."""
    if args.certify == "lista":
        region(args).check_model(model)
    elif args.certify == "safeguard":
        from unfoldkit.unrolled.safeguard import SafeguardedModel

        SafeguardedModel(model, rule=args.safeguard_rule, delta=args.safeguard_delta)


def region(args: argparse.Namespace) -> Any:
    """The ``ListaRegion`` of ``--certify lista`` (noiseless class X(class_b, class_s))."""
    from unfoldkit.proofs_check.certified_lista import ListaRegion

    return ListaRegion(s=args.class_s, B=args.class_b)


def constraint(args: argparse.Namespace) -> Any:
    """The trainer's constraint (projection after every optimizer step): the LISTA region, or None."""
    return region(args) if args.certify == "lista" else None


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """What the certificate depends on, stored in model.pt's training metadata (``training["certify"]``) so
    that `unfoldkit check` recomputes the same certificate: the mechanism and its parameters."""
    if args.certify == "schedule":
        return {"mechanism": "schedule", "factor": float(args.envelope_factor),
                "method": SCHEDULE_METHODS[args.model]}
    if args.certify == "lista":
        return {"mechanism": "lista", **region(args).to_dict()}
    return {"mechanism": "safeguard", "rule": args.safeguard_rule, "delta": float(args.safeguard_delta),
            "mismatch_eps": float(args.mismatch_eps)}


def envelope(cert: dict[str, Any], num_layers: int, problem: Problem) -> Any:
    """The PEP envelope of ``--certify schedule``: factor x the best classical schedule's exact worst case at
    every layer, in the model's method (gd for gd-unfolded, pgm for ista-learned-step, fista for
    fista-unfolded; mu = 0 for the composite ones, the LASSO not being strongly convex in general)."""
    from unfoldkit.theory.certified import schedule_envelope

    method = cert["method"]
    mu = float(problem.mu) if method == "gd" else 0.0
    return schedule_envelope(num_layers, float(problem.L), mu, method, factor=float(cert["factor"]))


def train_schedule(args: argparse.Namespace, model: Any, problem: Problem) -> Any:
    """``train_certified_schedule`` with the command's budget; returns its CertifiedTrainResult."""
    from unfoldkit.theory.certified import train_certified_schedule

    return train_certified_schedule(model, problem, envelope(settings(args), model.num_layers, problem),
                                    epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                                    batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                    project_every=args.project_every or args.steps_per_epoch)


def certificate(cert: dict[str, Any], model: Any, problem: Problem, *, seed: int = 0, samples: int = 1000,
                test: tuple[torch.Tensor, torch.Tensor | None] | None = None) -> dict[str, Any]:
    """The certificate of a trained model, recomputed from scratch from ``cert`` (``settings``): {"mechanism",
    "holds", "summary", ...}. schedule: ``certify_schedule`` of the model's steps against the envelope;
    lista: ``certify_lista`` on the declared X(B, s) (``samples`` samples); safeguard: ``safeguard_report`` on
    ``test`` (y, x) or ``samples`` fresh samples of ``problem``, and under the recorded dictionary mismatch.
    The model is evaluated in float64 and returned to its dtype."""
    mech = cert.get("mechanism")
    dtype = getattr(model, "model_dtype", torch.float32)
    try:
        if mech == "schedule":
            from unfoldkit.theory.certified import certify_schedule

            env = envelope(cert, model.num_layers, problem)
            sched = model.schedule()
            c = certify_schedule(np.asarray(sched["step"], dtype=np.float64), env,
                                 momentum=None if cert["method"] != "fista" else np.asarray(sched["momentum"]))
            return {"mechanism": mech, "holds": bool(c.holds), "summary": c.describe(), "settings": cert,
                    "certificate": c.to_dict(), "envelope": env.to_dict()}
        if mech == "lista":
            from unfoldkit.proofs_check.certified_lista import ListaRegion, certify_lista

            reg = ListaRegion(**{k: cert[k] for k in ("s", "B", "sigma", "step_margin", "slack") if k in cert})
            rep = certify_lista(model.to(torch.float64), reg, num_samples=samples, rng=seed)
            return {"mechanism": mech, "holds": bool(rep.guarantee), "settings": cert,
                    "summary": f"certified on the declared X(B={reg.B:g}, s={reg.s}): "
                               + ("yes" if rep.guarantee else "NO") + "\n" + rep.summary(),
                    "report": jsonable(rep.to_dict())}
        if mech == "safeguard":
            from unfoldkit.unrolled.safeguard import safeguard_report

            runs: dict[str, Any] = {}
            eps = float(cert.get("mismatch_eps", 0.0))
            for name, e in (("in distribution", 0.0), (f"mismatch eps = {eps:g}", eps)):
                true = perturbed_dictionary(problem, e, seed + 11) if isinstance(problem, SparseRecovery) else problem
                if e == 0.0 and test is not None:
                    y, x = test
                else:
                    batch = true.sample(samples, rng=seed + 13)
                    y, x = batch.y, batch.x
                runs[name] = safeguard_report(model.to(torch.float64), true, y.double(),
                                              None if x is None else x.double(), rule=cert["rule"],
                                              delta=cert["delta"])
            holds = all(r["bound_holds"] for r in runs.values())
            lines = [f"safeguarded {model.family} (rule {cert['rule']}, delta {cert['delta']:g}): residual bound "
                     f"{'holds' if holds else 'FAILS'} on every sample and layer"]
            for name, r in runs.items():
                nmse = "" if r["nmse_db_raw"] is None else (f", NMSE at layer K {r['nmse_db_raw'][-1]:.2f} dB raw -> "
                                                            f"{r['nmse_db_safeguarded'][-1]:.2f} dB safeguarded")
                lines.append(f"  {name}: fires {r['overall_fire_rate']:.3f}{nmse}")
            return {"mechanism": mech, "holds": holds, "summary": "\n".join(lines), "settings": cert,
                    "runs": jsonable(runs)}
    finally:
        model.to(dtype)
    raise ValueError(f"unknown certification mechanism {mech!r} (schedule, safeguard, lista)")
