"""What evaluate and predict show of the attention: the sheet, the overlays, the mass per region.

`evaluate` of a run with pooling "attention" (task.extra_metrics calls `evaluate_attention`) writes
into the evaluation's folder <run>/<split>/:

    attention_sheet.png    PER_BAND radiographs of each age band (reference age, the bands of
                           common.evaluation), chosen by reference age alone (`sheet_examples`),
                           the attention over each, its true and predicted age in the title
    attention_regions.md   by age band, the mean share of the attention on the radiograph (not on
                           the letterbox padding), in the hand mask and in each hand region,
                           where the dataset has them (see below), and how spread it is
    attention_regions.csv  the same per image

and an "attention" section (the table's numbers) into metrics.json / metrics.md and the run record.

Regions. The phantoms (common/phantoms.py) carry the generator's own anatomy: for each phantom id
("phantom-SEED-INDEX") the generator redraws the hand with its region map (radius / ulna,
carpals, metacarpals + proximal phalanges, middle phalanges, distal phalanges: the bones it drew
for each, every other hand-mask pixel given to the nearest bone's region) and the map is checked
against the stored mask before use. Real radiograph folders carry neither masks nor regions: for them
the iglovikov18 chain makes both (chain_regions.py): its bootstrap hand mask and the key points read
off it, and its registration's carpal and metacarpal boxes mapped back onto the radiograph, so the
shares are on the pixels iglovikov18's region networks see; the fingers above the metacarpal box and
the forearm below the carpal box are this kit's cut of the same canvas. The sheet outlines these four
regions over the attention. An image the chain gives no key points
for counts in the shares that need no anatomy only, and the table says how many had regions.

`predict --explain` (task.py's runner, after predict has written its CSV) calls `write_explanations`:
one PNG per radiograph.
"""
import re
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from common import io
from common import preprocessing as common_pp
from common.evaluation import AGE_BAND_LABELS, age_band_labels
from common.phantoms import REGION_NAMES
from reproductions.attention_mtl import attention, chain_regions, overlays

PER_BAND = 2
SHEET = "attention_sheet.png"
REGIONS_MD = "attention_regions.md"
REGIONS_CSV = "attention_regions.csv"
REGION_TITLES = {"radius_ulna": "radius / ulna", "carpals": "carpals",
                 "metacarpals_proximal_phalanges": "metacarpals + proximal phalanges",
                 "middle_phalanges": "middle phalanges", "distal_phalanges": "distal phalanges",
                 **chain_regions.CHAIN_REGION_TITLES}
# The sheet's legend for the chain's regions (chain_regions.CHAIN_REGIONS but the rest of the hand), short enough
# for a sheet of one column
OUTLINE_TITLES = {"carpal": "carpal box (iglovikov18)", "metacarpal": "metacarpal box (iglovikov18)",
                  "fingers": "fingers above the metacarpal box", "forearm": "forearm below the carpal box"}
PHANTOM_ID = re.compile(r"^phantom-(\d+)-(\d+)$")
MASK_AGREEMENT = 0.995  # the redrawn region map must match the stored hand mask on this share of pixels


# --- which radiographs the sheet shows ---------------------------------------------------------------

def sheet_examples(predictions: pd.DataFrame, per_band: int = PER_BAND) -> list[tuple[str, str]]:
    """[(age band, id)]: per band of the reference age, its images sorted by reference age (ties by id) cut
    into `per_band` equal parts, the middle image of each (all of them when fewer): deterministic, and
    blind to the predictions."""
    df = pd.DataFrame({"id": predictions["id"].astype(str).to_numpy(),
                       "age": pd.to_numeric(predictions["boneage_true"]).to_numpy()})
    df["band"] = age_band_labels(df["age"])
    chosen = []
    for band in AGE_BAND_LABELS:
        rows = df[df["band"] == band].sort_values(["age", "id"], kind="stable")
        if rows.empty:
            continue
        n = len(rows)
        positions = sorted({int((k + 0.5) * n / per_band) for k in range(per_band)})
        chosen += [(band, rows["id"].iloc[p]) for p in positions]
    return chosen


