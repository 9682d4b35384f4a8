"""The Dockerfile's contract, checked without a Docker daemon (none on the project's machines): it installs with
the README's setup command, copies everything that command needs and nothing .dockerignore drops, runs as a
non-root user and serves on 0.0.0.0 by default."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [(m.group(1).upper(), m.group(2).strip()) for m in re.finditer(r"^(\w+)\s+(.*)$", text, re.M)
            if not m.group(0).startswith("#")]


def test_dockerfile_installs_with_the_readme_command_as_non_root() -> None:
    steps = _instructions()
    readme = (ROOT / "README.md").read_text()
    assert "bash scripts/setup.sh" in readme.split("\n```", 2)[1]  # the README's install/test line
    kinds = [k for k, _ in steps]
    user_at = kinds.index("USER")
    setup_at = next(i for i, (k, v) in enumerate(steps) if k == "RUN" and v == "bash scripts/setup.sh")
    assert user_at < setup_at and steps[user_at][1] not in ("root", "0")
    assert steps[-1] == ("CMD", '["serve", "--host", "0.0.0.0", "--port", "8000"]')
    assert ("ENTRYPOINT", '["sarcodec"]') in steps


def test_everything_copied_exists_and_is_not_dockerignored() -> None:
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    sources = []
    for kind, value in _instructions():
        if kind == "COPY":
            parts = [p for p in value.split() if not p.startswith("--")]
            sources += parts[:-1]
    assert {"pyproject.toml", "scripts", "sarcodec"} <= set(sources)
    for src in sources:
        assert (ROOT / src).exists(), src
        assert not any(fnmatch.fnmatch(src, pattern) for pattern in ignored), src
    # what setup.sh installs from: the package's own files, inside the copied folders
    assert "weights/*.safetensors" in (ROOT / "pyproject.toml").read_text()
