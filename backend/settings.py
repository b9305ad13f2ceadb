"""Studio settings, read from ``STUDIO_*`` environment variables (or a ``.env`` file).

| variable | default | meaning |
|---|---|---|
| ``STUDIO_DATA_DIR`` | ``./studio-data`` | models, adapters, job logs, datasets, the SQLite file |
| ``STUDIO_DATABASE_URL`` | SQLite file in the data dir | any SQLAlchemy URL (PostgreSQL for teams) |
| ``STUDIO_DEVICE`` | ``auto`` | ``auto`` (CUDA when present), ``cpu`` or ``cuda`` |
| ``STUDIO_DEFAULT_MODEL`` | ``smollm2-135m-instruct`` | model name used when none is chosen |
| ``STUDIO_WORKER_AUTOSTART`` | ``true`` | the app starts a local worker when none is alive |
"""

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL_NAME = "smollm2-135m-instruct"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STUDIO_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("studio-data"), description="Where models, adapters, logs and the database live.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite in the data dir.")
    device: str = Field("auto", pattern="^(auto|cpu|cuda)$", description="auto picks CUDA when present.")
    default_model: str = Field(DEFAULT_MODEL_NAME, description="Model used when none is chosen.")
    worker_autostart: bool = Field(True, description="Start a local worker from the app when none is alive.")
    heartbeat_seconds: float = Field(2.0, gt=0, description="How often workers and jobs report they are alive.")
    stale_after_seconds: float = Field(30.0, gt=0, description="A worker silent this long is considered dead.")
    job_threads: int | None = Field(None, ge=1, le=512, description="CPU threads a job's torch may use; empty = "
                                    "torch's default (one per core). On a few shared cores (the studio, a worker and "
                                    "a job side by side) 1 is often faster: idle threads spin while they wait.")

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{self.resolved_data_dir / 'studio.db'}"

    @property
    def models_dir(self) -> Path:
        return self.resolved_data_dir / "models"

    @property
    def artifacts_dir(self) -> Path:
        return self.resolved_data_dir / "artifacts"

    @property
    def datasets_dir(self) -> Path:
        return self.resolved_data_dir / "datasets"


@lru_cache
def get_settings() -> Settings:
    return Settings()


def reset_settings_cache() -> None:
    """Forget cached settings (tests change the environment between cases)."""
    get_settings.cache_clear()