# --- the pass over the data --------------------------------------------------------------------------

def _preprocess(config, with_mask: bool):
    """As task.test_preprocess (letterbox), keeping the mask when there is one and the source's size."""
    size = config.data.image_size

    def fn(example):
        keep = ("id", "image", "male", "boneage_months") + (("mask",) if with_mask else ())
        out = common_pp.letterbox({k: v for k, v in example.items() if k in keep}, size)
        out["source_hw"] = tf.shape(example["image"])[:2]
        return out
    return fn


def _model_io(config, to_model_io):
    """(model inputs, what the read-out needs: id, the letterboxed uint8 image, its mask, the source size)."""
    model_io = to_model_io(config)

    def fn(batch):
        inputs, _ = model_io(batch)
        meta = {k: batch[k] for k in ("id", "image", "source_hw", "mask") if k in batch}
        return inputs, meta
    return fn


def letterbox_labels(labels, size: int) -> np.ndarray:
    """A label image [H, W] letterboxed as the pipeline letterboxes masks (nearest): [S, S] uint8."""
    labels = np.asarray(labels, np.uint8)[..., None]
    out = common_pp.letterbox({"image": tf.constant(labels), "mask": tf.constant(labels)}, size)["mask"]
    return np.asarray(out)[..., 0]


def phantom_regions(example_id: str, source_hw, size: int) -> np.ndarray | None:
    """The region map (labels 1.. of REGION_NAMES, 0 off the hand) of a phantom, letterboxed to S;
    None for an id that is not a phantom's."""
    from common import phantoms
    match = PHANTOM_ID.match(example_id)
    if match is None or int(source_hw[0]) != int(source_hw[1]):
        return None
    seed, index = int(match.group(1)), int(match.group(2))
    drawn = phantoms.sample_phantom(index, seed, int(source_hw[0]), regions=True)
    return letterbox_labels(drawn.regions, size)


def _read_out(model, inputs, meta, size):
    """Per image of a batch: ids, grid maps, upsampled maps, and the shares that need no anatomy."""
    grid = attention.attention_maps(model, inputs)
    up = attention.upsample(grid, size)
    spread, centre = attention.spread(grid), attention.centroid(grid)
    ids = [i.decode() if isinstance(i, bytes) else str(i) for i in np.asarray(meta["id"]).reshape(-1)]
    rows = []
    for k, example_id in enumerate(ids):
        content = attention.content_mask(meta["source_hw"][k], size)
        rows.append({"id": example_id, "on_radiograph": float(up[k][content].sum()), "area_on_radiograph": content.mean(),
                     "spread": float(spread[k]), "centre_x": float(centre[k, 0]), "centre_y": float(centre[k, 1])})
    return ids, grid, up, rows


