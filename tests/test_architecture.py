"""The package's shape: imports only go down the layers (which also rules out cycles), no module over 400 lines,
``import obliviate`` and ``obliviate --help`` stay light, and the README's methods x benchmarks table is the one
the registries produce."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "obliviate"
README = Path(__file__).resolve().parents[1] / "README.md"

# bottom to top: a module may import its own layer and the layers below it, never one above
LAYERS = [
    {"_version", "errors", "io", "registry", "config", "core", "schema"},
    {"data", "models", "editing", "render"},
    {"metrics"},
    {"training", "evaluation"},
    {"methods", "attacks"},
    {"unlearning", "unstar", "tofu", "testbed", "muse"},
    {"benchmarks"},
    {"runner", "registry_table", "guardrails"},
    {"reports"},
    {"api"},
    {"cli", "__main__", "<root>"},
]
LAYER = {name: level for level, names in enumerate(LAYERS) for name in names}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "<root>"


def _runtime_imports(path: Path) -> set[str]:
    """obliviate modules imported by ``path``, leaving out imports under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for child in node.body for n in ast.walk(child)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("obliviate"):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("obliviate")}
    return out


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(("obliviate", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        out[name] = path
    return out


def test_every_top_level_module_has_a_layer():
    missing = {_part(m) for m in _modules()} - set(LAYER)
    assert not missing, f"place these in LAYERS: {missing}"


def test_imports_only_go_down_the_layers():
    upward = []
    for module, path in _modules().items():
        for imported in _runtime_imports(path):
            if LAYER[_part(imported)] > LAYER[_part(module)]:
                upward.append(f"{module} -> {imported}")
    assert not upward, "imports that go up a layer:\n" + "\n".join(sorted(upward))


def test_the_layer_check_catches_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from obliviate.cli.main import app\nif TYPE_CHECKING:\n    from obliviate.api import unlearn\n")
    assert _runtime_imports(bad) == {"obliviate.cli.main"}
    assert LAYER[_part("obliviate.cli.main")] > LAYER[_part("obliviate.metrics.audit")]


def test_no_module_over_400_lines():
    lengths = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert not {name: n for name, n in lengths.items() if n > 400}


def test_import_obliviate_is_light():
    code = ("import sys, obliviate; obliviate.__version__; "
            "print([m for m in ('torch', 'transformers', 'matplotlib.pyplot') if m in sys.modules])")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["[]"], out.stdout + out.stderr


def test_plots_leave_the_callers_matplotlib_backend_alone(tmp_path):
    code = ("import matplotlib; matplotlib.use('svg'); from obliviate.render.plots import plot_tradeoff; "
            f"plot_tradeoff({str(tmp_path / 'p.png')!r}, [0, 1], {{'a': [0.5, 0.2]}}, 't', 'y'); "
            "import sys; print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["svg", "False"], out.stdout + out.stderr
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_help_does_not_import_torch():
    code = ("import sys; from typer.testing import CliRunner; from obliviate.cli.main import app; "
            "r = CliRunner().invoke(app, ['--help']); r2 = CliRunner().invoke(app, ['unlearn', '--help']); "
            "print(r.exit_code, r2.exit_code, 'torch' in sys.modules, '--set' in r2.output)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["0", "0", "False", "True"], out.stdout + out.stderr


def test_readme_methods_table_is_the_registry_one():
    from obliviate.registry_table import markdown_matrix

    assert markdown_matrix() in README.read_text(), "regenerate: python -m obliviate.registry_table"


def test_the_api_has_a_function_per_command():
    import obliviate

    for name in ("audit", "unlearn", "build_testbed", "generate_antisamples", "compare", "run_tofu"):
        assert callable(getattr(obliviate, name)), name
