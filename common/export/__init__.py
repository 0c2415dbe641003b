"""Export helpers: versioned atomic SavedModel folders for TF Serving."""

from common.export.versioned import (
    export_versioned,
    list_versions,
    next_version,
    resolve_version_dir,
)

__all__ = ["export_versioned", "list_versions", "next_version", "resolve_version_dir"]
