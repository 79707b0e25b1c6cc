"""`python -m reproductions.attention_mtl train|evaluate|predict`:
the command line is common/cli.py, the recipe common/train.py; the model in task.py."""
import sys

from common.cli import main
from reproductions.attention_mtl.task import TASK

if __name__ == "__main__":
    sys.exit(main(TASK))
