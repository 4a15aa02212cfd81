"""Bucket URLs and the storage each bucket file mount asks for (styx.spec.buckets): the stores'
naming rules, the exact error codes, and ``file_mounts`` read through real task YAML."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from styx.errors import NotSupportedError, SpecError, StyxError
from styx.spec import buckets, yamlio
from styx.spec.buckets import (
    STORES,
    BucketURL,
    StorageMount,
    check_bucket_name,
    default_bucket_name,
    parse_bucket_url,
    storage_mounts,
    storage_of,
)
from styx.spec.task import Task

FAST = settings(
    max_examples=int(os.environ.get("STYX_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
AZ = "https://acct01.blob.core.windows.net"


def one_sentence(text: str) -> bool:
    """One line ending in a full stop, with no second sentence after it."""
    return (
        bool(text)
        and text == text.strip()
        and "\n" not in text
        and text.endswith(".")
        and re.search(r"[.!?]\s+[A-Z]", text[:-1]) is None
    )


def mounts(yaml_text: str, user: str = "alice") -> list[StorageMount]:
    return storage_mounts(dict(Task.from_yaml_str(yaml_text).file_mounts), user)


def one_mount(value: str, dest: str = "/data", user: str = "alice") -> StorageMount:
    (found,) = mounts(f"file_mounts:\n  {dest}: {value}\n", user)
    return found


# --- parse_bucket_url: good URLs ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://my-bucket", BucketURL("s3", "my-bucket")),
        ("s3://my-bucket/", BucketURL("s3", "my-bucket")),
        ("s3://my.bucket.01/data", BucketURL("s3", "my.bucket.01", "data")),
        ("s3://my-bucket/data/", BucketURL("s3", "my-bucket", "data")),
        ("s3://my-bucket/a/b/c.txt", BucketURL("s3", "my-bucket", "a/b/c.txt")),
        ("S3://my-bucket/x", BucketURL("s3", "my-bucket", "x")),  # the scheme is any case
        ("gs://my_bucket-1/ckpt/", BucketURL("gcs", "my_bucket-1", "ckpt")),
        ("gs://abc", BucketURL("gcs", "abc")),
        ("r2://datasets/imagenet", BucketURL("r2", "datasets", "imagenet")),
        ("s3://" + "a" * 63, BucketURL("s3", "a" * 63)),
        ("s3://my-bucket/a b/ü.txt", BucketURL("s3", "my-bucket", "a b/ü.txt")),
        (f"{AZ}/container", BucketURL("azure", "container", "", "acct01")),
        (f"{AZ}/container/", BucketURL("azure", "container", "", "acct01")),
        (f"{AZ}/my-container/a/b/", BucketURL("azure", "my-container", "a/b", "acct01")),
        (
            "https://ACCT01.Blob.Core.Windows.Net/c-1/p",
            BucketURL("azure", "c-1", "p", "acct01"),
        ),
    ],
)
def test_good_urls(url: str, expected: BucketURL) -> None:
    got = parse_bucket_url(url)
    assert got == expected
    assert parse_bucket_url(got.url) == got  # the written form reads back the same


@pytest.mark.parametrize(
    ("bucket", "url"),
    [
        (BucketURL("s3", "b01"), "s3://b01"),
        (BucketURL("s3", "b01", "a/b"), "s3://b01/a/b"),
        (BucketURL("gcs", "b_1", "x"), "gs://b_1/x"),
        (BucketURL("r2", "b01", "x/y"), "r2://b01/x/y"),
        (BucketURL("azure", "cont", "", "acct"), "https://acct.blob.core.windows.net/cont"),
        (BucketURL("azure", "cont", "p/q", "acct"), "https://acct.blob.core.windows.net/cont/p/q"),
    ],
)
def test_url_is_the_form_users_write(bucket: BucketURL, url: str) -> None:
    assert bucket.url == url
    assert parse_bucket_url(url) == bucket


def test_with_prefix_strips_slashes() -> None:
    b = BucketURL("s3", "b01", "old")
    assert b.with_prefix("/new/sub/") == BucketURL("s3", "b01", "new/sub")
    assert b.with_prefix("") == BucketURL("s3", "b01")
    assert b.with_prefix("x").url == "s3://b01/x"


# --- parse_bucket_url: refused URLs ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "store"),
    [("cos", "IBM COS"), ("oci", "OCI"), ("nebius", "Nebius"), ("cw", "CoreWeave"), ("COS", "IBM")],
)
def test_stores_styx_does_not_reach_are_not_supported(scheme: str, store: str) -> None:
    with pytest.raises(NotSupportedError) as info:
        parse_bucket_url(f"{scheme}://my-bucket/data")
    err = info.value
    assert err.code == "store-not-supported" and err.exit_code == 4
    assert store in err.message and f"{scheme.lower()}://" in err.message
    assert one_sentence(err.message) and one_sentence(err.hint)
    assert "s3://" in err.hint


@pytest.mark.parametrize(
    "url",
    [
        "",
        "my-bucket",
        "s3:/my-bucket",
        "s3:my-bucket",
        "s3://",
        "s3:///path",
        "gs://",
        f"{AZ}",
        f"{AZ}/",
        f"{AZ}//path",
        "s3://ab",  # too short
        "s3://" + "a" * 64,  # too long
        "gs://" + "a" * 64,
        f"{AZ}/" + "a" * 64,
        "s3://My-Bucket",  # upper case
        "gs://MyBucket",
        f"{AZ}/Container",
        "s3://my_bucket",  # underscores: GCS only
        "r2://my_bucket",
        f"{AZ}/my_container",
        f"{AZ}/my--container",  # Azure: single hyphens
        f"{AZ}/container-",
        "s3://-bucket",
        "s3://bucket-",
        "s3://.bucket",
        "s3://bucket.",
        "gs://_bucket",
        "s3://my..bucket",
        "s3://198.18.1.10",  # an IP address
        "s3://my bucket",  # whitespace
        "s3://my-bucket ",
        " s3://my-bucket",
        "s3://my\tbucket",
        "s3://my-bucket?versionId=3",  # a query string
        "s3://my-bucket#frag",
        f"{AZ}/container?sv=2020&sig=x",
        "s3://user@my-bucket",
        "s3://my-bucket:443",
        "s3://bücket",
        "s3://my-bucket/a\nb",  # control characters in the path
        "s3://my-bucket/a\x00b",
        "s3://my-bucket/a\x7fb",
        "s3://my-bucket/\tx",
        "s3://my-bucket/a//b",  # an empty segment
        "s3://my-bucket/a///b/",
        "http://acct01.blob.core.windows.net/container",  # Azure only over https
        "https://example.com/bucket/x",
        "https://acct01.blob.core.windows.net.evil.example/container",
        "https://acct01.blob.core.windows.net:443/container",
        "https://ab.blob.core.windows.net/container",  # account too short
        "https://a_b01.blob.core.windows.net/container",
        "ftp://my-bucket/x",
        "file:///srv/data",
        "hf://org/model",
        "://my-bucket",
    ],
)
def test_malformed_urls_are_spec_errors(url: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_bucket_url(url)
    err = info.value
    assert err.code == "invalid-bucket-url" and err.exit_code == 2
    assert one_sentence(err.message), err.message
    assert one_sentence(err.hint), err.hint


def test_messages_name_the_url_and_the_rule() -> None:
    with pytest.raises(SpecError) as info:
        parse_bucket_url("gs://Bad")
    assert "'Bad'" in info.value.message and "gcs" in info.value.message
    assert "underscores" in info.value.hint  # the store's own rule
    with pytest.raises(SpecError) as info:
        parse_bucket_url(f"{AZ}/a--b")
    assert "azure" in info.value.message and "single hyphens" in info.value.hint
    with pytest.raises(SpecError) as info:
        parse_bucket_url("ftp://b01/x")
    assert "ftp://" in info.value.message and "'ftp://b01/x'" in info.value.message
    with pytest.raises(SpecError) as info:
        parse_bucket_url("s3://")
    assert info.value.message == "'s3://' names no bucket."


@pytest.mark.parametrize(
    ("store", "name", "ok"),
    [
        ("s3", "abc", True),
        ("s3", "a" * 63, True),
        ("s3", "a-b.c", True),
        ("s3", "a_b", False),
        ("gcs", "a_b", True),
        ("gcs", "a.b_c-d", True),
        ("gcs", "a..b", False),
        ("r2", "a-b", True),
        ("azure", "a-b-c", True),
        ("azure", "a.b", False),
        ("azure", "a--b", False),
        ("azure", "ab", False),
        ("s3", "1.2.3.4", False),
    ],
)
def test_check_bucket_name(store: str, name: str, ok: bool) -> None:
    if ok:
        check_bucket_name(store, name)
        return
    with pytest.raises(SpecError) as info:
        check_bucket_name(store, name)
    assert info.value.code == "invalid-bucket-url"


def test_a_leading_empty_segment_is_refused_like_any_other() -> None:
    with pytest.raises(SpecError):
        parse_bucket_url("s3://my-bucket//a")


def test_an_azure_sas_query_string_is_refused() -> None:
    with pytest.raises(SpecError) as info:
        parse_bucket_url(f"{AZ}/container/data?sv=2022-11-02&sig=c2VjcmV0")
    assert "c2VjcmV0" not in str(info.value)


# --- file_mounts through task YAML ------------------------------------------------------------


def test_a_plain_url_is_a_copy_of_that_bucket() -> None:
    m = one_mount("s3://my-bucket/train/")
    assert m == StorageMount("/data", "COPY", BucketURL("s3", "my-bucket", "train"), True)
    assert not m.create and m.name is None and m.uploads == () and m.persistent
    assert one_mount(f"{AZ}/cont/x").bucket == BucketURL("azure", "cont", "x", "acct01")


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("", "MOUNT"),  # {source: URL} alone is a storage object: MOUNT, as in SkyPilot
        (", persistent: true", "MOUNT"),
        (", mode: MOUNT", "MOUNT"),
        (", mode: COPY", "COPY"),
        (", mode: MOUNT_CACHED", "MOUNT_CACHED"),
        (", mode: mount_cached", "MOUNT_CACHED"),
    ],
)
def test_a_storage_object_with_a_bucket_source_takes_its_mode(mode: str, expected: str) -> None:
    m = one_mount(f"{{source: 'gs://my-bucket/ckpt'{mode}}}")
    assert m.mode == expected and m.bucket == BucketURL("gcs", "my-bucket", "ckpt")
    assert m.store_given and not m.create and m.uploads == () and m.name is None


def test_persistent_and_a_matching_store_and_name() -> None:
    m = one_mount("{source: 's3://my-bucket', store: s3, name: my-bucket, persistent: false}")
    assert m.name == "my-bucket" and m.persistent is False and not m.create
    assert one_mount("{source: 's3://my-bucket', persistent: true}").persistent is True
    assert one_mount(f"{{source: '{AZ}/cont', store: azure}}").bucket.store == "azure"


def test_a_local_source_with_a_name_makes_that_bucket_and_uploads() -> None:
    text = (
        "file_mounts:\n"
        "  /ckpt:\n"
        "    name: ckpt-bucket\n"
        "    source: [./a, '~/b']\n"
        "    store: gcs\n"
        "    mode: MOUNT_CACHED\n"
        "    persistent: false\n"
    )
    (m,) = mounts(text)
    assert m.bucket == BucketURL("gcs", "ckpt-bucket") and m.store_given
    assert m.create and m.name == "ckpt-bucket" and m.mode == "MOUNT_CACHED"
    assert m.uploads == ("./a", os.path.expanduser("~/b")) and m.persistent is False


def test_a_name_alone_makes_an_empty_bucket() -> None:
    m = one_mount("{name: scratch-01}")
    assert m.create and m.uploads == () and m.name == "scratch-01" and not m.store_given
    assert m.bucket == BucketURL("s3", "scratch-01") and m.mode == "MOUNT"


def test_a_local_source_without_a_name_gets_a_stable_default_name() -> None:
    m = one_mount("{source: ./data, mode: MOUNT}", user="Alice.Smith")
    assert re.fullmatch(r"styx-alice-smith-[0-9a-f]{10}", m.bucket.bucket), m.bucket.bucket
    assert m.name == m.bucket.bucket and m.create and m.uploads == ("./data",)
    assert not m.store_given  # chosen from the cluster's infra later
    again = one_mount("{source: ./data, mode: MOUNT}", user="Alice.Smith")
    assert again.name == m.name
    assert one_mount("{source: ./data, mode: MOUNT}", dest="/other", user="Alice.Smith") != m
    assert one_mount("{source: ./data, mode: MOUNT}", user="bob").name != m.name
    assert one_mount("{source: ./other, mode: MOUNT}", user="Alice.Smith").name != m.name
    for store in STORES:
        check_bucket_name(store, m.bucket.bucket)
        assert m.in_store(store).bucket.bucket == m.bucket.bucket


@pytest.mark.parametrize(
    "user",
    [
        "alice",
        "",
        "---",
        "Ünïcödé",
        "a" * 200,
        "root@host",
        "DOMAIN\\user.name",
        "a" * 19 + ".x",  # cut to 20 characters, it must not end in '-' ('--' is not Azure's)
    ],
)
def test_default_names_are_valid_in_every_store(user: str) -> None:
    name = default_bucket_name("/data", ("./x",), user)
    assert name.startswith("styx-")
    for store in STORES:
        check_bucket_name(store, name)


@FAST
@given(st.text(max_size=40), st.text(max_size=20), st.lists(st.text(max_size=10), max_size=3))
def test_default_names_are_stable_and_valid(user: str, dest: str, sources: list[str]) -> None:
    name = default_bucket_name(dest, tuple(sources), user)
    assert name == default_bucket_name(dest, tuple(sources), user)
    for store in ("s3", "gcs", "r2", "azure"):
        check_bucket_name(store, name)


@pytest.mark.parametrize(
    "value",
    [
        "./data",
        "~/data",
        "/abs/data",
        "{source: ./data, mode: COPY}",
        "{name: vol-01, store: volume}",
    ],
)
def test_local_paths_and_volumes_are_no_buckets(value: str) -> None:
    assert mounts(f"file_mounts:\n  /data: {value}\n") == []


def test_storage_mounts_keeps_the_order_and_skips_local_ones() -> None:
    text = (
        "file_mounts:\n"
        "  /z: s3://zz-bucket\n"
        "  /local: ./here\n"
        "  /a: {source: 'gs://aa-bucket', mode: MOUNT}\n"
        "  /m: {name: made-here}\n"
    )
    assert [(m.dest, m.bucket.bucket) for m in mounts(text)] == [
        ("/z", "zz-bucket"),
        ("/a", "aa-bucket"),
        ("/m", "made-here"),
    ]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("{source: 's3://my-bucket', store: gcs}", "store 'gcs'"),
        (f"{{source: '{AZ}/cont', store: s3}}", "store 's3'"),
        ("{source: 'gs://my-bucket', store: ibm}", "store 'ibm'"),
        ("{source: 's3://my-bucket', name: other-bucket}", "'other-bucket'"),
        ("{source: ['s3://my-bucket', ./local]}", "mixes"),
        ("{source: ['s3://my-bucket', 'gs://other']}", "mixes"),
        ("{source: [./local, 's3://my-bucket'], mode: COPY}", "mixes"),
    ],
)
def test_conflicting_fields(value: str, words: str) -> None:
    with pytest.raises(SpecError) as info:
        mounts(f"file_mounts:\n  /data: {value}\n")
    err = info.value
    assert err.code == "conflicting-fields" and words in err.message and "'/data'" in err.message
    assert one_sentence(err.message) and one_sentence(err.hint)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("cos://my-bucket", "store-not-supported"),
        ("{source: 'oci://my-bucket'}", "store-not-supported"),
        ("{source: 'nebius://my-bucket', mode: COPY}", "store-not-supported"),
        ("{source: ./x, store: oci}", "store-not-supported"),
        ("{name: my-bucket, store: coreweave}", "store-not-supported"),
        ("'s3://Bad_Bucket'", "invalid-bucket-url"),
        ("{source: 'https://example.com/x'}", "invalid-bucket-url"),
        ("{name: My_Bucket}", "invalid-bucket-url"),  # checked against S3 until a store is chosen
        ("{name: a--b, store: azure}", "invalid-bucket-url"),
        ("{name: ab, store: gcs}", "invalid-bucket-url"),
    ],
)
def test_bad_storage_objects(value: str, code: str) -> None:
    with pytest.raises(StyxError) as info:
        mounts(f"file_mounts:\n  /data: {value}\n")
    assert info.value.code == code
    assert one_sentence(info.value.message) and one_sentence(info.value.hint)


def test_mount_cached_options_and_read_only() -> None:
    text = (
        "file_mounts:\n"
        "  /ckpt:\n"
        "    source: s3://my-bucket/ckpt\n"
        "    mode: MOUNT_CACHED\n"
        "    config:\n"
        "      mount_cached:\n"
        "        transfers: 8\n"
        "        vfs_write_back: 30s\n"
        "        vfs_cache_max_size: 10G\n"
        "        read_only: true\n"
    )
    (m,) = mounts(text)
    assert m.options == (
        ("transfers", "8"),
        ("vfs_cache_max_size", "10G"),
        ("vfs_write_back", "30s"),
    )  # sorted, as strings, read_only apart
    assert m.read_only is True


def test_read_only_comes_from_the_config_of_the_mode() -> None:
    cached_ro = "config: {mount_cached: {read_only: true}}"
    plain_ro = "config: {mount: {read_only: true}}"
    assert one_mount(f"{{source: 's3://my-bucket', {plain_ro}}}").read_only is True
    assert one_mount(f"{{source: 's3://my-bucket', {cached_ro}}}").read_only is False
    cached = "mode: MOUNT_CACHED"
    assert one_mount(f"{{source: 's3://my-bucket', {cached}, {cached_ro}}}").read_only is True
    assert one_mount(f"{{source: 's3://my-bucket', {cached}, {plain_ro}}}").read_only is False
    assert one_mount("{source: 's3://my-bucket'}").read_only is False
    m = one_mount("{name: made-here, config: {mount_cached: {transfers: 2}}}")
    assert m.options == (("transfers", "2"),) and not m.read_only


def test_unknown_mount_cached_options_are_refused_by_the_schema() -> None:
    with pytest.raises(SpecError):
        Task.from_yaml_str(
            "file_mounts:\n  /d: {source: 's3://my-bucket', config: {mount_cached: {nope: 1}}}\n"
        )


def test_in_store() -> None:
    m = one_mount("{source: ./data, name: my.data-01}")
    assert not m.store_given and m.bucket.store == "s3"
    assert m.in_store("s3") is m
    gcs = m.in_store("gcs")
    assert gcs.bucket == BucketURL("gcs", "my.data-01") and gcs.uploads == m.uploads
    assert gcs.name == m.name and gcs.create and not gcs.store_given
    with pytest.raises(SpecError) as info:
        m.in_store("azure")  # dots: fine in S3 and GCS, not in Azure
    assert info.value.code == "invalid-bucket-url"
    given_store = one_mount("{source: ./data, name: my-data, store: gcs}")
    assert given_store.in_store("s3") is given_store  # a store the task names stays
    url = one_mount("s3://my-bucket")
    assert url.in_store("gcs") is url


def test_storage_of_directly() -> None:
    task = Task.from_yaml_str("file_mounts:\n  /a: ./x\n  /b: r2://my-bucket/p\n")
    assert storage_of("/a", task.file_mounts["/a"]) is None
    got = storage_of("/b", task.file_mounts["/b"], user="u")
    assert got is not None and got.bucket.url == "r2://my-bucket/p" and got.mode == "COPY"
    assert buckets.BAD_URL == "invalid-bucket-url"


# --- fuzz ------------------------------------------------------------------------------------

SCHEMES = ["s3", "gs", "r2", "https", "http", "cos", "oci", "nebius", "cw", "S3", "GS", "", "ftp"]
SEPARATORS = ["://", ":/", ":", "", "://acct01.blob.core.windows.net/", "://ACCT.BLOB.core.windows.net"]  # fmt: skip
URL_CHARS = st.sampled_from([*"abcAZ019-._/ ?#@:%~\t\n\x00\x7f\u00e9\u2028", "//", ".."])
url_tails = st.one_of(
    st.text(max_size=40),
    st.lists(URL_CHARS, max_size=40).map("".join),
    st.from_regex(r"[a-z0-9][a-z0-9._-]{1,70}(/[a-zA-Z0-9 ._/-]{0,20})?", fullmatch=True),
)
urls = st.one_of(
    st.text(max_size=80),
    st.builds(
        lambda a, b, c: a + b + c, st.sampled_from(SCHEMES), st.sampled_from(SEPARATORS), url_tails
    ),
)


@FAST
@given(urls)
def test_any_text_parses_or_raises_a_styx_error(url: str) -> None:
    try:
        got = parse_bucket_url(url)
    except (SpecError, NotSupportedError) as err:
        assert err.code in ("invalid-bucket-url", "store-not-supported")
        assert err.message and err.hint
        return
    assert got.store in STORES and (got.account is not None) == (got.store == "azure")
    check_bucket_name(got.store, got.bucket)
    assert not got.prefix.startswith("/") and not got.prefix.endswith("/")
    assert parse_bucket_url(got.url) == got


KEYS = ["source", "name", "store", "mode", "persistent", "config", "mount_cached", "mount",
        "read_only", "transfers", "vfs_write_back", "hf_mount_args"]  # fmt: skip
WORDS = ["s3://my-bucket", "gs://my_bucket/p", "r2://ab", f"{AZ}/cont/p", "cos://x", "cw://x",
         "./local", "~/x", "/abs", "", "s3", "gcs", "azure", "r2", "ibm", "volume", "MOUNT",
         "COPY", "MOUNT_CACHED", "copy", "my-bucket", "My_Bucket", "30s", "s3://", "https://x"]  # fmt: skip
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(allow_nan=False),
    st.sampled_from(WORDS),
    urls,
)
sources = st.one_of(urls, st.sampled_from(WORDS), st.lists(st.one_of(urls, st.sampled_from(WORDS)), max_size=3))  # fmt: skip
options = st.dictionaries(st.sampled_from(KEYS[6:]), leaves, max_size=3)
storage_objects = st.fixed_dictionaries(
    {},
    optional={
        "source": sources,
        "name": st.one_of(st.sampled_from(WORDS), urls),
        "store": st.sampled_from(["s3", "gcs", "azure", "r2", "ibm", "oci", "volume", "S3", "x"]),
        "mode": st.sampled_from(["MOUNT", "COPY", "MOUNT_CACHED", "copy", "x"]),
        "persistent": st.one_of(st.booleans(), leaves),
        "config": st.fixed_dictionaries({}, optional={"mount_cached": options, "mount": options}),
    },
)
mount_values: st.SearchStrategy[Any] = st.one_of(
    sources,
    storage_objects,
    st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(
                st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner, max_size=5
            ),
        ),
        max_leaves=12,
    ),
)
dests = st.one_of(st.sampled_from(["/data", "~/d", "rel/x", "$D", "/a b"]), st.text(max_size=12))


@FAST
@given(st.dictionaries(dests, mount_values, min_size=1, max_size=3), st.text(max_size=12))
def test_any_file_mount_value_gives_storage_or_a_styx_error(
    file_mounts: dict[str, Any], user: str
) -> None:
    try:
        text = yamlio.dump({"file_mounts": file_mounts})
    except Exception:  # the generator made something PyYAML cannot write; not our input
        return
    try:
        task = Task.from_yaml_str(text)
        found = storage_mounts(dict(task.file_mounts), user)
    except StyxError as err:
        assert err.message and err.hint
        return
    for m in found:
        assert m.mode in ("COPY", "MOUNT", "MOUNT_CACHED") and m.dest in task.file_mounts
        check_bucket_name(m.bucket.store, m.bucket.bucket)
        for store in STORES:
            try:
                moved = m.in_store(store)
            except SpecError as err:
                assert err.code == "invalid-bucket-url"
                continue
            check_bucket_name(moved.bucket.store, moved.bucket.bucket)
