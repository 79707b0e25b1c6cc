"""`python -m reproductions.iglovikov18 chain`: the whole chain of one base variant in one command.

    chain --variant thumbs|r512|small|'' --data SPEC [--data-dir DIR] [--precision P]
          [--init-from-data SPEC] [--init-from-variant BASE] [--init-stages STAGE ...]
          [--regions hand [carpal metacarpal]]
          [--eval-data SPEC [--split-column COL]] [--dry-run]

The steps, in order, each the library call of its per-stage command (commands.py, ensemble.py),
never argv handed back to `main`:

    1. train --stage segment                       commands.train_stage
    2. train --stage keypoints                     commands.train_stage
    3. register --data SPEC                        commands.register_data   (not for phantoms: they carry key points)
    4. train --stage regress|classify --region R   commands.train_age       (per region in --regions order, regress first)
    5. evaluate --stage ensemble                   ensemble.evaluate_ensemble
    with --eval-data:
    6. register --data EVAL --split-column COL     commands.register_data   (by the same segment and keypoints runs)
    7. evaluate --stage S --region R --eval-data   commands.evaluate_age    (each network of step 4)
    8. evaluate --stage ensemble --eval-data       ensemble.evaluate_ensemble

--init-from-variant / --init-from-data (each defaults to the other's counterpart: --variant, --data)
start every network (those of --init-stages: default all) from the run of the same stage (and
region) that `train` makes from that data and variant (the age networks' on its registered folder;
phantoms' on the phantoms); a source run that is missing or untrained is one error line before
anything runs.

Rerun-safe: a network whose run is complete (status trained or evaluated, with best or last
weights; an age network also evaluated on its test split) is skipped, saying so; a registered
folder whose marker (DERIVED_FROM.json) names the same segment and keypoints runs, written after
their weights, is reused; an evaluation already in a run's record, or an ensemble newer than its
members' predictions, is not redone. So an interrupted chain is resumed by rerunning the same
command (`train` itself resumes an interrupted network from its last epoch). `--dry-run` prints
the steps, each with its per-stage command and whether it would run, and does nothing.
"""
from __future__ import annotations

import dataclasses
import shlex
import time
from pathlib import Path
from typing import Callable

from common.errors import UsageError
from common.options import RunOptions
from reproductions.iglovikov18 import commands
from reproductions.iglovikov18 import config as ig_config
from reproductions.iglovikov18 import ensemble
from reproductions.iglovikov18.variants import AGE_STAGES, REGIONS, STAGES, Variant

PROG = "python -m reproductions.iglovikov18"
COMPLETE = ("trained", "evaluated")


@dataclasses.dataclass(frozen=True)
class ChainRequest:
    """What `chain` was asked for (its flags, typed)."""
    data: str
    base: str = ""
    data_dir: str | None = None
    precision: str = "auto"
    init_from_data: str | None = None
    init_from_variant: str | None = None
    init_stages: tuple = STAGES             # which networks start from the init-from runs
    regions: tuple = REGIONS
    eval_data: str | None = None
    split_column: str | None = None


@dataclasses.dataclass
class Step:
    """One step of the chain: its per-stage command, the library call that does it, and why it may be skipped."""
    title: str
    command: str
    run: Callable[[], object]
    skip: Callable[[], str | None]          # why the step need not run (None: it runs); asked when it is reached
    source: Path | None = None              # the run it starts from (--init-from)
    source_stage: str | None = None
    trains: Callable[[], bool] = lambda: False  # whether running it trains (so needs its source)


# --- what is complete ----------------------------------------------------------------------------

def run_complete(run_dir) -> bool:
    """A run `train` finished: status trained or evaluated, and its best or last weights there."""
    from common import train as common_train
    from common.runs import RunDir
    return (RunDir(run_dir).record().get("status") in COMPLETE) and bool(common_train.trained_weights(run_dir))


def has_evaluation(run_dir, key: str) -> bool:
    from common.runs import RunDir
    return key in RunDir(run_dir).record().get("evaluations", {})


def registration_current(out, segment_run, keypoints_run) -> bool:
    """A registered folder written (completely: its marker comes last) by these segment and keypoints
    runs, after their weights were last written."""
    import json

    from common import train as common_train
    from reproductions.iglovikov18 import stages
    marker = Path(out) / stages.REGISTERED_MARKER
    if not marker.is_file():
        return False
    try:
        written = json.loads(marker.read_text())
    except ValueError:
        return False
    for key, run in (("segment_run", segment_run), ("keypoints_run", keypoints_run)):
        if not written.get(key) or Path(written[key]).resolve() != Path(run).resolve():
            return False
        if any(w.stat().st_mtime > marker.stat().st_mtime for w in common_train.trained_weights(run)):
            return False
    return True


