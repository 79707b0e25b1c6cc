"""`python -m reproductions.rsna17_second train|evaluate|predict`:
the command line is common/cli.py, the recipe common/train.py; the paper in task.py."""
import sys

from common.cli import main
from reproductions.rsna17_second.task import TASK

if __name__ == "__main__":
    sys.exit(main(TASK))
