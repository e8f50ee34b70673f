#!/usr/bin/python3
# rbd-luks-diff-probe.py CEPH_CONF [POOL]: does this cluster's librbd report
# changed extents of a LUKS-encrypted image at the right offsets? Creates a
# 64 MiB image with fast-diff in POOL (default: backups), formats it LUKS2,
# loads the encryption, writes 4 KiB at 0, snapshots, writes 4 KiB at 8 MiB,
# prints what rbd_diff_iterate2 reports since the snapshot in whole-object
# (fast-diff) and exact mode, and removes the image. Correct: both name
# 8 MiB. Pacific 16.2.15: the whole-object pass says 24 MiB (the raw offset,
# past the 16 MiB LUKS2 header); see docs/rbd.md, "Encryption". Exit status
# 1 when an extent is misplaced. Needs python3-rbd (the Debian package).
import sys

import rados
import rbd

MIB = 1 << 20
NAME = "blockback-luks-diff-probe"


def reported(img, size, whole):
    got = []
    img.diff_iterate(0, size, "s1", lambda o, l, e: got.append(o), whole_object=whole)
    return got


def main():
    conf, pool = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "backups")
    cluster = rados.Rados(conffile=conf)
    cluster.connect()
    ioctx = cluster.open_ioctx(pool)
    features = (rbd.RBD_FEATURE_LAYERING | rbd.RBD_FEATURE_EXCLUSIVE_LOCK
                | rbd.RBD_FEATURE_OBJECT_MAP | rbd.RBD_FEATURE_FAST_DIFF)
    rbd.RBD().create(ioctx, NAME, 64 * MIB, old_format=False, features=features)
    ok = True
    try:
        with rbd.Image(ioctx, NAME) as img:
            img.encryption_format(rbd.RBD_ENCRYPTION_FORMAT_LUKS2, "probe")
        with rbd.Image(ioctx, NAME) as img:
            img.encryption_load(rbd.RBD_ENCRYPTION_FORMAT_LUKS2, "probe")
            img.write(b"A" * 4096, 0)
            img.create_snap("s1")
            img.write(b"B" * 4096, 8 * MIB)
            for whole in (True, False):
                offsets = reported(img, img.size(), whole)
                right = offsets == [8 * MIB]
                ok &= right
                print(f"whole_object={whole}: changed at {[o / MIB for o in offsets]} MiB"
                      f" ({'right' if right else 'WRONG, expected [8.0]'})")
            img.remove_snap("s1")
    finally:
        rbd.RBD().remove(ioctx, NAME)
        ioctx.close()
        cluster.shutdown()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
