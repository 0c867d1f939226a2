"""Shared base for configuration sections."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A configuration section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


#: Words that make a key a credential, whatever its type (error messages never echo such a value).
SECRET_WORDS = ("password", "token", "secret", "access_key", "api_key", "credential")


def is_secret_key(dotted: str) -> bool:
    """A key that names a credential, whatever its type."""
    leaf = dotted.rsplit(".", 1)[-1].lower()
    return any(word in leaf for word in SECRET_WORDS)
