"""The ablations the comparison reports: each pairs two runs that differ in one factor only.

Each entry names the question, the two (paper, variant) runs (A = the factor on / the paper's
choice, B = the alternative), and the command that makes a missing run. `python -m reproductions
compare` looks for both runs in the same experiment (same data fingerprint and split) and
reports the paired bootstrap of their MAE difference, or says which run is missing. An entry
marked `"across_data": True` pairs runs of two datasets that share ids (the 512-px radiographs
are also thumbnails): A in its experiment, B on its own test split, on the test images both hold.
"""
THUMBS = "--data folder:../shared/data/rsna-thumbs100"
R512 = "--data folder:../shared/data/rsna-512"  # 954 real radiographs at long side 512 (issue 17)
LITE0_WEIGHTS = "~/.boneage-repro/weights/efficientnet_lite0_imagenet.h5"  # python -m common.weights convert efficientnet-lite0
# rsna17_second's thumbnail run retrained into a fresh directory (weights are never committed; in the committed
# run directory train would skip both sexes, whose records say they are trained): the r512_fromthumbs start.
SECOND_THUMBS = "runs/rsna17_second-thumbs"
REGISTERED = "--data folder/rsna-thumbs100-registered-thumbs-83px"  # the thumbnails registered by the iglovikov18 chain
REGISTERED_R512 = "--data folder/rsna-512-registered-r512-400px"  # the radiographs registered by the iglovikov18 r512 chain

