"""AppTests of the training pages: Jobs (SFT form, job panel), Evaluation (form and dashboards), Models and
Calculators, on a fresh database with the tiny random model as the default.

No worker runs: jobs stay queued; metrics, models and evaluation rows are inserted directly, as a worker would.
"""

import json
from pathlib import Path

import pytest
from page_support import button, count, open_as, page, signed_in, texts, the_admin
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from backend.db.engine import session_scope
from backend.db.tables import EvalResult, EvalRun, Job, ModelRecord
from backend.models.store import local_path
from jobs import artifacts, queue

SFT = "sft-sft-lora-tiny-cpu"  # widget key prefix of the SFT form started from that preset


def spec_yaml(at: AppTest) -> str:
    """The resolved spec the form shows (the YAML `studio job submit` takes)."""
    return next(c.value for c in at.code if c.value.startswith("kind:"))


def panel_metrics(at: AppTest) -> list[tuple[str, str]]:
    """The job panel's metrics (the form above also shows some: its trainable-parameter estimate)."""
    metrics = [(m.label, m.value) for m in at.metric]
    return metrics[[label for label, _ in metrics].index("Status"):]


def jobs_page() -> AppTest:
    at = open_as("page_jobs.py", the_admin())  # queueing a job needs an admin
    at.selectbox(key="jobs-preset").select("sft-lora-tiny-cpu")
    return at.run()


def queue_tiny_job(**update) -> int:
    from jobs.spec_files import list_presets, load_spec_file

    spec = load_spec_file(list_presets()["sft-lora-tiny-cpu"]).model_copy(update={"base_model": "tiny", **update})
    with session_scope(write=True) as s:
        return queue.submit(s, spec).id


# --- jobs: the SFT form ----------------------------------------------------------------------------------------

def test_sft_form_shows_trainable_estimate_and_queues_the_job(studio):
    at = jobs_page()
    assert not at.exception
    assert "No jobs yet" in texts(at.info)
    assert at.selectbox(key=f"{SFT}-base").value == "tiny"
    targets = at.multiselect(key=f"{SFT}-targets-tiny")
    assert targets.value == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]  # preset
    assert {"gate_proj", "up_proj", "down_proj", "all-linear"} <= set(targets.options)
    metrics = {m.label: m.value for m in at.metric}
    trainable = int(metrics["Trainable parameters"].replace(",", ""))
    assert trainable > 0 and metrics["Share of the model"].endswith("%")
    at.number_input(key=f"{SFT}-train-max_steps").set_value(3)
    at.number_input(key=f"{SFT}-r").set_value(16)  # the preset's 64 → 16: r·(d+k) is linear in r
    at.run()
    assert int({m.label: m.value for m in at.metric}["Trainable parameters"].replace(",", "")) == trainable // 4
    button(at, "Queue job").click()
    at.run()
    assert not at.exception
    with session_scope() as s:
        job = s.scalars(select(Job)).one()
        assert (job.status, job.kind, job.spec["base_model"], job.spec["peft"]) == ("queued", "sft", "tiny", "lora")
        assert job.spec["train"]["max_steps"] == 3 and job.spec["lora"]["r"] == 16
        assert job.spec["resume_from_job"] is None
    assert f"Queued job {job.id}" in texts(at.success)
    assert panel_metrics(at)[0] == ("Status", "queued")


def test_sft_form_methods_change_the_estimate(studio):
    at = jobs_page()
    at.radio(key=f"{SFT}-method").set_value("Full fine-tuning")
    at.run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Trainable parameters"] == metrics["Total parameters"]
    assert metrics["Share of the model"] == "100 %"
    at.radio(key=f"{SFT}-method").set_value("Prompt tuning")
    at.run()
    at.slider(key=f"{SFT}-vtokens").set_value(30)
    at.radio(key=f"{SFT}-init").set_value("random")
    at.run()
    assert not at.exception
    hidden = 64  # the tiny model's hidden size: one embedding per virtual token
    assert {m.label: m.value for m in at.metric}["Trainable parameters"] == f"{30 * hidden:,}"
    assert "init: random" in spec_yaml(at) and "num_virtual_tokens: 30" in spec_yaml(at)


