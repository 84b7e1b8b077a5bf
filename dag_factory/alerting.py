"""Alerting through Airflow's own notifiers: email over an SMTP connection, Slack over a
Slack connection. Built at parse time from the spec (no connection is read then); the
notifiers read their connections only when they fire."""

from __future__ import annotations

from typing import Any

from dag_factory.spec import Alerting, AlertTargets


def _notifiers(
    targets: AlertTargets,
    alerting: Alerting,
    event: str,
    dag_id: str,
    *,
    subject: str | None = None,
    body: str | None = None,
) -> list[Any]:
    """One notifier per target; `subject`/`body` replace the task-level texts (which name
    `ti`, absent from a deadline callback's context)."""
    notifiers: list[Any] = []
    subject = subject or f"[{dag_id}] task {{{{ ti.task_id }}}} {event}"
    if targets.email:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        notifiers.append(
            SmtpNotifier(
                to=list(targets.email),
                smtp_conn_id=alerting.smtp_connection,
                subject=subject,
                html_content=body
                or (
                    f"Task {{{{ ti.task_id }}}} of {dag_id} {event} "
                    "(try {{ ti.try_number }}). Log: {{ ti.log_url }}"
                ),
            )
        )
    if targets.slack is not None:
        from airflow.providers.slack.notifications.slack import SlackNotifier

        notifiers.append(
            SlackNotifier(
                slack_conn_id=targets.slack.connection,
                channel=targets.slack.channel,
                text=f":red_circle: {subject}" + ("" if body else " — {{ ti.log_url }}"),
            )
        )
    return notifiers


def alert_callbacks(alerting: Alerting, dag_id: str) -> dict[str, list[Any]]:
    """`default_args` entries for the tenant's tasks; empty when nothing is configured."""
    callbacks = {}
    if not alerting.on_failure.empty:
        callbacks["on_failure_callback"] = _notifiers(
            alerting.on_failure, alerting, "failed", dag_id
        )
    if not alerting.on_retry.empty:
        callbacks["on_retry_callback"] = _notifiers(
            alerting.on_retry, alerting, "is retrying", dag_id
        )
    return callbacks


def freshness_missed(
    *, dag_id: str, layer: str, freshness: str, alerting: dict[str, Any], **context: Any
) -> None:
    """The deadline callback of `freshness`: the tenant's on-failure notifiers, told that
    `layer` is late. Runs where Airflow runs deadline callbacks (a `SyncCallback`: the
    executor); the notifiers read their connections only now.

    Airflow calls it with the alert's kwargs plus `context`: `{"dag_run": {...},
    "deadline": {"id", "deadline_time"}}` (`Deadline.handle_miss`), no task instance —
    so the texts name the DAG run, not a task."""
    spec = Alerting.model_validate(alerting)
    simple = context.get("context", context)
    run_id = (simple.get("dag_run") or {}).get("run_id", "?")
    event = f"missed its {layer} freshness of {freshness}"
    subject = f"[{dag_id}] {layer} is late: {event} (run {run_id})"
    body = (
        f"Run {run_id} of {dag_id} {event}: {layer} was not built within {freshness} of "
        f"the run being queued (deadline {(simple.get('deadline') or {}).get('deadline_time')})."
    )
    for notifier in _notifiers(spec.on_failure, spec, event, dag_id, subject=subject, body=body):
        notifier(dict(simple))


def freshness_deadline(spec_freshness: Any, alerting: Alerting, dag_id: str) -> list[Any]:
    """The DAG's `deadline` list for the tenant's `freshness` (empty when none is set)."""
    if spec_freshness.gold is None:
        return []
    from airflow.sdk import DeadlineAlert, DeadlineReference, SyncCallback

    from datakits.contract import format_duration

    return [
        DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=spec_freshness.gold,
            callback=SyncCallback(
                freshness_missed,
                kwargs={
                    "dag_id": dag_id,
                    "layer": "gold",
                    "freshness": format_duration(spec_freshness.gold),
                    "alerting": alerting.model_dump(mode="json"),
                },
            ),
            name=f"{dag_id}_gold_freshness",
        )
    ]
