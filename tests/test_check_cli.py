"""`unfoldkit check`: exit 0 for a classical-initialised checkpoint, 1 for a planted failing model (a LISTA whose
coupling is broken, declared as LISTA-CP), 2 for each bad input (one line, nothing unpickled); the input
loading (checkpoint, problem options, dataset files, user modules) and the adapter example end to end."""
from __future__ import annotations

import json
import pickle
import textwrap

import numpy as np
import pytest
import torch

from unfoldkit.experiments.cli import main
from unfoldkit.experiments.report.adapter import as_adapter, wrap
from unfoldkit.experiments.report.inputs import load_dataset, resolve_inputs
from unfoldkit.unrolled.models import ListaCP
from unfoldkit.unrolled.problems import SparseRecovery
from unfoldkit.unrolled.training import save_checkpoint

PROBLEM = dict(m=20, n=40, sparsity=0.1, lam=0.05)
FAST = ["--quick", "--no-progress", "--test-size", "32"]

#: a user's module: plain-torch LISTA; ``make`` declares it as unfoldkit's Lista, ``make_cp`` breaks the
#: coupling W2 = I - W1 A and declares it as LISTA-CP (W = W1^T): the declaration cannot hold
USER_MODULE = textwrap.dedent('''
    import torch
    from torch import nn
    from unfoldkit.experiments.report.adapter import wrap
    from unfoldkit.unrolled.models import Lista, ListaCP

    class MyLista(nn.Module):
        def __init__(self, A, K, lam):
            super().__init__()
            A = torch.as_tensor(A, dtype=torch.float64)
            L = float(torch.linalg.matrix_norm(A, 2)) ** 2
            self.W1 = nn.Parameter((A.T / L).repeat(K, 1, 1))
            self.W2 = nn.Parameter((torch.eye(A.shape[1], dtype=A.dtype) - A.T @ A / L).repeat(K, 1, 1))
            self.theta = nn.Parameter(torch.full((K,), lam / L, dtype=A.dtype))

        def forward(self, y, all_layers=False):
            y = y.to(self.W1.dtype)
            x = y.new_zeros(y.shape[0], self.W2.shape[-1])
            xs = [x]
            for W1, W2, t in zip(self.W1, self.W2, self.theta):
                v = y @ W1.T + x @ W2.T
                x = torch.sign(v) * torch.relu(v.abs() - t)
                xs.append(x)
            return torch.stack(xs) if all_layers else x

    def _declare(module, problem, cls):
        model = cls(problem, len(module.theta), dtype=torch.float64)
        with torch.no_grad():
            if cls is Lista:
                model.W1.copy_(module.W1)
                model.W2.copy_(module.W2[1:])
            else:
                model.W.copy_(module.W1.transpose(1, 2))
            model.threshold.copy_(module.theta)
        return model

    def _wrap(module, cls):
        return wrap(module, trajectory=lambda y: module(y, all_layers=True),
                    declare=lambda p: _declare(module, p, cls), num_layers=len(module.theta))

    def make(problem):
        return _wrap(MyLista(problem.A, 3, problem.lam), Lista)

    def make_cp(problem):
        module = MyLista(problem.A, 3, problem.lam)
        with torch.no_grad():     # "after training": W2 no longer equals I - W1 A
            module.W2.add_(0.2 * torch.randn(module.W2.shape, generator=torch.Generator().manual_seed(0),
                                             dtype=module.W2.dtype))
        return _wrap(module, ListaCP)

    black_box = MyLista(torch.randn(20, 40, generator=torch.Generator().manual_seed(1)).double(), 3, 0.05)
''')


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A classical-initialised LISTA-CP checkpoint, the user module and a valid dataset."""
    root = tmp_path_factory.mktemp("check")
    problem = SparseRecovery(**PROBLEM)
    ckpt = save_checkpoint(root / "model.pt", ListaCP.from_classical(problem, 3), problem=problem)
    module = root / "my_lista.py"
    module.write_text(USER_MODULE)
    batch = problem.sample(16, rng=7)
    data = root / "data.npz"
    np.savez(data, y=batch.y.numpy(), x=batch.x.numpy())
    return {"root": root, "ckpt": ckpt, "module": module, "data": data, "problem": problem, "batch": batch}


def _run(argv, capsys):
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_help_says_that_a_module_runs_code(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["check", "--help"])
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "EXECUTES" in text and "never unpickled" in text and "--problem-seed" in text


def test_classical_checkpoint_exit_0_and_force(files, tmp_path, capsys):
    out = tmp_path / "report"
    status, printed, err = _run(["check", str(files["ckpt"]), "--out", str(out), *FAST], capsys)
    assert status == 0, err
    assert {p.name for p in out.iterdir()} >= {"report.md", "report.html", "report.json"}
    report = json.loads((out / "report.json").read_text())
    assert report["verdicts"] and all(r["state"] != "fails" for r in report["verdicts"])
    assert "every applicable guarantee holds" in printed
    status, _, err = _run(["check", str(files["ckpt"]), "--out", str(out), *FAST], capsys)
    assert status == 2 and "--force" in err and len(err.strip().splitlines()) == 1
    status, _, err = _run(["check", str(files["ckpt"]), "--out", str(out), "--force", "--seed", "1",
                           "--data", str(files["data"]), "--no-progress", "--quick"], capsys)
    assert status == 0, err


def test_planted_failing_model_exit_1(files, tmp_path, capsys):
    out = tmp_path / "report"
    status, printed, err = _run(["check", "--module", f"{files['module']}:make_cp", "--problem", "sparse",
                                 "--m", "20", "--n", "40", "--lam", "0.05", "--out", str(out), *FAST], capsys)
    assert status == 1, err
    report = json.loads((out / "report.json").read_text())
    failing = [r for r in report["verdicts"] if r["state"] == "fails"]
    assert any(r["check"].startswith("declaration") for r in failing)
    assert "A GUARANTEE FAILS" in printed


def test_adapter_example_end_to_end(files, tmp_path, capsys):
    out = tmp_path / "report"
    status, _, err = _run(["check", "--module", f"{files['module']}:make", "--m", "20", "--n", "40",
                           "--lam", "0.05", "--out", str(out), *FAST], capsys)
    assert status == 0, err
    report = json.loads((out / "report.json").read_text())
    declaration = [r for r in report["verdicts"] if r["check"].startswith("declaration")]
    assert declaration and declaration[0]["state"] == "holds"
    assert "<html" in (out / "report.html").read_text().lower()


def _tampered(root, ckpt):
    obj = torch.load(ckpt, weights_only=True)
    obj["model"]["threshold"] = obj["model"]["threshold"] * 2
    path = root / "tampered.pt"
    torch.save(obj, path)
    return path


class _Code:
    def __reduce__(self):
        return (print, ("this must never run",))


def _bad_inputs(root, files):
    """(name, argv tail, words of the message) for each bad input."""
    batch = files["batch"]
    y, x = batch.y.numpy(), batch.x.numpy()
    np.savez(root / "object.npz", y=np.array([{"a": 1}], dtype=object), x=x)
    np.savez(root / "missing.npz", y=y)
    np.savez(root / "shape.npz", y=y[:, :5], x=x)
    np.savez(root / "nan.npz", y=np.where(np.arange(y.size).reshape(y.shape) == 3, np.nan, y), x=x)
    np.savez(root / "rows.npz", y=y[:3], x=x)
    np.savez(root / "wrong_m.npz", y=np.ones((4, 7)), x=np.ones((4, 40)))
    np.savez(root / "badA.npz", y=y, x=x, A=np.ones((20, 41)))
    with open(root / "pickle.npz", "wb") as fh:
        pickle.dump({"y": _Code()}, fh)
    torch.save({"format": "unfoldkit-checkpoint", "metadata": _Code()}, root / "code.pt")
    (root / "truncated.pt").write_bytes(files["ckpt"].read_bytes()[:300])
    ckpt = str(files["ckpt"])
    mod = str(files["module"])
    return [
        ("missing checkpoint", [str(root / "nope.pt")], "no such checkpoint"),
        ("tampered checkpoint", [str(_tampered(root, files["ckpt"]))], "integrity check failed"),
        ("truncated checkpoint", [str(root / "truncated.pt")], "truncated or corrupt"),
        ("pickled code checkpoint", [str(root / "code.pt")], "refused"),
        ("no model", [], "give a CHECKPOINT"),
        ("both", [ckpt, "--module", f"{mod}:make"], "not both"),
        ("missing data", [ckpt, "--data", str(root / "nope.npz")], "no such file"),
        ("object array", [ckpt, "--data", str(root / "object.npz")], "object array"),
        ("pickle file", [ckpt, "--data", str(root / "pickle.npz")], "pickled"),
        ("missing key", [ckpt, "--data", str(root / "missing.npz")], "missing key x"),
        ("wrong shape", [ckpt, "--data", str(root / "shape.npz")], "m = 5"),
        ("NaN", [ckpt, "--data", str(root / "nan.npz")], "NaN"),
        ("rows", [ckpt, "--data", str(root / "rows.npz")], "different numbers of samples"),
        ("data vs model", [ckpt, "--data", str(root / "wrong_m.npz")], "m = 7"),
        ("A shape", [ckpt, "--data", str(root / "badA.npz")], "A has shape"),
        ("test size with data", [ckpt, "--data", str(files["data"]), "--test-size", "3"], "--test-size"),
        ("model dimension", [ckpt, "--m", "30"], "wrong dimension"),
        ("option of another family", [ckpt, "--kappa", "3"], "--kappa does not apply"),
        ("missing module file", ["--module", str(root / "nope.py") + ":make"], "no such file"),
        ("missing module object", ["--module", f"{mod}:nothing", "--m", "20", "--n", "40"], "defines no 'nothing'"),
        ("module spec", ["--module", mod], "FILE.py:OBJECT"),
        ("module vs problem", ["--module", f"{mod}:black_box"], "the module fails on y of shape (2, m = 250)"),
    ]


def test_bad_inputs_exit_2_with_one_line(files, tmp_path, capsys):
    for name, tail, words in _bad_inputs(tmp_path, files):
        status, printed, err = _run(["check", *tail, "--out", str(tmp_path / "out"), "--quick", "--no-progress"],
                                    capsys)
        assert status == 2, (name, err)
        assert len(err.strip().splitlines()) == 1 and words in err, (name, err)
        assert "this must never run" not in printed + err, name


def test_dataset_with_operator_sets_the_problem(files, tmp_path):
    problem, batch = files["problem"], files["batch"]
    A = problem.A * 1.5
    path = tmp_path / "with_a.npz"
    np.savez(path, y=batch.y.numpy() @ np.eye(20), x=batch.x.numpy(), A=A, y_train=batch.y.numpy()[:4],
             x_train=batch.x.numpy()[:4])
    data = load_dataset(path)
    assert data.A.shape == (20, 40) and data.y_train.shape == (4, 20)
    fields = resolve_inputs(checkpoint=str(files["ckpt"]), data=str(path), problem_options={"lam": 0.2})
    prob = fields["problem"]
    assert np.array_equal(prob.A, A) and prob.lam == 0.2 and prob.name == "sparse"
    assert prob.params()["matrix"].startswith("A of --data") and prob.params()["seed"] is None
    assert fields["model"].problem is prob and fields["train_y"].shape == (4, 20)
    assert torch.equal(fields["test_x"], batch.x.double()) and fields["source"] == str(files["ckpt"])


def test_checkpoint_problem_is_the_default_and_sampling_is_seeded(files):
    a = resolve_inputs(checkpoint=str(files["ckpt"]), test_size=8, seed=3)
    b = resolve_inputs(checkpoint=str(files["ckpt"]), test_size=8, seed=3)
    assert a["problem"].params() == files["problem"].params()
    assert torch.equal(a["test_y"], b["test_y"]) and a["test_y"].shape == (8, 20)
    assert a["model"].family == "lista-cp" and a["fn"] is None and a["num_layers"] == 3


def test_wrap_and_as_adapter():
    f = lambda y: y  # noqa: E731
    w = wrap(f, num_layers=2)
    assert w(torch.ones(1, 2)).shape == (1, 2) and not w.has_trajectory and w.declare(None) is None
    assert as_adapter(w) is w
    with pytest.raises(ValueError, match="callable"):
        wrap(3)
    with pytest.raises(ValueError, match="num_layers"):
        wrap(f, num_layers=0)
    with pytest.raises(NotImplementedError):
        w.trajectory(torch.ones(1, 2))
