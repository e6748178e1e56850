"""Hub failures as user-facing errors: each condition has its own message and a way forward."""

from __future__ import annotations

from chatapp.core.errors import BadModelFile, NetworkError, UserError

TOKEN_HINT = (
    "Set a token: the HF_TOKEN environment variable, `huggingface-cli login`, "
    "or the HF token… button in Models > Model manager."
)


class OfflineError(NetworkError):
    """No connection to the hub (or HF_HUB_OFFLINE is set)."""


class AuthRequiredError(NetworkError):
    """401: a private or gated repository and no valid token."""


class GatedRepoError(NetworkError):
    """403: the repository is gated and this account has not accepted its terms."""


class NotFoundError(NetworkError):
    """404: no such repository, revision or file."""


class RateLimitedError(NetworkError):
    """429: too many requests."""


class ServerError(NetworkError):
    """5xx from the hub."""


class HubTimeoutError(NetworkError):
    """The hub accepted the connection but did not answer in time."""


class ChecksumError(BadModelFile):
    """The downloaded bytes do not match the hub's LFS sha256; the file is quarantined."""


class BadFilenameError(UserError):
    """A file name with path parts that could escape the models folder."""


def offline(what: str = "Hugging Face") -> OfflineError:
    return OfflineError(
        f"Offline: cannot reach {what}.",
        hint="Your downloaded models and chats still work; try again when connected.",
    )


def for_status(
    status: int,
    repo_id: str,
    filename: str | None = None,
    *,
    error_code: str | None = None,
    retry_after: float | None = None,
    endpoint: str = "https://huggingface.co",
) -> NetworkError:
    """The error for an HTTP status from the hub, with what to do about it."""
    what = f"{repo_id}/{filename}" if filename else repo_id
    page = f"{endpoint.rstrip('/')}/{repo_id}"
    if status == 401:
        return AuthRequiredError(
            f"Hugging Face asks for a login to get {what}: the repository is private or gated.",
            hint=TOKEN_HINT,
        )
    if status == 403 or error_code == "GatedRepo":
        return GatedRepoError(
            f"{repo_id} is gated: accept its license on {page} with your account first.",
            hint=TOKEN_HINT,
        )
    if status == 404:
        return NotFoundError(
            f"Not found on Hugging Face: {what}.",
            hint="Check the repository and file name (they are case-sensitive).",
        )
    if status == 429:
        wait = f" (it asks to wait {retry_after:.0f} s)" if retry_after else ""
        return RateLimitedError(
            f"Hugging Face is limiting requests{wait}.",
            hint="Wait a few minutes, then resume; a token raises the limit. " + TOKEN_HINT,
        )
    if status >= 500:
        return ServerError(
            f"Hugging Face had a server error (HTTP {status}) for {what}.",
            hint="Try again later; a partial download is kept and resumes.",
        )
    return NetworkError(f"Hugging Face answered HTTP {status} for {what}.")