def ensemble_current(out, members, key: str) -> bool:
    """An ensemble of exactly these members whose `key` evaluation is newer than each member's predictions."""
    from common.runs import RunDir
    metrics = Path(out) / key / "metrics.json"
    if not metrics.is_file() or RunDir(out).record().get("members") != [str(m) for m in members]:
        return False
    predictions = [Path(m) / key / "predictions.csv" for m in members]
    return all(p.is_file() and p.stat().st_mtime <= metrics.stat().st_mtime for p in predictions)


# --- the plan ------------------------------------------------------------------------------------

def _command(*words, **flags) -> str:
    """The per-stage command line: PROG, words, then --flag value for each flag given."""
    parts = [PROG, *words]
    for name, value in flags.items():
        if value is None or value is False or (name == "variant" and value == ""):
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, (list, tuple)):
            parts += [flag, *map(str, value)]
        else:
            parts += [flag, str(value)]
    return " ".join(shlex.quote(p) if p != PROG else p for p in parts)


def _age_data(data_spec: str, data_name: str, base: str) -> tuple[str, bool]:
    """(the age networks' --data, whether `register` writes it): phantoms are read as they are."""
    name = commands.age_data_name(data_name, base)
    return (data_spec, False) if name == data_name else (name, True)


def plan(request: ChainRequest, log=print) -> list[Step]:
    """The chain's steps for a request, in order (nothing is run or built: dataset names only)."""
    from common import train as common_train
    from common.train import evaluation_key
    base, data_dir = request.base, request.data_dir
    if base not in ig_config.BASES:
        raise UsageError(f"--variant {base!r}: unknown base variant; expected one of "
                         f"{[b for b in ig_config.BASES if b]} or none (the paper's)")
    regions = tuple(dict.fromkeys(request.regions))
    unknown = [r for r in regions if r not in REGIONS]
    if unknown or not regions:
        raise UsageError(f"--regions {' '.join(request.regions)}: expected one or more of {list(REGIONS)}")
    if request.split_column and not request.eval_data:
        raise UsageError("--split-column names the split column of --eval-data; it needs --eval-data")
    data_name = common_train.dataset_name(request.data, data_dir, log)
    age_data, registers = _age_data(request.data, data_name, base)
    age_name = common_train.dataset_name(age_data, data_dir, log) if not registers else age_data
    run_dir = {"segment": commands.stage_run_dir(data_name, base, "segment"),
               "keypoints": commands.stage_run_dir(data_name, base, "keypoints")}
    for v in (Variant(base, s, r) for r in regions for s in AGE_STAGES):
        run_dir[v.stage, v.region] = commands.stage_run_dir(age_name, base, v.stage, v.region)

    source = {}
    if request.init_from_data or request.init_from_variant is not None:
        init_base = base if request.init_from_variant is None else request.init_from_variant
        if init_base not in ig_config.BASES:
            raise UsageError(f"--init-from-variant {init_base!r}: unknown base variant; expected one of "
                             f"{[b for b in ig_config.BASES if b]} or none (the paper's)")
        init_data = request.init_from_data or request.data
        init_name = common_train.dataset_name(init_data, data_dir, log)
        if (init_base, init_name) == (base, data_name):
            raise UsageError(f"--init-from-data/--init-from-variant name this chain itself ({init_name}, variant "
                             f"{base or 'the paper'}): give another variant or dataset to start from")
        init_age_name = commands.age_data_name(init_name, init_base)
        source = {s: commands.stage_run_dir(init_name, init_base, s) for s in ("segment", "keypoints")
                  if s in request.init_stages}
        for r in regions:
            for s in AGE_STAGES:
                if s in request.init_stages:
                    source[s, r] = commands.stage_run_dir(init_age_name, init_base, s, r)

    common = {"data_dir": data_dir, "precision": None if request.precision == "auto" else request.precision}
    steps = []
    for stage in ("segment", "keypoints"):
        run, src = run_dir[stage], source.get(stage)
        options = RunOptions(data=request.data, data_dir=data_dir, precision=request.precision,
                             init_from=str(src) if src else None)
        steps.append(Step(
            f"train {stage}", _command("train", stage=stage, variant=base, data=request.data, **common, init_from=src),
            run=lambda stage=stage, options=options: commands.train_stage(stage, base, options, log=log),
            skip=lambda run=run: f"{run} is trained" if run_complete(run) else None,
            source=src, source_stage=stage, trains=lambda run=run: not run_complete(run)))

    def register_step(spec, name, split_column, title):
        out = commands.registered_dir(name, base, data_dir)
        return Step(title, _command("register", variant=base, data=spec, data_dir=data_dir, split_column=split_column,
                                    segment_run=run_dir["segment"], keypoints_run=run_dir["keypoints"]),
                    run=lambda: commands.register_data(spec, base, data_dir=data_dir, segment_run=run_dir["segment"],
                                                       keypoints_run=run_dir["keypoints"], split_column=split_column,
                                                       out=out, log=log),
                    skip=lambda: (f"{out} was registered by these segment and keypoints runs"
                                  if registration_current(out, run_dir["segment"], run_dir["keypoints"]) else None))

    if registers:
        steps.append(register_step(request.data, data_name, None, f"register {data_name}"))

    members = []
    for region in regions:
        for stage in AGE_STAGES:
            run, src = run_dir[stage, region], source.get((stage, region))
            members.append(run)
            options = RunOptions(data=age_data, data_dir=data_dir, precision=request.precision,
                                 init_from=str(src) if src else None)

            def train_or_evaluate(stage=stage, region=region, run=run, options=options):
                if run_complete(run):  # trained, but its evaluation after training did not finish
                    log(f"{run} is trained but not evaluated on its test split: evaluating it")
                    return commands.evaluate_age(stage, region, base, dataclasses.replace(options, init_from=None),
                                                 log=log)
                return commands.train_age(stage, region, base, options, log=log)
            steps.append(Step(
                f"train {stage} {region}", _command("train", stage=stage, region=region, variant=base, data=age_data,
                                                    **common, init_from=src),
                run=train_or_evaluate,
                skip=lambda run=run: (f"{run} is trained and evaluated"
                                      if run_complete(run) and has_evaluation(run, "test") else None),
                source=src, source_stage=stage, trains=lambda run=run: not run_complete(run)))

    size = ig_config.hand_config(base).data.image_size
    ensemble_out = ensemble.ensemble_dir(age_name, base, size)
    all_regions = regions == REGIONS

    def ensemble_step(eval_data, key, title):
        flags = {"data": age_data} if all_regions else {"runs": members}
        return Step(title, _command("evaluate", stage="ensemble", variant=base, **flags, data_dir=data_dir,
                                    eval_data=eval_data),
                    run=lambda: ensemble.evaluate_ensemble(base, runs=members, data_dir=data_dir, eval_data=eval_data,
                                                           log=log),
                    skip=lambda: (f"{ensemble_out} is newer than its members' {key} predictions"
                                  if ensemble_current(ensemble_out, members, key) else None))

    steps.append(ensemble_step(None, "test", "ensemble"))

    if request.eval_data:
        eval_name = common_train.dataset_name(request.eval_data, data_dir, log, split_column=request.split_column)
        eval_age_data, eval_registers = _age_data(request.eval_data, eval_name, base)
        eval_age_name = eval_age_data if eval_registers else eval_name
        if eval_registers:
            steps.append(register_step(request.eval_data, eval_name, request.split_column, f"register {eval_name}"))
        key = evaluation_key("test", eval_age_name, age_name)
        for region in regions:
            for stage in AGE_STAGES:
                run = run_dir[stage, region]
                # the registered canvases keep the split as their `split` column; phantoms need none
                options = RunOptions(data=age_data, data_dir=data_dir, precision=request.precision,
                                     eval_data=eval_age_data,
                                     split_column=None if eval_registers else request.split_column)
                steps.append(Step(
                    f"evaluate {stage} {region} on {eval_age_name}",
                    _command("evaluate", stage=stage, region=region, variant=base, data=age_data, **common,
                             eval_data=eval_age_data, split_column=options.split_column),
                    run=lambda stage=stage, region=region, options=options:
                        commands.evaluate_age(stage, region, base, options, log=log),
                    skip=lambda run=run: f"{run} has its {key} evaluation" if has_evaluation(run, key) else None))
        steps.append(ensemble_step(eval_age_data, key, f"ensemble on {eval_age_name}"))
    return steps


