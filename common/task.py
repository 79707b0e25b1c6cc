"""What a reproduction hands to the shared machinery: a Task names its config, model, loss, metrics and read-out.

Like keras-hub's task classes, a Task mostly names other things: the paper's config module, its
model builder, loss, metrics and read-out (`predict`), how its runs are trained and loaded (its
`runner`, common/runner.py) and the read-outs beside the estimates (`extra_columns`,
`extra_metrics`). How the input pipeline feeds that model is its `data` field, a `DataSpec`
(common/data_spec.py: preprocess, to_model_io, augmentation, the examples kept and expanded).
Training, evaluation, prediction, provenance and results are all in `common/`.

Every field after `predict` has a default that leaves the shared behaviour as it was, and so has
every DataSpec field after `to_model_io`, so a paper names only what it changes (e.g.
rsna17_second: a sex filter and 49 patches per radiograph in its DataSpec, and a runner that
trains one model per sex in sub-runs and fits a fusion on the validation split).
"""
import dataclasses
from typing import Callable

from common.data_spec import DataSpec
from common.runner import Runner, SingleRun

__all__ = ["DataSpec", "Task"]  # DataSpec too: a paper's task.py imports both from here


@dataclasses.dataclass(frozen=True)
class Task:
    paper: str                     # package name, e.g. "larson18"
    citation: str                  # the paper, for tables and logs
    get_config: Callable           # (variant: str) -> Config
    build_model: Callable          # (config) -> uncompiled keras.Model
    data: DataSpec                 # how common/pipeline.py makes this model's batches (common/data_spec.py)
    loss: Callable                 # (config) -> Keras loss
    metrics: Callable              # (config) -> list of Keras metrics; one must be named `monitor` ("mae", months, by default)
    predict: Callable              # (model, inputs, config) -> {estimate name: months [B]}; first = primary
    backbone_name: str | None = None               # nested model that --weights loads into
    weights_hint: str = ""                         # the file --weights expects, for messages
    needs_sex: bool | Callable = True              # the model takes sex as an input; or (config) -> bool where a variant drops it
    monitor: str = "mae"                           # validation metric (logged as val_<monitor>) that picks checkpoints/best
    monitor_mode: str = "min"                      # "min" or "max" for `monitor`
    variants: tuple = ("small",)                   # known config variants besides the paper's own
    # --- runs: how a run is trained, loaded and calibrated, and the paper's own flags (common/runner.py)
    runner: Runner = dataclasses.field(default_factory=SingleRun)  # default: one model in one run directory
    # --- read-outs beside the estimates (common.train evaluate / predict) --------------------------
    extra_columns: tuple = ()              # names in `predict`'s output that are per-image columns, not estimates (e.g. an interval's bounds): written beside the primary estimate in predictions.csv and in predict's CSV
    extra_metrics: Callable | None = None  # (config, run_dir, split, predictions DataFrame with extra_columns, *, model, handle, out_dir, log) -> {section: (values dict, markdown)}: added to the primary estimate's metrics.json / metrics.md and to the run record's evaluation (e.g. interval coverage); model, handle: what evaluate predicted with and on, out_dir: the folder it writes this evaluation into (for a read-out's own files, e.g. attention maps)

    def sex_needed(self, config) -> bool:
        """Whether this config's model takes the patient's sex (`predict` then requires it)."""
        return bool(self.needs_sex(config) if callable(self.needs_sex) else self.needs_sex)
