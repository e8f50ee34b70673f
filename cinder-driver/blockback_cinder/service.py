"""blockback through a running `blockback serve` (its native API).

Plain urllib, no dependency beyond Python's: each call is one HTTP request
with the bearer token; an error answer becomes a BlockbackError carrying
the service's own message (NotFound for 404), a connection that fails an
Unreachable naming the URL.
"""

import json
import time
import urllib.error
import urllib.request

from blockback_cinder.errors import BlockbackError, NotFound, Unreachable

FINAL_STATES = ("succeeded", "failed", "cancelled")


class Conflict(BlockbackError):
    """The service refused because something already has that id (409)."""


class ServiceBlockback:
    """The native API of the blockback service at `url` (`http://host:port`)."""

    def __init__(self, url, token, timeout=30.0, poll_interval=0.5):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.poll_interval = poll_interval

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", "Bearer %s" % self.token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as answer:
                text = answer.read()
        except urllib.error.HTTPError as e:
            raise self._refusal(method, path, e.code, e.read())
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise Unreachable("the blockback service at %s is unreachable (%s); "
                              "check that it runs and blockback_url"
                              % (self.url, reason))
        return json.loads(text) if text else None

    def _refusal(self, method, path, status, text):
        try:
            message = json.loads(text)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = text.decode("utf-8", "replace").strip() or "no message"
        if status in (401, 403):
            return BlockbackError(
                "the blockback service at %s refused the token (%d: %s); "
                "check blockback_token" % (self.url, status, message))
        kind = {404: NotFound, 409: Conflict}.get(status, BlockbackError)
        return kind("%s %s: %d %s" % (method, path, status, message))

    def _get_or_none(self, path):
        try:
            return self._call("GET", path)
        except NotFound:
            return None

    # -- what the driver asks ---------------------------------------------

    def stores(self):
        return self._call("GET", "/api/v1/stores")

    def volume(self, volume_id):
        """The registered volume, or None."""
        return self._get_or_none("/api/v1/volumes/%s" % volume_id)

    def register_volume(self, volume_id, name, source, cluster=None):
        body = {"id": volume_id, "name": name, "source": source}
        if cluster:
            body["cluster"] = cluster
        return self._call("POST", "/api/v1/volumes", body)

    def unregister_volume(self, volume_id):
        self._call("DELETE", "/api/v1/volumes/%s" % volume_id)

    def backup(self, backup_id):
        """The service's record of the backup, or None."""
        return self._get_or_none("/api/v1/backups/%s" % backup_id)

    def submit_backup(self, volume_id, backup_id, mode, name=None,
                      description=None, metadata_object=None):
        body = {"volume": volume_id, "id": backup_id, "mode": mode}
        for key, value in (("name", name), ("description", description),
                           ("metadata_object", metadata_object)):
            if value:
                body[key] = value
        return self._call("POST", "/api/v1/backups", body)

    def submit_restore(self, backup_id, volume_id):
        return self._call("POST", "/api/v1/backups/%s/restore" % backup_id,
                          {"volume_id": volume_id})

    def submit_delete(self, backup_id):
        return self._call("DELETE", "/api/v1/backups/%s" % backup_id)

    def wait(self, job, on_progress=None):
        """Polls the job until it is final; its record when it succeeded,
        else a BlockbackError with the job's error. `on_progress(job)` sees
        every poll of a running job."""
        while job["state"] not in FINAL_STATES:
            time.sleep(self.poll_interval)
            job = self._call("GET", "/api/v1/jobs/%s" % job["id"])
            if on_progress is not None and job["state"] == "running":
                on_progress(job)
        if job["state"] != "succeeded":
            raise BlockbackError("job %s %s: %s" % (
                job["id"], job["state"], job.get("error") or "no reason given"))
        return job
