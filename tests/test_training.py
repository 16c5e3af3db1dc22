"""Training schemes, the layer-parameter helper and the trainer (seeds, early stopping, resume)."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from unfoldkit.unrolled.dtypes import dtype_name
from unfoldkit.unrolled.models.base import UnfoldedModel
from unfoldkit.unrolled.operators import soft_threshold
from unfoldkit.unrolled.problems import SparseRecovery
from unfoldkit.unrolled.training import (
    CHECKPOINT_NAME,
    CheckpointError,
    LayerWise,
    MultiLoss,
    TrainConfig,
    Unsupervised,
    evaluate,
    layer_parameters,
    load_checkpoint,
    make_scheme,
    mse,
    save_checkpoint,
    nmse,
    to_db,
    train,
    unassigned_parameters,
)
from unfoldkit.unrolled.training.checkpoint import canonical_json, checkpoint_digest

M, N, K = 20, 40, 4


class ToyISTA(UnfoldedModel):
    """Learned-step ISTA: untied step (K,) and threshold (K,)."""

    family = "toy-ista"

    def __init__(self, problem, num_layers, dtype=torch.float32):
        super().__init__(problem, num_layers, dtype)
        self.step = nn.Parameter(torch.full((num_layers,), 1.0 / problem.L, dtype=self.model_dtype))
        self.theta = nn.Parameter(torch.full((num_layers,), problem.lam / problem.L, dtype=self.model_dtype))

    def _layer(self, k, x, y):
        return soft_threshold(x - self.step[k] * self.problem.grad(x, y), self.theta[k])

    def config(self):
        return {"num_layers": self.num_layers}


class ToyLISTA(UnfoldedModel):
    """LISTA-CP-like: a ParameterList of per-layer matrices W_k, untied thresholds, one tied scale."""

    family = "toy-lista"

    def __init__(self, problem, num_layers, dtype=torch.float32):
        super().__init__(problem, num_layers, dtype)
        a = torch.as_tensor(problem.A, dtype=self.model_dtype) / problem.L
        self.W = nn.ParameterList([nn.Parameter(a.clone()) for _ in range(num_layers)])
        self.theta = nn.Parameter(torch.full((num_layers,), problem.lam / problem.L, dtype=self.model_dtype))
        self.scale = nn.Parameter(torch.ones((), dtype=self.model_dtype))

    def _layer(self, k, x, y):
        a = self.problem.matrix(y)
        return soft_threshold(x + self.scale * (y - x @ a.T) @ self.W[k], self.theta[k])

    def config(self):
        return {"num_layers": self.num_layers}


class ToyMomentum(ToyISTA):
    """A (K-1,) momentum used from layer 1 on, mapped to layers by the model's own hook."""

    family = "toy-momentum"

    def __init__(self, problem, num_layers, dtype=torch.float32):
        super().__init__(problem, num_layers, dtype)
        self.momentum = nn.Parameter(torch.zeros(num_layers - 1, dtype=self.model_dtype))

    def layer_parameters(self, k):
        out = [("step", k), ("theta", k)]
        if k > 0:
            out.append(("momentum", k - 1))
        return out


class NoTruthSparse(SparseRecovery):
    """A LASSO family whose sampler returns observations only (no ground truth)."""

    def _sample(self, batch_size, rng):
        y, _ = super()._sample(batch_size, rng)
        return y, None


@pytest.fixture(scope="module")
def problem():
    return SparseRecovery(m=M, n=N, sparsity=0.1, lam=0.05, seed=0)


FAST = dict(epochs=3, lr=1e-2, batch_size=32, steps_per_epoch=8, val_size=256, progress=False)


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _strip_times(history):
    return [{k: v for k, v in h.items() if k != "time_s"} for h in history]


# ---- losses ----------------------------------------------------------------------------------------


def test_losses_and_db():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    xh = torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    assert float(nmse(xh, x)) == pytest.approx(1.0 / 5.0)
    assert float(mse(xh, x)) == pytest.approx(1.0 / 4.0)
    assert to_db(0.1) == pytest.approx(-10.0)
    assert to_db(0.0) == -math.inf
    assert math.isnan(to_db(-1.0))


# ---- which parameters belong to layer k --------------------------------------------------------------


def test_layer_parameters_default_rules(problem):
    model = ToyLISTA(problem, 3)
    got = [{(e.name, e.index) for e in layer_parameters(model, k)} for k in range(3)]
    assert got[0] == {("W.0", None), ("theta", 0), ("scale", None)}   # tied scale: first layer
    assert got[1] == {("W.1", None), ("theta", 1)}
    assert got[2] == {("W.2", None), ("theta", 2)}
    assert unassigned_parameters(model) == []
    with pytest.raises(ValueError, match="k must lie"):
        layer_parameters(model, 3)


