r"""Iglovikov et al. 2018: hand mask (U-Net) -> key points -> registration -> VGG-style age networks.

Paper: Iglovikov VI, Rakhlin A, Kalinin AA, Shvets AA. "Paediatric Bone Age Assessment Using Deep
Convolutional Neural Networks." DLMIA 2018 (LNCS 11045, pp. 300-308), arXiv:1712.05053,
doi:10.1007/978-3-030-00889-5_34.

The paper's Methods could not be read while this config was written (only its abstract and the
first lines of its introduction were reachable; see README.md). The architecture of the age
networks comes from issue #6's summary of the paper and, line by line, from public code of the
second author's group: neuro-inc/ml-recipe-bone-age (Neuromation's recipe "representing a core
approach described in" the paper; Rakhlin was at Neuromation), whose registered images are the
paper's 2080 x 1600 canvas. Every value below says which of these it comes from, or that it is
reconstructed.

Commands (from the repository root; the README has the whole chain):

    python -m reproductions.iglovikov18 train --stage segment --small --data phantoms/small
    python -m reproductions.iglovikov18 train --stage keypoints --small --data phantoms/small
    python -m reproductions.iglovikov18 train --stage regress --region hand --small --data phantoms/small
    python -m reproductions.iglovikov18 train --stage classify --region carpal --small --data phantoms/small
    python -m reproductions.iglovikov18 evaluate --stage ensemble --small --data phantoms/small
    python -m reproductions.iglovikov18 predict hand.png --sex F --segment-run DIR --keypoints-run DIR --age-runs DIR ...

Variants: "" (the paper setting), "small" (phantom smoke runs on a CPU), "thumbs" (the real 100-px
thumbnails within the project's CPU budget), "r512" (the 512-px radiographs of ../shared/data/rsna-512,
each network started from its thumbs run, under the budget rule for those runs: README, "512-px
radiographs (r512)"), "r512scratch" (r512 from random weights: the other arm of "what does the
thumbnail run buy at 512 px?"; train refuses --init-from for it); each stage adds its name ("small-segment", "thumbs-regress-carpal",
"r512-keypoints", "classify-hand"), which `--stage`/`--region` choose for you (variants.Variant
builds and parses these names).

The paper's numbers (MAE in months by region, head and sex, and the ensemble) are in
paper_numbers.json, unverified where the paper could not be read.
"""
from common.config import Config

from reproductions.iglovikov18 import variants
from reproductions.iglovikov18.variants import AGE_STAGES, ENSEMBLE, STAGES, Variant

BASES, REGIONS = variants.BASES, variants.REGIONS  # read from here too (the command line, tests)

KEYPOINT_NAMES = ("middle_finger_tip", "thumb_tip", "capitate_centre")  # common/phantoms.py order = the paper's three


def all_variants(stages=STAGES) -> tuple[str, ...]:
    """The variant strings of every network of `stages`, for Task.variants."""
    return tuple(v.name for v in Variant.all(stages))


def hand_config(base: str) -> Config:
    """The whole-hand regression network's config of a base variant: its canvas (data.image_size,
    registration) is every age network's of that base."""
    return get_config(Variant(base, "regress", "hand"))


