"""Training-step throughput and peak memory per model, float32 vs mixed precision, in one run.

    python benchmarks/train_step.py                       # CPU: every model at CPU and paper size
    KERAS_BACKEND=jax python benchmarks/train_step.py     # a GPU machine without TensorFlow

Each row runs in its own subprocess (so peak memory belongs to that row alone): it builds the
model, compiles it with the paper's loss, runs warm-up steps, then times `--steps` steps of
`model.train_on_batch` on random inputs of the model's shapes (no input pipeline: this is the
step's own speed). Peak memory is the process's peak RSS on CPU, the device's peak bytes in use
on a GPU. Where TensorFlow is present, the same run measures the shared input pipeline for the
model's preprocessing and reports pipeline images/s ÷ train-step images/s (it must stay
above 1 for the GPU to be kept fed). Writes results/benchmarks/train_step_<device>.md.
"""
import argparse
import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def larson18(size):
    import numpy as np
    from keras import ops

    from reproductions.larson18.model import build_larson18_model
    model = build_larson18_model(size)
    inputs = {"image": np.random.rand(1, size, size, 3).astype("float32") * 255,
              "male": np.ones((1, 1), "float32")}

    def loss(months, probs):  # the paper's loss: cross-entropy on the month class of the sex half
        target = ops.one_hot(ops.cast(ops.reshape(months, (-1,)), "int32"), 240)
        return -ops.sum(target * ops.log(ops.cast(probs["probs"] if isinstance(probs, dict) else probs,
                                                   "float32") + 1e-7), axis=-1)
    targets = {"probs": np.array([120.0], "float32")}
    return model, inputs, {"probs": loss}, targets


def rsna17_second(size):
    """One sex's patch regressor; `size` is the patch side (32: thumbs variant, 128: paper)."""
    import keras
    import numpy as np

    from reproductions.rsna17_second.model import build_patch_model
    patch_model = build_patch_model(size, 117.88, 37.91)
    model = keras.Model(patch_model.inputs, {"months": patch_model.outputs[0]})  # named output, as one_row expects
    inputs = {"image": np.random.rand(1, size, size, 1).astype("float32") * 255, "male": np.zeros((1, 1), "float32")}
    return model, inputs, {"months": "mae"}, {"months": np.array([[120.0]], "float32")}


def _named(model, image_scale=255.0):
    """The model with one named output, random inputs of its input shapes and an MSE target:
    the step's cost is the network's (the paper's own loss adds a negligible reduction)."""
    import keras
    import numpy as np
    out = model.outputs[0]
    wrapped = keras.Model(model.input, {"out": out})
    inputs = {t.name: np.random.rand(1, *t.shape[1:]).astype("float32") * (image_scale if t.name == "image" else 1.0)
              for t in model.inputs}
    return wrapped, inputs, {"out": "mse"}, {"out": np.zeros((1, *out.shape[1:]), "float32")}


def rsna17_winner(size):
    """InceptionV3 to mixed10 + the sex branch + the 1000-1000-1 head (100: thumbs, 500: paper)."""
    from reproductions.rsna17_winner.model import build_rsna17_winner_model
    return _named(build_rsna17_winner_model(size))


def lite0_regressor(size):
    """EfficientNet-Lite0 + the sex branch + the 256-1 head (128: thumbs, 384: radiographs); input in [0, 1]."""
    from reproductions.lite0_regressor.model import build_lite0_regressor
    return _named(build_lite0_regressor(size), image_scale=1.0)


def attention_mtl(size):
    """The kit's own method as its config builds it: EfficientNet-Lite0, attention pooling with a query
    per sex, the Laplace age head (128: thumbs, 384: r512; the auxiliary heads are off in both)."""
    from reproductions.attention_mtl.config import get_config
    from reproductions.attention_mtl.task import build_model
    return _named(build_model(get_config("thumbs" if size == 128 else "r512")))


def _iglovikov18(network, size, paper_size):
    """One iglovikov18 network (`network`: its Variant at the paper's setting) as its paper config
    builds it (`size` = data.image_size: the canvas height for the age networks), or its `thumbs`
    variant's smaller network at the CPU size."""
    from reproductions.iglovikov18 import model as ig_model  # no TensorFlow needed (a jax GPU machine)
    from reproductions.iglovikov18.config import get_config
    config = get_config((network if size == paper_size else network.with_base("thumbs")).name)
    config.data.image_size = size
    build = {"segment": ig_model.segment_model_from_config, "keypoints": ig_model.keypoint_model_from_config,
             "regress": ig_model.age_model_from_config, "classify": ig_model.age_model_from_config}
    return _named(build[network.stage](config), image_scale=1.0)


def iglovikov18_networks() -> dict:
    """{model key: Variant} for every network of the iglovikov18 chain at the paper's setting
    (variants.Variant.all: segment, key points, then 2 heads x 3 regions), keyed
    "iglovikov18_<stage>[_<region>]"."""
    from reproductions.iglovikov18.variants import Variant
    return {"_".join(p for p in ("iglovikov18", v.stage, v.region) if p): v for v in Variant.all() if v.base == ""}


