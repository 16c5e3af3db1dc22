"""The inputs of `unfoldkit check` (docs/check.md): the model, the problem and the test (and training) data.

- **model**: one of our checkpoints, read with the safe loader (``unrolled.training.checkpoint``: layout,
  SHA-256 and schema checked, ``torch.load(weights_only=True)`` only, so a pickled, truncated or tampered
  file is refused, never unpickled), or a user's module (``--module FILE.py:OBJECT``, see ``adapter.py``),
  which *runs the user's code* at their explicit request;
- **problem**: the checkpoint's by default; a built-in family with parameters (`unfoldkit train`'s problem
  options; given ones override the checkpoint's); or the operator ``A`` of a dataset file;
- **test data**: a dataset ``.npz`` (``--data``) or samples of the problem (``--test-size``, seeded); training
  data from the dataset file when it holds ``y_train`` and ``x_train``.

Every bad input raises ValueError (or OSError) with one line naming the file and what is wrong; the CLI prints
it and exits 2. torch and numpy are imported inside the functions (`unfoldkit check --help` stays light).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    import numpy as np
    from torch import Tensor

    from unfoldkit.unrolled.models.base import UnfoldedModel
    from unfoldkit.unrolled.problems.base import Problem

#: keys of a dataset file: required, optional
DATA_REQUIRED = ("y", "x")
DATA_OPTIONAL = ("A", "y_train", "x_train")
#: test set size sampled from the problem when no --data is given (default, --quick)
TEST_SIZE, QUICK_TEST_SIZE = 256, 64
#: second word of the seed sequence of the sampled test data (a stream apart from training's seed)
_TEST_STREAM = 0x636865636B  # "check"


# ---- dataset files ------------------------------------------------------------------------------


@dataclass
class Dataset:
    """A validated dataset file: test pairs ``y`` (B, m), ``x`` (B, n) in float64, the operator ``A`` (m, n)
    when given, and training pairs when given."""

    path: Path
    y: "np.ndarray"
    x: "np.ndarray"
    A: "np.ndarray | None" = None
    y_train: "np.ndarray | None" = None
    x_train: "np.ndarray | None" = None

    @property
    def m(self) -> int:
        return int(self.y.shape[1])

    @property
    def n(self) -> int:
        return int(self.x.shape[1])


def load_dataset(path: str | Path) -> Dataset:
    """Read and validate a dataset ``.npz`` with ``np.load(path, allow_pickle=False)``.

    Keys: ``y`` (B, m) and ``x`` (B, n) required; ``A`` (m, n), ``y_train`` (B', m) and ``x_train`` (B', n)
    optional (the training pair both or neither). Every array must be real numeric and finite. ValueError
    naming the file and what is wrong: missing file, not an npz, pickled / object arrays (never unpickled),
    missing or unknown keys, wrong shapes, NaN or inf."""
    import zipfile

    import numpy as np

    path = Path(path)
    where = f"--data {path}"
    if not path.is_file():
        raise ValueError(f"{where}: no such file")
    try:
        npz = np.load(path, allow_pickle=False)
    except ValueError as err:
        if "pickle" in str(err).lower():
            raise ValueError(f"{where}: refused: the file holds pickled data (it could run code when loaded); "
                             f"save plain arrays with np.savez") from None
        raise ValueError(f"{where}: not a numpy .npz file ({err})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{where}: not a readable .npz file ({type(err).__name__}: {err})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError(f"{where}: a single .npy array, not an .npz archive with keys y and x (use np.savez)")
    arrays: dict[str, np.ndarray] = {}
    with npz:
        keys = list(npz.files)
        missing = [k for k in DATA_REQUIRED if k not in keys]
        if missing:
            raise ValueError(f"{where}: missing key{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                             f"(has {', '.join(keys) or 'none'}; required y (B, m) and x (B, n), optional A, "
                             f"y_train, x_train)")
        unknown = [k for k in keys if k not in DATA_REQUIRED + DATA_OPTIONAL]
        if unknown:
            raise ValueError(f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                             f"(expected y, x and optionally A, y_train, x_train)")
        for key in keys:
            try:
                arr = npz[key]
            except ValueError as err:
                if "pickle" in str(err).lower() or "object" in str(err).lower():
                    raise ValueError(f"{where}: refused: key {key!r} is an object array (pickled data, it could "
                                     f"run code when loaded); store numbers") from None
                raise ValueError(f"{where}: key {key!r} cannot be read ({err})") from None
            except (OSError, EOFError, zipfile.BadZipFile) as err:
                raise ValueError(f"{where}: key {key!r} cannot be read, truncated or corrupt file "
                                 f"({type(err).__name__}: {err})") from None
            arrays[key] = _numeric(where, key, arr)
    y, x = arrays["y"], arrays["x"]
    _matrix(where, "y", y, "(B, m)")
    _matrix(where, "x", x, "(B, n)")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"{where}: y and x hold different numbers of samples ({y.shape[0]} and {x.shape[0]}); "
                         f"row b of y must be the measurement of row b of x")
    m, n = y.shape[1], x.shape[1]
    A = arrays.get("A")
    if A is not None:
        _matrix(where, "A", A, "(m, n)")
        if A.shape != (m, n):
            raise ValueError(f"{where}: A has shape {A.shape}, expected (m, n) = ({m}, {n}) from y {y.shape} "
                             f"and x {x.shape}")
    y_train, x_train = arrays.get("y_train"), arrays.get("x_train")
    if (y_train is None) != (x_train is None):
        given, absent = ("y_train", "x_train") if x_train is None else ("x_train", "y_train")
        raise ValueError(f"{where}: {given} without {absent}; give both training arrays or neither")
    if y_train is not None:
        _matrix(where, "y_train", y_train, f"(B', m = {m})")
        _matrix(where, "x_train", x_train, f"(B', n = {n})")
        if y_train.shape[1] != m or x_train.shape[1] != n or y_train.shape[0] != x_train.shape[0]:
            raise ValueError(f"{where}: y_train {y_train.shape} and x_train {x_train.shape} must have shapes "
                             f"(B', {m}) and (B', {n}) like y and x")
    return Dataset(path, y, x, A, y_train, x_train)


def _numeric(where: str, key: str, arr: "np.ndarray") -> "np.ndarray":
    """``arr`` as finite float64, ValueError naming the key for object, complex, text or non-finite data."""
    import numpy as np

    if arr.dtype == object:
        raise ValueError(f"{where}: refused: key {key!r} is an object array; store numbers")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)) \
            or arr.dtype == np.bool_:
        raise ValueError(f"{where}: key {key!r} has dtype {arr.dtype}, expected real numbers (float or int)")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{where}: key {key!r} holds {bad} NaN or inf value{'s' if bad > 1 else ''}")
    return arr


def _matrix(where: str, key: str, arr: "np.ndarray", shape: str) -> None:
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{where}: key {key!r} has shape {arr.shape}, expected a non-empty 2-D array {shape}")


# ---- problems -----------------------------------------------------------------------------------


def problem_from_matrix(family: str, A: "np.ndarray", params: Mapping[str, Any], source: str) -> "Problem":
    """A problem of ``family`` ("sparse", "bounded-sparse" or "least-squares") whose operator is the given
    ``A`` (m, n), with the family's other parameters (lam, sparsity, snr_db, ...) from ``params``.

    Built by the family's constructor (which validates the parameters and draws a matrix of the same size),
    then given ``A`` (so L, mu and the coherence are those of ``A``). Its ``params()`` says where ``A`` came
    from (``matrix``; ``seed`` None): it cannot be rebuilt by ``make_problem``."""
    from unfoldkit.unrolled.problems import FAMILIES, LinearInverseProblem

    if family not in FAMILIES or not issubclass(FAMILIES[family], LinearInverseProblem):
        linear = sorted(k for k, c in FAMILIES.items() if issubclass(c, LinearInverseProblem))
        raise ValueError(f"{source}: an operator A needs a linear problem family ({', '.join(linear)}), "
                         f"not {family!r}")
    m, n = A.shape
    for key in ("m", "n"):
        given = params.get(key)
        if given is not None and given != {"m": m, "n": n}[key]:
            raise ValueError(f"{source}: --{key} {given} does not match A of shape ({m}, {n})")
    base = FAMILIES[family]
    settings = {k: v for k, v in params.items() if k not in ("m", "n", "seed", "kappa", "L")}
    try:
        problem = _given_matrix_class(base)(A, source, m=m, n=n, **settings)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: cannot build a {family!r} problem from A with {settings}: {err}") from None
    return problem


def _given_matrix_class(base: type) -> type:
    """A subclass of the linear problem family ``base`` whose matrix is given (see ``problem_from_matrix``)."""
    from unfoldkit.unrolled.problems.linear import LinearInverseProblem

    class GivenMatrix(base):  # type: ignore[misc, valid-type]
        def __init__(self, matrix: "np.ndarray", source: str, **params: Any) -> None:
            if "kappa" in inspect.signature(base).parameters:
                params["kappa"] = None   # least squares: the conditioning is A's
            super().__init__(**params)
            LinearInverseProblem.__init__(self, matrix)
            self.matrix_source = source

        def params(self) -> dict[str, Any]:
            return {**super().params(), "seed": None, "matrix": self.matrix_source}

    GivenMatrix.__name__ = GivenMatrix.__qualname__ = f"{base.__name__}FromMatrix"
    return GivenMatrix


def family_params(family: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The options in ``given`` (not None) that ``family``'s constructor takes; ValueError naming an option
    that does not apply (e.g. --kappa with --problem sparse)."""
    from unfoldkit.unrolled.problems import FAMILIES

    if family not in FAMILIES:
        raise ValueError(f"unknown problem family {family!r}; known: {', '.join(sorted(FAMILIES))}")
    accepted = set(inspect.signature(FAMILIES[family]).parameters)
    out = {}
    for key, value in given.items():
        if value is None:
            continue
        if key not in accepted:
            raise ValueError(f"--{key.replace('_', '-')} does not apply to the {family!r} problem")
        out[key] = value
    return out


