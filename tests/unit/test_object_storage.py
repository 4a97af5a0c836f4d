"""Object storage requests: addressing, names, AWS Signature Version 4 and Azure Shared Key.

Expected signatures are AWS's published examples (cited per test); botocore 1.x, an
independent implementation, checks keys with spaces, unicode and reserved characters;
Azure's string-to-sign is the example of its "Authorize with Shared Key" page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import posixpath
import urllib.parse
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmonitor.core.object_storage import (
    EMPTY_SHA256,
    azure_account_problem,
    azure_container_problem,
    azure_shared_key,
    azure_string_to_sign,
    endpoint_problem,
    error_code,
    gcs_bucket_problem,
    object_key_problem,
    object_url,
    quote_key,
    s3_bucket_problem,
    sas_token_problem,
    sigv4_headers,
    with_sas,
)

AWS_DOC_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_sigv4_s3_get_object_example() -> None:
    """AWS S3 API reference, "Signature Calculations for the Authorization Header",
    example GET Object (examplebucket/test.txt, Range: bytes=0-9, 2013-05-24)."""
    headers = sigv4_headers(
        "GET",
        "https://examplebucket.s3.amazonaws.com/test.txt",
        {"Range": "bytes=0-9"},
        access_key="AKIAIOSFODNN7EXAMPLE",
        secret_key=AWS_DOC_KEY,
        region="us-east-1",
        now=datetime(2013, 5, 24, tzinfo=UTC),
        payload_hash=EMPTY_SHA256,
    )
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )
    assert headers["x-amz-date"] == "20130524T000000Z"


def test_sigv4_test_suite_get_vanilla() -> None:
    """AWS Signature Version 4 test suite, get-vanilla (service 'service')."""
    headers = sigv4_headers(
        "GET",
        "https://example.amazonaws.com/",
        {},
        access_key="AKIDEXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        region="us-east-1",
        service="service",
        now=datetime(2015, 8, 30, 12, 36, tzinfo=UTC),
        payload_hash=EMPTY_SHA256,
        sign_content_hash=False,
    )
    assert headers["Authorization"].endswith(
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )


@pytest.mark.parametrize(
    "key",
    ["reference.csv", "team a/ref ü+(1)!.csv", "a/b~c/d=e&f.parquet", "数据/参考.jsonl", "x'*y"],
)
def test_sigv4_agrees_with_botocore_on_quoted_keys(
    key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore's S3SigV4Auth signs the same request to the same signature."""
    import botocore.auth
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    address = object_url(
        "s3", bucket="refs", key=key, endpoint="http://127.0.0.1:7070", path_style=True
    )
    now = datetime(2026, 12, 7, 10, 0, 0, tzinfo=UTC)
    ours = sigv4_headers(
        "GET",
        address.url,
        {"If-None-Match": '"abc"'},
        access_key="AKID",
        secret_key="SECRET",
        session_token="TOKEN",
        region="eu-west-3",
        now=now,
        payload_hash=EMPTY_SHA256,  # what botocore sends over http
    )
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: now.replace(tzinfo=None))
    request = AWSRequest(method="GET", url=address.url, headers={"If-None-Match": '"abc"'})
    S3SigV4Auth(Credentials("AKID", "SECRET", "TOKEN"), "s3", "eu-west-3").add_auth(request)
    assert ours["Authorization"] == request.headers["Authorization"]


def test_azure_string_to_sign_matches_the_documented_example() -> None:
    """learn.microsoft.com, "Authorize with Shared Key", Blob service example
    (Get Container Metadata, version 2015-02-21)."""
    text = azure_string_to_sign(
        "GET",
        "https://myaccount.blob.core.windows.net/mycontainer?restype=container&comp=metadata&timeout=20",
        {"x-ms-date": "Fri, 26 Jun 2015 23:39:12 GMT", "x-ms-version": "2015-02-21"},
        "myaccount",
    )
    assert text == (
        "GET\n\n\n\n\n\n\n\n\n\n\n\n"
        "x-ms-date:Fri, 26 Jun 2015 23:39:12 GMT\nx-ms-version:2015-02-21\n"
        "/myaccount/mycontainer\ncomp:metadata\nrestype:container\ntimeout:20"
    )


