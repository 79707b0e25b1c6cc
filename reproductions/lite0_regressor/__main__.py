"""`python -m reproductions.lite0_regressor train|evaluate|predict`: the recipe is in common.train; the model in task.py."""
import sys

from common.train import main
from reproductions import registry
from reproductions.lite0_regressor.task import TASK

if __name__ == "__main__":
    sys.exit(main(TASK, ablations=registry.ablations()))
