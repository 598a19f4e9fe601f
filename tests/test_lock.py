"""requirements.lock is what every install uses, and it agrees with pyproject.toml."""

import re
from pathlib import Path

import tomllib
import yaml
from helpers import ROOT
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

LOCK = ROOT / "requirements.lock"
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")
ENVIRONMENT_311 = {
    "python_version": "3.11",
    "python_full_version": "3.11.7",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "implementation_name": "cpython",
    "os_name": "posix",
}


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]


def _entries(lock: Path = LOCK) -> list[dict]:
    """Each pinned package: name, version, marker, hashes and what the lock says needs it."""
    entries: list[dict] = []
    for line in lock.read_text().splitlines():
        match = PIN.match(line)
        if match:
            entries.append(
                {
                    "name": canonicalize_name(match.group(1)),
                    "version": Version(match.group(2)),
                    "marker": Marker(match.group(3)) if match.group(3) else None,
                    "hashes": 0,
                    "via": "",
                }
            )
        elif entries and line.strip().startswith("--hash=sha256:"):
            entries[-1]["hashes"] += 1
        elif entries and line.strip().startswith("#"):
            entries[-1]["via"] += line
    return entries


def _for_python_311() -> dict:
    return {e["name"]: e for e in _entries() if e["marker"] is None or e["marker"].evaluate(ENVIRONMENT_311)}


def test_every_locked_package_is_pinned_exactly_with_hashes():
    entries = _entries()
    assert len(entries) > 100
    unhashed = [e["name"] for e in entries if e["hashes"] == 0]
    assert not unhashed
    lines = [line for line in LOCK.read_text().splitlines() if line and not line.startswith((" ", "#"))]
    assert len(lines) == len(entries), "a requirement in the lock is not an exact pin"


def test_lock_satisfies_every_requirement_of_pyproject():
    locked = _for_python_311()
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} is in pyproject.toml but not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(locked[name]["version"], prereleases=True), (
            f"pyproject.toml asks for {requirement}, requirements.lock pins {locked[name]['version']}: run `make lock`"
        )


def test_lock_was_compiled_from_exactly_the_requirements_of_pyproject():
    """A requirement dropped from pyproject.toml must leave the lock too (the lock names its sources)."""
    direct = {e["name"] for e in _entries() if "churn-pipeline (pyproject.toml)" in e["via"]}
    assert direct == {canonicalize_name(r.name) for r in _declared()}, "run `make lock`"


def test_the_pins_that_keep_local_and_cloud_alike_are_locked_within_range():
    locked = _for_python_311()
    assert locked["xgboost"]["version"].release[:2] == (3, 0)  # the SageMaker XGBoost 3.0-5 container
    assert locked["pyspark"]["version"].release[:2] == (3, 5)  # AWS Glue 5.0
    assert locked["sagemaker"]["version"].major == 2  # the stepfunctions SDK needs v2


def test_every_install_path_uses_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes --no-deps -r $(LOCK)" in makefile and "LOCK := requirements.lock" in makefile
    buildspec = yaml.safe_load((ROOT / "buildspec.yml").read_text())
    install = " ".join(buildspec["phases"]["install"]["commands"])
    assert "--require-hashes --no-deps -r requirements.lock" in install
    assert "--no-deps --no-build-isolation -e ." in install
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "openjdk=17" in environment["dependencies"] and "python=3.11" in environment["dependencies"]
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    assert pip_section == ["--require-hashes", "-r requirements.lock"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_container_lock_pins_the_images_packages_with_hashes():
    """requirements-container.lock (the SageMaker XGBoost container's Python 3.10) pins exactly what
    requirements-container.in takes from the image, each with hashes, and the same XGBoost as the project."""
    wanted = {
        canonicalize_name(r.name): r
        for r in (Requirement(line) for line in (ROOT / "requirements-container.in").read_text().splitlines()
                  if line.strip() and not line.startswith("#"))
    }  # fmt: skip
    locked = {e["name"]: e for e in _entries(ROOT / "requirements-container.lock")}
    assert all(entry["hashes"] >= 1 for entry in locked.values())
    for name, requirement in wanted.items():
        assert name in locked and requirement.specifier.contains(locked[name]["version"]), (
            f"{requirement}: run `make lock-container`"
        )
    assert locked["xgboost"]["version"] == _for_python_311()["xgboost"]["version"]
