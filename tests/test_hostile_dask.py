"""#30: the embedded Dask cluster of a batch fit cannot be joined or driven by another local user
(mutual TLS with a credential made for this run), and it opens no HTTP server (Dask's scheduler
answered /info and /workers on port 8787 before, although the dashboard was off). A --scheduler
that cannot be reached is refused at once, before any work."""

import operator
import socket

import psutil
import pytest
import soundfile as sf
from click.testing import CliRunner

from sonode.batch.cluster import embedded_cluster
from sonode.cli import main
from tests.hostile_support import tone


def _listening(pids: set[int]) -> list[tuple[str, int, int]]:
    """(address, port, pid) of the TCP sockets listening in these processes."""
    out = []
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in pids:
            out.append((conn.laddr.ip, conn.laddr.port, conn.pid))
    return out


def _answers_http(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.settimeout(5)
        s.sendall(b"GET /info HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        try:
            return s.recv(16).startswith(b"HTTP/")
        except (OSError, TimeoutError):
            return False


@pytest.fixture(scope="module")
def cluster():
    c = embedded_cluster(1)
    yield c
    c.close()


def test_the_embedded_cluster_works_for_its_owner(cluster):
    from distributed import Client

    with Client(cluster) as client:
        assert client.submit(operator.add, 1, 2).result() == 3


def test_it_listens_only_on_loopback_and_serves_no_http(cluster):
    me = psutil.Process()
    pids = {me.pid} | {p.pid for p in me.children(recursive=True)}
    sockets = _listening(pids)
    assert sockets, "the cluster listens somewhere"
    assert {ip for ip, _, _ in sockets} == {"127.0.0.1"}, sockets
    assert 8787 not in {port for _, port, _ in sockets}
    assert not [port for _, port, _ in sockets if _answers_http(port)], sockets


@pytest.mark.parametrize(
    "how", ["plain tcp", "tls without a credential", "tls with another credential"]
)
def test_a_stranger_cannot_connect(cluster, how):
    from distributed import Client
    from distributed.security import Security

    address = cluster.scheduler_address
    assert address.startswith("tls://")
    kwargs = {}
    if how == "plain tcp":
        address = address.replace("tls://", "tcp://")
    elif how == "tls with another credential":
        kwargs["security"] = Security.temporary()
    with pytest.raises(Exception):  # noqa: B017 - TypeError, OSError or TimeoutError depending on the stage
        Client(address, timeout=5, **kwargs)


def test_an_unreachable_scheduler_is_refused_at_once(tmp_path, monkeypatch):
    """At once: by the one refused connection of `check_scheduler`, before a Dask client is made
    (a client retries for its whole timeout: 30 s of waiting before #30), whatever the load."""
    import distributed

    def no_client(*args, **kwargs):
        raise AssertionError("a Dask client was made for an unreachable scheduler")

    monkeypatch.setattr(distributed, "Client", no_client)
    for name in ("a", "b"):
        sf.write(tmp_path / f"{name}.wav", tone(0.2, 16000), 16000, subtype="PCM_16")
    # a port nobody listens on: bound here and not listening (connections are refused), so no
    # other process (another test's cluster) can take it before the command tries it
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        result = CliRunner().invoke(
            main,
            [
                "fit",
                str(tmp_path / "a.wav"),
                str(tmp_path / "b.wav"),
                "--scheduler",
                f"tcp://127.0.0.1:{port}",
                "--out-dir",
                str(tmp_path / "out"),
            ],
        )
    assert result.exit_code == 2 and "cannot reach the Dask scheduler" in result.output, (
        result.output
    )
    assert "refused" in result.output, result.output  # the connection's own answer, no time-out
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_malformed_scheduler_address_is_refused(tmp_path):
    sf.write(tmp_path / "a.wav", tone(0.2, 16000), 16000, subtype="PCM_16")
    result = CliRunner().invoke(
        main,
        [
            "fit",
            str(tmp_path / "a.wav"),
            "--scheduler",
            "tcp://nowhere",
            "--out-dir",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 2 and "not an address" in result.output, result.output
