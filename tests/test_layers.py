"""Architecture rules, checked on the source: imports point down and heavy libraries stay lazy."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HEAVY = {"torch", "transformers", "trl", "peft", "datasets", "sentence_transformers", "faiss"}


def top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:  # module level only: imports inside functions are lazy by design
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def files(*folders: str) -> list[Path]:
    return [p for f in folders for p in sorted((REPO / f).rglob("*.py"))]


@pytest.mark.parametrize("path", files("app"), ids=lambda p: str(p.relative_to(REPO)))
def test_pages_import_no_heavy_library_at_module_level(path):
    assert not top_level_imports(path) & HEAVY


@pytest.mark.parametrize("path", files("backend", "labeling", "jobs"), ids=lambda p: str(p.relative_to(REPO)))
def test_only_app_imports_streamlit(path):
    assert "streamlit" not in top_level_imports(path)


@pytest.mark.parametrize("path", [p for p in files("backend", "labeling") if "penalties" not in p.name],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_services_and_domain_keep_heavy_imports_lazy(path):
    assert not top_level_imports(path) & HEAVY


@pytest.mark.parametrize("path", files("app"), ids=lambda p: str(p.relative_to(REPO)))
def test_pages_hold_no_sql_or_subprocess(path):
    imports = top_level_imports(path)
    assert not imports & {"sqlalchemy", "subprocess"}
