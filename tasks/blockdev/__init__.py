"""Block devices on the dom0: attach an image, mount it, and always undo both.

backend: the interface, with vnd (NetBSD vnconfig, cgdconfig) and loop (Linux losetup),
which run their tools through tasks.tools; units and unit_locks: the pool, one lock file per unit;
records: what each unit holds, so that the next run cleans up after a killed one;
recovery: that cleaning up; holders: who else uses an image (devices, xl, processes);
signals: SIGTERM and Ctrl-C; attach: `attached(...)` and `mounted(...)`, which put them
together.
"""
