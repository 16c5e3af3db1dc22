"""The adapter protocol: how `unfoldkit check` reads a user's own torch module (docs/check.md).

A model written elsewhere (not with ``unfoldkit.unrolled.models``) is checked through a ``ModelAdapter``:

- **required**: calling it, ``adapter(y)``, maps measurements ``y`` of shape (B, m) to the final estimate
  x_K of shape (B, n) (a torch tensor, any floating dtype; it is called under ``torch.no_grad()``).
  This alone unlocks the *black-box* checks: the error of x_K against the signal and the classical
  algorithm at equal depth, empirical Lipschitz lower bounds, and the stress run on x_K.
- **optional** ``trajectory(y)`` -> (K+1, B, n): every layer's iterate, x_0 first (x_0 = 0 for an
  unfolded algorithm). It unlocks the per-layer black-box checks (empirical convergence per layer).
- **optional** ``declare(problem)`` -> ``UnfoldedModel``: the statement "this module IS one of unfoldkit's
  architectures with these weights", made by building that model (e.g. ``unfoldkit.unrolled.models.Lista``
  on ``problem``) and copying the module's weights into it. It unlocks the *white-box* checks: assumption
  checks of the theorems, certified Lipschitz constants, the PEP worst case of the step schedule and the
  generalization bounds. The report compares the declared model with the module on the test data; a
  declaration that does not reproduce the module's outputs is reported, never trusted silently.
- **optional** ``num_layers``: the depth K (taken from the declared model or the trajectory when absent).

``wrap(module, trajectory=..., declare=..., num_layers=...)`` builds an adapter from a plain callable (a
``torch.nn.Module`` or a function); an object that already has these members is used as it is.
Nothing here imports torch at module level: `unfoldkit check --help` stays light.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

if TYPE_CHECKING:
    from torch import Tensor

    from unfoldkit.unrolled.models.base import UnfoldedModel
    from unfoldkit.unrolled.problems.base import Problem


@runtime_checkable
class ModelAdapter(Protocol):
    """What `unfoldkit check` needs from a user's model: ``adapter(y) -> x_K`` ((B, m) -> (B, n)).

    Optional members (looked up with ``getattr``; absent or None means "not offered"): ``trajectory(y)``
    -> (K+1, B, n) iterates x_0..x_K; ``declare(problem)`` -> an ``UnfoldedModel`` holding the module's
    weights (white-box checks); ``num_layers`` -> K."""

    def __call__(self, y: "Tensor") -> "Tensor":
        ...


@dataclass
class WrappedModel:
    """A ``ModelAdapter`` around a plain callable (made by ``wrap``).

    ``fn``: y (B, m) -> x_K (B, n). ``trajectory_fn``: y -> (K+1, B, n), or None. ``declare_fn``:
    problem -> UnfoldedModel (or a zero-argument callable), or None. ``num_layers``: K, or None.
    ``name``: how the report names the model (default: the callable's class or function name)."""

    fn: Callable[["Tensor"], "Tensor"]
    trajectory_fn: Callable[["Tensor"], "Tensor"] | None = None
    declare_fn: Callable[..., "UnfoldedModel"] | None = None
    num_layers: int | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise ValueError(f"the model to check must be callable (y -> x_K), got {type(self.fn).__name__}")
        for label, value in (("trajectory", self.trajectory_fn), ("declare", self.declare_fn)):
            if value is not None and not callable(value):
                raise ValueError(f"{label} must be callable or None, got {type(value).__name__}")
        if self.num_layers is not None and (isinstance(self.num_layers, bool) or not isinstance(self.num_layers, int)
                                            or self.num_layers < 1):
            raise ValueError(f"num_layers must be a positive integer or None, got {self.num_layers!r}")
        if not self.name:
            self.name = getattr(self.fn, "__name__", None) or type(self.fn).__name__

    def __call__(self, y: "Tensor") -> "Tensor":
        return self.fn(y)

    @property
    def has_trajectory(self) -> bool:
        return self.trajectory_fn is not None

    def trajectory(self, y: "Tensor") -> "Tensor":
        """The iterates x_0..x_K, shape (K+1, B, n); NotImplementedError when none was given to ``wrap``."""
        if self.trajectory_fn is None:
            raise NotImplementedError(f"{self.name}: no trajectory was given (wrap(..., trajectory=...))")
        return self.trajectory_fn(y)

    def declare(self, problem: "Problem | None" = None) -> "UnfoldedModel | None":
        """The declared unfoldkit model (``declare_fn(problem)``, or ``declare_fn()`` if it takes no
        argument), or None when nothing was declared."""
        if self.declare_fn is None:
            return None
        return self.declare_fn(problem) if _takes_an_argument(self.declare_fn) else self.declare_fn()


def _takes_an_argument(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` can be called with one positional argument (it then receives the problem)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return True
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in params)


def wrap(module: Callable[["Tensor"], "Tensor"], *, trajectory: Callable[["Tensor"], "Tensor"] | None = None,
         declare: Callable[..., "UnfoldedModel"] | None = None, num_layers: int | None = None,
         name: str = "") -> WrappedModel:
    """A ``ModelAdapter`` for ``module`` (a torch module or any callable y (B, m) -> x_K (B, n)).

    ``trajectory``: y -> (K+1, B, n), x_0 first (per-layer checks); ``declare``: problem -> an unfoldkit
    ``UnfoldedModel`` holding the module's weights (white-box checks); ``num_layers``: K. ValueError for a
    non-callable argument."""
    return WrappedModel(module, trajectory, declare, num_layers, name)


def as_adapter(obj: Any) -> WrappedModel:
    """``obj`` as a ``WrappedModel``: a WrappedModel as it is; an object with ``trajectory`` / ``declare`` /
    ``num_layers`` members keeps them; a plain callable gets none. ValueError if ``obj`` is not callable."""
    if isinstance(obj, WrappedModel):
        return obj
    if not callable(obj):
        raise ValueError(f"expected a ModelAdapter or a callable module (y -> x_K), got {type(obj).__name__}")
    traj = getattr(obj, "trajectory", None)
    declare = getattr(obj, "declare", None)
    k = getattr(obj, "num_layers", None)
    return wrap(obj, trajectory=traj if callable(traj) else None, declare=declare if callable(declare) else None,
                num_layers=k if isinstance(k, int) and not isinstance(k, bool) and k > 0 else None,
                name=type(obj).__name__)
