"""End to end: ``bench/imap.py --quick --no-dovecot`` still runs against today's mailsrv.

The benchmark is not part of the product, but nothing else would notice when
a change to the server, to ``tests/twistd_server.py`` or to the script breaks
it. This runs its smallest form (mailsrv only, a 300-message folder, two
mixed-ops clients for a second) and checks that it printed every line of its
table; no figure is judged.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from twistd_server import REPO, env

#: The quick run takes about 10 s on an idle 2-core machine; past this it is skipped, not failed.
BUDGET_SECONDS = 30

LINES = (
    "first SELECT, no index", "SELECT INBOX (warm)", "UID FETCH 1:* (FLAGS)", "FETCH 1:300 (ENVELOPE)",
    "UID SEARCH FROM someone", "SEARCH BODY zeppelin", "RSS with the folder open", "first SELECT after a restart",
    "mixed ops, 2 clients", "latency p50", "latency p99", "RSS per idle connection", "PSS per idle connection",
)


def test_quick_imap_benchmark_prints_its_table(tmp_path):
    process = subprocess.Popen(
        [sys.executable, os.path.join(REPO, "bench", "imap.py"), "--quick", "--no-dovecot", "--tmpdir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env(), cwd=REPO,
    )
    try:
        output, _ = process.communicate(timeout=BUDGET_SECONDS)
    except subprocess.TimeoutExpired:
        # SIGTERM, not a kill: the script then stops the mailsrv it started.
        process.terminate()
        process.communicate(timeout=60)
        pytest.skip(f"bench/imap.py --quick took over {BUDGET_SECONDS} s (machine busy)")
    assert process.returncode == 0, output
    table = output.split("\n300 messages", 1)[1]
    missing = [line for line in LINES if line not in table]
    assert not missing, output
    assert "mailsrv" in table and "dovecot" not in table
