"""Locked installs: requirements.lock pins every package (torch, never torchvision), agrees with
pyproject.toml's ranges and with what is installed; each run directory records the versions."""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from vsrlab.apps.train import train
from vsrlab.run.snapshot import KEY_PACKAGES

REPO = Path(__file__).resolve().parents[1]


def locked() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line and not line.startswith((" ", "#", "-")):
            name, _, version = line.partition("==")
            assert version, f"not pinned in requirements.lock: {line!r}"
            pins[canonicalize_name(name)] = version.split(";")[0].strip()
    return pins


def declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["dev"]]]


def test_the_lock_pins_every_declared_dependency_within_its_range():
    pins = locked()
    assert pins["torch"] == "2.13.0" and "torchvision" not in pins
    assert not any(re.search(r"\+", v) for v in pins.values()), (
        "local version tags (+cpu) do not belong in the lock"
    )
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (name, pins[name], requirement)


def test_installed_versions_are_the_locked_ones():
    """`make` installs requirements.lock: what runs is what the lock says."""
    pins = locked()
    differ = {}
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        installed = Version(metadata.version(name))
        if Version(installed.base_version if name == "torch" else str(installed)) != Version(pins[name]):
            differ[name] = (str(installed), pins[name])
    assert not differ, (
        f"installed != requirements.lock (run `make install`, or `make lock` after a change): {differ}"
    )


def test_a_run_directory_records_package_versions(make_cfg, tmp_path):
    train(make_cfg(overrides=["test=false", "trainer.max_steps=2"]))
    env = json.loads((tmp_path / "run" / "environment.json").read_text())
    assert set(env["packages"]) == set(KEY_PACKAGES)
    assert env["packages"]["torch"] == metadata.version("torch")
    assert env["packages"]["pytorch-lightning"] == metadata.version("pytorch-lightning")
    assert env["python"].count(".") == 2 and "cuda" in env["torch"]