def build_problem(family: str | None, given: Mapping[str, Any], *, base_family: str | None = None,
                  base_params: Mapping[str, Any] | None = None, dataset: Dataset | None = None) -> "Problem":
    """The problem to check against: ``family`` (default ``base_family``, else "sparse") with the given
    options over ``base_params`` (the checkpoint's, kept only for the same family), its operator from the
    dataset when the dataset holds ``A``. ``given`` uses the names of the problems' constructors (m, n,
    sparsity, snr_db, lam, kappa, seed). ValueError naming what is wrong."""
    from unfoldkit.unrolled.problems import make_problem

    family = family or base_family or "sparse"
    params = dict(base_params or {}) if family == base_family else {}
    params.update(family_params(family, given))
    if dataset is not None and dataset.A is not None:
        settings = {k: v for k, v in params.items() if k not in ("m", "n")}
        settings.update({k: given[k] for k in ("m", "n") if given.get(k) is not None})   # checked against A
        return problem_from_matrix(family, dataset.A, settings, f"A of --data {dataset.path}")
    try:
        return make_problem(family, **params)
    except (TypeError, ValueError) as err:
        raise ValueError(f"cannot build the {family!r} problem from {params}: {err}") from None


# ---- models -------------------------------------------------------------------------------------


def load_checkpoint_file(path: str | Path):  # noqa: ANN201 - a Checkpoint
    """The verified checkpoint at ``path`` (``load_checkpoint``: weights_only, hash, schema); CheckpointError
    (a ValueError naming the file) for a missing, truncated, tampered or pickled file."""
    from unfoldkit.unrolled.training.checkpoint import load_checkpoint

    return load_checkpoint(path)


