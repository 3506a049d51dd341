"""Fixtures: a real `medgate serve --demo` process on free ports, in a temporary data dir."""

import json
import os
import pathlib
import socket
import subprocess
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def medgate_binary() -> str:
    explicit = os.environ.get("MEDGATE_BIN")
    if explicit:
        return explicit
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return str(target / "debug" / "medgate")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def demo():
    """Starts medgate with --demo and yields its credentials; stops it with SIGTERM."""
    data_dir = tempfile.mkdtemp(prefix="medgate-pytest-")
    api_port, proxy_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDGATE_")}
    proc = subprocess.Popen(
        [
            medgate_binary(), "serve", "--demo", "--data-dir", data_dir,
            "--api-listen", f"127.0.0.1:{api_port}", "--proxy-listen", f"127.0.0.1:{proxy_port}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(data_dir, "server.log"), "w"),
    )
    creds_path = pathlib.Path(data_dir, "demo-credentials.json")
    deadline = time.time() + 30
    while not creds_path.exists():
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError("medgate did not start: " + pathlib.Path(data_dir, "server.log").read_text())
        time.sleep(0.1)
    time.sleep(0.2)
    creds = json.loads(creds_path.read_text())
    creds["data_dir"] = data_dir
    yield creds
    proc.terminate()
    proc.wait(timeout=15)
