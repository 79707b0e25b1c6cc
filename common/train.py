"""Training, evaluation and prediction for every reproduction: the library under the command line.

common/cli.py parses argv (`python -m reproductions.<paper> train|evaluate|predict`) into a
RunOptions (common/options.py); the functions here take (task, options, ...) and never an argparse
object, so a paper that trains several models (rsna17_second's one per sex, iglovikov18's chain)
calls them directly.

    train               fit with the config's optimizer and schedule; checkpoint every epoch; resume
                        after any interruption by rerunning the same command. With KERAS_BACKEND=jax,
                        data parallel on every device of the machine (options.devices)
    train_and_evaluate  the task's runner's training (`train` for a single run, common/runner.py),
                        then evaluate unless options.no_eval
    evaluate            metrics, intervals and plots of a trained run on a split; returns the metrics
    predict             bone age in months for radiograph files (PNG, JPEG, DICOM) or folders

None of them rewrites the results tables: `python -m reproductions compare` regenerates them.

Run directory (default results/<paper>/<data>_<variant>_<size>px; --out to choose):
    config.json  run.json (the run record: common/runs.py)  metrics.csv (per epoch)  <split>/ (evaluation)
    checkpoints/ backup/ tensorboard/   (weights and logs: never committed)
"""
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from common import io, provenance
from common.config import Config
from common.datasets.base import DataError
from common.errors import UsageError
from common.options import RunOptions
from common.runs import RunDir, run_name

# BONEAGE_RESULTS_DIR moves run directories and the generated table elsewhere (the tests use it,
# so that running them never rewrites the committed results).
RESULTS_DIR = Path(os.environ.get("BONEAGE_RESULTS_DIR", provenance.REPO_ROOT / "results"))
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


# ----------------------------------------------------------------------------- config and run directory
def make_config(task, options: RunOptions) -> Config:
    """The config the options name: the variant's, with the --set overrides, then the flags that set a value."""
    variant = options.variant
    if variant and variant not in task.variants:
        raise UsageError(f"unknown variant {variant!r}; known: {list(task.variants)}")
    config = task.get_config(variant)
    config.apply_overrides(list(options.overrides))
    if options.max_minutes is not None:
        config.train["max_minutes"] = options.max_minutes  # a key only some configs hold (the budget rules')
    for flag, key in (("epochs", "train.epochs"), ("batch_size", "train.batch_size"),
                      ("image_size", "data.image_size"), ("seed", "seed")):
        if getattr(options, flag) is not None:
            config.override(key, getattr(options, flag))
    config.variant = variant or "paper"
    return config


def resolve_precision(flag: str) -> str:
    if flag != "auto":
        return flag
    return "mixed_float16" if provenance.accelerators() else "float32"


def default_run_dir(task, data_name: str, config) -> Path:
    return RESULTS_DIR / task.paper / run_name(data_name, config.variant, config.data.image_size)


def dataset_name(spec: str | None, data_dir=None, log=print, split_column: str | None = None) -> str:
    """The name `data.resolve(spec)` gives its dataset ("phantoms/default", "folder/NAME"), without
    building it: evaluate and predict find their run directory, which is named after the dataset,
    before any data is built, so that a missing run is said at once. A `--data` this does not know
    (or a folder that does not exist) goes to `data.resolve`, which names it or says what is wrong."""
    from common import data as data_lib
    from common.datasets import Folder, Phantoms, Rsna
    from common.datasets.folder import folder_config
    from common.datasets.rsna import rsna_config
    if not spec:
        spec = "rsna" if os.environ.get(data_lib.RSNA_ENV) else "phantoms"  # resolve's default
    kind, _, arg = spec.partition(":")
    if kind.startswith("phantoms"):
        return f"{Phantoms.name}/{kind.partition('/')[2] or 'default'}"
    if kind == "rsna":
        return f"{Rsna.name}/{rsna_config().name}"
    if kind == "folder" and arg and Path(arg).expanduser().is_dir():
        return f"{Folder.name}/{folder_config(Path(arg).expanduser().resolve().name, split_column=split_column).name}"
    if kind.startswith(("rsna/", "folder/")) and not arg:  # a built dataset's own name, as resolve opens it
        return kind
    return data_lib.resolve(spec, data_dir=data_dir, log=log, split_column=split_column).name


def run_dir_of(task, options: RunOptions, config, log=print) -> Path:
    """The run directory the options name: --out, else the one `train` makes from the same
    --data, variant and image size (found without building the data)."""
    if options.out:
        return Path(options.out)
    # --split-column names the split of the data being built: --eval-data's when given, else --data's.
    split_column = None if options.eval_data else options.split_column
    return default_run_dir(task, dataset_name(options.data, options.data_dir, log, split_column), config)


def named_run(task, options: RunOptions, log=print) -> tuple[Path, Config]:
    """(run directory, config) of the trained run the options name, for evaluate and predict; stops
    with a message naming the directory, before any data is built, when it holds no trained weights."""
    config = make_config(task, options)
    run_dir = run_dir_of(task, options, config, log)
    require_trained(task, run_dir)
    return run_dir, config


def trained_weights(run_dir) -> list[Path]:
    """The weights files of a run: checkpoints/best and last, in the run or in its sub-runs (one
    directory down: rsna17_second trains one model per sex in <run>/<sex>/). A run record alone does
    not count: the committed results have records, but weights are never committed."""
    return RunDir(run_dir).weights_files()


def run_commit(record: dict) -> str:
    """The commit a run was trained at, as the results tables write it (+dirty: uncommitted changes)."""
    return str(record.get("commit", "unknown (no run.json)")) + ("+dirty" if record.get("dirty") else "")


def require_trained(task, run_dir, what: str | None = None, instead: str = "--out RUN_DIR"):
    """Stops with a message naming the run directory unless it holds trained weights. `what` names
    the model ("iglovikov18 segment"; default the paper), `instead` the flag that picks another run."""
    if trained_weights(run_dir):
        return
    status = RunDir(run_dir).record().get("status")
    why = (f"its run.json says {status!r}, but the weights are not there: they are never committed"
           if status else "no checkpoints/best.weights.h5 or last.weights.h5 there or in a sub-run")
    raise UsageError(f"no trained {what or task.paper} model in {run_dir} ({why}). Train it first with the same "
                     f"--data, --small/--variant and --image-size flags, or pass {instead} of a trained run.")


def describe_run(run_dir) -> str:
    """How a command's log names the run it uses: "RUN (trained on DATA, commit C)"."""
    record = RunDir(run_dir).record()
    return f"{run_dir} (trained on {record.get('dataset', {}).get('name', '?')}, commit {run_commit(record)})"


def run_columns(run_dir, suffix: str = "") -> dict:
    """The columns that make a predictions file traceable on its own: the run that answered and the
    commit it was trained at (`suffix` tells apart the runs of a chain: "_segment")."""
    return {f"run_dir{suffix}": str(run_dir), f"run_commit{suffix}": run_commit(RunDir(run_dir).record())}


