"""Where the Kubernetes binaries the Kubernetes suites run come from.

kube-apiserver, kube-controller-manager, kube-scheduler and k3s are test tools, not part of kine.
`find(name)` looks, in order, in:
  1. $KINE_KUBE_BIN_DIR (a directory holding the plain binaries);
  2. PATH;
  3. ../shared/tools/kubernetes beside the checkout (this project's machines and CI), whose `NAME.xz`
     files are unpacked once into .build/kube/ (checked against the sha256 listed below).
It returns None when a binary is nowhere; `require(*names)` turns that into a pytest skip naming
what is missing and where it looked.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "tools" / "kubernetes"
UNPACKED = REPO / ".build" / "kube"

# sha256 of the unpacked binaries in ../shared/tools/kubernetes (its README lists the same).
KNOWN_SHA256 = {
    "kube-apiserver": "e2052d8902a5cdcefc5ed5478ea516380a85301314342208ba0c10cca2c9fa6d",
    "kube-controller-manager": "47e6e2a982fab972a252015ab83a6c31c1f09df605a26abde363f420e1f7ad6f",
    "kube-scheduler": "3336a02b01e362d674f611b0f2b92c1104332438a5eb3d323181ef512d6c00f6",
    "k3s": "4ade1bfc3847491219cfc469c0947753ea04f50625f17ad48c77c9c417cfb1ee",
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _unpack(name: str) -> Path | None:
    packed = SHARED / f"{name}.xz"
    if not packed.exists():
        return None
    out = UNPACKED / name
    stamp = UNPACKED / f"{name}.sha256"
    want = KNOWN_SHA256.get(name)
    if out.exists() and stamp.exists() and stamp.read_text().strip() == (want or stamp.read_text().strip()):
        return out
    UNPACKED.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".part")
    with lzma.open(packed) as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    digest = _sha256(tmp)
    if want and digest != want:
        tmp.unlink()
        raise RuntimeError(f"{packed} unpacks to sha256 {digest}, expected {want}")
    tmp.chmod(0o755)
    tmp.replace(out)
    stamp.write_text(digest + "\n")
    return out


def find(name: str) -> str | None:
    """The path of Kubernetes binary `name`, or None."""
    d = os.environ.get("KINE_KUBE_BIN_DIR")
    if d:
        p = Path(d) / name
        if p.exists() and os.access(p, os.X_OK):
            return str(p)
    p = shutil.which(name)
    if p:
        return p
    p = _unpack(name)
    return str(p) if p else None


def missing(*names: str) -> list[str]:
    return [n for n in names if find(n) is None]


def require(*names: str) -> dict[str, str]:
    """The paths of `names`, or a pytest skip that names what is missing and where it looked."""
    import pytest

    gone = missing(*names)
    if gone:
        pytest.skip(f"Kubernetes binaries not found: {', '.join(gone)} (looked in $KINE_KUBE_BIN_DIR, "
                    f"PATH and {SHARED}/*.xz)")
    return {n: str(find(n)) for n in names}