def get_config(variant: str | Variant) -> Config:
    """The config of one network of the chain.

    Args:
        variant: str or Variant (variants.py). "[small-|thumbs-|r512-|r512scratch-]<stage>[-<region>]": stage one of
            segment, keypoints, regress, classify; region (regress/classify only) one of hand, carpal, metacarpal.
            "small" shrinks sizes and lengths for a CPU smoke run on phantoms; "thumbs" fits the
            real 100-px thumbnails and the project's CPU budget; "r512" is "thumbs" (the same
            networks, so that each starts from its thumbs run's weights) at the sizes the 512-px
            radiographs hold, with the budget rule's epochs and minutes; "r512scratch" is r512's age
            networks from random weights. Each changes only what it names.
    """
    variant = variant if isinstance(variant, Variant) else Variant.parse(variant)
    if variant.stage == ENSEMBLE:
        raise ValueError("The ensemble is the mean of the age networks, not a network: it has no config "
                         f"(`evaluate --stage ensemble`). Received: variant={variant.name!r}")
    base, stage, region = variant.base, variant.stage, variant.region
    base = variants.RANDOM_START.get(base, base)  # r512scratch: r512's networks, sizes and budget; its start below

    config = Config({
        "name": "iglovikov18",  # the reproduction's package name
        "stage": stage,  # the reproduction: which network of the chain this config trains
        "seed": 0,  # reconstructed: any fixed seed; the authors' seed is not published

        # --- registration: the fixed canvas every hand is mapped onto (stage 2, used by stage 3) ----
        "registration": {
            # Canvas of the registered hand, (height, width) in px at full scale.
            "canvas": [2080, 1600],  # taken from neuro-inc/ml-recipe-bone-age data/images/*.png@7c0b4aa0 (registered radiographs, 1600 x 2080) and code/dataset.py@5d35b32c (crop centre (1040, 800) of it); paper not read
            # Where the three key points land on that canvas, (x, y) px, in KEYPOINT_NAMES order.
            "keypoints": [[800.0, 130.0],  # reconstructed: middle finger tip, median of masks.keypoints_from_mask over the 46 registered images above (in ../shared/data/rsna-sample), rounded
                          [1520.0, 850.0],  # reconstructed: thumb tip, the same measurement
                          [800.0, 1560.0]],  # reconstructed: capitate centre, measured by eye on four of those images (ids 2104, 2503, 4360, 4405)
            # Where the registration takes its mask and key points from: "ground_truth" (phantoms' own),
            # "registered" (a folder written by `register`: images are canvases already), "auto" (by dataset).
            "source": "auto",  # kit choice: no effect on a given dataset
            "interpolation": "bilinear",  # reconstructed: the authors' warp interpolation is not published
            # `register` stores canvases at this multiple of the canvas scale, so that the age stages' one
            # warp (augmentation included) averages stored pixels in training and evaluation alike.
            "store_scale": 2,  # kit choice: see preprocessing.warp_canvas
        },

        # --- the three regions of the registered hand, [y0, x0, y1, x1] in canvas px at full scale ----
        "regions": {
            "hand": [40, 50, 2040, 1550],  # taken from neuro-inc/ml-recipe-bone-age bone-age-code/train.py@0d886c0b (crop_center (1040, 800), crop_size (2000, 1500))
            "carpal": [1320, 480, 1880, 1120],  # reconstructed: the carpal bones around the capitate on the registered images above (paper's box not read)
            "metacarpal": [440, 200, 1480, 1400],  # reconstructed: metacarpals and proximal phalanges of all five digits on the same images
        },
    })

    if stage in AGE_STAGES:
        config.update(_age_config(base, stage, region))
    elif stage == "segment":
        config.update(_segment_config(base))
    else:
        config.update(_keypoints_config(base))
    if variant.base in variants.RANDOM_START:
        config.train.init_from_forbidden = True  # r512scratch: the random-start arm of issue 17's "init vs scratch"; train refuses --init-from, so the name cannot mislabel a transferred start
    return config


