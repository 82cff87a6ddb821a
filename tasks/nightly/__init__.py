"""`./domus nightly`: the unattended refresh, for cron (refresh.py)."""
