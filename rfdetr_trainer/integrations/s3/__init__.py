"""MinIO / S3 source and artifact upload.

Fetch: every object under the configured prefixes is listed; ``.zip`` objects are datasets of their own
(downloaded, extracted safely, the zip dropped), and folders holding COCO JSON become one dataset each. A
dataset root is found from each ``*.json`` key: ``<root>/annotations/x.json`` (CVAT export),
``<root>/<split>/_annotations.coco.json`` (Roboflow / rfdetr), otherwise the JSON's own folder; nested roots
fold into the outer one.

Local layout::

    <dest>/s3/<bucket>/<key>                    mirrored objects of folder datasets
    <dest>/s3/<bucket>/<key>.extracted/         extracted .zip datasets
    <dest>/s3/.journal/<bucket>.jsonl           ETag and size of every object landed (append-only)

Each object is written to a hidden temporary sibling and renamed when complete, then journaled, so an
interrupted fetch resumes where it stopped; an object whose ETag and size match the journal (and whose file
is intact) is not downloaded again. A key that can't be written safely (``..``, an absolute path, or a second key
mapping to a file another key already takes) is skipped with one warning naming each key and recorded in the
sources' ``origin`` (so in the dataset manifest), and the rest of the prefix is fetched, as ``aws s3 sync``
does; with ``strict`` such a key fails the fetch (exit 5) before anything is written. boto3 is imported inside
functions only (``--help`` must stay light).

Modules: :mod:`.client` (boto3 client, retry policy, error lines), :mod:`.discover` (listing, dataset roots,
safe keys), :mod:`.journal` (what landed), :mod:`.fetch` (:func:`fetch_s3`), :mod:`.upload`
(:func:`upload_artifacts`).
"""

from rfdetr_trainer.integrations.s3.client import endpoint_url, make_client, s3_error
from rfdetr_trainer.integrations.s3.discover import S3Object, dataset_root, find_datasets, list_objects, safe_paths
from rfdetr_trainer.integrations.s3.fetch import download_object, fetch_s3
from rfdetr_trainer.integrations.s3.journal import Journal
from rfdetr_trainer.integrations.s3.upload import parse_s3_uri, upload_artifacts

__all__ = [
    "Journal", "S3Object", "dataset_root", "download_object", "endpoint_url", "fetch_s3", "find_datasets",
    "list_objects", "make_client", "parse_s3_uri", "s3_error", "safe_paths", "upload_artifacts",
]