def test_layer_parameters_model_hook(problem):
    model = ToyMomentum(problem, 3)
    assert [(e.name, e.index) for e in layer_parameters(model, 2)] == [("step", 2), ("theta", 2), ("momentum", 1)]

    class BadHook(ToyISTA):
        def layer_parameters(self, k):
            return [("nope", None)]

    with pytest.raises(ValueError, match="not a parameter"):
        layer_parameters(BadHook(problem, 2), 0)


def test_layer_parameters_k_minus_one_rows(problem):
    """A tensor declared untied with K-1 rows serves layers 1..K-1 (row j -> layer j + 1)."""
    from unfoldkit.unrolled.models.base import ParamInfo

    class Declared(ToyISTA):
        def __init__(self, problem, num_layers):
            super().__init__(problem, num_layers)
            self.momentum = nn.Parameter(torch.zeros(num_layers - 1))

        def parameter_info(self):
            k = self.num_layers
            return [ParamInfo("step", (k,), True, False), ParamInfo("theta", (k,), True, False),
                    ParamInfo("momentum", (k - 1,), True, False)]

    model = Declared(problem, 3)
    got = [{(e.name, e.index) for e in layer_parameters(model, k)} for k in range(3)]
    assert got == [{("step", 0), ("theta", 0)}, {("step", 1), ("theta", 1), ("momentum", 0)},
                   {("step", 2), ("theta", 2), ("momentum", 1)}]


def test_layer_wise_plan_follows_lista_cpss_recipe(problem):
    model = ToyLISTA(problem, 3)
    stages = LayerWise().stages(model)
    assert len(stages) == 3 * 3                          # per layer: new, lr x 0.2, lr x 0.02
    assert [s.lr_factor for s in stages[:3]] == [1.0, 0.2, 0.02]
    assert [s.target_layer for s in stages] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    new2 = {p.name: p for p in stages[3].params}          # layer 2, new parameters only
    assert set(new2) == {"W.1", "theta"} and new2["theta"].row_mult == (0.0, 1.0, 0.0)
    fine3 = {p.name: p for p in stages[7].params}         # layer 3 fine-tuning: decay^(3 - j)
    assert fine3["W.0"].lr_mult == pytest.approx(0.09) and fine3["W.2"].lr_mult == 1.0
    assert fine3["scale"].lr_mult == pytest.approx(0.09)
    assert fine3["theta"].row_mult == pytest.approx((0.09, 0.3, 1.0))


# ---- schemes lower the validation NMSE ----------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["end-to-end", "multi-loss", "layer-wise", "unsupervised"])
@pytest.mark.parametrize("toy", [ToyISTA, ToyLISTA])
def test_each_scheme_lowers_validation_nmse(problem, scheme, toy):
    torch.manual_seed(0)
    model = toy(problem, K)
    settings = dict(FAST, epochs=1) if scheme == "layer-wise" else FAST
    result = train(model, problem, scheme, **settings)
    before = result.history[0]["val_nmse_db"][K]
    assert result.final_val_nmse_db[K] < before
    assert result.best_val_nmse_db <= result.final_val_nmse_db[K] + 1e-12 or scheme == "layer-wise"
    assert result.epochs_run == len(result.history) - 1
    entry = result.history[-1]
    assert len(entry["val_nmse_db"]) == K + 1 and len(entry["train_nmse_db"]) == K + 1
    assert len(entry["val_objective"]) == K + 1
    assert result.wall_time_s > 0


def test_unsupervised_lowers_objective_and_needs_no_ground_truth():
    prob = NoTruthSparse(m=M, n=N, sparsity=0.1, lam=0.05, seed=1)
    model = ToyISTA(prob, K)
    result = train(model, prob, "unsupervised", **FAST)
    assert result.final_val_objective[K] < result.history[0]["val_objective"][K]
    assert result.final_val_nmse_db is None and result.best_val_nmse_db is None
    assert all(h["train_nmse_db"] is None and h["val_nmse_db"] is None for h in result.history)
    with pytest.raises(ValueError, match="ground truth"):
        train(ToyISTA(prob, K), prob, "end-to-end", **FAST)