def test_sft_form_preview_shows_formatted_examples(studio):
    at = jobs_page()
    at.toggle(key=f"{SFT}-mix").set_value(True)
    at.toggle(key=f"{SFT}-preview").set_value(True)
    at.run()
    assert not at.exception
    preview = at.dataframe[0].value
    assert len(preview) == 3 and set(preview["template"]) <= {t for t in preview["template"] if t.startswith("flan-")}
    shown = texts(at.code)
    assert "<|im_start|>user" in shown and "#Person1#" in shown  # the chat template around the dialogue


def test_sft_form_upload_is_saved_and_bad_columns_are_a_message(studio, tmp_path):
    at = jobs_page()
    at.radio(key=f"{SFT}-source").set_value("Hub dataset or path")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no dialogue column"}\n', encoding="utf-8")
    at.run()
    at.text_input(key=f"{SFT}-ref").set_value(str(bad))
    at.toggle(key=f"{SFT}-preview").set_value(True)
    at.run()
    assert not at.exception
    assert "lacks the column(s) dialogue, summary" in texts(at.error)


def test_sft_form_unknown_lora_target_and_bad_numbers_are_messages(studio):
    at = jobs_page()
    at.number_input(key=f"{SFT}-train-learning_rate").set_value(-1.0)
    at.run()
    assert "learning_rate" in texts(at.error)
    assert not [b for b in at.button if b.label == "Queue job"]
    assert count(Job) == 0


def test_resume_picker_lists_failed_jobs_with_checkpoints(studio):
    job_id = queue_tiny_job(name="crashed")
    with session_scope(write=True) as s:
        queue.finish(s, job_id, "failed", "killed")
    checkpoint = artifacts.job_dir(job_id) / "checkpoints" / "checkpoint-2"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text("{}", encoding="utf-8")
    at = jobs_page()
    options = at.selectbox(key=f"{SFT}-resume").options
    assert options[0] == "Start fresh" and any(f"#{job_id} crashed" in o for o in options)
    at.selectbox(key=f"{SFT}-resume").select(options[1])
    at.run()
    assert f"resume_from_job: {job_id}" in spec_yaml(at)


def test_generic_form_renders_other_kinds(studio, monkeypatch):
    """A kind another team registers (reward, PPO, DPO, labeling…) gets the spec-generated form."""
    from jobs import registry

    others = [k for k in registry.KINDS if k not in ("sft", "eval")]
    if not others:
        pytest.skip("no other job kinds registered in this tree")
    at = page("page_jobs.py")
    at.radio(key="jobs-kind").set_value(others[0])
    at.run()
    assert not at.exception
    assert f"kind: {others[0]}" in texts(at.code) or at.error  # a kind whose defaults need input says so


# --- jobs: the live panel ----------------------------------------------------------------------------------------

def test_job_panel_shows_status_curves_and_log(studio):
    job_id = queue_tiny_job()
    with session_scope(write=True) as s:
        queue.log_metrics(s, job_id, 0, {"trainable_params": 1000, "total_params": 100000})
        for step, loss in enumerate([2.5, 2.1, 1.8], start=1):
            queue.log_metrics(s, job_id, step, {"loss": loss, "learning_rate": 3e-4 / step, "grad_norm": 1.5,
                                                "train/tokens_per_second": 900.0})
        queue.log_metrics(s, job_id, 3, {"eval_loss": 1.9})
    artifacts.log_path(job_id).parent.mkdir(parents=True, exist_ok=True)
    artifacts.log_path(job_id).write_text("train: 1/3\rtrain: 3/3\ndone\n", encoding="utf-8")
    at = page("page_jobs.py")
    assert not at.exception
    assert panel_metrics(at)[:4] == [("Status", "queued"), ("Step", "3"), ("Loss", "1.8"), ("Trainable", "1,000")]
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    panels = {a["text"] for a in chart["layout"]["annotations"]}
    assert panels == {"loss", "learning rate", "gradient norm", "tokens/s (measured)"}
    assert {"train loss", "eval loss"} <= {trace["name"] for trace in chart["data"]}
    assert button(at, "Cancel")
    assert at.code[-1].value.strip() == "train: 3/3\ndone"  # the log, progress bars as last drawn


