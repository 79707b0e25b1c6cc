r"""RSNA 2017 second place: hand crop + CLAHE, 49 overlapping patches, one ResNet-50 per sex, fusion.

Entry: the second-best result of the RSNA Pediatric Bone Age Machine Learning Challenge 2017,
reported in Halabi SS, Prevedello LM, Kalpathy-Cramer J, et al. "The RSNA Pediatric Bone Age
Machine Learning Challenge." Radiology 2019;290(2):498-503. doi:10.1148/radiol.2018180736

Method (the "seed description" of issue #7, from the challenge report; the report's body
and the entry's own write-up could not be read in this session, and the entry's code is not
public): the radiograph is cropped to the hand, resized and contrast-enhanced with CLAHE; 49
overlapping patches are taken on a regular grid over it and each patch is a training example
for a ResNet-50; girls and boys have separate models; the patch predictions are fused into
one bone age. Every size, threshold and training setting below is therefore reconstructed
(README.md, "Deviations and reconstructed values").

Commands (run from the repository root):

    python -m reproductions.rsna17_second train --small --data phantoms/small      # CPU smoke run, minutes
    python -m reproductions.rsna17_second train --variant thumbs --data folder:../shared/data/rsna-thumbs100
    python -m reproductions.rsna17_second train --data folder:../shared/data/rsna-thumbs100 --variant thumbs_whole --sex both
    T=runs/rsna17_second-thumbs     # weights are never committed: retrain the thumbs run into a fresh directory first
    python -m reproductions.rsna17_second train --variant thumbs --data folder:../shared/data/rsna-thumbs100 --out $T
    python -m reproductions.rsna17_second train --data folder:../shared/data/rsna-512 --variant r512_fromthumbs --precision mixed_bfloat16 --init-from $T
    python -m reproductions.rsna17_second train --data folder:../shared/data/rsna-512 --variant r512 --precision mixed_bfloat16   # from random weights
    python -m reproductions.rsna17_second train --sex female ...    # one sex only (default: both)
    python -m reproductions.rsna17_second evaluate --out RUN_DIR    # mean / median / learned fusion
    python -m reproductions.rsna17_second predict FILE --sex F --out RUN_DIR
    python -m reproductions.rsna17_second.figure                   # the patch-grid figure of the README

Expected cost (estimate, not measured): the paper setting trains each sex's ResNet-50 on
~6,300 radiographs x 49 patches of 128 px = ~310,000 patches per epoch; at the ~3,000
patches/s that ResNet-50 reaches at 128 px on one H100 in mixed precision, about 100 s per
epoch and sex, ~1 h for both sexes' 20 epochs. The `thumbs` variant fits the project's CPU
budget: ~41 minutes of training on 2 cores for both sexes (~218 patches/s; README.md,
"Thumbnail run: cost"). The `small` smoke run takes ~2.5 minutes per sex on 2 idle cores.

Ablation "whole image vs 49 patches + fusion" (issue #8): the `whole` and `thumbs_whole`
variants keep the same pipeline (hand crop, square pad, resize, CLAHE), the same ResNet-50 per
sex and the same training recipe, but the network sees the whole preprocessed hand crop as one
"patch" (a 1 x 1 grid, patch = image, one row per radiograph; every fusion is then the
identity). `whole` (paper setting, 512 px) trains ~6,300 x 512^2 px per sex and epoch, about a
third of the 49-patch run's 310,000 x 128^2 px: an estimated ~20 minutes on one H100 for both
sexes' 20 epochs (scaled from the estimate above, not measured). `thumbs_whole` fits the CPU
budget with 4 epochs (~38 minutes; the arithmetic is at its `train.epochs`).

The `r512` variant (954 real radiographs at long side 512: 763 in training, 369 girls and 394
boys; issue 17) is the paper's geometry (hand crop + CLAHE at 512 px, the 7 x 7 grid of 128-px
patches) with a fresh random 14 of the 49 positions per radiograph and epoch, 14 epochs, from
random weights. `r512_fromthumbs` is the same run with each sex's network started from the same
sex's network of the `thumbs` run, as the budget rule asks (`--init-from $T` takes $T/female for
the girls' network and $T/male for the boys'; all layers match: the pooled ResNet-50 does not
depend on the patch size). Weights are never committed, so the `thumbs` run is retrained first,
into a fresh directory (in the committed one `train` skips both sexes, whose records say they are
trained). The runs go to results/rsna17_second/folder-rsna-512_r512{,_fromthumbs}_512px. Estimated from the measured train
step (results/benchmarks/train_step_cpu.md, 128 px, mixed_bfloat16, 41.9 patches/s): ~41
minutes of training for the boys' network and ~37 for the girls' (the budget rule for these
runs counts 45 minutes per network; the arithmetic is at its `train.patches_per_image`), ~78
minutes for `--sex both` (measured: README.md, "512-px radiographs").

The paper's number (challenge report, abstract): the five best mean absolute distances on the
200-image test set were 4.2, 4.4, 4.4, 4.5 and 4.5 months; the second place's is 4.4 months.
"""
from common.config import Config

