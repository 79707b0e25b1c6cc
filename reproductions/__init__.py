"""One sub-package per reproduced paper; each runs as `python -m reproductions.<paper>`."""
