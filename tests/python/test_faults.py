"""Faults between the producer and its readers: a killed build, artifacts of another run,
a publish that cannot write. After each fault the current publication is unchanged and
consistent (its marts agree with each other), and the command said what went wrong in
one line, without a traceback.
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from conftest import PROJECT_DIR, WorkDir, dbt_command, run_dbt
from retail_xsell.publications import current_folder
from retail_xsell.publish import publish
from retail_xsell.quality import GateSetupError, run_gate

pytestmark = pytest.mark.dbt

PYTHON = sys.executable

#: dbt's line for the `orders` mart, whatever its materialization (a table once, now
#: incremental for daily loads; a full build rebuilds it whole either way).
ORDERS_CREATED = re.compile(r"OK created sql \w+ model main\.orders\b")


@dataclass
class Producer(WorkDir):
    published: Path
    report: dict


@pytest.fixture
def producer(sample_db, tmp_path) -> Producer:
    """A copy of the sample build, gated and published once."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    shutil.copyfile(sample_db, workdir / "test.duckdb")
    shutil.copytree(sample_db.parent / "target", workdir / "target")
    published = tmp_path / "published" / "retail_xsell.duckdb"
    report = run_gate(workdir / "test.duckdb", workdir / "target", published, tmp_path / "slo")
    assert report["passed"], report["blocking_breaches"]
    publish(workdir / "test.duckdb", published, report)
    return Producer(workdir, published, report)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_consistent(published: Path) -> None:
    """The published marts agree: revenue by order equals revenue by line, and each
    customer's lifetime revenue equals the sum of their orders."""
    with duckdb.connect(str(published), read_only=True) as con:
        by_order, by_line, by_customer, orders = con.execute(
            """
            select
                (select sum(net_revenue) from orders),
                (select sum(net_revenue) from order_lines),
                (select sum(lifetime_net_revenue) from customers),
                (select sum(net_revenue) from orders
                 where order_date <= (select max(as_of_date) from customer_value))
            """
        ).fetchone()
    assert by_order == by_line
    assert by_customer == orders


def _kill_build_midway(producer: Producer) -> None:
    """Start `dbt build` on the producer's database and SIGKILL it once the marts are
    being rebuilt, so the file holds some new tables and the old artifacts."""
    command, env = dbt_command(["build"], producer.workdir)
    log = producer.workdir / "killed.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 240
        while not ORDERS_CREATED.search(log.read_text()):
            assert process.poll() is None, (
                "the build ended before dbt logged `orders` as created, so it was never"
                " killed midway:\n" + log.read_text()[-2000:]
            )
            assert time.monotonic() < deadline, "the build never reached the marts"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def test_a_killed_build_is_never_judged_or_published(producer):
    before = _sha(producer.published)
    _kill_build_midway(producer)
    wal = producer.database.with_name(producer.database.name + ".wal")
    if wal.exists():
        with pytest.raises(GateSetupError, match="write-ahead log"):
            run_gate(producer.database, producer.target, producer.published, producer.workdir)
        # What a later checkpoint (or a lost WAL) leaves: the new tables in the file.
        duckdb.connect(str(producer.database)).close()
    with pytest.raises(GateSetupError, match="did not finish: it was killed or crashed"):
        run_gate(producer.database, producer.target, producer.published, producer.workdir)
    # The gate report of the baseline no longer matches the changed file either.
    with pytest.raises(Exception, match="changed after the gate ran"):
        publish(producer.database, producer.published, producer.report)
    assert _sha(producer.published) == before
    _assert_consistent(producer.published)


def test_artifacts_of_another_run_are_refused(producer, tmp_path):
    """Run results kept from an earlier build, next to a database a later run wrote."""
    old_results = (producer.target / "run_results.json").read_bytes()
    result = run_dbt(["build", "--select", "products"], producer.workdir)
    assert result.returncode == 0, result.output[-2000:]
    (producer.target / "run_results.json").write_bytes(old_results)
    with pytest.raises(GateSetupError, match="the artifacts do not belong to this database"):
        run_gate(producer.database, producer.target, producer.published, tmp_path / "slo")


def _publish_cli(producer: Producer, preexec=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            PYTHON, "-m", "retail_xsell.cli", "publish",
            "--database", str(producer.database),
            "--published", str(producer.published),
            "--report-dir", str(producer.published.parent.parent / "slo"),
        ],
        capture_output=True, text=True, timeout=300, check=False, preexec_fn=preexec,
    )  # fmt: skip


def _assert_one_clear_failure(completed: subprocess.CompletedProcess, producer, before) -> None:
    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert lines[0].startswith("publish failed: "), completed.stderr
    assert lines[-1].startswith("The last good publication is untouched and readable")
    assert _sha(producer.published) == before
    assert not list((producer.published.parent / "publications").glob(".*"))
    _assert_consistent(producer.published)


def test_publish_on_a_full_disk_fails_in_one_line_and_changes_nothing(producer):
    before = _sha(producer.published)
    current = current_folder(producer.published)

    def small_disk() -> None:
        # Writes past 1 MiB fail with EFBIG, as on a full disk (SIGXFSZ ignored).
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    completed = _publish_cli(producer, small_disk)
    _assert_one_clear_failure(completed, producer, before)
    assert current_folder(producer.published) == current


HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])  # read-write: takes the file's lock
print("holding", flush=True)
time.sleep(120)
"""


def test_publish_while_someone_holds_the_publication_fails_in_one_line(producer):
    """A reader that opened the publication read-write (consumers should not) holds its
    lock: publish says which file and who holds it, and consumers keep the old one."""
    before = _sha(producer.published)
    holder = subprocess.Popen(
        [PYTHON, "-c", HOLDER, str(producer.published.resolve())],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "holding"
        completed = _publish_cli(producer)
    finally:
        holder.kill()
        holder.wait()
    _assert_one_clear_failure(completed, producer, before)
    assert "lock" in completed.stderr.lower() and str(holder.pid) in completed.stderr


def _mount_read_only(folder: Path) -> bool:
    """Bind-mount `folder` read-only onto itself (root can write anywhere else)."""
    steps = (
        ["mount", "--bind", str(folder), str(folder)],
        ["mount", "-o", "remount,bind,ro", str(folder)],
    )
    for step in steps:
        if subprocess.run(step, capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", str(folder)], capture_output=True, check=False)
            return False
    return True


def test_publish_into_a_read_only_folder_fails_in_one_line(producer):
    before = _sha(producer.published)
    folder = producer.published.parent
    if not _mount_read_only(folder):
        pytest.skip("this machine does not allow a read-only bind mount")
    try:
        completed = _publish_cli(producer)
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True, check=False)
    _assert_one_clear_failure(completed, producer, before)
    assert "Read-only file system" in completed.stderr
