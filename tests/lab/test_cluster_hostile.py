"""Hostile cluster settings and clusters that would hang a sweep:
every scheduler address, by ``--scheduler`` or ``REFIMPL_SCHEDULER``, in
every subcommand that takes it, is checked before any work (one line naming
it and the accepted forms, exit status 2); ``--scheduler-timeout`` bounds the
connection with dask's handshake and the wait for a worker (a server that
accepts and never answers, one that answers bytes that are not dask's, a
scheduler without workers, workers or a scheduler lost mid-sweep: one line);
and the joblib workers of a killed sweep end at once, busy or idle.

The tests that talk to dask skip without the ``cluster`` extra; every wait on
a process or a thread has a hang guard."""

import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cluster_processes import end_processes, start_scheduler, start_worker
from hypothesis import given
from hypothesis import strategies as st

from refimpl.cli import main
from refimpl.cli.validate import claim_main
from refimpl.errors import UsageError
from refimpl.lab import cluster as CL
from refimpl.lab import sweep as S

HANG_GUARD = 120  # seconds: a subprocess still running then has hung
EXTRA = "the cluster extra (dask.distributed) is not installed"
FORMS = "tcp://HOST:PORT"  # the start of the accepted forms every address error names

try:
    import distributed  # noqa: F401

    HAVE_DASK = True
except ImportError:
    HAVE_DASK = False

needs_dask = pytest.mark.skipif(not HAVE_DASK, reason=EXTRA)

# the subcommands that take --scheduler, each with arguments that would run
SUBCOMMANDS = {
    "phase": [
        *("phase", "--x", "u_norm=1,2", "--y", "d=40,50", "--reps", "1", "--quiet"),
        *("--set", "n=10", "--set", "m=2", "--set", "steps_up=5", "--set", "n_test=50"),
    ],
    "realdata": ["realdata", "--quick", "--quiet"],
    "validate": ["validate", "coefficients", "--quick"],
}

BAD_ADDRESSES = [
    "nonsense",
    "http://10.0.0.1:8786",
    "tcp://[::1",
    "tcp://127.0.0.1",
    "tcp://127.0.0.1:99999",
    "tcp://127.0.0.1:0",
    "tcp://",
    "://x:1",
    "tcp://a b:1",
    "tcp://host:8786/",
    "tcp://::1:8786",
    "tcp://[not-v6]:8786",
    "tcp://300.1.1.1:8786",
    "tcp://-bad-.example:8786",
    "tcp://host:80x",
    "tcp://h\x00st:1",
    "TCP://127.0.0.1:8786",
]


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """Run ``python -m refimpl`` in this process with a clean cluster
    environment and ``--out`` in tmp_path; returns (status, stdout, stderr)."""
    for name in (CL.SCHEDULER_ENV, CL.SCHEDULER_TIMEOUT_ENV):
        monkeypatch.delenv(name, raising=False)

    def call(args, env=None):
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        capsys.readouterr()
        try:
            code = main([*args, "--out", str(tmp_path / "out")])
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return call


def _one_line_error(code, err):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("refimpl: error: "), err
    assert "Traceback" not in err
    return lines[0]


# ----------------------------------------------------------------------
# addresses and timeouts, checked before any work
@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
@pytest.mark.parametrize("address", BAD_ADDRESSES)
def test_a_bad_address_is_one_line_naming_it_and_the_accepted_forms(
    command, address, cli, tmp_path
):
    code, out, err = cli([*SUBCOMMANDS[command], "--scheduler", address])
    line = _one_line_error(code, err)
    assert f"--scheduler {address!r}" in line and FORMS in line
    assert not (tmp_path / "out").exists(), "refused before any work"


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
@pytest.mark.parametrize("address", ["nonsense", "http://x:1", "tcp://[::1", "tcp://1.2.3.4"])
def test_a_bad_address_in_the_environment_is_one_line_naming_the_variable(
    command, address, cli, tmp_path
):
    code, out, err = cli(SUBCOMMANDS[command], env={CL.SCHEDULER_ENV: address})
    line = _one_line_error(code, err)
    assert f"{CL.SCHEDULER_ENV} {address!r}" in line and FORMS in line
    assert not (tmp_path / "out").exists(), "refused before any work"