def in_results(run_dir) -> bool:
    """Whether a run directory is inside RESULTS_DIR, i.e. one of the runs the results tables show."""
    return Path(run_dir).resolve().is_relative_to(Path(RESULTS_DIR).resolve())


# ----------------------------------------------------------------------------- helpers
def _strategy():
    """The TensorFlow backend's distribution strategy: always the default one (one device).

    TensorFlow's MirroredStrategy and MultiWorkerMirroredStrategy were removed (issue 20): neither
    was tested, two local workers failed on their first batch (FILE-based sharding of a split stored
    as one file), and with Keras 3 MultiWorkerMirroredStrategy is broken upstream since TF 2.16
    (keras-team/keras#20585, tensorflow/tensorflow#72388). Several devices train with the JAX
    backend instead (`_distribution`).
    """
    import keras
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        return tf.distribute.get_strategy()

    class _Null:
        def scope(self):
            return contextlib.nullcontext()
    return _Null()


def _tf_config_tasks() -> int:
    """How many tasks (machines) the TF_CONFIG environment variable names; 0 when it is not set."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 0
    try:
        cluster = json.loads(raw).get("cluster", {})
        return sum(len(addresses) for addresses in cluster.values())
    except (ValueError, AttributeError, TypeError):
        return 2  # unreadable: it was meant for several machines


def _data_parallel(devices):
    """keras.distribution.DataParallel over `devices` whose validation batches are not split.

    The JAX trainer splits every batch of an epoch the way it split the first, and a split needs a
    batch that divides by the device count: the last, partial batch of a validation split of any
    size may not. So while Keras validates (and evaluates) each device computes whole batches;
    training batches, all full (the pipeline drops a partial last one), are split between the devices.
    """
    import keras

    class WholeValidationBatches(keras.distribution.DataParallel):
        replicate_data = False

        def get_data_layout(self, data_shape):
            if self.replicate_data:
                return keras.distribution.TensorLayout([None] * len(data_shape), self.device_mesh)
            return super().get_data_layout(data_shape)

    class Toggle(keras.callbacks.Callback):
        def on_test_begin(self, logs=None):
            distribution.replicate_data = True

        def on_test_end(self, logs=None):
            distribution.replicate_data = False

    # Each process's pipeline already reads its own part of every batch (data_shard): Keras must not
    # shard it again (its auto-sharding has every process read and decode the whole split).
    distribution = WholeValidationBatches(devices=devices, auto_shard_dataset=False)
    return distribution, Toggle()


def _distribution(devices, batch_size: int, log=print):
    """The devices `train` runs on: (callbacks it needs, the run record's "distribution").

    JAX backend: keras.distribution.DataParallel over the first N devices JAX sees (--devices N;
    auto = all of them) when N > 1: every device takes batch_size / N examples of each batch and the
    gradients are combined, so the run trains as on one device with the same global batch. Other
    backends, and N = 1: one device. Training on several machines is not supported (TF_CONFIG is
    refused, not ignored: every machine would otherwise train its own copy).
    """
    import keras
    backend = keras.backend.backend()
    if _tf_config_tasks() > 1:
        raise UsageError("TF_CONFIG names several machines, but training on several machines is not supported: "
                         "TensorFlow's MultiWorkerMirroredStrategy was removed (with Keras 3 it is broken since "
                         "TF 2.16). Unset TF_CONFIG to train on this machine; its devices (GPUs) train together "
                         "with KERAS_BACKEND=jax (--devices).")
    if backend != "jax":
        if devices not in ("auto", 1):
            raise UsageError(f"--devices {devices}: training on several devices needs KERAS_BACKEND=jax "
                             f"(keras.distribution.DataParallel); the {backend} backend trains on one device.")
        if backend == "tensorflow" and len(provenance.accelerators()) > 1:
            log(f"Note: {len(provenance.accelerators())} GPUs are visible, but the TensorFlow backend trains on one; "
                "set KERAS_BACKEND=jax to train on all of them.")
        return [], {"name": "none", "devices": 1}
    import jax
    if _PROCESS["count"] > 1:
        return _distribution_over_processes(devices, batch_size, log)
    visible = jax.devices()
    n = len(visible) if devices == "auto" else devices
    if n > len(visible):
        raise UsageError(f"--devices {n}: JAX sees only {len(visible)} device(s) ({', '.join(map(str, visible))}).")
    chosen = visible[:n]
    if n == 1:
        keras.distribution.set_distribution(None)
        return [], {"name": "none", "devices": 1, "device_names": [str(chosen[0])]}
    if batch_size % n:
        raise UsageError(f"the batch size {batch_size} does not divide by the {n} devices (every device takes an "
                         f"equal share of each batch): pass --batch-size a multiple of {n} (it is the global "
                         f"batch), or --devices N with N dividing {batch_size}.")
    distribution, toggle = _data_parallel(chosen)
    keras.distribution.set_distribution(distribution)
    log(f"Data parallel on {n} devices ({', '.join(map(str, chosen))}): {batch_size // n} examples of each batch "
        f"of {batch_size} per device.")
    return [toggle], {"name": "DataParallel", "devices": n, "device_names": [str(d) for d in chosen],
                      "per_device_batch": batch_size // n}


# ----------------------------------------------------------------------------- several processes
# One process per machine (or several on one, as the tests run them), joined by jax.distributed: every
# process trains the same model on its own part of each global batch, and process 0 alone writes the
# run directory. _PROCESS is this process's place among them (start_processes sets it).
_PROCESS = {"index": 0, "count": 1}
PROCESS_ENV = {"coordinator": ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "JAX_COORDINATOR_ADDRESS"),
               "num_processes": ("KERAS_DISTRIBUTION_NUM_PROCESSES",), "process_id": ("KERAS_DISTRIBUTION_PROCESS_ID",)}


def process_settings(options: RunOptions, environ=None) -> tuple[int, int | None, str | None]:
    """(process count, this process's index, coordinator HOST:PORT) from the options, else from Keras's
    KERAS_DISTRIBUTION_* variables (keras.distribution.initialize reads the same ones) and JAX's
    JAX_COORDINATOR_ADDRESS. A count of 1 (the default) is one process: nothing else is needed.
    Raises UsageError for a combination that could only fail later (or hang)."""
    environ = os.environ if environ is None else environ

    def setting(name):
        value = getattr(options, name)
        if value is not None:
            return value, f"--{name.replace('_', '-')}"
        for variable in PROCESS_ENV[name]:
            if environ.get(variable):
                return environ[variable], f"${variable}"
        return None, None

    values = {}
    for name in ("num_processes", "process_id"):
        value, source = setting(name)
        try:
            values[name] = None if value is None else int(value)
        except ValueError:
            raise UsageError(f"{source} {value!r}: expected a whole number") from None
    count, index = values["num_processes"], values["process_id"]
    coordinator, _ = setting("coordinator")
    if coordinator and "," in coordinator:  # Keras's variable may list every job's address: process 0's is first
        coordinator = coordinator.split(",")[0]
    if count is None or count == 1:
        given = [flag for flag in ("coordinator", "process_id") if getattr(options, flag) is not None]
        if given:
            raise UsageError(f"--{given[0].replace('_', '-')} is for training on several processes: pass "
                             "--num-processes N as well (the same on every machine), or leave it out for one.")
        return 1, 0, None
    if count < 1:
        raise UsageError(f"the process count must be at least 1; received {count}")
    if index is None:
        raise UsageError(f"training on {count} processes: pass --process-id I (0 to {count - 1}), a different one "
                         "on each machine; 0 is the one that writes the run directory.")
    if not 0 <= index < count:
        raise UsageError(f"--process-id {index} is outside 0 to {count - 1} (--num-processes {count}): each of the "
                         f"{count} processes takes one of 0 to {count - 1}.")
    host, _, port = (coordinator or "").rpartition(":")
    if not coordinator:
        raise UsageError(f"training on {count} processes needs --coordinator HOST:PORT: the address of the machine "
                         "that runs --process-id 0 and a free port on it, the same on every machine.")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--coordinator {coordinator!r}: expected HOST:PORT, e.g. 10.0.0.1:12345 (the address of "
                         "process 0's machine and a free port on it).")
    return count, index, coordinator


def start_processes(task, options: RunOptions, log=print):
    """Joins this process to the run's others (jax.distributed.initialize) when there are several;
    one process: nothing. Must run before anything runs on a device (JAX refuses to join later).

    On CPU the processes exchange gradients with gloo (jax_cpu_collectives_implementation, gloo by
    default in JAX 0.10; set here so that another default cannot silently leave the processes
    unconnected); on GPUs with NCCL.
    """
    count, index, coordinator = process_settings(options)
    if count == 1:
        return
    import keras
    if keras.backend.backend() != "jax":
        raise UsageError(f"--num-processes {count}: training on several processes needs KERAS_BACKEND=jax "
                         f"(jax.distributed and keras.distribution.DataParallel); the {keras.backend.backend()} "
                         "backend trains on one device.")
    if task.runner.several_models:
        raise UsageError(f"--num-processes {count}: {task.paper}'s train command trains several models in one go; "
                         "several processes train tasks of one model.")
    import jax
    if not jax.distributed.is_initialized():
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        log(f"Process {index} of {count}: joining the others at {coordinator} ...")
        try:
            jax.distributed.initialize(coordinator_address=coordinator, num_processes=count, process_id=index)
        except Exception as e:  # a port in use, a coordinator that never came, a timeout: said, not a traceback
            raise UsageError(f"process {index} of {count} could not join the others at {coordinator}: "
                             f"{str(e).splitlines()[0][:300]}. Start every process with the same --num-processes "
                             "and --coordinator (a free port on process 0's machine), each with its own "
                             "--process-id.") from None
    _PROCESS.update(index=jax.process_index(), count=jax.process_count())


def writes_run_dir() -> bool:
    """Whether this process writes the run directory (checkpoints, metrics.csv, run.json): process 0."""
    return _PROCESS["index"] == 0


def data_shard():
    """(index, count) of this process's part of the training data when there are several; else None."""
    return (_PROCESS["index"], _PROCESS["count"]) if _PROCESS["count"] > 1 else None


def _distribution_over_processes(devices, batch_size: int, log=print):
    """DataParallel over the first N devices (--devices N; auto = all) of every process."""
    import jax
    import keras
    count = _PROCESS["count"]
    local = jax.local_devices()
    n = len(local) if devices == "auto" else devices
    if n > len(local):
        raise UsageError(f"--devices {n}: JAX sees only {len(local)} device(s) on this machine "
                         f"({', '.join(map(str, local))}).")
    chosen = [d for p in range(count) for d in [d for d in jax.devices() if d.process_index == p][:n]]
    if batch_size % len(chosen):
        raise UsageError(f"the batch size {batch_size} does not divide by the {len(chosen)} devices of the {count} "
                         f"processes (every device takes an equal share of each batch): pass --batch-size a "
                         f"multiple of {len(chosen)} (it is the global batch).")
    distribution, toggle = _data_parallel(chosen)
    keras.distribution.set_distribution(distribution)
    log(f"Data parallel on {len(chosen)} devices of {count} processes (this is process {_PROCESS['index']}): "
        f"{batch_size // count} examples of each batch of {batch_size} per process, {batch_size // len(chosen)} "
        "per device.")

    class SameStop(keras.callbacks.Callback):
        """Process 0's decision to stop (the training budget) holds for all: a process that stopped
        alone would leave the others waiting for it in the next step."""

        def on_epoch_end(self, epoch, logs=None):
            from jax.experimental import multihost_utils
            stop = multihost_utils.broadcast_one_to_all(np.array(bool(self.model.stop_training)))
            self.model.stop_training = bool(stop)

    return [toggle, SameStop()], {"name": "DataParallel", "devices": len(chosen), "processes": count,
                                  "device_names": [str(d) for d in chosen], "per_device_batch": batch_size // len(chosen),
                                  "per_process_batch": batch_size // count}


def restore_everywhere(model, backup_dir, local_model, log=print) -> int:
    """checkpoint.restore, on one process or several: returns the epochs the restored backup holds.

    Several processes: process 0 alone reads the backup (the run directory is its own: the others
    need not see it), into `local_model()`, a copy of the network and optimizer on process 0 alone
    (loading into the distributed model would place every weight on the other processes' devices,
    which they would have to join). Then its weights, optimizer state and epoch count go to every
    process (broadcast_one_to_all), so that all resume from the same backup, or start from the
    same initial weights.
    """
    from common import checkpoint
    if _PROCESS["count"] == 1:
        return checkpoint.restore(model, backup_dir, log)
    from jax.experimental import multihost_utils
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    state, epochs = checkpoint.model_state(model), 0
    if writes_run_dir():
        with checkpoint.without_distribution():  # what is built here lives on this process alone
            local = local_model()
            epochs = checkpoint.restore(local, backup_dir, log)
            if epochs:
                state = checkpoint.model_state(local)
    epochs, state = multihost_utils.broadcast_one_to_all((np.array(epochs, np.int32), state))
    checkpoint.set_model_state(model, state)
    return int(epochs)


def end_processes(model):
    """After training: several processes leave the run together (jax.distributed.shutdown, a barrier
    they reach at once) and return None, so that process 0 evaluates on a model of its own (`evaluate`
    builds one); one process returns `model`."""
    if _PROCESS["count"] == 1:
        return model
    import jax
    import keras
    jax.distributed.shutdown()
    keras.distribution.set_distribution(None)
    return None


def make_optimizer(cfg, steps_per_epoch: int, epochs: int):
    """Optimizer and learning-rate schedule from config.train.optimizer / config.train.schedule."""
    import keras
    opt, sched = cfg.train.optimizer, cfg.train.get("schedule", Config(name="constant"))
    lr = opt.learning_rate
    if sched.name == "cosine":
        total = max(1, steps_per_epoch * epochs)
        warmup = min(int(sched.get("warmup_epochs", 0) * steps_per_epoch), total - 1)
        lr = (keras.optimizers.schedules.CosineDecay(0.0, total - warmup, warmup_target=lr, warmup_steps=warmup)
              if warmup else keras.optimizers.schedules.CosineDecay(lr, total))
    elif sched.name == "step":
        boundaries = [int(e * steps_per_epoch) for e in sched.boundaries_epochs]
        lr = keras.optimizers.schedules.PiecewiseConstantDecay(
            boundaries, [opt.learning_rate * sched.factor ** i for i in range(len(boundaries) + 1)])
    elif sched.name not in ("constant", "plateau"):
        raise ValueError(f"Unknown schedule {sched.name!r}; known: constant, plateau, cosine, step")
    kwargs = {k: v for k, v in opt.items() if k not in ("name", "learning_rate")}
    classes = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW, "sgd": keras.optimizers.SGD,
               "rmsprop": keras.optimizers.RMSprop}
    if opt.name not in classes:
        raise ValueError(f"Unknown optimizer {opt.name!r}; known: {sorted(classes)}")
    optimizer = classes[opt.name](learning_rate=lr, **kwargs)
    if kwargs.get("weight_decay"):
        # Decay kernels only, as the papers' L2 terms did: not batch-norm scales/offsets, not biases.
        optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return optimizer


def drop_partial_last_row(path):
    """A kill or a full disk in the middle of a CSVLogger write can leave a last row without its
    newline; the next run would append onto it. Cut the file back to its last whole row (atomically)."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return
    text = path.read_bytes()
    if not text.endswith(b"\n"):
        io.atomic_write_bytes(path, text[:text.rfind(b"\n") + 1])


def read_history(run_dir) -> pd.DataFrame:
    """Per-epoch metrics; an epoch logged twice (killed after its log row, before its backup) keeps its last row."""
    path = Path(run_dir) / "metrics.csv"
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=["epoch"])
    history = pd.read_csv(path)
    history = history.drop_duplicates("epoch", keep="last").sort_values("epoch")
    history["epoch"] = history["epoch"] + 1  # Keras counts from 0; people count from 1
    return history.reset_index(drop=True)


def _set_policy(precision):
    import keras
    keras.mixed_precision.set_dtype_policy(precision)


def build_datasets(task, config, handle, splits, training_split="train", limit=None, shard=None):
    """The splits' pipelines. `shard` (index, count): several processes; the training split is this
    process's part of each global batch (pipeline.make_dataset); the others are read whole by each."""
    from common import pipeline
    spec = task.data
    out = {}
    for split in splits:
        training = split == training_split
        out[split] = pipeline.make_dataset(
            handle, split, preprocess=spec.preprocess(config, training), to_model_io=spec.to_model_io(config),
            batch_size=config.train.batch_size, training=training,
            augment=spec.augment(config) if training else None,
            batch_augment=spec.batch_augment(config) if training else None,
            seed=config.seed, limit=limit, cache=bool(config.data.get("cache", False)), keys=spec.example_keys,
            filter=spec.example_filter(config), expand=spec.expand(config, training),
            expand_sample=spec.expand_sample(config) if training else None, shard=shard if training else None)
    return out


def build_and_load(task, config, weights=None, log=print):
    """The model, with ImageNet weights in its backbone when a file is given."""
    from common.backbones import STAND_IN
    from common.weights import NONE_VALUES, load_backbone_weights
    model = task.build_model(config)
    if config.get("model", {}).get("backbone") == STAND_IN:
        if weights not in NONE_VALUES:
            raise UsageError(f"--weights {weights}: this run's backbone is {STAND_IN} (config model.backbone), the test "
                             "suite's stand-in, which has no pretrained weights; drop --weights or the model.backbone "
                             "setting.")
        log(f"Backbone: {STAND_IN}, the test suite's small stand-in (config model.backbone), not the paper's network.")
        return model
    if weights not in NONE_VALUES:
        load_backbone_weights(model.get_layer(task.backbone_name), weights, task.weights_hint)
        log(f"Loaded ImageNet weights into {task.backbone_name} from {weights}")
    elif task.backbone_name:
        log(f"Training {task.backbone_name} from scratch (--weights none). The paper started from "
            f"ImageNet weights: pass --weights PATH ({task.weights_hint}) to match it.")
        if config.get("model", {}).get("pretrained") == "imagenet":
            scratch = random_init_variants(task)
            log("WARNING: this config is the paper's fine-tuning setting (it assumes ImageNet weights); from "
                "random weights it learns slowly. " + (
                    f"Use --variant {scratch[0]} (or another variant set for random weights: "
                    f"{', '.join(scratch[1:]) or 'none'}) to train from scratch." if scratch else
                    "No variant of this paper is set for random weights."))
    return model


def random_init_variants(task) -> list[str]:
    """The task's variants whose config is set for random initial weights (model.pretrained other
    than "imagenet"), the one named "scratch" first: what the fine-tuning warning suggests."""
    out = [v for v in task.variants if task.get_config(v).get("model", {}).get("pretrained") != "imagenet"]
    return sorted(out, key=lambda v: v != "scratch")


def _logged_seconds(history) -> float:
    """Training seconds of the epochs already logged (0 for a new run or one logged without the clock)."""
    if "train_seconds" in history and len(history):
        return float(history["train_seconds"].iloc[-1])
    return 0.0


def epoch_clock(elapsed_before: float, run_dir, max_minutes=None, log=print):
    """A callback adding `epoch_seconds` (wall time of the epoch, validation included) and
    `train_seconds` (the run's total so far, across resumes) to each epoch's logs, so metrics.csv
    can be read against time: how many CPU minutes a run took to reach a given validation error.
    A run whose metrics.csv was started without these columns keeps its columns (CSVLogger cannot
    add a column to an existing file).

    With `max_minutes` (train.max_minutes, the real-resolution budget rule's "45 minutes or the
    epochs, whichever comes first") it stops training after the epoch past which one more epoch,
    as long as the longest so far, would end beyond the budget; `stopped_by_budget` says so."""
    import keras

    csv = run_dir / "metrics.csv"
    add_columns = not (csv.exists() and csv.stat().st_size > 0 and "train_seconds" not in csv.open().readline())

    class EpochClock(keras.callbacks.Callback):
        longest = 0.0
        stopped_by_budget = False

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.time()

        def on_epoch_end(self, epoch, logs=None):
            nonlocal elapsed_before
            seconds = time.time() - self.start
            elapsed_before += seconds
            self.longest = max(self.longest, seconds)
            if logs is not None and add_columns:
                logs["epoch_seconds"] = round(seconds, 1)
                logs["train_seconds"] = round(elapsed_before, 1)
            if max_minutes and elapsed_before + self.longest > max_minutes * 60:
                self.stopped_by_budget = True
                self.model.stop_training = True
                log(f"Stopping after epoch {epoch + 1}: {elapsed_before / 60:.1f} min trained, and one more "
                    f"epoch ({self.longest / 60:.1f} min) would pass the {max_minutes:g}-min budget "
                    "(train.max_minutes).")
    return EpochClock()


def restore_checkpoints(model, run_dir, history, initial_epoch, monitor, best_so_far, log=print):
    """checkpoints/last and (when the restored epoch is the best logged) checkpoints/best, written
    again from the model just restored from the backup of epoch `initial_epoch`.

    Each epoch's backup is written before its last and best checkpoints: a kill or a full disk
    between them leaves those a step behind, and the resumed run, which counts the restored epoch's
    metric as the best so far, would never write its weights (the best epoch's weights lost, and
    evaluate reading an older best or the last). The restored model holds exactly that epoch's
    weights, so rewriting them is right whether or not a write was missed."""
    from common import checkpoint
    checkpoints = Path(run_dir) / "checkpoints"
    restored = history[history["epoch"] == initial_epoch]
    targets = ["last.weights.h5"]
    if best_so_far is not None and monitor in restored and len(restored) \
            and float(restored[monitor].iloc[-1]) == best_so_far:
        targets.append("best.weights.h5")
    for name in targets:
        missing = not (checkpoints / name).exists()
        checkpoint.save_weights_atomically(model, checkpoints / name)
        if missing:
            log(f"checkpoints/{name} was missing (its write after epoch {initial_epoch} was cut short): written "
                "from that epoch's backup.")


# ----------------------------------------------------------------------------- train
def check_start(task, config, options: RunOptions):
    """Refuses, before any data is built, a start that contradicts the variant's name: a fine-tuning
    variant without its weights, a random-start arm with --init-from, a from-another-run arm without it.
    Each would be compared under a name that says otherwise."""
    from common.weights import NONE_VALUES
    if config.get("model", {}).get("weights_required") and options.weights in NONE_VALUES:
        raise UsageError(f"the {config.variant!r} variant fine-tunes ImageNet weights: pass --weights PATH "
                         f"({task.weights_hint}), or train its scratch variant.")
    if options.init_from and (config.variant.endswith("scratch") or config.train.get("init_from_forbidden")):
        raise UsageError(f"--variant {config.variant} starts from random weights by its name: it is the random-init "
                         "arm of a comparison. Drop --init-from, or use the variant without scratch.")
    if config.train.get("init_from_required") and not options.init_from:
        raise UsageError(f"--variant {config.variant} starts from another run's weights by its name "
                         "(train.init_from_required): pass --init-from RUN_DIR, the run its config names.")


def train(task, options: RunOptions, log=print):
    """Trains the run the options name (resuming it when it was started); returns (run directory,
    trained model (None after several processes: process 0 evaluates on a model of its own), dataset
    handle, config)."""
    import keras

    from common import checkpoint, init_from
    from common import data as data_lib
    config = make_config(task, options)
    check_start(task, config, options)
    if options.init_from:  # a wrong source run is said before any data is built
        init_from.check_source(options.init_from, config, sub_run=Path(options.out).name if options.out else None)
    start_processes(task, options, log)  # several machines: before anything runs on a device
    writer = writes_run_dir()  # several processes: process 0 alone writes the run directory
    precision = resolve_precision(options.precision)
    _set_policy(precision)
    distribution_callbacks, distribution = _distribution(options.devices, config.train.batch_size, log)
    strategy = _strategy()
    keras.utils.set_random_seed(config.seed)
    handle = data_lib.resolve(options.data, data_dir=options.data_dir, log=log, split_column=options.split_column)
    run_dir = Path(options.out) if options.out else default_run_dir(task, handle.name, config)
    if writer:
        run_dir.mkdir(parents=True, exist_ok=True)
    log(f"{task.paper}: {handle.describe()}; precision {precision}; run directory {run_dir}")

    record = RunDir(run_dir).record()
    previous = record.get("config")
    if previous and previous != json.loads(json.dumps(config.to_dict())):
        changed = sorted(k for k in set(previous) | set(config) if previous.get(k) != config.to_dict().get(k))
        log(f"Note: the config differs from the one this run directory was started with (sections {changed}); "
            "resuming with the new one. Use --out for a separate run.")
    for split in ("train", "validation"):
        if split not in handle.splits:
            raise DataError(f"{handle.name} has no {split} split (it has {sorted(handle.splits)}); training needs "
                            "both: model selection reads the validation MAE.")
    if writer:
        io.atomic_write_json(run_dir / "config.json", config.to_dict())
    datasets = build_datasets(task, config, handle, ["train", "validation"], limit=options.limit, shard=data_shard())
    steps = int(datasets["train"].cardinality())
    if steps <= 0:
        raise SystemExit(f"error: the training split has fewer than one batch of {config.train.batch_size}")

    source = None
    if options.init_from:
        source = init_from.read_source(options.init_from, task, config, sub_run=run_dir.name)
    with strategy.scope():
        model = build_and_load(task, config, options.weights, log)
        if source is not None:
            record["init_from"] = init_from.load_matching(model, source, log,
                                                          keep_initial=config.train.get("init_keep_initial", ()))
        model.compile(optimizer=make_optimizer(config, steps, config.train.epochs), loss=task.loss(config),
                      metrics=task.metrics(config), jit_compile=False)
    if writer:
        (run_dir / "checkpoints").mkdir(exist_ok=True)
        checkpoint.remove_stale_temporaries(run_dir / "checkpoints")

    def local_model():  # the same network and optimizer on this process alone (restore_everywhere)
        local = task.build_model(config)
        local.compile(optimizer=make_optimizer(config, steps, config.train.epochs), loss=task.loss(config),
                      jit_compile=False)
        return local
    initial_epoch = restore_everywhere(model, run_dir / "backup", local_model, log)
    if source is None and initial_epoch == 0:
        record.pop("init_from", None)  # retrained from the start without --init-from: the old source no longer applies
    if initial_epoch == 0:
        # Trained from the start in a folder an earlier run left (e.g. its record kept, its weights not): that
        # run's clock and log are not this one's. Its log is kept beside, as metrics.previous.csv.
        for key in ("wall_time_s", "started", "ended", "stopped_by_budget"):
            record.pop(key, None)
        if writer and (run_dir / "metrics.csv").exists():
            os.replace(run_dir / "metrics.csv", run_dir / "metrics.previous.csv")
    if writer:
        drop_partial_last_row(run_dir / "metrics.csv")
    # Only epochs up to the restored one count: a row logged just before a kill is trained again.
    history = read_history(run_dir)
    history = history[history["epoch"] <= initial_epoch]
    monitor, mode = f"val_{task.monitor}", task.monitor_mode  # the metric that picks checkpoints/best
    best_so_far = None
    if monitor in history and len(history):
        best_so_far = float(history[monitor].min() if mode == "min" else history[monitor].max())
    if writer and initial_epoch > 0:
        restore_checkpoints(model, run_dir, history, initial_epoch, monitor, best_so_far, log)
    clock = epoch_clock(_logged_seconds(history), run_dir, config.train.get("max_minutes"), log)
    if config.train.get("max_minutes") and _logged_seconds(history) >= config.train.max_minutes * 60:
        raise UsageError(f"{run_dir} already trained {_logged_seconds(history) / 60:.1f} min, its whole "
                         f"{config.train.max_minutes:g}-min budget (train.max_minutes): evaluate it, or raise "
                         "--max-minutes to train on.")
    callbacks = [
        clock,  # before CSVLogger, which writes the columns it adds
        # The log row first, then the backup: a kill between the two logs an epoch that is trained
        # again on resume (read_history keeps its last row) instead of losing its row.
        keras.callbacks.CSVLogger(str(run_dir / "metrics.csv"), append=True),
        # After a kill (SIGKILL included) or a full disk, the rerun restores weights, optimizer state
        # and the epoch counter from the last finished epoch (checkpoint.restore, above). Every
        # weights file is written whole or not at all (common/checkpoint.py says why not Keras's).
        checkpoint.EpochBackup(run_dir / "backup"),
        checkpoint.WeightsCheckpoint(run_dir / "checkpoints" / "last.weights.h5"),
        checkpoint.WeightsCheckpoint(run_dir / "checkpoints" / "best.weights.h5", monitor=monitor, mode=mode,
                                     best_so_far=best_so_far),
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), write_graph=False, profile_batch=0),
        *distribution_callbacks,
    ]
    if config.train.get("bn_recompute_batches"):  # before the checkpoints: they save what was validated
        if data_shard() is not None:
            raise UsageError("train.bn_recompute_batches with several processes: each would average its own "
                             "batches into weights that must stay identical everywhere; train on one machine "
                             "(several devices are fine) or set it to 0.")
        from common.batchnorm import RecomputeBeforeValidation, statistics_source
        callbacks.insert(1, RecomputeBeforeValidation(
            statistics_source(task, config, handle, datasets["train"], limit=options.limit),
            config.train.bn_recompute_batches, log, source=config.train.get("bn_recompute_from", "augmented")))
    if not writer:  # the other processes train, keep the clock and write nothing
        callbacks = [clock, *distribution_callbacks]
    if config.train.get("schedule", {}).get("name") == "plateau":
        s = config.train.schedule
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode, factor=s.factor, patience=s.patience,
                                                           cooldown=s.get("cooldown", 0),
                                                           min_delta=s.get("min_delta", 1e-4),
                                                           min_lr=s.get("min_lr", 0.0), verbose=1))
    n = handle.splits
    record.update({
        "paper": task.paper, "citation": task.citation, "variant": config.variant, "status": "training",
        "dataset": {"name": handle.name, "fingerprint": handle.fingerprint(), "split_rule": handle.metadata.get("split_rule"),
                    "splits": n, "train_images": min(n["train"], options.limit or n["train"]),
                    "validation_images": min(n["validation"], options.limit or n["validation"])},
        "image_size": config.data.image_size, "epochs": config.train.epochs, "batch_size": config.train.batch_size,
        "precision": precision, "seed": config.seed, "distribution": distribution,
        "weights": "none" if options.weights in (None, "", "none") else str(options.weights),
        "hardware": provenance.hardware(), "versions": provenance.library_versions(), **provenance.git_commit(),
        "config": config.to_dict(),
    })
    record.setdefault("started", provenance.now())
    record.pop("evaluations", None)  # the weights are about to change: old evaluations no longer describe them
    if writer:
        RunDir(run_dir).write_record(record)
    start = time.time()
    status = "failed"
    try:
        model.fit(datasets["train"], validation_data=datasets["validation"], epochs=config.train.epochs,
                  initial_epoch=initial_epoch, callbacks=callbacks, verbose=1 if sys.stdout.isatty() else 2,
                  shuffle=False)
        status = "trained"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        history = read_history(run_dir)
        if clock.stopped_by_budget:
            record["stopped_by_budget"] = f"{config.train.max_minutes:g} min"
        record.update({"status": status, "epochs_done": int(history["epoch"].max()) if len(history) else 0,
                       "wall_time_s": round(record.get("wall_time_s", 0) + time.time() - start, 1),
                       "ended": provenance.now()})
        if monitor in history and len(history):
            best = history.loc[history[monitor].idxmin() if mode == "min" else history[monitor].idxmax()]
            record["best_epoch"], record[f"best_{monitor}"] = int(best["epoch"]), float(best[monitor])
        if writer:
            RunDir(run_dir).write_record(record)
    units = " months" if task.monitor == "mae" else ""
    log(f"Trained {record['epochs_done']} epoch(s) in {record['wall_time_s']:.0f} s; best {monitor} "
        f"{record.get(f'best_{monitor}', float('nan')):.4g}{units} (epoch {record.get('best_epoch')}).")
    return run_dir, end_processes(model), handle, config


