"""How a paper's runs are trained and loaded: the `Runner` protocol a Task hands to common/train.py.

Most papers train one model in one run directory: `SingleRun`, every Task's default. A paper whose
`train` command is more than that names its own runner, which overrides only what differs:

    SingleRun                 one model, <run>/checkpoints/ (larson18, rsna17_winner, lite0_regressor)
    attention_mtl's runner    a single run that checks the masks before training and fits a conformal
                              calibration at evaluate time (reproductions/attention_mtl/task.py)
    rsna17_second's PerSexRuns  one sub-run per sex, <run>/<sex>/, loaded as one SexRouter and
                              calibrated (the learned fusion) at evaluate time
                              (reproductions/rsna17_second/task.py)

iglovikov18's chain of stages is one Task per stage, each a SingleRun, not a runner of its own: its
per-stage commands (reproductions/iglovikov18/__main__.py) train one network at a time through
library calls (its commands.py: train_stage, train_age, register_data; ensemble.py), and its
`chain` command (chain_command.py) runs the whole chain through the same calls in order (segment,
keypoints, register, the age networks, the ensemble), skipping each step already complete; its
Chain (reproductions/iglovikov18/chain.py) loads the trained stages in order for register and predict.

The library asks a runner five things; common/cli.py asks it for its flags. What a run's
evaluation reads out beside the estimates is the Task's (`extra_metrics`, handed the model, the
dataset and the evaluation's folder by common.train.evaluate), and how the data reach the model
is the Task's DataSpec (common/data_spec.py): a runner says neither.
"""
from __future__ import annotations

from typing import Protocol


class Runner(Protocol):
    several_models: bool  # one `train` trains several models in one go (several processes are refused)

    def add_flags(self, command: str, parser) -> None:
        """The paper's own flags of `command` (train, evaluate, predict) on its argparse parser;
        common/cli.py puts their values in RunOptions.extras."""

    def train(self, task, options, log=print):
        """Trains the run(s) the options name: (run_dir, model or None, dataset handle, config)."""

    def load_trained(self, task, config, run_dir, model=None, log=print):
        """The trained model of a run, for evaluate and predict: (model, what was loaded)."""

    def calibrate(self, task, model, config, handle, run_dir, log=print) -> None:
        """What evaluate fits on the validation split before it predicts (e.g. fusion weights,
        conformal quantiles)."""

    def after_predict(self, task, model, config, records, table, out_csv, options, log=print) -> None:
        """What `predict` writes beside its CSV, from the model, the radiographs read
        ([(file, uint8 pixels, male)]) and the table written (e.g. attention_mtl's --explain overlays)."""


class SingleRun:
    """One model in one run directory: common.train.train, and checkpoints/best (else last)."""
    several_models = False

    def add_flags(self, command: str, parser) -> None:
        return None

    def train(self, task, options, log=print):
        from common import train
        return train.train(task, options, log=log)

    def load_trained(self, task, config, run_dir, model=None, log=print):
        from common import train
        return train.load_trained(task, config, run_dir, model=model, log=log)

    def calibrate(self, task, model, config, handle, run_dir, log=print) -> None:
        return None

    def after_predict(self, task, model, config, records, table, out_csv, options, log=print) -> None:
        return None