def test_azure_shared_key_signs_the_string_with_the_decoded_key() -> None:
    key = base64.b64encode(b"0123456789abcdef" * 4).decode()
    url = object_url("azureBlob", bucket="refs", key="a b/ü.csv", account="acct").url
    now = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    headers = azure_shared_key(
        "GET", url, {"If-None-Match": '"0x1"'}, account="acct", account_key=key, now=now
    )
    assert headers["x-ms-date"] == "Mon, 07 Dec 2026 10:00:00 GMT"
    text = azure_string_to_sign("GET", url, headers, "acct")
    assert '\n"0x1"\n' in text  # If-None-Match is part of what is signed
    assert text.endswith("/acct/refs/a%20b/%C3%BC.csv")
    expected = base64.b64encode(
        hmac.new(b"0123456789abcdef" * 4, text.encode(), hashlib.sha256).digest()
    ).decode()
    assert headers["Authorization"] == f"SharedKey acct:{expected}"
    with pytest.raises(ValueError, match="not base64"):
        azure_shared_key("GET", url, {}, account="acct", account_key="not base64!", now=now)


@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("reference.csv", "/refs/reference.csv"),
        ("team a/ref ü.csv", "/refs/team%20a/ref%20%C3%BC.csv"),
        ("a+b?c#d%e", "/refs/a%2Bb%3Fc%23d%25e"),
        ("..a/b..", "/refs/..a/b.."),
    ],
)
def test_keys_are_quoted_into_the_bucket_path(key: str, path: str) -> None:
    address = object_url(
        "s3", bucket="refs", key=key, endpoint="http://s3.local:9000", path_style=True
    )
    assert address.url == f"http://s3.local:9000{path}"


@pytest.mark.parametrize(
    "key",
    [
        "../other/x.csv",
        "a/../../b",
        "a/./b",
        ".",
        "..",
        "/abs",
        "a//b",
        "dir/",
        "a\nb",
        "",
        "\ud800",
    ],
)
def test_keys_that_could_leave_the_bucket_are_refused(key: str) -> None:
    assert object_key_problem(key) is not None
    with pytest.raises(ValueError, match="object key"):
        quote_key(key)


def test_addressing_styles() -> None:
    virtual = object_url("s3", bucket="refs", key="r.csv", region="eu-west-1")
    assert virtual.url == "https://refs.s3.eu-west-1.amazonaws.com/r.csv"
    assert virtual.shown == "s3://refs/r.csv"
    custom = object_url("s3", bucket="refs", key="r.csv", endpoint="https://r2.example:8443")
    assert custom.url == "https://refs.r2.example:8443/r.csv"
    gcs = object_url("gcs", bucket="my_refs", key="r.csv")
    assert gcs.url == "https://storage.googleapis.com/my_refs/r.csv"
    azure = object_url("azureBlob", bucket="refs", key="r.csv", account="acct")
    assert azure.url == "https://acct.blob.core.windows.net/refs/r.csv"
    azurite = object_url(
        "azureBlob", bucket="refs", key="r.csv", account="acct", endpoint="http://az:10000/acct"
    )
    assert azurite.url == "http://az:10000/acct/refs/r.csv"
    assert azurite.shown == "az://acct/refs/r.csv"


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("refs", True),
        ("my.refs-2", True),
        ("ab", False),
        ("Refs", False),
        ("a..b", False),
        ("a.-b", False),
        ("192.168.1.1", False),
        ("xn--refs", False),
        ("refs-s3alias", False),
        ("-refs", False),
        ("a" * 64, False),
        ("my_refs", False),
    ],
)
def test_s3_bucket_rules(name: str, ok: bool) -> None:
    assert (s3_bucket_problem(name) is None) is ok


def test_gcs_and_azure_name_rules() -> None:
    assert gcs_bucket_problem("my_refs") is None
    assert gcs_bucket_problem("google-refs") is not None
    assert gcs_bucket_problem("a" * 64) is not None
    assert gcs_bucket_problem(".".join(["a" * 60] * 3)) is None
    assert azure_container_problem("refs-1") is None
    assert azure_container_problem("refs--1") is not None
    assert azure_container_problem("Refs") is not None
    assert azure_account_problem("acct01") is None
    assert azure_account_problem("acct-01") is not None


