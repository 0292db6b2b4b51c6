"""Calico v3 resources: models, validation with field paths, YAML/JSON codec. Pure."""

from seawall.api.codec import (
    ParsedResource,
    SourceDocument,
    from_stored,
    load_text,
    parse_document,
    parse_documents,
    split_documents,
    to_document,
)
from seawall.api.errors import DocumentError, FieldError, ValidationFailed, Warning_
from seawall.api.kinds import KINDS, KindInfo, UnknownKind, resolve_kind
from seawall.api.models import (
    API_VERSION,
    FelixConfiguration,
    GlobalNetworkPolicy,
    GlobalNetworkSet,
    HostEndpoint,
    Resource,
)

__all__ = [
    "API_VERSION", "DocumentError", "FelixConfiguration", "FieldError", "GlobalNetworkPolicy",
    "GlobalNetworkSet", "HostEndpoint", "KINDS", "KindInfo", "ParsedResource", "Resource",
    "SourceDocument", "UnknownKind", "ValidationFailed", "Warning_", "from_stored", "load_text",
    "parse_document", "parse_documents", "resolve_kind", "split_documents", "to_document",
]