def train_and_evaluate(task, options: RunOptions, log=print) -> Path:
    """`train`: the task's training (its runner's: `train` for a single run), then, unless options.no_eval, the
    evaluation of the trained model on options.split (by process 0 alone when there are several).
    Returns the run directory. Writes nothing outside it."""
    run_dir, model, handle, config = task.runner.train(task, options, log=log)
    if options.no_eval:
        pass
    elif not writes_run_dir():
        print(f"Process {_PROCESS['index']} of {_PROCESS['count']}: trained; process 0 evaluates.")
    elif options.split not in handle.splits:
        print(f"No {options.split!r} split in {handle.name}: skipping the evaluation after training.")
    else:
        evaluate(task, options, model=model, handle=handle, config=config, run_dir=run_dir, log=log)
    return run_dir


# ----------------------------------------------------------------------------- evaluate
def with_ids(to_model_io):
    """to_model_io that also passes each example's id and sex along, so evaluation reads the split once.

    The sex travels beside the model inputs, not in them: a model without a sex input (an
    ablation) is still evaluated by sex.
    """
    def io(batch):
        inputs, targets = to_model_io(batch)
        return inputs, targets, {"id": batch["id"], "male": batch["male"]}
    return io


def predict_dataset(task, model, config, ds, extras: dict | None = None):
    """Runs the model over (inputs, targets, ids) batches; returns {estimate: months}, targets, sex, ids.

    Entries of `task.predict`'s output named in `task.extra_columns` (per-image values that are not
    estimates, such as an interval's bounds) go into `extras` ({column: values}) when it is given,
    and are left out otherwise.
    """
    estimates, targets, males, ids = {}, [], [], []
    extra_names = set(getattr(task, "extra_columns", ()) or ())
    columns = {}
    # NumPy batches: a model of the JAX (or torch) backend cannot take TensorFlow tensors.
    for inputs, y, meta in ds.as_numpy_iterator():
        ids.extend(i.decode() for i in np.asarray(meta["id"]).reshape(-1))
        for name, months in task.predict(model, inputs, config).items():
            (columns if name in extra_names else estimates).setdefault(name, []).append(
                np.asarray(months, np.float64).reshape(-1))
        if isinstance(y, dict):  # one named output: its target; a multi-task model's (auxiliary heads): "months"
            if len(y) == 1:
                (y,) = y.values()
            elif "months" in y:
                y = y["months"]
            else:
                raise ValueError(f"the batches have several targets {sorted(y)} and none named 'months': name the "
                                 "age target 'months' (the other targets are the auxiliary heads').")
        targets.append(np.asarray(y, np.float64).reshape(-1))
        males.append(np.asarray(meta["male"]).reshape(-1))
    if extras is not None:
        extras.update({k: np.concatenate(v) for k, v in columns.items()})
    return ({k: np.concatenate(v) for k, v in estimates.items()}, np.concatenate(targets), np.concatenate(males), ids)


