"""Running the server: reloading rule files (and the file watch), `--workers` supervision, logs."""
