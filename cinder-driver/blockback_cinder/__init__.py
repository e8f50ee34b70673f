"""A Cinder backup driver that hands the work to blockback.

cinder.conf: ``backup_driver = blockback_cinder.driver.BlockbackBackupDriver``
"""
