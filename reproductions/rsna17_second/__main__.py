"""`python -m reproductions.rsna17_second train|evaluate|predict`: the recipe is in common.train; the paper in task.py."""
import sys

from common.train import main
from reproductions import registry
from reproductions.rsna17_second.task import TASK

if __name__ == "__main__":
    sys.exit(main(TASK, ablations=registry.ablations()))
