"""``python -m train --model {seed-cnn,ffnn,chunk-cnn} --data DIR --out weights/NAME [...]``"""

from .fit import parse_args, train

if __name__ == "__main__":
    train(parse_args())