def test_a_bad_address_under_a_claim_script_is_one_line_and_no_report(
    monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv(CL.SCHEDULER_ENV, "nonsense")
    assert claim_main("coefficients", ["--quick", "--out", str(tmp_path)]) == 2
    line = _one_line_error(2, capsys.readouterr().err)
    assert f"{CL.SCHEDULER_ENV} 'nonsense'" in line
    assert not (tmp_path / "REPORT.md").exists()


@needs_dask
@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_a_transport_dask_cannot_use_here_is_one_line(command, cli):
    from distributed.comm import registry

    try:
        registry.get_backend("ucx").get_connector()
        pytest.skip("ucx works on this machine")
    except Exception:
        pass
    code, out, err = cli([*SUBCOMMANDS[command], "--scheduler", "ucx://127.0.0.1:8786"])
    line = _one_line_error(code, err)
    assert "'ucx://127.0.0.1:8786'" in line and "ucx://" in line


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
@pytest.mark.parametrize("value", ["abc", "", "nan", "inf", "-inf", "0", "-1", "1e400", "1e9"])
def test_a_bad_timeout_is_one_line_naming_the_option(command, value, cli, tmp_path):
    code, out, err = cli([*SUBCOMMANDS[command], f"--scheduler-timeout={value}"])
    line = _one_line_error(code, err)
    assert f"--scheduler-timeout {value!r}" in line and "seconds" in line
    assert not (tmp_path / "out").exists()


@needs_dask
def test_a_bad_timeout_in_the_environment_is_named_when_a_scheduler_is_used(cli):
    env = {CL.SCHEDULER_TIMEOUT_ENV: "soon"}
    code, out, err = cli([*SUBCOMMANDS["phase"], "--scheduler", "tcp://127.0.0.1:9"], env=env)
    assert f"{CL.SCHEDULER_TIMEOUT_ENV} 'soon'" in _one_line_error(code, err)


def test_an_empty_environment_variable_means_local_workers(monkeypatch):
    monkeypatch.setenv(CL.SCHEDULER_ENV, "")
    monkeypatch.setenv(CL.SCHEDULER_TIMEOUT_ENV, "not read without a scheduler")
    assert CL.cluster_settings() == (None, CL.SCHEDULER_TIMEOUT)


def test_the_python_api_names_its_parameters():
    with pytest.raises(UsageError, match="scheduler 'nonsense'"):
        S.run_sweep([], scheduler="nonsense", progress=False)
    with pytest.raises(UsageError, match="scheduler_timeout 'x'"):
        CL.cluster_settings(None, "x")
    for value in (True, None.__class__, [1], float("nan"), 10**400):
        with pytest.raises(UsageError, match="scheduler_timeout"):
            CL.check_scheduler_timeout(value)


_SCHEMES = st.sampled_from(["", "tcp://", "tls://", "ws://", "wss://", "http://", "inproc://"])
_HOSTS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["127.0.0.1", "[::1]", "::1", "localhost", "a.b-c.d", "[fe80::1%eth0]"]),
)
_PORTS = st.one_of(st.integers(-5, 70000).map(str), st.text(max_size=6))
_ADDRESSES = st.one_of(
    st.text(max_size=40),
    st.builds(lambda s, h, p: f"{s}{h}:{p}", _SCHEMES, _HOSTS, _PORTS),
)


