"""``python -m train --model {seed-cnn,ffnn,chunk-cnn,musicnn-genre} --data DIR --out weights/NAME [...]``"""

from genre_model.inference import keep_freed_memory

from .fit import parse_args, train

if __name__ == "__main__":
    keep_freed_memory()
    train(parse_args())
