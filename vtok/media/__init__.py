"""Media files: finding them (`find`, no PyAV needed) and reading and writing video and audio (`video`, PyAV)."""
