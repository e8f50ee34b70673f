"""blockback through its CLI on the cinder-backup host.

Each call runs one `blockback --json --quiet ...` process; its stdout is
the JSON result, and a failure is its one-line error on stderr and a
non-zero exit, which becomes a BlockbackError with that line.
"""

import json
import os
import subprocess

from blockback_cinder.errors import BlockbackError, NotFound


class CliBlockback:
    """Runs the `blockback` binary against an RBD store.

    `store`: the `rbd:POOL` of the backups; `ceph`: (conf, user) of the
    backup cluster; `catalog`: blockback's catalog file on this host.
    """

    def __init__(self, binary, catalog, ceph_conf, ceph_user):
        self.binary = binary
        self.catalog = catalog
        self.ceph_conf = ceph_conf
        self.ceph_user = ceph_user

    def _run(self, pool, args, volume_ceph=None):
        cmd = [self.binary, "--json", "--quiet", "--store", "rbd:%s" % pool,
               "--ceph-conf", self.ceph_conf, "--ceph-id", self.ceph_user]
        if self.catalog:
            cmd += ["--catalog", self.catalog]
        if volume_ceph is not None:
            conf, user = volume_ceph
            if conf:
                cmd += ["--volume-ceph-conf", conf]
            if user:
                cmd += ["--volume-ceph-id", user]
        cmd += args
        try:
            done = subprocess.run(cmd, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, check=False)
        except OSError as e:
            raise BlockbackError("cannot run %s: %s" % (self.binary, e))
        if done.returncode != 0:
            raise _error(done.stderr.decode("utf-8", "replace"))
        out = done.stdout.decode("utf-8", "replace").strip()
        return json.loads(out) if out else None

    def check(self, pool):
        """The binary runs, its catalog's directory is there, and the
        backup pool opens."""
        if self.catalog:
            os.makedirs(os.path.dirname(self.catalog) or ".", exist_ok=True)
        self._run(pool, ["store", "stats"])

    def backup(self, pool, source, volume_ceph, backup_id, volume_id,
               full, keep_source_snapshots, metadata_file):
        args = ["backup", "create", source, "--id", backup_id,
                "--volume-id", volume_id,
                "--keep-source-snapshots", str(keep_source_snapshots)]
        if full:
            args.append("--full")
        if metadata_file:
            args += ["--metadata-object", metadata_file]
        return self._run(pool, args, volume_ceph)

    def restore(self, pool, backup_id, target, volume_ceph):
        return self._run(pool, ["backup", "restore", backup_id, target],
                         volume_ceph)

    def delete(self, pool, backup_id):
        return self._run(pool, ["backup", "delete", backup_id])

    def show(self, pool, backup_id):
        return self._run(pool, ["backup", "show", backup_id])

    def adopt(self, pool, volume_pool, volume_id):
        return self._run(pool, ["adopt", "--volume-pool", volume_pool,
                                "--volume-id", volume_id, "--checksums"])


def _error(stderr):
    """The error of a failed run: its last `error:` line, or its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error")]
    line = (errors or lines or ["blockback failed without a message"])[-1]
    if line.startswith("error:"):
        line = line[len("error:"):].strip()
    if "not found" in line and "backup" in line:
        return NotFound(line)
    return BlockbackError(line)
