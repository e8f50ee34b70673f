"""The Cinder backup driver: Cinder's API, blockback's engine.

cinder-backup hands the driver a backup row and an open volume (an RBD
image wrapper for RBD volumes, a file or device otherwise). The driver
names that volume to blockback (`rbd:POOL/IMAGE` on the volume's cluster,
or the device path) and lets blockback do the work with Cinder's ids, so
the backup pool holds exactly what Cinder's Ceph driver would write: base
`volume-<volume id>.backup.<first backup id>`, snapshots
`backup.<backup id>.snap.<time>`, metadata object `backup.<id>.meta`.
Backups made by Cinder's Ceph driver before the switch are adopted into
blockback's catalog when first touched, so their chains continue; Cinder's
driver can restore and delete ours (the row's service_metadata names the
base as it does).

`blockback_mode = cli` runs the blockback binary on this host (below);
`blockback_mode = service` hands each call to a running `blockback serve`
(service_mode.py), which then holds the catalog of record.
"""

import json
import os
import tempfile

from oslo_config import cfg
from oslo_log import log as logging

from cinder import exception
from cinder.backup import driver
# Registers backup_ceph_conf/user/pool/max_snapshots: the driver keeps the
# options of Cinder's Ceph driver, so switching is one line.
from cinder.backup.drivers import ceph as cinder_ceph  # noqa: F401

from blockback_cinder.cli import CliBlockback
from blockback_cinder.errors import BlockbackError, NotFound
from blockback_cinder.service import ServiceBlockback
from blockback_cinder.service_mode import ServiceMode

LOG = logging.getLogger(__name__)

blockback_opts = [
    cfg.StrOpt("blockback_mode", default="cli", choices=["cli", "service"],
               help="cli: run the blockback binary on this host; service: "
                    "hand the work to a running `blockback serve` (RBD "
                    "volumes only)."),
    cfg.StrOpt("blockback_url", default="http://127.0.0.1:8080",
               help="The blockback service's URL (mode service)."),
    cfg.StrOpt("blockback_token", secret=True,
               help="The bearer token for the blockback service (mode "
                    "service; an admin token)."),
    cfg.StrOpt("blockback_token_file",
               help="A file holding the token instead (mode service)."),
    cfg.StrOpt("blockback_cluster",
               help="The service's configured cluster of Cinder's volumes "
                    "[default: the service's default] (mode service)."),
    cfg.FloatOpt("blockback_poll_interval", default=0.5,
                 help="Seconds between looks at a running job (mode "
                      "service)."),
    cfg.StrOpt("blockback_binary", default="blockback",
               help="The blockback executable (mode cli)."),
    cfg.StrOpt("blockback_catalog",
               default="/var/lib/cinder/blockback/catalog.db",
               help="blockback's catalog on this host (mode cli)."),
    cfg.StrOpt("blockback_volume_pool", default="volumes",
               help="The RBD pool of Cinder's volumes: recorded as the "
                    "source of backups adopted from Cinder's Ceph driver "
                    "when they are first deleted or restored."),
]

CONF = cfg.CONF
CONF.register_opts(blockback_opts)


