"""The file system of a host's volumes: an SQLite archive (sqlar) per partition, cached on the host."""
