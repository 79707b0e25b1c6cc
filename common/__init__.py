"""Shared machinery of boneage-repro: data, the one input pipeline, training, evaluation."""
