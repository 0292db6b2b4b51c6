"""XDP dataplane: a C blocklist program loaded through the system libbpf via ctypes."""
