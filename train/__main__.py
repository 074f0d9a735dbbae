"""``python -m train RECIPE ...`` (see `train.cli`)."""

from .cli import parse_args, run
from .memory import keep_freed_memory

if __name__ == "__main__":
    cfg = parse_args()
    keep_freed_memory()
    run(cfg)