def evaluate_attention(model, config, handle, split, predictions, out_dir, *, to_model_io, title: str = "",
                       per_band: int = PER_BAND, log=print):
    """Writes the sheet and the regions table of one evaluation into out_dir; returns the metrics section
    ({values}, markdown), or None for a model without attention pooling (nothing written)."""
    from common import pipeline
    if not attention.has_attention(model):
        return None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = config.data.image_size
    with_mask = "mask" in handle.builder.info.features
    chosen = sheet_examples(predictions, per_band)
    wanted = {example_id for _, example_id in chosen}
    keys = ("id", "image", "boneage_months", "male") + (("mask",) if with_mask else ())
    ds = pipeline.make_dataset(handle, split, preprocess=_preprocess(config, with_mask),
                               to_model_io=_model_io(config, to_model_io), batch_size=config.train.batch_size,
                               training=False, limit=len(predictions), keys=keys)
    rows, shown = [], {}
    regions_ok = str(handle.name).startswith("phantoms")
    from_chain = not regions_ok and not with_mask  # a real radiograph folder: the iglovikov18 chain's mask and regions
    chain_config = chain_regions.iglovikov18_config() if from_chain else None
    for inputs, meta in ds.as_numpy_iterator():
        ids, grid, up, batch_rows = _read_out(model, inputs, meta, size)
        for k, (example_id, row) in enumerate(zip(ids, batch_rows)):
            if with_mask:
                hand = meta["mask"][k, ..., 0] > 127
                row["in_hand_mask"], row["area_in_hand_mask"] = float(up[k][hand].sum()), hand.mean()
            regions = None
            if from_chain:
                hand, regions = chain_regions.letterboxed_regions(
                    meta["image"][k, ..., 0], attention.content_mask(meta["source_hw"][k], size), chain_config)
                row.update(_chain_shares(up[k], hand, regions))
            if "in_hand_mask" in row:  # on the radiograph but off the hand: background, labels, film edges
                row["off_hand"] = row["on_radiograph"] - row["in_hand_mask"]
                row["area_off_hand"] = row["area_on_radiograph"] - row["area_in_hand_mask"]
            if regions_ok:
                labels = phantom_regions(example_id, meta["source_hw"][k], size)
                if labels is None or (with_mask and np.mean((labels > 0) == hand) < MASK_AGREEMENT):
                    log(f"Note: the phantom generator does not redraw {example_id} as stored (region map against "
                        "its mask): no attention mass per region for this evaluation.")
                    regions_ok = False
                else:
                    mass = attention.label_mass(up[k], labels, len(REGION_NAMES))
                    area = np.bincount(labels.reshape(-1), minlength=len(REGION_NAMES) + 1) / labels.size
                    for i, name in enumerate(REGION_NAMES):
                        row[f"region_{name}"], row[f"area_region_{name}"] = float(mass[i + 1]), float(area[i + 1])
            if example_id in wanted:
                shown[example_id] = (meta["image"][k, ..., 0], attention.smooth(grid[k:k + 1], size)[0], regions)
            rows.append(row)
    table = pd.DataFrame(rows)
    if not regions_ok:  # no phantom regions; the chain's (real folders) stay where any image had them
        table = table.drop(columns=[c for c in table.columns if c.startswith(("region_", "area_region_"))
                                    and (not from_chain or table[c].isna().all())])
    if from_chain and table["in_hand_mask"].isna().all():
        table = table.drop(columns=["in_hand_mask", "area_in_hand_mask", "off_hand", "area_off_hand"])
    truth = predictions.assign(id=predictions["id"].astype(str)).set_index("id")
    table = table.join(truth[["boneage_true", "boneage_pred", "male"]], on="id")
    table.insert(1, "age_band", age_band_labels(table["boneage_true"]))

    panels = []
    for band, example_id in chosen:
        if example_id in shown:
            t = truth.loc[example_id]
            sex = {1: "boy", 0: "girl"}.get(int(t["male"]), "?")
            image, shown_map, regions = shown[example_id]
            panels.append((f"{band} y", image, shown_map,
                           f"{band} y: {example_id}\n{sex}, true {t['boneage_true']:.0f}, predicted {t['boneage_pred']:.0f} mo",
                           regions))
    if panels:  # on real radiographs the chain's regions are outlined over the attention (chain_regions.py)
        overlays.write_sheet(out_dir / SHEET, panels, title=(
            f"{title}: attention (mean over heads) by reference age band" if title else
            "Attention (mean over heads) by reference age band"),
            outline_titles=OUTLINE_TITLES)
    io.atomic_to_csv(table, out_dir / REGIONS_CSV)
    values = summary(table)
    with_regions = int(table["region_carpal"].notna().sum()) if "region_carpal" in table else 0
    values.update(dataset=handle.name, split=split, regions_images=with_regions if from_chain else None,
                  regions_from=_regions_source(handle.name, regions_ok, with_mask, (with_regions, len(table))),
                  files={"sheet": SHEET if panels else None, "table": REGIONS_MD, "per_image": REGIONS_CSV})
    text = markdown(values, title)
    io.atomic_write_text(out_dir / REGIONS_MD, text)
    log(f"Attention: {len(table)} images -> {out_dir / SHEET}, {out_dir / REGIONS_MD}")
    return values, text


