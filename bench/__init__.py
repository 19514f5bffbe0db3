"""`make bench`: mini's speed side by side with its peers, as ratios (see bench/README.md)."""
