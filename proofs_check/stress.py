"""The hunter: hypothesis searches a stress target's instances for a bound that fails while its assumptions
hold, steers toward small margins with ``hypothesis.target`` and shrinks a failure to a minimal instance.

Every check of every example ends in exactly one state: ``holds``, ``violated`` (all assumptions hold and
the bound is exceeded: a real counterexample) or ``not applicable`` (the instance breaks an assumption; no
claim was made). ``run_round`` runs one seeded search and returns plain data (it is what parallel workers
run); ``save_counterexample`` / ``load_counterexample`` / ``replay`` keep a shrunk failure as a small .npz.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import target as hypothesis_target
from hypothesis.database import DirectoryBasedExampleDatabase

from unfoldkit.proofs_check.stress_targets import StressTarget, get_target
from unfoldkit.proofs_check.verdict import HOLDS, NOT_APPLICABLE, VIOLATED
from unfoldkit.unrolled.io import atomic_write

#: default number of examples per hypothesis profile (see proofs_check.profiles)
PROFILE_EXAMPLES = {"ci": 15, "dev": 40, "stress": 1000}
STATES = (HOLDS, VIOLATED, NOT_APPLICABLE)


def normalized_margin(check: Any) -> float:
    """A scale-free margin: tightness - 1 for a verdict (bound / measured - 1, negative on a violation), the
    raw worst margin for a lemma check; +inf where nothing was measured."""
    t = getattr(check, "tightness", None)
    if t is not None and math.isfinite(t):
        return float(t) - 1.0
    m = float(check.worst_margin)
    return m if math.isfinite(m) else math.inf


@dataclass
class RoundResult:
    """What one seeded search found: counts per state (over checks = example x bound), the number of
    examples, the smallest normalized margin, exceptions raised by the code under test (``errors``: a
    finding, shrunk and saved like a violation), the wall time, and the shrunk counterexample if any."""

    target: str
    seed: int
    examples: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {s: 0 for s in STATES})
    best_margin: float = math.inf
    errors: int = 0
    wall_s: float = 0.0
    counterexample: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["best_margin"] = None if not math.isfinite(self.best_margin) else self.best_margin
        return d


class _Violation(AssertionError):
    pass


@dataclass(frozen=True)
class _Error:
    """An exception raised by the code under test, kept as a failing check."""

    name: str
    worst_margin: float = math.nan
    state: str = "error"


def run_round(target_name: str, seed: int, examples: int, profile: str = "dev",
              database: str | Path | None = None) -> RoundResult:
    """Search ``examples`` instances of the target with hypothesis (seeded by ``seed``; with ``profile`` "ci"
    the seed alone fixes the examples), steering toward small margins; on a real violation, shrink it and return the minimal
    instance as ``counterexample`` (params, check name, margin, sizes). Shrinking calls are not counted."""
    target = get_target(target_name)
    res = RoundResult(target_name, int(seed))
    failures: list[tuple[dict[str, Any], Any]] = []
    start = time.perf_counter()

    def body(params: dict[str, Any]) -> None:
        counting = not failures
        try:
            checks = target.evaluate(params)
        except Exception as err:  # the code under test broke: a finding too, shrunk like a violation
            failures.append((dict(params), _Error(f"error: {type(err).__name__}: {err}")))
            if counting:
                res.errors += 1
            raise _Violation(str(err)) from None
        if counting:
            res.examples += 1
        violated, margins = None, []
        for c in checks:
            if counting:
                res.counts[c.state] += 1
            if c.state != NOT_APPLICABLE:
                margins.append(normalized_margin(c))
            if c.state == VIOLATED and violated is None:
                violated = c
        finite = [m for m in margins if math.isfinite(m)]
        if finite:
            hypothesis_target(-min(finite), label="negated normalized margin")
            if counting:
                res.best_margin = min(res.best_margin, min(finite))
        if violated is not None:
            failures.append((dict(params), violated))
            raise _Violation(f"{violated.name}: margin {violated.worst_margin:.3e}")

    # "ci" is reproducible: the seed alone fixes the examples (no database replay); the others keep
    # hypothesis's database in ``database`` (saved failures are replayed first, e.g. after --resume)
    db = None if database is None or profile == "ci" else \
        DirectoryBasedExampleDatabase(str(Path(database) / _safe(target_name)))
    conf = settings(max_examples=max(1, int(examples)), database=db, deadline=None,
                    report_multiple_bugs=False, print_blob=False, suppress_health_check=list(HealthCheck),
                    phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink))
    test = hypothesis_seed(int(seed))(conf(given(target.strategy)(body)))
    try:
        test()
    except _Violation:
        pass
    res.wall_s = time.perf_counter() - start
    if failures:
        params, check = failures[-1]  # hypothesis re-runs the shrunk example last
        res.counterexample = {"target": target_name, "kind": "error" if isinstance(check, _Error) else "violation",
                              "params": params, "check": check.name,
                              "margin": float(check.worst_margin), "normalized_margin": normalized_margin(check),
                              "dims": target.dims(params), "seed": int(seed), "planted": target.planted}
    return res


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# ---- counterexamples on disk ---------------------------------------------------------------------------


def save_counterexample(folder: str | Path, cex: dict[str, Any], call: str) -> Path:
    """Write ``cex`` (from ``run_round``) as ``folder/<target>-<seed>.npz`` atomically: the params (JSON), the
    check, margins, sizes, seed, the exact call and the package version; loadable without pickle."""
    try:
        version = metadata.version("unfoldkit")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        version = "unknown"
    fields = {"target": cex["target"], "params_json": json.dumps(cex["params"], sort_keys=True),
              "check": cex["check"], "margin": cex["margin"], "dims_json": json.dumps(cex["dims"]),
              "seed": cex["seed"], "call": call, "version": version}
    path = Path(folder) / f"{_safe(cex['target'])}-{cex['seed']}.npz"

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{k: np.asarray(v) for k, v in fields.items()})

    return atomic_write(path, write)


def load_counterexample(path: str | Path) -> dict[str, Any]:
    """The fields of a saved counterexample (ValueError naming the file when it is not one)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {k: data[k].item() for k in data.files}
        out["params"] = json.loads(out.pop("params_json"))
        out["dims"] = json.loads(out.pop("dims_json"))
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a unfoldkit counterexample file ({err}); pass a .npz written by "
                         f"`unfoldkit stress`") from None
    return out


def replay(path: str | Path) -> tuple[dict[str, Any], list[Any]]:
    """Re-run a saved counterexample: (its fields, the checks of its instance, recomputed)."""
    cex = load_counterexample(path)
    target: StressTarget = get_target(str(cex["target"]))
    return cex, target.evaluate(cex["params"])
