"""Nothing phones home: Hugging Face telemetry (TRL trainers ping the hub at start) is off in the CLI, the app,
workers and job processes unless ``STUDIO_ALLOW_TELEMETRY`` is on."""

import os
import subprocess
import sys

from factories import claimed_job, job_row

from jobs import artifacts, worker

# A real job process (`python -m jobs.run <id>`) that first reports the environment it was given and, after the
# studio's imports, whether huggingface_hub's telemetry (what TRL's BaseTrainer._send_telemetry calls) would send.
PROBE_JOB = """
import os, runpy, sys
print('ENV HF_HUB_DISABLE_TELEMETRY=' + os.environ.get('HF_HUB_DISABLE_TELEMETRY', 'unset'), flush=True)
sys.argv = ['jobs.run', sys.argv[1]]
try:
    runpy.run_module('jobs.run', run_name='__main__')
finally:
    from huggingface_hub.utils import _telemetry
    sent = []
    _telemetry._start_telemetry_thread = lambda: sent.append(1)
    _telemetry.send_telemetry('trl/probe')
    print('PINGS', len(sent), flush=True)
"""


def _run_probe(monkeypatch) -> str:
    monkeypatch.setattr(worker, "child_command", lambda job_id: [sys.executable, "-c", PROBE_JOB, str(job_id)])
    job_id = claimed_job("probe", {"kind": "no-such-kind"})
    worker.run_job_process(job_id, "test-worker")
    assert job_row(job_id).status == "failed"  # the real jobs.run ran and recorded the unknown kind
    return artifacts.read_log_tail(job_id)


def test_job_process_runs_with_telemetry_off(studio_env, monkeypatch):
    for name in ("HF_HUB_DISABLE_TELEMETRY", "STUDIO_ALLOW_TELEMETRY", "DO_NOT_TRACK", "DISABLE_TELEMETRY"):
        monkeypatch.delenv(name, raising=False)
    log = _run_probe(monkeypatch)
    assert "ENV HF_HUB_DISABLE_TELEMETRY=1" in log
    assert "PINGS 0" in log


def test_telemetry_allowed_by_setting(studio_env, monkeypatch):
    from backend import settings

    for name in ("HF_HUB_DISABLE_TELEMETRY", "DO_NOT_TRACK", "DISABLE_TELEMETRY", "HF_HUB_OFFLINE",
                 "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STUDIO_ALLOW_TELEMETRY", "1")
    settings.reset_settings_cache()
    assert "HF_HUB_DISABLE_TELEMETRY" not in settings.job_environment()
    log = _run_probe(monkeypatch)
    assert "ENV HF_HUB_DISABLE_TELEMETRY=unset" in log
    assert "PINGS 1" in log  # the hub would be pinged: the user allowed it


def test_entry_points_switch_it_off_before_any_hub_import():
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_DISABLE_TELEMETRY", "STUDIO_ALLOW_TELEMETRY")}
    probe = ("import os, sys, {module}; import huggingface_hub.constants as c; "
             "print(os.environ.get('HF_HUB_DISABLE_TELEMETRY'), c.HF_HUB_DISABLE_TELEMETRY, "
             "os.environ.get('STREAMLIT_BROWSER_GATHER_USAGE_STATS'))")
    for module in ("cli.main", "app.common", "jobs.run", "jobs.worker", "backend.settings"):
        out = subprocess.run([sys.executable, "-c", probe.format(module=module)], env=env, capture_output=True,
                             text=True, check=True).stdout.split()
        assert out == ["1", "True", "false"], module