def test_job_panel_cancel_button_cancels_queued_job(studio):
    job_id = queue_tiny_job()
    at = page("page_jobs.py")  # signed out (the page opened without navigation): the service refuses
    button(at, "Cancel").click()
    at.run()
    assert "Only an admin" in texts(at.error) or "sign in again" in texts(at.error)
    with session_scope() as s:
        assert s.get(Job, job_id).status == "queued"
    at = open_as("page_jobs.py", signed_in("ada"))
    button(at, "Cancel").click()
    at.run()
    assert not at.exception
    with session_scope() as s:
        assert s.get(Job, job_id).status == "cancelled"
    assert panel_metrics(at)[0] == ("Status", "cancelled")
    assert not [b for b in at.button if b.label == "Cancel"]


# --- evaluation --------------------------------------------------------------------------------------------------

def add_runs(adapter_dir: Path | None = None) -> list[int]:
    """A base run and an adapter run on the same two examples (the adapter better on example 1)."""
    from backend.models.store import register_model

    with session_scope(write=True) as s:
        base = s.scalar(select(ModelRecord).where(ModelRecord.name == "tiny"))
        lora = register_model(s, "tiny-lora", str(adapter_dir or "/nonexistent"), kind="adapter", source="job",
                              base_model_id=base.id, meta={"method": "lora", "trainable_params": 1000,
                                                           "total_params": 100000, "train_runtime": 12.0})
        ids = []
        for record, rouge, tox in ((base, (0.1, 0.3), (0.1, 0.7)), (lora, (0.6, 0.2), (0.05, 0.2))):
            run = EvalRun(model_name=record.name, model_id=record.id, dataset="demo:dialogsum", split="test",
                          n_examples=2, metrics={"rouge1": sum(rouge) / 2, "rouge2": 0.1, "rougeL": 0.2,
                                                 "bleu": 0.05, "toxicity": sum(tox) / 2})
            s.add(run)
            s.flush()
            s.add_all(EvalResult(eval_run_id=run.id, idx=i, input=f"dialogue {i}", reference=f"They greet {i}.",
                                 prediction=f"{record.name} says {i}",
                                 scores={"rouge1": rouge[i], "rougeL": rouge[i], "toxicity": tox[i]}) for i in range(2))
            ids.append(run.id)
    return ids


def test_evaluation_without_runs_shows_info(studio):
    at = page("page_evaluation.py")
    assert not at.exception
    assert "No evaluation yet" in texts(at.info)


def test_evaluation_compare_view_bars_deltas_and_cost(studio):
    add_runs()
    at = page("page_evaluation.py")
    assert not at.exception
    assert at.multiselect(key="ev-runs").value == [1, 2]
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # scores and deltas against the base
    assert "Change against the baseline: tiny" in charts[1].proto.spec
    table = at.dataframe[0].value
    assert list(table["trainable_params"]) == [0, 1000]
    assert list(table["train_runtime"])[1] == 12.0
    assert table["delta_rouge1"].iloc[1] == pytest.approx(0.2)


def test_evaluation_toxicity_view_counts_share_above_threshold(studio):
    add_runs()
    at = page("page_evaluation.py")
    at.radio(key="ev-view").set_value("Toxicity")
    at.run()
    at.slider(key="ev-tox-threshold").set_value(0.5)
    at.run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 2  # histogram and box plot
    summary = at.dataframe[0].value
    assert list(summary["share_above"]) == [0.5, 0.0]


def test_evaluation_per_example_view_sorted_by_difference(studio):
    add_runs()
    at = page("page_evaluation.py")
    at.radio(key="ev-view").set_value("Per example")
    at.run()
    assert not at.exception
    rows = at.dataframe[0].value
    assert list(rows["idx"]) == [0, 1]  # the adapter improved example 0 most
    assert rows["diff"].iloc[0] == pytest.approx(0.5)
    assert {"reference", "tiny (#1)", "tiny-lora (#2)"} <= set(rows.columns)
    at.radio(key="ev-order").set_value("B regressed most first")
    at.run()
    assert list(at.dataframe[0].value["idx"]) == [1, 0]


def test_evaluation_training_curves_view(studio):
    job_id = queue_tiny_job(name="curvy")
    with session_scope(write=True) as s:
        queue.log_metrics(s, job_id, 1, {"loss": 2.0, "learning_rate": 1e-4})
    at = page("page_evaluation.py")  # no eval runs: only the form and the info
    add_runs()
    at = page("page_evaluation.py")
    at.radio(key="ev-view").set_value("Training curves")
    at.run()
    assert not at.exception
    assert at.multiselect(key="ev-curve-jobs").value == [job_id]
    assert at.get("plotly_chart")