def model_from_checkpoint(ckpt: Any, problem: "Problem") -> "UnfoldedModel":
    """The checkpoint's model attached to ``problem`` (same family, same m and n as it was trained on)."""
    from unfoldkit.unrolled.training.checkpoint import load_model

    where = f"{ckpt.path}: " if ckpt.path is not None else ""
    if problem.name != ckpt.problem_family:
        raise ValueError(f"{where}the model was trained on a {ckpt.problem_family!r} problem, not {problem.name!r}")
    trained = ckpt.problem_params
    for key, have in (("m", problem.obs_dim), ("n", problem.n)):
        if key in trained and trained[key] != have:
            raise ValueError(f"{where}wrong dimension: the model was trained with {key} = {trained[key]}, the "
                             f"problem / data has {key} = {have}")
    return load_model(ckpt, problem=problem)


def load_user_module(spec: str, problem: "Problem") -> Any:
    """Run ``FILE.py`` of ``--module FILE.py:OBJECT`` (the user's code, at their request) and return OBJECT
    resolved: a module instance or adapter as it is; a function or class is called with the problem (or with
    nothing when it takes no argument) and its result returned. ValueError naming the file and what failed."""
    import importlib.util
    import sys

    import torch

    file, sep, name = spec.rpartition(":")
    if not sep or not file or not name or not name.isidentifier():
        raise ValueError(f"--module {spec}: expected FILE.py:OBJECT (e.g. my_lista.py:make)")
    path = Path(file)
    if not path.is_file():
        raise ValueError(f"--module {spec}: no such file {file}")
    if path.suffix != ".py":
        raise ValueError(f"--module {spec}: {file} is not a .py file")
    mod_name = f"unfoldkit_user_module_{abs(hash(str(path.resolve())))}"
    loader_spec = importlib.util.spec_from_file_location(mod_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise ValueError(f"--module {spec}: cannot import {file}")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[mod_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 - the user's code: any error becomes one line
        sys.modules.pop(mod_name, None)
        raise ValueError(f"--module {spec}: running {file} failed{_user_line(err, path)}: "
                         f"{type(err).__name__}: {err}") from None
    if not hasattr(module, name):
        public = sorted(k for k in vars(module) if not k.startswith("_"))
        raise ValueError(f"--module {spec}: {file} defines no {name!r} (it defines {', '.join(public) or 'nothing'})")
    obj = getattr(module, name)
    from unfoldkit.experiments.report.adapter import WrappedModel

    if isinstance(obj, (torch.nn.Module, WrappedModel)) or not callable(obj):
        return obj
    try:
        return obj(problem) if _takes_problem(obj) else obj()
    except Exception as err:  # noqa: BLE001 - the user's code
        raise ValueError(f"--module {spec}: calling {name} failed{_user_line(err, path)}: "
                         f"{type(err).__name__}: {err}") from None


def _takes_problem(fn: Any) -> bool:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) and p.default is p.empty
               for p in params)


