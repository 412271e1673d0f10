"""A model behind an OpenAI-compatible server: where it is, how patiently it is asked, and the name it is served
under. Apart from tasks.llm.config so that training, which may ask a served teacher for log-probabilities, depends
on this and not on how models sample. Imports only pydantic and the config base.
"""

from pydantic import Field

from tasks.config import PLACE, Config


class ServerConfig(Config):
    """Where an OpenAI-compatible server lives and how patiently it is asked."""

    # where and how patiently: none of it changes an answer, so none of it is in a cache key (PLACE)
    base_url: str = Field("http://127.0.0.1:8000/v1", description="The server's /v1 root.", json_schema_extra=PLACE)
    api_key_env: str | None = Field(
        "OPENAI_API_KEY", description="Environment variable holding the API key.", json_schema_extra=PLACE
    )
    api_key_secret_block: str | None = Field(
        None,
        description="Prefect Secret block holding the API key (used before the environment variable).",
        json_schema_extra=PLACE,
    )
    max_concurrency: int = Field(8, ge=1, description="Requests in flight at once.", json_schema_extra=PLACE)
    request_timeout_s: float = Field(120, gt=0, description="Seconds one request may take.", json_schema_extra=PLACE)
    max_retries: int = Field(
        6,
        ge=0,
        description="Retries of one request on 429, 5xx, timeouts and lost connections.",
        json_schema_extra=PLACE,
    )
    backoff_s: float = Field(
        1.0, gt=0, description="First retry delay; doubles each retry, with +-50% jitter.", json_schema_extra=PLACE
    )
    backoff_max_s: float = Field(
        30.0, gt=0, description="Longest retry delay (a Retry-After header is honoured).", json_schema_extra=PLACE
    )
    outage_retry_s: float = Field(
        10.0,
        gt=0,
        description="When the server is still down after the request retries: the first wait before the rollout "
        "stage is retried (three times, doubling: 10, 20, 40 s); each retry asks only for what the store lacks.",
        json_schema_extra=PLACE,
    )


class ServedModel(Config):
    """A model behind an OpenAI-compatible server, known by the name it is served under (no weights here)."""

    model: str = Field(description="The served model name: its identity (change it when the weights change).")
    server: ServerConfig = ServerConfig()

    @property
    def fingerprint(self) -> str:
        return f"served:{self.model}"
