"""`python -m reproductions.attention_mtl train|evaluate|predict`: the recipe is in common.train; the model in task.py."""
import sys

from common.train import main
from reproductions import registry
from reproductions.attention_mtl.task import TASK

if __name__ == "__main__":
    sys.exit(main(TASK, ablations=registry.ablations()))
