"""The ablations the comparison reports: each pairs two runs that differ in one factor only.

Each entry names the question, the two (paper, variant) runs (A = the factor on / the paper's
choice, B = the alternative), and the command that makes a missing run. `python -m reproductions
compare` looks for both runs in the same experiment (same data fingerprint and split) and
reports the paired bootstrap of their MAE difference, or says which run is missing.
"""
THUMBS = "--data folder:../shared/data/rsna-thumbs100"

ABLATIONS = (
    {"question": "Does the sex input matter? (rsna17_winner)",
     "factor": "model.sex_input: on (A) vs off (B)",
     "a": ("rsna17_winner", "thumbs"), "b": ("rsna17_winner", "thumbs_nosex"),
     "commands": [f"python -m reproductions.rsna17_winner train {THUMBS} --variant thumbs",
                  f"python -m reproductions.rsna17_winner train {THUMBS} --variant thumbs_nosex"]},
    {"question": "Does the sex input matter? (larson18)",
     "factor": "model.sex_handling: sex-specific output halves (A) vs one shared 240-class head, no sex input (B)",
     "a": ("larson18", "thumbs"), "b": ("larson18", "thumbs_nosex"),
     "commands": [f"python -m reproductions.larson18 train {THUMBS} --variant thumbs",
                  f"python -m reproductions.larson18 train {THUMBS} --variant thumbs_nosex"]},
    {"question": "Regression or classification? (same backbone and input)",
     "factor": "iglovikov18 VGG-style network, whole hand: regression head (A) vs classification head (B)",
     "a": ("iglovikov18", "thumbs_regression_hand"), "b": ("iglovikov18", "thumbs_classification_hand"),
     "commands": [f"python -m reproductions.iglovikov18 train --stage regress {THUMBS} --variant thumbs"]},
    {"question": "Whole image or 49 patches with fusion?",
     "factor": "rsna17_second: 49 patches + fusion (A) vs the same ResNet-50 on the whole hand crop (B)",
     "a": ("rsna17_second", "thumbs"), "b": ("rsna17_second", "thumbs_whole"),
     "commands": [f"python -m reproductions.rsna17_second train {THUMBS} --variant thumbs --sex both",
                  f"python -m reproductions.rsna17_second train {THUMBS} --variant thumbs_whole --sex both"]},
)