def _age_config(base, stage, region) -> dict:
    """Stage 3: the VGG-style regression (L1) or classification network on one region."""
    classify = stage == "classify"
    config = Config({
        # --- data -------------------------------------------------------------------------------
        "data": {
            # The canvas is drawn at this height; 520 = 2080 x 0.25, so the hand region is 500 x 375.
            "image_size": 520,  # taken from neuro-inc/ml-recipe-bone-age bone-age-code/train.py@0d886c0b (scale 0.25 of the 2000 x 1500 crop: input 500 x 375)
            "normalization": "symmetric",  # taken from neuro-inc/ml-recipe-bone-age code/transforms.py@5d35b32c ToTensor ((x - 127.5) / 127.5)
            "cache": True,  # kit choice (no effect on results): registration is deterministic, keep its canvases in memory
        },

        # --- model ------------------------------------------------------------------------------
        "model": {
            "region": region,  # the reproduction: the paper trains one network per region (hand, carpal, metacarpal)
            "head": "classification" if classify else "regression",  # Iglovikov18 (issue #6): a regression network and its classification counterpart
            # Six blocks of 3x3 conv -> ELU -> BN -> 1x1 conv -> ELU -> BN -> max-pool.
            "filters": [32, 64, 128, 128, 256, 384],  # taken from neuro-inc/ml-recipe-bone-age code/model.py@5d35b32c (m46 blocks 1-6); issue #6 gives the same
            "pool_size": 3,  # taken from neuro-inc/ml-recipe-bone-age code/model.py@5d35b32c (MaxPool2d(kernel_size=(3, 3), stride=(2, 2)))
            "pool_padding": "valid",  # taken from the same line (no padding)
            "dense_units": 2048,  # taken from neuro-inc/ml-recipe-bone-age code/model.py@5d35b32c (fc1, fc2: 2048); issue #6 gives the same
            "dropout": 0.3,  # taken from neuro-inc/ml-recipe-bone-age code/model.py@5d35b32c (Dropout(p=0.3) before fc1 and fc2)
            "kernel_initializer": "he_normal_fan_out",  # taken from neuro-inc/ml-recipe-bone-age code/model.py@5d35b32c (kaiming_normal_, mode='fan_out', conv layers)
            # Regression output in months = offset + scale * unit: the recipe's target (y - 120) / 120.
            "age_offset": 120.0,  # taken from neuro-inc/ml-recipe-bone-age code/dataset.py@5d35b32c (label = (label - 120) / 120)
            "age_scale": 120.0,  # taken from the same line
            "num_classes": 240,  # reconstructed: one class per month 0-239 (the paper's class count not read)
            # "separate": one network per sex (two towers, the patient's sex picks the output); "input": sex
            # concatenated to the flattened features of one network.
            "sex_handling": "separate",  # reconstructed: the authors' group's data code filters by sex (neuro-inc/ml-recipe-bone-age code/dataset.py@5d35b32c split_dataset(gender='m'|'f'|'a')) and the paper reports results by sex; see README
        },

        # --- train ------------------------------------------------------------------------------
        "train": {
            "loss": "crossentropy" if classify else "l1",  # Iglovikov18 (issue #6): L1 loss for regression; cross-entropy for the classifier (reconstructed)
            "optimizer": {
                "name": "adam",  # taken from neuro-inc/ml-recipe-bone-age bone-age-code/train.py@0d886c0b (optim.Adam)
                "learning_rate": 2e-5,  # taken from the same file (lr = 2e-5)
                "beta_1": 0.5,  # taken from the same file (betas=(0.5, 0.999))
            },
            "schedule": {"name": "constant"},  # taken from the same file (no scheduler)
            "epochs": 50,  # taken from the same file (--n_epoch default 50)
            "batch_size": 8,  # taken from the same file (--batch_size default 8)
            # Random changes of the registered canvas, then the region crop (the recipe augments before cropping).
            "augmentation": {
                "shift": 0.05,  # taken from neuro-inc/ml-recipe-bone-age code/transforms.py@5d35b32c (ShiftScaleRotate shift_limit=0.05)
                "scale": 0.05,  # taken from the same line (scale_limit=0.05)
                "rotate_deg": 5.0,  # taken from the same line (rotate_limit=5)
                "gamma": [0.8, 1.2],  # taken from the same file (RandomGamma gamma_limit=(80, 120))
            },
        },

        # --- eval -------------------------------------------------------------------------------
        "eval": {
            "estimates": ["expected", "argmax"] if classify else ["regression"],  # reconstructed: the classifier is read as its expected month and its most probable month
            "primary_estimate": "expected" if classify else "regression",  # reconstructed: the expected value is the finer read-out
        },
    })
    if base in ("small", "thumbs", "r512"):
        # From random weights on a CPU: the recipe's 2e-5 is a fine-tuning rate (its commented-out 5e-5 too).
        # r512 keeps all of it: its networks are the thumbs ones, so that --init-from loads their weights.
        config.train.optimizer.learning_rate = 1e-3  # small: measured: 2e-5 barely moves a random VGG in 10 CPU epochs (README, deviations)
        config.train.optimizer.beta_1 = 0.9  # small: Adam's default with the higher rate
        config.train.schedule.name = "cosine"  # small: decay to 0 so a short run ends on settled weights (measured: the last epochs' val MAE swings by 10-20 months at a constant rate)
        config.model.pool_padding = "same"  # small: six 3/2 valid pools need >= 127 px; the small regions are 22-80 px
        config.model.filters = [16, 32, 64, 64, 128, 192]  # small: half the channels: a step costs ~4x less (README, "CPU cost")
        config.model.dense_units = 256  # small: 2048 x 2048 dense layers dominate a CPU step at these sizes
        config.data.image_size = 83  # small: canvas 83 x 64 (scale 0.04, about a thumbnail's own): hand 79 x 60, carpal 22 x 26, metacarpal 41 x 48
        config.train.batch_size = 32  # small: fits two shared CPU cores
    if base == "small":
        config.train.epochs = 5 if classify else 3  # small: calibrated on phantoms (2,000 train images; smoke_test.py): each network ends below half the mean predictor's error; the 240-way classifier needs more epochs
    if base == "thumbs":
        config.train.epochs = 14  # thumbs: the budget rule's 14 epochs; the chain then trains ~32 min of its 45 (measured at 8 epochs: U-Net + key points 6.8 min, the six age networks 14.4 min; README, "CPU cost")
    if base == "r512":
        # The 512-px radiographs (README, "512-px radiographs (r512)"): the thumbs network, started from its
        # thumbs run (--init-from: every conv and batch-norm layer loads; the first dense layer of each tower
        # is skipped, its input grows with the region), in mixed_bfloat16 (--precision: a flag, not a key).
        # pool_padding stays "same": the carpal region (108 px high) is below the 127 px that six valid
        # 3/2 pools need.
        config.train.epochs = 14  # r512: the budget rule's cap, as thumbs
        config.data.image_size = 400  # r512: canvas 400 x 308 (scale 0.19): hand 384 x 288, carpal 108 x 123, metacarpal 200 x 231. Measured (native_scale.py, on the 936 rsna-512 radiographs whose bootstrap mask gives key points): the canvas height at which registration keeps a hand's pixel size has median 395-404 px (10th-90th percentile 308-494), so 400 enlarges about half the hands, by at most ~1.3x for 9 in 10; the paper's 520 would enlarge 94-95% of them, 1.3x at the median (README)
        # The chain's 2 hours of training, shared out so that the caps add up to 120 min: U-Net 15 +
        # key points 15 + the whole-hand pair 2 x 30 (required) + the region networks as time allows
        # (carpal 2 x 6, metacarpal 2 x 9). Estimated 14-epoch times, at twice the benchmark's speed
        # (README, "512-px radiographs (r512)"): whole hand ~25 min, carpal 9-12, metacarpal ~15, so the
        # whole-hand networks should run their 14 epochs and the region networks stop on the clock.
        minutes = {"hand": 30, "carpal": 6, "metacarpal": 9}  # r512: each network's share of the chain's 120 min (above)
        config.train.max_minutes = minutes[region]  # r512: the budget rule's clock, enforced by train (at most 45 min per network)
    return config