def test_unsupervised_loss_ignores_ground_truth(problem):
    model = ToyISTA(problem, K)
    batch = problem.sample(16, 3, dtype=torch.float32)
    scheme = Unsupervised()
    stage = scheme.stages(model)[0]
    traj = model(batch.y, trajectory=True)
    with_x = scheme.loss(traj, batch, problem, stage)
    without_x = scheme.loss(traj, type(batch)(batch.y, None), problem, stage)
    assert torch.equal(with_x, without_x)
    assert torch.allclose(with_x, problem.objective(traj[-1], batch.y).mean())


def test_multi_loss_weights(problem):
    model = ToyISTA(problem, K)
    batch = problem.sample(16, 3, dtype=torch.float32)
    traj = model(batch.y, trajectory=True)
    only_last = MultiLoss(weights=[0, 0, 0, 1])
    assert torch.equal(only_last.loss(traj, batch, problem, only_last.stages(model)[0]), nmse(traj[-1], batch.x))
    uniform = MultiLoss()
    expected = sum(nmse(traj[k], batch.x) for k in range(1, K + 1)) / K
    assert torch.allclose(uniform.loss(traj, batch, problem, uniform.stages(model)[0]), expected)
    with pytest.raises(ValueError, match="one entry per layer"):
        MultiLoss(weights=[1.0, 1.0]).stages(model)
    with pytest.raises(ValueError, match="non-negative"):
        MultiLoss(weights=[-1.0, 1.0, 1.0, 1.0])


# ---- layer-wise trains only layer k in its first phase -------------------------------------------------


def test_layer_wise_first_phase_trains_only_that_layer(problem):
    model = ToyLISTA(problem, 3)
    snaps = [_params(model)]
    train(model, problem, "layer-wise", callback=lambda entry: snaps.append(_params(model)),
          **dict(FAST, epochs=1, restore_best=False))
    assert len(snaps) == 1 + 9
    first = snaps[1]                       # after stage "layer 1: new parameters"
    for name in ("W.1", "W.2"):
        assert torch.equal(first[name], snaps[0][name])
    assert torch.equal(first["theta"][1:], snaps[0]["theta"][1:])
    assert not torch.equal(first["W.0"], snaps[0]["W.0"])
    assert first["theta"][0] != snaps[0]["theta"][0] and first["scale"] != snaps[0]["scale"]
    before, after = snaps[3], snaps[4]    # stage "layer 2: new parameters"
    for name in ("W.0", "W.2", "scale"):
        assert torch.equal(after[name], before[name])
    assert after["theta"][0] == before["theta"][0] and after["theta"][2] == before["theta"][2]
    assert not torch.equal(after["W.1"], before["W.1"]) and after["theta"][1] != before["theta"][1]
    before, after = snaps[4], snaps[5]    # layer 2 fine-tuning: layers 1..2, never layer 3
    assert torch.equal(after["W.2"], before["W.2"]) and after["theta"][2] == before["theta"][2]
    assert not torch.equal(after["W.0"], before["W.0"])


# ---- early stopping, seeds, dtype ------------------------------------------------------------------------


def test_early_stopping_stops(problem):
    result = train(ToyISTA(problem, K), problem, **dict(FAST, epochs=20, patience=2, min_delta=1e3))
    assert result.stopped_early and result.epochs_run == 2
    assert result.stages[0]["stopped_early"] and result.stages[0]["epochs_run"] == 2


def test_patience_not_triggered_while_improving(problem):
    result = train(ToyISTA(problem, K), problem, **dict(FAST, epochs=3, patience=3))
    assert not result.stopped_early and result.epochs_run == 3


def test_same_seed_same_run_other_seed_other_run(problem):
    runs = []
    for seed in (5, 5, 6):
        model = ToyISTA(problem, K)
        runs.append((train(model, problem, seed=seed, **FAST), _params(model)))
    (r1, p1), (r2, p2), (r3, p3) = runs
    assert all(torch.equal(p1[k], p2[k]) for k in p1)
    assert _strip_times(r1.history) == _strip_times(r2.history)
    assert not torch.equal(p1["step"], p3["step"])


def test_fixed_training_set_and_restore_best(problem):
    model = ToyISTA(problem, K)
    result = train(model, problem, **dict(FAST, train_size=100, batch_size=32))
    best = min(h["monitor"] for h in result.history[1:])
    assert result.final_val_nmse_db[K] == pytest.approx(min(best, result.history[0]["val_nmse_db"][K]))


