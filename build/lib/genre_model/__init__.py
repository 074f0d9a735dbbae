"""Music-genre classification you can see and hear: decode -> log-mel -> CNN -> genre probabilities."""

__version__ = "0.1.0"
