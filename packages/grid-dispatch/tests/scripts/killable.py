"""A grid whose objective blocks at one configuration, so the test can kill -9 it mid-batch.

usage: killable.py OUT_DIR MARKER_FILE
"""

import sys
import time
from pathlib import Path

from grid_dispatch import SearchSpace, run_grid

out, marker = sys.argv[1:3]
space = SearchSpace({"a": list(range(10)), "b": list(range(8))})


def objective(config):
    if config["a"] == 5 and config["b"] == 3:  # index 43: in the middle of batch 40..47
        Path(marker).write_text("blocked")
        time.sleep(600)
    return {"y": config["a"] * 10.0 + config["b"]}


run_grid(objective, space, out, batch_size=8, mode="loop", progress=False, flush_every_s=0.0)
