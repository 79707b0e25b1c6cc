r"""Larson et al. 2018: ResNet-50 bone age as sex-specific monthly classification.

Paper: Larson DB, Chen MC, Lungren MP, Halabi SS, Stence NV, Langlotz CP. "Performance of a
Deep-Learning Neural Network Model in Assessing Skeletal Maturity on Pediatric Hand Radiographs."
Radiology 2018;287(1):313-322. doi:10.1148/radiol.2017170236

Public code from the authors' group (inference only, no training script):
radinformatics/bone-age (Stanford; the checkpoint is served from the Langlotz lab's
`langlotzlab-models/bone-age` bucket). `boneage/resnet.py@46de7fd1` holds the network, the
2 x 240 output and the ten fixed test-time crops; `boneage/predict_image.py@16e14a40` holds the
three CLAHE channels and how the age is read off the probabilities; `boneage/utils.py@16176a34`
holds the 256 x 256 resize. The Methods section of the paper could not be read while this config
was written (see README.md, "Deviations and reconstructed values"), so every value below says
whether it comes from that code, from the paper's abstract, or is reconstructed.

Commands (run from the repository root):

    python -m reproductions.larson18 train --data phantoms --small        # CPU smoke run, minutes
    python -m reproductions.larson18 train --data folder:../shared/data/rsna-thumbs100 --variant thumbs
    python -m reproductions.larson18 train --data folder:../shared/data/rsna-thumbs100 --variant thumbs_nosex
    python -m reproductions.larson18 train --data folder:../shared/data/rsna-512 --variant r512 --precision mixed_bfloat16 --init-from results/larson18/folder-rsna-thumbs100_thumbs_100px
    python -m reproductions.larson18 train --data folder:../shared/data/rsna-512 --variant r512_nosex --precision mixed_bfloat16 --init-from results/larson18/folder-rsna-thumbs100_thumbs_100px
    python -m reproductions.larson18 train --data folder:../shared/data/rsna-512 --variant r512_newhead --precision mixed_bfloat16 --init-from results/larson18/folder-rsna-thumbs100_thumbs_100px
    python -m reproductions.larson18 evaluate --out DIR                   # ten-crop test-time eval
    python -m reproductions.larson18 predict FILE --sex M                 # argmax and expected age

Expected cost (estimate, not measured): the full config is ~20,000 steps of ResNet-50 at 224 px,
batch 32 (~640k images through forward and backward), about one hour on one H100 with mixed
precision if the 256-px CLAHE images are cached; the data pipeline (decode, resize, CLAHE) on
CPU is the likely bottleneck when they are not. The `small` variant runs on a laptop CPU in
minutes and proves only that the code runs.

The `r512` variant (954 real radiographs at long side 512, 763 of them in training; issue 17)
starts from the `thumbs` run's weights (`--init-from`; weights are never committed, so rerun
the `thumbs` command above first; `r512_scratch` is the same run from random weights). Its run
goes to results/larson18/folder-rsna-512_r512_256px: measured 13 of 14 epochs in the 45-minute
budget on 2 CPU cores, test MAE 15.60 months on 89 radiographs (README, "512-px radiographs").

The paper's number (abstract): against the mean of the clinical report and three additional
reviewers on a 200-examination test set, the model's mean absolute difference (MAD) was
0.50 years (~6.0 months), root mean square 0.63 years, mean difference 0 years. These could
not be re-read in the paper while this was written: paper_numbers.json marks them unverified
and says where they stand. Our test set (RSNA's 200 images) carries a six-reviewer reference.
"""
from common.config import Config

VARIANTS = ("", "scratch", "nosex", "small", "thumbs", "thumbs_nosex", "r512", "r512_scratch", "r512_nosex", "r512_newhead")


