"""Kubernetes names and label values: the API server's own rules, and how ours are made.

The validators follow `k8s.io/apimachinery/pkg/util/validation` (IsDNS1123Label,
IsDNS1123Subdomain, IsValidLabelValue, IsQualifiedName) rule for rule, so a test can
check every value we derive from a tenant file against what the server would accept,
instead of finding out from an HTTP 422 at run time. Each returns the list of problems
(empty: valid), as Go's functions do.

The makers (`label_value`, `dns_label`) turn a tenant's identifiers (table names may be
63 characters, start or end with `_`) into valid values: when the value has to change
beyond `_` → `-`, or is too long, it is cut and given a hash of the original, so two
different tables never share a label or a pod name prefix.
"""

from __future__ import annotations

import hashlib
import re

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
LABEL_VALUE_MAX = 63
QUALIFIED_NAME_MAX = 63

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_RE = re.compile(rf"^{_DNS1123_LABEL}$")
_DNS1123_SUBDOMAIN_RE = re.compile(rf"^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
#: Length of the hash a shortened or changed value ends with.
_HASH_LEN = 8


def is_dns1123_label(value: str) -> list[str]:
    """Namespace, Service and most object names: at most 63 of a-z 0-9 -, alnum ends."""
    errors = []
    if len(value) > DNS1123_LABEL_MAX:
        errors.append(f"must be no more than {DNS1123_LABEL_MAX} characters")
    if not _DNS1123_LABEL_RE.match(value):
        errors.append(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
            "or '-', and must start and end with an alphanumeric character"
        )
    return errors


def is_dns1123_subdomain(value: str) -> list[str]:
    """Pod, Secret, ServiceAccount names: dot-separated DNS-1123 labels, at most 253."""
    errors = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errors.append(f"must be no more than {DNS1123_SUBDOMAIN_MAX} characters")
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        errors.append(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
            "characters, '-' or '.', and must start and end with an alphanumeric character"
        )
    return errors


def is_valid_label_value(value: str) -> list[str]:
    """A label's value: empty, or at most 63 of A-Z a-z 0-9 - _ ., alnum ends."""
    errors = []
    if len(value) > LABEL_VALUE_MAX:
        errors.append(f"must be no more than {LABEL_VALUE_MAX} characters")
    if not _LABEL_VALUE_RE.match(value):
        errors.append(
            "a valid label must be an empty string or consist of alphanumeric characters, "
            "'-', '_' or '.', and must start and end with an alphanumeric character"
        )
    return errors


def is_qualified_name(value: str) -> list[str]:
    """A label key: `[prefix/]name`, the prefix a DNS-1123 subdomain, the name at most 63."""
    prefix, slash, name = value.rpartition("/")
    if slash and not prefix:
        return ["prefix part must be non-empty"]
    errors = [f"prefix part {e}" for e in is_dns1123_subdomain(prefix)] if slash else []
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > QUALIFIED_NAME_MAX:
        errors.append(f"name part must be no more than {QUALIFIED_NAME_MAX} characters")
    if name and not _QUALIFIED_NAME_RE.match(name):
        errors.append(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character"
        )
    return errors


def _hashed(original: str, kept: str, limit: int, sep: str) -> str:
    digest = hashlib.sha256(original.encode()).hexdigest()[:_HASH_LEN]
    head = kept[: limit - _HASH_LEN - len(sep)].rstrip("-_.")
    return f"{head}{sep}{digest}" if head else digest


def label_value(text: str) -> str:
    """`text` as a label value: `_` → `-`; unchanged otherwise when valid; else cut to fit,
    non-alphanumeric ends stripped, and a hash of `text` appended (stays unique)."""
    value = text.replace("_", "-")
    if not is_valid_label_value(value):
        return value
    kept = re.sub(r"[^A-Za-z0-9_.-]", "", value).strip("-_.")
    return _hashed(text, kept, LABEL_VALUE_MAX, "-")


def dns_label(text: str, limit: int = DNS1123_LABEL_MAX) -> str:
    """`text` as a DNS-1123 label of at most `limit` characters, made as `label_value`."""
    value = text.lower().replace("_", "-")
    if len(value) <= limit and not is_dns1123_label(value):
        return value
    kept = re.sub(r"[^a-z0-9-]", "", value).strip("-")
    return _hashed(text, kept, limit, "-")
