"""The one place secrets are taken out of text before it is shown: every URL kind a user can
hand us (s3://, gs://, az://, https://…blob.core.windows.net, postgresql://, a key=value DSN)
and every sink (error lines, `--json`, the scheduler's log, webhook payloads, metrics).

What counts as a secret is decided by form, not by knowing the value: a URL's userinfo
password (`user:secret@`; all of it outside postgresql://, where the access key id sits
there), and the value of every parameter that signs or authorizes a request (a SAS `sig`,
`X-Amz-Signature`/`-Credential`/`-Security-Token`, `X-Goog-Signature`, `token`, `password`,
an Azure `AccountKey`).
"""

from __future__ import annotations

import re

MASK = "***"

# A parameter that authorizes a request, in a URL query, a key=value DSN or an Azure
# connection string; not a part of a longer name (`mytoken=` is someone's data).
_SECRET_PARAMETER = re.compile(
    r"(?i)(?<![\w.-])("
    r"sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token|"
    r"x-goog-signature|x-goog-credential|token|access_token|sas_token|password|passwd|"
    r"accountkey|sharedaccesssignature|client_secret|secret"
    r")=('(?:[^'\\]|\\.)*'|[^&;\s\"'<>\\)#]+)")
# scheme://userinfo@ - the userinfo up to the host; postgresql:// keeps its user name
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/@\s?#\"'<>]+)@")
_DATABASE_SCHEMES = ("postgresql://", "postgres://", "postgresql+", "postgres+")


def _userinfo(match: re.Match[str]) -> str:
    scheme, userinfo = match[1], match[2]
    if scheme.lower().startswith(_DATABASE_SCHEMES):
        user, colon, _ = userinfo.partition(":")
        return f"{scheme}{user}:{MASK}@" if colon else match[0]
    return f"{scheme}{MASK}@"


def mask_secrets(text: str) -> str:
    """`text` with every URL's or DSN's secrets replaced by ***, the rest as it was."""
    if "=" in text:
        text = _SECRET_PARAMETER.sub(lambda m: f"{m[1]}={MASK}", text)
    if "@" in text:
        text = _USERINFO.sub(_userinfo, text)
    return text
