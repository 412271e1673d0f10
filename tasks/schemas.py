"""The Parquet datasets that pass between stages: the contract a stage may rely on.

A stage reads the schemas of the stages before it and writes its own; anything else it keeps to
itself. Rejected rows of a stage are its output schema plus `reason` (tasks.stage.with_reason).
"""

import pyarrow as pa

# A chat turn, as HF and OpenAI write it.
MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])

# source -> redact. One row per prompt; the held-out and the training prompts are two datasets.
PROMPTS = pa.schema(
    [
        ("id", pa.string()),  # the log's id, or row-<n>
        ("timestamp", pa.string()),  # ISO 8601 UTC, or null
        ("slice", pa.string()),  # the traffic slice the prompt belongs to
        ("prompt", pa.string()),  # the user's text, or a chat row's turns as one text (redacted after redact)
        ("reference", pa.string()),  # the checkable answer, or null
        ("messages", pa.list_(MESSAGE)),  # a chat row's conversation, ending with the user's turn; else null
        ("origin", pa.string()),  # "traffic" (this run's window), "replay" (earlier traffic), "synthetic"
        ("response", pa.string()),  # the answer production gave (redacted after redact), or null
        ("parent", pa.string()),  # a synthetic prompt's: its seed rows' ids (Self-Instruct) or the prompt it evolved
        ("operation", pa.string()),  # a synthetic prompt's: self_instruct, or the Evol-Instruct operation
    ]
)

# source -> redact -> MLflow. A row of the log that could not be used, and why.
QUARANTINE = pa.schema(
    [
        ("row", pa.int64()),  # 1-based row (line) number in the log
        ("field", pa.string()),  # the field at fault, or null when the row as a whole is
        ("reason", pa.string()),
        ("raw", pa.string()),  # the row as read (null after the redact stage: its content is not logged)
    ]
)

# source -> coverage. Production's prompts on the embedding map (part "production": the window's, or a seeded
# sample of them) and the training sample (part "train"): each prompt's cluster and 2-D position. The text is as
# read (PII and all): the coverage stage redacts the few it shows.
COVERAGE_MAP = pa.schema(
    [
        ("id", pa.string()),
        ("slice", pa.string()),
        ("part", pa.string()),  # "production" or "train"
        ("cluster", pa.int32()),
        ("x", pa.float32()),
        ("y", pa.float32()),
        ("prompt", pa.string()),  # the user's text (tasks.stage.user_text)
        ("embedding", pa.list_(pa.float32())),  # its unit vector (tasks.embed): synthesis measures distances in it
    ]
)

# synthesize -> MLflow. Every prompt the teacher wrote for a thin cluster (redacted), kept or dropped and why.
SYNTHETIC = pa.schema(
    [
        ("id", pa.string()),  # syn-<hash>: the training prompt's id when kept
        ("target", pa.string()),  # the thin cluster or slice it was written for: "cluster 3", "slice sounds"
        ("cluster", pa.int32()),  # the cluster the map must place it in
        ("slice", pa.string()),  # the slice it joins (a thin cluster's commonest)
        ("parent", pa.string()),  # the seed rows' ids (Self-Instruct), or the candidate it evolved
        ("operation", pa.string()),  # self_instruct, or the Evol-Instruct operation
        ("depth", pa.int32()),  # Evol-Instruct rounds behind it
        ("prompt", pa.string()),
        ("kept", pa.bool_()),
        ("reason", pa.string()),  # why it was dropped, or null
    ]
)

# redact -> rollout (train), dedup and evaluate (eval): PROMPTS with PII replaced, plus the entity types found.
REDACTED_PROMPTS = PROMPTS.append(pa.field("pii", pa.list_(pa.string())))

# rollout -> dedup -> filter. One row per (prompt, sample) from the teacher.
ROLLOUTS = pa.schema(
    [
        ("prompt_id", pa.string()),  # hash of the redacted prompt text
        ("slice", pa.string()),
        ("prompt", pa.string()),
        ("reference", pa.string()),
        ("sample_index", pa.int32()),  # 0..N-1
        ("teacher", pa.string()),  # teacher fingerprint (model, sampling, system prompt)
        ("completion", pa.string()),  # the final answer
        ("reasoning", pa.string()),  # the chain of thought (reasoning_content or <think>), or null
        ("finish_reason", pa.string()),  # "stop" or "length"
        ("prompt_tokens", pa.int32()),
        ("completion_tokens", pa.int32()),
        ("logprobs", pa.list_(pa.float32())),  # chosen-token log-probabilities, or null
        ("messages", pa.list_(MESSAGE)),  # the prompt's conversation, for chat rows; else null
    ]
)

# rollout -> MLflow. Prompts the teacher refused (HTTP 400 and the like), with its message.
REJECTED_PROMPTS = pa.schema(
    [
        ("prompt_id", pa.string()),
        ("slice", pa.string()),
        ("prompt", pa.string()),
        ("reference", pa.string()),
        ("reason", pa.string()),  # "teacher_rejected: HTTP 400: <the server's message>"
    ]
)

# filter -> train, export. HF chat `messages`, ready for TRL's SFTTrainer.
TRAINING_ROWS = pa.schema(
    [
        ("messages", pa.list_(MESSAGE)),
        ("prompt_id", pa.string()),
        ("slice", pa.string()),
        ("sample_index", pa.int32()),
    ]
)

# filter -> dpo. Where the teacher answered a prompt both right and wrong: a verified right answer the filter
# keeps (as SFT learns it) and a verified wrong one, as TRL's conversational preference rows.
PREFERENCE_PAIRS = pa.schema(
    [
        ("prompt", pa.list_(MESSAGE)),  # the conversation up to the answer
        ("chosen", pa.list_(MESSAGE)),  # the right answer, one assistant turn
        ("rejected", pa.list_(MESSAGE)),  # the wrong one
        ("prompt_id", pa.string()),
        ("slice", pa.string()),
        ("pair_index", pa.int32()),  # 0.. per prompt
    ]
)

# evaluate -> MLflow. One row per (model, held-out prompt).
ANSWERS = pa.schema(
    [
        ("model", pa.string()),  # "base", "teacher", "student" (or "exported", in the export check)
        ("id", pa.string()),
        ("slice", pa.string()),
        ("prompt", pa.string()),
        ("reference", pa.string()),
        ("answer", pa.string()),
        ("correct", pa.bool_()),  # the verifier's verdict; null where the slice has no verifier
        ("reason", pa.string()),  # the verdict's reason
        ("confidence", pa.float64()),  # the student's mean token log-probability of its answer; null for others
    ]
)

# verify -> filter. One verdict per teacher sample (null `ok` where the slice has no verifier or the row
# no reference).
VERDICTS = pa.schema(
    [
        ("prompt_id", pa.string()),
        ("sample_index", pa.int32()),
        ("verifier", pa.string()),  # the verifier's kind, or "none"
        ("ok", pa.bool_()),
        ("score", pa.float32()),
        ("reason", pa.string()),  # "number matches", "stated 8", "no verifier for slice chat", ...
        ("extracted", pa.string()),  # what training keeps instead of the whole answer (a json verifier's JSON), or null
    ]
)

# judge -> dedup, filter. The judge's 1-5 score of a sample of a judged slice, against its calibrated threshold.
JUDGMENTS = pa.schema(
    [
        ("prompt_id", pa.string()),
        ("sample_index", pa.int32()),
        ("score", pa.int32()),  # null: the judge's reply held no score
        ("threshold", pa.int32()),
        ("ok", pa.bool_()),  # score >= threshold; null when unscored
    ]
)
