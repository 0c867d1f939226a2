"""CVAT source: export tasks and projects in COCO 1.0 through one of three downloaders.

- ``sdk``: the official cvat-sdk (current flow, 2.16+ servers).
- ``http``: the project's own client for the current flow (POST export, poll ``/api/requests``).
- ``http-legacy``: the GET-polling flow of servers before 2.16, ``/api/v1`` servers included.
- ``auto``: picked from ``/server/about``; falls back to ``http`` on 410.

Entry point: :func:`fetch_cvat`. Nothing heavy is imported here: cvat-sdk loads only when ``sdk`` is used.
"""

from rfdetr_trainer.integrations.cvat.fetch import fetch_cvat

__all__ = ["fetch_cvat"]
