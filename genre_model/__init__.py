"""Music-genre classification you can see and hear: decode -> log-mel -> CNN -> genre probabilities."""

from . import models  # noqa: F401 - registers the built-in architectures before any registry lookup
from .config import VERSION as __version__  # noqa: F401
