"""What a reproduction hands to the shared machinery: a Task names its config, model and data functions.

Like keras-hub's task classes, a Task mostly names other things: the paper's config module,
its model builder, and the per-example functions that the one input pipeline calls. Training,
evaluation, prediction, provenance and results are all in `common/`.

Every field after `predict` has a default that leaves the shared behaviour as it was, so a
paper names only what it changes (e.g. rsna17_second: a sex filter, 49 patches per radiograph,
and a runner (common/runner.py) that trains one model per sex in sub-runs and fits a fusion on
the validation split).
"""
import dataclasses
from typing import Callable

from common.runner import Runner, SingleRun


@dataclasses.dataclass(frozen=True)
class Task:
    paper: str                     # package name, e.g. "larson18"
    citation: str                  # the paper, for tables and logs
    get_config: Callable           # (variant: str) -> Config
    build_model: Callable          # (config) -> uncompiled keras.Model
    preprocess: Callable           # (config, training: bool) -> fn(example) -> example
    to_model_io: Callable          # (config) -> fn(batch) -> (inputs, targets)
    loss: Callable                 # (config) -> Keras loss
    metrics: Callable              # (config) -> list of Keras metrics; one must be named `monitor` ("mae", months, by default)
    predict: Callable              # (model, inputs, config) -> {estimate name: months [B]}; first = primary
    augment: Callable = lambda config: None        # (config) -> fn(example, seed) -> example, or None
    batch_augment: Callable = lambda config: None  # (config) -> fn(batch) -> batch, or None
    test_preprocess: Callable | None = None        # (config) -> fn(example) for evaluate/predict (e.g. test-time crops)
    backbone_name: str | None = None               # nested model that --weights loads into
    weights_hint: str = ""                         # the file --weights expects, for messages
    example_keys: tuple | None = ("id", "image", "boneage_months", "male")  # features read; None = all
    needs_sex: bool | Callable = True              # the model takes sex as an input; or (config) -> bool where a variant drops it
    monitor: str = "mae"                           # validation metric (logged as val_<monitor>) that picks checkpoints/best
    monitor_mode: str = "min"                      # "min" or "max" for `monitor`
    variants: tuple = ("small",)                   # known config variants besides the paper's own
    # --- examples: which, and how many per radiograph (common.pipeline.make_dataset) ---------------
    example_filter: Callable = lambda config: None        # (config) -> predicate(example) -> bool tensor, or None: the examples this config trains and evaluates on (e.g. one sex)
    expand: Callable = lambda config, training: None      # (config, training) -> fn(example) -> example with leading dim N, or None: one cached example -> N training rows (e.g. patches)
    expand_sample: Callable = lambda config: None         # (config) -> int or None: in training, a fresh random N' of the N rows per example and epoch
    # --- runs: how a run is trained, loaded and calibrated, and the paper's own flags (common/runner.py)
    runner: Runner = dataclasses.field(default_factory=SingleRun)  # default: one model in one run directory
    # --- read-outs beside the estimates (common.train evaluate / predict) --------------------------
    extra_columns: tuple = ()              # names in `predict`'s output that are per-image columns, not estimates (e.g. an interval's bounds): written beside the primary estimate in predictions.csv and in predict's CSV
    extra_metrics: Callable | None = None  # (config, run_dir, split, predictions DataFrame with extra_columns) -> {section: (values dict, markdown)}: added to the primary estimate's metrics.json / metrics.md and to the run record's evaluation (e.g. interval coverage)

    def sex_needed(self, config) -> bool:
        """Whether this config's model takes the patient's sex (`predict` then requires it)."""
        return bool(self.needs_sex(config) if callable(self.needs_sex) else self.needs_sex)
