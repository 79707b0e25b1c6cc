"""The input-pipeline side of a Task: the per-example functions that common/pipeline.py's `make_dataset` calls.

A Task (common/task.py) is the model side of a reproduction (config, model, loss, metrics,
read-out, runner); its `data` field is a `DataSpec`, which says how the one input pipeline turns
a dataset split into that model's batches: which features to read and which examples to keep,
what to do to one example (deterministically, then cached), whether one example becomes several
rows (patches), which random changes to make in training, and how a batch becomes (model inputs,
targets). It is its own small module because it is the pipeline's contract, not the model's:
common/train.py (`build_datasets`, `evaluate`, `predict`), common/batchnorm.py and the papers'
own stage code (iglovikov18) read it, and every field maps onto one argument of `make_dataset`.

Every field after `to_model_io` has a default that leaves the shared pipeline as it was, so a
paper names only what it changes (e.g. rsna17_second: a sex filter and 49 patches per radiograph).
"""
import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class DataSpec:
    preprocess: Callable           # (config, training: bool) -> fn(example) -> example (deterministic; cached)
    to_model_io: Callable          # (config) -> fn(batch) -> (inputs, targets)
    augment: Callable = lambda config: None        # (config) -> fn(example, seed) -> example, or None
    batch_augment: Callable = lambda config: None  # (config) -> fn(batch) -> batch, or None
    test_preprocess: Callable | None = None        # (config) -> fn(example) for evaluate/predict (e.g. test-time crops); None: preprocess(config, False)
    example_keys: tuple | None = ("id", "image", "boneage_months", "male")  # features read; None = all
    # --- examples: which, and how many per radiograph --------------------------------------------
    example_filter: Callable = lambda config: None        # (config) -> predicate(example) -> bool tensor, or None: the examples this config trains and evaluates on (e.g. one sex)
    expand: Callable = lambda config, training: None      # (config, training) -> fn(example) -> example with leading dim N, or None: one cached example -> N training rows (e.g. patches)
    expand_sample: Callable = lambda config: None         # (config) -> int or None: in training, a fresh random N' of the N rows per example and epoch

    def eval_preprocess(self, config):
        """The per-example function of evaluate, predict and other read-outs: `test_preprocess`, else
        the training-free `preprocess`."""
        return self.test_preprocess(config) if self.test_preprocess else self.preprocess(config, False)
