"""Where the attention pooling looks: maps over the image, and how their mass divides.

    attention_maps(model, inputs)   [B, h, w]: the attention over the backbone's feature grid, mean
                                    over heads (each image's sums to 1); pooling "attention" only
    upsample(maps, size)            [B, S, S]: each grid cell's weight spread evenly over the image
                                    pixels it covers, so each image's map still sums to 1 (for sums
                                    over masks and regions)
    smooth(maps, size)              [B, S, S]: bilinear, renormalised to sum 1 (for drawing)
    label_mass(map, labels, n)      [n + 1]: the mass on each label 0..n of a label image
    content_mask(hw, size)          [S, S]: the radiograph's own pixels after `letterbox` (not the padding)
    spread(maps), centroid(maps)    how widely and where the attention sits, without any mask

The grid cell (i, j) of an h x w grid is taken to cover image rows [round(i S / h), round((i + 1) S / h))
and the columns alike: the backbone's strided convolutions map cell to image this way up to the
receptive field's overlap (EfficientNet-Lite0 at 384 px: 12 x 12 cells of 32 x 32 px), so a
map drawn or summed at image resolution is the grid's, not a finer one.
"""
import numpy as np

from reproductions.attention_mtl import pooling


def attention_map_model(model):
    """`pooling.attention_map_model(model)`, built once per model (cached on it)."""
    cached = getattr(model, "_attention_map_model", None)
    if cached is None:
        cached = pooling.attention_map_model(model)
        model._attention_map_model = cached
    return cached


def has_attention(model) -> bool:
    """Whether `model` pools by attention (has the layer `attention_map_model` reads)."""
    try:
        model.get_layer("attention_pool")
    except ValueError:
        return False
    return True


def attention_maps(model, inputs) -> np.ndarray:
    """[B, h, w] float64 attention over the feature grid, mean over heads; each image's sums to 1.

    inputs: the model's inputs ({"image": [B, S, S, 3][, "male": [B, 1]]}), NumPy."""
    sub = attention_map_model(model)
    feed = {name: np.asarray(inputs[name], np.float32) for name in sub.input} if isinstance(sub.input, dict) \
        else np.asarray(inputs["image"], np.float32)
    maps = np.asarray(sub.predict_on_batch(feed), np.float64)
    return maps / maps.sum(axis=(1, 2), keepdims=True)  # float32 rounding: exactly 1 again


def _cells(n_cells: int, size: int) -> np.ndarray:
    """The grid cell of each of `size` pixels along one axis (n_cells <= size)."""
    if n_cells > size:
        raise ValueError(f"the grid is finer than the image. Received: cells={n_cells}, size={size}")
    edges = np.round(np.arange(n_cells + 1) * size / n_cells).astype(int)
    return np.searchsorted(edges, np.arange(size), side="right") - 1


def upsample(maps, size: int) -> np.ndarray:
    """[B, h, w] -> [B, S, S] with each cell's weight spread evenly over its pixels (sums kept)."""
    maps = np.asarray(maps, np.float64)
    rows, cols = _cells(maps.shape[1], size), _cells(maps.shape[2], size)
    per_cell = (np.bincount(rows, minlength=maps.shape[1])[:, None]
                * np.bincount(cols, minlength=maps.shape[2])[None, :])
    return (maps / per_cell)[:, rows][:, :, cols]


def smooth(maps, size: int) -> np.ndarray:
    """[B, h, w] -> [B, S, S] bilinear (cell centres at their pixel blocks' centres), each summing to 1."""
    import cv2
    maps = np.asarray(maps, np.float64)
    out = np.stack([cv2.resize(m.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR) for m in maps])
    out = np.clip(out.astype(np.float64), 0.0, None)
    return out / out.sum(axis=(1, 2), keepdims=True)


def label_mass(attention, labels, n_labels: int) -> np.ndarray:
    """Mass of one image-resolution map [S, S] on each label 0..n_labels of a label image [S, S]."""
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    return np.bincount(labels, weights=np.asarray(attention, np.float64).reshape(-1), minlength=n_labels + 1)


def content_mask(source_hw, size: int) -> np.ndarray:
    """[S, S] bool: where `common.preprocessing.letterbox` put the radiograph's own pixels (a source
    of source_hw = (height, width) padded, centred, to a square, then resized to S)."""
    h, w = int(source_hw[0]), int(source_hw[1])
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    scale = size / side
    out = np.zeros((size, size), bool)
    out[int(round(top * scale)):int(round((top + h) * scale)), int(round(left * scale)):int(round((left + w) * scale))] = True
    return out


def spread(maps) -> np.ndarray:
    """[B]: exp(entropy) of each grid map over its cell count, in (0, 1]: 1 = uniform over the grid,
    1 / cells = all of it on one cell."""
    maps = np.asarray(maps, np.float64).reshape(len(maps), -1)
    entropy = -np.sum(np.where(maps > 0, maps * np.log(np.where(maps > 0, maps, 1.0)), 0.0), axis=1)
    return np.exp(entropy) / maps.shape[1]


def centroid(maps) -> np.ndarray:
    """[B, 2]: the attention's centre of mass (x, y) as fractions of the image's width and height."""
    maps = np.asarray(maps, np.float64)
    h, w = maps.shape[1:]
    y = ((np.arange(h) + 0.5) / h)[None, :, None]
    x = ((np.arange(w) + 0.5) / w)[None, None, :]
    total = maps.sum(axis=(1, 2))
    return np.stack([(maps * x).sum(axis=(1, 2)) / total, (maps * y).sum(axis=(1, 2)) / total], axis=1)
