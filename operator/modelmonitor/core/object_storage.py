"""Object storage requests, built and signed without a client library: pure.

The operator fetches a reference object with one GET through its outbound fence
(address checks, same-origin redirects, bounded bodies), so it signs the request itself
rather than handing the fetch to an SDK that would open its own connections:

* **S3 and S3-compatible servers** (and Google Cloud Storage through its
  S3-interoperable XML API with HMAC keys): AWS Signature Version 4
  (:func:`sigv4_headers`), tested against AWS's published examples;
* **Azure Blob Storage**: Shared Key (:func:`azure_shared_key`), or a SAS token that
  travels in the query string and needs no signing here.

Addressing (:func:`object_url`): the bucket and key become the URL's path (path-style,
``endpoint/bucket/key``) or its host and path (virtual-hosted, ``bucket.host/key``).
Every key is held to :func:`object_key_problem` (no ``.``/``..`` segment, no leading
``/``, no empty segment, no control character) and percent-quoted segment by segment,
so no key can reach another bucket or path on the server; the builder checks again.
Each ``*_problem`` check returns None when the value is valid, else what is wrong.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

Provider = Literal["s3", "gcs", "azureBlob"]
PROVIDERS: tuple[Provider, ...] = ("s3", "gcs", "azureBlob")

#: SigV4's name for a body nobody hashed (a GET has none; S3 accepts this for any GET).
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
AZURE_VERSION = "2021-08-06"  # x-ms-version: the Blob service API the request speaks
GCS_ENDPOINT = "https://storage.googleapis.com"
MAX_KEY_BYTES = 1024  # S3, GCS and Azure all stop at 1024 (bytes of UTF-8; Azure: characters)

_S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_GCS_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
_AZURE_CONTAINER = re.compile(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]")
_AZURE_ACCOUNT = re.compile(r"[a-z0-9]{3,24}")
_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def s3_bucket_problem(name: str) -> str | None:
    """S3's bucket naming rules (general purpose buckets)."""
    if not _S3_BUCKET.fullmatch(name):
        return (
            f"invalid bucket {name!r}: 3-63 lower case letters, digits, '.' and '-', "
            "starting and ending with a letter or digit"
        )
    if ".." in name or ".-" in name or "-." in name:
        return f"invalid bucket {name!r}: no '..', '.-' or '-.'"
    if _is_ip(name):
        return f"invalid bucket {name!r}: may not look like an IP address"
    if name.startswith(("xn--", "sthree-")) or name.endswith(("-s3alias", "--ol-s3")):
        return f"invalid bucket {name!r}: reserved prefix or suffix"
    return None


def gcs_bucket_problem(name: str) -> str | None:
    """Google Cloud Storage's bucket naming rules."""
    if not _GCS_BUCKET.fullmatch(name):
        return (
            f"invalid bucket {name!r}: 3-222 lower case letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit"
        )
    parts = name.split(".")
    if len(parts) == 1 and len(name) > 63:
        return f"invalid bucket {name!r}: at most 63 characters without dots"
    if any(not p or len(p) > 63 for p in parts):
        return f"invalid bucket {name!r}: each dot-separated part has 1-63 characters"
    if _is_ip(name) or name.startswith("goog") or "google" in name:
        return f"invalid bucket {name!r}: may not look like an IP address or contain 'google'"
    return None


def azure_container_problem(name: str) -> str | None:
    """Azure Blob's container naming rules."""
    if not _AZURE_CONTAINER.fullmatch(name):
        return (
            f"invalid container {name!r}: 3-63 lower case letters, digits and '-', "
            "starting and ending with a letter or digit, no '--'"
        )
    return None


def azure_account_problem(name: str) -> str | None:
    if not _AZURE_ACCOUNT.fullmatch(name):
        return f"invalid storage account {name!r}: 3-24 lower case letters and digits"
    return None


def region_problem(name: str) -> str | None:
    if not _REGION.fullmatch(name):
        return f"invalid region {name!r}: lower case letters, digits and '-' (us-east-1)"
    return None


def object_key_problem(key: str) -> str | None:
    """None when ``key`` can name an object without leaving its bucket's path.

    ``.`` and ``..`` segments are refused (HTTP clients and servers collapse them, which
    would move the request out of the bucket), so are a leading ``/`` and empty segments
    (some servers collapse ``//``), control characters and more than 1024 bytes.
    """
    if not key:
        return "must not be empty"
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid UTF-8 text"
    if len(encoded) > MAX_KEY_BYTES:
        return f"must be at most {MAX_KEY_BYTES} bytes of UTF-8"
    if any(not ch.isprintable() and ch != " " for ch in key):
        return "may not contain control characters"
    if key.startswith("/"):
        return "may not start with '/' (the key is the path inside the bucket)"
    segments = key.split("/")
    if any(s in (".", "..") for s in segments):
        return "may not contain '.' or '..' path segments"
    if any(not s for s in segments[:-1]) or key.endswith("/"):
        return "may not contain empty path segments ('//') or end with '/'"
    return None