# --- the table ---------------------------------------------------------------------------------------

SHARES = ("on_radiograph", "in_hand_mask", "off_hand", *(f"region_{n}" for n in (*REGION_NAMES, *chain_regions.CHAIN_REGIONS)))


def _chain_shares(attention_map, hand, regions) -> dict:
    """The attention's share (and the area's) in the hand mask and each of chain_regions.CHAIN_REGIONS, as
    chain_regions.letterboxed_regions gives them for this letterboxed radiograph; NaN for all when the chain
    gave no key points (None, None)."""
    areas = {"in_hand_mask": hand, **{f"region_{n}": (regions or {}).get(n) for n in chain_regions.CHAIN_REGIONS}}
    out = {}
    for name, where in areas.items():
        out[name] = float(attention_map[where].sum()) if where is not None else np.nan
        out[f"area_{name}"] = float(where.mean()) if where is not None else np.nan
    return out


def summary(table: pd.DataFrame) -> dict:
    """Means by age band (and over all images) of the per-image shares (and of the areas they are in:
    `area_<share>`, what attention spread evenly over the image would give), spread and centre."""
    columns = [c for c in (*SHARES, "spread", "centre_x", "centre_y") if c in table]
    areas = [f"area_{c}" for c in SHARES if f"area_{c}" in table]

    def means(rows):
        return {"images": int(len(rows)), **{c: float(rows[c].mean()) for c in columns + areas}}
    by_band = {band: means(table[table["age_band"] == band]) for band in AGE_BAND_LABELS
               if (table["age_band"] == band).any()}
    return {"images": int(len(table)), "columns": columns, "by_age_band": by_band, "all": means(table)}


def _regions_source(dataset: str, regions_ok: bool, with_mask: bool, counted=(0, 0)) -> str:
    if regions_ok:
        return ("phantoms: the generator's own bones per region (common/phantoms.py REGION_NAMES), each other "
                "hand-mask pixel given to the nearest bone's region")
    if with_mask:
        return f"{dataset}: hand masks only (no bone regions)"
    return (f"{dataset}: the iglovikov18 chain (reproductions/attention_mtl/chain_regions.py): its bootstrap hand "
            "mask, the key points read off it and its registration's carpal and metacarpal boxes mapped back onto "
            "each radiograph, with the hand above and below them (fingers, forearm); "
            f"{counted[0]} of {counted[1]} images had key points (the others count in the "
            "shares that need no anatomy only)")