def _user_line(err: BaseException, path: Path) -> str:
    """' (FILE line N)' for the innermost frame of ``err`` in the user's file, or ''."""
    import traceback

    frames = [f for f in traceback.extract_tb(err.__traceback__) if Path(f.filename).resolve() == path.resolve()]
    return f" ({path.name} line {frames[-1].lineno})" if frames else ""


def adapted_model(obj: Any, problem: "Problem", source: str) -> dict[str, Any]:
    """The CheckInputs fields of a user's object: ``fn`` (its trajectory when offered, else the callable),
    ``model`` (an UnfoldedModel given
    or declared, else None) and ``num_layers``. An UnfoldedModel is taken as a white-box model; anything
    else goes through the adapter protocol (``adapter.as_adapter``). ValueError when the declaration fails
    or does not fit the problem."""
    from unfoldkit.experiments.report.adapter import as_adapter
    from unfoldkit.unrolled.models.base import UnfoldedModel

    if isinstance(obj, UnfoldedModel):
        _fits(obj, problem, source)
        return {"model": obj, "fn": None, "num_layers": obj.num_layers}
    adapter = as_adapter(obj)
    try:
        declared = adapter.declare(problem)
    except Exception as err:  # noqa: BLE001 - the user's code
        raise ValueError(f"{source}: declare() failed: {type(err).__name__}: {err}") from None
    if declared is not None:
        if not isinstance(declared, UnfoldedModel):
            raise ValueError(f"{source}: declare() must return an unfoldkit UnfoldedModel (e.g. "
                             f"unfoldkit.unrolled.models.Lista), got {type(declared).__name__}")
        _fits(declared, problem, source)
    k = adapter.num_layers or (declared.num_layers if declared is not None else None)
    if declared is not None and adapter.num_layers is not None and adapter.num_layers != declared.num_layers:
        raise ValueError(f"{source}: num_layers {adapter.num_layers} but the declared {declared.family} has "
                         f"{declared.num_layers} layers")
    # the report's black box returns the trajectory (K+1, B, n) when it can (per-layer checks), else x_K
    fn = adapter.trajectory if adapter.has_trajectory else adapter
    _probe(fn, problem, source, adapter.has_trajectory, k)
    return {"model": declared, "fn": fn, "num_layers": k}


def _probe(fn: Any, problem: "Problem", source: str, trajectory: bool, num_layers: int | None) -> None:
    """Call the user's ``fn`` on two samples of the problem: ValueError naming the shapes when it fails or
    returns anything but (B, n) (or (K+1, B, n) for a trajectory)."""
    import torch

    y = problem.sample(2, rng=0).y
    what = "trajectory" if trajectory else "module"
    try:
        with torch.no_grad():
            out = fn(y)
    except Exception as err:  # noqa: BLE001 - the user's code
        raise ValueError(f"{source}: the {what} fails on y of shape (2, m = {problem.obs_dim}) of the problem "
                         f"(m = {problem.obs_dim}, n = {problem.n}): {type(err).__name__}: {err}") from None
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
    want = (2, problem.n) if not trajectory else (None if num_layers is None else num_layers + 1, 2, problem.n)
    ok = shape is not None and len(shape) == len(want) and all(w is None or w == s for w, s in zip(want, shape))
    if not ok:
        expected = "(2, n)" if not trajectory else "(K+1, 2, n)"
        raise ValueError(f"{source}: the {what} maps y of shape (2, {problem.obs_dim}) to "
                         f"{shape if shape is not None else type(out).__name__}, expected {expected} with "
                         f"n = {problem.n}" + (f", K = {num_layers}" if trajectory and num_layers else ""))


