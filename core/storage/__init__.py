"""Object storage: the local store or S3, behind one interface."""

from core.storage._base import ProgressCallback, Storage, StoredObject, validate_key
from core.storage._local import LocalStorage
from core.storage._s3 import S3Storage

__all__ = ["LocalStorage", "ProgressCallback", "S3Storage", "Storage", "StoredObject", "validate_key"]
