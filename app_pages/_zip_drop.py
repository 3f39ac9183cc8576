"""The Data page's drop zone for dataset zips of any size (a Streamlit component; see server.py).

Streamlit's file uploader keeps a whole upload in memory and stops at ``server.maxUploadSize``; this
one sends the file in pieces to ``/smc/uploads``, where each piece is written to disk as it arrives.
The component's value is ``{"id", "filename", "size"}`` once the last byte has arrived.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from core.uploads import PIECE_BYTES, UPLOADS_ROUTE

_HTML = """
<div class="smc-drop">
  <label>Drop a dataset zip here, or <input type="file" accept=".zip,application/zip" aria-label="Dataset zip"></label>
  <div class="smc-bar"><div></div></div>
  <div class="smc-status" role="status">Any size: the zip goes to disk on this machine in pieces.</div>
  <button class="smc-cancel" type="button" disabled>Cancel upload</button>
</div>
"""
_CSS = """
.smc-drop { border: 1px dashed var(--st-border-color, #999); border-radius: 0.5rem; padding: 1rem;
            font-family: var(--st-font, sans-serif); color: var(--st-text-color, inherit); }
.smc-drop.smc-over { background: var(--st-secondary-background-color, #eee); }
.smc-bar { height: 0.4rem; background: var(--st-secondary-background-color, #eee); margin: 0.6rem 0; }
.smc-bar > div { height: 100%; width: 0; background: var(--st-primary-color, #f63); }
.smc-status { font-size: 0.9rem; margin-bottom: 0.5rem; }
"""
_component = st.components.v2.component(
    "smc_zip_drop", html=_HTML, css=_CSS, js=(Path(__file__).parent / "assets" / "zip_drop.js").read_text()
)


def zip_drop(key: str) -> dict[str, Any] | None:
    """Shows the drop zone; returns ``{"id", "filename", "size"}`` of the received zip, or None."""
    result = _component(key=key, data={"endpoint": UPLOADS_ROUTE, "piece_bytes": PIECE_BYTES, "retries": 5},
                        on_upload_change=lambda: None)
    return getattr(result, "upload", None)