def _fits(model: "UnfoldedModel", problem: "Problem", source: str) -> None:
    if model.problem.obs_dim != problem.obs_dim or model.problem.n != problem.n:
        raise ValueError(f"{source}: the {model.family} model is built for m = {model.problem.obs_dim}, "
                         f"n = {model.problem.n}; the problem has m = {problem.obs_dim}, n = {problem.n}")


# ---- everything ---------------------------------------------------------------------------------


def sample_test_data(problem: "Problem", size: int, seed: int) -> tuple["Tensor", "Tensor | None"]:
    """``size`` fresh samples of ``problem`` (float64), seeded by ``seed`` on a stream apart from training's."""
    import numpy as np

    batch = problem.sample(size, rng=np.random.default_rng([seed, _TEST_STREAM]))
    return batch.y, batch.x


def resolve_inputs(*, checkpoint: str | None = None, module: str | None = None, data: str | None = None,
                   problem: str | None = None, problem_options: Mapping[str, Any] | None = None,
                   test_size: int | None = None, quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """The fields of ``CheckInputs`` for `unfoldkit check`: exactly one of ``checkpoint`` (a .pt of ours) and
    ``module`` (FILE.py:OBJECT); ``data`` a dataset .npz (test pairs, optional A and training pairs);
    ``problem`` a family and ``problem_options`` its parameters (constructor names; None = not given);
    ``test_size`` samples drawn from the problem when there is no ``data`` (default 256, 64 with ``quick``).
    Validation order: the cheap file checks first (checkpoint, dataset), then the problem, then the model
    (loading it or running the user's module), so that bad input fails before any work."""
    import torch

    if (checkpoint is None) == (module is None):
        raise ValueError("give a CHECKPOINT (a model.pt of `unfoldkit train`) or --module FILE.py:OBJECT"
                         + (", not both" if checkpoint is not None else ""))
    if data is not None and test_size is not None:
        raise ValueError("--test-size samples the problem; with --data the test set is the file's y and x")
    ckpt = load_checkpoint_file(checkpoint) if checkpoint is not None else None
    dataset = load_dataset(data) if data is not None else None
    given = dict(problem_options or {})
    prob = build_problem(problem, given, base_family=None if ckpt is None else ckpt.problem_family,
                         base_params=None if ckpt is None else ckpt.problem_params, dataset=dataset)
    if dataset is not None and (dataset.m, dataset.n) != (prob.obs_dim, prob.n):
        raise ValueError(f"--data {dataset.path}: y and x have m = {dataset.m}, n = {dataset.n}, the problem "
                         f"{prob!r} has m = {prob.obs_dim}, n = {prob.n} (give --m/--n, or A in the file)")
    if ckpt is not None:
        fields: dict[str, Any] = {"model": model_from_checkpoint(ckpt, prob), "fn": None}
        fields["num_layers"] = fields["model"].num_layers
        fields["certify"] = (ckpt.training or {}).get("certify")  # --certify: the certificate to recompute
        source = str(checkpoint)   # the path itself: the report stress-tests a .pt source
    else:
        source = f"module {module}"
        fields = adapted_model(load_user_module(module, prob), prob, f"--module {module}")
    if dataset is not None:
        as_t = lambda a: None if a is None else torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
        test_y, test_x = as_t(dataset.y), as_t(dataset.x)
        train_y, train_x = as_t(dataset.y_train), as_t(dataset.x_train)
    else:
        size = test_size if test_size is not None else (QUICK_TEST_SIZE if quick else TEST_SIZE)
        test_y, test_x = sample_test_data(prob, size, seed)
        train_y = train_x = None
    return {"problem": prob, "test_y": test_y, "test_x": test_x, **fields, "train_y": train_y,
            "train_x": train_x, "source": source}


def check_inputs(**kwargs: Any):  # noqa: ANN201 - a CheckInputs
    """``resolve_inputs(**kwargs)`` as the report's ``CheckInputs``."""
    from unfoldkit.experiments.report.build import CheckInputs

    return CheckInputs(**resolve_inputs(**kwargs))