def _segment_config(base) -> dict:
    """Stage 1: the U-Net that removes the background."""
    config = Config({
        "data": {
            "image_size": 256,  # reconstructed: the U-Net's input side (the radiograph letterboxed to a square); not read in the paper
            "cache": True,  # kit choice (no effect on results)
        },
        "segment": {
            # Real radiographs have no masks: a classical bootstrap makes them (README, "Masks on real radiographs").
            "bootstrap": {
                "blur_sigma": 0.01,  # reconstructed: Gaussian blur before thresholding, as a fraction of the image side
                "close_size": 0.03,  # reconstructed: morphological closing that bridges the fingers' joint gaps, fraction of the side
            },
            "pseudo_masks": "",  # the reproduction: a masks.npz written by `refine-masks` (the U-Net's own agreeing predictions) replaces the bootstrap
            "threshold": 0.5,  # reconstructed: probability above which a pixel is hand
            "largest_component": True,  # reconstructed: keep the largest connected piece (side markers and labels are separate)
            "init_from": "",  # the reproduction: a run directory whose weights start this run (phantoms first, then real images)
        },
        "model": {
            "depth": 4,  # taken from Ronneberger et al. 2015 (U-Net: four down- and four up-sampling steps); the paper's U-Net variant not read
            "base_filters": 32,  # reconstructed: half the original U-Net's 64, for a binary mask of a large object
        },
        "train": {
            # Iglovikov's own segmentation loss: binary cross-entropy minus log soft-Jaccard.
            "loss": "bce_jaccard",  # taken from Iglovikov et al. 2017, arXiv:1706.06169 (the first author's loss "BCE - log(Jaccard)"); paper not read
            "jaccard_weight": 1.0,  # taken from the same paper (weight 1 on -log J)
            "optimizer": {"name": "adam", "learning_rate": 1e-3},  # reconstructed: Adam at its usual rate
            "schedule": {"name": "constant"},  # reconstructed
            "epochs": 30,  # reconstructed
            "batch_size": 8,  # reconstructed
            "augmentation": {"shift": 0.05, "scale": 0.1, "rotate_deg": 10.0, "flip": False},  # reconstructed: pose jitter; no flips (left hands only)
        },
    })
    if base in ("small", "thumbs", "r512"):
        config.model.depth = 3  # small: three steps are enough for a 64-96 px input
        config.model.base_filters = 8  # small: a CPU smoke run
        config.train.batch_size = 16  # small: fits two shared CPU cores
    if base == "small":
        config.data.image_size = 64  # small: the U-Net sees the phantom at 64 px
        config.train.epochs = 4  # small: on phantoms (2,000 images): about the 12 epochs of phantoms/small that reached test Dice 0.984 (0.96 after 3)
    if base == "thumbs":
        config.data.image_size = 96  # thumbs: the 100-px thumbnails barely resized (96 = 12 x 2^3)
        config.train.epochs = 4  # thumbs: the U-Net's share of the chain's 45-minute CPU budget (README, "CPU cost")
    if base == "r512":
        # The thumbs U-Net (depth 3, 8 filters: --init-from loads every layer, it is fully convolutional) at
        # the paper setting's 256-px input, which the 512-px radiographs hold: each is shrunk 2x, none enlarged.
        config.train.epochs = 14  # r512: the budget rule's cap; estimated ~9 min for 14 epochs at twice the benchmark's time, +1 min of bootstrap masks (README, "512-px radiographs (r512)")
        config.train.max_minutes = 15  # r512: the U-Net's share of the chain's 2 hours (the caps of the eight networks add up to 120 min), enforced by train
    return config


