"""What a host and the array share over the SAN: the block size, the layout of an LD's first
blocks (partition tables, disk signatures) and the wire client of the Array service.

Hosts (``snaplab.agent``) and the array (``snaplab.array``) both import from here and never from
each other; ``tests/test_layering.py`` keeps it that way.
"""
