"""blockback's Cinder backup driver (cinder-driver/, pip-installed into the
test venv) driven the way cinder-backup drives a backup driver: real
Cinder 29 objects on a throwaway SQLite database of Cinder's schema, RBD
volumes opened through os-brick's RBD wrapper, on the real test cluster.

usage: cinder_backup_driver.py SCENARIO CEPH_CONF BLOCKBACK WORK_DIR [URL TOKEN [CATALOG]]
  SCENARIO: lifecycle | mixed | errors-cli, or in service mode (the
  blockback service at URL, TOKEN its admin token, CATALOG its catalog):
  lifecycle-service | adopted-service | errors-service

Each scenario asserts as it goes (a failed assertion exits non-zero with
its message) and prints "ok SCENARIO" at the end.
"""

import hashlib
import json
import os
import random
import sys
import uuid

GIB = 1 << 30
BLOCK = 4096


class Env:
    """A Cinder database, the driver classes and the test cluster."""

    def __init__(self, conf, blockback, work, mode, url=None, token=None):
        from oslo_config import cfg
        from cinder import context, objects
        from cinder.db import migration
        import rados

        objects.register_all()
        import blockback_cinder.driver  # registers the blockback_* options
        CONF = cfg.CONF
        CONF([], project="cinder", default_config_files=[])
        CONF.set_override("connection",
                          "sqlite:///" + os.path.join(work, "cinder.sqlite"),
                          group="database")
        CONF.set_override("backup_ceph_conf", conf)
        CONF.set_override("backup_ceph_user", "admin")
        CONF.set_override("backup_ceph_pool", "backups")
        CONF.set_override("blockback_mode", mode)
        CONF.set_override("blockback_binary", blockback)
        CONF.set_override("blockback_catalog", os.path.join(work, "catalog.db"))
        CONF.set_override("blockback_volume_pool", "volumes")
        if url:
            CONF.set_override("blockback_url", url)
            CONF.set_override("blockback_token", token)
            CONF.set_override("blockback_poll_interval", 0.1)
        migration.db_sync()
        self.init_notifications(CONF)
        self.mode = mode
        self.CONF = CONF
        self.conf = conf
        self.ctxt = context.get_admin_context()
        self.objects = objects
        self.cluster = rados.Rados(conffile=conf, rados_id="admin")
        self.cluster.connect()
        self.volumes = self.cluster.open_ioctx("volumes")
        self.backups = self.cluster.open_ioctx("backups")
        from cinder.db import api as db
        self.db = db
        self.vtype = db.volume_type_create(self.ctxt, {"name": "rbd"})

    @staticmethod
    def init_notifications(CONF):
        """Notifications as cinder-backup sends them, into oslo.messaging's
        test driver (a list) on the fake transport."""
        import oslo_messaging
        from cinder import rpc
        # Registers transport_url and the notifications group.
        oslo_messaging.get_notification_transport(CONF, url="fake:/")
        CONF.set_override("transport_url", "fake:/")
        CONF.set_override("driver", ["test"], group="oslo_messaging_notifications")
        rpc.init(CONF)

    @staticmethod
    def progress_of(backup_id):
        """The backup_percent of each createprogress notification of a backup."""
        from oslo_messaging.notify import _impl_test
        return [m["payload"]["backup_percent"]
                for _, m, _, _ in _impl_test.NOTIFICATIONS
                if m["event_type"] == "backup.createprogress"
                and m["payload"].get("backup_id") == backup_id]

    def ours(self, **overrides):
        """Our driver, with `overrides` of its blockback_* options."""
        from blockback_cinder.driver import BlockbackBackupDriver
        before = {key: self.CONF[key] for key in overrides}
        for key, value in overrides.items():
            self.CONF.set_override(key, value)
        try:
            return BlockbackBackupDriver(self.ctxt)
        finally:
            for key, value in before.items():
                self.CONF.set_override(key, value)

    def cinders(self):
        from cinder.backup.drivers.ceph import CephBackupDriver
        return CephBackupDriver(self.ctxt)

    # -- volumes ----------------------------------------------------------

    def volume(self, name, size_gib=1):
        """A Cinder volume row and its RBD image `volume-<id>`."""
        import rbd
        row = self.db.volume_create(self.ctxt, {
            "display_name": name, "size": size_gib, "status": "available",
            "volume_type_id": self.vtype["id"]})
        rbd.RBD().create(self.volumes, "volume-%s" % row["id"],
                         size_gib * GIB, old_format=False,
                         features=rbd.RBD_FEATURE_LAYERING)
        return row["id"]

    def opened(self, volume_id):
        """The volume as cinder-backup hands it to a driver."""
        import rbd
        from os_brick.initiator import linuxrbd
        image = rbd.Image(self.volumes, "volume-%s" % volume_id)
        meta = linuxrbd.RBDImageMetadata(image, "volumes", "admin", self.conf)
        return linuxrbd.RBDVolumeIOWrapper(meta)

    def scatter(self, volume_id, seed, count=24):
        """Writes `count` random 64 KiB pieces (some of them zeros)."""
        import rbd
        rng = random.Random(seed)
        with rbd.Image(self.volumes, "volume-%s" % volume_id) as image:
            size = image.size()
            for i in range(count):
                offset = rng.randrange(0, size // BLOCK - 16) * BLOCK
                data = (bytes(65536) if i % 5 == 0
                        else rng.randbytes(65536))
                image.write(data, offset)

    def digest(self, volume_id, pool=None, image_name=None, snap=None):
        """The image's content, holes and zero blocks alike as zeros."""
        import rbd
        ioctx = pool or self.volumes
        name = image_name or "volume-%s" % volume_id
        with rbd.Image(ioctx, name, snapshot=snap, read_only=True) as image:
            size = image.size()
            extents = []
            image.diff_iterate(0, size, None,
                               lambda o, n, e: extents.append((o, n)) if e else None)
            h = hashlib.sha256(str(size).encode())
            for offset, length in sorted(extents):
                data = image.read(offset, length)
                for at in range(0, length, BLOCK):
                    block = data[at:at + BLOCK]
                    if block.count(0) != len(block):
                        h.update(b"%d:" % (offset + at) + block)
            return h.hexdigest()

    def source_backup_snaps(self, volume_id):
        import rbd
        with rbd.Image(self.volumes, "volume-%s" % volume_id) as image:
            return sorted(s["name"] for s in image.list_snaps()
                          if s["name"].startswith("backup."))

    def pool_names(self, volume_id):
        """Images and metadata objects of the volume's backups in `backups`."""
        import rbd
        images = [n for n in rbd.RBD().list(self.backups)
                  if n.startswith("volume-%s." % volume_id)]
        return sorted(images)

    def snaps_of(self, image_name):
        import rbd
        with rbd.Image(self.backups, image_name, read_only=True) as image:
            return sorted(s["name"] for s in image.list_snaps())

    def meta_objects(self, backup_ids):
        out = []
        for b in backup_ids:
            try:
                self.backups.stat("backup.%s.meta" % b)
                out.append(b)
            except Exception:
                pass
        return out

    # -- backups ----------------------------------------------------------

    def new_backup(self, volume_id, parent=None, container=None):
        backup = self.objects.Backup(
            context=self.ctxt, volume_id=volume_id, user_id="u",
            project_id="p", status="creating", container=container,
            parent_id=parent, size=1, display_name="b")
        backup.create()
        return backup

    def run_backup(self, driver, volume_id, parent=None, container=None):
        """One backup as the backup manager runs it: the driver's updates
        go into the row, which becomes available."""
        backup = self.new_backup(volume_id, parent, container)
        volume_file = self.opened(volume_id)
        try:
            updates = driver.backup(backup, volume_file)
        finally:
            volume_file.close()
        if updates:
            backup.update(updates)
        backup.status = "available"
        backup.save()
        return self.objects.Backup.get_by_id(self.ctxt, backup.id)

    def restore(self, driver, backup, volume_id, is_new):
        volume_file = self.opened(volume_id)
        try:
            driver.restore(backup, volume_id, volume_file, is_new)
        finally:
            volume_file.close()

    def remove_volume(self, volume_id):
        import rbd
        name = "volume-%s" % volume_id
        with rbd.Image(self.volumes, name) as image:
            for s in list(image.list_snaps()):
                image.remove_snap(s["name"])
        rbd.RBD().remove(self.volumes, name)


def base_of(backup):
    return json.loads(backup.service_metadata)["base"]


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def restored_equals(env, driver, backup, want, label, onto=None):
    """Restores `backup` into a new volume (or onto `onto`) and compares."""
    if onto is None:
        size = env.db.volume_get(env.ctxt, backup.volume_id)["size"]
        target = env.volume("restore of " + label, size_gib=size)
        env.restore(driver, backup, target, True)
        got = env.digest(target)
        env.remove_volume(target)
    else:
        env.restore(driver, backup, onto, False)
        got = env.digest(onto)
    check(got == want, "restore of %s (%s) is not bit-exact"
          % (label, "new volume" if onto is None else "original volume"))


def lifecycle(env):
    """Full, two incrementals, restores of each to a new and to the
    original volume, delete of the middle one, fallback to a full backup
    after the source's snapshot is gone, and nothing left after deletes."""
    driver = env.ours()
    vol = env.volume("db")
    env.scatter(vol, 1)
    b1 = env.run_backup(driver, vol)
    d1 = env.digest(vol)
    env.scatter(vol, 2)
    b2 = env.run_backup(driver, vol, parent=b1.id)
    d2 = env.digest(vol)
    env.scatter(vol, 3)
    b3 = env.run_backup(driver, vol, parent=b2.id)
    d3 = env.digest(vol)
    if env.mode == "service":
        for b in (b1, b2, b3):
            percents = env.progress_of(b.id)
            check(percents and percents[-1] == 100
                  and all(0 <= p <= 100 for p in percents),
                  "progress notifications of %s: %s" % (b.id, percents))
    check(b1.parent_id is None and b2.parent_id == b1.id
          and b3.parent_id == b2.id, "parents changed: %s %s" % (b2.parent_id, b3.parent_id))
    base = "volume-%s.backup.%s" % (vol, b1.id)
    check(base_of(b1) == base_of(b2) == base_of(b3) == base,
          "the chain's base is not Cinder's name %s: %s" % (base, base_of(b3)))
    check(len(env.snaps_of(base)) == 3, "base snapshots: %s" % env.snaps_of(base))
    check(env.meta_objects([b1.id, b2.id, b3.id]) == [b1.id, b2.id, b3.id],
          "metadata objects missing")
    # One backup snapshot stays on the source (not one per backup).
    check(len(env.source_backup_snaps(vol)) == 1,
          "source snapshots: %s" % env.source_backup_snaps(vol))

    for b, want in ((b1, d1), (b2, d2), (b3, d3)):
        restored_equals(env, driver, b, want, "backup %s" % b.id)
    env.scatter(vol, 4)
    for b, want in ((b2, d2), (b1, d1), (b3, d3)):
        restored_equals(env, driver, b, want, "backup %s" % b.id, onto=vol)

    driver.delete_backup(b2)
    check(not any(b2.id in s for s in env.snaps_of(base)),
          "the middle backup's snapshot is still on the base")
    check(env.meta_objects([b2.id]) == [], "the middle backup's metadata stayed")
    restored_equals(env, driver, b3, d3, "the last backup after the delete")
    restored_equals(env, driver, b1, d1, "the first backup after the delete")

    # Fallback: the source's backup snapshot is gone, the incremental the
    # user asked for becomes a full backup (a new chain, parent cleared).
    env.scatter(vol, 5)
    for s in env.source_backup_snaps(vol):
        import rbd
        with rbd.Image(env.volumes, "volume-%s" % vol) as image:
            image.remove_snap(s)
    b4 = env.run_backup(driver, vol, parent=b3.id)
    d4 = env.digest(vol)
    check(b4.parent_id is None, "the fallback backup kept parent %s" % b4.parent_id)
    check(base_of(b4) == "volume-%s.backup.%s" % (vol, b4.id),
          "the fallback did not start a new chain: %s" % base_of(b4))
    restored_equals(env, driver, b4, d4, "the fallback backup")

    for b in (b1, b3, b4):
        driver.delete_backup(b)
    check(env.pool_names(vol) == [], "images left: %s" % env.pool_names(vol))
    check(env.meta_objects([b1.id, b3.id, b4.id]) == [], "metadata objects left")
    check(env.source_backup_snaps(vol) == [],
          "source snapshots left: %s" % env.source_backup_snaps(vol))
    # A second delete (Cinder retries) finds nothing and does not fail.
    driver.delete_backup(b1)
    env.remove_volume(vol)


def cinders_chain(env, cinders, name, seed):
    """A new volume, its first backup by Cinder's Ceph driver, its digest."""
    vol = env.volume(name)
    env.scatter(vol, seed)
    c1 = env.run_backup(cinders, vol)
    return vol, c1, env.digest(vol)


def ours_continue(env, ours, cinders, vol, c1):
    """Our incremental after Cinder's `c1`, checked to continue its chain
    and restored by Cinder's driver bit-exact; the backup and its digest."""
    o2 = env.run_backup(ours, vol, parent=c1.id)
    d2 = env.digest(vol)
    check(o2.parent_id == c1.id and base_of(o2) == base_of(c1),
          "ours did not continue Cinder's chain: %s vs %s" % (base_of(o2), base_of(c1)))
    restored_equals(env, cinders, o2, d2, "ours, by Cinder's driver")
    return o2, d2


def mixed(env):
    """A chain Cinder's Ceph driver started, continued by ours, restored
    by Cinder's driver; Cinder's driver continues ours again (a rollback
    of the switch), and ours restores and deletes all of it."""
    ours, cinders = env.ours(), env.cinders()
    vol, c1, d1 = cinders_chain(env, cinders, "web", 11)
    env.scatter(vol, 12)
    o2, d2 = ours_continue(env, ours, cinders, vol, c1)
    restored_equals(env, ours, c1, d1, "Cinder's, by ours")
    env.scatter(vol, 13)
    c3 = env.run_backup(cinders, vol, parent=o2.id)
    d3 = env.digest(vol)
    check(c3.parent_id == o2.id and base_of(c3) == base_of(c1),
          "Cinder's driver did not continue our chain")
    restored_equals(env, ours, c3, d3, "Cinder's after ours, by ours")
    env.scatter(vol, 14)
    o4 = env.run_backup(ours, vol, parent=c3.id)
    check(o4.parent_id == c3.id and base_of(o4) == base_of(c1),
          "ours did not continue after Cinder's again")
    restored_equals(env, cinders, o4, env.digest(vol), "ours again, by Cinder's")
    for b in (o2, c1, c3, o4):
        ours.delete_backup(b)
    check(env.pool_names(vol) == [], "images left: %s" % env.pool_names(vol))
    check(env.meta_objects([c1.id, o2.id, c3.id, o4.id]) == [],
          "metadata objects left")
    env.remove_volume(vol)


def expect_error(env, driver, vol, container, want, label, parent=None):
    """A backup that must fail: Cinder's error, with the reason, and
    nothing left behind on the volume or in the pool (but the chain of
    `parent`, when given, as it was)."""
    from cinder import exception
    before = (env.source_backup_snaps(vol), env.pool_names(vol))
    backup = env.new_backup(vol, parent=parent, container=container)
    volume_file = env.opened(vol)
    try:
        driver.backup(backup, volume_file)
    except exception.BackupOperationError as e:
        # What the backup manager does with a driver's error.
        backup.status = "error"
        backup.fail_reason = str(e)
        backup.save()
    else:
        raise AssertionError("%s: the backup did not fail" % label)
    finally:
        volume_file.close()
    row = env.objects.Backup.get_by_id(env.ctxt, backup.id)
    check(row.status == "error", "%s: status %s" % (label, row.status))
    check(want in row.fail_reason.lower(),
          "%s: the reason %r does not say %r" % (label, row.fail_reason, want))
    check(env.source_backup_snaps(vol) == before[0],
          "%s: snapshots left on the volume: %s" % (label, env.source_backup_snaps(vol)))
    check(env.pool_names(vol) == before[1], "%s: images left: %s" % (label, env.pool_names(vol)))
    if parent is None:
        check(before == ([], []), "%s: the volume had backups" % label)
    else:
        base = "volume-%s.backup.%s" % (vol, parent)
        check(not any(backup.id in s for s in env.snaps_of(base)),
              "%s: a snapshot of the failed backup is on the base" % label)
    check(env.meta_objects([backup.id]) == [], "%s: metadata object left" % label)
    return row


def errors_cli(env):
    driver = env.ours()
    vol = env.volume("err")
    env.scatter(vol, 21)
    expect_error(env, driver, vol, "no-such-pool", "no-such-pool", "missing pool")
    env.remove_volume(vol)


def errors_service(env):
    """Service down, a wrong token, a pool that is not the service's:
    each backup fails with the reason and leaves nothing; then the same
    backup through the right service works (the failures did not leave
    the volume in a state that breaks it)."""
    vol = env.volume("err", size_gib=2)
    env.scatter(vol, 31)
    down = "http://127.0.0.1:%d" % free_port()
    expect_error(env, env.ours(blockback_url=down), vol, None,
                 "unreachable", "service down")
    expect_error(env, env.ours(blockback_token="wrong-token"), vol, None,
                 "refused the token", "wrong token")
    expect_error(env, env.ours(), vol, "no-such-pool", "no-such-pool",
                 "missing pool")
    from cinder import exception
    try:
        env.ours(blockback_token="wrong-token").check_for_setup_error()
    except exception.InvalidConfigurationValue as e:
        check("refused the token" in str(e), "setup check: %s" % e)
    else:
        raise AssertionError("the setup check passed with a wrong token")
    driver = env.ours()
    driver.check_for_setup_error()
    b1 = env.run_backup(driver, vol)
    restored_equals(env, driver, b1, env.digest(vol), "the backup after the errors")
    # A job that fails in the service: a restore into a smaller volume.
    small = env.volume("small", size_gib=1)
    try:
        env.restore(driver, b1, small, True)
    except exception.BackupOperationError as e:
        check("job" in str(e) and "failed" in str(e), "the restore's reason: %s" % e)
    else:
        raise AssertionError("a restore into a smaller volume passed")
    env.remove_volume(small)
    driver.delete_backup(b1)
    check(env.pool_names(vol) == [], "images left: %s" % env.pool_names(vol))
    env.remove_volume(vol)


def adopted_service(env, blockback, catalog):
    """A chain Cinder's Ceph driver started: ours refuses to continue it
    until `blockback adopt` ran on the service's catalog, then continues
    it; Cinder's driver restores ours, ours restores Cinder's, and ours
    deletes all of it."""
    import subprocess
    ours, cinders = env.ours(), env.cinders()
    vol, c1, d1 = cinders_chain(env, cinders, "adopted", 41)
    env.scatter(vol, 42)
    expect_error(env, ours, vol, None, "blockback adopt", "not adopted",
                 parent=c1.id)
    from cinder import exception
    try:
        ours.delete_backup(c1)
    except exception.BackupOperationError as e:
        check("blockback adopt" in str(e), "delete before adopt: %s" % e)
    else:
        raise AssertionError("the delete of a backup the service never saw passed")
    check(env.pool_names(vol) == [base_of(c1)], "the refused delete changed the pool")
    subprocess.run([blockback, "--quiet", "--store", "rbd:backups",
                    "--ceph-conf", env.conf, "--ceph-id", "admin",
                    "--catalog", catalog, "adopt", "--volume-pool", "volumes",
                    "--volume-id", vol, "--checksums"], check=True)
    o2, d2 = ours_continue(env, ours, cinders, vol, c1)
    restored_equals(env, ours, c1, d1, "Cinder's, by ours")
    restored_equals(env, ours, o2, d2, "ours, by ours", onto=vol)
    for b in (o2, c1):
        ours.delete_backup(b)
    check(env.pool_names(vol) == [], "images left: %s" % env.pool_names(vol))
    check(env.meta_objects([c1.id, o2.id]) == [], "metadata objects left")
    env.remove_volume(vol)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    scenario, conf, blockback, work = sys.argv[1:5]
    rest = sys.argv[5:]
    mode = "service" if scenario.endswith("service") else "cli"
    env = Env(conf, blockback, work, mode, *rest[:2])
    if scenario == "adopted-service":
        adopted_service(env, blockback, rest[2])
    else:
        {"lifecycle": lifecycle, "mixed": mixed, "errors-cli": errors_cli,
         "lifecycle-service": lifecycle,
         "errors-service": errors_service}[scenario](env)
    print("ok %s" % scenario)


if __name__ == "__main__":
    main()
