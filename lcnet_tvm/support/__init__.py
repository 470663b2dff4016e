"""Small helpers every layer uses: atomic file writes, quieting native libraries' stderr."""
