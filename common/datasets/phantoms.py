"""`phantoms`: synthetic left-hand radiographs from `common.phantoms`, with masks and key points."""
import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from common import phantoms
from common.datasets.base import BoneAgeBuilder, Fingerprint, base_features, parallel_map
from common.images import encode_png


@dataclasses.dataclass(eq=False)
class PhantomsConfig(tfds.core.BuilderConfig):
    size: int = 256
    n_train: int = 2000
    n_validation: int = 400
    n_test: int = 400
    seed: int = 0
    skip_bad: bool = False  # nothing to skip; kept so every config answers the same questions
    max_side: int = 0


def _render(args):
    index, seed, size = args
    p = phantoms.sample_phantom(index, seed, size)
    return (encode_png(p.image), encode_png(p.mask),
            (p.keypoints / np.float32(size)).astype(np.float32), p.boneage_months, p.male)


class Phantoms(BoneAgeBuilder):
    """Deterministic synthetic hands: the same config always builds the same dataset."""

    BUILDER_CONFIGS = [
        PhantomsConfig(name="default", description="2,000 / 400 / 400 phantoms at 256 px, seed 0"),
        PhantomsConfig(name="small", size=128, n_train=600, n_validation=150, n_test=150,
                       description="600 / 150 / 150 phantoms at 128 px for CPU smoke runs"),
    ]

    INFO = {"description": "Synthetic hand phantoms whose anatomy follows bone age and sex."}
    EXTRA_FEATURES = {"mask": tfds.features.Image(shape=(None, None, 1), encoding_format="png"),
                      "keypoints": tfds.features.Tensor(shape=(len(phantoms.KEYPOINT_NAMES), 2), dtype=np.float32)}

    def _split_generators(self, dl_manager):
        cfg = self.builder_config
        self._metadata().update({
            "keypoint_names": list(phantoms.KEYPOINT_NAMES),
            "keypoint_units": "(x, y) divided by the image size",
            "split_rule": "disjoint index ranges: train [0, n_train), validation next, test next",
            "generator": {"size": cfg.size, "seed": cfg.seed},
        })
        ranges, start = {}, 0
        for split, n in (("train", cfg.n_train), ("validation", cfg.n_validation), ("test", cfg.n_test)):
            ranges[split] = range(start, start + n)
            start += n
        return {split: self._generate_examples(split, r) for split, r in ranges.items() if len(r)}

    def _generate_examples(self, split, indices):
        cfg = self.builder_config
        fingerprint = Fingerprint()
        jobs = [(i, cfg.seed, cfg.size) for i in indices]
        progress = tfds.core.utils.tqdm(total=len(jobs), desc=f"phantoms {split}", unit=" img", leave=False)
        for i, (image, mask, keypoints, boneage, male) in zip(indices, parallel_map(_render, jobs)):
            progress.update(1)
            example_id = f"phantom-{cfg.seed}-{i:06d}"
            fingerprint.add(example_id, boneage, male, image)
            yield example_id, {"image": image, "mask": mask, "keypoints": keypoints, "id": example_id,
                               "boneage_months": np.float32(boneage), "male": np.int64(male)}
        progress.close()
        self._finish_split(split, fingerprint, [])
