"""What the rollout benchmarks share: demo prompts as a dataset, and the embedded teacher."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tasks.demo_traffic import generate_traffic  # noqa: E402
from tasks.models import resolve_model  # noqa: E402
from tasks.refs import DatasetRef, ModelRef  # noqa: E402
from tasks.schemas import REDACTED_PROMPTS  # noqa: E402
from tasks.stage import write_dataset  # noqa: E402


def demo_prompts(n: int, path: Path, seed: int = 11) -> DatasetRef:
    """`n` distinct demo questions (no PII: a benchmark of the teacher, not of redaction) as training prompts."""
    traffic = generate_traffic(rows=4 * n, seed=seed, malformed=0)
    rows, seen = [], set()
    for line in traffic.lines:
        row = json.loads(line)
        question = traffic.questions[row["id"]]
        if question not in seen and len(rows) < n:
            seen.add(question)
            rows.append({**row, "prompt": question, "pii": []})
    return write_dataset(rows, path, REDACTED_PROMPTS)


def embedded_teacher() -> ModelRef:
    """The embedded SmolLM2 teacher, converted once under the repo's work dir."""
    return resolve_model("embedded", str(ROOT / ".redistill" / "models"))