VARIANTS = ("", "small", "thumbs", "whole", "thumbs_whole", "r512", "r512_fromthumbs")
SEXES = ("female", "male")


def get_config(variant: str = "") -> Config:
    """The rsna17_second config.

    Variants (each changes only what it names):
        "thumbs": the real 100-px thumbnails (../shared/data/rsna-thumbs100) within the CPU
            budget: 128-px hand crops, 32-px patches, a random 8 of the 49 patch positions per
            radiograph and epoch, batch-norm momentum 0.9, 7 epochs.
        "small": "thumbs" shrunk for a CPU smoke run on the 128-px phantoms (phantoms/small):
            68-px crops (32-px patches, stride 6), 16 positions per radiograph and epoch, batch 32,
            4 epochs.
        "whole": the paper setting with the whole 512-px hand crop as the one "patch" (1 x 1
            grid, patch_size = image_size, one row per radiograph): the whole-image arm of the
            ablation "whole image vs 49 patches + fusion" (issue #8).
        "thumbs_whole": "thumbs" with the whole 128-px hand crop as the one patch, and 9 epochs
            (the CPU budget at the measured ~4.4 minutes per epoch for both sexes on 2 cores).
        "r512": the paper setting on the 512-px radiographs (../shared/data/rsna-512) under the
            budget rule for these runs (README.md, "Budget rule"): the paper's crop, CLAHE and
            49 128-px patch positions, a random 14 of them per radiograph and epoch, batch-norm
            momentum 0.9, 14 epochs, from random weights (train refuses --init-from for it).
        "r512_fromthumbs": "r512" started from the "thumbs" run's networks, as the budget rule
            asks (train --init-from, which it refuses to run without): the other arm of
            "what does the thumbnail run buy at 512 px?".
    """
    if variant not in VARIANTS:
        raise ValueError(f"Unknown rsna17_second config variant; expected one of {VARIANTS}. "
                         f"Received: variant={variant!r}")

    config = Config({
        "name": "rsna17_second",  # the reproduction's package name
        "seed": 0,  # reconstructed: any fixed seed; the entry's is not published

        # --- data -----------------------------------------------------------------------------
        "data": {
            # The hand crop, made square (zero-padded) and resized to image_size x image_size.
            "image_size": 512,  # reconstructed (seed description: "resized", size not given): 512 = 6 x 64 + 128 puts the 7 x 7 grid of 128-px patches at stride 64 exactly on the image
            "hand_crop": {
                "method": "threshold_largest_component",  # reconstructed (seed description: "cropped to the hand", method not given): automatic threshold + largest connected component (preprocessing.hand_box)
                "thresholds": ["triangle", "otsu"],  # reconstructed: triangle first (keeps the soft-tissue silhouette; Otsu often splits bone from tissue on the thumbnails, checked by eye on 16), Otsu when the triangle finds nothing plausible
                "work_size": 256,  # kit choice: the box is searched on a copy resized to 256 px (long side; thumbnails are enlarged), so the pixel constants below mean the same at every film size
                "blur": 5,  # reconstructed: 5-px Gaussian before thresholding (at 256 px) smooths noise and film grain
                "open_kernel": 5,  # reconstructed: 5-px opening cuts thin bridges between the hand and rulers or markers
                "field_fill": 0.85,  # reconstructed: a component filling > 85% of its box is the collimation field, not a hand; search again inside it (measured on rsna-sample: hands fill 0.35-0.66)
                "margin": 0.05,  # reconstructed: 5% of the box's long side added on each side, so finger tips and the wrist are not cut
                "min_area": 0.05,  # reconstructed: a largest component under 5% of the film is no hand: use the whole film (with a warning)
                "max_area": 0.95,  # reconstructed: one over 95% is the background (e.g. an inverted film): use the whole film (with a warning)
            },
            # OpenCV CLAHE of the resized crop; one grey channel (the model repeats it to three).
            "clahe": {
                "clip_limit": 2.0,  # reconstructed (seed description: CLAHE, parameters not given): OpenCV's own CLAHE tutorial value (docs.opencv.org, "Histograms - 2: Histogram Equalization")
                "tile_grid": 8,  # reconstructed: OpenCV's default 8 x 8 tiles; at 512 px a tile is 64 px, half a patch
            },
            "patch_grid": 7,  # seed description: 49 patches = a regular 7 x 7 grid
            "patch_size": 128,  # reconstructed (seed description: "overlapping", size not given): a quarter of the side; neighbours overlap by half (stride 64)
            # Keep the deterministic part (crop + resize + CLAHE, uint8 S x S) in memory: 49 patches, one decode.
            "cache": True,  # kit choice (no effect on results)
        },

        # --- model ----------------------------------------------------------------------------
        "model": {
            "backbone": "resnet50",  # seed description: ResNet-50 (keras.applications.ResNet50, include_top=False)
            "pretrained": "none",  # reconstructed: not published; random weights here, --weights PATH loads ImageNet into the backbone
            "pooling": "avg",  # reconstructed: global average pooling, keras ResNet50's own
            "bn_momentum": 0.99,  # kit choice: keras BatchNormalization's default (the entry's framework and setting are not published)
            "head": "linear_regression",  # reconstructed: one linear unit, bone age as a regression target (the seed description gives no head)
            # Which of the two sex-specific models this run trains and evaluates: "both" = one sub-run each.
            "sex": "both",  # seed description: separate models for girls and boys
            # The head predicts z; months = z * std + mean of the training labels of the model's sex.
            "target_norm": {
                "female": {"mean": 117.88, "std": 37.91},  # kit choice: computed from the RSNA training labels (boneage-training-dataset.csv, 5,778 girls)
                "male": {"mean": 135.30, "std": 42.14},  # kit choice: computed from the RSNA training labels (boneage-training-dataset.csv, 6,833 boys)
            },
        },

        # --- train ----------------------------------------------------------------------------
        # Nothing of the entry's training is published: everything here is reconstructed.
        "train": {
            "loss": "mae",  # reconstructed: mean absolute error in months, the challenge's own measure (MAD)
            "optimizer": {
                "name": "adam",  # reconstructed: Adam moves a ResNet-50 from random weights (larson18 README, deviation 13)
                "learning_rate": 1e-3,  # reconstructed: Adam's usual rate
            },
            "schedule": {
                "name": "cosine",  # reconstructed: cosine decay to 0 needs no extra constants
                "warmup_epochs": 0,  # reconstructed: from random weights there is no pretrained head to protect
            },
            "epochs": 20,  # reconstructed: ~20 passes over ~310,000 patches per sex
            "batch_size": 64,  # reconstructed: 64 patches (at evaluation, 64 radiographs of 49 patches)
            "patches_per_image": 49,  # seed description: each of the 49 patches is a training example (all of them every epoch)
        },

        # --- eval -----------------------------------------------------------------------------
        "eval": {
            # Decision fusion of a radiograph's 49 patch predictions (fusion.py); all are reported.
            "fusions": ["mean", "median", "learned"],  # reconstructed (seed description: "fused", rule not given): the plain ones and one fitted on the validation split
            "primary_fusion": "mean",  # reconstructed: chosen before any result was seen; the simplest rule
            "patch_batch": 512,  # kit choice: patches per model call at evaluation (memory only)
        },
    })

    if variant in ("thumbs", "small", "thumbs_whole"):
        # The 100-px thumbnails under the CPU budget (14 epochs or 45 minutes, whichever is fewer).
        config.data.image_size = 128  # thumbs: the paper geometry (patch = side / 4, stride = side / 8) at ResNet-50's 32-px minimum input; the ~80-px hand crop of a thumbnail is upsampled ~1.6x (no new detail)
        config.data.patch_size = 32  # thumbs: ResNet-50's smallest input (keras.applications min_size 32); stride 16
        config.train.patches_per_image = 8  # thumbs: a fresh random 8 of the 49 positions per radiograph and epoch, so that several epochs fit 45 minutes (measured: README)
        config.train.epochs = 7  # thumbs: 2 sexes x 7 epochs x (8,048 x 8 patches + 1,018 x 49 validation patches) ~ 41 minutes on 2 cores (measured: README)
        config.model.bn_momentum = 0.9  # thumbs: the whole-image arm has ~60 steps per sex and epoch; keras' 0.99 left its moving statistics behind the weights (validation MAE 30-78 at training MAE 16-20, measured: README, "Ablation"), as it did in the `small` smoke run (validation MAE 37 vs 26 at step 250, deviation 12); both arms use 0.9 so that the ablation changes only the view
    if variant == "small":
        # A CPU smoke run on the 128-px phantoms (phantoms/small) that must visibly learn in ~2 minutes.
        config.data.image_size = 68  # small: each 32-px patch covers ~half the hand's side (stride 6), not a quarter: quarter-side patches of a phantom did not learn within a smoke run's ~600 steps (measured: README, deviation 12)
        config.train.patches_per_image = 16  # small: 16 of the 49 positions per radiograph and epoch: more steps per validation pass
        config.train.batch_size = 32  # small: twice the steps of batch 64 in the same time on 2 cores
        config.train.epochs = 4  # small: 548 steps; calibrated on phantoms/small (smoke_test.py)
    if variant in ("whole", "thumbs_whole"):
        # Ablation (issue #8): the same pipeline, network and recipe on the whole hand crop as one "patch".
        config.data.patch_grid = 1  # whole: issue #8 ablation, a 1 x 1 grid: one "patch" per radiograph instead of 49
        config.data.patch_size = config.data.image_size  # whole: issue #8 ablation, the one patch is the whole preprocessed hand crop (the ResNet-50's input is image_size px)
        config.train.patches_per_image = 1  # whole: issue #8 ablation, one training row per radiograph (its whole image) every epoch
    if variant == "thumbs_whole":
        # Measured: the first thumbs_whole run (4 epochs, both sexes, alone on 2 cores) took 1,131 s including
        # model builds and evaluation, ~4.4 min per epoch for both sexes (README, "Ablation").
        config.train.epochs = 9  # thumbs_whole: the CPU budget (14 epochs or 45 min on 2 cores, whichever fewer): 9 x ~4.4 min + ~2 min start-up = ~42 min (measured speed: README)
    if variant in ("r512", "r512_fromthumbs"):
        # The radiographs (long side 512) hold the paper's 512-px crop, 128-px patches and 7 x 7 grid, so
        # the geometry, crop and CLAHE stay the paper's. Budget rule for these runs: 14 epochs or 45 min of
        # training per network (here: per sex) on 2 CPU cores, whichever comes first, mixed_bfloat16.
        # All 49 patches would take 394 boys x 49 / 41.9 patches/s = 461 s of train steps per epoch:
        # with the allowances below, 552 s per epoch: 4 epochs in 45 min. A fresh random subset of the 49
        # positions per radiograph and epoch, as `thumbs` does, fits the 14 epochs instead.
        # Estimates below: train steps at 41.9 patches/s (results/benchmarks/train_step_cpu.md:
        # rsna17_second, 128 px, mixed_bfloat16, train steps only, batch 16 against the run's 64), +15% for the pipeline;
        # validation (all 49 patches of 57 boys / 45 girls) at ~3x that rate, forward pass only (not measured).
        config.train.patches_per_image = 14  # r512: boys (the larger model's data): 394 x 14 = 5,516 patches / 41.9 = 132 s, +15% = 151 s, + validation 2,793 patches / 126 per s = 22 s -> 174 s per epoch, x 14 = 40.5 min (girls: 369 x 14 -> 37.2 min); 15 would take 43.0, 16 45.6 min: 14 keeps ~10% spare for the unmeasured validation rate
        config.train.max_minutes = 45  # r512: the budget rule (issue 17): at most 45 min per network, enforced by train
        config.train.epochs = 14  # r512: the budget rule's 14-epoch cap, reached within 45 min per network at 14 patches per radiograph (arithmetic on the line above)
        config.model.bn_momentum = 0.9  # r512: ~86 steps of 64 patches per sex and epoch (394 x 14 / 64), the regime where keras' 0.99 left the moving statistics behind the weights (thumbs_whole, small: README, "Ablation", deviation 12); and the thumbs run it starts from used 0.9
    if variant == "r512":
        config.train.init_from_forbidden = True  # r512: its committed run started from random weights (README, "512-px radiographs"); train refuses --init-from so that no transferred start is recorded under its name (r512_fromthumbs is that arm)
    if variant == "r512_fromthumbs":
        config.train.init_from_required = True  # fromthumbs: the budget rule for these runs (issue 17: "initialised from that network's thumbnail run"); train refuses it without --init-from, so the name cannot mislabel a random start
    return config