def _keypoints_config(base) -> dict:
    """Stage 2: the network that finds the three key points on the masked hand."""
    config = Config({
        "data": {
            "image_size": 256,  # reconstructed: the key-point network's input side (masked hand letterboxed to a square)
            "normalization": "symmetric",  # reconstructed: as the age networks ((x - 127.5) / 127.5)
            "cache": True,  # kit choice (no effect on results)
        },
        "keypoints": {
            "names": list(KEYPOINT_NAMES),  # Iglovikov18 (issue #6): tip of the middle finger, tip of the thumb, centre of the capitate
            # Real radiographs have no key points: they are read off the bootstrap mask (README, "Key points on real radiographs").
            "heuristic": {
                "capitate_back": 0.17,  # reconstructed: capitate = palm centre - this x (finger tip - palm centre); median over the 46 registered real images (README)
                "thumb_sector_deg": [30.0, 120.0],  # reconstructed: thumb tip searched at these angles from the finger axis, towards image right (left hand, PA)
            },
            "init_from": "",  # the reproduction: a run directory whose weights start this run (phantoms first, then real images)
        },
        "model": {
            "filters": [32, 64, 128, 128, 256, 384],  # reconstructed: the age networks' VGG-style blocks (the paper's key-point network not read)
            "pool_size": 3,  # reconstructed: as the age networks
            "pool_padding": "valid",  # reconstructed: as the age networks
            "dense_units": 512,  # reconstructed: a smaller head for 6 outputs
            "dropout": 0.3,  # reconstructed: as the age networks
            "kernel_initializer": "he_normal_fan_out",  # reconstructed: as the age networks
        },
        "train": {
            "loss": "mse",  # reconstructed: squared error of the (x, y) / side coordinates
            "optimizer": {"name": "adam", "learning_rate": 1e-3},  # reconstructed: Adam at its usual rate
            "schedule": {"name": "constant"},  # reconstructed
            "epochs": 40,  # reconstructed
            "batch_size": 16,  # reconstructed
            "augmentation": {"shift": 0.05, "scale": 0.1, "rotate_deg": 10.0},  # reconstructed: pose jitter (key points move with it)
        },
    })
    if base in ("small", "thumbs"):
        config.data.image_size = 64  # small: the key points are found at 64 px (a pixel there is 1/64 of the film)
    if base in ("small", "thumbs", "r512"):
        config.model.pool_padding = "same"  # small: six valid 3/2 pools need >= 127 px
        config.model.filters = [16, 32, 64, 64, 128, 128]  # small: half the channels for a CPU smoke run
        config.model.dense_units = 128  # small: a CPU smoke run
        config.train.batch_size = 32  # small: fits two shared CPU cores
    if base == "small":
        config.train.epochs = 8  # small: on phantoms (2,000 images): more steps than the 20 epochs of phantoms/small that reached 1.23 px at 64 px (1.9 px after 5)
    if base == "thumbs":
        config.train.epochs = 8  # thumbs: the key-point network's share of the chain's 45-minute CPU budget (README, "CPU cost")
    if base == "r512":
        # The thumbs key-point network (--init-from loads every conv and batch-norm layer; the first dense
        # layer's input grows from 1 x 1 to 4 x 4 x 128) at the paper setting's 256-px input: half the
        # radiographs' long side, none enlarged; at the thumbs' 64 px a pixel is 8 source pixels.
        config.train.epochs = 14  # r512: the budget rule's cap; estimated ~13 min for 14 epochs at twice the benchmark's time, +1 min of bootstrap key points (README, "512-px radiographs (r512)")
        config.train.max_minutes = 15  # r512: the key-point network's share of the chain's 2 hours (the caps of the eight networks add up to 120 min), enforced by train
    return config
