"""Command-line helpers of the mipnerf360 package (python -m mipnerf360.scripts.<name>)."""
