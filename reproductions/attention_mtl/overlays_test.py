"""The overlay figures: valid PNGs, written atomically, one panel per image, refused when empty."""
import numpy as np
import pytest
from PIL import Image

from reproductions.attention_mtl import overlays


def _panel(seed):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    attention = rng.random((64, 64))
    return image, attention / attention.sum()


def _png_size(path):
    with Image.open(path) as image:
        image.verify()  # a whole, valid PNG
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_one_overlay_is_a_valid_png(tmp_path):
    path = overlays.write_overlay(tmp_path / "one.png", *_panel(0), title="hand.png\npredicted 100 months")
    width, height = _png_size(path)
    assert width > 100 and height > 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.png"]  # no temporary file left behind


def test_the_sheet_has_a_column_per_band(tmp_path):
    panels = [(band, *_panel(i), f"image {i}") for i, band in enumerate(["0-2 y", "0-2 y", "2-6 y", "6-10 y", "6-10 y"])]
    three = _png_size(overlays.write_sheet(tmp_path / "sheet.png", panels, title="a sheet"))
    one = _png_size(overlays.write_sheet(tmp_path / "narrow.png", panels[:2]))
    assert three[0] > 2 * one[0]  # three columns against one
    assert three[1] == pytest.approx(one[1], rel=0.2)  # two rows in both
    with pytest.raises(ValueError, match="no panels"):
        overlays.write_sheet(tmp_path / "empty.png", [])
    assert not (tmp_path / "empty.png").exists()


def test_a_flat_map_and_a_float_image_draw(tmp_path):
    path = overlays.write_overlay(tmp_path / "flat.png", np.zeros((32, 32, 1)), np.zeros((32, 32)))
    _png_size(path)


def test_a_flat_map_is_a_faint_tint_and_a_peaked_one_reaches_the_top():
    np.testing.assert_allclose(overlays.colour_scale(np.full((8, 8), 1 / 64)), 1 / overlays.FLAT)
    peaked = np.full((8, 8), 0.1 / 63)
    peaked[2, 3] = 0.9
    scaled = overlays.colour_scale(peaked)
    assert scaled.max() == 1.0 and scaled[2, 3] == 1.0 and scaled[0, 0] < 0.01


def test_region_outlines_are_drawn_in_their_colours_with_a_legend(tmp_path):
    from PIL import Image
    image, attention = _panel(0)
    square = np.zeros(attention.shape, bool)
    square[8:24, 8:24] = True
    titles = {"carpal": "carpal box", "metacarpal": "metacarpal box"}
    with_lines = overlays.write_sheet(tmp_path / "lines.png", [("0-2 y", image, attention, "a", {"metacarpal": square})],
                                      outline_titles=titles)
    without = overlays.write_sheet(tmp_path / "plain.png", [("0-2 y", image, attention, "a", None)],
                                   outline_titles=titles)

    def green(path, rows=1.0):  # the metacarpal outline's colour (#76ff03, after the 256-colour palette), in
        rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)  # neither the grey image nor the heat map
        rgb = rgb[:int(rows * len(rgb))]
        return int((rgb[..., 1] > np.maximum(rgb[..., 0], rgb[..., 2]) + 40).sum())
    assert green(with_lines, rows=0.7) > 20  # on the panel, above the legend
    assert green(without) == 0
    assert _png_size(with_lines)[1] > _png_size(without)[1]  # the legend's row
