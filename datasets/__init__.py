"""Dataset recipes: offline, seeded generators of the data equilib trains and tests on."""
