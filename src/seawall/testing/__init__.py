"""Test and benchmark fixtures that need root and the real kernel (network namespaces, bpffs)."""
