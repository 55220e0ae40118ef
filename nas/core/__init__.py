"""The architecture itself: specs and their two text forms, search spaces, the model builder, counts."""
