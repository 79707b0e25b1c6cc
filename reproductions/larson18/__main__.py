"""`python -m reproductions.larson18 train|evaluate|predict`: the recipe is in common.train; the paper in task.py."""
import sys

from common.train import main
from reproductions import registry
from reproductions.larson18.task import TASK

if __name__ == "__main__":
    sys.exit(main(TASK, ablations=registry.ablations()))
