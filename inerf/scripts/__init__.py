"""Scripts of the iNeRF port: `reproduce` (the tables) and `summarize` (rebuilds them)."""
