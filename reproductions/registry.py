"""The paper registry: what the reproductions hand to the shared machinery in common/.

common/ never imports `reproductions` (common/layering_test.py checks it): the commands of
reproductions/ pass what common needs, such as the ablations the comparison reports, as arguments
(`common.results.regenerate(..., ablations=...)`, `common.compare.plot_all(..., ablations=...)`,
both called by `python -m reproductions compare`: train and evaluate leave the tables alone).

    PAPERS       the reproduced papers, one package each: `python -m reproductions.<paper>`
    ablations()  the ablation pairs of reproductions/ablations.py
"""
PAPERS = ("attention_mtl", "iglovikov18", "larson18", "lite0_regressor", "rsna17_second", "rsna17_winner")


def ablations() -> tuple:
    """The ablations the comparison reports (reproductions/ablations.py), read when called."""
    from reproductions import ablations as module
    return tuple(module.ABLATIONS)

