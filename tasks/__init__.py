"""Pipeline stages: one module per stage (pure functions plus one Prefect task), and what they share."""

import os

# transformers, datasets and llmcompressor draw a progress bar per model load, dataset map and layer; each stage
# prints its own progress line. tqdm reads TQDM_DISABLE once, when it is first imported: before any stage runs.
os.environ.setdefault("TQDM_DISABLE", "1")
