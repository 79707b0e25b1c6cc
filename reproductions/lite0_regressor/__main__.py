"""`python -m reproductions.lite0_regressor train|evaluate|predict`:
the command line is common/cli.py, the recipe common/train.py; the model in task.py."""
import sys

from common.cli import main
from reproductions.lite0_regressor.task import TASK

if __name__ == "__main__":
    sys.exit(main(TASK))
