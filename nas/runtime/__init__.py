"""What every stage runs on: errors, files and atomic writes, the JSON-lines log, the command-line
frame, logging, locks, CPUs and threads, the Ray session and its Tune runner."""
