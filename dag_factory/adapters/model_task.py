"""Model tasks: one light Airflow task per dbt node (or folder: `dbt.tasks`), fed by the
producer's one dbt build.

`dbt_build` runs every layer in one `dbt build` (one parse per run) and its result carries
each node's status (`nodes`, contract B of issue 14). A model task reads that result
first and runs a runner only when it must (contract C):

* its node and its attached tests passed → it succeeds at once, no runner, no pod;
* dbt reported an error → it fails the way the runner would have: a compile error, a
  drop refused by dependent objects, or a failing test under `on_test_failure: fail`
  raise `AirflowFailException` (no retry: the same input fails the same way); any other
  error is a runtime error, retried;
* a test of its node that dbt skipped (its other parent failed: that parent's task fails)
  does not fail it;
* its node is missing or `skipped`, or this is a retry (try_number > 1) → it runs
  `runner dbt ... build --select <node>` through the tenant's adapter, the same way every
  other task of the tenant runs.

A task that covers a folder's nodes (`dag_factory.model_units`) judges each of them this
way; the worst verdict wins (permanent, then retried, then run), and running means
building all of them.

`ModelTaskMixin` goes in front of each adapter's operator class (local, Docker,
Kubernetes), so "run the node" is that adapter's own `execute`: on Kubernetes a model
task starts a pod only when it must.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

#: dbt statuses of a node or test that passed.
PASSED = frozenset({"success", "pass", "warn", "no-op"})
#: Messages of a dbt error that a retry cannot fix (mirrors the runner's failure kinds).
_PERMANENT_MARKS = ("Compilation Error", "other objects depend on it")


class Verdict(StrEnum):
    passed = "passed"
    run = "run"
    permanent = "permanent"
    retried = "retried"


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    #: One line: what was seen (the failing node or test and its message).
    reason: str
    #: The node's and its tests' statuses as reported (unique id → status).
    statuses: Mapping[str, str]


def _error_kind(entry: Mapping[str, Any]) -> Verdict:
    message = str(entry.get("message") or "")
    return Verdict.permanent if any(m in message for m in _PERMANENT_MARKS) else Verdict.retried


def judge(
    report: Mapping[str, Any] | None,
    node_id: str,
    tests: Iterable[str],
    on_test_failure: str = "fail",
) -> Judgement:
    """What a model task does with the producer's `nodes` report: pure, so every branch
    is tested without Airflow running."""
    report = report or {}
    node = report.get(node_id)
    statuses = {uid: str(e.get("status")) for uid in (node_id, *tests) if (e := report.get(uid))}
    if node is None:
        return Judgement(Verdict.run, f"{node_id} is not in dbt_build's report", statuses)
    status = str(node.get("status"))
    if status == "error":
        return Judgement(_error_kind(node), f"{node_id}: {node.get('message', '')}", statuses)
    if status not in PASSED:  # skipped, or a status this version does not know
        return Judgement(Verdict.run, f"{node_id} was {status} in dbt_build", statuses)
    for test in tests:
        entry = report.get(test)
        if entry is None:
            return Judgement(Verdict.run, f"test {test} is not in dbt_build's report", statuses)
        test_status = str(entry.get("status"))
        if test_status == "skipped":
            # the node passed, so dbt skipped the test for another parent's failure (a
            # relationships test): that parent's task fails; rerunning here would too
            continue
        if test_status == "error":
            return Judgement(_error_kind(entry), f"{test}: {entry.get('message', '')}", statuses)
        if test_status == "fail" and on_test_failure == "fail":
            failures = entry.get("failures")
            detail = f"{failures} failing rows" if failures is not None else "failed"
            return Judgement(
                Verdict.permanent,
                f"test {test} {detail} (dbt.on_test_failure: fail): {entry.get('message', '')}",
                statuses,
            )
    return Judgement(Verdict.passed, f"{node_id} {status} in dbt_build", statuses)


#: Which verdict a unit of several nodes takes: the worst of its nodes'.
_SEVERITY = (Verdict.permanent, Verdict.retried, Verdict.run, Verdict.passed)


def judge_unit(
    report: Mapping[str, Any] | None,
    nodes: Mapping[str, tuple[str, ...]],
    on_test_failure: str = "fail",
) -> Judgement:
    """`judge` for a task covering `nodes` (unique id → its attached tests): passed when
    every node passed, else the worst node's judgement, which names that node."""
    seen = [judge(report, uid, tests, on_test_failure) for uid, tests in nodes.items()]
    statuses = {uid: status for j in seen for uid, status in j.statuses.items()}
    worst = min(seen, key=lambda j: _SEVERITY.index(j.verdict))
    if worst.verdict is Verdict.passed and len(seen) > 1:
        return Judgement(Verdict.passed, f"{len(seen)} nodes passed in dbt_build", statuses)
    return Judgement(worst.verdict, worst.reason, statuses)


