"""Validate OpenLineage events against the official OpenLineage JSON schema, offline.

Why two passes: `OpenLineage.json` types every facet only as the base facet
(`_producer`, `_schemaURL`, anything else allowed), so an event whose `parent` facet
lacks its run id still passes it. Each facet names its own schema in `_schemaURL`; the
second pass validates the facet against that schema, looked up among the vendored
files (`schemas/openlineage/`, keyed by their `$id`, no network). A facet whose schema
is not vendored is a problem, not a skip: a new facet cannot slip by unvalidated.

Airflow's provider facets (`airflow`, `airflowDagRun`, ...) name only the spec's base
`RunFacet`/`JobFacet`; their schemas ship in the installed provider and are looked up
by where the facet sits and its name. Formats: `uuid` and `date-time` (jsonschema with
`rfc3339-validator`) are checked by jsonschema; `uri` needs a package we do not have
(`rfc3987`), so an RFC 3986 absolute-URI check is registered here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import cache
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

#: The vendored official schemas (see its README.md).
VENDORED = Path(__file__).parent / "schemas" / "openlineage"
_ROOT = Path(__file__).parents[2]
#: The event schema every event must name (its `schemaURL` without the fragment).
EVENT_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
#: Where a facet sits in an event → the `$defs` suffix of the schemas it may name.
_KINDS = {
    "run": "RunFacet",
    "job": "JobFacet",
    "facets": "DatasetFacet",
    "inputFacets": "InputDatasetFacet",
    "outputFacets": "OutputDatasetFacet",
}
#: Facets naming only the spec's base facet whose schema the Airflow provider ships:
#: (where, name) → file in `airflow/providers/openlineage/facets/`.
_PROVIDER = "apache-airflow-providers-openlineage"
_PROVIDER_FACETS = {
    ("run", "airflow"): "AirflowRunFacet.json",
    ("job", "airflow"): "AirflowJobFacet.json",
    ("run", "airflowDagRun"): "AirflowDagRunFacet.json",
    ("run", "airflowState"): "AirflowStateRunFacet.json",
    ("run", "debug"): "AirflowDebugRunFacet.json",
}
#: Facets for which no schema is published anywhere, with why; only the base facet is
#: checked. Kept to what a producer we cannot change emits.
_NO_SCHEMA = {
    ("run", "unknownSourceAttribute"): (
        "Airflow's provider emits it for operators without an extractor and ships no "
        "schema for it (deprecated in the provider)"
    ),
}
#: Where Airflow's provider facets, as Airflow 3.3 fills them, break the provider's own
#: schemas (upstream, not ours to fix): (where, facet, path in it, keyword, the whole
#: message as a regex) → why. Exact entries: any other deviation still fails.
_UPSTREAM_DEVIATIONS = {
    (
        "run",
        "airflow",
        ("task", "retry_exponential_backoff"),
        "type",
        r"[\d.]+ is not of type 'boolean'",
    ): ("Airflow 3 made it a float multiplier; the provider's schema still says boolean"),
    ("run", "airflow", ("taskInstance",), "required", r"'pool' is a required property"): (
        "Airflow 3's runtime task instance carries no pool; the provider's schema requires it"
    ),
}
_ABSOLUTE_URI = re.compile(
    r"[A-Za-z][A-Za-z0-9+.\-]*:(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*"
)


def _format_checker() -> FormatChecker:
    """Draft 2020-12's checkers plus `uri`; fails loudly if `date-time`/`uuid` vanish
    (they would otherwise pass unchecked, silently)."""
    known = Draft202012Validator.FORMAT_CHECKER.checkers
    missing = {"date-time", "uuid"} - set(known)
    if missing:
        raise RuntimeError(f"jsonschema does not check format(s) {sorted(missing)} here")
    checker = FormatChecker(formats=list(known))  # a copy: `checks` must not touch the global
    if "uri" not in known:
        checker.checks("uri")(
            lambda value: not isinstance(value, str) or bool(_ABSOLUTE_URI.fullmatch(value))
        )
    return checker


@cache
def _schemas() -> tuple[Registry, dict[str, str]]:
    """The registry of vendored + provider schemas, and the provider facets' URIs."""
    resources: list[tuple[str, Resource]] = []
    for path in sorted(VENDORED.rglob("*.json")):
        contents = json.loads(path.read_text())
        uri = contents.get("$id")
        if not uri:
            raise RuntimeError(f"{path}: a vendored schema without `$id`")
        resources.append((uri, Resource.from_contents(contents)))
    provider = distribution(_PROVIDER)
    provider_uris: dict[str, str] = {}
    for file in set(_PROVIDER_FACETS.values()):
        located = Path(str(provider.locate_file(f"airflow/providers/openlineage/facets/{file}")))
        uri = f"urn:{_PROVIDER}:{provider.version}:facets/{file}"
        resources.append((uri, Resource.from_contents(json.loads(located.read_text()))))
        provider_uris[file] = uri
    return Registry().with_resources(resources), provider_uris


