"""Helpers over a folder tree for tests that assert nothing was rewritten."""

import os


def mtimes(folder: str) -> dict[str, int]:
    """``{path: st_mtime_ns}`` of every file under ``folder``."""
    return {os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns for d, _, fs in os.walk(folder) for f in fs}
