"""Low-level helpers shared by the rest of the package (no ESPnet import at module level)."""