def test_evaluation_form_queues_same_settings_for_each_model(studio):
    at = open_as("page_evaluation.py", the_admin())  # queueing needs an admin
    at.multiselect(key="ev-models").select("tiny")
    at.number_input(key="ev-n").set_value(5)
    at.text_input(key="ev-extra").set_value("")
    at.checkbox(key="ev-ppl").uncheck()
    at.run()
    button(at, "Run evaluation").click()
    at.run()
    assert not at.exception
    with session_scope() as s:
        job = s.scalars(select(Job)).one()
    assert (job.kind, job.status, job.spec["model"], job.spec["max_examples"]) == ("eval", "queued", "tiny", 5)
    assert job.spec["split"] == "test" and job.spec["perplexity"] is False
    assert job.spec["decoding"]["do_sample"] is False and job.spec["decoding"]["max_new_tokens"] == 64
    assert "Queued evaluation job(s)" in texts(at.success)


def test_evaluation_form_errors_are_messages(studio):
    at = open_as("page_evaluation.py", the_admin())  # queueing needs an admin
    button(at, "Run evaluation").click()
    at.run()
    assert "Pick at least one model" in texts(at.error)
    at.text_input(key="ev-dataset").set_value("/no/such/file.jsonl")
    at.run()
    assert not at.exception
    assert "not found" in texts(at.error)
    assert count(Job) == 0


# --- models --------------------------------------------------------------------------------------------------------

def test_models_page_shows_lineage_and_merges_an_adapter(studio, tiny_model_dir, tmp_path):
    from test_training_services import make_adapter

    from backend.models.store import register_model

    spec = {"kind": "sft", "name": "lora", "base_model": "tiny", "dataset": "demo:dialogsum", "peft": "lora"}
    with session_scope(write=True) as s:
        job = Job(kind="sft", name="lora", status="succeeded", spec=spec)
        s.add(job)
        s.flush()
        register_model(s, "tiny-lora", str(make_adapter(tiny_model_dir, tmp_path / "lora")), kind="adapter",
                       source="job", base_model_id=studio.id, job_id=job.id,
                       meta={"method": "lora", "base": "tiny", "dataset": "demo:dialogsum", "spec": spec,
                             "trainable_params": 1024, "total_params": 102400, "train_runtime": 7.0})
    at = page("page_models.py")
    assert not at.exception
    assert list(at.dataframe[0].value["name"]) == ["tiny", "tiny-lora"]
    assert at.selectbox(key="models-pick").value == "tiny-lora"
    assert [(m.label, m.value) for m in at.metric] == [("Kind", "adapter"), ("Method", "lora"),
                                                       ("Trained parameters", "1,024"), ("Training time", "7 s")]
    lineage = texts(at.markdown)
    assert "**base model**: `tiny`" in lineage and "**training data**: `demo:dialogsum`" in lineage
    assert "peft: lora" in at.code[0].value
    at.text_input(key="merge-name-tiny-lora").set_value("tiny-merged")
    next(b for b in at.button if b.label == "Merge and export").click()
    at.run()
    assert not at.exception
    assert "Merged into **tiny-merged**" in texts(at.success)
    with session_scope() as s:
        merged = s.scalar(select(ModelRecord).where(ModelRecord.name == "tiny-merged"))
        assert merged.kind == "full" and merged.meta["merged_from"] == "tiny-lora"
    assert (Path(local_path(merged.path, merged.source)) / "model.safetensors").is_file()
    next(b for b in at.button if b.label == "Merge and export").click()  # the same name again
    at.run()
    assert "already exists" in texts(at.error)


def test_models_page_add_bad_folder_is_a_message(studio):
    at = page("page_models.py")
    at.text_input(key="models-ref").set_value("/no/such/folder")
    next(b for b in at.button if b.label == "Add").click()
    at.run()
    assert not at.exception
    assert "neither an existing folder nor a hub id" in texts(at.error)


# --- calculators -------------------------------------------------------------------------------------------------

