"""Input pipeline throughput against the decode limit, on the same cores, in one run.

    python benchmarks/input_pipeline.py [--images 3000] [--passes 8]

The limit is the rate at which this machine reads and decodes the same encoded images with the
same tf.data parallelism and nothing else. Each other row is one reproduction's own training
pipeline, built by the same function `train` uses (`common.train.build_datasets`: read, decode,
the paper's preprocessing, its augmentation, batching, the model's inputs), over the same images,
with the input cache off and on; the ratio is taken against the limit measured in the same run on
the same data. Cached rows time the passes after the cache is filled.

Two data sets, two tables, because the limit depends on the encoded size:
- the 100-px RSNA thumbnails (../shared/data/rsna-thumbs100), with each paper's `thumbs` config;
- the 61 real radiographs at 512 px (../shared/data/rsna-sample), with each paper's own config
  (its paper resolution), read `--passes` times, since 512-px PNGs are what a full-RSNA run
  decodes (after `prepare` caps the films at 1024 px, so a real run's decode costs ~4x more).
iglovikov18's age networks read the canvases its `register` step wrote once (a derived data set of
its own), so their rows are measured against the decode limit of those canvases.

Images/s counts radiographs; rsna17_second's pipeline turns each into patch rows, noted per row.
Writes results/benchmarks/input_pipeline.md.
"""
import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tensorflow as tf  # noqa: E402

from common import data, io, pipeline, provenance  # noqa: E402
from common.train import build_datasets  # noqa: E402

SHARED = provenance.REPO_ROOT.parent / "shared" / "data"
REGISTERED = "folder/rsna-thumbs100-registered-thumbs-83px"  # iglovikov18's `register` output (its README, Commands)


def rows_of(batch) -> int:
    """Rows in a batch of (inputs, targets) or of an example dict."""
    first = batch[0] if isinstance(batch, tuple) else batch
    leaf = tf.nest.flatten(first)[0]
    return int(leaf.shape[0])


def rate(ds, passes: int, warm_passes: int = 1) -> tuple[float, int]:
    """(rows/s, rows per pass) over `passes` timed passes after `warm_passes` untimed ones
    (the first pass warms the file cache, traces the functions and fills an input cache)."""
    for _ in range(warm_passes):
        for _ in ds:
            pass
    rows, start = 0, time.perf_counter()
    for _ in range(passes):
        for batch in ds:
            rows += rows_of(batch)
    return rows / (time.perf_counter() - start), rows // passes


def decode_limit(handle, n, batch_size, passes):
    ds = (pipeline.read_split(handle, "train").take(n)
          # decode and keep only the shape: radiographs differ in size, so the pixels cannot be batched
          .map(lambda e: tf.shape(tf.io.decode_png(e["image"], channels=1)), num_parallel_calls=tf.data.AUTOTUNE)
          .batch(batch_size).prefetch(tf.data.AUTOTUNE))
    return rate(ds, passes)[0]


