"""Files: reading and checking clips, writing WAVs, atomic outputs and their markers, model files."""