def test_calculators_page_seed_numbers(studio):
    at = page("page_calculators.py")
    assert not at.exception
    values = {m.label: m.value for m in at.metric}
    assert values["To load (weights only)"] == "4.00 GB"  # 1B parameters, fp32
    assert values["To train (weights + gradients + Adam + activations)"] == "24.00 GB"
    assert values["Compute-optimal training tokens (~20 per parameter)"] == "2e+10"
    assert values["LoRA r·(d+k)"] == "4,608" and values["Full weight d·k"] == "32,768"
    assert values["Fewer trainable parameters"] == "85.94 %"
    at.radio(key="mem-precision").set_value("bf16")
    at.radio(key="cmp-size").set_value("70B")
    at.run()
    values = {m.label: m.value for m in at.metric}
    assert values["To load (weights only)"] == "2.00 GB" and values["To train (weights + gradients + Adam + activations)"] == "12.00 GB"
    assert values["Training FLOPs (6·N·D)"] == "5.88e+23"  # 6 × 70e9 × 1.4e12
    assert len(at.get("plotly_chart")) == 5


def add_gpu_worker(memory_gib: float) -> None:
    from backend.db.tables import Worker, utcnow

    with session_scope(write=True) as s:
        s.add(Worker(id="gpu-box:1", host="gpu-box", pid=1, heartbeat_at=utcnow(), cpu_count=32, ram_gb=256.0,
                     devices=[{"index": 0, "name": "A100", "memory_gb": memory_gib}], labels=[]))


def test_calculators_page_plans_one_job_against_the_live_workers(studio):
    at = page("page_calculators.py")
    at.radio(key="mem-size").set_value("7B")
    at.selectbox(key="plan-method").select("QLoRA 4-bit")
    at.run()
    assert not at.exception
    peak = float({m.label: m.value for m in at.metric}["Estimated peak per GPU"].removesuffix(" GB"))
    assert 10 < peak < 20  # 7B in NF4 ≈ 3.6 GB + activations of 4 × 512 tokens
    assert "no live worker has a GPU" in texts(at.warning)
    at.toggle(key="plan-ckpt").set_value(True)
    at.run()
    assert float({m.label: m.value for m in at.metric}["Estimated peak per GPU"].removesuffix(" GB")) < peak - 5
    add_gpu_worker(16.0)
    at.selectbox(key="plan-method").select("Full fine-tuning")
    at.run()
    assert "more than the largest GPU of any live worker (17.2 GB)" in texts(at.warning)
    at.selectbox(key="plan-method").select("QLoRA 4-bit")
    at.run()
    assert "Fits the largest GPU of a live worker (17.2 GB)" in texts(at.success)


def test_sft_form_estimates_memory_and_refuses_qlora_without_a_gpu(studio):
    at = jobs_page()
    caption = next(str(c.value) for c in at.caption if str(c.value).startswith("Estimated peak memory"))
    assert "of RAM" in caption and "checkpointing off" in caption and "(fp32)" in caption  # CPU job, no GPU worker
    at.radio(key=f"{SFT}-devices").set_value("cuda")
    at.run()
    assert "needs a GPU with about" in texts(at.warning) and "no live worker has a GPU" in texts(at.warning)
    at.radio(key=f"{SFT}-devices").set_value("auto")
    at.radio(key=f"{SFT}-quant").set_value("4bit")
    at.run()
    assert "quantization: 4bit" in spec_yaml(at)
    assert "per GPU" in next(str(c.value) for c in at.caption if str(c.value).startswith("Estimated peak memory"))  # QLoRA: a GPU
    button(at, "Queue job").click()
    at.run()
    assert not at.exception
    assert "quantization 4bit needs a CUDA GPU with bitsandbytes" in texts(at.error)
    with session_scope() as s:
        assert s.scalars(select(Job)).first() is None


def test_ppo_form_offers_a_table_of_further_reward_sources(studio):
    """List-of-group fields (reward.plus) render as an editable table, and an empty table resolves to no terms."""
    at = page("page_jobs.py")
    at.radio(key="jobs-kind").set_value("ppo")
    at.run()
    assert not at.exception
    assert "plus: []" in texts(at.code)
    tables = [list(df.value.columns) for df in at.dataframe]
    assert ["source", "model", "class_label", "score_completion_only", "weight"] in tables