def _iglovikov18_sizes(network) -> tuple[int, int]:
    """(CPU size, paper size) of a network: the image size of its `thumbs` config and of its own."""
    from reproductions.iglovikov18.config import get_config
    return (get_config(network.with_base("thumbs").name).data.image_size, get_config(network.name).data.image_size)


# model -> (builder, CPU size, paper size); for rsna17_second an "image" is one patch; for the
# iglovikov18 age network the size is the registered canvas height (the hand region is 0.96 x 0.72 of it)
MODELS = {"larson18": (larson18, 88, 224), "rsna17_second": (rsna17_second, 32, 128),
          "rsna17_winner": (rsna17_winner, 100, 500),
          "lite0_regressor": (lite0_regressor, 128, 384),  # the kit's transfer baseline: its thumbs and r512 sizes
          "attention_mtl": (attention_mtl, 128, 384)}  # the kit's own method: its thumbs and r512 sizes
for _key, _network in iglovikov18_networks().items():
    _cpu, _paper = _iglovikov18_sizes(_network)
    MODELS[_key] = (functools.partial(_iglovikov18, _network, paper_size=_paper), _cpu, _paper)
NOT_BENCHMARKED = {}  # registered papers without a row here, and why


def one_row(model_name, size, policy, batch, steps):
    import keras
    import numpy as np
    keras.mixed_precision.set_dtype_policy(policy)
    build, _, _ = MODELS[model_name]
    start = time.perf_counter()
    model, inputs, loss, targets = build(size)
    model.compile(optimizer="adam", loss=loss)
    x = {k: np.repeat(v, batch, axis=0) for k, v in inputs.items()}
    y = {k: np.repeat(v, batch, axis=0) for k, v in targets.items()}
    for _ in range(2):
        model.train_on_batch(x, y)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    elapsed = time.perf_counter() - start
    peak_mb = None
    if keras.backend.backend() == "jax":
        import jax
        device = jax.devices()[0]
        if device.platform != "cpu":
            peak_mb = (device.memory_stats() or {}).get("peak_bytes_in_use", 0) / 2**20
    if peak_mb is None:
        import resource
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"images_per_s": batch * steps / elapsed, "peak_mb": peak_mb, "build_and_warmup_s": build_s}


# model -> (task, config variant at the CPU size, at the paper size); iglovikov18's U-Net and key-point
# networks read their own masks/points (not measured here)
PIPELINES = {
    "larson18": ("reproductions.larson18.task:TASK", "thumbs", ""),
    "rsna17_winner": ("reproductions.rsna17_winner.task:TASK", "thumbs", ""),
    "rsna17_second": ("reproductions.rsna17_second.task:TASK", "thumbs", ""),
    "lite0_regressor": ("reproductions.lite0_regressor.task:TASK", "thumbs_scratch", "r512_scratch"),
    "attention_mtl": ("reproductions.attention_mtl.task:TASK", "thumbs_scratch", "r512_scratch"),
    **{key: ("reproductions.iglovikov18.task:AGE_TASK", network.with_base("thumbs").name, None)
       for key, network in iglovikov18_networks().items() if network.is_age},
}
SHARED = ROOT.parent / "shared" / "data"
REGISTERED = "folder/rsna-thumbs100-registered-thumbs-83px"  # iglovikov18's `register` output on the thumbnails


