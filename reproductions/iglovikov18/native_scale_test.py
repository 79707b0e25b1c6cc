"""native_scale: the canvas height at which registration keeps a hand's pixel size (chooses r512's canvas)."""
import numpy as np
import pytest

from reproductions.iglovikov18 import native_scale
from reproductions.iglovikov18 import preprocessing as pp
from reproductions.iglovikov18.config import get_config


@pytest.mark.parametrize("size", [83, 400, 520])
def test_key_points_already_on_a_canvas_give_that_canvas_height(size):
    config = get_config("keypoints")
    config.data.image_size = size  # canvas_keypoints reads the scale from it, as the age stages' configs do
    points = pp.canvas_keypoints(config)
    heights = native_scale.native_canvas_height(points, config)
    assert heights == pytest.approx({"area": size, "tip_capitate": size}, rel=1e-5)
    # Twice as many source pixels between the points: the hand holds a canvas twice as high; a shift changes nothing.
    doubled = native_scale.native_canvas_height(2 * points + np.float32([7, -3]), config)
    assert doubled == pytest.approx({"area": 2 * size, "tip_capitate": 2 * size}, rel=1e-5)


def test_on_a_few_512_px_radiographs(shared_data, capsys):
    """The command on real radiographs (the r512 choice: median 395-404 px over all 954; README)."""
    if not (shared_data / "rsna-512" / "labels.csv").exists():
        pytest.skip("../shared/data/rsna-512 not present")
    assert native_scale.main([str(shared_data / "rsna-512"), "--limit", "12"]) == 0
    out = capsys.readouterr().out
    assert "12 images with key points" in out
    medians = [int(line.split("[")[1].split(",")[2]) for line in out.splitlines() if "percentile" in line]
    assert len(medians) == 2 and all(250 < m < 560 for m in medians), out