@pytest.mark.parametrize(
    ("url", "path_allowed", "ok"),
    [
        ("http://seaweed.storage:8333", False, True),
        ("https://s3.example", False, True),
        ("https://s3.example/", False, True),
        ("https://s3.example/prefix", False, False),
        ("http://az:10000/acct", True, True),
        ("http://az:10000/../x", True, False),
        ("https://user:pw@s3.example", False, False),
        ("https://s3.example?x=1", False, False),
        ("ftp://s3.example", False, False),
        ("https://", False, False),
    ],
)
def test_endpoints(url: str, path_allowed: bool, ok: bool) -> None:
    assert (endpoint_problem(url, path_allowed=path_allowed) is None) is ok


def test_sas_tokens() -> None:
    assert sas_token_problem("?sv=2022-11-02&sp=r&sig=abc%3D") is None
    assert sas_token_problem("sv=2022-11-02&sp=r") is not None  # no signature
    assert sas_token_problem("sig=a#b") is not None
    assert with_sas("https://a/b/c", "?sv=1&sig=x") == "https://a/b/c?sv=1&sig=x"
    with pytest.raises(ValueError, match="SAS token"):
        with_sas("https://a/b/c", "sig=a b")


def test_error_code_is_read_from_xml_only() -> None:
    body = b"<?xml version='1.0'?><Error><Code>SignatureDoesNotMatch</Code><Message>x</Message>"
    assert error_code(body) == "SignatureDoesNotMatch"
    assert error_code(b"<Code>evil\ninjected</Code>") is None
    assert error_code(b"not xml") is None


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=60))
def test_no_accepted_key_leaves_its_bucket(key: str) -> None:
    """Any key the rule accepts round-trips through quoting and stays under /bucket/,
    however a server decodes and normalizes the path."""
    if object_key_problem(key) is not None:
        return
    url = object_url("s3", bucket="refs", key=key, endpoint="http://s3.local", path_style=True).url
    path = urllib.parse.urlsplit(url).path
    assert "?" not in url
    assert "#" not in url
    assert urllib.parse.unquote(path) == f"/refs/{key}"
    assert posixpath.normpath(urllib.parse.unquote(path)).startswith("/refs/")


def test_a_prefix_may_end_with_a_slash_but_never_leave_its_bucket() -> None:
    from modelmonitor.core.object_storage import object_prefix_problem

    assert object_prefix_problem("exports/day=1/") is None
    assert object_prefix_problem("exports/day=1") is None
    for bad in ("", "/x/", "a//b/", "../x/", "a/./b", "a\x00b"):
        assert object_prefix_problem(bad) is not None, bad


def test_list_url_puts_the_prefix_in_a_sigv4_canonical_query() -> None:
    from modelmonitor.core.object_storage import list_url, parse_list_page

    path_style = list_url(
        "s3", bucket="lake", prefix="a b/ü/", endpoint="http://s3:9000", path_style=True
    )
    assert path_style.url == (
        "http://s3:9000/lake?list-type=2&max-keys=1000&prefix=a%20b%2F%C3%BC%2F"
    )
    hosted = list_url("s3", bucket="lake", prefix="p/", region="eu-west-1", continuation="t+/=")
    assert hosted.url.startswith("https://lake.s3.eu-west-1.amazonaws.com/?list-type=2")
    assert hosted.url.endswith("&continuation-token=t%2B%2F%3D")
    assert list_url("gcs", bucket="lake", prefix="p/").url.startswith(
        "https://storage.googleapis.com/lake?"
    )
    page = parse_list_page(
        b"<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>n1"
        b"</NextContinuationToken><Contents><Key>p/a.csv</Key><Size>3</Size></Contents>"
        b"</ListBucketResult>"
    )
    assert (page.objects[0].key, page.objects[0].size, page.next_token) == ("p/a.csv", 3, "n1")