@cache
def _validator(ref: str) -> Draft202012Validator:
    registry, _ = _schemas()
    return Draft202012Validator({"$ref": ref}, registry=registry, format_checker=_format_checker())


def _errors(ref: str, instance: Any, where: str, facet: tuple[str, str] | None = None) -> list[str]:
    """`instance`'s errors against `ref`, less the upstream deviations of `facet`."""
    found = []
    for e in _validator(ref).iter_errors(instance):
        if facet and any(
            (*facet, tuple(e.absolute_path), e.validator) == key[:4]
            and re.fullmatch(key[4], e.message)
            for key in _UPSTREAM_DEVIATIONS
        ):
            continue
        found.append(f"{where}{''.join(f'[{p!r}]' for p in e.absolute_path)}: {e.message}")
    return found


def _facets(event: dict[str, Any]) -> Iterable[tuple[str, str, str, Any]]:
    """(kind, where in the event, name, facet) of every facet the event carries."""
    for kind in ("run", "job"):
        for name, facet in ((event.get(kind) or {}).get("facets") or {}).items():
            yield kind, f"{kind}.facets", name, facet
    for side in ("inputs", "outputs"):
        for i, dataset in enumerate(event.get(side) or ()):
            for kind in ("facets", "inputFacets", "outputFacets"):
                for name, facet in (dataset.get(kind) or {}).items():
                    yield kind, f"{side}[{i}].{kind}", name, facet


def _facet_problems(kind: str, where: str, name: str, facet: Any) -> list[str]:
    label = f"{where}.{name}"
    url = facet.get("_schemaURL") if isinstance(facet, dict) else None
    if not isinstance(url, str):
        return [f"{label}: no `_schemaURL` to validate it by"]
    base, _, fragment = url.partition("#")
    registry, provider_uris = _schemas()
    generic = base == EVENT_SCHEMA and fragment == f"/$defs/{_KINDS[kind]}"
    if generic and (kind, name) in _PROVIDER_FACETS:
        file = _PROVIDER_FACETS[(kind, name)]
        base, fragment = provider_uris[file], f"/$defs/{Path(file).stem}"
    elif generic and (kind, name) in _NO_SCHEMA:
        return _errors(url, facet, label)
    elif generic:
        return [
            f"{label}: `_schemaURL` {url} is only the spec's base facet and no schema for "
            f"this facet is known: vendor its schema (schemas/openlineage/README.md) or "
            f"map it in openlineage_schema._PROVIDER_FACETS"
        ]
    elif base not in registry:
        return [
            f"{label}: its schema {base} is not vendored in {VENDORED.relative_to(_ROOT)}: "
            "copy it there unchanged from the OpenLineage repository (README.md there)"
        ]
    schema = registry.contents(base)
    definition = fragment.removeprefix("/$defs/")
    if not (fragment.startswith("/$defs/") and definition in schema.get("$defs", {})):
        return [f"{label}: `_schemaURL` {url} names no definition of {base}"]
    problems = []
    if not definition.endswith(_KINDS[kind]):
        problems.append(f"{label}: a {definition} where a {_KINDS[kind]} belongs")
    if name not in schema.get("properties", {}):
        problems.append(
            f"{label}: {base} names its facet {sorted(schema.get('properties', {}))}, not {name!r}"
        )
    return problems + _errors(f"{base}#{fragment}", facet, label, (kind, name))


def problems(event: dict[str, Any]) -> list[str]:
    """Everything wrong with one event, one line each (empty: it is valid)."""
    found = _errors(EVENT_SCHEMA, event, "event")
    if found:  # the root's oneOf says only "not valid": say why, against the event's kind
        kind = (
            "RunEvent" if "run" in event else "DatasetEvent" if "dataset" in event else "JobEvent"
        )
        found = _errors(f"{EVENT_SCHEMA}#/$defs/{kind}", event, "event") or found
    schema_url = event.get("schemaURL")
    if isinstance(schema_url, str) and schema_url.partition("#")[0] != EVENT_SCHEMA:
        found.append(f"event.schemaURL: {schema_url} is not the vendored {EVENT_SCHEMA}")
    for kind, where, name, facet in _facets(event):
        found += _facet_problems(kind, where, name, facet)
    return found


def validate_events(events: list[dict[str, Any]]) -> None:
    """Assert every event is valid, naming each problem with the event it is in."""
    assert events, "no OpenLineage events to validate"
    found = []
    for i, event in enumerate(events):
        job = event.get("job") or {}
        label = f"event {i} ({event.get('eventType')} {job.get('namespace')}/{job.get('name')})"
        found += [f"{label} {line}" for line in problems(event)]
    assert not found, "\n".join(found)