def get_config(variant: str = "") -> Config:
    """The Larson18 config.

    Variants (each changes only what it names):
        "scratch": no ImageNet weights can be had offline, so the net starts from random
            weights; SGD at the fine-tuning rate barely moves in a CPU budget, so Adam at 1e-3
            replaces it (a deviation, listed in the README).
        "small": "scratch" shrunk for a CPU smoke run on phantoms (72-px load, 64-px crops).
        "thumbs": "scratch" at the size of the real 100-px thumbnails (../shared/data/rsna-thumbs100).
        "nosex": the paper setting with one 240-class head shared by both sexes and no sex input
            (the sex-input ablation, issue #8).
        "thumbs_nosex": "thumbs" with that shared head.
        "r512": "scratch" on the 512-px radiographs (../shared/data/rsna-512), at the paper's own
            256-px load size and 224-px crops (nothing to shrink), under the budget rule for these
            runs (README.md, "Budget rule"): only the epochs change. It starts from the `thumbs`
            run (`--init-from`), a network trained with the scratch optimizer, not an ImageNet one.
        "r512_scratch": "r512" started from random weights (no `--init-from`): the other arm of
            "what does the thumbnail run buy at 512 px"; the config is the same, only the run's
            directory differs, and `train` refuses `--init-from` for it.
        "r512_nosex": "r512" with the shared head (the sex-input ablation on the 512-px
            radiographs, issue 17), started from the same thumbnail run: every layer but the head
            loads (the shared head's 2,048 x 240 kernel does not fit the 2,048 x 480 one).
        "r512_newhead": "r512" whose head starts from random weights too (train.init_keep_initial),
            as r512_nosex's must: the other arm of the sex pair, so the two differ in the sex
            handling alone.
    """
    if variant not in VARIANTS:
        raise ValueError(f"Unknown larson18 config variant; expected one of {VARIANTS}. "
                         f"Received: variant={variant!r}")

    config = Config({
        "name": "larson18",  # the reproduction's package name
        "seed": 0,  # reconstructed: any fixed seed; the authors' seed is not published

        # --- data -----------------------------------------------------------------------------
        "data": {
            # Load size: every radiograph becomes 256 x 256 before CLAHE and cropping.
            "image_size": 256,  # taken from radinformatics/bone-age boneage/cli.py@16176a34 (--width/--height default 256) and boneage/resnet.py@46de7fd1 (input placeholder (256,256,3)); paper not read
            # Authors warp the whole radiograph to the square (PIL `resize((256,256))`, aspect not kept).
            "resize_mode": "warp",  # taken from radinformatics/bone-age boneage/utils.py@16176a34 import_image ("warped_width/height"); "pad" (keep aspect) is available
            "resize_method": "bilinear",  # reconstructed: the demo used Pillow 3.2's default (nearest, Dockerfile@16176a34 pins Pillow==3.2.0), most likely by accident; antialiased bilinear avoids aliasing when shrinking ~2000-px films
            # Network input: 224 x 224 crops of the 256 x 256 image.
            "crop_size": 224,  # taken from radinformatics/bone-age boneage/resnet.py@46de7fd1 fixed_crops (target_height = target_width = 224)
            # Three contrast channels: CLAHE of the 256-px grey image at three clip limits, in this order.
            "clahe": [
                {"clip_limit": 1.0, "tile_grid": 8},  # channel 0 "low": taken from radinformatics/bone-age boneage/predict_image.py@16e14a40 clahe_augment
                {"clip_limit": 3.0, "tile_grid": 8},  # channel 1 "medium": same source
                {"clip_limit": 5.0, "tile_grid": 8},  # channel 2 "high": same source
            ],
            # Scaling: the authors subtract each crop's scalar mean from the 0-255 float crop.
            "normalization": "crop_mean",  # taken from radinformatics/bone-age boneage/resnet.py@46de7fd1 fixed_crops ("Per crop mean subtraction"); "caffe" (keras ResNet50 BGR-mean mode) is available
            # Keep the deterministic part (resize + CLAHE, uint8 256 x 256 x 3) in memory after the first epoch.
            "cache": True,  # kit choice (no effect on results): CLAHE costs more CPU than a training step feeds on
        },

        # --- model ----------------------------------------------------------------------------
        "model": {
            "backbone": "resnet50",  # taken from radinformatics/bone-age boneage/resnet.py@46de7fd1 (Resnet50, num_blocks [3,4,6,3], bottleneck); the paper's title/abstract call it a deep-learning CNN
            "pretrained": "imagenet",  # reconstructed: the authors' network code is ry/tensorflow-resnet, whose purpose is loading He et al.'s ImageNet Caffe weights; the deployed checkpoint does not say how it was initialised
            "num_classes_per_sex": 240,  # taken from radinformatics/bone-age boneage/resnet.py@46de7fd1 (NUM_AGES = 240; class k = k months)
            # "split_head" (the paper): the patient's sex picks its 240-unit half; "shared_head": one
            # 240-class head for both sexes and no sex input (the "nosex" ablation).
            "sex_handling": "split_head",  # taken from radinformatics/bone-age boneage/resnet.py@46de7fd1 (fc of NUM_AGES*2 units; female = first 240, male = last 240); see README for the softmax detail
        },

        # --- train ----------------------------------------------------------------------------
        # The authors' training script is not public and the paper's Methods were not read:
        # everything here except the weight decay is reconstructed.
        "train": {
            "loss": "categorical_crossentropy",  # reconstructed: cross-entropy on the integer-month class of the patient's sex half (the deployed head is a softmax classifier)
            "label_smoothing": 0.0,  # reconstructed: nothing in the code suggests smoothing
            # Optimizer and schedule in the shared form read by common.train.make_optimizer.
            "optimizer": {
                "name": "sgd",  # taken from ry/tensorflow-resnet resnet_train.py@446c2f42 (MomentumOptimizer), the template the authors' resnet.py derives from (paper silent as read)
                "momentum": 0.9,  # taken from ry/tensorflow-resnet resnet_train.py@446c2f42 (MOMENTUM = 0.9)
                "learning_rate": 0.01,  # reconstructed: ry's default 0.1 is for training from scratch; 0.01 is the usual SGD rate for fine-tuning ImageNet ResNet-50 at batch 32
                # The authors' L2 term 0.5*wd*sum(w^2) on conv and fc kernels has gradient wd*w: with SGD that
                # is decoupled weight decay wd (common.train excludes batch-norm parameters and biases, as they did).
                "weight_decay": 4e-5,  # taken from radinformatics/bone-age boneage/resnet.py@46de7fd1 (CONV_WEIGHT_DECAY = FC_WEIGHT_DECAY = 0.00004)
            },
            "schedule": {
                "name": "cosine",  # reconstructed: no schedule is published; cosine decay to 0 needs no extra constants
                "warmup_epochs": 1,  # reconstructed: short linear warm-up so the new 480-way head does not wreck the pretrained features
            },
            "epochs": 50,  # reconstructed: the deployed checkpoint is ckpt-19999 (20,000 steps, an Inception-style loop saving at max_steps-1); 20,000 x 32 / 12,611 images ~ 50 epochs
            "batch_size": 32,  # reconstructed: not published; 32 with 50 epochs matches the 20,000 steps above
            # Random ops on the 256-px CLAHE image. The flipped test-time crops imply flips in training.
            "augmentation": {
                "random_crop": True,  # reconstructed: a uniformly random 224 crop of the 256 image, the training counterpart of the authors' fixed corner/centre crops (resnet.py@46de7fd1)
                "horizontal_flip": True,  # reconstructed: p = 0.5; the authors average over horizontally flipped crops at test time (resnet.py@46de7fd1), so the network must have seen flips
            },
        },

        # --- eval -----------------------------------------------------------------------------
        "eval": {
            # Ten fixed crops: corners (ul, ur, ll, lr) and centre of the image, then the same five of
            # its left-right mirror; at 256/224 the offsets are 0, 32 and 16 (centre).
            "test_time_crops": "ten_crop",  # taken from radinformatics/bone-age boneage/resnet.py@46de7fd1 fixed_crops; "center" (one crop) is available
            "combine": "mean_probs",  # reconstructed: authors sum the ten 480-way softmaxes, keep the sex half and renormalise; with a per-sex softmax head the mean of the ten half-probabilities is the nearest equivalent (README)
            # Both read-outs are reported, as the authors' demo prints both.
            "estimates": ["expected", "argmax"],  # taken from radinformatics/bone-age boneage/predict_image.py@16e14a40 ("predicted_weight" = sum_k k*p_k, "predicted_age" = argmax)
            "primary_estimate": "expected",  # reconstructed: which read-out the paper's MAD used could not be checked; the expected value is the finer one
        },
    })

    if variant in ("scratch", "small", "thumbs", "thumbs_nosex", "r512", "r512_scratch", "r512_nosex", "r512_newhead"):
        # From random weights (no ImageNet file): Adam instead of SGD; weight decay kept.
        config.model.pretrained = "none"  # scratch: --weights none; the paper fine-tuned ImageNet weights
        config.train.optimizer = Config({  # scratch: replaces the SGD setting above (deviation 13 in README.md)
            "name": "adamw",  # scratch: reconstructed deviation; Adam moves a randomly initialised ResNet-50 within a CPU budget where SGD at 0.01 did not (measured: README)
            "learning_rate": 1e-3,  # scratch: Adam's usual rate
            "weight_decay": 4e-5,  # taken from radinformatics/bone-age boneage/resnet.py@46de7fd1, as in the paper setting (decoupled)
        })
    if variant in ("nosex", "thumbs_nosex", "r512_nosex"):
        config.model.sex_handling = "shared_head"  # nosex: the issue #8 ablation's one change: one 240-class head, no sex input; the image branch is untouched
    if variant == "small":
        # CPU smoke run: shrink only what must shrink; keep every method the same.
        config.data.image_size = 72  # small: 72-px load size so ResNet-50 runs on a laptop CPU
        config.data.crop_size = 64  # small: the crop keeps 64/72 = 89% of the side, close to 224/256 = 87.5%
        config.train.epochs = 10  # small: ~5 minutes on 2 CPU cores; validation MAE fell below half the mean predictor's by epoch 7 (README)
        config.train.batch_size = 16  # small: fits two shared CPU cores
        config.train.schedule.warmup_epochs = 0  # small: no room for warm-up in a few epochs
        for channel in config.data.clahe:
            # small: 2 x 2 tiles of 36 px, near the paper's 32-px tiles (256 / 8), so OpenCV's clip
            # counts (clip * tile area / 256) stay distinct: 5, 15, 25 vs the paper's 4, 12, 20.
            # Tiles of 9 px (72 / 8) would round all three to 1: three identical channels.
            channel["tile_grid"] = 2  # small: see the three lines above
    if variant in ("thumbs", "thumbs_nosex"):
        config.data.image_size = 100  # thumbs: the thumbnails' own size (no resampling up or down)
        config.data.crop_size = 88  # thumbs: 88/100 = 88%, close to the paper's 224/256 = 87.5%
        config.train.epochs = 14  # thumbs: about an hour on 2 CPU cores (measured: README)
        config.train.max_minutes = 45  # thumbs: the thumbnail budget rule (14 epochs or 45 min of 2-core CPU, whichever comes first), enforced by train
        config.train.schedule.warmup_epochs = 0  # thumbs: from scratch there is no pretrained head to protect
        for channel in config.data.clahe:
            channel["tile_grid"] = 3  # thumbs: 34-px tiles (OpenCV pads 100 to 102), near the paper's 32 px; clip counts stay distinct (4, 13, 22)
    if variant in ("r512", "r512_scratch", "r512_nosex", "r512_newhead"):
        # The radiographs are larger than the paper's 256-px load size, so sizes, crops and CLAHE tiles
        # stay the paper's; the 1-epoch warm-up stays too (the head is loaded from the thumbs run, so
        # there is a trained head to protect). Budget rule for these runs: 14 epochs or 45 min of
        # training on 2 CPU cores, whichever comes first, mixed_bfloat16.
        config.train.max_minutes = 45  # r512: the budget rule (issue 17): at most 45 min of training, enforced by train
        config.train.bn_recompute_batches = 8  # r512: measured deviation (README deviation 16): 23 steps per epoch leave keras' 0.99 moving averages near the thumbs run's 100-px statistics (validation MAE 51, 49, 61 months and loss up to 1,102 against training MAE 26, 22, 20 in the first 3 epochs), so the statistics are recomputed from 8 training batches (256 radiographs) before each validation
        config.train.epochs = 14  # r512: the budget rule's 14-epoch cap binds: 763 train images / 14.9 img/s (results/benchmarks/train_step_cpu.md: larson18, 224 px, mixed_bfloat16, train steps only, batch 16 against the run's 32) = 51 s per epoch, +15% for the pipeline and validation = 59 s -> 14 epochs ~ 14 min, far inside 45 min
    if variant == "r512_newhead":
        config.train.init_keep_initial = ["age_logits"]  # r512_newhead: measured need: r512_nosex (fresh head, its shape differs) tested 23.97 against r512's 15.60 with the thumbs head; starting both heads afresh leaves the sex handling as the pair's one difference
    return config