# --- running it ----------------------------------------------------------------------------------

def missing_sources(steps) -> dict:
    """{step: why} of each step that will train from a --init-from source run that cannot be used."""
    from reproductions.iglovikov18 import chain as ig_chain
    missing = {}
    for i, step in enumerate(steps):
        if step.source is None or not step.trains():
            continue
        try:
            ig_chain.check_run(step.source, (step.source_stage,))
        except ig_chain.RunError as e:
            missing[i] = str(e)
    return missing


def run_chain(request: ChainRequest, dry_run: bool = False, log=print) -> int:
    steps = plan(request, log=log)
    n = len(steps)
    if dry_run:
        log(f"The {request.base or 'paper'} chain on {request.data}: {n} steps (dry run: nothing is run). Each "
            "step is the library call of the per-stage command below it.")
        missing = missing_sources(steps)
        for i, step in enumerate(steps):
            why = step.skip()
            log(f"{i + 1:2d}. {step.title} ({f'skipped: {why}' if why else 'runs'})")
            log(f"      {step.command}")
            if step.source is not None:
                log(f"      starts from {step.source}" + (f" -- cannot: {missing[i]}" if i in missing else ""))
        return 0
    missing = missing_sources(steps)
    if missing:
        raise UsageError(f"{len(missing)} run(s) to start from (--init-from-data/--init-from-variant) cannot be used, "
                         f"so nothing was run: {'; '.join(missing.values())}. Train them first (`{PROG} chain` with that "
                         "--data and --variant), or drop --init-from-data/--init-from-variant.")
    start = time.time()
    ran = 0
    for i, step in enumerate(steps, 1):
        why = step.skip()
        if why:
            log(f"[chain {i}/{n}] {step.title}: skipped, {why}")
            continue
        began = time.time()
        log(f"[chain {i}/{n}] {step.title}: started at {(began - start) / 60:.1f} min ({step.command})")
        step.run()
        ran += 1
        log(f"[chain {i}/{n}] {step.title}: done in {(time.time() - began) / 60:.1f} min "
            f"(chain {(time.time() - start) / 60:.1f} min)")
    log(f"Chain done: {ran} of {n} steps run, {n - ran} skipped, {(time.time() - start) / 60:.1f} min. The results "
        "tables were not changed: `python -m reproductions compare` regenerates them (the region table too).")
    return 0


