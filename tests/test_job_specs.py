"""Job specs: presets validate, bad values give one readable StudioError naming the field, YAML round trips."""

import pytest

from backend.errors import StudioError
from jobs.registry import KINDS, parse_spec
from jobs.spec_files import list_presets, load_spec_file, spec_to_yaml
from jobs.specs import EvalSpec, SFTSpec

PRESETS = list_presets()


def test_presets_exist():
    assert {"eval-dialogsum", "sft-lora-dialogsum", "sft-lora-tiny-cpu"} <= set(PRESETS)


def test_every_kind_has_a_preset():
    kinds = {load_spec_file(path).kind for path in PRESETS.values()}
    assert kinds == set(KINDS)


def test_every_kind_names_an_importable_runner_and_a_check():
    import importlib.util

    for name, kind in KINDS.items():
        assert kind.spec.model_fields["kind"].default == name
        assert importlib.util.find_spec(kind.runner) is not None, kind.runner
        assert callable(kind.check)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_validates(name):
    spec = load_spec_file(PRESETS[name])
    assert isinstance(spec, KINDS[spec.kind].spec)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_yaml_round_trip(name, tmp_path):
    spec = load_spec_file(PRESETS[name])
    path = tmp_path / "spec.yaml"
    path.write_text(spec_to_yaml(spec), encoding="utf-8")
    again = load_spec_file(path)
    assert again == spec
    assert spec_to_yaml(again) == spec_to_yaml(spec)


def test_defaults_are_valid_and_round_trip():
    for spec in (SFTSpec(), EvalSpec()):
        import yaml

        assert parse_spec(yaml.safe_load(spec_to_yaml(spec))) == spec


@pytest.mark.parametrize(("data", "field"), [
    ({"kind": "sft", "lora": {"r": 0}}, "lora.r"),
    ({"kind": "sft", "train": {"learning_rate": -1e-4}}, "train.learning_rate"),
    ({"kind": "sft", "train": {"batch_size": 0}}, "train.batch_size"),
    ({"kind": "sft", "train": {"max_steps": 0}}, "train.max_steps"),
    ({"kind": "sft", "lora": {"target_modules": []}}, "lora.target_modules"),
    ({"kind": "sft", "peft": "qlora"}, "peft"),
    ({"kind": "sft", "learning_rate": 1e-4}, "learning_rate"),  # unknown top-level field (belongs in train)
    ({"kind": "sft", "train": {"lr": 1e-4}}, "train.lr"),
    ({"kind": "eval", "batch_size": 0}, "batch_size"),
    ({"kind": "eval", "decoding": {"num_return_sequences": 2}}, "num_return_sequences"),
    ({"kind": "eval", "decoding": {"num_return_sequences": 3, "do_sample": True}}, "num_return_sequences"),
    ({"kind": "eval", "decoding": {"temperature": -1}}, "decoding.temperature"),
])
def test_bad_values_name_the_field(data, field):
    with pytest.raises(StudioError) as err:
        parse_spec(data)
    msg = str(err.value)
    assert field in msg
    assert "\n" not in msg
    assert "pydantic" not in msg.lower()  # no links to pydantic docs in user-facing text


def test_unknown_field_message():
    with pytest.raises(StudioError, match="foo: unknown field"):
        parse_spec({"kind": "eval", "foo": 1})


@pytest.mark.parametrize("data", [{"kind": "telepathy"}, {"name": "x"}, {"kind": ["sft"]}, None, ["kind", "sft"], "sft"])
def test_unknown_or_missing_kind(data):
    with pytest.raises(StudioError) as err:
        parse_spec(data)
    assert "kind" in str(err.value)
    assert "sft" in str(err.value) and "eval" in str(err.value)


def test_several_problems_reported_together():
    with pytest.raises(StudioError) as err:
        parse_spec({"kind": "sft", "lora": {"r": 0}, "train": {"batch_size": 0}})
    assert "lora.r" in str(err.value) and "train.batch_size" in str(err.value)


def test_spec_file_errors(tmp_path):
    with pytest.raises(StudioError, match="No spec file"):
        load_spec_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: sft\nlora: {r: [\n", encoding="utf-8")
    with pytest.raises(StudioError, match="not valid YAML") as err:
        load_spec_file(bad)
    assert "\n" not in str(err.value)
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(StudioError, match="empty"):
        load_spec_file(empty)


def test_every_field_has_a_description():
    from pydantic import BaseModel

    def walk(model: type[BaseModel]):
        for name, field in model.model_fields.items():
            if name == "kind":
                continue
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel) and name in ("lora", "train"):
                walk(ann)
                continue
            assert field.description, f"{model.__name__}.{name} has no description"

    walk(SFTSpec)
    walk(EvalSpec)
