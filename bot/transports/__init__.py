"""Chat networks behind one small port (base.Transport)."""
