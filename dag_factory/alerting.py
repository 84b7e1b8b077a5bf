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


async def freshness_missed(
    *, dag_id: str, layer: str, freshness: str, alerting: dict[str, Any], **context: Any
) -> None:
    """The deadline callback of `freshness`: the tenant's on-failure notifiers, told that
    `layer` is late, awaited through their `async_notify`.

    Why async: Airflow runs an `AsyncCallback` in the triggerer, a `SyncCallback` in an
    executor's callback supervisor. In Airflow 3.3.2 that supervisor talks to the
    Execution API with the callback's *workload*-scoped token, and the connections route
    accepts only *execution* tokens (`execution_api/security.py` `require_auth`): the
    SMTP connection read is refused (403 → `AirflowSecretsBackendAccessDenied`) and no
    alert leaves. The triggerer reads connections through its in-process Execution API
    (`InProcessExecutionAPI`), so there the notifier gets its connection the ordinary
    way, when it fires, and nothing secret is in the DAG or the callback's kwargs.

    Airflow calls it with the alert's kwargs plus `context`: `{"dag_run": {...},
    "deadline": {"id", "deadline_time"}}` (`Deadline.handle_miss`; `dag_run` is the REST
    API's `DAGRunResponse`, so the run id is `dag_run_id`), no task instance — so the
    texts name the DAG run, not a task."""
    spec = Alerting.model_validate(alerting)
    simple = context.get("context", context)
    run = simple.get("dag_run") or {}
    run_id = run.get("dag_run_id") or run.get("run_id") or "?"  # a DAGRunResponse dump
    event = f"missed its {layer} freshness of {freshness}"
    subject = f"[{dag_id}] {layer} is late: {event} (run {run_id})"
    body = (
        f"Run {run_id} of {dag_id} {event}: {layer} was not built within {freshness} of "
        f"the run being queued (deadline {(simple.get('deadline') or {}).get('deadline_time')})."
    )
    # The texts are final (no Jinja left in them), so no render step is needed before
    # `async_notify`, which, unlike `notifier(context)`, does not render templates.
    for notifier in _notifiers(spec.on_failure, spec, event, dag_id, subject=subject, body=body):
        await notifier.async_notify(dict(simple))


def freshness_deadline(spec_freshness: Any, alerting: Alerting, dag_id: str) -> list[Any]:
    """The DAG's `deadline` list for the tenant's `freshness` (empty when none is set).

    An `AsyncCallback`: it runs in the triggerer, where the notifier may read its
    connection (see `freshness_missed`)."""
    if spec_freshness.gold is None:
        return []
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    from datakits.contract import format_duration

    return [
        DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=spec_freshness.gold,
            callback=AsyncCallback(
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
