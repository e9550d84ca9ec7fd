"""Guards for DESIGN.md's never-list: no personal traits, no PETA personal labels, no templates.

These tests fail if someone adds, anywhere in the package, a dataclass / pydantic field named
after a protected trait, a function or route that stores face/body templates or embeddings,
or code that reads PETA's labels about the person rather than their clothes.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import BaseModel

import crowdsight
from crowdsight.describe import Description, peta

PACKAGE_DIR = Path(crowdsight.__file__).parent

#: Name tokens that would describe a protected trait of a person.
TRAIT_TOKENS = frozenset(
    {
        "gender", "sex", "male", "female", "man", "woman", "men", "women", "age", "ages",
        "aged", "ethnicity", "ethnic", "race", "racial", "religion", "religious", "skin",
        "nationality", "medical", "disability", "pregnant", "pregnancy", "sexuality",
    }
)  # fmt: skip
#: Name tokens of biometric identification machinery.
TEMPLATE_TOKENS = frozenset(
    {
        "embedding", "embeddings", "embed", "template", "templates", "faceprint", "biometric",
        "biometrics", "gallery", "watchlist", "reid", "identify", "identification",
        "recognise", "recognize", "recognition",
    }
)  # fmt: skip


def tokens(name: str) -> set[str]:
    """Lower-case words of a snake_case / camelCase / kebab or path name."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return {t.lower() for t in re.split(r"[^A-Za-z0-9]+", spaced) if t}


@pytest.mark.parametrize(
    ("name", "bad"),
    [("personGender", True), ("age_band", True), ("image_age", True), ("image", False),
     ("stage", False), ("average_speed", False), ("usage", False), ("face_embedding", True)],
)  # fmt: skip
def test_tokeniser(name: str, bad: bool) -> None:
    assert bool(tokens(name) & (TRAIT_TOKENS | TEMPLATE_TOKENS)) is bad


def _modules() -> list[ModuleType]:
    mods = []
    for info in pkgutil.walk_packages([str(PACKAGE_DIR)], prefix="crowdsight."):
        if "migrations" in info.name or info.name.endswith("__main__"):
            continue
        try:
            mods.append(importlib.import_module(info.name))
        except ImportError:  # optional extra (ray, torch...) missing: the AST scan covers it
            continue
    return mods


def _schema_fields() -> dict[str, list[str]]:
    """Field names of every dataclass and pydantic model defined in the package."""
    out: dict[str, list[str]] = {}
    for mod in _modules():
        for name, obj in vars(mod).items():
            if not inspect.isclass(obj) or obj.__module__ != mod.__name__:
                continue
            if dataclasses.is_dataclass(obj):
                out[f"{mod.__name__}.{name}"] = [f.name for f in dataclasses.fields(obj)]
            elif issubclass(obj, BaseModel):
                out[f"{mod.__name__}.{name}"] = list(obj.model_fields)
    return out


def test_no_trait_fields_in_any_schema_or_dataclass() -> None:
    fields = _schema_fields()
    assert f"{Description.__module__}.Description" in fields  # the scan sees our schemas
    bad = {
        cls: [f for f in names if tokens(f) & TRAIT_TOKENS]
        for cls, names in fields.items()
        if any(tokens(f) & TRAIT_TOKENS for f in names)
    }
    assert bad == {}


def _source_names() -> list[tuple[str, str]]:
    """(file, name) of every function, class and string route path in the package source."""
    out = []
    for path in PACKAGE_DIR.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                out.append((str(path), node.name))
            elif (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value.startswith(("/api", "/v1"))
            ):
                out.append((str(path), node.value))
    return out


def test_no_template_or_embedding_storage_names_in_source() -> None:
    bad = [(f, n) for f, n in _source_names() if tokens(n) & TEMPLATE_TOKENS]
    assert bad == []


def test_no_template_or_trait_routes_in_the_api(tmp_path: Path) -> None:
    try:
        from crowdsight.config.server import ServerSettings
        from crowdsight.server.app import create_app
    except ImportError:
        pytest.skip("no FastAPI app in this build")
    app = create_app(ServerSettings(database_url=f"sqlite:///{tmp_path / 'cs.db'}"))
    words: list[str] = []
    for route in app.routes:
        words.append(getattr(route, "path", ""))
        endpoint = getattr(route, "endpoint", None)
        words.append(getattr(endpoint, "__name__", ""))
    assert any(w.startswith("/api") for w in words)
    bad = [w for w in words if tokens(w) & (TEMPLATE_TOKENS | TRAIT_TOKENS)]
    assert bad == []


def test_peta_reader_never_keeps_personal_labels(tmp_path: Path) -> None:
    label = tmp_path / "GRID" / "archive" / "Label.txt"
    label.parent.mkdir(parents=True)
    label.write_text(
        "0001 upperBodyRed lowerBodyBlack personalMale personalLess30 hairLong "
        "carryingBackpack accessoryHat\n"
    )
    (label.parent / "0001_1_x.jpeg").write_bytes(b"")
    (item,) = peta.iter_subset(tmp_path, "GRID")
    kept = set(item.upper) | set(item.lower) | set(item.carrying)
    assert kept == {"red", "black", "backpack"}
    assert all(not tok.startswith("personal") for tok in peta.ALLOWED_LABELS)
    assert all(not tok.startswith("hair") for tok in peta.ALLOWED_LABELS)


def test_eval_code_never_names_personal_labels() -> None:
    from crowdsight.cli import eval_attributes

    for mod in (peta, eval_attributes):
        src = inspect.getsource(mod)
        assert "personal" not in src.lower(), mod.__name__
