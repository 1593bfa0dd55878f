"""AWS Signature Version 4 for lowhaio requests, and presigned URLs.

from lowhaio import Pool
from lowhaio_aws_sigv4 import signed, static_credentials

request, close = Pool()
s3_request = signed(request, static_credentials(key_id, secret), "s3", "eu-west-2")
code, headers, body = await s3_request(b"GET", "https://bucket.s3.eu-west-2.amazonaws.com/key")
"""

from ._sigv4 import (
    CHUNK_BYTES,
    Credentials,
    GetCredentials,
    Payload,
    aws_chunked_length,
    canonical_request,
    presigned_url,
    signed,
    signing_key,
    static_credentials,
    string_to_sign,
)

__version__ = "0.1.0"

__all__ = [
    "CHUNK_BYTES",
    "Credentials",
    "GetCredentials",
    "Payload",
    "aws_chunked_length",
    "canonical_request",
    "presigned_url",
    "signed",
    "signing_key",
    "static_credentials",
    "string_to_sign",
]
