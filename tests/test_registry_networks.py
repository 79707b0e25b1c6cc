"""Every network of every registered paper builds and takes one train step on tiny input (timm-style):
the paper's own smoke-run config, DataSpec pipeline, loss and metrics, through the library calls
`train` makes (common.train.build_datasets, build_and_load, make_optimizer). A paper added to
reproductions/registry.py, or a network added to iglovikov18's chain, is covered without a line
here. That a run *learns* is each paper's smoke_test.py; the paper-size backbones are each
model_test.py's."""
import numpy as np
import pytest

from reproductions import registry

NETWORKS = {name: (task, config) for name, task, config in registry.networks()}


def test_the_registry_lists_every_paper_and_each_network_of_the_chain():
    names = set(NETWORKS)
    assert {p for p in registry.PAPERS if p not in ("iglovikov18", "rsna17_second")} <= names
    assert {"rsna17_second female", "rsna17_second male"} <= names
    chain = {n for n in names if n.startswith("iglovikov18 ")}
    assert chain == {f"iglovikov18 small-{n}" for n in ("segment", "keypoints")} | {
        f"iglovikov18 small-{stage}-{region}" for stage in ("regress", "classify") for region in ("hand", "carpal", "metacarpal")}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_every_registered_network_builds_and_takes_one_train_step(name, tiny_phantoms):
    from common import train
    task, config = NETWORKS[name]
    config = config.copy()
    batches = train.build_datasets(task, config, tiny_phantoms, ["train"], limit=config.train.batch_size)["train"]
    batch = next(iter(batches))
    model = train.build_and_load(task, config, log=lambda *_: None)
    model.compile(optimizer=train.make_optimizer(config, 1, 1), loss=task.loss(config), metrics=task.metrics(config),
                  run_eagerly=True)  # one step: eager skips tracing the train function (minutes for InceptionV3 on 2 cores)
    before = [np.array(w) for w in model.trainable_weights]
    logs = model.train_on_batch(*batch, return_dict=True)
    assert logs and all(np.isfinite(float(v)) for v in logs.values()), logs
    changed = sum(not np.array_equal(b, np.array(w)) for b, w in zip(before, model.trainable_weights))
    assert changed > len(before) // 2, f"{name}: one step changed {changed} of {len(before)} weight tensors"
