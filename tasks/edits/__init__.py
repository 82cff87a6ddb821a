"""Pure, idempotent text edits of the NetBSD files a domus image carries."""