def pipeline_rate(model_name, size):
    """Rows/s (images; patches for rsna17_second) of the model's own training pipeline, built as
    `train` builds it (common.train.build_datasets), on the data that size is run on: the
    thumbnails (or iglovikov18's registered canvases) at the CPU size, the 512-px radiographs of
    rsna-sample at the paper size. False without TensorFlow, None where not measured."""
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    import importlib

    from common import data
    from common.train import build_datasets
    if model_name not in PIPELINES:
        return None
    target, cpu_variant, paper_variant = PIPELINES[model_name]
    module, _, attr = target.partition(":")
    task = getattr(importlib.import_module(module), attr)
    cpu = size == MODELS[model_name][1]
    variant = cpu_variant if cpu else paper_variant
    if variant is None:
        return None
    if model_name.startswith("iglovikov18"):
        spec = REGISTERED
    elif cpu:
        spec = f"folder:{SHARED / 'rsna-thumbs100'}" if (SHARED / "rsna-thumbs100").exists() else "phantoms"
    else:
        spec = f"folder:{SHARED / 'rsna-sample'}" if (SHARED / "rsna-sample").exists() else "phantoms"
    try:
        handle = data.resolve(spec, log=lambda *_: None)
    except Exception:  # noqa: BLE001 - e.g. iglovikov18's register step not run on this machine
        return None
    config = task.get_config(variant)
    if model_name == "rsna17_second":
        config.model.sex = "female"  # one sex's model, as `train` builds it
    config.data.cache = False  # the first epoch's rate, the slowest
    from input_pipeline import rate  # the same timing as benchmarks/input_pipeline.py (one warm-up pass)
    ds = build_datasets(task, config, handle, ["train"], limit=1024)["train"]
    passes = 1 if handle.splits["train"] >= 512 else 8  # rsna-sample has ~50 training radiographs
    return rate(ds, passes)[0]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="*", default=list(MODELS))
    p.add_argument("--policies", nargs="*", default=["float32", "mixed_float16", "mixed_bfloat16"])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--paper-size-only", action="store_true")
    p.add_argument("--paper-size-policies", nargs="*", default=None,
                   help="policies at the paper size (default: --policies); on a CPU, float16 at paper sizes "
                        "takes minutes per row for a number no one trains with")
    p.add_argument("--out-name", default=None,
                   help="the table's file name in results/benchmarks/ without suffix (default: train_step_<cpu|gpu>); "
                        "name another for a run of some --models, so the full table is not replaced by a part of it")
    p.add_argument("--row", default=None, help=argparse.SUPPRESS)  # internal: one measurement, JSON out
    args = p.parse_args(argv)
    if args.row:
        model_name, size, policy = args.row.split(",")
        print("ROW " + json.dumps(one_row(model_name, int(size), policy, args.batch_size, args.steps)))
        return 0

    from common import io, provenance
    import keras
    rows = []
    for model_name in args.models:
        _, cpu_size, paper_size = MODELS[model_name]
        for size in ([paper_size] if args.paper_size_only else [cpu_size, paper_size]):
            feed = pipeline_rate(model_name, size)
            policies = args.policies if size == cpu_size or args.paper_size_policies is None else args.paper_size_policies
            for policy in policies:
                cmd = [sys.executable, __file__, "--row", f"{model_name},{size},{policy}",
                       "--batch-size", str(args.batch_size), "--steps", str(args.steps)]
                out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
                line = next((l for l in out.stdout.splitlines() if l.startswith("ROW ")), None)
                if line is None:
                    rows.append((model_name, size, policy, None, None, None, out.stderr.strip().splitlines()[-1:]))
                    continue
                r = json.loads(line[4:])
                rows.append((model_name, size, policy, r["images_per_s"], r["peak_mb"], feed, None))
                print(rows[-1], flush=True)
    hw = provenance.hardware()
    lines = [f"# Training step: throughput and peak memory ({hw['device']})", "",
             "Generated by `benchmarks/train_step.py`; random inputs of each model's shapes, "
             f"batch {args.batch_size}, {args.steps} timed steps after 2 warm-up steps; one subprocess per row.", "",
             f"- device: {hw['device']}; CPU: {hw['cpu']} ({hw['cpu_cores']} cores); Keras backend: {keras.backend.backend()}",
             f"- commit: `{provenance.git_commit()['commit'][:10]}`; versions: {provenance.library_versions()}; {provenance.now()}",
             "", "| model | input px | dtype policy | train images/s | × float32 | peak memory (MiB) | pipeline images/s ÷ train images/s |",
             "|---|---:|---|---:|---:|---:|---:|"]
    base = {(m, s): r for m, s, pol, r, *_ in rows if pol == "float32" and r}
    for m, s, pol, r, mem, feed, err in rows:
        if r is None:
            lines.append(f"| {m} | {s} | {pol} | failed: {err} | | | |")
            continue
        speed = f"{r / base[(m, s)]:.2f}" if (m, s) in base else "—"
        ratio = f"{feed / r:.1f}" if feed else ("— (no TensorFlow here)" if feed is False else "— (not measured)")
        lines.append(f"| {m} | {s} | {pol} | {r:.1f} | {speed} | {mem:,.0f} | {ratio} |")
    skipped = [p for p in args.policies if args.paper_size_policies is not None and p not in args.paper_size_policies]
    if skipped and not args.paper_size_only:
        lines += ["", f"Not run at the paper sizes on this device: {', '.join(skipped)} (`--paper-size-policies`)."]
    text = "\n".join(lines) + "\n"
    name = args.out_name or f"train_step_{'gpu' if hw['gpus'] else 'cpu'}"
    io.atomic_write_text(ROOT / "results" / "benchmarks" / f"{name}.md", text)
    # The same rows for benchmarks/cost.py (GPU-/CPU-hours of a full reproduction).
    io.atomic_write_json(ROOT / "results" / "benchmarks" / f"{name}.json", {
        "device": hw["device"], "gpus": hw["gpus"], "backend": keras.backend.backend(),
        "commit": provenance.git_commit()["commit"], "when": provenance.now(), "batch_size": args.batch_size,
        "rows": [{"model": m, "size": s_, "policy": pol, "images_per_s": r, "peak_mb": mem, "pipeline_images_per_s": feed}
                 for m, s_, pol, r, mem, feed, _ in rows if r is not None]})
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
