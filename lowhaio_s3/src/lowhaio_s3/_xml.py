"""S3's XML documents, built and read with the standard library (`xml.etree.ElementTree`):
CreateMultipartUpload's UploadId, the CompleteMultipartUpload request and its result, ListParts,
ListMultipartUploads and error documents. Elements are found whatever their namespace (S3's
results have one, its error documents none). Documents are read whole only up to a bound (the
callers'), and expat (2.4.1 and later) refuses entity expansion attacks."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import NamedTuple

S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"


def parsed(document: bytes) -> ET.Element | None:
    """The root element of `document`, or None if it is not XML."""
    try:
        return ET.fromstring(document)
    except ET.ParseError:
        return None


def local_name(element: ET.Element) -> str:
    return element.tag.rpartition("}")[2]


class ErrorFields(NamedTuple):
    code: str | None
    message: str | None
    request_id: str | None


def error_fields(document: bytes) -> ErrorFields:
    """Code, Message and RequestId of an S3 `<Error>` document (all None if it is not one)."""
    root = parsed(document)
    if root is None or local_name(root) != "Error":
        return ErrorFields(None, None, None)
    return ErrorFields(
        root.findtext("{*}Code"), root.findtext("{*}Message"), root.findtext("{*}RequestId")
    )


def is_error(document: bytes) -> bool:
    """Whether `document` is an `<Error>` (which CompleteMultipartUpload may send with a 200)."""
    root = parsed(document)
    return root is not None and local_name(root) == "Error"


def upload_id(document: bytes) -> str | None:
    """The UploadId of an InitiateMultipartUploadResult."""
    root = parsed(document)
    return None if root is None else root.findtext("{*}UploadId") or None


class CompletedPart(NamedTuple):
    number: int
    etag: str
    checksum: str | None  # base64, of the algorithm named in the upload's


def complete_request(parts: Sequence[CompletedPart], checksum_element: str | None) -> bytes:
    """The body of CompleteMultipartUpload: each part's number and ETag, and its checksum as
    `checksum_element` (`ChecksumCRC32`) when there is one."""
    root = ET.Element("CompleteMultipartUpload", xmlns=S3_NAMESPACE)
    for part in parts:
        element = ET.SubElement(root, "Part")
        ET.SubElement(element, "ETag").text = part.etag
        if checksum_element is not None and part.checksum is not None:
            ET.SubElement(element, checksum_element).text = part.checksum
        ET.SubElement(element, "PartNumber").text = str(part.number)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document


class CompleteResult(NamedTuple):
    etag: str | None
    checksum: str | None


def complete_result(document: bytes, checksum_element: str | None) -> CompleteResult | None:
    """The ETag (and the checksum as `checksum_element`) of a
    CompleteMultipartUploadResult, or None if `document` is not one."""
    root = parsed(document)
    if root is None or local_name(root) != "CompleteMultipartUploadResult":
        return None
    checksum = None
    if checksum_element is not None:
        checksum = root.findtext("{*}" + checksum_element)
    return CompleteResult(root.findtext("{*}ETag"), checksum)


def parts_listed(document: bytes) -> int | None:
    """How many parts a ListPartsResult lists, or None if it is not one."""
    root = parsed(document)
    if root is None or local_name(root) != "ListPartsResult":
        return None
    return sum(1 for _ in root.iterfind("{*}Part"))


class ListedUpload(NamedTuple):
    key: str
    upload_id: str


class UploadsPage(NamedTuple):
    uploads: list[ListedUpload]
    # The markers of the next page (key-marker, upload-id-marker), or None after the last.
    next_markers: tuple[str, str] | None


def multipart_uploads(document: bytes) -> UploadsPage | None:
    """The uploads in progress that a ListMultipartUploadsResult lists, and where the next
    page starts; or None if `document` is not one."""
    root = parsed(document)
    if root is None or local_name(root) != "ListMultipartUploadsResult":
        return None
    uploads = [
        ListedUpload(upload.findtext("{*}Key") or "", upload.findtext("{*}UploadId") or "")
        for upload in root.iterfind("{*}Upload")
    ]
    markers = None
    if root.findtext("{*}IsTruncated") == "true":
        markers = (
            root.findtext("{*}NextKeyMarker") or "",
            root.findtext("{*}NextUploadIdMarker") or "",
        )
    return UploadsPage(uploads, markers)
