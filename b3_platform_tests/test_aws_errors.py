"""One mapping of botocore errors (aws_errors.explain), what each code says, and the S3Storage
errors built from it. The errors are botocore's own exception objects, shaped as botocore parses
AWS's answers (a HEAD's answer has no body: only its status becomes the code)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from b3_platform import aws_errors
from b3_platform.lake.s3_storage import S3Storage
from b3_platform.lake.storage import MissingKey, StorageError

IAM = "access denied; the credentials in use lack the permission (the pipeline's IAM policy is in infra/b3_platform.yaml)"


def client_error(code: str, message: str = "", status: int = 400, operation: str = "GetObject", **error):
    error = {"Code": code, "Message": message, **error}
    return ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (
            client_error("NoSuchBucket", "The specified bucket does not exist", 404),
            "bucket 'my-lake' does not exist (check B3_PLATFORM_S3_BUCKET, or deploy infra/b3_platform.yaml)",
        ),
        (client_error("AccessDenied", "Access Denied", 403), IAM),
        (client_error("403", "Forbidden", 403, "HeadObject"), IAM),
        (client_error("", "", 403, "HeadObject"), IAM),
        (client_error("AccessDeniedException", "User is not authorized to perform glue:GetTable", 400), IAM),
        (
            client_error(
                "AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist", 400
            ),
            "the queue does not exist (check B3_PLATFORM_LANDING_QUEUE_URL, or deploy infra/b3_platform.yaml)",
        ),
        (
            client_error("QueueDoesNotExist", "The specified queue does not exist.", 400),
            "the queue does not exist (check B3_PLATFORM_LANDING_QUEUE_URL, or deploy infra/b3_platform.yaml)",
        ),
        (
            client_error("InternalError", "We encountered an internal error. Please try again.", 500),
            "InternalError: We encountered an internal error. Please try again.",
        ),
        (
            client_error("InvalidRequestException", "WorkGroup does not exist"),
            "InvalidRequestException: WorkGroup does not exist",
        ),
        (client_error("", "", 400, "HeadObject"), "400"),
        (
            EndpointConnectionError(endpoint_url="http://127.0.0.1:9/my-lake"),
            'Could not connect to the endpoint URL: "http://127.0.0.1:9/my-lake"',
        ),
    ],
)
def test_each_error_says_what_to_check(error, says):
    assert aws_errors.explain(error, bucket="my-lake") == says


def test_a_missing_bucket_not_named_by_the_caller_is_named_from_the_answer():
    error = client_error("NoSuchBucket", "The specified bucket does not exist", 404, BucketName="other")
    assert aws_errors.explain(error).startswith("bucket 'other' does not exist")


@pytest.mark.parametrize(
    ("error", "missing"),
    [
        (client_error("NoSuchKey", "The specified key does not exist.", 404), True),
        (client_error("404", "Not Found", 404, "HeadObject"), True),
        (client_error("", "", 404, "HeadObject"), True),
        (client_error("NotFound", "", 404, "HeadObject"), True),
        (client_error("NoSuchBucket", "The specified bucket does not exist", 404), False),
        (client_error("AccessDenied", "Access Denied", 403), False),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), False),
    ],
)
def test_one_set_of_missing_key_codes(error, missing):
    assert aws_errors.is_missing_key(error) is missing


class FailingS3:
    """A client whose every call raises the given botocore error (S3Storage's view of AWS)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getattr__(self, operation):
        def call(*args, **kwargs):
            raise self.error

        return call


def test_s3_storage_errors_name_the_object_and_what_to_check():
    def storage(error):
        return S3Storage("my-lake", "prod", client=FailingS3(error))

    denied = client_error("AccessDenied", "Access Denied", 403, "PutObject")
    with pytest.raises(StorageError) as raised:
        storage(denied).write_bytes("silver/x.parquet", b"")
    assert str(raised.value) == f"cannot write s3://my-lake/prod/silver/x.parquet: {IAM}"

    with pytest.raises(StorageError) as raised:
        storage(client_error("NoSuchBucket", "", 404)).read_bytes("raw/a.json")
    assert str(raised.value) == (
        "cannot read s3://my-lake/prod/raw/a.json: bucket 'my-lake' does not exist "
        "(check B3_PLATFORM_S3_BUCKET, or deploy infra/b3_platform.yaml)"
    )
    with pytest.raises(StorageError, match=r"^cannot look up s3://my-lake/prod/raw/a\.json: access denied"):
        storage(client_error("403", "Forbidden", 403, "HeadObject")).exists("raw/a.json")
    failing = storage(client_error("InternalError", "We encountered an internal error.", 500))
    with pytest.raises(StorageError, match=r"^cannot delete s3://my-lake/prod/raw/a\.json: InternalError: "):
        failing.delete("raw/a.json")
    unreachable = storage(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))
    with pytest.raises(
        StorageError, match=r"^cannot list s3://my-lake/prod/raw: Could not connect to the endpoint"
    ):
        unreachable.list_keys("raw")

    missing = storage(client_error("NoSuchKey", "The specified key does not exist.", 404))
    with pytest.raises(MissingKey, match="s3://my-lake/prod/raw/a.json does not exist"):
        missing.read_bytes("raw/a.json")
    assert missing.read_if_exists("raw/a.json") is None
    gone = storage(client_error("404", "Not Found", 404, "HeadObject"))
    assert gone.exists("raw/a.json") is False and gone.etag("raw/a.json") is None
