"""What a blockback call can fail with."""


class BlockbackError(Exception):
    """blockback refused or failed the operation; the message is its reason."""


class NotFound(BlockbackError):
    """blockback's catalog has no such backup."""


class Unreachable(BlockbackError):
    """The blockback service did not answer (down, or the URL is wrong)."""