class BlockbackBackupDriver(driver.BackupDriver):
    """Backups of Cinder volumes made, restored and deleted by blockback."""

    def __init__(self, context):
        super().__init__(context)
        self.conf = CONF
        self.pool = CONF.backup_ceph_pool
        self.keep = max(1, CONF.backup_ceph_max_snapshots)
        self.blockback = CliBlockback(
            CONF.blockback_binary, CONF.blockback_catalog,
            CONF.backup_ceph_conf, CONF.backup_ceph_user)
        self.service_mode = None
        if CONF.blockback_mode == "service":
            service = ServiceBlockback(CONF.blockback_url, _token(CONF),
                                       poll_interval=CONF.blockback_poll_interval)
            self.service_mode = ServiceMode(self, service, self.pool,
                                            CONF.blockback_volume_pool,
                                            CONF.blockback_cluster)

    @staticmethod
    def get_driver_options():
        return blockback_opts

    def check_for_setup_error(self):
        """blockback answers, and the backup pool is there."""
        try:
            if self.service_mode is not None:
                return self.service_mode.check()
            self.blockback.check(self.pool)
        except BlockbackError as e:
            raise exception.InvalidConfigurationValue(
                option="backup_driver (blockback)", value=str(e))

    # -- backup -----------------------------------------------------------

    def backup(self, backup, volume_file, backup_metadata=True):
        """Backs up the volume: differential for RBD volumes (a new chain
        when the backup is not incremental, and when the chain cannot
        continue -- then the row's parent is cleared, as Cinder's Ceph
        driver does); a full copy of any other volume."""
        if self.service_mode is not None:
            return self.service_mode.backup(backup, volume_file, backup_metadata)
        volume = self.db.volume_get(self.context, backup.volume_id)
        if int(volume["size"]) == 0:
            raise exception.InvalidParameterValue(
                _msg("need non-zero volume size"))
        if not backup.container:
            backup.container = self.pool
            backup.save()
        source, volume_ceph = _volume_address(volume_file, volume)
        if backup.parent_id:
            self._know(backup.container, backup.parent_id, backup.volume_id,
                       _volume_pool(volume_file))
        meta = self.get_metadata(backup.volume_id) if backup_metadata else None
        with _metadata_file(meta) as meta_path:
            try:
                made = self.blockback.backup(
                    backup.container, source, volume_ceph, backup.id,
                    backup.volume_id, full=not backup.parent_id
                    or bool(backup.snapshot_id),
                    keep_source_snapshots=self.keep, metadata_file=meta_path)
            except BlockbackError as e:
                raise exception.BackupOperationError(
                    _msg("backup %s of volume %s failed: %s"
                         % (backup.id, backup.volume_id, e)))
        if backup.parent_id and made.get("kind") == "full":
            LOG.info("Incremental backup %s could not continue its chain; "
                     "blockback made a full backup (a new chain).", backup.id)
            backup.parent = None
            backup.parent_id = None
            backup.save()
        return {"service_metadata": json.dumps({"base": made["image"]})}

    # -- restore ----------------------------------------------------------

    def restore(self, backup, volume_id, volume_file, volume_is_new):
        """Restores into the volume Cinder opened (differential into an
        empty new RBD volume, a full copy otherwise: blockback decides as
        Cinder's rules say), then the volume's metadata."""
        if self.service_mode is not None:
            return self.service_mode.restore(backup, volume_id, volume_file,
                                             volume_is_new)
        target_volume = self.db.volume_get(self.context, volume_id)
        target, volume_ceph = _volume_address(volume_file, target_volume)
        pool = backup.container or self.pool
        self._know(pool, backup.id, backup.volume_id, _volume_pool(volume_file))
        try:
            self.blockback.restore(pool, backup.id, target, volume_ceph)
        except BlockbackError as e:
            raise exception.BackupOperationError(
                _msg("restore of backup %s into volume %s failed: %s"
                     % (backup.id, volume_id, e)))
        meta = self._metadata_object(pool, backup.id)
        if meta is not None:
            self.put_metadata(volume_id, meta)

    # -- delete -----------------------------------------------------------

    def delete_backup(self, backup):
        """Deletes the backup (its snapshot on the base, the base with the
        chain's last backup, its metadata object). A backup blockback never
        made nor found (one that failed before writing anything) has
        nothing to delete; a missing pool is tolerated as Cinder does."""
        if self.service_mode is not None:
            return self.service_mode.delete(backup)
        pool = backup.container or self.pool
        try:
            self._know(pool, backup.id, backup.volume_id,
                       CONF.blockback_volume_pool)
            self.blockback.delete(pool, backup.id)
        except NotFound:
            LOG.warning("Backup %s is not in blockback's catalog nor in pool "
                        "%s: nothing to delete.", backup.id, pool)
        except BlockbackError as e:
            if _pool_missing(e):
                LOG.warning("Pool %s of backup %s does not exist: nothing "
                            "to delete.", pool, backup.id)
                return
            raise exception.BackupOperationError(
                _msg("delete of backup %s failed: %s" % (backup.id, e)))

    # -- records ----------------------------------------------------------

    def export_record(self, backup):
        """The row's service_metadata already names the base; nothing else
        is needed to import it on another Cinder."""
        return {}

    def import_record(self, backup, driver_info):
        """An imported backup row: adopt its backup into blockback's
        catalog now, so a missing one is an error at import time."""
        pool = backup.container or self.pool
        try:
            if self.service_mode is not None:
                return self.service_mode.known(backup)
            self._know(pool, backup.id, backup.volume_id,
                       CONF.blockback_volume_pool)
        except BlockbackError as e:
            raise exception.InvalidBackup(
                reason=_msg("backup %s is not in pool %s: %s"
                            % (backup.id, pool, e)))

    def _metadata_object(self, pool, backup_id):
        """The backup's `backup.<id>.meta` JSON (None without one), read
        with Cinder's own reader (it checks the version)."""
        import rados
        with rados.Rados(conffile=CONF.backup_ceph_conf,
                         rados_id=CONF.backup_ceph_user) as cluster:
            with cluster.open_ioctx(pool) as ioctx:
                client = _IoctxClient(ioctx)
                return cinder_ceph.VolumeMetadataBackup(client, backup_id).get()

    def _know(self, pool, backup_id, volume_id, volume_pool):
        """Makes sure blockback's catalog has `backup_id` (adopting the
        volume's backups from the pool when it has not: a chain Cinder's
        Ceph driver started); NotFound when the pool has none either."""
        try:
            self.blockback.show(pool, backup_id)
            return
        except NotFound:
            pass
        LOG.info("Adopting volume %s's backups from pool %s into blockback.",
                 volume_id, pool)
        self.blockback.adopt(pool, volume_pool, volume_id)
        self.blockback.show(pool, backup_id)