def test_float64_and_options(problem):
    model = ToyISTA(problem, K)
    result = train(model, problem, "end-to-end", loss="mse", dtype="float64", grad_clip=0.5, optimizer="sgd",
                   momentum=0.5, lr_schedule="cosine", **dict(FAST, lr=1e-3))
    assert model.step.dtype == torch.float64 and model.model_dtype == torch.float64
    assert result.peak_memory_kind in ("process-peak-rss", None)
    assert [h["lr"] for h in result.history[1:]] == pytest.approx([1e-3, 1e-3 * 0.75, 1e-3 * 0.25])


def test_threads_limit_the_run_and_are_restored(problem):
    """threads=1 runs with one torch thread (seen from inside the run) and gives the same numbers as an
    unlimited run (CPU training is deterministic and these products are single-threaded at this size);
    the caller's thread count is restored afterwards, also after an error."""
    from unfoldkit.unrolled.training.threads import limit_threads

    before = torch.get_num_threads()
    seen: list[int] = []
    limited = ToyISTA(problem, K)
    r1 = train(limited, problem, threads=1, callback=lambda entry: seen.append(torch.get_num_threads()), **FAST)
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == before
    free = ToyISTA(problem, K)
    r2 = train(free, problem, **FAST)
    assert _strip_times(r1.history) == _strip_times(r2.history)
    with pytest.raises(RuntimeError, match="boom"):
        with limit_threads(1):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"):
        with limit_threads(0):
            pass


def test_lr_schedules():
    cfg = TrainConfig(epochs=4, lr_schedule="step", lr_gamma=0.5, lr_step=2)
    assert [cfg.lr_factor(e) for e in range(4)] == [1.0, 1.0, 0.5, 0.5]
    cfg = TrainConfig(epochs=4, lr_schedule="exponential", lr_gamma=0.5)
    assert [cfg.lr_factor(e) for e in range(3)] == [1.0, 0.5, 0.25]


@pytest.mark.parametrize("bad, match", [
    (dict(epochs=0), "epochs"), (dict(lr=0.0), "lr"), (dict(lr=-1e-3), "lr"), (dict(batch_size=0), "batch_size"),
    (dict(patience=0), "patience"), (dict(lr_schedule="linear"), "lr_schedule"), (dict(optimizer="lbfgs"), "optimizer"),
    (dict(grad_clip=-1.0), "grad_clip"), (dict(dtype="float16"), "dtype"), (dict(device="tpu"), "device"),
    (dict(seed=-1), "seed"), (dict(val_size=0), "val_size"), (dict(momentum=1.0), "momentum"),
    (dict(train_size=0), "train_size"), (dict(bogus=1), "unknown training settings"),
    (dict(threads=0), "threads"), (dict(threads=1.5), "threads"),
])
def test_bad_settings_raise_value_error(problem, bad, match):
    with pytest.raises(ValueError, match=match):
        train(ToyISTA(problem, K), problem, **dict(FAST, **bad))


def test_bad_scheme_arguments(problem):
    with pytest.raises(ValueError, match="unknown training scheme"):
        train(ToyISTA(problem, K), problem, "greedy", **FAST)
    with pytest.raises(ValueError, match="do not apply"):
        train(ToyISTA(problem, K), problem, "end-to-end", weights=[1, 1, 1, 1], **FAST)
    with pytest.raises(ValueError, match="loss"):
        make_scheme("end-to-end", loss="l1")
    with pytest.raises(ValueError, match="layer_decay"):
        LayerWise(layer_decay=0.0)
    with pytest.raises(ValueError, match="resume"):
        train(ToyISTA(problem, K), problem, resume=True, **FAST)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_cuda_requested_but_unavailable(problem):
    with pytest.raises(ValueError, match="CUDA is not available"):
        train(ToyISTA(problem, K), problem, device="cuda", **FAST)


def test_evaluate_matches_direct_computation(problem):
    model = ToyISTA(problem, K)
    batch = problem.sample(50, 4, dtype=torch.float32)
    ev = evaluate(model, problem, batch, batch_size=16)
    with torch.no_grad():
        traj = model(batch.y, trajectory=True).double()
    direct = [float(((traj[k] - batch.x.double()) ** 2).sum() / (batch.x.double() ** 2).sum()) for k in range(K + 1)]
    assert ev["nmse"] == pytest.approx(direct, rel=1e-6)   # chunks round differently in float32
    assert ev["nmse_db"][0] == pytest.approx(0.0, abs=1e-9)


# ---- resume: bit-exact continuation -------------------------------------------------------------------


class _Interrupt(Exception):
    pass


def _interrupt_at(epoch):
    def callback(entry):
        if entry["epoch"] == epoch:
            raise _Interrupt
    return callback


