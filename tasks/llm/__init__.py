"""The LLM layer: one way to ask a language model, exactly once and durably.

config.py (what to ask and how; served.py: a model behind a server), types.py (requests and completions),
local.py / openai_server.py / vllm_engine.py (the backends; http.py: one POST with retries), store.py (the
durable request store), ask.py (ask for what the store lacks), prompt_logprobs.py (a vLLM server's
log-probabilities over given tokens, for `kd`). Rollout, evaluation and the judge ask through it; synthetic
prompts come next.
"""
