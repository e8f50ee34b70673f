"""The driver's service mode: backups, restores and deletes as jobs of a
running `blockback serve`, with Cinder's ids.

The service's catalog is the one of record: Cinder's volume is registered
with Cinder's volume id (so the base images carry Cinder's names), the
backup is submitted with Cinder's backup id, and the driver waits for the
job, reporting its progress as Cinder's chunked drivers do. Chains that
Cinder's own Ceph driver started are not adopted on the fly (adopting
writes the service's catalog behind its back): the error says to run
`blockback adopt` once.
"""

import json
import math

from oslo_log import log as logging

from cinder import exception
from cinder.volume import volume_utils

from blockback_cinder.errors import BlockbackError, NotFound
from blockback_cinder.service import Conflict

LOG = logging.getLogger(__name__)

GIB = 1 << 30


class ServiceMode:
    """What the driver does in service mode; `driver` gives Cinder's
    database, context and the metadata helpers."""

    def __init__(self, driver, service, pool, volume_pool, cluster=None):
        self.driver = driver
        self.service = service
        self.pool = pool
        self.volume_pool = volume_pool
        self.cluster = cluster

    def check(self):
        """The service answers with the token, and stores in the pool."""
        self._check_store(self.pool)

    # -- backup -----------------------------------------------------------

    def backup(self, backup, volume_file, backup_metadata=True):
        volume = self.driver.db.volume_get(self.driver.context, backup.volume_id)
        container = backup.container or self.pool
        try:
            source = _rbd_source(volume_file, volume)
            self._check_store(container)
            self._check_parent(backup)
            self._registered(volume["id"], volume.get("display_name"), source)
            meta = (self.driver.get_metadata(backup.volume_id)
                    if backup_metadata else None)
            job = self.service.submit_backup(
                volume["id"], backup.id,
                "full" if not backup.parent_id or backup.snapshot_id else "auto",
                name=backup.display_name,
                description=backup.display_description, metadata_object=meta)
            if not backup.container:
                backup.container = container
                backup.save()
            self.service.wait(job, lambda j: self._progress(backup, j))
            made = self.service.backup(backup.id)
        except BlockbackError as e:
            # Short: Cinder keeps 255 characters of the reason.
            raise exception.BackupOperationError("blockback: %s" % e)
        self._progress_end(backup, made)
        if backup.parent_id and made["kind"] == "full":
            LOG.info("Incremental backup %s could not continue its chain; "
                     "blockback made a full backup (a new chain).", backup.id)
            backup.parent = None
            backup.parent_id = None
            backup.save()
        return {"service_metadata": json.dumps({"base": made["image"]}),
                "size": max(1, int(math.ceil(made["size"] / float(GIB))))}

    def _check_store(self, pool):
        stores = [s["store"] for s in self.service.stores()]
        if "rbd:%s" % pool not in stores:
            raise BlockbackError(
                "backup pool %s is not the blockback service's store (%s); "
                "use the service's pool as backup_ceph_pool and container, or "
                "configure the service with store = \"rbd:%s\""
                % (pool, ", ".join(stores) or "none", pool))

    def _check_parent(self, backup):
        if backup.parent_id and self.service.backup(backup.parent_id) is None:
            raise BlockbackError(
                "parent backup %s is not in the service's catalog; run "
                "`blockback adopt --volume-pool %s --volume-id %s` on it "
                "once (a chain of Cinder's Ceph driver)"
                % (backup.parent_id, self.volume_pool, backup.volume_id))

    def _registered(self, volume_id, name, source):
        """Registers Cinder's volume under Cinder's id unless it is;
        returns whether this call registered it."""
        known = self.service.volume(volume_id)
        if known is not None:
            if known["source"] != source:
                raise BlockbackError(
                    "volume %s is registered with the blockback service as "
                    "%s, not %s; unregister it (DELETE /api/v1/volumes/%s)"
                    % (volume_id, known["source"], source, volume_id))
            return False
        try:
            self.service.register_volume(volume_id, name or "volume-%s"
                                         % volume_id, source, self.cluster)
        except Conflict as e:
            raise BlockbackError("registering volume %s with the blockback "
                                 "service: %s" % (volume_id, e))
        return True

    def _progress(self, backup, job):
        total = job.get("bytes_total") or 0
        if total <= 0:
            return
        volume_utils.notify_about_backup_usage(
            self.driver.context, backup, "createprogress",
            extra_usage_info={"backup_percent": job["bytes_done"] * 100 / total,
                              "phase": job.get("phase")})

    def _progress_end(self, backup, made):
        volume_utils.notify_about_backup_usage(
            self.driver.context, backup, "createprogress",
            extra_usage_info={"backup_percent": 100,
                              "bytes_read": made.get("bytes_read"),
                              "bytes_written": made.get("bytes_written")})

    # -- restore ----------------------------------------------------------

    def restore(self, backup, volume_id, volume_file, volume_is_new):
        target = self.driver.db.volume_get(self.driver.context, volume_id)
        pool = backup.container or self.pool
        registered_now = False
        try:
            source = _rbd_source(volume_file, target)
            if self.service.backup(backup.id) is None:
                raise BlockbackError(_unknown(backup, self.volume_pool))
            registered_now = self._registered(
                volume_id, target.get("display_name"), source)
            job = self.service.submit_restore(backup.id, volume_id)
            self.service.wait(job)
        except BlockbackError as e:
            raise exception.BackupOperationError(
                "blockback restore into volume %s: %s" % (volume_id, e))
        finally:
            if registered_now and volume_id != backup.volume_id:
                self._forget(volume_id)
        meta = self.driver._metadata_object(pool, backup.id)
        if meta is not None:
            self.driver.put_metadata(volume_id, meta)

    def _forget(self, volume_id):
        """Unregisters a volume registered only to be restored into (Cinder
        owns it; the service need not keep it)."""
        try:
            self.service.unregister_volume(volume_id)
        except BlockbackError as e:
            LOG.warning("Volume %s stays registered with blockback: %s",
                        volume_id, e)

    # -- delete -----------------------------------------------------------

    def delete(self, backup):
        """Deletes through the service (a running backup is not cancelled:
        the service refuses, and the row goes to error_deleting). A backup
        the service has no record of is gone unless the pool still holds
        it -- then it was made by Cinder's driver and must be adopted."""
        pool = backup.container or self.pool
        try:
            try:
                job = self.service.submit_delete(backup.id)
            except NotFound:
                if _in_pool(self.driver, pool, backup):
                    raise BlockbackError(_unknown(backup, self.volume_pool))
                LOG.warning("Backup %s is not in the blockback service's "
                            "catalog nor in pool %s: nothing to delete.",
                            backup.id, pool)
                return
            self.service.wait(job)
        except BlockbackError as e:
            raise exception.BackupOperationError("blockback delete: %s" % e)

    def known(self, backup):
        """import_record: the service must have the backup."""
        if self.service.backup(backup.id) is None:
            raise BlockbackError(_unknown(backup, self.volume_pool))