@given(_ADDRESSES)
def test_any_address_is_accepted_as_given_or_refused_in_one_line(address):
    try:
        assert CL.check_scheduler(address, "--scheduler") == address
    except UsageError as exc:
        message = str(exc)
        assert "\n" not in message and "--scheduler" in message
        assert FORMS in message or "cluster extra" in message
        return
    if HAVE_DASK and not address.startswith("inproc://"):  # dask parses what we accept
        from distributed.comm.addressing import parse_address, parse_host_port

        scheme, location = parse_address(address)
        host, port = parse_host_port(location)
        assert host and 1 <= port <= 65535


# ----------------------------------------------------------------------
# servers that hang or answer garbage
def _serve(answer):
    """A TCP server on 127.0.0.1 in a daemon thread that accepts every
    connection and sends ``answer`` (bytes, possibly none) and then nothing,
    keeping the connection open; returns its address."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held = []

    def loop():
        while True:
            conn, _ = server.accept()
            held.append(conn)
            if answer:
                conn.sendall(answer)

    threading.Thread(target=loop, daemon=True).start()
    return f"tcp://127.0.0.1:{server.getsockname()[1]}"


def _run_cli(args, env=None, timeout=HANG_GUARD):
    """``python -m refimpl ARGS`` in a subprocess under the hang guard."""
    proc = subprocess.run(
        [sys.executable, "-m", "refimpl", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout, proc.stderr


SERVERS = {
    "accepts and never answers": (b"", "handshake within 1 s"),
    "claims a 1 TiB message": (struct.pack("Q", 1 << 40), "not as a dask scheduler"),
    "answers HTTP": (b"HTTP/1.1 400 Bad Request\r\n\r\n" * 4, "not as a dask scheduler"),
}


@needs_dask
@pytest.mark.slow
@pytest.mark.parametrize("server", sorted(SERVERS))
def test_a_server_that_is_not_a_dask_scheduler_ends_in_one_line(server, tmp_path):
    answer, needle = SERVERS[server]
    address = _serve(answer)
    args = [*SUBCOMMANDS["phase"], "--out", str(tmp_path), "--scheduler-timeout", "1"]
    code, out, err = _run_cli([*args, "--scheduler", address])
    line = _one_line_error(code, err)
    assert f"cannot reach the dask scheduler at {address}" in line and needle in line
    assert "out of memory" not in line


@needs_dask
@pytest.mark.slow
def test_the_handshake_is_bounded_in_the_library_too():
    address = _serve(b"")
    box = []

    def connect():
        try:
            CL.connect_scheduler(address, timeout=0.5)
        except UsageError as exc:
            box.append(exc)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(HANG_GUARD)
    assert not thread.is_alive(), "connect_scheduler hung on a silent server"
    assert box and "handshake" in str(box[0])


@pytest.fixture(scope="module")
def lonely_scheduler(tmp_path_factory):
    """A live scheduler no worker ever joins."""
    pytest.importorskip("distributed", reason=EXTRA)
    proc, address = start_scheduler(tmp_path_factory.mktemp("lonely"), dict(os.environ))
    try:
        yield address
    finally:
        end_processes([proc])


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_a_scheduler_without_workers_is_one_line_after_the_timeout(
    command, lonely_scheduler, tmp_path
):
    env = {CL.SCHEDULER_ENV: lonely_scheduler, CL.SCHEDULER_TIMEOUT_ENV: "2"}
    code, out, err = _run_cli([*SUBCOMMANDS[command], "--out", str(tmp_path)], env=env)
    line = _one_line_error(code, err)
    assert f"no workers joined the dask scheduler at {lonely_scheduler} within 2 s" in line
    assert not (tmp_path / "REPORT.md").exists()


SLEEPER = """
import time
from pathlib import Path

def sleepy(config, flag=""):
    Path(flag).touch()
    time.sleep(600)
    return {"x": 1.0}
"""

CLIENT = """
import sys
from refimpl.config import Config
from refimpl.errors import RefimplError
from refimpl.lab.sweep import run_sweep
import sleeper
try:
    run_sweep([Config()], measure=sleeper.sleepy, replicates=1, progress=False,
              options={"flag": sys.argv[1]}, scheduler=sys.argv[2])