def markdown(values: dict, title: str = "") -> str:
    """The attention section: shares in % by age band; regions where the dataset has them."""
    columns = values["columns"]
    heads = {"on_radiograph": "on the radiograph", "in_hand_mask": "in the hand mask",
             "off_hand": "on the radiograph, off the hand", "spread": "spread",
             "centre_x": "centre x", "centre_y": "centre y",
             **{f"region_{n}": title for n, title in REGION_TITLES.items()}}
    lines = ["## Attention: where the pooling looks", ""]
    if title:
        lines += [f"{title}.", ""]
    lines += [f"Mean over the images of each reference-age band (years) of the share of the attention (mean over "
              f"heads, each image's summing to 100 %) in each area; regions from {values['regions_from']}.", ""]
    if not any(c.startswith("region_") for c in columns):
        lines += ["No mass per hand region: no image of this evaluation had bone regions to count it in; "
                  "the shares below need no anatomy.", ""]
    lines += ["| age band | images | " + " | ".join(heads[c] for c in columns) + " |",
              "|---|---|" + "---|" * len(columns)]

    def cell(c, m):
        if m[c] != m[c]:  # NaN: no image of this band had this area (the chain found no hand in any)
            return "—"
        if c in ("centre_x", "centre_y"):
            return f"{m[c]:.2f}"
        if c == "spread":
            return f"{100 * m[c]:.0f} %"
        return f"{100 * m[c]:.1f} % ({100 * m[f'area_{c}']:.1f} %)" if f"area_{c}" in m else f"{100 * m[c]:.1f} %"
    for band, m in [*values["by_age_band"].items(), ("all", values["all"])]:
        lines.append(f"| {band} | {m['images']} | " + " | ".join(cell(c, m) for c in columns) + " |")
    lines += ["", "In brackets: the area's share of the image, what attention spread evenly over it would give "
              "(more than that: the area draws the attention). On the radiograph: not on the letterbox padding. Spread: exp(entropy) of the grid map over the "
              "cell count (100 % = uniform, 1 / cells = one cell). Centre: the centre of mass as fractions of the "
              "image's width and height (0, 0 = top left). Grid cells are spread evenly over the image pixels "
              "they cover (reproductions/attention_mtl/attention.py).", ""]
    if {"region_carpal", "region_metacarpal"} & set(columns):  # the chain's (not the phantoms' region_carpals)
        lines += ["The hand mask and regions come from the iglovikov18 chain, so these shares are on the pixels its "
                  "carpal and metacarpal networks see (their errors: the region table in "
                  "reproductions/iglovikov18/README.md). The two boxes overlap (the carpal box's top holds the "
                  "metacarpal bases), so the shares do not sum; the fingers and the forearm are the hand above the "
                  "metacarpal box and below the carpal box (this kit's cut, chain_regions.py), the rest of the hand "
                  "the mask outside all four. "
                  "Means over the images the chain gave key points for; the shares that need no anatomy over all.",
                  ""]
    elif any(c.startswith("region_") for c in columns):
        lines += ["The regions tile the hand mask, so they sum to the hand-mask share; middle phalanges are "
                  "their own region (issue 19 names the other four).", ""]
    return "\n".join(lines)


# --- predict --explain -------------------------------------------------------------------------------

def _unique_names(files) -> list[str]:
    """`<stem>_attention.png` per file; a stem seen before gets -2, -3, ..."""
    seen, names = {}, []
    for f in files:
        stem = Path(f).stem
        seen[stem] = seen.get(stem, 0) + 1
        names.append(f"{stem}_attention.png" if seen[stem] == 1 else f"{stem}-{seen[stem]}_attention.png")
    return names


def write_explanations(model, config, records, out_dir, *, to_model_io, table: pd.DataFrame | None = None) -> list[Path]:
    """One overlay PNG per radiograph, `<out_dir>/<stem>_attention.png` (atomically).

    records: [(file, uint8 [H, W] pixels, male 0/1)], as common.train.predict reads them. table:
    predict's rows (file, boneage_months[, lower_90, upper_90]) for the titles. Refuses (ValueError)
    a model without attention pooling."""
    from common import pipeline
    if not attention.has_attention(model):
        raise ValueError(f"{model.name} has no attention pooling (model.pooling is not 'attention'): nothing to draw")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = config.data.image_size
    rows = {} if table is None else {str(r["file"]): r for _, r in table.iterrows()}
    ds = pipeline.from_arrays(records, preprocess=_preprocess(config, False), to_model_io=_model_io(config, to_model_io),
                              batch_size=config.train.batch_size)
    names, written, i = _unique_names([f for f, _, _ in records]), [], 0
    for inputs, meta in ds.as_numpy_iterator():
        grid = attention.attention_maps(model, inputs)
        shown = attention.smooth(grid, size)
        for k in range(len(grid)):
            file = records[i][0]
            row = rows.get(str(file))
            title = Path(file).name
            if row is not None and pd.notna(row.get("boneage_months")):
                title += f"\npredicted {float(row['boneage_months']):.0f} months"
                if pd.notna(row.get("lower_90", np.nan)) and pd.notna(row.get("upper_90", np.nan)):
                    title += f" (90 %: {float(row['lower_90']):.0f}-{float(row['upper_90']):.0f})"
            written.append(overlays.write_overlay(out_dir / names[i], meta["image"][k, ..., 0], shown[k], title))
            i += 1
    return written