class ModelTaskMixin:
    """In front of an adapter's runner operator: `execute` reads the producer's report and
    calls the adapter's own `execute` (a runner process, container or pod) only when the
    task's nodes must run here."""

    def __init__(
        self,
        *,
        dbt_nodes: Mapping[str, tuple[str, ...]],
        on_test_failure: str = "fail",
        producer: str = "dbt_build",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        #: unique id → its attached tests, in the order of the task's outlets.
        self.dbt_nodes = dict(dbt_nodes)
        self.on_test_failure = on_test_failure
        self.producer = producer

    def execute(self, context: Any) -> Any:
        """Pass on the producer's report, or run the nodes here.

        A retry (try 2+) never repeats a failure it read: it runs the nodes itself, unless
        the report now says they passed — the whole DAG run was cleared and `dbt_build`
        built them again just before, so running them once more per task (a runner each)
        would only repeat that work.
        """
        ti = context["ti"]
        log = self.log  # type: ignore[attr-defined]
        result = ti.xcom_pull(task_ids=self.producer)
        report = result.get("nodes") if isinstance(result, dict) else None
        seen = judge_unit(report, self.dbt_nodes, self.on_test_failure)
        names = ", ".join(self.dbt_nodes)
        if ti.try_number > 1 and seen.verdict is not Verdict.passed:
            log.info("try %s: running %s itself (%s)", ti.try_number, names, seen.reason)
            return self._run(context)
        if seen.verdict is Verdict.passed:
            tests = sum(len(t) for t in self.dbt_nodes.values())
            log.info("%s (tests: %s)", seen.reason, tests)
            self._record_outlets(context, report or {}, seen)
            return {"nodes": list(self.dbt_nodes), "ran": "dbt_build", "statuses": seen.statuses}
        if seen.verdict is Verdict.permanent:
            raise AirflowFailException(f"dbt failed (permanent, not retried): {seen.reason}")
        if seen.verdict is Verdict.retried:
            raise AirflowException(f"dbt failed (a retry runs the model here): {seen.reason}")
        log.info("%s: running it here", seen.reason)
        return self._run(context)

    def _record_outlets(self, context: Any, report: Mapping[str, Any], seen: Judgement) -> None:
        """Each node's asset event carries its dbt status, seconds and tests' statuses."""
        outlets = self.outlets  # type: ignore[attr-defined]
        for outlet, (uid, tests) in zip(outlets, self.dbt_nodes.items(), strict=False):
            node = report.get(uid, {})
            extra = {
                "status": node.get("status"),
                "seconds": node.get("seconds"),
                "tests": {t: seen.statuses[t] for t in tests if t in seen.statuses},
            }
            context["outlet_events"][outlet].extra.update(extra)

    def _run(self, context: Any) -> Any:
        """The adapter's own execute: the runner builds the nodes and their tests; its exit
        code classifies a failure as for every task."""
        result = super().execute(context)  # type: ignore[misc]
        statuses = dict.fromkeys(self.dbt_nodes, "success")
        if isinstance(result, dict) and isinstance(result.get("nodes"), dict):
            reported = result["nodes"]
            wanted = (*self.dbt_nodes, *(t for ts in self.dbt_nodes.values() for t in ts))
            statuses = {
                uid: str(reported[uid].get("status"))
                for uid in wanted
                if isinstance(reported.get(uid), dict)
            }
        return {
            "nodes": list(self.dbt_nodes),
            "ran": "runner",
            "statuses": statuses,
            "runner": result,
        }


def model_kwargs(task: Any) -> dict[str, Any]:
    """The ModelTaskMixin arguments of a planned model task (a `PlannedTask` with
    nodes); the test-failure policy is the one its runner argv carries."""
    argv = task.argv
    policy = argv[argv.index("--on-test-failure") + 1] if "--on-test-failure" in argv else "fail"
    return {"dbt_nodes": {n.unique_id: n.tests for n in task.nodes}, "on_test_failure": policy}


#: Per-task values the clones share by reference unless copied: every mutable container.
_MUTABLE = (list, dict, set)


def clone_operator(prototype: Any, fields: Mapping[str, Any], name: str) -> Any:
    """A copy of the model operator `prototype` with `fields` replaced (`task_id` the
    full id, `name` the id within its TaskGroup), not yet in any DAG or TaskGroup: made
    the way `BaseOperator.__deepcopy__` copies an operator (its `__dict__`, setters
    bypassed), mutable containers copied, relatives empty.

    Why: a BaseOperator's `__init__` costs about 0.2-0.5 ms (dozens of guarded attribute
    sets, a wrapper per class level), which for 200 model tasks alone exceeds the parse
    budget of a tenant (50 ms). Every model task of a tenant differs from another only in
    the fields the adapter's `model_fields` and the DAG build name; the test
    `test_cloned_model_operators_equal_built_ones` holds that true for every adapter."""
    state = {
        key: copy.copy(value) if isinstance(value, _MUTABLE) else value
        for key, value in prototype.__dict__.items()
    }
    state.update(fields)
    init_kwargs = state.get("_BaseOperator__init_kwargs", {})
    init_kwargs.update({k: v for k, v in fields.items() if k in init_kwargs})
    init_kwargs["task_id"] = name  # as given to __init__: without its TaskGroup's prefix
    state["upstream_task_ids"] = set()
    state["downstream_task_ids"] = set()
    state["_dag"] = None
    state["task_group"] = None
    state["params"] = copy.copy(prototype.params)
    clone = object.__new__(type(prototype))
    object.__setattr__(clone, "__dict__", state)
    return clone
