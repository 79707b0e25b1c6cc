"""What a command asks of the library: `RunOptions`, the typed form of the command-line flags.

common/cli.py alone parses argv; it turns the flags into a RunOptions and hands it to the library
(common/train.py: `train`, `train_and_evaluate`, `evaluate`, `predict`), which never sees an
argparse object. A caller that is not the command line (a paper's per-sex sub-runs, iglovikov18's
chain, a test) builds one directly, or derives one with `dataclasses.replace`.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class RunOptions:
    # --- which data, which config, which run directory (train, evaluate, predict) ---------------
    data: str | None = None               # --data: phantoms, rsna[:PATH], folder:PATH, ...; None = the default
    data_dir: str | None = None           # --data-dir: where built datasets live; None = $BONEAGE_DATA_DIR
    split_column: str | None = None       # --split-column: folder data's split column
    variant: str = ""                     # --variant / --small: the config variant; "" = the paper's
    overrides: tuple = ()                 # --set KEY=VALUE, in order
    epochs: int | None = None             # --epochs: train.epochs
    batch_size: int | None = None         # --batch-size: train.batch_size
    image_size: int | None = None         # --image-size: data.image_size
    seed: int | None = None               # --seed
    max_minutes: float | None = None      # --max-minutes: train.max_minutes
    out: str | None = None                # --out: the run directory; None = results/<paper>/<data>_<variant>_<size>px
    limit: int | None = None              # --limit: the first N examples of each split
    precision: str = "auto"               # --precision: auto, float32, mixed_float16, mixed_bfloat16
    # --- train ---------------------------------------------------------------------------------
    weights: str | None = None            # --weights: ImageNet weights file, or none
    init_from: str | None = None          # --init-from: a trained run to start from
    devices: str | int = "auto"           # --devices: "auto" or N (data parallel, JAX)
    no_eval: bool = False                 # --no-eval: no evaluation after training
    num_processes: int | None = None      # --num-processes / --process-id / --coordinator: several machines
    process_id: int | None = None
    coordinator: str | None = None
    # --- evaluate ------------------------------------------------------------------------------
    split: str = "test"                   # --split: the split to evaluate
    eval_data: str | None = None          # --eval-data: another dataset than the run's own
    # --- predict -------------------------------------------------------------------------------
    files: tuple = ()                     # image files or folders
    sex: str | None = None                # --sex M|F for every file
    sex_csv: str | None = None            # --sex-csv FILE
    output_csv: str | None = None         # --output-csv; None = predictions.csv
    # --- a paper's own flags (Runner.add_flags), by name, e.g. rsna17_second's {"sex": "both"} ---
    extras: dict = dataclasses.field(default_factory=dict)

    def extra(self, name: str, default=None):
        """A paper's own flag (Runner.add_flags), or `default` when the caller did not set it."""
        return self.extras.get(name, default)
