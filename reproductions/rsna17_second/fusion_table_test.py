"""The fusion table: one row per rule, the paired difference against the primary rule."""
import json

import numpy as np
import pandas as pd

from reproductions.rsna17_second import fusion_table


def _metrics(mae):
    m = {"value": mae, "ci_low": mae - 1, "ci_high": mae + 1}
    return {"mae": m, "rmse": m, "bias": {"value": 0.0, "ci_low": -1.0, "ci_high": 1.0},
            "within_12": {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6}}


def _write(run, sub, ids, truth, pred):
    (run / sub).mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"id": ids, "boneage_true": truth, "boneage_pred": pred}).to_csv(run / sub / "predictions.csv", index=False)


def test_rows_per_rule_and_paired_difference_against_the_primary(tmp_path):
    run = tmp_path / "rsna17_second" / "thumbs_run"
    ids = [str(i) for i in range(40)]
    truth = np.linspace(20, 200, 40)
    _write(run, "test", ids, truth, truth + 10)                    # mean: always 10 months off
    _write(run, "test/estimate-median", ids, truth, truth + 10)    # median: the same predictions
    _write(run, "test/estimate-learned", ids, truth, truth + 2)    # learned: 2 months off
    record = {"paper": "rsna17_second", "variant": "thumbs", "evaluations": {"test": {
        "primary_estimate": "mean", "images": 40, "dataset": "folder/x",
        "estimates": {"mean": _metrics(10.0), "median": _metrics(10.0), "learned": _metrics(2.0)}}}}
    (run / "run.json").write_text(json.dumps(record))
    rows = [line for line in fusion_table.render(tmp_path, n_boot=200).splitlines() if line.startswith("| `")]
    assert [r.split(" | ")[3] for r in rows] == ["mean", "median", "learned"]
    assert rows[0].endswith("| — (primary) | 40 |")
    assert "+0.00 [+0.00, +0.00]: no real difference" in rows[1]
    assert "-8.00 [-8.00, -8.00]: lower (real)" in rows[2]
    assert fusion_table.render(tmp_path / "empty") == "No evaluated rsna17_second runs yet."
