"""Where an object is: its bucket's URL and its key, made into the object's URL (the key
encoded as S3 expects), with the names that messages use and whether the host is AWS's."""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

# AWS's own S3 hosts: there, checksums are on unless asked otherwise.
AWS_HOST_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn")
MAX_KEY_BYTES = 1024  # S3's limit on a key, in UTF-8


def object_url(bucket_url: str, key: str) -> str:
    """The URL of `key` in the bucket at `bucket_url`: the key percent-encoded but for the
    unreserved characters (letters, digits, `-._~`) and `/`, as S3 and its signature expect."""
    return S3Object(bucket_url, key).url


def on_aws(url: str) -> bool:
    """Whether `url`'s host is one of AWS's (`*.amazonaws.com`, `*.amazonaws.com.cn`)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    return host.endswith(AWS_HOST_SUFFIXES)


class S3Object:
    """An object (or with `key` None, its bucket): `url`, and `bucket` and `key` for
    messages.

    `bucket_url` is a virtual-hosted bucket (`https://my-bucket.s3.eu-west-2.amazonaws.com`)
    or a path-style one (`http://127.0.0.1:8333/my-bucket`)."""

    __slots__ = ("bucket", "key", "on_aws", "url")

    def __init__(self, bucket_url: str, key: str | None) -> None:
        if key is not None and (not isinstance(key, str) or not key):
            raise ValueError("an S3 key is a non-empty string")
        if key is not None and len(key.encode("utf-8")) > MAX_KEY_BYTES:
            raise ValueError(f"an S3 key is at most {MAX_KEY_BYTES} bytes in UTF-8")
        parts = urlsplit(bucket_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the bucket URL must be http:// or https:// with a host")
        if "@" in parts.netloc or parts.query or parts.fragment:
            # Not shown: it could hold credentials.
            raise ValueError("the bucket URL must have no userinfo, query or fragment")
        path = parts.path.rstrip("/")
        # None: the bucket itself (its URL as given, without a final slash but the root's).
        where = path or "/" if key is None else f"{path}/{quote(key, safe='/')}"
        self.url = urlunsplit((parts.scheme, parts.netloc, where, "", ""))
        self.bucket = path.lstrip("/").split("/")[0] if path else parts.hostname.split(".")[0]
        self.key = key
        self.on_aws = on_aws(bucket_url)

    def __str__(self) -> str:
        if self.key is None:
            return f"bucket {self.bucket!r}"
        return f"bucket {self.bucket!r} key {self.key!r}"
