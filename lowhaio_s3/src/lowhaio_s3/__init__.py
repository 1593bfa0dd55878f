"""Parallel, bounded-memory S3 uploads and downloads over any signed lowhaio `request`.

from lowhaio import Pool
from lowhaio_aws_sigv4 import signed, static_credentials
from lowhaio_s3 import download, upload

request, close = Pool()
s3 = signed(request, static_credentials(key_id, secret), "s3", "eu-west-2", payload="unsigned")
bucket = "https://my-bucket.s3.eu-west-2.amazonaws.com"
uploaded = await upload(s3, bucket, "big.bin", file_chunks, size=size)
downloaded = await download(s3, bucket, "big.bin", file.write)
"""

from ._checksums import CRC32, ChecksumSpec, Crc32, RunningChecksum
from ._download import Download, Downloaded, VerifyChoice, download, download_file, open_download
from ._errors import (
    S3BodyLengthError,
    S3ChecksumError,
    S3ChecksumMismatchError,
    S3Error,
    S3ObjectChangedError,
    S3ProtocolError,
    S3ResponseError,
)
from ._parts import (
    DEFAULT_CONCURRENCY,
    DEFAULT_PART_SIZE,
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    part_size_for,
)
from ._retry import RETRIABLE_CODES, Retries, retriable
from ._target import object_url, on_aws
from ._upload import ChecksumChoice, Uploaded, abort_upload, list_uploads, upload, upload_file
from ._xml import ListedUpload

__version__ = "0.1.0"

__all__ = [
    "CRC32",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_PART_SIZE",
    "MAX_OBJECT_SIZE",
    "MAX_PARTS",
    "MAX_PART_SIZE",
    "MIN_PART_SIZE",
    "RETRIABLE_CODES",
    "ChecksumChoice",
    "ChecksumSpec",
    "Crc32",
    "Download",
    "Downloaded",
    "ListedUpload",
    "Retries",
    "RunningChecksum",
    "S3BodyLengthError",
    "S3ChecksumError",
    "S3ChecksumMismatchError",
    "S3Error",
    "S3ObjectChangedError",
    "S3ProtocolError",
    "S3ResponseError",
    "Uploaded",
    "VerifyChoice",
    "abort_upload",
    "download",
    "download_file",
    "list_uploads",
    "object_url",
    "on_aws",
    "open_download",
    "part_size_for",
    "retriable",
    "upload",
    "upload_file",
]
