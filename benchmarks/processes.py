"""Training images/s on 1 process and on N processes of the same machine, and their ratio, in one run.

    python benchmarks/processes.py                                  # larson18 at its CPU size, 1 vs 2 processes
    python benchmarks/processes.py --model tiny --steps 3           # a dry run in seconds (a small CNN)
    python benchmarks/processes.py --model lite0_regressor --processes 4 --write

What `train --num-processes N` does, without the input pipeline: every process joins the others
(jax.distributed, gloo collectives on CPU), builds the model under keras.distribution.DataParallel
over every process's devices, and runs `model.train_on_batch` on its own part (batch / N) of each
global batch of random inputs; process 0 times `--steps` steps after two warm-up steps. The N
processes share this machine's cores, so the ratio says what the multi-process machinery costs
(gradient exchange, one step's fixed overhead N times over), not what N machines would gain: on N
machines each process has its own cores, and the ratio is the scaling to expect at best. With
--write the table goes to results/benchmarks/processes_<device>.md.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def tiny(size):
    """A small CNN (not a paper): for a dry run of this script in seconds."""
    import keras
    import numpy as np
    image = keras.Input((size, size, 1), name="image")
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(image)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(image, {"out": keras.layers.Dense(1)(x)})
    return model, {"image": np.random.rand(1, size, size, 1).astype("float32")}, {"out": "mse"}, \
        {"out": np.zeros((1, 1), "float32")}


def models():
    from train_step import MODELS
    return {"tiny": (tiny, 32, 32), **MODELS}


def worker(args):
    """One process of a measurement: prints {"images_per_s": ...} (process 0 only)."""
    import jax
    if args.num_processes > 1:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    import keras
    import numpy as np
    keras.utils.set_random_seed(0)
    if args.num_processes > 1:
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices(),
                                                                            auto_shard_dataset=False))
    build, cpu_size, _ = models()[args.model]
    model, inputs, loss, targets = build(args.size or cpu_size)
    model.compile(optimizer="adam", loss=loss, jit_compile=False)
    local = args.batch_size // args.num_processes
    x = {k: np.repeat(v, local, axis=0) for k, v in inputs.items()}
    y = {k: np.repeat(v, local, axis=0) for k, v in targets.items()}
    for _ in range(2):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(args.steps):
        model.train_on_batch(x, y)  # returns the loss as NumPy: each step is finished when it returns
    elapsed = time.perf_counter() - start
    if args.process_id == 0:
        print(json.dumps({"images_per_s": args.batch_size * args.steps / elapsed}), flush=True)
    if args.num_processes > 1:
        jax.distributed.shutdown()  # together: a process leaving alone would fail the others' next exchange


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def measure(args, count) -> float:
    """Images/s of `count` processes of this machine training one model together."""
    coordinator = f"localhost:{free_port()}"
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2")
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", "--model", args.model, "--size", str(args.size or 0),
                               "--batch-size", str(args.batch_size), "--steps", str(args.steps),
                               "--num-processes", str(count), "--process-id", str(i), "--coordinator", coordinator],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for i in range(count)]
    outputs = [proc.communicate(timeout=args.timeout) for proc in procs]
    for proc, (out, err) in zip(procs, outputs):
        if proc.returncode != 0:
            raise SystemExit(f"a process of the {count}-process measurement failed ({proc.returncode}):\n{err[-3000:]}")
    return json.loads(outputs[0][0].strip().splitlines()[-1])["images_per_s"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="larson18", help="tiny, or a model of benchmarks/train_step.py")
    p.add_argument("--size", type=int, default=None, help="image size (default: the model's CPU size)")
    p.add_argument("--batch-size", type=int, default=16, help="the global batch (divides by --processes)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--timeout", type=int, default=3600, help="seconds a measurement may take (a hang guard)")
    p.add_argument("--write", action="store_true", help="write results/benchmarks/processes_<device>.md")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # internal: one process
    p.add_argument("--num-processes", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--process-id", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--coordinator", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        args.size = args.size or None
        return worker(args)
    if args.model not in models():
        raise SystemExit(f"unknown --model {args.model!r}; known: {sorted(models())}")
    if args.batch_size % args.processes:
        raise SystemExit(f"--batch-size {args.batch_size} does not divide by --processes {args.processes}")
    size = args.size or models()[args.model][1]
    one = measure(args, 1)
    several = measure(args, args.processes)
    from common import provenance
    device = f"CPU ({os.cpu_count()} cores): {provenance.cpu_model()}"
    lines = [
        f"# Training images/s on 1 and {args.processes} processes of one machine",
        "",
        f"`python benchmarks/processes.py --model {args.model} --size {size} --batch-size {args.batch_size} "
        f"--steps {args.steps} --processes {args.processes}` on {device}, {provenance.now()}, "
        f"commit {provenance.git_commit()['commit'][:10]}; KERAS_BACKEND=jax, random inputs (no input pipeline), "
        f"global batch {args.batch_size}.",
        "",
        "| processes | images/s | ratio to 1 process |",
        "|---|---|---|",
        f"| 1 | {one:.1f} | 1.00 |",
        f"| {args.processes} | {several:.1f} | {several / one:.2f} |",
        "",
        "The processes share this machine's cores: the ratio is the cost of the multi-process machinery "
        "(gradient exchange over gloo, per-step overhead), not a speed-up; on N machines each process has "
        "its own cores.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        path = ROOT / "results" / "benchmarks" / "processes_cpu.md"
        path.write_text(text)
        print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
