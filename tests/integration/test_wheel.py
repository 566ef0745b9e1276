"""The package as a user gets it: the wheel and the sdist built from the source tree, the
wheel installed into a fresh virtual environment in a temporary directory (its dependencies
from the package index, as for a user), and ``twistd xmppd`` started from there, outside the
checkout and without PYTHONPATH: slixmpp logs two users in and they exchange a message.

What makes this fail: a package or data file missing from the wheel (a migration, the twistd
plugin), a file the sdist lacks, code that reads something from the checkout.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from tests.integration.conftest import PASSWORD, login, logout
from tests.integration.serverproc import XmppdProcess

ROOT = Path(__file__).resolve().parents[2]
IGNORE = shutil.ignore_patterns(".venv", ".git", "var", "build", "dist", "*.egg-info",
                                "__pycache__", ".pytest_cache", "dropin.cache", "tests", "bench")
DATA_SUFFIXES = (".sql", ".json", ".xml", ".html", ".css", ".js", ".txt", ".toml")


def run(*args, cwd: Path, timeout: float = 300, env: dict | None = None):
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, env=env)
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result


def clean_env() -> dict:
    """The environment a user's shell has: no PYTHONPATH, no virtualenv of ours."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(wheel, sdist) built from a copy of the source tree (the checkout stays untouched)."""
    base = tmp_path_factory.mktemp("package")
    source = base / "source"
    copy_source(source)
    dist = base / "dist"
    run(sys.executable, "-m", "build", "--outdir", dist, source, cwd=base, env=clean_env())
    wheels, sdists = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(dist.iterdir())
    return wheels[0], sdists[0]


def copy_source(target: Path) -> None:
    """The files a clone has (tracked, and new ones not ignored), nothing built or run."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, capture_output=True, timeout=60)
    if listed.returncode != 0:  # not a git checkout (an unpacked sdist): copy the tree
        shutil.copytree(ROOT, target, ignore=IGNORE)
        return
    for name in listed.stdout.decode().split("\0"):
        path = ROOT / name
        if name and path.is_file() and not name.startswith(("tests/", "bench/")):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / name)


def package_files() -> list[str]:
    """Every file under xmppd/ that the running server may need: modules and data."""
    found = []
    for path in sorted((ROOT / "xmppd").rglob("*")):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        if path.suffix == ".py" or path.suffix in DATA_SUFFIXES:
            found.append(path.relative_to(ROOT).as_posix())
    return found


def test_the_wheel_and_sdist_hold_every_module_and_data_file(built):
    wheel, sdist = built
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = set(archive.namelist())
    missing = [name for name in package_files() if name not in in_wheel]
    assert not missing, f"not in the wheel: {missing}"
    assert "twisted/plugins/xmppd_plugin.py" in in_wheel
    data = [name for name in in_wheel if ".data/data/share/xmppd/" in name]
    assert sorted(Path(name).name for name in data) == ["grafana-dashboard.json",
                                                        "xmppd.service", "xmppd.toml"]
    with tarfile.open(sdist) as archive:
        in_sdist = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for name in ("README.md", "setup.cfg", "pyproject.toml", "etc/xmppd.toml",
                 "etc/xmppd.service", "etc/grafana-dashboard.json",
                 "twisted/plugins/xmppd_plugin.py"):
        assert name in in_sdist, name
    missing = [name for name in package_files() if name not in in_sdist]
    assert not missing, f"not in the sdist: {missing}"


def test_installed_from_the_wheel_it_serves_clients(built, tmp_path):
    wheel, _sdist = built
    home = tmp_path / "user"  # outside the checkout, as a user's directory
    home.mkdir()
    venv = home / "venv"
    env = clean_env()
    run(sys.executable, "-m", "venv", venv, cwd=home, env=env)
    bin_dir = venv / "bin"
    run(bin_dir / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
        wheel, cwd=home, env=env, timeout=600)
    where = run(bin_dir / "python", "-c", "import xmppd.service, twisted.plugins.xmppd_plugin;"
                "print(xmppd.__file__)", cwd=home, env=env).stdout.strip()
    assert where.startswith(str(venv)), where  # not the checkout's
    assert (venv / "share" / "xmppd" / "xmppd.toml").exists()
    assert (venv / "share" / "xmppd" / "grafana-dashboard.json").exists()

    proc = XmppdProcess(home / "server")  # its config, certificate and ports
    for user in ("alice", "bob"):
        run(bin_dir / "xmppdctl", "--config", proc.config, "adduser", f"{user}@localhost",
            PASSWORD, cwd=home, env=env)
    with open(proc.log_path, "ab") as log:
        process = subprocess.Popen(
            [str(bin_dir / "twistd"), "--pidfile=", "-n", "xmppd", "--config", str(proc.config)],
            cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90  # a loaded CI machine: first imports are slow
        while "xmppd is serving" not in proc.log():
            assert process.poll() is None, proc.log()
            assert time.monotonic() < deadline, proc.log()
            time.sleep(0.2)

        async def scenario():
            alice = await login(proc, "alice@localhost")
            bob = await login(proc, "bob@localhost")
            got = asyncio.get_running_loop().create_future()
            bob.add_event_handler("message", lambda m: got.done() or got.set_result(m))
            alice.send_message(mto=bob.boundjid.full, mbody="from a wheel", mtype="chat")
            assert (await asyncio.wait_for(got, 20))["body"] == "from a wheel"
            await logout(alice)
            await logout(bob)

        asyncio.run(scenario())
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, proc.log()
    assert "Traceback" not in proc.log(), proc.log()
    assert str(ROOT) not in proc.log()  # nothing came from the checkout
