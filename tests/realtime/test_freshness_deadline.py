"""A late gold fires its freshness deadline under a real scheduler, and the alert goes
out through the tenant's alerting: an email over the tenant's SMTP connection, caught by
an SMTP server the test runs on 127.0.0.1. The callback is an `AsyncCallback` run by the
triggerer, which reads the connection the tenant's alerting names (created here through
the REST API, as an operator would) when the alert fires.

The tenant's gold cannot be on time: its tasks name a pool nobody created, so they wait
in "scheduled" forever, and `freshness: {gold: 10s}` passes while the run is queued.
"""

from __future__ import annotations

import email
import email.policy
import json
import socketserver
import threading
from collections.abc import Iterator

import pytest

from tests.realtime.conftest import RealAirflow
from tests.realtime.test_scheduler import _write_new_tenant

TENANT = "fresh"
DAG_ID = f"tenant_{TENANT}"
CONN_ID = f"{TENANT}_smtp"
TO = "ops@fresh.example"


class SmtpSink(socketserver.ThreadingTCPServer):
    """Just enough SMTP to accept mail: every DATA block is kept in `messages`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.received = threading.Event()
        super().__init__(("127.0.0.1", 0), _SmtpSession)


class _SmtpSession(socketserver.StreamRequestHandler):
    server: SmtpSink

    def reply(self, line: str) -> None:
        self.wfile.write(f"{line}\r\n".encode())

    def handle(self) -> None:
        self.reply("220 sink ESMTP")
        while line := self.rfile.readline():
            verb = line.decode(errors="replace").strip().split(" ", 1)[0].upper()
            if verb == "DATA":
                self.reply("354 end with <CRLF>.<CRLF>")
                body = []
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    body.append(chunk.decode(errors="replace"))
                self.server.messages.append("".join(body))
                self.server.received.set()
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            elif verb == "EHLO":
                self.reply("250 sink")
            else:  # HELO, MAIL, RCPT, RSET, NOOP
                self.reply("250 ok")


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    thread = threading.Thread(target=sink.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        sink.shutdown()
        sink.server_close()


def test_late_gold_fires_its_deadline_alert(
    airflow_server: RealAirflow, smtp_sink: SmtpSink
) -> None:
    server = airflow_server.server
    file = _write_new_tenant(airflow_server.warehouses, TENANT, "tenant_fresh_not_created")
    file.write_text(
        file.read_text(encoding="utf-8")
        + "freshness:\n  gold: 10s\n"
        + f"alerting:\n  smtp_connection: {CONN_ID}\n  on_failure:\n    email: [{TO}]\n",
        encoding="utf-8",
    )
    server.api(
        "POST",
        "/connections",
        json={
            "connection_id": CONN_ID,
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": smtp_sink.server_address[1],
            "extra": json.dumps(
                {"from_email": "airflow@fresh.example", "disable_ssl": True, "disable_tls": True}
            ),
        },
    )
    server.wait_dag(DAG_ID, timeout=120)
    server.unpause(DAG_ID)
    run_id = server.trigger(DAG_ID)
    try:
        fired = smtp_sink.received.wait(timeout=60)  # the deadline is 10 s
        states = server.task_states(DAG_ID, run_id)
        assert fired, f"no alert mail; tasks: {states}\n{server.log_tail()}"
        # the alert came while gold had not run: the deadline, not a task failure, sent it
        assert states.get("dbt_gold") in (None, "scheduled"), states
        (raw,) = smtp_sink.messages
        message = email.message_from_string(raw, policy=email.policy.default)
        assert message["To"] == TO
        assert message["Subject"] == (
            f"[{DAG_ID}] gold is late: missed its gold freshness of 10s (run {run_id})"
        )
        body = message.get_body(("html", "plain"))
        assert body is not None and run_id in body.get_content()
        run = server.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
        assert run["state"] in ("queued", "running"), run
    finally:
        server.api("PATCH", f"/dags/{DAG_ID}/dagRuns/{run_id}", json={"state": "failed"})
        server.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": True})
        server.api("DELETE", f"/connections/{CONN_ID}")
