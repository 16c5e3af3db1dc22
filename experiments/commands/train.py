"""`unfoldkit train MODEL`: train an unfolded model on a problem family and write model.pt, checkpoint.pt and
history.json (docs/training.md)."""
from __future__ import annotations

import argparse
from pathlib import Path

from unfoldkit.experiments.arguments import float_list, json_key_values, nonneg_int, output_folder, positive_int

NAME = "train"
HELP = "train an unfolded model on a problem family"

_SCHEMES = ("end-to-end", "multi-loss", "layer-wise", "unsupervised")
#: the mechanisms of --certify (docs/certified.md)
CERTIFY = ("schedule", "safeguard", "lista")
#: problem options of `train` and the problem families they apply to
_PROBLEM_OPTIONS = {"sparsity": ("sparse",), "lam": ("sparse",), "kappa": ("least-squares",),
                    "m": ("sparse", "least-squares"), "n": ("sparse", "least-squares"),
                    "snr_db": ("sparse", "least-squares")}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The `train` subcommand: problem, model, training and output options (docs/training.md)."""
    p = subparsers.add_parser(
        NAME, help=HELP,
        description="Train an unfolded model and write DIR/model.pt (the trained model: tensors plus JSON "
                    "metadata, loadable with unfoldkit.unrolled.training.load_model), DIR/checkpoint.pt "
                    "(resumable trainer state) and DIR/history.json (per-epoch, per-layer NMSE), atomically.")
    p.add_argument("model", metavar="MODEL", help="architecture family (a key of unfoldkit.unrolled.models.MODELS)")
    g = p.add_argument_group("problem")
    g.add_argument("--problem", choices=("sparse", "least-squares"), default="sparse",
                   help="problem family (default sparse: LASSO / sparse recovery)")
    g.add_argument("--m", type=positive_int, default=None, help="observation dimension (default: the family's)")
    g.add_argument("--n", type=positive_int, default=None, help="signal dimension (default: the family's)")
    g.add_argument("--sparsity", type=float, default=None, help="sparse: probability of a non-zero (default 0.1)")
    g.add_argument("--snr-db", type=float, default=None, help="noise level in dB (default: noiseless)")
    g.add_argument("--lam", type=float, default=None, help="sparse: l1 weight lam (default 0.1)")
    g.add_argument("--kappa", type=float, default=None, help="least-squares: condition number (default 10)")
    g.add_argument("--problem-seed", type=nonneg_int, default=0, help="seed that draws the matrix A (default 0)")
    g = p.add_argument_group("model")
    g.add_argument("--layers", type=positive_int, default=16, metavar="K", help="number of layers K (default 16)")
    g.add_argument("--float64", action="store_true", help="train in float64 (default float32)")
    g.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="extra constructor argument of the model, VALUE in JSON (repeatable)")
    g = p.add_argument_group("training")
    g.add_argument("--scheme", choices=_SCHEMES, default="end-to-end", help="training scheme (default end-to-end)")
    g.add_argument("--loss", choices=("nmse", "mse"), default=None, help="per-layer loss (default nmse)")
    g.add_argument("--weights", default=None, metavar="W1,...,WK", help="multi-loss: layer weights (default 1/K)")
    g.add_argument("--lr-decay", default=None, metavar="D1,D2",
                   help="layer-wise: fine-tuning learning-rate factors (default 0.2,0.02)")
    g.add_argument("--layer-decay", type=float, default=None,
                   help="layer-wise: factor on earlier layers' learning rate after each layer (default 0.3)")
    g.add_argument("--epochs", type=positive_int, default=20, help="epochs (per stage for layer-wise; default 20)")
    g.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    g.add_argument("--batch-size", type=positive_int, default=64, help="batch size (default 64)")
    g.add_argument("--steps-per-epoch", type=positive_int, default=50, help="steps per epoch with fresh batches (default 50)")
    g.add_argument("--train-size", type=positive_int, default=None,
                   help="use a fixed training set of this size (default: fresh batches every step)")
    g.add_argument("--val-size", type=positive_int, default=1000, help="size of the fixed validation set (default 1000)")
    g.add_argument("--patience", type=positive_int, default=None, help="early stopping patience in epochs (default: off)")
    g.add_argument("--lr-schedule", choices=("constant", "step", "exponential", "cosine"), default="constant",
                   help="learning-rate schedule within a stage (default constant)")
    g.add_argument("--lr-gamma", type=float, default=0.5, help="decay factor of the step/exponential schedules")
    g.add_argument("--lr-step", type=positive_int, default=10, help="epochs between decays of the step schedule")
    g.add_argument("--optimizer", choices=("adam", "sgd"), default="adam", help="optimizer (default adam)")
    g.add_argument("--momentum", type=float, default=0.0, help="sgd momentum (default 0)")
    g.add_argument("--grad-clip", type=float, default=None, help="clip the global gradient norm (default: off)")
    g.add_argument("--seed", type=nonneg_int, default=0, help="training seed: data, shuffling, model init (default 0)")
    g.add_argument("--device", default="cpu", help="cpu (default) or cuda[:index]")
    g.add_argument("--threads", type=positive_int, default=None,
                   help="torch and BLAS threads while training (default: unchanged; 1 is often fastest on 2 cores)")
    g = p.add_argument_group("certified training (docs/certified.md)")
    g.add_argument("--certify", choices=CERTIFY, default=None,
                   help="keep a guarantee through training: 'schedule' (gd-unfolded, ista-learned-step, fista-unfolded: every "
                        "layer's exact PEP worst case stays inside an envelope), 'safeguard' (train, then certify "
                        "the safeguarded model: the ISTA fixed-point residual never rises above its bound), "
                        "'lista' (lista-cp / lista-cpss / alista: thresholds and steps kept where the "
                        "linear-convergence certificate holds on X(B, s)); writes DIR/certificate.json")
    g.add_argument("--envelope-factor", type=float, default=1.0,
                   help="schedule: E_k = factor x the best classical schedule's worst case (default 1)")
    g.add_argument("--project-every", type=positive_int, default=None, metavar="N",
                   help="schedule: project onto the envelope after every N optimizer steps (default: once per "
                        "epoch; every state the trainer validates or keeps is projected)")
    g.add_argument("--class-s", type=positive_int, default=2,
                   help="lista: sparsity s of the declared class X(B, s); the training data are drawn from it "
                        "(default 2)")
    g.add_argument("--class-b", type=float, default=1.0, help="lista: amplitude bound B of X(B, s) (default 1)")
    g.add_argument("--safeguard-rule", choices=("geometric", "recent", "ema"), default="ema",
                   help="safeguard: update rule of the safeguard level mu_k (default ema)")
    g.add_argument("--safeguard-delta", type=float, default=0.01,
                   help="safeguard: required relative decrease delta of the residual (default 0.01)")
    g.add_argument("--mismatch-eps", type=float, default=0.3,
                   help="safeguard: size of the dictionary mismatch the certificate is also measured on (default 0.3)")
    g = p.add_argument_group("output")
    g.add_argument("--out", default="results/train", metavar="DIR", help="output folder (default results/train)")
    g.add_argument("--checkpoint-every", type=positive_int, default=1, help="save a checkpoint every N epochs (default 1)")
    flags = g.add_mutually_exclusive_group()
    flags.add_argument("--resume", action="store_true",
                       help="continue the run in DIR from DIR/checkpoint.pt (bit-exact; an error if there is none)")
    flags.add_argument("--force", action="store_true",
                       help="start afresh: delete the earlier run's model.pt, checkpoint.pt and history.json in DIR "
                            "(without --resume or --force, a DIR holding any of them is an error)")
    g.add_argument("--stop-after", type=positive_int, default=None, metavar="N",
                   help="pause after N epochs of the whole run (a checkpoint; --resume continues)")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    """Build the problem and the model, train, and write model.pt, checkpoint.pt and history.json.

    An earlier run in --out is continued only with --resume (which needs its checkpoint.pt) and replaced
    only with --force (``claim_outputs``), and --out must be a writable folder (``output_folder``), both
    checked before any work; Ctrl-C says how to resume."""
    import torch

    from unfoldkit.experiments.benchmarking import claim_outputs
    from unfoldkit.experiments.io import write_json
    from unfoldkit.unrolled.problems import make_problem
    from unfoldkit.unrolled.training import CHECKPOINT_NAME, save_checkpoint, train

    try:
        from unfoldkit.unrolled.models import MODELS, make_model
    except ImportError:
        MODELS = {}
    if args.model not in MODELS:
        raise ValueError(f"unknown model {args.model!r}; known: {', '.join(sorted(MODELS)) or 'none'}")
    out = Path(args.out)
    run_files = [out / CHECKPOINT_NAME, out / "model.pt", out / "history.json"]
    claim_outputs(run_files[:1] if args.resume else run_files, args.resume, args.force)
    output_folder("--out", out)   # created if missing, a folder, writable: before any work
    params: dict = {"seed": args.problem_seed}
    for key, families in _PROBLEM_OPTIONS.items():
        value = getattr(args, key)
        if value is None:
            continue
        if args.problem not in families:
            raise ValueError(f"--{key.replace('_', '-')} does not apply to --problem {args.problem}")
        params[key] = value
    problem = make_problem(args.problem, **params)
    if args.certify is not None:
        from unfoldkit.experiments import certify

        problem = certify.prepare(args, problem)
    scheme_options: dict = {}
    if args.loss is not None:
        scheme_options["loss"] = args.loss
    if args.weights is not None:
        scheme_options["weights"] = float_list("--weights", args.weights)
    if args.lr_decay is not None:
        scheme_options["lr_decay"] = float_list("--lr-decay", args.lr_decay)
    if args.layer_decay is not None:
        scheme_options["layer_decay"] = args.layer_decay
    # --certify schedule: theory in float64 (a rounded copy of a certified schedule need not be certified)
    dtype = torch.float64 if args.float64 or args.certify == "schedule" else torch.float32
    model_args = json_key_values("--model-arg", args.model_arg)
    if args.certify is not None:
        model_args = {**certify.model_options(args), **model_args}
    if args.device != "cpu" and args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: CUDA is not available")
    torch.manual_seed(args.seed)
    try:
        model = make_model(args.model, problem, num_layers=args.layers, dtype=dtype, **model_args)
    except (TypeError, ValueError) as err:
        raise ValueError(f"cannot build {args.model} with --model-arg {model_args}: {err}") from None
    if args.certify is not None:
        certify.check_model(args, model)
    if args.certify == "schedule":
        return _run_certified_schedule(args, model, problem, out)
    try:
        result = train(model, problem, args.scheme, resume=args.resume, overwrite=args.force, epochs=args.epochs,
                       lr=args.lr, batch_size=args.batch_size, steps_per_epoch=args.steps_per_epoch,
                       train_size=args.train_size, val_size=args.val_size, patience=args.patience,
                       lr_schedule=args.lr_schedule, lr_gamma=args.lr_gamma, lr_step=args.lr_step,
                       optimizer=args.optimizer, momentum=args.momentum, grad_clip=args.grad_clip, seed=args.seed,
                       device=args.device, threads=args.threads, stop_after=args.stop_after, checkpoint_dir=str(out),
                       checkpoint_every=args.checkpoint_every, progress=not args.no_progress,
                       constraint=None if args.certify is None else certify.constraint(args), **scheme_options)
        summary = result.to_dict()
        training = {"scheme": result.scheme, "scheme_settings": result.scheme_settings, "settings": result.settings,
                    "epochs_run": result.epochs_run, "best_val_nmse_db": result.best_val_nmse_db,
                    "final_val_nmse_db": result.final_val_nmse_db}
        cert = None
        if args.certify is not None and not result.paused:
            cert = certify.certificate(certify.settings(args), result.model, problem, seed=args.seed,
                                       samples=args.val_size)
            training["certify"] = {**certify.settings(args), "holds": cert["holds"]}
        paths = [save_checkpoint(out / "model.pt", result.model, problem=problem, training=training, seed=args.seed),
                 result.checkpoint_path, write_json(out / "history.json", summary)]
        if cert is not None:
            paths.append(write_json(out / "certificate.json", cert))
    except KeyboardInterrupt:
        raise KeyboardInterrupt(_how_to_resume(out / CHECKPOINT_NAME)) from None
    initial = result.history[0]["val_nmse_db"]
    final = result.final_val_nmse_db
    print(f"train {args.model} (K={args.layers}) on {problem!r}: {args.scheme}, {result.epochs_run} epochs"
          f"{' (stopped early)' if result.stopped_early else ''}"
          f"{' (paused: --resume continues)' if result.paused else ''}, {result.wall_time_s:.1f} s")
    if initial is not None and final is not None:
        print(f"  validation NMSE of x_K: {initial[-1]:.2f} dB -> {final[-1]:.2f} dB "
              f"(best {result.best_val_nmse_db:.2f} dB)")
    else:
        print(f"  validation objective F(x_K): {result.history[0]['val_objective'][-1]:.6g} -> "
              f"{result.final_val_objective[-1]:.6g}")
    if cert is not None:
        print(cert["summary"])
    for path in paths:
        print(f"wrote {path}")
    return 0 if cert is None or cert["holds"] else 1


def _run_certified_schedule(args: argparse.Namespace, model, problem, out: Path) -> int:
    """``--certify schedule``: the certified training loop (projections onto the PEP envelope), then model.pt,
    history.json and certificate.json (the certificate recomputed from scratch); exit 1 if it does not hold."""
    from unfoldkit.experiments import certify
    from unfoldkit.experiments.io import write_json
    from unfoldkit.unrolled.training import save_checkpoint

    try:
        result = certify.train_schedule(args, model, problem)
    except KeyboardInterrupt:
        raise KeyboardInterrupt("--certify schedule has no checkpoints: run the same command again") from None
    cert = certify.certificate(certify.settings(args), model, problem)
    training = {"scheme": "unsupervised (certified schedule)", "settings": {
        "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch, "batch_size": args.batch_size,
        "lr": args.lr, "seed": args.seed}, "certify": {**certify.settings(args), "holds": cert["holds"]}}
    paths = [save_checkpoint(out / "model.pt", model, problem=problem, training=training, seed=args.seed),
             write_json(out / "history.json", result.to_dict()), write_json(out / "certificate.json", cert)]
    print(f"train {args.model} (K={args.layers}) on {problem!r}: certified schedule, {args.epochs} epochs, "
          f"{result.train_time:.1f} s ({result.projection_time:.1f} s in projections)")
    print(cert["summary"])
    for path in paths:
        print(f"wrote {path}")
    return 0 if cert["holds"] else 1


def _how_to_resume(checkpoint: Path) -> str:
    """What the Ctrl-C message says: how to continue from ``checkpoint``, or that none was written yet."""
    import shlex

    if checkpoint.is_file():
        return (f"the run is saved up to its last checkpoint in {checkpoint}; to continue it, run the same command "
                f"with --resume --out {shlex.quote(str(checkpoint.parent))}")
    return "no checkpoint was written yet; run the same command again to start over"