def plain_resize(handle, n, batch_size, size, method):
    """Decode + one square resize (the first step of every paper's preprocessing), nothing else.
    "bilinear" with antialiasing is the warp larson18 and rsna17_winner use; "area" is the
    cheapest antialiased filter TensorFlow has (the floor for any downsampling resize)."""
    def fn(e):
        image = tf.image.resize(tf.io.decode_png(e["image"], channels=1), (size, size), method=method,
                                antialias=method == "bilinear")
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
    return (pipeline.read_split(handle, "train").take(n).map(fn, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(batch_size).prefetch(tf.data.AUTOTUNE))


def paper_cases(variant_of):
    """(label, variant, task, config) for each reproduction; `variant_of(paper)` picks its config variant
    (for iglovikov18 the base setting of its chain: "", "thumbs", ...), None leaves the paper out."""
    from reproductions.iglovikov18 import config as iglovikov_config
    from reproductions.iglovikov18.task import TASKS as IGLOVIKOV_TASKS
    from reproductions.iglovikov18.variants import Variant
    from reproductions.larson18 import task as larson
    from reproductions.rsna17_second import task as second
    from reproductions.rsna17_winner import task as winner
    cases = []
    for name, task in (("larson18", larson.TASK), ("rsna17_winner", winner.TASK), ("rsna17_second", second.TASK)):
        variant = variant_of(name)
        if variant is None:
            continue
        config = task.get_config(variant)
        if name == "rsna17_second":
            config.model.sex = "female"  # one sex's model, as `train` builds it (the filter drops the boys before decoding)
        cases.append((name, variant, task, config))
    base = variant_of("iglovikov18")  # a base setting of its chain (variants.BASES): its whole-hand regressor
    if base is not None:
        network = Variant(base, "regress", "hand")
        cases.append(("iglovikov18", network.name, IGLOVIKOV_TASKS["regress"], iglovikov_config.get_config(network.name)))
    return cases


def describe(name, config) -> str:
    d = config.data
    if name == "larson18":
        return f"resize {d.image_size}, {len(d.clahe)}x CLAHE, random crop {d.crop_size} + flip"
    if name == "rsna17_winner":
        return f"warp to {d.image_size}, Keras-layer rotation/shift/zoom/flip on the batch"
    if name == "rsna17_second":
        return (f"hand crop + CLAHE at {d.image_size}, {d.patch_grid ** 2} patches of {d.patch_size} "
                f"({config.train.patches_per_image} sampled per radiograph; one sex)")
    return f"region crop of the {d.image_size}-px registered canvas + augmentation"


def measure_table(handle, cases, n, batch_size, passes, plain_size, log):
    limit = decode_limit(handle, n, batch_size, passes)
    log(f"  decode limit {limit:,.0f} images/s")
    table = [("decode only (the limit)", "", limit, "")]
    for method, label in (("bilinear", "bilinear, antialiased (the filter of larson18's and rsna17_winner's warp)"),
                          ("area", "area filter")):
        r, _ = rate(plain_resize(handle, n, batch_size, plain_size, method), passes)
        table.append((f"plain resize to {plain_size} x {plain_size}, {label}", "", r, ""))
        log(f"  {table[-1][0]}: {r:,.0f}")
    for name, variant, task, config in cases:
        for cache in (False, True):
            config.data.cache = cache
            ds = build_datasets(task, config, handle, ["train"], limit=n)["train"]
            rows, rows_per_pass = rate(ds, passes, warm_passes=1)
            if rows_per_pass == 0:
                raise SystemExit(f"{name}: no full training batch from {n} images; pass more --images")
            radiographs = pipeline.count_examples(handle, "train", filter=task.data.example_filter(config), limit=n)
            per = rows_per_pass / max(radiographs, 1)  # patch rows per radiograph (1 for whole images)
            images_per_s = rows / per
            note = f"{per:.0f} patch rows per radiograph" if name == "rsna17_second" else ""
            table.append((f"{name} `{variant or 'paper'}`: {describe(name, config)}" + (", cached" if cache else ""),
                          note, images_per_s, ""))
            log(f"  {table[-1][0]}: {images_per_s:,.0f}")
    return limit, table


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=3000, help="thumbnails per measurement")
    p.add_argument("--passes", type=int, default=8, help="timed passes over the 512-px radiographs")
    p.add_argument("--batch-size", type=int, default=32, help="batch of the decode-limit and plain-resize rows")
    p.add_argument("--out", default=str(provenance.REPO_ROOT / "results" / "benchmarks" / "input_pipeline.md"))
    args = p.parse_args(argv)
    log = lambda *a: print(*a, flush=True)  # noqa: E731

    sections = []
    thumbs_spec = f"folder:{SHARED / 'rsna-thumbs100'}" if (SHARED / "rsna-thumbs100").exists() else "phantoms"
    sample_spec = f"folder:{SHARED / 'rsna-sample'}" if (SHARED / "rsna-sample").exists() else None
    plans = [(thumbs_spec, "the 100-px thumbnails, each paper's `thumbs` config" if thumbs_spec != "phantoms"
              else "synthetic phantoms (the thumbnails are not here), each paper's `thumbs` config",
              lambda paper: "thumbs" if paper != "iglovikov18" else None, args.images, 1, 64)]
    if sample_spec:
        plans.append((sample_spec, "the 512-px radiographs (rsna-sample), each paper's own config",
                      lambda paper: "" if paper != "iglovikov18" else None, 10**9, args.passes, 224))
    try:
        registered = data.resolve(REGISTERED, log=lambda *_: None)
    except Exception as err:  # noqa: BLE001 - the register step has not been run on this machine
        registered = None
        log(f"iglovikov18 rows skipped: {REGISTERED} is not built here ({err})")
    for spec, title, variant_of, n_max, passes, plain_size in plans:
        handle = data.resolve(spec, log=log)
        n = min(n_max, handle.splits["train"])
        log(f"{title}: {handle.name}, {n} train images")
        limit, table = measure_table(handle, paper_cases(variant_of), n, args.batch_size, passes, plain_size, log)
        sections.append((title, handle, n, passes, limit, table))
    if registered is not None:
        n = min(args.images, registered.splits["train"])
        log(f"iglovikov18 registered canvases: {registered.name}, {n} train images")
        limit, table = measure_table(registered, paper_cases(lambda paper: "thumbs" if paper == "iglovikov18" else None)[-1:],
                                     n, args.batch_size, 1, 64, log)
        sections.append(("iglovikov18's registered thumbnail canvases (83 x 64), its `thumbs` config", registered, n, 1,
                         limit, table))

    hw = provenance.hardware()
    lines = [
        "# Input pipeline vs the decode limit",
        "",
        "Generated by `python benchmarks/input_pipeline.py`; each ratio is taken in one run, on the same cores and "
        "the same encoded images as its table's decode limit. Each paper row is its training pipeline as `train` "
        "builds it (`common.train.build_datasets`); images/s counts radiographs.",
        "",
        f"- machine: {hw['device']}, {provenance.cpu_model()}; dtype policy: none (no model in these rows)",
        f"- commit: `{provenance.git_commit()['commit'][:10]}`; TensorFlow {tf.__version__}; {provenance.now()}",
    ]
    for title, handle, n, passes, limit, table in sections:
        lines += ["", f"## {title}", "",
                  f"{handle.name} (fingerprint `{handle.fingerprint()[:12]}`), train split, {n} images"
                  + (f", {passes} timed passes" if passes > 1 else ""), "",
                  "| pipeline | note | images/s | ÷ decode limit |", "|---|---|---:|---:|"]
        lines += [f"| {name} | {note} | {r:,.0f} | {r / limit:.2f} |" for name, note, r, _ in table]
    text = "\n".join(lines) + "\n"
    io.atomic_write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
