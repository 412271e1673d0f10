"""Pipeline stages: one module per stage (pure functions plus one Prefect task), and what they share."""

import os

# transformers, datasets and llmcompressor draw a progress bar per model load, dataset map and layer; each stage
# prints its own progress line. tqdm reads TQDM_DISABLE once, when it is first imported: before any stage runs.
os.environ.setdefault("TQDM_DISABLE", "1")
# llmcompressor configures its loguru logger on import and again in oneshot (a warning per call on CPU: "No
# accelerator available!"); its own switch keeps it off however often that happens.
os.environ.setdefault("LLM_COMPRESSOR_LOG_DISABLED", "true")
# TRL warns on every import from trl.experimental (GKD, for train.objective on_policy); the choice is made.
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
