"""Rebuild tests/data/audit-v0-ebea569.sqlite3: an audit database written by the server as of
commit ebea569, before the audit store had schema versions (tests/test_audit_migrations.py).

    rm -rf /tmp/miaopi-ebea569 && mkdir /tmp/miaopi-ebea569
    git archive ebea569 server proto rulesets | tar -x -C /tmp/miaopi-ebea569
    .venv/bin/python tests/data/make_audit_v0_fixture.py /tmp/miaopi-ebea569

It starts `python -m miaopi_server.app` from that old tree (PYTHONPATH puts it ahead of the
installed package), decides a few cases with the current client, stops the server (its last
connection checkpoints the WAL into the file) and copies the database and the public seal key
here. The private key stays in a temporary directory and is thrown away.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support import (  # noqa: E402
    AS_OF,
    BUSINESS,
    BUSINESS_MATERIALS,
    DISABILITY,
    DISABILITY_MATERIALS,
    SENIOR,
    SENIOR_MATERIALS,
    born_years_before,
    resident_id,
    with_facts,
)

from miaopi_client.client import Client  # noqa: E402
from miaopi_server.audit import seal  # noqa: E402

DATA = Path(__file__).resolve().parent
DB = DATA / "audit-v0-ebea569.sqlite3"
PUBLIC_KEY = DATA / "audit-v0-ebea569.seal.pub.pem"


def senior(age: int, seq: str) -> dict[str, object]:
    born = born_years_before(AS_OF, age)
    return with_facts(SENIOR, applicant__id_number=resident_id(born, seq=seq))


CASES = [  # (item, facts, materials, request_id, window_id): approve, reject, manual review...
    ("GF00012000", senior(75, "101"), SENIOR_MATERIALS, "", "南海区-窗口1"),
    ("GF00012000", senior(65, "102"), SENIOR_MATERIALS, "请求-0002", "南海区-窗口1"),
    ("GF00012000", senior(106, "103"), SENIOR_MATERIALS, "", "南海区-窗口2"),
    ("GF00034001", DISABILITY, DISABILITY_MATERIALS, "req-0004", "南海区-窗口2"),
    ("XK00051000", BUSINESS, BUSINESS_MATERIALS, "", ""),
    ("GF00012000", senior(80, "104"), SENIOR_MATERIALS[:1], "req-0006", "南海区-窗口3"),
]


def main(old_tree: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": f"{old_tree / 'server'}{os.pathsep}{old_tree / 'proto'}",
        "PYTHONUNBUFFERED": "1",
    }
    probe = [sys.executable, "-c", "import miaopi_server.audit.sqlite as m; print(m.__file__)"]
    where = subprocess.run(probe, env=env, cwd=old_tree, capture_output=True, text=True).stdout
    assert where.startswith(str(old_tree)), f"old code not first on the path: {where}"
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        server = subprocess.Popen(
            [sys.executable, "-m", "miaopi_server.app", "--listen", "127.0.0.1:0",
             "--rulesets", str(old_tree / "rulesets"), "--state-dir", str(state),
             "--node-id", "fixture-node", "--watch", "0", "--log-format", "json",
             "--insecure-no-auth"],
            env=env, cwd=old_tree, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert server.stderr is not None
        target = ""
        for line in server.stderr:
            event = json.loads(line)
            if event["event"] == "server.started":
                target = event["listen"]
                break
        try:
            with Client(target) as client:
                for item, facts, materials, request_id, window_id in CASES:
                    d = client.decide(item, facts, materials, request_id, window_id)
                    print(d["receipt"]["seq"], item, d["outcome"])
        finally:
            server.send_signal(signal.SIGTERM)
            assert server.wait(30) == 0
        assert not Path(f"{state / 'audit.sqlite3'}-wal").exists()
        shutil.copyfile(state / "audit.sqlite3", DB)
        sealer, _ = seal.load_or_create(state / "seal_ed25519.pem")
        PUBLIC_KEY.write_text(sealer.public_pem, encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
