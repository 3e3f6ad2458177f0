"""What a failed AWS call means and what to check, in one place for S3, Glue, Athena and SQS.

Every AWS caller (lake.s3_storage.S3Storage, the SQS landing in landing/sqs.py, the Glue + Athena
catalog) turns botocore's exceptions into its own error class (StorageError, QueueError,
CatalogError) with `<what it attempted>: <explain(exc)>`, so the same cause reads the same
everywhere:

- a missing bucket names the bucket and the variable that chose it (B3_PLATFORM_S3_BUCKET);
- a missing queue names B3_PLATFORM_LANDING_QUEUE_URL;
- access denied points at the pipeline's IAM policy, which lives in infra/b3_platform.yaml;
- anything else is AWS's error code and message as sent (`InternalError: We encountered…`);
- an error raised before AWS answered (no connection, a timeout: botocore's BotoCoreError) is
  botocore's own text, which names the endpoint it tried.

Which codes mean "no such key" is decided here too (`is_missing_key`): S3 answers a GET of a missing
key with `NoSuchKey`, but a HEAD has no body, so botocore reports only its status (`404`, or
`NotFound` through some S3-compatible stores).
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from b3_platform.aws import BUCKET_VAR, LANDING_QUEUE_VAR

#: The CloudFormation template that creates the bucket, queues and the pipeline's IAM policy.
TEMPLATE = "infra/b3_platform.yaml"
IAM_HINT = f"the pipeline's IAM policy is in {TEMPLATE}"
#: A GET (NoSuchKey) or a HEAD (only the status: 404 / NotFound) of a key that holds no object.
MISSING_KEY_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
#: S3 says AccessDenied (a HEAD only 403); Glue, Athena and SQS say AccessDeniedException.
ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "403", "Forbidden"})
NO_SUCH_BUCKET = "NoSuchBucket"
#: SQS's code for an unknown queue URL: the query protocol's, then the JSON protocol's.
NO_SUCH_QUEUE_CODES = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})


def error_code(exc: BaseException) -> str:
    """AWS's error code of a ClientError ("" for any other exception); the HTTP status when AWS
    sent no code (a HEAD's answer has no body)."""
    if not isinstance(exc, ClientError):
        return ""
    code = exc.response.get("Error", {}).get("Code", "")
    return code or str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "")


def is_missing_key(exc: BaseException) -> bool:
    """Whether a GET or HEAD failed because the key holds no object."""
    return error_code(exc) in MISSING_KEY_CODES


def is_access_denied(exc: BaseException) -> bool:
    if not isinstance(exc, ClientError):
        return False
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error_code(exc) in ACCESS_DENIED_CODES or status == 403


def explain(exc: BaseException, *, bucket: str | None = None) -> str:
    """What went wrong and what to check, to follow `<what was attempted>: ` in an error message.

    `bucket` is the bucket the caller addressed, named when AWS says it does not exist."""
    if not isinstance(exc, ClientError):
        return str(exc)
    code = error_code(exc)
    if code == NO_SUCH_BUCKET:
        name = bucket or exc.response.get("Error", {}).get("BucketName", "")
        return f"bucket {name!r} does not exist (check {BUCKET_VAR}, or deploy {TEMPLATE})"
    if is_access_denied(exc):
        return f"access denied; the credentials in use lack the permission ({IAM_HINT})"
    if code in NO_SUCH_QUEUE_CODES:
        return f"the queue does not exist (check {LANDING_QUEUE_VAR}, or deploy {TEMPLATE})"
    message = exc.response.get("Error", {}).get("Message", "")
    return f"{code}: {message}" if code and message else code or message
