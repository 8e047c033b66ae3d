"""The HeroCtl client library: what the CLI and the node agent use to reach
the cluster's API over HTTP (never its internals).

Import from here: `from client import ApiClient, ApiClientError`.
"""

from client.api_client import ApiClient
from client.ca import fetch_ca_unverified
from client.errors import ApiClientError, ApiUnreachable, CertificateUntrusted
from client.retry import DEFAULT_RETRY, RetryPolicy
from client.transport import (
    DEFAULT_ADDRESS,
    INDEX_HEADER,
    HttpClient,
    Params,
    format_wait,
    normalize_address,
    parse_addresses,
    response_index,
)

__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_RETRY",
    "INDEX_HEADER",
    "ApiClient",
    "ApiClientError",
    "ApiUnreachable",
    "CertificateUntrusted",
    "fetch_ca_unverified",
    "HttpClient",
    "Params",
    "format_wait",
    "normalize_address",
    "parse_addresses",
    "RetryPolicy",
    "response_index",
]
