"""AWS Signature Version 4 for lowhaio requests, and presigned URLs.

from lowhaio import Pool
from lowhaio_aws_sigv4 import signed, static_credentials

request, close = Pool()
s3_request = signed(request, static_credentials(key_id, secret), "s3", "eu-west-2")
code, headers, body = await s3_request(b"GET", "https://bucket.s3.eu-west-2.amazonaws.com/key")
"""

from ._checksums import (
    CHECKSUM_ALGORITHMS,
    Checksum,
    ChecksumAlgorithm,
    ChecksumError,
    ChecksumMismatchError,
    checksum_verified,
    response_checksum,
)
from ._sigv4 import (
    CHUNK_BYTES,
    MAX_EXPIRES,
    S3_SERVICES,
    SIGNER_HEADERS,
    Credentials,
    GetCredentials,
    Payload,
    aws_chunked_length,
    canonical_request,
    chunk_signature,
    presigned_url,
    signed,
    signing_key,
    static_credentials,
    string_to_sign,
    trailer_signature,
)

__version__ = "0.1.0"

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "CHUNK_BYTES",
    "MAX_EXPIRES",
    "S3_SERVICES",
    "SIGNER_HEADERS",
    "Checksum",
    "ChecksumAlgorithm",
    "ChecksumError",
    "ChecksumMismatchError",
    "Credentials",
    "GetCredentials",
    "Payload",
    "aws_chunked_length",
    "canonical_request",
    "checksum_verified",
    "chunk_signature",
    "presigned_url",
    "response_checksum",
    "signed",
    "signing_key",
    "static_credentials",
    "string_to_sign",
    "trailer_signature",
]
