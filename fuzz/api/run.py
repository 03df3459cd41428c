"""Property-based fuzzing of Clarion's HTTP API with schemathesis, against a real server.

Builds `clarion` (cargo, honouring CARGO_TARGET_DIR; or CLARION_BIN), starts it on a free port
with one known app (config written to a temporary directory), and runs `schemathesis run` on
docs/openapi.yaml with hooks.py signing every request. Checks: no 5xx, every status and body
as the description says, schema-violating requests refused with a 4xx, unsigned requests
refused with 401, and every 4xx names the problem (`error_names_the_problem`, hooks.py).

    python run.py [--examples N] [--seed S | --deterministic] [extra schemathesis options...]

(run.sh makes the virtualenv and calls this.)

Exits with schemathesis' status (non-zero on any failure), or 1 when the server printed a
panic even though every answer passed.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
APP = {"id": "fuzz-app", "key": "fuzz-key", "secret": "fuzz-secret"}
# Every channel recorded, so the history operations answer 200 and triggers write history.
CONFIG = f"""
[[apps]]
id = "{APP['id']}"
key = "{APP['key']}"
secret = "{APP['secret']}"
enable_client_messages = true
[[apps.recovery]]
channels = ["*"]
"""


def built_binary() -> str:
    if os.environ.get("CLARION_BIN"):
        return os.environ["CLARION_BIN"]
    out = subprocess.run(
        ["cargo", "build", "--quiet", "--bin", "clarion", "--message-format=json-render-diagnostics"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    ).stdout
    for line in out.splitlines():
        if not line.startswith("{"):
            continue
        m = json.loads(line)
        if (
            m.get("reason") == "compiler-artifact"
            and m["target"]["name"] == "clarion"
            and m.get("executable")
        ):
            return m["executable"]
    sys.exit("cargo did not name the clarion binary")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(port: int, server: subprocess.Popen) -> None:
    end = time.monotonic() + 20
    while time.monotonic() < end:
        if server.poll() is not None:
            sys.exit(f"clarion exited ({server.returncode}) before answering /up")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/up", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"clarion did not answer /up on port {port}")


def report_answers(path: Path) -> int:
    """Prints how each operation answered; 1 when some signed operation never answered 2xx (the
    signature or the app is wrong, and nothing past the signature check was tested)."""
    if not path.exists():
        print("no answers recorded (hooks.py not loaded?)", file=sys.stderr)
        return 1
    answers = json.loads(path.read_text())
    by_op: dict[str, dict[str, int]] = {}
    for key, n in answers.items():
        op, status = key.rsplit(" ", 1)
        by_op.setdefault(op, {})[status] = n
    print("== answers by operation and status")
    unreached = []
    for op in sorted(by_op):
        statuses = by_op[op]
        print(f"  {op}: " + ", ".join(f"{s}×{n}" for s, n in sorted(statuses.items())))
        if not any(s.startswith("2") for s in statuses):
            unreached.append(op)
    if unreached:
        print(f"never answered 2xx: {', '.join(unreached)}", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=100, help="test cases per operation and phase")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: a new one each run)")
    ap.add_argument(
        "--deterministic",
        action="store_true",
        help="the same cases every run (schemathesis --generation-deterministic; no seed)",
    )
    args, extra = ap.parse_known_args()

    binary = built_binary()
    work = Path(tempfile.mkdtemp(prefix="clarion-api-fuzz-"))
    (work / "clarion.toml").write_text(CONFIG)
    log = (work / "clarion.log").open("w+")
    port = free_port()
    server = subprocess.Popen(
        [binary, "--config", str(work / "clarion.toml"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
    )
    try:
        wait_up(port, server)
        cmd = [
            str(Path(sys.executable).parent / "schemathesis"),
            "--config-file",
            str(HERE / "schemathesis.toml"),
            "run",
            str(REPO / "docs" / "openapi.yaml"),
            "--url",
            f"http://127.0.0.1:{port}",
            "--max-examples",
            str(args.examples),
            *(["--seed", str(args.seed)] if args.seed is not None else []),
            *(["--generation-deterministic"] if args.deterministic else []),
            *extra,
        ]
        env = {
            **os.environ,
            "SCHEMATHESIS_HOOKS": "hooks",
            "PYTHONPATH": str(HERE),
            "FUZZ_APP_ID": APP["id"],
            "FUZZ_APP_KEY": APP["key"],
            "FUZZ_APP_SECRET": APP["secret"],
            "FUZZ_ANSWERS": str(work / "answers.json"),
        }
        print(
            f"== schemathesis against clarion on 127.0.0.1:{port} (server log: {work / 'clarion.log'})",
            flush=True,
        )
        code = subprocess.run(cmd, env=env, cwd=work).returncode
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    code = code or report_answers(work / "answers.json")
    log.seek(0)
    text = log.read()
    if "panicked" in text:
        print(f"clarion panicked during the run:\n{text[-4000:]}", file=sys.stderr)
        return code or 1
    return code


if __name__ == "__main__":
    sys.exit(main())