@pytest.mark.parametrize("scheme, settings, stop, every", [
    ("end-to-end", dict(train_size=96, epochs=4), 2, 1),             # fixed set: torch shuffling generator
    ("end-to-end", dict(epochs=4, patience=3), 3, 2),                 # fresh batches; replays epoch 3
    ("layer-wise", dict(epochs=1), 4, 1),                            # crosses stage boundaries
    ("multi-loss", dict(epochs=3, optimizer="sgd", momentum=0.9, lr=1e-3, lr_schedule="exponential"), 1, 1),
])
def test_resume_reproduces_uninterrupted_run_bit_exactly(problem, tmp_path, scheme, settings, stop, every):
    cfg = dict(FAST, **settings)
    full_model = ToyLISTA(problem, 3)
    full = train(full_model, problem, scheme, checkpoint_dir=str(tmp_path / "full"), **cfg)

    model = ToyLISTA(problem, 3)
    with pytest.raises(_Interrupt):
        train(model, problem, scheme, checkpoint_dir=str(tmp_path / "cut"), checkpoint_every=every,
              callback=_interrupt_at(stop), **cfg)
    fresh = ToyLISTA(problem, 3)
    resumed = train(fresh, problem, scheme, checkpoint_dir=str(tmp_path / "cut"), checkpoint_every=every,
                    resume=True, **cfg)
    a, b = _params(full_model), _params(fresh)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _strip_times(full.history) == _strip_times(resumed.history)
    assert full.stages == resumed.stages
    assert full.final_val_nmse_db == resumed.final_val_nmse_db

    again = train(ToyLISTA(problem, 3), problem, scheme, checkpoint_dir=str(tmp_path / "cut"), resume=True, **cfg)
    assert _strip_times(again.history) == _strip_times(full.history)   # finished run: nothing more to do
    assert all(torch.equal(again.model.state_dict()[k], a[k]) for k in a)


