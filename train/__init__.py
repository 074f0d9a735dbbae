"""Training, evaluation and publishing of the genre models (uses `genre_model`, never the reverse)."""
