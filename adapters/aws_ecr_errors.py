"""botocore's exceptions, translated once into :mod:`adapters.oci.errors`: :func:`translate`.

Nothing from botocore leaves the ``aws-ecr`` adapter. What AWS answers maps by its error code::

    Throttling*, TooManyRequests, RequestLimitExceeded   RateLimited (Transient)
    AccessDenied*, UnauthorizedOperation                 Denied (AssumeRole: Credentials-
                                                         Unavailable)
    InvalidClientTokenId, SignatureDoesNotMatch,
    UnrecognizedClient, ExpiredToken, ...                CredentialsUnavailable
    RepositoryNotFound, ImageNotFound, RegistryNotFound  NotFound
    ServerException, InternalFailure, 5xx                ServerError (Transient)
    anything else the service refused                    RequestRejected

and botocore's own failures: no credentials or region, a profile or role it could not use →
CredentialsUnavailable; no connection → ConnectionFailed; timeouts → TimedOut.
"""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)

from adapters.oci.credentials import CredentialsUnavailable
from adapters.oci.errors import (
    ConnectionFailed,
    Denied,
    NotFound,
    OciError,
    RateLimited,
    RequestRejected,
    ServerError,
    TimedOut,
)

__all__ = ["aws_error_code", "translate"]

_THROTTLED = {
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "SlowDown",
}
_DENIED = {"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"}
_BAD_CREDENTIALS = {
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidAccessKeyId",
    "AuthFailure",
}
_NOT_FOUND = {
    "RepositoryNotFoundException",
    "ImageNotFoundException",
    "RegistryNotFoundException",
    "NoSuchEntity",
}
_SERVER = {"ServerException", "InternalFailure", "InternalError", "ServiceUnavailable"}
_XML_CODE = re.compile(r"<Code>([^<]+)</Code>")
_XML_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")


def aws_error_code(error: ClientError) -> tuple[str, str, int]:
    """``(code, message, HTTP status)`` of a service error. An error body in the other
    protocol's shape (XML where JSON was expected, as moto answers IAM denials) is read too."""
    info: dict[str, Any] = error.response.get("Error") or {}
    status = int((error.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    code, message = str(info.get("Code") or ""), str(info.get("Message") or "")
    if message.lstrip().startswith("<"):
        found_code, found_message = _XML_CODE.search(message), _XML_MESSAGE.search(message)
        code = found_code.group(1) if found_code else code
        message = found_message.group(1) if found_message else message
    return code or str(status), message.strip(), status


def _client_error(error: ClientError, what: str) -> OciError:
    code, message, status = aws_error_code(error)
    text = f"{what}: {code}: {message}" if message else f"{what}: {code}"
    kind: type[OciError]
    if code in _THROTTLED or status == 429:
        kind = RateLimited
    elif code in _BAD_CREDENTIALS:
        kind = CredentialsUnavailable
        text += (
            " (AWS does not accept this access key id and secret, or the session token has "
            "expired: check the endpoint's access key, or the AWS credential chain)"
        )
    elif code in _DENIED or status == 403:
        kind = CredentialsUnavailable if "AssumeRole" in what else Denied
    elif code in _NOT_FOUND or status == 404:
        kind = NotFound
    elif code in _SERVER or status >= 500:
        kind = ServerError
    else:
        kind = RequestRejected
    return kind(text, status=status or None, code=code)


def translate(error: Exception, what: str) -> OciError:
    """The :mod:`adapters.oci.errors` error for what botocore raised while doing ``what``
    (``"ECR DescribeImages of 123456789012/team/app"``), or ``error`` itself when it is ours."""
    if isinstance(error, OciError):
        return error
    if isinstance(error, ClientError):
        return _client_error(error, what)
    if isinstance(
        error,
        NoCredentialsError | PartialCredentialsError | CredentialRetrievalError | ProfileNotFound,
    ):
        return CredentialsUnavailable(
            f"{what}: {error} (give the endpoint an access key, or configure the AWS "
            "credential chain: AWS_ACCESS_KEY_ID, a profile, web identity or an instance role)"
        )
    if isinstance(error, NoRegionError):
        return CredentialsUnavailable(
            f"{what}: no AWS region (set AWS_REGION or the endpoint's --region)"
        )
    if isinstance(error, ConnectTimeoutError | ReadTimeoutError):
        return TimedOut(f"{what}: {error}")
    if isinstance(error, EndpointConnectionError | HTTPClientError):
        return ConnectionFailed(f"{what}: {error}")
    if isinstance(error, ParamValidationError):
        return RequestRejected(f"{what}: {error}")
    if isinstance(error, BotoCoreError):
        return ConnectionFailed(f"{what}: {type(error).__name__}: {error}")
    raise error
