"""One module per operation of the order pipelines; each is ``(ctx) -> ctx``."""