def main(argv, log=print) -> int:
    from common import cli
    from common import train as common_train
    p = cli.OneLineParser(prog=f"{PROG} chain", description="The whole chain (segment, keypoints, register, the age "
                          "networks, the ensemble) of one base variant, each step skipped when already complete.")
    p.add_argument("--data", required=True, help="the radiographs the chain trains on (as given to `train --data`)")
    p.add_argument("--data-dir", default=None, help="where built datasets live (default $BONEAGE_DATA_DIR)")
    p.add_argument("--variant", default="", help="base variant: '' (paper), small, thumbs, r512")
    p.add_argument("--small", action="store_true", help="same as --variant small")
    p.add_argument("--precision", default="auto", choices=common_train.PRECISIONS)
    p.add_argument("--init-from-data", default=None, metavar="SPEC", help="start each network from the run of the "
                   "same stage (and region) trained on this data (default: --data when --init-from-variant is given)")
    p.add_argument("--init-from-variant", default=None, metavar="BASE", help="... of this base variant (default: "
                   "--variant when --init-from-data is given)")
    p.add_argument("--init-stages", nargs="+", default=list(STAGES), choices=STAGES, metavar="STAGE",
                   help=f"the networks that start from those runs (default all: {' '.join(STAGES)}); the others "
                   "start from random weights")
    p.add_argument("--regions", nargs="+", default=list(REGIONS), choices=REGIONS,
                   help="the age networks' regions, in training order (default: hand carpal metacarpal)")
    p.add_argument("--eval-data", default=None, metavar="SPEC", help="also register this data by the trained chain "
                   "and evaluate every age network and the ensemble on it (e.g. the official test images)")
    p.add_argument("--split-column", default=None, metavar="COL", help="with --eval-data: its split column "
                   "(e.g. source_split)")
    p.add_argument("--dry-run", action="store_true", help="print the steps and their per-stage commands; run nothing")
    args = p.parse_args(argv)
    request = ChainRequest(data=args.data, base=commands.base_variant(args), data_dir=args.data_dir,
                           precision=args.precision, init_from_data=args.init_from_data,
                           init_from_variant=args.init_from_variant, init_stages=tuple(args.init_stages),
                           regions=tuple(args.regions),
                           eval_data=args.eval_data, split_column=args.split_column)
    return cli.guarded(lambda: run_chain(request, dry_run=args.dry_run, log=log))
