"""The per-node agent (Felix's role): datastore -> calculation -> XDP and raw dataplanes."""