def _unknown(backup, volume_pool):
    return ("backup %s is not in the service's catalog; run `blockback "
            "adopt --volume-pool %s --volume-id %s` on it once (a backup of "
            "Cinder's Ceph driver)" % (backup.id, volume_pool, backup.volume_id))


def _rbd_source(volume_file, volume):
    """`rbd:POOL/IMAGE` of the RBD volume Cinder opened."""
    if not hasattr(volume_file, "rbd_image"):
        raise BlockbackError(
            "volume %s is not an RBD volume; blockback_mode = service backs "
            "up RBD volumes only (use blockback_mode = cli for others)"
            % volume["id"])
    get_name = getattr(volume_file.rbd_image, "get_name", None)
    name = (get_name() if get_name is not None else None) or volume["name"]
    return "rbd:%s/%s" % (volume_file.rbd_pool, name)


def _in_pool(driver, pool, backup):
    """Whether the backup pool holds anything of `backup` (its metadata
    object, its base, or its snapshot on a base of its volume); a missing
    pool holds nothing."""
    import rados
    import rbd
    conf = driver.conf
    with rados.Rados(conffile=conf.backup_ceph_conf,
                     rados_id=conf.backup_ceph_user) as cluster:
        if not cluster.pool_exists(pool):
            return False
        with cluster.open_ioctx(pool) as ioctx:
            try:
                ioctx.stat("backup.%s.meta" % backup.id)
                return True
            except rados.ObjectNotFound:
                pass
            prefix = "volume-%s.backup." % backup.volume_id
            for name in rbd.RBD().list(ioctx):
                if not name.startswith(prefix):
                    continue
                if name == prefix + backup.id:
                    return True
                with rbd.Image(ioctx, name, read_only=True) as image:
                    snap = "backup.%s.snap." % backup.id
                    if any(s["name"].startswith(snap)
                           for s in image.list_snaps()):
                        return True
    return False