class _IoctxClient:
    """What Cinder's VolumeMetadataBackup needs of a RADOS client."""

    def __init__(self, ioctx):
        self.ioctx = ioctx


def _token(conf):
    """The service token: blockback_token, else blockback_token_file's
    first line."""
    if conf.blockback_token:
        return conf.blockback_token
    if conf.blockback_token_file:
        try:
            with open(conf.blockback_token_file) as f:
                return f.readline().strip()
        except OSError as e:
            raise exception.InvalidConfigurationValue(
                option="blockback_token_file", value="%s (%s)"
                % (conf.blockback_token_file, e))
    raise exception.InvalidConfigurationValue(
        option="blockback_token", value="unset (blockback_mode = service "
        "needs blockback_token or blockback_token_file)")


def _msg(text):
    return text


def _pool_missing(error):
    text = str(error).lower()
    return "pool" in text and ("not exist" in text or "not found" in text)


def _volume_address(volume_file, volume):
    """blockback's address of the volume Cinder opened, and the (conf,
    user) of its cluster for RBD volumes."""
    if hasattr(volume_file, "rbd_image"):
        name = None
        get_name = getattr(volume_file.rbd_image, "get_name", None)
        if get_name is not None:
            name = get_name()
        name = name or volume["name"]
        address = "rbd:%s/%s" % (volume_file.rbd_pool, name)
        return address, (volume_file.rbd_conf, volume_file.rbd_user)
    path = getattr(volume_file, "name", None)
    if not isinstance(path, str) or not os.path.exists(path):
        raise exception.BackupOperationError(
            _msg("volume %s was not opened as a file or device blockback can "
                 "open (got %r)" % (volume["id"], path)))
    return path, None


def _volume_pool(volume_file):
    return getattr(volume_file, "rbd_pool", None) or CONF.blockback_volume_pool


class _metadata_file:
    """A temp file holding the backup metadata JSON (None without any)."""

    def __init__(self, meta):
        self.meta = meta
        self.path = None

    def __enter__(self):
        if not self.meta:
            return None
        fd, self.path = tempfile.mkstemp(prefix="blockback-meta-")
        with os.fdopen(fd, "w") as f:
            f.write(self.meta)
        return self.path

    def __exit__(self, *exc):
        if self.path:
            os.unlink(self.path)
        return False
