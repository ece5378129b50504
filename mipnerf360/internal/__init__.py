"""Core modules, one per multinerf internal/ file."""
