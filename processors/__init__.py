"""Analysis processors built on coffea-fastsim."""
