"""Cinder's own Ceph backup driver restores a backup blockback made.

Runs the real driver (cinder.backup.drivers.ceph.CephBackupDriver, with
Cinder's real backup metadata API on a throwaway SQLite database of
Cinder's own schema) against the test cluster, the way cinder-backup
restores into a volume the API created for the restore: Cinder names such
a volume `restore_backup_<backup id>`, and the driver gives it the display
name stored in `backup.<id>.meta`.

usage: cinder_restore.py CEPH_CONF BACKUP_ID VOLUME_ID BASE_IMAGE SIZE_GIB TARGET_FILE WORK_DIR

Prints one JSON line: the restored-to volume's display name and description.
"""

import json
import os
import sys


def main():
    conf, backup_id, volume_id, base, size_gib, target, work = sys.argv[1:]
    size_gib = int(size_gib)

    from oslo_config import cfg
    from cinder import context, objects
    from cinder.db import api as db
    from cinder.backup.drivers import ceph
    from cinder.db import migration

    objects.register_all()
    CONF = cfg.CONF
    CONF([], project="cinder", default_config_files=[])
    db_path = os.path.join(work, "cinder.sqlite")
    CONF.set_override("connection", "sqlite:///" + db_path, group="database")
    CONF.set_override("backup_ceph_conf", conf)
    CONF.set_override("backup_ceph_user", "admin")
    CONF.set_override("backup_ceph_pool", "backups")
    migration.db_sync()

    ctxt = context.get_admin_context()
    vtype = db.volume_type_create(ctxt, {"name": "blockback-test"})
    volume = db.volume_create(ctxt, {
        "display_name": "restore_backup_%s" % backup_id,
        "size": size_gib,
        "volume_type_id": vtype["id"],
        "status": "restoring-backup",
    })
    # The backup's row, as `cinder backup-import-record` would make it.
    db.backup_create(ctxt, {
        "id": backup_id,
        "volume_id": volume_id,
        "container": "backups",
        "service_metadata": json.dumps({"base": base}),
        "size": size_gib,
        "status": "restoring",
        "user_id": "blockback-test",
        "project_id": "blockback-test",
    })
    backup = objects.Backup.get_by_id(ctxt, backup_id)
    driver = ceph.CephBackupDriver(ctxt)
    with open(target, "wb") as volume_file:
        driver.restore(backup, volume["id"], volume_file, True)
    restored = db.volume_get(ctxt, volume["id"])
    print(json.dumps({
        "display_name": restored["display_name"],
        "display_description": restored["display_description"],
    }))


if __name__ == "__main__":
    main()
