"""The LLM layer: one way to ask a language model, exactly once and durably.

config.py (what to ask and how), types.py (requests and completions), local.py / openai_server.py /
vllm_engine.py (the backends), store.py (the durable request store), ask.py (ask for what the store
lacks). Rollout uses it today; evaluation scores the teacher through it; the judge, synthetic
prompts and teacher log-probabilities come next.
"""