ABLATIONS = (
    {"question": "Does the sex input matter? (rsna17_winner)",
     "factor": "model.sex_input: on (A) vs off (B)",
     "a": ("rsna17_winner", "thumbs"), "b": ("rsna17_winner", "thumbs_nosex"),
     "commands": [f"python -m reproductions.rsna17_winner train {THUMBS} --variant thumbs",
                  f"python -m reproductions.rsna17_winner train {THUMBS} --variant thumbs_nosex --epochs 7"]},  # thumbs ran 7 on the 45-min clock
    {"question": "Does the sex input matter? (larson18)",
     "factor": "model.sex_handling: sex-specific output halves (A) vs one shared 240-class head, no sex input (B)",
     "a": ("larson18", "thumbs"), "b": ("larson18", "thumbs_nosex"),
     "commands": [f"python -m reproductions.larson18 train {THUMBS} --variant thumbs",
                  f"python -m reproductions.larson18 train {THUMBS} --variant thumbs_nosex"]},
    {"question": "Does the sex input matter? (larson18, 512-px radiographs)",
     "factor": "model.sex_handling: sex-specific output halves (A) vs one shared 240-class head, no sex input (B)",
     "a": ("larson18", "r512_newhead"), "b": ("larson18", "r512_nosex"),
     "caveat": ("both arms start from the same 6-epoch thumbnail run (--init-from), every layer but the head, "
                "which starts from random weights in both (B's does not fit the source's; A's is kept so)"),
     "commands": [f"python -m reproductions.larson18 train {R512} --variant {v} --precision mixed_bfloat16 "
                  "--init-from results/larson18/folder-rsna-thumbs100_thumbs_100px" for v in ("r512_newhead", "r512_nosex")]},
    {"question": "The sex input and the head's start together (larson18, 512-px radiographs)",
     "factor": "larson18 r512 (A: sex-specific output halves, every layer from the thumbnail run) vs r512_nosex (B: one "
               "shared head, no sex input, the head from random weights)",
     "a": ("larson18", "r512"), "b": ("larson18", "r512_nosex"),
     "caveat": ("two factors: B's head cannot take the thumbnail run's (its shape differs), so it starts afresh; "
                "r512_newhead vs r512_nosex, below, separates them"),
     "commands": [f"python -m reproductions.larson18 train {R512} --variant {v} --precision mixed_bfloat16 "
                  "--init-from results/larson18/folder-rsna-thumbs100_thumbs_100px" for v in ("r512", "r512_nosex")]},
    {"question": "What does the thumbnail run's head add? (larson18, 512-px radiographs)",
     "factor": "larson18 r512: every layer from the thumbnail run (A) vs all but the head, which starts afresh (B)",
     "a": ("larson18", "r512"), "b": ("larson18", "r512_newhead"),
     "commands": [f"python -m reproductions.larson18 train {R512} --variant {v} --precision mixed_bfloat16 "
                  "--init-from results/larson18/folder-rsna-thumbs100_thumbs_100px" for v in ("r512", "r512_newhead")]},
    {"question": "Regression or classification? (same backbone and input)",
     "factor": "iglovikov18 VGG-style network, whole hand: regression head (A) vs classification head (B)",
     "a": ("iglovikov18", "thumbs-regress-hand"), "b": ("iglovikov18", "thumbs-classify-hand"),
     "commands": ["the iglovikov18 chain on the thumbnails (reproductions/iglovikov18/README.md, Commands), then",
                  f"python -m reproductions.iglovikov18 train --stage regress --region hand --variant thumbs {REGISTERED}",
                  f"python -m reproductions.iglovikov18 train --stage classify --region hand --variant thumbs {REGISTERED}"]},
    {"question": "Which hand region carries the signal? (iglovikov18; the full region x head x sex table is in its README)",
     "factor": "iglovikov18 regression: whole hand (A) vs carpal bones only (B)",
     "a": ("iglovikov18", "thumbs-regress-hand"), "b": ("iglovikov18", "thumbs-regress-carpal"),
     "commands": [f"python -m reproductions.iglovikov18 train --stage regress --region carpal --variant thumbs {REGISTERED}"]},
    {"question": "Which hand region carries the signal? (iglovikov18)",
     "factor": "iglovikov18 regression: whole hand (A) vs metacarpals + proximal phalanges only (B)",
     "a": ("iglovikov18", "thumbs-regress-hand"), "b": ("iglovikov18", "thumbs-regress-metacarpal"),
     "commands": [f"python -m reproductions.iglovikov18 train --stage regress --region metacarpal --variant thumbs {REGISTERED}"]},
    {"question": "What does ImageNet transfer buy? (lite0_regressor, thumbnails)",
     "factor": "EfficientNet-Lite0 regressor: converted ImageNet weights (A) vs random initial weights (B), same budget",
     "a": ("lite0_regressor", "thumbs"), "b": ("lite0_regressor", "thumbs_scratch"),
     "commands": ["python -m common.weights convert efficientnet-lite0",
                  f"python -m reproductions.lite0_regressor train {THUMBS} --variant thumbs --weights {LITE0_WEIGHTS} "
                  "--precision float32",
                  f"python -m reproductions.lite0_regressor train {THUMBS} --variant thumbs_scratch --precision float32"]},
    {"question": "What does ImageNet transfer buy? (lite0_regressor, 512-px radiographs)",
     "factor": "EfficientNet-Lite0 regressor: converted ImageNet weights (A) vs random initial weights (B), same budget",
     "a": ("lite0_regressor", "r512"), "b": ("lite0_regressor", "r512_scratch"),
     "commands": ["python -m common.weights convert efficientnet-lite0",
                  f"python -m reproductions.lite0_regressor train {R512} --variant r512 --weights {LITE0_WEIGHTS} "
                  "--precision float32",  # Lite0 is 6.4x slower in mixed_bfloat16 on CPU (lite0_regressor/config.py)
                  f"python -m reproductions.lite0_regressor train {R512} --variant r512_scratch --precision float32"]},
    *(  # attention_mtl's one-factor arms (reproductions/attention_mtl/config.py ARMS), each against its base
        {"question": f"{question} (attention_mtl, {where})", "factor": f"attention_mtl: {factor}",
         "a": ("attention_mtl", base), "b": ("attention_mtl", f"{base}_{arm}"),
         **({"caveat": caveat} if caveat else {}),
         "commands": [f"python -m reproductions.attention_mtl train {data} --variant {base} --weights {LITE0_WEIGHTS}",
                      f"python -m reproductions.attention_mtl train {data} --variant {base}_{arm}"
                      + ("" if arm == "scratch" else f" --weights {LITE0_WEIGHTS}")]}
        for base, where, data in (("r512", "512-px radiographs", R512), ("thumbs", "thumbnails", THUMBS))
        for arm, question, factor, caveat in (
            ("gap", "Attention or average pooling?",
             "cross-attention from a query per sex (A) vs global average pooling (B), same budget", None),
            ("gru", "Attention or a recurrent pooling?",
             "cross-attention from a query per sex (A) vs a bidirectional GRU over the tokens (B), same budget", None),
            ("l1", "A predicted law or a point estimate?",
             "age head: a Laplace law (location, scale) trained with the CRPS (A) vs the location alone trained with "
             "the absolute error, plain L1 (B), same budget",
             "B's conformal intervals have one width for every image (it predicts no scale); the MAE pair compares "
             "the two point estimates"),
            ("nosex", "Does the sex input matter?",
             "model.sex_input: on, one attention query per sex (A) vs off, one query (B), same budget",
             "B still learns from the sex label, through its auxiliary sex-from-image head (model.aux.sex_weight = 1): "
             "the pair measures sex as an input"),
            ("scratch", "What does ImageNet transfer buy?",
             "converted ImageNet Lite0 weights (A) vs random initial weights (B), same budget", None),
            ("aux", "Do the auxiliary mask and key-point heads help?",
             "the age head alone (A) vs the hand-mask and key-point heads beside it, each at weight 0.1 (B), same budget",
             "radiographs carry no masks or key points: B learns the iglovikov18 chain's (its bootstrap mask and the key "
             "points read off it; model.aux.annotations), so the pair measures the two heads together, on those targets"),
        )),
    *(  # issue 19's "each auxiliary task off", one at a time: A has the task on, B is A with it off
        {"question": f"{question} (attention_mtl, 512-px radiographs)", "factor": f"attention_mtl r512: {factor}",
         "a": ("attention_mtl", a), "b": ("attention_mtl", b), "caveat": caveat,
         "commands": [f"python -m reproductions.attention_mtl train {R512} --variant {v} --weights {LITE0_WEIGHTS}"
                      for v in (a, b)]}
        for a, b, question, factor, caveat in (
            ("r512_aux", "r512_maskonly", "Does the key-point head help, beside the mask head?",
             "the mask and key-point heads (A) vs the mask head alone, key-point head off (B), same budget",
             "both heads learn the iglovikov18 chain's targets (its bootstrap mask and the key points read off it)"),
            ("r512_aux", "r512_keypointsonly", "Does the mask head help, beside the key-point head?",
             "the mask and key-point heads (A) vs the key-point head alone, mask head off (B), same budget",
             "both heads learn the iglovikov18 chain's targets (its bootstrap mask and the key points read off it)"),
            ("r512_nosex", "r512_nosexlabel", "Does the sex-from-image head help a run without the sex input?",
             "no sex input in either: the auxiliary sex-from-image head at weight 1 (A) vs off, the sex label unused (B), "
             "same budget",
             "the no-learning reference still uses each sex's mean; B alone among the runs never sees the sex label"),
            ("r512_penalty", "r512_aux", "Does the outside-mask penalty help?",
             "the mask and key-point heads with the penalty on the attention outside the hand mask, weight 1 (A) vs "
             "without it (B), same budget",
             "the mask is the iglovikov18 chain's bootstrap mask, which misses some finger tips; an image it finds no "
             "hand in is left out of the penalty"),
        )),
    {"question": "Whole image or 49 patches with fusion?",
     "factor": "rsna17_second: 49 patches + fusion (A) vs the same ResNet-50 on the whole hand crop (B)",
     "a": ("rsna17_second", "thumbs"), "b": ("rsna17_second", "thumbs_whole"),
     "caveat": ("the budget rule equalises training time, not updates: B takes ~570 optimizer steps per sex against "
                "~3,500 for A, and A sees 8 of 49 patch positions per radiograph and epoch "
                "(reproductions/rsna17_second/README.md, Ablation)"),
     "commands": [f"python -m reproductions.rsna17_second train {THUMBS} --variant thumbs --sex both",
                  f"python -m reproductions.rsna17_second train {THUMBS} --variant thumbs_whole --sex both"]},
    {"question": "What does starting from the thumbnail run add to ImageNet? (attention_mtl, 512-px radiographs)",
     "factor": "attention_mtl r512: initialised from its thumbs run (A, --init-from; that run started from ImageNet) "
               "vs from ImageNet alone (B), same budget",
     "a": ("attention_mtl", "r512_fromthumbs"), "b": ("attention_mtl", "r512"),
     "commands": [f"python -m reproductions.attention_mtl train {THUMBS} --variant thumbs --weights {LITE0_WEIGHTS}",
                  f"python -m reproductions.attention_mtl train {R512} --variant r512_fromthumbs --weights {LITE0_WEIGHTS} "
                  "--init-from results/attention_mtl/folder-rsna-thumbs100_thumbs_128px",
                  f"python -m reproductions.attention_mtl train {R512} --variant r512 --weights {LITE0_WEIGHTS}"]},
    {"question": "What does the thumbnail run buy at 512 px? (rsna17_winner)",
     "factor": "rsna17_winner on the 512-px radiographs at 299 px: initialised from its thumbnail run (A, --init-from; "
               "the first 1000-unit dense layer starts afresh in both) vs random weights (B)",
     "a": ("rsna17_winner", "r512"), "b": ("rsna17_winner", "r512_scratch"),
     "commands": [f"python -m reproductions.rsna17_winner train {THUMBS} --variant thumbs",
                  f"python -m reproductions.rsna17_winner train {R512} --variant r512 --precision mixed_bfloat16 "
                  "--init-from results/rsna17_winner/folder-rsna-thumbs100_thumbs_100px",
                  f"python -m reproductions.rsna17_winner train {R512} --variant r512_scratch --precision mixed_bfloat16"]},
    {"question": "What does the thumbnail run buy at 512 px? (rsna17_second)",
     "factor": "rsna17_second on the 512-px radiographs: each sex's network initialised from the same sex's network of "
               "its thumbnail run (A, --init-from) vs random weights (B)",
     "a": ("rsna17_second", "r512_fromthumbs"), "b": ("rsna17_second", "r512"),
     "commands": [f"python -m reproductions.rsna17_second train {THUMBS} --variant thumbs --out {SECOND_THUMBS}",
                  f"python -m reproductions.rsna17_second train {R512} --variant r512_fromthumbs --precision mixed_bfloat16 "
                  f"--init-from {SECOND_THUMBS}",
                  f"python -m reproductions.rsna17_second train {R512} --variant r512 --precision mixed_bfloat16"]},
    {"question": "What does the thumbnail run buy at 512 px? (larson18)",
     "factor": "larson18 on the 512-px radiographs: initialised from its thumbnail run (A, --init-from) vs random weights (B)",
     "a": ("larson18", "r512"), "b": ("larson18", "r512_scratch"),
     "commands": [f"python -m reproductions.larson18 train {THUMBS} --variant thumbs",
                  f"python -m reproductions.larson18 train {R512} --variant r512 --precision mixed_bfloat16 "
                  "--init-from results/larson18/folder-rsna-thumbs100_thumbs_100px",
                  f"python -m reproductions.larson18 train {R512} --variant r512_scratch --precision mixed_bfloat16"]},
) + tuple(
    {"question": f"What does the thumbnail run buy at 512 px? (iglovikov18, {what})",
     "factor": f"iglovikov18 {what} on the registered 512-px radiographs: initialised from its thumbnail run (A, "
               "--init-from; the first dense layer starts afresh) vs random weights (B, r512scratch), same radiographs, "
               "registration recipe and budget",
     "a": ("iglovikov18", f"r512-{stage}-hand"), "b": ("iglovikov18", f"r512scratch-{stage}-hand"),
     "caveat": ("the canvases differ: A's U-Net and key-point weights were lost before B ran, so B's canvases come from "
                "that chain retrained by the same commands, on the same radiographs; how the two chains compare, and "
                "the classifier A retrained on B's own canvases: results/iglovikov18/r512scratch-canvases/README.md"),
     "commands": ["the iglovikov18 chain on the thumbnails, then on the 512-px radiographs, each network from its "
                  "thumbnail run (reproductions/iglovikov18/README.md, \"512-px radiographs (r512)\"), then",
                  f"python -m reproductions.iglovikov18 train --stage {stage} --region hand --variant r512scratch "
                  f"{REGISTERED_R512} --precision mixed_bfloat16"]}
    for stage, what in (("classify", "whole-hand classifier"), ("regress", "whole-hand regressor"))
) + tuple(
    {"question": f"What does resolution buy? (iglovikov18, {what}: 512-px radiographs vs 100-px thumbnails)",
     "factor": f"iglovikov18 {what}: its r512 run (A) vs its thumbs run (B), on the rsna-512 test images",
     "across_data": True, "a": ("iglovikov18", f"r512-{network}"), "b": ("iglovikov18", f"thumbs-{network}"),
     "commands": ["the iglovikov18 chain on the thumbnails, then on the 512-px radiographs, each network from its "
                  "thumbnail run (reproductions/iglovikov18/README.md, \"512-px radiographs (r512)\")"]}
    for network, what in (("classify-hand", "whole-hand classifier"), ("ensemble", "ensemble of the age networks"))
) + tuple(
    {"question": f"What does resolution buy? ({paper}: 512-px radiographs vs 100-px thumbnails)",
     "factor": f"{paper}: its {a} run (A) vs its {b} run (B), on the rsna-512 test images",
     "across_data": True, "a": (paper, a), "b": (paper, b),
     "commands": [f"python -m reproductions.{paper} train {THUMBS} --variant {b}" + extra,
                  f"python -m reproductions.{paper} train {R512} --variant {a}" + extra + r512_extra]}
    for paper, a, b, extra, r512_extra in (
        ("larson18", "r512", "thumbs", "", " --precision mixed_bfloat16 --init-from results/larson18/folder-rsna-thumbs100_thumbs_100px"),
        ("rsna17_winner", "r512", "thumbs", "", " --precision mixed_bfloat16 --init-from results/rsna17_winner/folder-rsna-thumbs100_thumbs_100px"),
        ("rsna17_second", "r512", "thumbs", " --sex both", " --precision mixed_bfloat16"),
        ("lite0_regressor", "r512", "thumbs", f" --weights {LITE0_WEIGHTS}", " --precision float32"),
        ("attention_mtl", "r512_fromthumbs", "thumbs", f" --weights {LITE0_WEIGHTS}",
         " --init-from results/attention_mtl/folder-rsna-thumbs100_thumbs_128px"),
    )
) + (
    {"question": "What does resolution buy? (rsna17_second, started from its thumbnail run: 512-px radiographs vs "
                 "100-px thumbnails)",
     "factor": "rsna17_second: its r512_fromthumbs run (A) vs its thumbs run (B), on the rsna-512 test images",
     "across_data": True, "a": ("rsna17_second", "r512_fromthumbs"), "b": ("rsna17_second", "thumbs"),
     "caveat": (f"A started from a retrain of B's recipe ({SECOND_THUMBS}: the same config; its training records in "
                "results/rsna17_second/init-sources/), not from B's own weights, which are not kept"),
     "commands": [f"python -m reproductions.rsna17_second train {THUMBS} --variant thumbs --out {SECOND_THUMBS}",
                  f"python -m reproductions.rsna17_second train {R512} --variant r512_fromthumbs "
                  f"--precision mixed_bfloat16 --init-from {SECOND_THUMBS}"]},
)
