"""The architecture as a test: every module imports, and imports only downwards.

Data flows one way: data → model → training → labeling and robustness →
teacher/student CLIs → iteration and report. A module may import its own
layer and the layers below it, never one above, so each layer can be read,
tested and reused without the ones built on it. Also: every shell script
parses, with the Python it embeds.
"""

import ast
import importlib
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Lowest first. Packages on one rank may not import each other either.
LAYERS = [
    ("efficientnet.util",),
    ("efficientnet.data",),
    ("efficientnet.model",),
    ("efficientnet.train",),
    ("pseudolabel", "robustness"),
    ("teacher", "student"),
    ("pipelines",),
]
PACKAGES = ["efficientnet", "teacher", "student", "pseudolabel", "pipelines", "robustness"]


def project_modules() -> list[str]:
    modules = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def layer_of(module: str) -> tuple[int, str] | None:
    for rank, packages in enumerate(LAYERS):
        for package in packages:
            if module == package or module.startswith(package + "."):
                return rank, package
    return None  # the top-level `efficientnet` package itself: its lazy public API


def imported_modules(module: str) -> set[str]:
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT / module.replace(".", "/") / "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
    return {name for name in found if name.split(".")[0] in PACKAGES}


def test_every_module_has_a_layer():
    unplaced = [m for m in project_modules() if layer_of(m) is None and m != "efficientnet"]
    assert unplaced == []


@pytest.mark.parametrize("module", project_modules())
def test_imports_go_only_downwards(module):
    own = layer_of(module)
    if own is None:
        return
    upward = []
    for name in imported_modules(module):
        other = layer_of(name)
        if other is None:
            continue  # `efficientnet` (the lazy public API) or a bare `efficientnet.<layer>` package
        if other[0] > own[0] or (other[0] == own[0] and other[1] != own[1]):
            upward.append(name)
    assert upward == [], f"{module} imports from a layer above or beside it"


def defines_flags(module: str) -> bool:
    """CLIs, and the module that generates the training flags, define absl flags at import, so
    two of them cannot share a process; each runs as its own process in the CLI and fault tests."""
    path = ROOT / (module.replace(".", "/") + ".py")
    return path.exists() and ('\nif __name__ == "__main__":' in path.read_text() or "flags.DEFINE_" in path.read_text())


@pytest.mark.parametrize("module", [m for m in project_modules() if not defines_flags(m)])
def test_library_module_imports(module):
    importlib.import_module(module)


def test_layout_table_matches_the_tree():
    """Every module of the project is named in the layout table of docs/development.md, and every name there exists."""
    text = (ROOT / "docs" / "development.md").read_text()
    table = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    named = set()
    for folder, cell in re.findall(r"^\| `([a-z_/]+/)` \| (.*) \|$", table, flags=re.M):
        named |= {folder + name for name in re.findall(r"`([a-z_0-9]+\.(?:py|json|md))`", cell)}
    on_disk = set()
    for folder in {name.rsplit("/", 1)[0] + "/" for name in named}:
        for path in (ROOT / folder).iterdir():
            if path.suffix in (".py", ".json", ".md") and path.name not in ("__init__.py", "README.md"):
                on_disk.add(folder + path.name)
    assert named == on_disk
    packages = {name.rsplit("/", 1)[0] for name in named}
    assert {p for p in PACKAGES if p != "efficientnet"} | {
        f"efficientnet/{layer}" for layer in LAYER_FOLDERS
    } <= packages


LAYER_FOLDERS = ("util", "data", "model", "train")


SHELL_SCRIPTS = sorted(
    [*ROOT.glob("*.sh"), *ROOT.glob("scripts/*.sh"), *ROOT.glob("benchmarks/*.sh"), ROOT / ".ci/run"]
)
# Python a script hands to the venv's interpreter: `python - ARGS <<'EOF'` … `EOF`, or `python -c '…'`.
EMBEDDED_PYTHON = re.compile(r"python3? - [^\n]*<<'(\w+)'\n(.*?)\n\1\n|python3? -c '([^']*)'", re.DOTALL)


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_shell_script_parses_and_the_python_it_embeds_compiles_here(script):
    """A script runs once a long job is done (a summary, a table), so a syntax error there shows
    only after hours: `bash -n` and this interpreter's compiler find it at once (an f-string
    quoting style that only Python 3.12 accepts, for instance)."""
    parsed = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert parsed.returncode == 0, parsed.stderr
    for _, heredoc, inline in EMBEDDED_PYTHON.findall(script.read_text()):
        compile(heredoc or inline, f"{script.name} (embedded)", "exec")
