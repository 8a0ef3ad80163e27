"""The array's block: the unit of copy-on-write, of SRA accounting and of a host file system's page."""

BLOCK = 64 * 1024
