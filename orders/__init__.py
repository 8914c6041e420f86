"""The example domain: products, orders and the pipelines that place and cancel them."""