def load_trained(task, config, run_dir, model=None, log=print):
    """The trained model of a run: `model` (or a new one) with checkpoints/best (else last) loaded.

    Returns (model, what was loaded, for the run record). A task whose run is not one set of
    weights (rsna17_second: one model per sex in sub-runs) has a runner with its own `load_trained`.
    """
    weights = RunDir(run_dir).best_weights()
    if weights is None:
        raise UsageError(f"no trained weights in {run_dir}/checkpoints; run `train` first (same flags).")
    if model is None:
        model = task.build_model(config)
    model.load_weights(weights)
    return model, weights.name


def evaluation_key(split: str, dataset: str, trained_on: str | None) -> str:
    """The key (and folder) of an evaluation in a run record: its split, or "<split>-on-<dataset>" for
    one on another dataset than the run was trained on, so it never replaces the run's own."""
    if trained_on and dataset != trained_on:
        return f"{split}-on-{dataset.replace('/', '-')}"
    return split


def evaluate(task, options: RunOptions, model=None, handle=None, config=None, run_dir=None, log=print) -> dict:
    """Evaluates the best checkpoint of a run on options.split; writes metrics, predictions and plots
    into <run>/<split>/ and the evaluation into the run record (with its no-learning reference, which
    compare reads from there: no_learning_reference), and returns the metrics: {estimate:
    overall metrics (metrics.json's "overall")}, the primary estimate first.

    `run_dir` None: the run the options name (checked before any data is built). `config` None: the
    run's own config.json (else the options' config), with the options' precision. `model`,
    `handle`: a model and dataset already at hand (train's), else loaded and resolved."""
    from common import data as data_lib
    from common import evaluation, pipeline
    from_flags = config is None
    if from_flags:
        config = make_config(task, options)
        _set_policy(resolve_precision(options.precision))
    if run_dir is None:  # the run the options name, checked before any data is built
        run_dir = run_dir_of(task, options, config, log)
        require_trained(task, run_dir)
    run_dir = Path(run_dir)
    record = RunDir(run_dir).record()
    saved = RunDir(run_dir).config() if from_flags else None
    if saved is not None:
        # The run's own config: evaluating with other sizes or preprocessing would be wrong, silently.
        config = saved
    if handle is None and options.eval_data:  # another dataset than the run's (e.g. official test images)
        handle = data_lib.resolve(options.eval_data, data_dir=options.data_dir, log=log, split_column=options.split_column)
    elif handle is None:
        spec = options.data or record.get("dataset", {}).get("name")
        handle = data_lib.resolve(spec, data_dir=options.data_dir, log=log, split_column=options.split_column)
    if options.split not in handle.splits:
        raise DataError(f"{handle.name} has no {options.split!r} split to evaluate on (it has {sorted(handle.splits)}); "
                        "pass --split.")
    model, weights = task.runner.load_trained(task, config, run_dir, model=model, log=log)
    task.runner.calibrate(task, model, config, handle, run_dir, log)
    split = options.split
    limit = options.limit
    example_filter = task.data.example_filter(config)
    eval_ds = pipeline.make_dataset(handle, split, preprocess=task.data.eval_preprocess(config),
                                    to_model_io=with_ids(task.data.to_model_io(config)),
                                    batch_size=config.train.batch_size, training=False, limit=limit,
                                    keys=task.data.example_keys, filter=example_filter)
    n_images = pipeline.count_examples(handle, split, filter=example_filter, limit=limit)
    log(f"Evaluating {weights} on {handle.name} {split} ({n_images} images) ...")
    start = time.time()
    extras = {}
    estimates, targets, males, ids = predict_dataset(task, model, config, eval_ds, extras=extras)
    history = read_history(run_dir)
    # An evaluation on another dataset than the run was trained on is its own entry (and folder):
    # it never replaces the run's own test evaluation, and compare puts it in that dataset's experiment.
    trained_on = record.get("dataset", {})
    key = evaluation_key(split, handle.name, trained_on.get("name"))
    external = key != split
    out_dir = run_dir / key
    summaries, extra_metrics = {}, {}
    for i, (name, pred) in enumerate(estimates.items()):
        df = pd.DataFrame({"id": ids, "boneage_true": targets, "boneage_pred": pred, "male": males.astype(int)})
        sections = None
        if i == 0:  # the task's per-image columns and metrics (e.g. intervals, coverage) go with the primary estimate
            df = df.assign(**extras)
            if task.extra_metrics:
                sections = task.extra_metrics(config, run_dir, split, df, model=model, handle=handle, out_dir=out_dir,
                                              log=log)
                extra_metrics = {section: values for section, (values, _) in sections.items()}
        target_dir = out_dir if i == 0 else out_dir / f"estimate-{name}"
        evaluation.write_evaluation(target_dir, df, history=history if i == 0 else None,
                                    title=f"{task.paper} ({config.variant}, {name}) on {handle.name} {split}",
                                    seed=config.seed, extra=sections)
        summaries[name] = json.loads((target_dir / "metrics.json").read_text())["overall"]
    record.setdefault("evaluations", {})[key] = {
        "split": split, "images": len(ids), "weights": weights, "estimates": summaries, "primary_estimate": next(iter(estimates)),
        "dataset": handle.name, "dataset_fingerprint": handle.fingerprint(), "split_fingerprint": handle.fingerprint(split), **handle.derived_from(),
        "epochs_trained": record.get("epochs_done"), "image_size": config.data.image_size,
        "wall_time_s": round(time.time() - start, 1), "when": provenance.now(), **provenance.git_commit(),
        **({"trained_on": {"dataset": trained_on["name"], "fingerprint": trained_on.get("fingerprint")}} if external else {})}
    reference = no_learning_reference(handle, split, trained_on if external else None, options.data_dir)
    if reference:  # compare reads it from here instead of reopening the dataset
        record["evaluations"][key]["no_learning"] = reference
    if extra_metrics:
        record["evaluations"][key]["extra_metrics"] = evaluation._json_safe(extra_metrics)
    if record.get("status") == "trained":
        record["status"] = "evaluated"
    record.setdefault("paper", task.paper)
    RunDir(run_dir).write_record(record)
    primary = summaries[next(iter(estimates))]
    log(f"{split}: MAE {primary['mae']['value']:.2f} months "
        f"[{primary['mae']['ci_low']:.2f}, {primary['mae']['ci_high']:.2f}] on {len(ids)} images -> {out_dir}")
    return summaries


