"""What can be checked of docker/ without a Docker engine (issue 11): the runtime stage installs
a package for every shared library the built binary needs (besides the Swift runtime, which the
image links statically), runs as a non-root user with a HEALTHCHECK on /health, and the compose
files parse and use only flags `kine` has."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

import harness

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"


def stages(dockerfile: str) -> list[list[str]]:
    """The instructions of each stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile)
    out: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            out.append([])
        if out:
            out[-1].append(line)
    return out


def apt_installed(stage: list[str]) -> set[str]:
    pkgs: set[str] = set()
    for line in stage:
        if not line.upper().startswith("RUN "):
            continue
        for command in line[4:].split("&&"):
            words = shlex.split(command)
            if words[:2] == ["apt-get", "install"]:
                pkgs |= {w for w in words[2:] if not w.startswith("-")}
    return pkgs


def dpkg_owner(path: str) -> str | None:
    for candidate in {path, str(Path(path).resolve())}:
        r = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":")[0].strip()
    # /lib is a symlink to /usr/lib on Debian 12: dpkg knows one spelling.
    alt = path.replace("/usr/lib/", "/lib/") if path.startswith("/usr/lib/") else path.replace("/lib/", "/usr/lib/", 1)
    r = subprocess.run(["dpkg", "-S", alt], capture_output=True, text=True)
    return r.stdout.split(":")[0].strip() if r.returncode == 0 else None


def depends_closure(pkgs: set[str]) -> set[str]:
    """Every installed package the given ones pull in (Depends and Pre-Depends, recursively)."""
    seen, todo = set(), list(pkgs)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        r = subprocess.run(["dpkg-query", "-W", "-f=${Depends}, ${Pre-Depends}", p], capture_output=True, text=True)
        for alt in r.stdout.split(","):
            for name in alt.split("|")[:1]:
                name = name.strip().split(" ")[0].split(":")[0]
                if name:
                    todo.append(name)
    return seen


def test_runtime_stage_has_every_shared_library():
    build, runtime = stages((DOCKER / "Dockerfile").read_text())[:2]
    assert "--static-swift-stdlib" in " ".join(build), "the build stage must link the Swift runtime statically"
    installed = apt_installed(runtime)
    closure = depends_closure(installed)
    ldd = subprocess.run(["ldd", harness.kine_binary()], capture_output=True, text=True, check=True).stdout
    libs = re.findall(r"=>\s+(\S+)\s+\(", ldd)
    assert libs, ldd
    missing = []
    for lib in libs:
        if "/swift/" in lib:
            continue  # the Swift runtime: statically linked in the image
        owner = dpkg_owner(lib)
        assert owner, f"no Debian package owns {lib}"
        if owner not in closure:
            missing.append((lib, owner))
    assert not missing, f"the runtime stage does not install: {missing}"
    text = " ".join(runtime)
    assert re.search(r"^USER\s+(?!root|0\b)\S+", "\n".join(runtime), re.M), "the runtime stage must run as a non-root user"
    assert "HEALTHCHECK" in text and "/health" in text, "the runtime stage needs a HEALTHCHECK on /health"
    assert runtime[0].startswith("FROM debian:bookworm-slim"), runtime[0]


def kine_flags() -> set[str]:
    kine = harness.kine_binary()
    text = "".join(subprocess.run([kine, *a, "--help"], capture_output=True, text=True).stdout for a in ([], ["serve"]))
    return set(re.findall(r"(--[a-z][a-z0-9-]+)", text))


@pytest.mark.parametrize("name", ["compose.yaml", "compose.ha.yaml"])
def test_compose_files_parse_and_use_known_flags(name):
    doc = yaml.safe_load((DOCKER / name).read_text())
    services = doc["services"]
    known = kine_flags()
    kines = {n: s for n, s in services.items() if "kine" in n}
    assert kines, f"{name} has no kine service"
    for n, s in kines.items():
        assert s.get("build", {}).get("dockerfile") == "docker/Dockerfile", (n, s.get("build"))
        flags = [w for w in s["command"] if isinstance(w, str) and w.startswith("--")]
        assert flags, n
        unknown = [f for f in flags if f not in known]
        assert not unknown, f"{name}: service {n} uses flags kine does not have: {unknown}"
        endpoint = s["command"][s["command"].index("--endpoint") + 1]
        host = re.match(r"postgres://[^@]+@([^:/]+)", endpoint).group(1)
        assert host in services, f"{name}: {n}'s --endpoint names {host}, not a service"
    for n, s in services.items():
        for dep in s.get("depends_on", {}):
            assert dep in services, (n, dep)
