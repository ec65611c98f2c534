"""Photos from residents: checked, re-encoded without metadata, and stored by content hash."""

from services.media.pipeline import (
    DecodeBudget,
    MediaLimits,
    MediaRejected,
    ProcessedPhoto,
    process_photo,
    unmap_freed_pictures,
)
from services.media.storage import LocalStorage, MediaStorage

__all__ = [
    "DecodeBudget",
    "LocalStorage",
    "MediaLimits",
    "MediaRejected",
    "MediaStorage",
    "ProcessedPhoto",
    "process_photo",
    "unmap_freed_pictures",
]
