"""pkgsrc binary packages: reading them (packages) and installing them into a tree (install)."""
