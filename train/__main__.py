"""``python -m train --model {seed-cnn,ffnn,chunk-cnn,musicnn-genre} --data DIR --out weights/NAME [...]``"""

from .fit import parse_args, train
from .memory import keep_freed_memory

if __name__ == "__main__":
    keep_freed_memory()
    train(parse_args())
