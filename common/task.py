"""What a reproduction hands to the shared machinery: a Task names its config, model and data functions.

Like keras-hub's task classes, a Task mostly names other things: the paper's config module,
its model builder, and the per-example functions that the one input pipeline calls. Training,
evaluation, prediction, provenance and results are all in `common/`.
"""
import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class Task:
    paper: str                     # package name, e.g. "larson18"
    citation: str                  # the paper, for tables and logs
    get_config: Callable           # (variant: str) -> Config
    build_model: Callable          # (config) -> uncompiled keras.Model
    preprocess: Callable           # (config, training: bool) -> fn(example) -> example
    to_model_io: Callable          # (config) -> fn(batch) -> (inputs, targets)
    loss: Callable                 # (config) -> Keras loss
    metrics: Callable              # (config) -> list of Keras metrics; one must be named "mae" (months)
    predict: Callable              # (model, inputs, config) -> {estimate name: months [B]}; first = primary
    augment: Callable = lambda config: None        # (config) -> fn(example, seed) -> example, or None
    batch_augment: Callable = lambda config: None  # (config) -> fn(batch) -> batch, or None
    test_preprocess: Callable | None = None        # (config) -> fn(example) for evaluate/predict (e.g. test-time crops)
    backbone_name: str | None = None               # nested model that --weights loads into
    weights_hint: str = ""                         # the file --weights expects, for messages
    example_keys: tuple | None = ("id", "image", "boneage_months", "male")  # features read; None = all
    needs_sex: bool = True                         # the model takes sex as an input
    variants: tuple = ("small",)                   # known config variants besides the paper's own
