"""Photos from residents: checked, re-encoded without metadata, and stored by content hash."""

from services.media.pipeline import MediaLimits, MediaRejected, ProcessedPhoto, process_photo
from services.media.storage import LocalStorage, MediaStorage

__all__ = [
    "LocalStorage",
    "MediaLimits",
    "MediaRejected",
    "MediaStorage",
    "ProcessedPhoto",
    "process_photo",
]
