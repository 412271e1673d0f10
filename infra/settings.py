"""The local stack's settings: `infra/stack.env` (dev defaults), overridden by the environment.

Secrets are SecretStr: they reach the servers' environments, never a command line, a log or `status`.
Clients (the worker, its flow runs, a user's shell) get what they need from `client_env`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_FILE = Path(__file__).with_name("stack.env")


class StackSettings(BaseSettings):
    """Ports, credentials and the data folder of the local stack (`REDISTILL_<FIELD>` in the environment)."""

    model_config = SettingsConfigDict(env_prefix="REDISTILL_", env_file=ENV_FILE, extra="ignore")

    stack_dir: Path = Field(Path(".redistill/stack"), description="Data, pid files and logs of every service.")
    stack_host: str = Field("127.0.0.1", description="The address every server listens on.")
    pg_port: int = 55432
    pg_user: str = "redistill"
    pg_password: SecretStr = SecretStr("redistill-dev-password")
    s3_port: int = 8333
    s3_bucket: str = "redistill"
    s3_region: str = "us-east-1"
    s3_access_key: str = "redistill"
    s3_secret_key: SecretStr = SecretStr("redistill-dev-secret")
    prefect_port: int = 4200
    work_pool: str = "cpu"
    mlflow_port: int = 5000

    @property
    def root(self) -> Path:
        """The data folder; a relative one is inside the checkout, whatever the working directory."""
        return (self.stack_dir if self.stack_dir.is_absolute() else ENV_FILE.parents[1] / self.stack_dir).resolve()

    def postgres_url(self, database: str, driver: str = "", password: bool = False) -> str:
        """`postgresql[+driver]://user[:password]@host:port/database`; without the password unless asked
        (libpq clients take it from PGPASSWORD, which `client_env` sets)."""
        secret = f":{self.pg_password.get_secret_value()}" if password else ""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{self.pg_user}{secret}@{self.stack_host}:{self.pg_port}/{database}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.stack_host}:{self.s3_port}"

    @property
    def prefect_api(self) -> str:
        return f"http://{self.stack_host}:{self.prefect_port}/api"

    @property
    def prefect_ui(self) -> str:
        return f"http://{self.stack_host}:{self.prefect_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.stack_host}:{self.mlflow_port}"

    @property
    def request_store(self) -> str:
        return self.postgres_url("redistill")

    @property
    def work_dir(self) -> str:
        return f"s3://{self.s3_bucket}/work"

    def distill_defaults(self) -> dict:
        """DistillConfig fields that point a deployed run at the stack (a config file and flags override them):
        stage data and results on S3, the request store and MLflow runs in its PostgreSQL."""
        return {
            "work_dir": self.work_dir,
            "request_store": self.request_store,
            "tracking": {"tracking_uri": self.mlflow_url},
            "storage": {"s3_endpoint_url": self.s3_endpoint, "s3_region": self.s3_region},
        }

    def s3_env(self) -> dict[str, str]:
        """What boto3, s3fs and MLflow need to reach the object store."""
        return {
            "AWS_ACCESS_KEY_ID": self.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3_secret_key.get_secret_value(),
            "AWS_DEFAULT_REGION": self.s3_region,
            "AWS_ENDPOINT_URL_S3": self.s3_endpoint,
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
        }

    def client_env(self) -> dict[str, str]:
        """The environment of anything that uses the stack: the worker and its flow runs, tests, a shell."""
        return {
            **self.s3_env(),
            "PREFECT_API_URL": self.prefect_api,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            "PGPASSWORD": self.pg_password.get_secret_value(),
        }
