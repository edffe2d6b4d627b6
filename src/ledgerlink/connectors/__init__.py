"""One folder per external system, each with the same files; ``kit`` holds what they share."""
