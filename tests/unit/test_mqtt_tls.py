"""MQTT over TLS (issue 18, item 12): with ``tls: true`` the sink opens a TLS handshake."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from crowdsight.config.outputs import MqttSettings
from crowdsight.outputs.mqtt import MqttSink
from tests.api.support import self_signed_cert


def _first_bytes(tls: bool, tmp_path: Path) -> bytes:
    """What the sink sends first to a loopback listener."""
    got: list[bytes] = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(10)
        port = server.getsockname()[1]

        def accept() -> None:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(10)
                got.append(conn.recv(16))

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        ca, _key = self_signed_cert(tmp_path)
        sink = MqttSink(
            MqttSettings(host="127.0.0.1", port=port, tls=tls, ca_file=ca if tls else None)
        )
        thread.join(10)
        sink.close()
    assert got, "the sink never connected"
    return got[0]


def test_mqtt_tls_starts_a_tls_handshake(tmp_path: Path) -> None:
    assert _first_bytes(True, tmp_path)[:2] == b"\x16\x03"  # TLS record: handshake
    assert _first_bytes(False, tmp_path)[:1] == b"\x10"  # plain MQTT CONNECT