def no_learning_reference(handle, split: str, trained_on: dict | None = None, data_dir=None) -> dict | None:
    """common.reference.no_learning of an evaluation: with the training split of `handle`, or, for a run
    evaluated on other data, of the dataset it was trained on (`trained_on`: the record's "dataset"),
    when that one is built here with the same content; else None (the record then has no reference)."""
    from common import data as data_lib
    from common.reference import no_learning
    train_handle = handle
    if trained_on:
        train_handle = data_lib.open_built(trained_on.get("name", ""), data_dir)
        if train_handle is None or train_handle.fingerprint() != trained_on.get("fingerprint"):
            return None
    if "train" not in train_handle.splits:
        return None
    return no_learning(handle, split, train_handle)



# ----------------------------------------------------------------------------- predict
def _read_sex_csv(path) -> pd.DataFrame:
    """The --sex-csv table; a missing, empty or unreadable file is the user's to fix, so a message."""
    expected = "a CSV with columns id (or file) and sex (or male)"
    if not Path(path).is_file():
        raise UsageError(f"--sex-csv {path}: no such file; expected {expected}")
    try:
        return pd.read_csv(path, dtype=str)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise UsageError(f"--sex-csv {path}: cannot be read as a CSV ({e}); expected {expected}") from None


def read_sex(files, sex: str | None = None, sex_csv=None) -> dict:
    """Sex per file from --sex (one value for all) or --sex-csv (columns id or file, and sex/male)."""
    from common.labels import MALE_VALUES
    if sex:
        value = MALE_VALUES.get(str(sex).strip().lower())
        if value is None:
            raise UsageError(f"--sex {sex!r} is not a known sex; expected M or F")
        return {f: value for f in files}
    if sex_csv:
        from common.labels import HEADER_ALIASES, _normalise_header
        table = _read_sex_csv(sex_csv)
        cols = {HEADER_ALIASES.get(_normalise_header(c), _normalise_header(c)): c for c in table.columns}
        key = cols.get("id") or cols.get("file")
        column = cols.get("sex") or cols.get("male")
        if not key or not column:
            raise UsageError(f"--sex-csv {sex_csv} needs columns id (or file) and sex (or male); "
                             f"found {list(table.columns)}")
        lookup = {str(r[key]).strip(): r[column] for _, r in table.iterrows()}
        out = {}
        for f in files:
            raw = lookup.get(Path(f).stem, lookup.get(Path(f).name, lookup.get(str(f))))
            value = MALE_VALUES.get(str(raw).strip().lower()) if raw is not None else None
            out[f] = value
        return out
    return {f: None for f in files}