def endpoint_problem(url: str, *, path_allowed: bool = False) -> str | None:
    """An ``http(s)://host[:port]`` endpoint (with a path only where ``path_allowed``)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"is not a URL: {exc}"
    del port
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return "may not contain a user or password (credentials come from secretRef)"
    if parts.query or parts.fragment or "?" in url or "#" in url:
        return "may not contain a query or fragment"
    path = parts.path.rstrip("/")
    if path and not path_allowed:
        return "must be scheme, host and port only (no path)"
    if path and (
        any(s in (".", "..") for s in path.split("/"))
        or any(c in "%\\" or c.isspace() or not c.isprintable() for c in path)
    ):
        return "has a path with '.', '..', '%', '\\' or spaces"
    if any(c.isspace() or not c.isprintable() for c in url):
        return "may not contain spaces or control characters"
    return None


def sas_token_problem(token: str) -> str | None:
    """A SAS token is a query string (``sv=...&sig=...``), optionally with a leading '?'."""
    text = token[1:] if token.startswith("?") else token
    if not text or any(c in "#?/\\" or c.isspace() or not c.isascii() for c in text):
        return "is not a SAS token (a query string like 'sv=...&sig=...')"
    if "sig=" not in text:
        return "is not a SAS token: it has no 'sig=' parameter"
    return None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def quote_key(key: str) -> str:
    """``key`` percent-quoted as S3 and Azure expect in the path (RFC 3986 unreserved
    characters and '/' kept, everything else as UTF-8 escapes). Refuses an invalid key."""
    problem = object_key_problem(key)
    if problem is not None:
        raise ValueError(f"object key {problem}")
    return urllib.parse.quote(key, safe="/", encoding="utf-8", errors="strict")


@dataclass(frozen=True)
class ObjectAddress:
    """Where one object is: ``url`` (path already quoted) and what names it in messages."""

    url: str
    shown: str  # s3://bucket/key, gs://bucket/key, az://account/container/key
    host: str  # the Host header's value (with a non-default port)


def object_url(
    provider: Provider,
    *,
    bucket: str,
    key: str,
    endpoint: str | None = None,
    region: str = "us-east-1",
    path_style: bool = False,
    account: str | None = None,
) -> ObjectAddress:
    """The URL to GET one object from.

    S3: ``https://s3.<region>.amazonaws.com`` unless ``endpoint``; virtual-hosted
    (``bucket.host``) unless ``path_style``. GCS: path-style on ``storage.googleapis.com``.
    Azure: ``https://<account>.blob.core.windows.net/<container>/<blob>``, or the
    ``endpoint`` (which may carry a path, as Azurite's ``/<account>``) in its place.
    """
    quoted = quote_key(key)
    if provider == "azureBlob":
        if account is None:
            raise ValueError("an Azure blob needs its storage account")
        base = (endpoint or f"https://{account}.blob.core.windows.net").rstrip("/")
        shown = f"az://{account}/{bucket}/{key}"
        url = f"{base}/{bucket}/{quoted}"
    else:
        default = GCS_ENDPOINT if provider == "gcs" else f"https://s3.{region}.amazonaws.com"
        base = (endpoint or default).rstrip("/")
        shown = f"{'gs' if provider == 'gcs' else 's3'}://{bucket}/{key}"
        if path_style or provider == "gcs":
            url = f"{base}/{bucket}/{quoted}"
        else:
            parts = urllib.parse.urlsplit(base)
            url = f"{parts.scheme}://{bucket}.{parts.netloc}/{quoted}"
    parts = urllib.parse.urlsplit(url)
    return ObjectAddress(url=url, shown=shown, host=parts.netloc)


# -- AWS Signature Version 4 -------------------------------------------------------------------
def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def sigv4_signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    k_date = _hmac(f"AWS4{secret_key}".encode(), date)
    return _hmac(_hmac(_hmac(k_date, region), service), "aws4_request")


def _canonical_query(query: str) -> str:
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    encoded = [
        (urllib.parse.quote(k, safe="-_.~"), urllib.parse.quote(v, safe="-_.~")) for k, v in pairs
    ]
    return "&".join(f"{k}={v}" for k, v in sorted(encoded))


def sigv4_headers(
    method: str,
    url: str,
    headers: Mapping[str, str],
    *,
    access_key: str,
    secret_key: str,
    region: str,
    service: str = "s3",
    now: datetime,
    payload_hash: str = UNSIGNED_PAYLOAD,
    session_token: str | None = None,
    sign_content_hash: bool = True,
) -> dict[str, str]:
    """``headers`` plus what SigV4 adds: ``x-amz-date``, ``x-amz-content-sha256``
    (when ``sign_content_hash``, as S3 requires), the session token and ``Authorization``.

    Every header given is signed, and ``host`` from the URL. The URL's path is used as
    written (S3 canonicalizes the path as sent, already percent-quoted, without a second
    encoding), which is why :func:`object_url` quotes it once, here and on the wire alike.
    """
    parts = urllib.parse.urlsplit(url)
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    date = stamp[:8]
    out = dict(headers)
    out["x-amz-date"] = stamp
    if sign_content_hash:
        out["x-amz-content-sha256"] = payload_hash
    if session_token:
        out["x-amz-security-token"] = session_token
    signed = {k.lower(): " ".join(v.strip().split()) for k, v in out.items()}
    signed["host"] = parts.netloc
    names = sorted(signed)
    canonical = "\n".join(
        [
            method,
            parts.path or "/",
            _canonical_query(parts.query),
            "".join(f"{n}:{signed[n]}\n" for n in names),
            ";".join(names),
            payload_hash,
        ]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            stamp,
            scope,
            hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        ]
    )
    key = sigv4_signing_key(secret_key, date, region, service)
    signature = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    out["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return out


# -- Azure Shared Key ---------------------------------------------------------------------------
_AZURE_STANDARD = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)


def azure_string_to_sign(method: str, url: str, headers: Mapping[str, str], account: str) -> str:
    """The Blob service's Shared Key string-to-sign (version 2015-02-21 and later)."""
    lower = {k.lower(): v for k, v in headers.items()}
    standard = [lower.get(h, "") for h in _AZURE_STANDARD]
    if standard[2] == "0":  # Content-Length: empty when zero
        standard[2] = ""
    ms = sorted((k, " ".join(v.strip().split())) for k, v in lower.items() if k.startswith("x-ms-"))
    parts = urllib.parse.urlsplit(url)
    resource = f"/{account}{parts.path or '/'}"
    query: dict[str, list[str]] = {}
    for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        query.setdefault(k.lower(), []).append(v)
    for k in sorted(query):
        resource += f"\n{k}:{','.join(sorted(query[k]))}"
    return "\n".join([method, *standard, *(f"{k}:{v}" for k, v in ms), resource])


def azure_shared_key(
    method: str,
    url: str,
    headers: Mapping[str, str],
    *,
    account: str,
    account_key: str,
    now: datetime,
) -> dict[str, str]:
    """``headers`` plus ``x-ms-date``, ``x-ms-version`` and the Shared Key ``Authorization``.

    ``account_key`` is the base64 key the portal shows; a ValueError when it is not base64.
    """
    try:
        key = base64.b64decode(account_key, validate=True)
    except ValueError as exc:
        raise ValueError("the account key is not base64") from exc
    out = dict(headers)
    out.setdefault("x-ms-date", now.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT"))
    out.setdefault("x-ms-version", AZURE_VERSION)
    to_sign = azure_string_to_sign(method, url, out, account)
    signature = base64.b64encode(hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).digest())
    out["Authorization"] = f"SharedKey {account}:{signature.decode()}"
    return out


def with_sas(url: str, token: str) -> str:
    """``url`` with the SAS token as its query string (checked by :func:`sas_token_problem`)."""
    problem = sas_token_problem(token)
    if problem is not None:
        raise ValueError(f"the SAS token {problem}")
    return f"{url}?{token.removeprefix('?')}"


_XML_CODE = re.compile(r"<Code>([A-Za-z0-9.]{1,64})</Code>")


def error_code(body: bytes) -> str | None:
    """The ``<Code>`` of an S3 or Azure XML error body (``AccessDenied``,
    ``SignatureDoesNotMatch``, ``AuthenticationFailed``), if any: a fixed vocabulary,
    safe to show, where the rest of the body may quote the request."""
    found = _XML_CODE.search(body[:4096].decode("utf-8", "replace"))
    return found.group(1) if found else None


# -- Listing a prefix (S3 ListObjectsV2; GCS's XML API answers the same request) --------------
#: Keys asked per ListObjectsV2 page (S3's own maximum).
LIST_PAGE_KEYS = 1000
#: The ``s3:ListBucket`` answer of one page: 1,000 keys of up to 1,024 bytes, with XML around.
MAX_LIST_PAGE_BYTES = 4 << 20
#: File endings a prefix's objects must have to be read as partitions.
PARTITION_SUFFIXES = (".parquet", ".csv", ".csv.gz")
_S3_XMLNS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def object_prefix_problem(prefix: str) -> str | None:
    """None when ``prefix`` can name a "folder" of a bucket: the rules of
    :func:`object_key_problem`, except that it may end with ``/`` (``exports/day=1/``).
    The empty prefix (the whole bucket) is refused: name the folder the window is in."""
    if not prefix:
        return "must not be empty (name the folder the partitions are in, e.g. 'exports/')"
    return object_key_problem(prefix[:-1] if prefix.endswith("/") else prefix)


def list_url(
    provider: Provider,
    *,
    bucket: str,
    prefix: str,
    endpoint: str | None = None,
    region: str = "us-east-1",
    path_style: bool = False,
    continuation: str | None = None,
    max_keys: int = LIST_PAGE_KEYS,
) -> ObjectAddress:
    """The URL of one ListObjectsV2 page of ``bucket`` under ``prefix`` (S3 and GCS).

    The prefix travels in the query string, quoted; the bucket as in :func:`object_url`.
    """
    problem = object_prefix_problem(prefix)
    if problem is not None:
        raise ValueError(f"object prefix {problem}")
    if provider == "azureBlob":
        raise ValueError("listing an Azure container is not supported")
    default = GCS_ENDPOINT if provider == "gcs" else f"https://s3.{region}.amazonaws.com"
    base = (endpoint or default).rstrip("/")
    params = [("list-type", "2"), ("max-keys", str(max_keys)), ("prefix", prefix)]
    if continuation is not None:
        params.append(("continuation-token", continuation))
    query = urllib.parse.urlencode(params, quote_via=urllib.parse.quote, safe="-_.~")
    if path_style or provider == "gcs":
        url = f"{base}/{bucket}?{query}"
    else:
        parts = urllib.parse.urlsplit(base)
        url = f"{parts.scheme}://{bucket}.{parts.netloc}/?{query}"
    shown = f"{'gs' if provider == 'gcs' else 's3'}://{bucket}/{prefix}"
    return ObjectAddress(url=url, shown=shown, host=urllib.parse.urlsplit(url).netloc)


@dataclass(frozen=True)
class ListedObject:
    key: str
    size: int


@dataclass(frozen=True)
class ListPage:
    """One ListObjectsV2 answer: its objects, and the token of the next page (None: last)."""

    objects: tuple[ListedObject, ...]
    next_token: str | None


def parse_list_page(body: bytes) -> ListPage:
    """A ListObjectsV2 answer's ``<Contents>`` (key and size) and continuation token.

    The body is the server's: a ValueError for anything that is not a plain
    ``ListBucketResult`` (a DOCTYPE, which could declare entities, is refused before the
    parser sees it; a size that is not a non-negative integer; a truncated page without
    a token).
    """
    if len(body) > MAX_LIST_PAGE_BYTES:
        raise ValueError(f"the listing page is larger than {MAX_LIST_PAGE_BYTES} bytes")
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise ValueError("the listing declares a DOCTYPE or entities")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise ValueError(f"the listing is not XML: {exc}") from None
    ns = _S3_XMLNS if root.tag.startswith(_S3_XMLNS) else ""
    if root.tag != f"{ns}ListBucketResult":
        raise ValueError(f"the listing is a {root.tag.removeprefix(ns)!r}, not a ListBucketResult")
    objects = []
    for item in root.iter(f"{ns}Contents"):
        key = item.findtext(f"{ns}Key")
        size_text = (item.findtext(f"{ns}Size") or "").strip()
        if key is None or not size_text.isdigit():
            raise ValueError("the listing has an object without a key or a size")
        objects.append(ListedObject(key, int(size_text)))
    truncated = (root.findtext(f"{ns}IsTruncated") or "false").strip().lower() == "true"
    token = root.findtext(f"{ns}NextContinuationToken")
    if truncated and not token:
        raise ValueError("the listing is truncated but gives no continuation token")
    return ListPage(tuple(objects), token if truncated else None)


def is_partition_key(key: str) -> bool:
    """True when ``key``'s last segment is a data file (:data:`PARTITION_SUFFIXES`) whose
    name does not start with ``.`` or ``_`` (``_SUCCESS``, ``.part-0.crc``)."""
    name = key.rsplit("/", 1)[-1]
    return not name.startswith((".", "_")) and name.lower().endswith(PARTITION_SUFFIXES)
