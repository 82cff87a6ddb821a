"""NetBSD cgd(4) encryption off the target host, so domus can ship encrypted domU disks.

table: the ciphers cgd knows (no `cryptography` needed, so the site loader reads it);
ciphers: the per-sector transforms; params: cgdconfig params files and keys; stream:
whole images, streamed. Run `./domus cgd --help` for the command line.
"""