def predict(task, options: RunOptions, log=print) -> pd.DataFrame:
    """Bone age of options.files (image files or folders of them) with the trained run the options
    name; writes options.output_csv (default predictions.csv) and returns the table."""
    from common import images, pipeline
    config = make_config(task, options)
    _set_policy("float32")
    files = []
    for item in options.files:
        p = Path(item)
        files.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in images.IMAGE_SUFFIXES
                            and not f.name.startswith(".")) if p.is_dir() else [p])
    if not files:
        raise UsageError(f"no image files in {list(options.files)}; expected PNG, JPEG or DICOM files, or folders of them")
    sexes = read_sex(files, options.sex, options.sex_csv)
    # The run the flags name, as for train and evaluate (never just the newest one: which model
    # answered must not depend on what was trained last); --out names any other.
    run_dir = run_dir_of(task, options, config, log)
    require_trained(task, run_dir)
    log(f"Predicting with the run {describe_run(run_dir)}" + (
        "" if options.out else "; the run --data, --small/--variant and --image-size name, or pass --out RUN_DIR"))
    saved = RunDir(run_dir).config()
    if saved is not None:
        config = saved
    if task.sex_needed(config):  # per run: an ablation variant without the sex input needs none
        unknown = [str(f) for f, s in sexes.items() if s is None]
        if unknown:
            raise UsageError(f"this model needs the patient's sex; missing or unknown for {len(unknown)} "
                             f"file(s): {unknown[:5]}. Pass --sex M|F or --sex-csv FILE (columns id,sex).")
    model, weights = task.runner.load_trained(task, config, run_dir, model=None, log=log)

    records, failures = [], []
    for f in files:
        try:
            pixels = images.read_image(f)
            records.append((str(f), pixels, sexes[f] if sexes[f] is not None else 0))
        except images.ImageError as e:
            failures.append((str(f), str(e)))
            print(f"skipped: {e}", file=sys.stderr)
    rows = []
    if records:
        ds = pipeline.from_arrays(records, preprocess=task.data.eval_preprocess(config),
                                  to_model_io=with_ids(task.data.to_model_io(config)), batch_size=config.train.batch_size)
        extras = {}
        estimates, _, _, _ = predict_dataset(task, model, config, ds, extras=extras)
        for i, (f, _, male) in enumerate(records):
            row = {"file": f, "male": int(male) if sexes[Path(f)] is not None else ""}
            row.update({f"boneage_months_{k}" if j else "boneage_months": round(float(v[i]), 2)
                        for j, (k, v) in enumerate(estimates.items())})
            row.update({k: round(float(v[i]), 2) for k, v in extras.items()})  # the task's columns (e.g. interval bounds)
            rows.append(row)
    rows += [{"file": f, "error": e} for f, e in failures]
    # Every row says which model answered, so a predictions file is traceable on its own.
    which = run_columns(run_dir)
    table = pd.DataFrame(rows).assign(**which)
    out_csv = Path(options.output_csv or "predictions.csv")
    io.atomic_to_csv(table, out_csv)
    print(table.drop(columns=list(which)).to_string(index=False))
    log(f"Wrote {out_csv} ({len(records)} predicted, {len(failures)} skipped) using {weights} of the run {run_dir}")
    if records:
        task.runner.after_predict(task, model, config, records, table, out_csv, options, log=log)
    return table


# ----------------------------------------------------------------------------- CLI
def main(task, argv=None):
    """The command line of one paper: common/cli.py's `main`, kept here for the callers that import it."""
    from common import cli
    return cli.main(task, argv)
