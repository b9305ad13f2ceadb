"""Studio settings, read from ``STUDIO_*`` environment variables (or a ``.env`` file).

| variable | default | meaning |
|---|---|---|
| ``STUDIO_DATA_DIR`` | ``./studio-data`` | models, adapters, job logs, datasets, the SQLite file |
| ``STUDIO_DATABASE_URL`` | SQLite file in the data dir | any SQLAlchemy URL (PostgreSQL for teams) |
| ``STUDIO_DEVICE`` | ``auto`` | ``auto`` (CUDA when present), ``cpu`` or ``cuda`` |
| ``STUDIO_DEFAULT_MODEL`` | ``smollm2-135m-instruct`` | model name used when none is chosen |
| ``STUDIO_WORKER_AUTOSTART`` | ``true`` | the app starts a local worker when none is alive |
| ``STUDIO_ALLOWED_PATHS`` | empty | folders besides the data dir that dataset and output paths may use |
| ``STUDIO_HOST`` | ``127.0.0.1`` | the address ``studio run`` listens on; anything but loopback exposes the studio |
| ``STUDIO_ALLOW_TELEMETRY`` | ``false`` | let libraries report usage (off: nothing phones home, see below) |

Nothing phones home by default: importing this module (every entry point does, before any Hugging Face
library) sets ``HF_HUB_DISABLE_TELEMETRY=1`` (TRL's trainers ping the hub at start otherwise) and
``STREAMLIT_BROWSER_GATHER_USAGE_STATS=false`` in the process environment, which workers and job processes
inherit. ``STUDIO_ALLOW_TELEMETRY=1`` leaves the libraries' own defaults alone.
"""

import os
import sys
from functools import lru_cache
from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL_NAME = "smollm2-135m-instruct"

# What each library reads to stop reporting usage. TRL's trainers (`BaseTrainer._send_telemetry`) and
# huggingface_hub honour HF_HUB_DISABLE_TELEMETRY (read when huggingface_hub is imported); streamlit reads
# its usage-stats flag from this variable too (also off in .streamlit/config.toml). transformers' and TRL's
# `report_to` is "none" in every runner, so no experiment tracker (wandb, …) is contacted.
TELEMETRY_OFF_ENV = {"HF_HUB_DISABLE_TELEMETRY": "1", "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
_TRUE = {"1", "true", "yes", "on"}
_set_by_us: set[str] = set()


def telemetry_allowed(environ: dict[str, str] | None = None) -> bool:
    """Whether ``STUDIO_ALLOW_TELEMETRY`` is on in ``environ`` (default: this process's environment)."""
    env = os.environ if environ is None else environ
    return env.get("STUDIO_ALLOW_TELEMETRY", "").strip().lower() in _TRUE


def apply_telemetry_setting(allowed: bool | None = None) -> None:
    """Switch library telemetry off in this process's environment (inherited by workers and job processes),
    unless it is allowed. Idempotent; called at import and again when settings load (``.env`` may allow it)."""
    allowed = telemetry_allowed() if allowed is None else allowed
    if allowed:
        for name in _set_by_us:  # undo only what we set ourselves
            os.environ.pop(name, None)
        _set_by_us.clear()
        return
    for name, value in TELEMETRY_OFF_ENV.items():
        if os.environ.get(name) != value:
            os.environ[name] = value
            _set_by_us.add(name)
    hub_constants = sys.modules.get("huggingface_hub.constants")
    if hub_constants is not None:  # imported before us: its flag was read already
        hub_constants.HF_HUB_DISABLE_TELEMETRY = True


def job_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process (a job, a worker): ``base`` (default: ours) with telemetry off unless
    allowed there."""
    env = dict(os.environ if base is None else base)
    if not telemetry_allowed(env) and not get_settings().allow_telemetry:
        env.update(TELEMETRY_OFF_ENV)
    return env


apply_telemetry_setting()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STUDIO_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("studio-data"), description="Where models, adapters, logs and the database live.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite in the data dir.")
    device: str = Field("auto", pattern="^(auto|cpu|cuda)$", description="auto picks CUDA when present.")
    default_model: str = Field(DEFAULT_MODEL_NAME, description="Model used when none is chosen.")
    worker_autostart: bool = Field(True, description="Start a local worker from the app when none is alive.")
    session_days: float = Field(7, gt=0, le=365, description="How long a browser stays signed in (reloads, new "
                                "tabs and restarts included) until it signs out.")
    host: str = Field("127.0.0.1", min_length=1, max_length=253,
                      description="Address `studio run` listens on. Loopback (127.0.0.1) by default; 0.0.0.0 or a "
                      "LAN address exposes the studio: then the first admin needs the setup token and self "
                      "sign-up is off unless an admin turns it on.")
    allowed_paths: str = Field("", description="Folders besides the data dir that dataset paths in job specs and "
                               "export outputs may use, separated by ':' (';' on Windows); empty = the data dir only "
                               "(see backend.limits).")
    heartbeat_seconds: float = Field(2.0, gt=0, description="How often workers and jobs report they are alive.")
    stale_after_seconds: float = Field(30.0, gt=0, description="A worker silent this long is considered dead.")
    job_threads: int | None = Field(None, ge=1, le=512, description="CPU threads a job's torch may use; empty = "
                                    "torch's default (one per core). On a few shared cores (the studio, a worker and "
                                    "a job side by side) 1 is often faster: idle threads spin while they wait.")
    allow_telemetry: bool = Field(False, description="Let libraries report usage to their makers (Hugging Face "
                                  "hub pings from TRL trainers, …). Off by default: nothing phones home.")

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


LOOPBACK_HOSTS = ("localhost", "::1", "[::1]")


def is_loopback(host: str | None) -> bool:
    """True for an address only this machine can reach (127.x.x.x, ::1, localhost). Empty means every interface."""
    host = (host or "").strip().lower()
    return host in LOOPBACK_HOSTS or host.startswith("127.")


@lru_cache
def get_settings() -> Settings:
    """The settings; a bad value is a one-line ``StudioError`` naming the variable (``STUDIO_DEVICE=gpu`` …)."""
    try:
        settings = Settings()
    except ValidationError as exc:
        from backend.errors import StudioError

        problems = "; ".join(f"STUDIO_{'_'.join(map(str, e['loc'])).upper()}={str(e.get('input'))[:60]!r}: {e['msg']}"
                             for e in exc.errors())
        raise StudioError(f"Invalid setting — {problems}. Fix the environment variable or the .env file.") from None
    if settings.allow_telemetry != telemetry_allowed():  # set in a .env file
        apply_telemetry_setting(settings.allow_telemetry)
    return settings


def reset_settings_cache() -> None:
    """Forget cached settings (tests change the environment between cases)."""
    get_settings.cache_clear()
