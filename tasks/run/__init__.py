"""Running one command: doit in this process, the reporter, progress, the run lock
and unit locks, leftovers of killed runs, the no-op record, errors and the log.

Nothing is imported here: nearly every module of domus imports errors.py.
"""