@pytest.mark.parametrize("scheme, settings, pauses", [
    ("end-to-end", dict(epochs=5), (2, 4)),          # two sessions paused, a third finishes
    ("layer-wise", dict(epochs=1), (3, 6)),          # pauses at stage boundaries (one epoch per stage)
    ("multi-loss", dict(epochs=3, patience=1), (1,)),
])
def test_stop_after_pauses_and_resume_continues_bit_exactly(problem, tmp_path, scheme, settings, pauses):
    """A run split into sessions by stop_after equals the uninterrupted run (parameters, history, result)."""
    cfg = dict(FAST, **settings)
    full_model = ToyLISTA(problem, 3)
    full = train(full_model, problem, scheme, **cfg)
    assert not full.paused
    model = ToyLISTA(problem, 3)
    for i, stop in enumerate(pauses):
        part = train(model, problem, scheme, checkpoint_dir=str(tmp_path), resume=i > 0, stop_after=stop, **cfg)
        if part.epochs_run < full.epochs_run:
            assert part.paused and part.epochs_run == stop and part.to_dict()["paused"] is True
            assert _strip_times(part.history) == _strip_times(full.history[:stop + 1])
        model = ToyLISTA(problem, 3)
    last = train(model, problem, scheme, checkpoint_dir=str(tmp_path), resume=True, **cfg)
    assert not last.paused and last.epochs_run == full.epochs_run
    a, b = _params(full_model), _params(model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _strip_times(full.history) == _strip_times(last.history) and full.stages == last.stages
    assert full.final_val_nmse_db == last.final_val_nmse_db


def test_stop_after_needs_a_checkpoint_and_past_the_end_is_a_full_run(problem, tmp_path):
    with pytest.raises(ValueError, match="stop_after needs a checkpoint_dir"):
        train(ToyISTA(problem, K), problem, stop_after=1, **FAST)
    with pytest.raises(ValueError, match="stop_after"):
        train(ToyISTA(problem, K), problem, checkpoint_dir=str(tmp_path), stop_after=0, **FAST)
    result = train(ToyISTA(problem, K), problem, checkpoint_dir=str(tmp_path), stop_after=99, **FAST)
    assert not result.paused and result.epochs_run == FAST["epochs"]


def test_resume_without_checkpoint_starts_fresh(problem, tmp_path):
    result = train(ToyISTA(problem, K), problem, checkpoint_dir=str(tmp_path), resume=True, **FAST)
    assert result.epochs_run == 3 and (tmp_path / CHECKPOINT_NAME).exists()
    ckpt = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert ckpt.family == "toy-ista" and ckpt.training["scheme"] == "end-to-end"
    assert ckpt.resume["finished"] is True


def test_resume_rejects_other_settings(problem, tmp_path):
    train(ToyISTA(problem, K), problem, checkpoint_dir=str(tmp_path), **FAST)
    with pytest.raises(CheckpointError, match="lr"):
        train(ToyISTA(problem, K), problem, checkpoint_dir=str(tmp_path), resume=True, **dict(FAST, lr=0.5))
    with pytest.raises(CheckpointError, match="scheme"):
        train(ToyISTA(problem, K), problem, "multi-loss", checkpoint_dir=str(tmp_path), resume=True, **FAST)
    with pytest.raises(CheckpointError, match="toy-ista"):
        train(ToyLISTA(problem, K), problem, checkpoint_dir=str(tmp_path), resume=True, **FAST)
    other = SparseRecovery(m=M, n=N, sparsity=0.1, lam=0.05, seed=9)
    with pytest.raises(CheckpointError, match="problem differs"):
        train(ToyISTA(other, K), other, checkpoint_dir=str(tmp_path), resume=True, **FAST)


# ---- an earlier run is never replaced silently; a damaged or edited trainer state is refused -------------


def test_an_earlier_checkpoint_needs_resume_or_overwrite(problem, tmp_path):
    train(ToyISTA(problem, K), problem, checkpoint_dir=str(tmp_path), **FAST)
    path = tmp_path / CHECKPOINT_NAME
    before = path.read_bytes()
    with pytest.raises(ValueError, match=rf"checkpoint_dir {tmp_path} already holds checkpoint.pt from an earlier "
                                         rf"run: pass resume=True to continue it or overwrite=True to replace it"):
        train(ToyISTA(problem, K), problem, checkpoint_dir=str(tmp_path), **dict(FAST, lr=0.5))
    assert path.read_bytes() == before
    with pytest.raises(ValueError, match="exclude each other"):
        train(ToyISTA(problem, K), problem, checkpoint_dir=str(tmp_path), resume=True, overwrite=True, **FAST)
    replaced = train(ToyISTA(problem, K), problem, checkpoint_dir=str(tmp_path), overwrite=True, **dict(FAST, lr=0.5))
    assert replaced.epochs_run == 3 and load_checkpoint(path).training["settings"]["lr"] == 0.5


def test_overwrite_discards_the_old_checkpoint_before_training(problem, tmp_path):
    """Interrupted before its first checkpoint, an overwriting run leaves no stale checkpoint to resume."""
    train(ToyISTA(problem, K), problem, checkpoint_dir=str(tmp_path), **FAST)
    with pytest.raises(_Interrupt):
        train(ToyISTA(problem, K), problem, checkpoint_dir=str(tmp_path), overwrite=True, checkpoint_every=2,
              callback=_interrupt_at(1), **FAST)
    assert not (tmp_path / CHECKPOINT_NAME).exists()


def test_resuming_from_a_model_file_says_it_holds_no_trainer_state(problem, tmp_path):
    model = ToyISTA(problem, K)
    save_checkpoint(tmp_path / CHECKPOINT_NAME, model, training={"scheme": "end-to-end"})
    with pytest.raises(CheckpointError, match="cannot resume: this file holds no trainer state .*resume from the "
                                              "run's checkpoint.pt"):
        train(ToyISTA(problem, K), problem, checkpoint_dir=str(tmp_path), resume=True, **FAST)


@pytest.fixture(scope="module")
def paused_run(problem, tmp_path_factory):
    """A run of 3 epochs paused after 2 (its checkpoint.pt holds the optimizer state and best parameters)."""
    folder = tmp_path_factory.mktemp("paused")
    result = train(ToyISTA(problem, K), problem, checkpoint_dir=str(folder), stop_after=2, **FAST)
    assert result.paused and result.epochs_run == 2
    return folder / CHECKPOINT_NAME


def _edit_state(paused, folder, edit, forge=True):
    """A copy of the paused run in ``folder`` whose trainer state went through ``edit(resume, state_tensors)``,
    the metadata's tensor list kept true and, with ``forge``, the integrity hash recomputed."""
    shutil.copy(paused, folder / CHECKPOINT_NAME)
    raw = torch.load(paused, weights_only=True)
    meta = json.loads(raw["metadata"])
    edit(meta["resume"], raw["state"])
    meta["tensors"] = {f"{g}/{k}": {"dtype": dtype_name(t.dtype), "shape": list(t.shape)}
                       for g in ("model", "state") for k, t in raw[g].items()}
    raw["metadata"] = canonical_json(meta)
    if forge:
        raw["sha256"] = checkpoint_digest(raw["metadata"], {"model": raw["model"], "state": raw["state"]})
    torch.save(raw, folder / CHECKPOINT_NAME)


def _fewer_epochs(state, tensors):
    state["global_epoch"] -= 1
    state["epoch_in_stage"] -= 1


def test_a_checkpoint_edited_to_show_fewer_epochs_is_refused(problem, paused_run, tmp_path):
    """The issue's case: a paused checkpoint.pt edited to show 1 finished epoch instead of 2 was resumed."""
    _edit_state(paused_run, tmp_path, _fewer_epochs, forge=False)
    with pytest.raises(CheckpointError, match="integrity check failed: the file was modified or corrupted"):
        train(ToyISTA(problem, K), problem, checkpoint_dir=str(tmp_path), resume=True, **FAST)
    _edit_state(paused_run, tmp_path, _fewer_epochs)     # hash recomputed: the counters contradict the history
    with pytest.raises(CheckpointError, match="cannot resume: the trainer state is inconsistent: global_epoch is 1, "
                                              "but the history records 2 epochs; re-create the checkpoint"):
        train(ToyISTA(problem, K), problem, checkpoint_dir=str(tmp_path), resume=True, **FAST)
    shutil.copy(paused_run, tmp_path / CHECKPOINT_NAME)   # control: the untouched copy resumes
    assert train(ToyISTA(problem, K), problem, checkpoint_dir=str(tmp_path), resume=True, **FAST).epochs_run == 3


def _put(key, value):
    return lambda state, tensors: state.__setitem__(key, value)


def _tensor(key, value):
    return lambda state, tensors: tensors.__setitem__(key, value)


def _first_exp_avg(state, tensors):
    key = next(k for k in tensors if k.startswith("optimizer.") and k.endswith("exp_avg"))
    tensors[key] = torch.zeros(K + 1)


@pytest.mark.parametrize("edit, fragment", [
    (_put("stage_index", -1), "stage_index must be a non-negative integer, got -1"),
    (_put("global_epoch", "2"), "global_epoch must be a non-negative integer, got '2'"),
    (_put("global_epoch", 2.0), "global_epoch must be a non-negative integer"),
    (_put("epoch_in_stage", 7), "global_epoch is 2, but stages_done and epoch_in_stage account for 7 epochs"),
    (_put("stage_bad", 5), "stage_bad must be an integer in 0..2, got 5"),
    (_put("stage_best_epoch", 9), "stage_best_epoch must be an integer in 0..2"),
    (_put("wall_time_s", -1.0), "wall_time_s must be a finite number >= 0"),
    (_put("wall_time_s", math.nan), "wall_time_s must be a finite number >= 0"),
    (_put("stage_best", math.nan), "stage_best must be a number or null"),
    (_put("stage_best", "low"), "stage_best must be a number or null"),
    (_put("finished", "yes"), "finished must be true or false"),
    (lambda state, tensors: state.update(finished=True, final=state["history"][-1]),
     "does not fit the run (stage_index 0 of 1 stages, finished=True)"),
    (_put("finished", True), "final metrics are missing or malformed"),
    (_put("history", []), "history records -1 epochs"),
    (lambda state, tensors: state["history"][1].__setitem__("epoch", 5), "history entry 1 is not the record of epoch 1"),
    (_put("stages_done", [{"epochs_run": 1}]), "stages_done must list 0 finished stages"),
    (_put("has_best", False), "has_best is False, but best.* tensors are present"),
    (_put("state_version", 2), "the trainer state is not of version 1"),
    (_put("bogus", 1), "unexpected fields bogus"),
    (lambda state, tensors: state.pop("numpy_rng"), "the trainer state lacks numpy_rng"),
    (_put("numpy_rng", {"bit_generator": "PCG64", "state": "x"}), "the stored generator states are unusable"),
    (_tensor("rng.torch", torch.zeros(3)), "rng.torch must be a 1-D uint8 tensor"),
    (_tensor("best.step", torch.zeros(K + 2)), "its best parameters do not match the model's tensors"),
    (_first_exp_avg, "the stored optimizer state does not fit stage"),
])
def test_a_trainer_state_that_breaks_its_schema_is_refused(problem, paused_run, tmp_path, edit, fragment):
    """Each field edited with the hash recomputed: refused by name, before the run continues."""
    _edit_state(paused_run, tmp_path, edit)
    with pytest.raises(CheckpointError) as err:
        train(ToyISTA(problem, K), problem, checkpoint_dir=str(tmp_path), resume=True, **FAST)
    message = str(err.value)
    assert message.startswith(f"{tmp_path / CHECKPOINT_NAME}: cannot resume: ") and fragment in message, message
    assert message.endswith("re-create the checkpoint (start the run again)"), message


def test_nan_loss_is_reported(problem):
    model = ToyISTA(problem, K)
    with torch.no_grad():
        model.step.fill_(1e30)
    with pytest.raises(RuntimeError, match="learning rate"):
        train(model, problem, **FAST)


# ---- real models (when the registry exists) ------------------------------------------------------------


def _registry():
    try:
        from unfoldkit.unrolled.models import MODELS
    except ImportError:
        return {}
    return MODELS


@pytest.mark.parametrize("family", ["ista-learned-step", "lista-cp"])
@pytest.mark.parametrize("scheme", ["end-to-end", "layer-wise"])
def test_real_models_train_and_reload(problem, tmp_path, family, scheme):
    models = _registry()
    if family not in models:
        pytest.skip(f"model {family!r} not registered yet")
    from unfoldkit.unrolled.training import load_model

    torch.manual_seed(0)
    model = models[family](problem, num_layers=3)
    settings = dict(FAST, epochs=1) if scheme == "layer-wise" else FAST
    result = train(model, problem, scheme, checkpoint_dir=str(tmp_path), **settings)
    assert result.final_val_nmse_db[3] < result.history[0]["val_nmse_db"][3]
    reloaded = load_model(tmp_path / CHECKPOINT_NAME, family=family)
    for name, t in model.state_dict().items():
        assert torch.equal(t, reloaded.state_dict()[name])
    y = problem.sample(8, 11, dtype=torch.float32).y
    assert torch.equal(model(y), reloaded(y))
    assert np.isfinite(result.best_val_nmse_db)


@pytest.mark.slow
def test_real_lista_cp_layer_wise_resume_and_gain(tmp_path):
    """Longer run: LISTA-CP trained layer-wise gains over its classical start, and resumes bit-exactly."""
    family = "lista-cp"
    if family not in _registry():
        pytest.skip(f"model {family!r} not registered yet")
    prob = SparseRecovery(m=50, n=100, sparsity=0.1, lam=0.05, seed=0)
    cfg = dict(epochs=3, lr=5e-4, batch_size=64, steps_per_epoch=20, val_size=500, progress=False)
    full_model = _registry()[family](prob, num_layers=4)
    full = train(full_model, prob, "layer-wise", checkpoint_dir=str(tmp_path / "full"), **cfg)
    assert full.final_val_nmse_db[4] < full.history[0]["val_nmse_db"][4] - 1.0
    cut = _registry()[family](prob, num_layers=4)
    with pytest.raises(_Interrupt):
        train(cut, prob, "layer-wise", checkpoint_dir=str(tmp_path / "cut"), callback=_interrupt_at(17), **cfg)
    fresh = _registry()[family](prob, num_layers=4)
    resumed = train(fresh, prob, "layer-wise", checkpoint_dir=str(tmp_path / "cut"), resume=True, **cfg)
    assert all(torch.equal(a, b) for a, b in zip(full_model.state_dict().values(), fresh.state_dict().values()))
    assert _strip_times(full.history) == _strip_times(resumed.history)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_resume_and_cpu_reload(problem, tmp_path):
    from unfoldkit.unrolled.training import load_checkpoint, restore_state

    cfg = dict(FAST, device="cuda", checkpoint_dir=str(tmp_path))
    model = ToyLISTA(problem, 3)
    with pytest.raises(_Interrupt):
        train(model, problem, callback=_interrupt_at(2), **cfg)
    resumed_model = ToyLISTA(problem, 3)
    resumed = train(resumed_model, problem, resume=True, **cfg)
    full_model = ToyLISTA(problem, 3)
    full = train(full_model, problem, **dict(cfg, checkpoint_dir=str(tmp_path / "full")))
    assert resumed_model.W[0].device.type == "cuda"
    assert resumed.peak_memory_kind == "cuda-max-allocated" and resumed.peak_memory_bytes > 0
    # CUDA kernels need not be bit-reproducible: compare the outcome to round-off
    assert resumed.final_val_nmse_db == pytest.approx(full.final_val_nmse_db, rel=1e-4, abs=1e-6)
    assert len(resumed.history) == len(full.history)
    cpu = ToyLISTA(problem, 3)
    restore_state(cpu, load_checkpoint(tmp_path / CHECKPOINT_NAME, map_location="cpu"))
    assert all(torch.equal(a.cpu(), b) for a, b in zip(resumed_model.state_dict().values(), cpu.state_dict().values()))