except RefimplError as exc:
    print(exc)
"""


@needs_dask
@pytest.mark.slow
@pytest.mark.parametrize("lost", ["worker", "scheduler"])
def test_a_cluster_lost_mid_sweep_is_one_line(lost, tmp_path):
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        CL.SCHEDULER_TIMEOUT_ENV: "2",
    }
    scheduler, address = start_scheduler(tmp_path, env)
    procs = [scheduler, start_worker(address, tmp_path, env)]
    flag = tmp_path / "started"
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, str(flag), address],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    procs.append(client)
    try:
        deadline = time.monotonic() + HANG_GUARD
        while not flag.exists():
            assert client.poll() is None, client.communicate()
            assert time.monotonic() < deadline, "the item never started"
            time.sleep(0.1)
        end_processes([procs[1] if lost == "worker" else procs[0]])
        out, err = client.communicate(timeout=HANG_GUARD)
    finally:
        end_processes(procs)
    assert "Traceback" not in err, err
    expected = "no worker joined" if lost == "worker" else "lost the dask scheduler"
    assert expected in out and address in out, out


# ----------------------------------------------------------------------
# joblib workers of a killed sweep
MARKER = """
import os
import time
from pathlib import Path

def mark(config, folder="", delay=0.0):
    Path(folder, str(os.getpid())).touch()
    time.sleep(delay)
    return {"x": 1.0}
"""

LOCAL_CLIENT = """
import sys
import time
from refimpl.config import Config
from refimpl.lab.sweep import run_sweep
import marker
grid = [Config().replace(u_norm=float(u)) for u in (0.5, 1.0, 2.0, 4.0)]
run_sweep(grid, measure=marker.mark, replicates=1, jobs=2, progress=False,
          options={"folder": sys.argv[1], "delay": float(sys.argv[2])})
print("done", flush=True)
time.sleep(600)
"""


def _alive(pid):
    """The process exists and is not a zombie (an ended child not yet reaped)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "\nState:\tZ" not in status


def _children(pid):
    """The processes whose parent is ``pid`` (Linux: /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("state", ["busy", "idle"])
def test_the_processes_of_a_killed_sweep_end_within_the_declared_time(state, tmp_path):
    """Every process a ``jobs=2`` sweep started (its joblib workers, busy with
    an item of 600 s or idle, and loky's resource tracker) ends within
    WORKER_IDLE_SECONDS of a SIGKILL of the sweep's process (before the fix,
    an idle orphan lived about 40 s and a busy one until its item ended)."""
    (tmp_path / "marker.py").write_text(MARKER)
    pids = tmp_path / "pids"
    pids.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    }
    delay = "600" if state == "busy" else "0"
    client = subprocess.Popen(
        [sys.executable, "-c", LOCAL_CLIENT, str(pids), delay],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    started = []
    try:
        deadline = time.monotonic() + HANG_GUARD
        while len(list(pids.iterdir())) < (2 if state == "busy" else 1):
            assert client.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        if state == "idle":  # every item has finished
            assert select.select([client.stdout], [], [], HANG_GUARD)[0], "the sweep hung"
            assert client.stdout.readline().strip() == "done"
        started = _children(client.pid)
        assert {int(p.name) for p in pids.iterdir()} <= set(started)
        client.kill()
        client.wait(timeout=30)
        guard = time.monotonic() + S.WORKER_IDLE_SECONDS  # the declared time, as a hang guard
        while any(_alive(w) for w in started) and time.monotonic() < guard:
            time.sleep(0.1)
        left = [w for w in started if _alive(w)]
        assert not left, f"processes {left} outlived the killed sweep"
    finally:
        client.kill()
        for w in started:
            try:
                os.kill(w, signal.SIGKILL)
            except ProcessLookupError:
                pass
