"""The paper registry: what the reproductions hand to the shared machinery in common/.

common/ never imports `reproductions` (common/layering_test.py checks it): the commands of
reproductions/ pass what common needs, such as the ablations the comparison reports and the
papers' own tables, as arguments (`common.results.regenerate(..., ablations=..., tables=...)`,
`common.compare.plot_all(..., ablations=...)`, both called by `python -m reproductions compare`:
train and evaluate leave the tables alone).

    PAPERS       the reproduced papers, one package each: `python -m reproductions.<paper>`
    networks()   every network they train, with its task and smoke-run config (tests/test_registry_networks.py
                 builds each and takes one train step)
    ablations()  the ablation pairs of reproductions/ablations.py
    tables()     the papers' own tables `compare` regenerates beside results/README.md
"""
PAPERS = ("attention_mtl", "iglovikov18", "larson18", "lite0_regressor", "rsna17_second", "rsna17_winner")


def ablations() -> tuple:
    """The ablations the comparison reports (reproductions/ablations.py), read when called."""
    from reproductions import ablations as module
    return tuple(module.ABLATIONS)


def tables() -> tuple:
    """The papers' own tables, each a callable (results_dir, log) -> [paths written]:
    iglovikov18's region table (results/iglovikov18/regions.md, `python -m reproductions.iglovikov18
    table`), rsna17_second's fusion table (its README, `python -m
    reproductions.rsna17_second.fusion_table`) and attention_mtl's attention by region beside iglovikov18's
    region networks (results/attention_mtl/regions.md). Imported when called."""
    from reproductions.attention_mtl import regions_table
    from reproductions.iglovikov18 import regions
    from reproductions.rsna17_second import fusion_table
    return (regions.regenerate, fusion_table.regenerate, regions_table.regenerate)


def networks() -> tuple:
    """Every network the registered papers train, as (name, task, config of its `small` smoke-run
    variant): one per paper, one per sex for rsna17_second (its runner trains a patch network per sex),
    and each network of iglovikov18's chain (U-Net, key points, the six age networks), whose `train
    --stage` picks one of several tasks. Imported when called."""
    import importlib
    out = []
    for paper in PAPERS:
        if paper == "iglovikov18":
            from reproductions.iglovikov18.task import TASKS
            from reproductions.iglovikov18.variants import Variant
            out += [(f"iglovikov18 {v.name}", TASKS[v.stage], TASKS[v.stage].get_config(v.name))
                    for v in Variant.all() if v.base == "small"]
        elif paper == "rsna17_second":
            from reproductions.rsna17_second.task import SEXES, TASK
            out += [(f"rsna17_second {sex}", TASK, TASK.get_config("small").override("model.sex", sex)) for sex in SEXES]
        else:
            task = importlib.import_module(f"reproductions.{paper}.task").TASK
            out.append((paper, task, task.get_config("small")))
    return tuple(out)
