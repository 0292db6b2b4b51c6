"""Kubernetes/Calico rules for resource names, label keys and label values.

Pure string checks returning a reason (or None), so the validator can attach
them to the exact field path.
"""

from __future__ import annotations

import re

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*")
# Calico's GlobalNetworkPolicy names: an optional "<tier>." prefix then a DNS label.
_POLICY_NAME = re.compile(rf"({_DNS1123_LABEL}\.)?{_DNS1123_LABEL}")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_INTERFACE_NAME = re.compile(r"[a-zA-Z0-9_.-]{1,15}")
_PORT_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")

MAX_NAME = 253
MAX_LABEL_NAME = 63
MAX_LABEL_VALUE = 63


def check_subdomain_name(name: str) -> str | None:
    if len(name) > MAX_NAME:
        return f"name is too long by {len(name) - MAX_NAME} bytes"
    if not _DNS1123_SUBDOMAIN.fullmatch(name):
        return (
            "name must consist of lower case alphanumeric characters, '-' or '.', and must "
            "start and end with an alphanumeric character (regex: "
            f"'{_DNS1123_SUBDOMAIN.pattern}')"
        )
    return None


def check_policy_name(name: str) -> str | None:
    if len(name) > MAX_NAME:
        return f"name is too long by {len(name) - MAX_NAME} bytes"
    if not _POLICY_NAME.fullmatch(name):
        return (
            "name must consist of lower case alphanumeric characters or '-' (with at most "
            f"one '.' after a tier name) (regex: '{_POLICY_NAME.pattern}')"
        )
    return None


def check_label_key(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            return "label key prefix must not be empty"
        reason = check_subdomain_name(prefix)
        if reason:
            return f"label key prefix: {reason}"
    if not name:
        return "label key name must not be empty"
    if len(name) > MAX_LABEL_NAME:
        return f"label key name is too long by {len(name) - MAX_LABEL_NAME} bytes"
    if not _QUALIFIED_NAME.fullmatch(name):
        return (
            "label key name must consist of alphanumeric characters, '-', '_' or '.', and "
            "must start and end with an alphanumeric character"
        )
    return None


def check_label_value(value: str) -> str | None:
    if len(value) > MAX_LABEL_VALUE:
        return f"label value is too long by {len(value) - MAX_LABEL_VALUE} bytes"
    if not _LABEL_VALUE.fullmatch(value):
        return (
            "label value must be empty or consist of alphanumeric characters, '-', '_' or "
            "'.', and must start and end with an alphanumeric character"
        )
    return None


def check_interface_name(name: str) -> str | None:
    if name == "*" or _INTERFACE_NAME.fullmatch(name):
        return None
    return "interface name must be '*' or 1-15 characters of [a-zA-Z0-9_.-]"


def check_port_name(name: str) -> str | None:
    if len(name) > 15 or not _PORT_NAME.fullmatch(name) or not re.search("[a-z]", name):
        return (
            "port name must be 1-15 lower case alphanumeric characters or '-', with at "
            "least one letter"
        )
    return None
